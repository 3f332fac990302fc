//! The agent's configuration: a TOML file (unknown keys rejected with their name), every
//! setting also a command-line flag and an environment variable (flags win over the file).
//! With no configuration at all, `serve` listens for Janus on 127.0.0.1 and sends HEP
//! over UDP to 127.0.0.1:9060.
//!
//! Each setting is declared once, in its table (`sections.rs`, `brokers.rs`,
//! [`crate::tls::TlsClient`]) with `crate::settings::section!`: the key, its flag, its
//! environment variable, its default and its doc comment (`--help`). [`Config`] composes
//! the tables; [`Config::load`] reads the file, then sets what the flags and variables
//! gave ([`Overrides`]), then validates (`validate.rs`).

use std::path::{Path, PathBuf};

use crate::correlate::Fallback;
use crate::map::qos::QosReports;
use crate::map::LogFormat;
pub use crate::output::{CollectorUrl, WhenFull};
use crate::settings::{section, Section};

/// The command-line parser of a core setting with a fixed set of values (the core knows
/// nothing of clap; [`crate::choice::Choice`] names its values once).
pub fn choice<T: crate::choice::Choice>() -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(T::ALL.iter().map(|(n, _)| *n))
        .map(|n| T::from_name(&n).expect("clap checked the name against the list"))
}

/// [`crate::settings::Value`] for the core's settings with a fixed set of values.
macro_rules! chosen {
    ($($t:ty),*) => {
        $(
            impl crate::settings::Value for $t {
                fn arg(arg: clap::Arg) -> clap::Arg {
                    arg.value_parser(choice::<$t>()).action(clap::ArgAction::Set)
                }
                fn get(m: &clap::ArgMatches, id: &str) -> Option<Self> {
                    m.get_one::<$t>(id).copied()
                }
            }
        )*
    };
}
chosen!(Fallback, QosReports, LogFormat);
crate::settings::parsed!(CollectorUrl, WhenFull);

mod brokers;
mod sections;
mod validate;
pub use brokers::{redact_url, AmqpInput, BrokerUrl, MqttInput, MqttTls, MqttVersion};
pub use sections::{
    Correlation, Hep, Homer, HttpInput, Limits, Listen, Metrics, Output, Queue, Spool, WsInput,
    DEFAULT_UDP_BURST, DEFAULT_UDP_RATE,
};
use validate::readable_file;

section! {
    /// Everything `serve` needs.
    pub struct Config {
        /// How long a shutdown (SIGTERM, SIGINT) waits for queues to drain, in
        /// milliseconds.
        #[flag("shutdown-timeout-ms")]
        pub shutdown_timeout_ms: u64 = 5000,
        #[table]
        /// HTTP input (Janus's sample event handler, `janus.eventhandler.sampleevh`).
        pub http: HttpInput,
        #[table]
        /// WebSocket input (Janus's `janus.eventhandler.wsevh`).
        pub ws: WsInput,
        #[table]
        /// MQTT input (Janus's `janus.eventhandler.mqttevh` through a broker).
        pub mqtt: MqttInput,
        #[table]
        /// AMQP input (Janus's `janus.eventhandler.rabbitmqevh` through RabbitMQ).
        pub amqp: AmqpInput,
        #[table]
        /// Connection limits of the inputs.
        pub limits: Limits,
        #[table]
        /// Where HEP goes: one or more collectors.
        pub output: Vec<Output> = vec![Output::default()],
        #[table]
        /// The queue between mapping and sending (one per collector).
        pub queue: Queue,
        #[table]
        /// The disk spool of TCP/TLS collectors.
        pub spool: Spool,
        #[table]
        /// HEP header fields.
        pub hep: Hep,
        #[table]
        /// Correlation settings.
        pub correlation: Correlation,
        #[table]
        /// Prometheus `/metrics` and `/health`.
        pub metrics: Metrics,
        #[table]
        /// Homer's REST API (homer-app v3): named columns, `heplink homer check`.
        pub homer: Homer,
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration (unknown keys are named).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml said.
        message: String,
    },
    /// A value that cannot work.
    #[error("invalid setting {key}: {message}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// Why.
        message: String,
    },
}

/// Command-line flags and environment variables of `serve`, `check` and `homer check`:
/// one per key of the file (see [`Config::keys`]), each overriding the file's setting.
#[derive(Debug, Clone, Default)]
pub struct Overrides(Option<clap::ArgMatches>);

impl Overrides {
    /// The flags of `args` (and the environment's variables), as a command would take
    /// them.
    pub fn parse<I: IntoIterator<Item = S>, S: Into<std::ffi::OsString> + Clone>(
        args: I,
    ) -> Result<Overrides, clap::Error> {
        use clap::{Args as _, FromArgMatches as _};
        let cmd = Overrides::augment_args(clap::Command::new("heplink"));
        Overrides::from_arg_matches(&cmd.try_get_matches_from(args)?)
    }
}

impl Overrides {
    /// Sets every key a flag or an environment variable gave (no validation: see
    /// [`Config::load`]).
    pub fn apply(&self, c: &mut Config) {
        if let Some(m) = &self.0 {
            c.apply(m);
        }
    }
}

impl clap::FromArgMatches for Overrides {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(Overrides(Some(m.clone())))
    }
    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0 = Some(m.clone());
        Ok(())
    }
}

impl clap::Args for Overrides {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        crate::settings::args_of::<Config>(cmd, "")
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.into(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| {
            // serde names Rust types; say what to write instead.
            let mut m = e.to_string();
            for (rust, plain) in [
                ("expected usize", "expected a whole number (no quotes)"),
                ("expected u64", "expected a whole number (no quotes)"),
                ("expected u32", "expected a whole number (no quotes)"),
                ("expected u16", "expected a whole number (no quotes)"),
                ("expected u8", "expected a whole number (no quotes)"),
                ("expected a boolean", "expected true or false (no quotes)"),
            ] {
                m = m.replace(rust, plain);
            }
            m
        })?;
        // Every key has a default but a collector's address.
        let doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(toml::Value::Array(outputs)) = doc.get("output") {
            for (i, o) in outputs.iter().enumerate() {
                if o.as_table().is_some_and(|t| !t.contains_key("url")) {
                    return Err(format!("[[output]] number {}: missing field `url`", i + 1));
                }
            }
        }
        Ok(c)
    }

    /// Every key of the file with its flag (the environment variable is
    /// [`crate::settings::Key::env`]).
    pub fn keys() -> Vec<crate::settings::Key> {
        let mut out = Vec::new();
        <Config as Section>::keys("", &mut out);
        out
    }

    /// The file (if any), then the flags and environment variables, then validation.
    pub fn load(file: Option<&Path>, o: &Overrides) -> Result<Config, ConfigError> {
        let mut c = match file {
            Some(f) => Self::from_file(f)?,
            None => Config::default(),
        };
        o.apply(&mut c);
        c.validate()?;
        Ok(c)
    }

    /// The effective settings as TOML (what `heplink check` prints).
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if !shown.http.password.is_empty() {
            shown.http.password = "********".into();
        }
        if !shown.hep.auth_key.is_empty() {
            shown.hep.auth_key = "********".into();
        }
        if !shown.ws.token.is_empty() {
            shown.ws.token = "********".into();
        }
        if !shown.homer.password.is_empty() {
            shown.homer.password = "********".into();
        }
        if !shown.mqtt.password.is_empty() {
            shown.mqtt.password = "********".into();
        }
        // The AMQP URL carries its password.
        shown.amqp.url = redact_url(&shown.amqp.url);
        toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }

    /// Correlator settings.
    pub fn correlator(&self) -> crate::correlate::Config {
        crate::correlate::Config {
            fallback: self.correlation.fallback,
            hold_us: self.correlation.hold_ms * 1000,
            idle_us: self.correlation.idle_s * 1_000_000,
            max_handles: self.correlation.max_handles,
            ..Default::default()
        }
    }

    /// Mapper settings.
    pub fn mapper(&self) -> crate::map::MapConfig {
        crate::map::MapConfig {
            capture_id: self.hep.capture_id,
            node_name: (!self.hep.node_name.is_empty()).then(|| self.hep.node_name.clone()),
            auth_key: (!self.hep.auth_key.is_empty()).then(|| self.hep.auth_key.clone()),
            sip_as_sip: self.hep.sip_as_sip,
            qos: self.hep.qos,
            log_format: self.hep.payload,
            time_window: (self.hep.max_age_s > 0).then_some(crate::map::TimeWindow {
                max_age_us: self.hep.max_age_s * 1_000_000,
                max_ahead_us: self.hep.max_ahead_s * 1_000_000,
            }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let e = Config::from_toml("[http]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n").unwrap_err();
        assert!(e.contains("unknown field `lisen`"), "{e}");
        let e = Config::from_toml("[qeue]\n").unwrap_err();
        assert!(e.contains("unknown field `qeue`"), "{e}");
    }

    #[test]
    fn defaults_listen_on_loopback_and_send_udp_to_9060() {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert!(c.http.listen.ip().is_loopback() && c.http.enabled);
        assert!(c.ws.listen.ip().is_loopback() && c.ws.enabled);
        assert_eq!(c.output[0].url.to_string(), "udp://127.0.0.1:9060");
    }

    #[test]
    fn flags_override_the_file_and_are_validated() {
        let o = Overrides::parse([
            "heplink",
            "--http",
            "127.0.0.1:7000",
            "--ws",
            "off",
            "--to",
            "tcp://127.0.0.1:9061",
            "--to",
            "udp://[::1]:9060",
            "--hold-ms",
            "250",
            "--node-name",
            "janus-a",
        ])
        .unwrap();
        let c = Config::load(None, &o).unwrap();
        assert_eq!(c.http.listen.port(), 7000);
        assert!(!c.ws.enabled);
        assert_eq!(c.output.len(), 2);
        assert_eq!(c.correlation.hold_ms, 250);
        assert_eq!(c.hep.node_name, "janus-a");
        let bad = Overrides::parse(["heplink", "--node-name", "a\"b"]).unwrap();
        assert!(Config::load(None, &bad)
            .unwrap_err()
            .to_string()
            .contains("hep.node_name"));
        // A flag sets its key, not its whole table: the file's TLS name stays.
        let dir = std::env::temp_dir().join(format!("heplink-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "[[output]]\nurl = \"tls://a:1\"\n[output.tls]\nserver_name = \"homer\"\n",
        )
        .unwrap();
        let o = Overrides::parse(["heplink", "--tls-insecure-skip-verify"]).unwrap();
        let c = Config::load(Some(&f), &o).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.output[0].tls.server_name.as_deref(), Some("homer"));
        assert!(c.output[0].tls.insecure_skip_verify);
        // A collector without its address is refused.
        let e = Config::from_toml("[[output]]\nmtu = 1400\n").unwrap_err();
        assert!(e.contains("missing field `url`"), "{e}");
        // A collector URL is parsed where it is read: the flag's value, or the file's key.
        assert!("http://x".parse::<CollectorUrl>().is_err());
        let e = Config::from_toml("[[output]]\nurl = \"http://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("the scheme must be udp, tcp or tls"), "{e}");
    }

    #[test]
    fn the_example_config_parses_and_round_trips() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("heplink.example.toml");
        let c = Config::from_file(&path).unwrap();
        c.validate().unwrap();
        assert_eq!(Config::from_toml(&toml::to_string(&c).unwrap()).unwrap(), c);
        // The example documents the defaults: it must not drift from them.
        assert_eq!(c, Config::default());
    }
}
