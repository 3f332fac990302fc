//! Each setting is declared once (`heplink::settings::section!`) and is a key of the file,
//! a flag and an environment variable: no key without its flag, no two keys on one flag
//! or variable, every variable `HEPLINK_` and its flag in upper snake case, and the keys
//! the declarations list are exactly those of the file.

use std::collections::BTreeSet;
use std::path::Path;

use clap::Args as _;
use heplink::config::{Config, MqttTls, Overrides};

/// The command `serve` and `check` build their flags into.
fn command() -> clap::Command {
    let cmd = Overrides::augment_args(clap::Command::new("heplink"));
    // clap's own checks: no two arguments share an id or a flag, and every `requires`
    // names an argument.
    cmd.clone().debug_assert();
    cmd
}

fn upper_snake(flag: &str) -> String {
    flag.to_ascii_uppercase().replace('-', "_")
}

#[test]
fn every_key_has_its_own_flag_and_variable() {
    let keys = Config::keys();
    assert!(keys.len() > 80, "the keys are listed: {keys:?}");
    let cmd = command();
    let (mut flags, mut paths) = (BTreeSet::new(), BTreeSet::new());
    for k in &keys {
        assert!(flags.insert(k.flag), "two keys share --{}", k.flag);
        assert!(
            paths.insert(k.path.as_str()),
            "{} is declared twice",
            k.path
        );
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(k.flag))
            .unwrap_or_else(|| panic!("{} has no flag --{}", k.path, k.flag));
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some(k.env().as_str()),
            "--{}",
            k.flag
        );
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(
            help.len() > 20 && help.ends_with(&format!("(`{}`)", k.path)),
            "--{} says what it is and names its key: {help:?}",
            k.flag
        );
    }
    let mut envs = BTreeSet::new();
    for a in cmd.get_arguments() {
        let long = a.get_long().expect("every argument is a flag");
        assert!(flags.contains(long), "--{long} sets no key");
        let env = a.get_env().and_then(|e| e.to_str()).unwrap_or_default();
        assert_eq!(env, format!("HEPLINK_{}", upper_snake(long)), "--{long}");
        assert!(envs.insert(env.to_string()), "two flags share {env}");
    }
}

/// The dotted paths of a TOML document's values (`[[output]]` entries as `output.`).
fn leaves(t: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (k, v) in t {
        let path = format!("{prefix}{k}");
        match v {
            toml::Value::Table(t) => leaves(t, &format!("{path}."), out),
            toml::Value::Array(a) if a.iter().all(toml::Value::is_table) && !a.is_empty() => {
                for t in a.iter().filter_map(toml::Value::as_table) {
                    leaves(t, &format!("{path}."), out);
                }
            }
            _ => {
                out.insert(path);
            }
        }
    }
}

#[test]
fn the_declared_keys_are_the_keys_of_the_file() {
    // Every table set, so that the tables printed only when set are printed.
    let mut c = Config::default();
    c.output[0].tls = heplink::tls::TlsClient {
        ca_file: Some("ca.pem".into()),
        server_name: Some("homer".into()),
        cert_file: Some("c.pem".into()),
        key_file: Some("k.pem".into()),
        insecure_skip_verify: true,
    };
    c.mqtt.tls = MqttTls {
        ca_file: Some("ca.pem".into()),
        cert_file: Some("c.pem".into()),
        key_file: Some("k.pem".into()),
        insecure_skip_verify: true,
    };
    let text = toml::to_string(&c).unwrap();
    assert_eq!(Config::from_toml(&text).unwrap(), c, "{text}");
    let mut written = BTreeSet::new();
    leaves(&toml::from_str(&text).unwrap(), "", &mut written);
    let declared: BTreeSet<String> = Config::keys().into_iter().map(|k| k.path).collect();
    assert_eq!(written, declared, "the file's keys and the declared ones");
    // The example file uses only declared keys.
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("heplink.example.toml"))
            .unwrap();
    let mut used = BTreeSet::new();
    leaves(&toml::from_str(&example).unwrap(), "", &mut used);
    let unknown: Vec<_> = used.difference(&declared).collect();
    assert!(unknown.is_empty(), "{unknown:?}");
}

#[test]
fn a_flag_sets_its_key_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    std::fs::write(
        &f,
        "[queue]\ncapacity = 10\n[homer]\nmax_aliases = 7\n[mqtt]\ntopics = [\"a\"]\n",
    )
    .unwrap();
    let o = Overrides::parse([
        "heplink",
        "--queue-capacity",
        "20",
        "--mqtt-topic",
        "b,c",
        "--ws-enabled",
        "false",
    ])
    .unwrap();
    let c = Config::load(Some(&f), &o).unwrap();
    assert_eq!(c.queue.capacity, 20, "the flag wins");
    assert_eq!(
        c.homer.max_aliases, 7,
        "the file's key stays when no flag is given"
    );
    assert_eq!(c.mqtt.topics, ["b", "c"]);
    assert!(!c.ws.enabled);
}

/// The messages that name a key with its flag (`"spool.dir (--spool-dir)"`) name the
/// key's own flag.
#[test]
fn messages_name_each_key_with_its_own_flag() {
    let keys = Config::keys();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut named = 0;
    for f in [
        "src/config.rs",
        "src/config/validate.rs",
        "src/config/brokers.rs",
    ] {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        for (i, _) in text.match_indices(" (--") {
            let key = text[..i].rsplit('"').next().unwrap();
            let flag: String = text[i + 4..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            if key.contains(' ') || !key.contains('.') {
                continue; // prose, not a key
            }
            let k = keys
                .iter()
                .find(|k| k.path == key)
                .unwrap_or_else(|| panic!("{f}: {key} is no key"));
            assert_eq!(k.flag, flag, "{f}: {key} (--{flag})");
            named += 1;
        }
    }
    assert!(named >= 10, "the messages are read: {named}");
}
