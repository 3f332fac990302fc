//! Each setting is declared once (`heplink::settings::section!`) and is a key of the file,
//! a flag and an environment variable: no key without its flag, no two keys on one flag
//! or variable, every variable `HEPLINK_` and its flag in upper snake case, the keys the
//! declarations list exactly those of the file, and each flag setting its own key only.

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

/// The value of `path` in a TOML document (`output.x`: the first collector's).
fn value_at(doc: &toml::Table, path: &str) -> Option<toml::Value> {
    let mut t = doc;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        let v = t.get(p)?;
        if parts.peek().is_none() {
            return Some(v.clone());
        }
        t = match v {
            toml::Value::Table(t) => t,
            toml::Value::Array(a) => a.first()?.as_table()?,
            _ => return None,
        };
    }
    None
}

/// Every flag sets its own key and no other: each is given a value other than its
/// default, and the effective settings differ from the defaults at that key only.
#[test]
fn every_flag_sets_its_own_key_and_no_other() {
    let cmd = command();
    let defaults: toml::Table =
        toml::from_str(&toml::to_string(&Config::default()).unwrap()).unwrap();
    let mut all = BTreeSet::new();
    leaves(&defaults, "", &mut all);
    for k in Config::keys() {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(k.flag))
            .unwrap();
        let before = value_at(&defaults, &k.path);
        let choices: Vec<String> = arg
            .get_possible_values()
            .iter()
            .map(|p| p.get_name().to_string())
            .collect();
        let given: Vec<String> = match &before {
            _ if !choices.is_empty() => {
                // A fixed set of values: one that does not print as the default.
                let now = before.as_ref().map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    v => v.to_string(),
                });
                let pick = choices
                    .iter()
                    .find(|c| {
                        Some(c.replace('-', "_")) != now && now.as_deref() != Some(c.as_str())
                    })
                    .unwrap_or_else(|| panic!("--{}: {choices:?}", k.flag));
                if arg.get_action().takes_values() {
                    vec![pick.clone()]
                } else {
                    vec![] // a switch
                }
            }
            Some(toml::Value::Integer(n)) => vec![(n + 1).to_string()],
            Some(toml::Value::Array(_)) => vec!["a,b".into()],
            Some(toml::Value::String(s)) if s.parse::<std::net::SocketAddr>().is_ok() => {
                vec!["127.0.0.2:1".into()]
            }
            Some(toml::Value::String(s)) if s.contains("://") => vec!["tcp://h:2".into()],
            _ => vec![format!("x-{}", k.flag)],
        };
        // A certificate and its key go together.
        let partner = [("cert", "key"), ("key", "cert")]
            .iter()
            .find_map(|(a, b)| k.flag.strip_suffix(a).map(|p| format!("{p}{b}")))
            .filter(|p| cmd.get_arguments().any(|a| a.get_long() == Some(p)));
        let mut args = vec!["heplink".to_string(), format!("--{}", k.flag)];
        args.extend(given.clone());
        if let Some(p) = &partner {
            args.extend([format!("--{p}"), "y.pem".into()]);
        }
        let o = Overrides::parse(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let mut c = Config::default();
        o.apply(&mut c);
        let after: toml::Table = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        let mut now = BTreeSet::new();
        leaves(&after, "", &mut now);
        let changed: Vec<&String> = all
            .union(&now)
            .filter(|p| value_at(&defaults, p) != value_at(&after, p))
            // A table printed only when set (`[output.tls]`) shows its other keys, at
            // their defaults (`insecure_skip_verify = false`).
            .filter(|p| {
                let shown = value_at(&defaults, p).is_none();
                !(shown && value_at(&after, p) == Some(toml::Value::Boolean(false)))
            })
            .filter(|p| {
                let q = k.path.rsplit_once('.').map_or("", |(t, _)| t);
                let is_partner = partner.as_ref().is_some_and(|_| p.starts_with(q));
                **p != k.path && !is_partner
            })
            .collect();
        assert!(changed.is_empty(), "{args:?} changed {changed:?} too");
        assert_ne!(
            value_at(&after, &k.path),
            before,
            "{args:?} did not change {}",
            k.path
        );
    }
}
