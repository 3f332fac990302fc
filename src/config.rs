//! The agent's configuration: a TOML file (unknown keys rejected with their name), every
//! setting also a command-line flag and an environment variable (flags win over the file).
//! With no configuration at all, `serve` listens for Janus on 127.0.0.1 and sends HEP
//! over UDP to 127.0.0.1:9060.
//!
//! Why this file is over 500 lines: every setting is declared here three times by design
//! (the TOML struct, its flag and variable in `Overrides`, the override rule), so that a
//! test can keep `heplink.example.toml` in step; a derive macro would remove the
//! repetition.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::correlate::Fallback;
pub use crate::output::{CollectorUrl, WhenFull};

/// The command-line parser of a core setting with a fixed set of values (the core knows
/// nothing of clap; [`crate::choice::Choice`] names its values once).
pub fn choice<T: crate::choice::Choice>() -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(T::ALL.iter().map(|(n, _)| *n))
        .map(|n| T::from_name(&n).expect("clap checked the name against the list"))
}

mod brokers;
pub use brokers::{redact_url, AmqpInput, BrokerUrl, MqttInput, MqttVersion};

/// Everything `serve` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP input (Janus's sample event handler, `janus.eventhandler.sampleevh`).
    pub http: HttpInput,
    /// WebSocket input (Janus's `janus.eventhandler.wsevh`).
    pub ws: WsInput,
    /// MQTT input (Janus's `janus.eventhandler.mqttevh` through a broker).
    pub mqtt: MqttInput,
    /// AMQP input (Janus's `janus.eventhandler.rabbitmqevh` through RabbitMQ).
    pub amqp: AmqpInput,
    /// Connection limits of the inputs.
    pub limits: Limits,
    /// Where HEP goes: one or more collectors.
    pub output: Vec<Output>,
    /// The queue between mapping and sending (one per collector).
    pub queue: Queue,
    /// The disk spool of TCP/TLS collectors.
    pub spool: Spool,
    /// HEP header fields.
    pub hep: Hep,
    /// Correlation settings.
    pub correlation: Correlation,
    /// Prometheus `/metrics` and `/health`.
    pub metrics: Metrics,
    /// Homer's REST API (homer-app v3): named columns, `heplink homer check`.
    pub homer: Homer,
    /// How long a shutdown (SIGTERM, SIGINT) waits for queues to drain, in milliseconds.
    pub shutdown_timeout_ms: u64,
}

/// HTTP input settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpInput {
    /// Listen for POSTs here.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Basic auth user (Janus's `backend_user`); none when empty.
    pub username: String,
    /// Basic auth password (Janus's `backend_pwd`).
    pub password: String,
    /// Largest request body accepted, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Largest body after gzip decompression, bytes (413 beyond; gzip bombs stop here).
    pub max_decompressed_bytes: usize,
    /// HTTPS: the server certificate chain (PEM); empty: plain HTTP.
    pub tls_cert: String,
    /// HTTPS: the server key (PEM).
    pub tls_key: String,
}

/// WebSocket input settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsInput {
    /// Accept wsevh connections.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest message accepted, bytes (closed with code 1009 beyond).
    pub max_message_bytes: usize,
    /// A token wsevh must give in its URL query (`ws://host:port/?token=…`, set in its
    /// `backend`); empty: no authentication. When set, the HTTP input's Basic auth (if
    /// on) is accepted instead too.
    pub token: String,
    /// Refuse upgrades that do not ask for the `janus-event-handlers` subprotocol.
    pub require_subprotocol: bool,
}

/// Limits on the inputs' connections (each of HTTP and WebSocket has its own counts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most connections open at once per input; beyond, new ones are closed at once.
    pub max_connections: usize,
    /// Most connections open at once from one address, per input.
    pub max_connections_per_peer: usize,
    /// Time a new connection has to send its request head, ms (the base of every
    /// request's time too).
    pub header_timeout_ms: u64,
    /// Idle time allowed between two requests on a keep-alive HTTP connection, s.
    pub idle_timeout_s: u64,
    /// Bytes per second a request must keep up once started (slower ones are closed).
    pub min_rate_bytes: u64,
    /// Body bytes in flight across all HTTP connections (compressed and decompressed);
    /// requests wait for room, then get 503.
    pub body_budget_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_connections_per_peer: 512,
            header_timeout_ms: 10_000,
            idle_timeout_s: 60,
            min_rate_bytes: 16 << 10,
            body_budget_bytes: 32 << 20,
        }
    }
}

impl Limits {
    /// The input's limits, typed.
    pub fn input(&self, upgrade: bool) -> crate::input::guard::Limits {
        crate::input::guard::Limits {
            max_connections: self.max_connections,
            max_per_peer: self.max_connections_per_peer,
            header_timeout: std::time::Duration::from_millis(self.header_timeout_ms),
            idle_timeout: Some(std::time::Duration::from_secs(self.idle_timeout_s)),
            min_rate: self.min_rate_bytes,
            upgrade,
        }
    }
}

/// One collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// `udp://HOST:PORT` or `tcp://HOST:PORT`.
    pub url: CollectorUrl,
    /// UDP packets above this size are still sent, with a warning (IP fragmentation).
    #[serde(default = "default_mtu")]
    pub mtu: usize,
    /// TLS settings (for `tls://`).
    #[serde(default, skip_serializing_if = "is_default_tls")]
    pub tls: crate::tls::TlsClient,
    /// With backups (`url = "tcp://a:9061|tcp://b:9061"`): how often, in seconds, a sender
    /// on a backup looks whether the preferred collector is back.
    #[serde(default = "default_failback")]
    pub failback_s: u64,
    /// UDP: packets per second at most (0: unpaced). A collector that keeps the kernel's
    /// default receive buffer loses what a burst puts beyond it.
    #[serde(default = "default_udp_rate")]
    pub udp_rate: u32,
    /// UDP: packets that may leave at once before `udp_rate` applies.
    #[serde(default = "default_udp_burst")]
    pub udp_burst: u32,
    /// TCP/TLS: seconds without write progress after which the collector counts as
    /// stalled (stopped reading) and the connection is replaced.
    #[serde(default = "default_stall_s")]
    pub stall_s: u64,
    /// TCP/TLS: milliseconds within which the collector reads what its TCP acknowledged.
    /// What was acknowledged more recently is written again if the connection is lost
    /// (see `output::delivery`): higher for a collector that reads late, more duplicates.
    #[serde(default = "default_read_grace_ms")]
    pub read_grace_ms: u64,
}

fn default_stall_s() -> u64 {
    10
}

/// 250 ms: an ordinary collector process on a loaded machine waits tens of milliseconds
/// for a core (measured: at 25 ms, a collector SIGKILLed every 0.8 s on a busy 2-core
/// machine lost 5% of the events, read by its TCP but not by it).
fn default_read_grace_ms() -> u64 {
    250
}

impl Output {
    /// A collector at `url` with every other setting at its default.
    pub fn new(url: CollectorUrl) -> Output {
        Output {
            url,
            mtu: default_mtu(),
            tls: Default::default(),
            failback_s: default_failback(),
            udp_rate: default_udp_rate(),
            udp_burst: default_udp_burst(),
            stall_s: default_stall_s(),
            read_grace_ms: default_read_grace_ms(),
        }
    }
}

/// Default UDP pace: a receiver that keeps Linux's default 208 KiB buffer (about 90
/// queued packets of Janus's size) and reads 20,000 packets/s loses none of it.
pub const DEFAULT_UDP_RATE: u32 = 15_000;

/// Default UDP burst: well below what a default receive buffer holds (about 90 packets
/// up to 1.4 KB, each taking 2,304 bytes of it, and fewer of the larger SDP-carrying ones).
pub const DEFAULT_UDP_BURST: u32 = 32;

fn default_udp_rate() -> u32 {
    DEFAULT_UDP_RATE
}

fn default_udp_burst() -> u32 {
    DEFAULT_UDP_BURST
}

fn default_failback() -> u64 {
    30
}

fn is_default_tls(t: &crate::tls::TlsClient) -> bool {
    *t == crate::tls::TlsClient::default()
}

fn default_mtu() -> usize {
    1472
}

/// Queue settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Queue {
    /// Packets per collector queue.
    pub capacity: usize,
    /// Bytes per collector queue: full at either bound.
    pub max_bytes: usize,
    /// The full policy.
    pub when_full: WhenFull,
}

/// Disk spool settings: what TCP/TLS collectors have not confirmed survives outages and
/// agent restarts. (UDP has no delivery to confirm: no spool.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spool {
    /// Directory (one subdirectory per collector); empty: no spool.
    pub dir: String,
    /// Most bytes kept per collector; beyond it the oldest are dropped (counted).
    pub max_bytes: u64,
}

impl Default for Spool {
    fn default() -> Self {
        Spool {
            dir: String::new(),
            max_bytes: 1 << 30,
        }
    }
}

/// HEP header settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hep {
    /// Capture agent id (chunk 0x000c).
    pub capture_id: u32,
    /// Node name (chunk 0x0013); empty uses the Janus `emitter`.
    pub node_name: String,
    /// Auth key (chunk 0x000e; heplify-server stores it in clear and never checks it).
    pub auth_key: String,
    /// Send SIP plugin `sip-in`/`sip-out` messages as SIP (type 1) packets.
    pub sip_as_sip: bool,
    /// Oldest event time sent as it is, seconds before the agent's clock; an older event
    /// is sent with its receive time (counted; its own time stays in the payload). 0: no
    /// limit. The default keeps heplify-server's daily partitions (yesterday to tomorrow).
    pub max_age_s: u64,
    /// Latest event time sent as it is, seconds after the agent's clock.
    pub max_ahead_s: u64,
    /// QoS reports made of Janus media stats, besides their LOG rows: `rtcp_rtp` (RTCP
    /// JSON, type 5, and for audio rtpagent reports with a MOS, type 34), `rtcp`, or `off`.
    pub qos: crate::map::qos::QosReports,
    /// The LOG payload's form: `words` (the label as a line of words, then the JSON:
    /// homer-ui previews the first 50 characters) or `json` (the JSON only).
    pub payload: crate::map::LogFormat,
}

/// Correlation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Correlation {
    /// Grouping of events that belong to no room or call.
    pub fallback: Fallback,
    /// How long events wait for their handle's binding, milliseconds.
    pub hold_ms: u64,
    /// Inactivity after which state is forgotten, seconds.
    pub idle_s: u64,
    /// Most handles tracked per Janus instance.
    pub max_handles: usize,
}

/// Homer's REST API settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Homer {
    /// homer-app's base URL (`http://homer:9080`); empty: no API use (no aliases).
    pub api: String,
    /// The API user (an admin: aliases need one).
    pub user: String,
    /// The API password.
    pub password: String,
    /// Keep Homer's aliases for Janus's addresses and each live PeerConnection's client.
    pub aliases: bool,
    /// Most aliases the agent keeps.
    pub max_aliases: usize,
    /// Most alias changes a second.
    pub alias_rate: u32,
    /// How long a PeerConnection's alias stays after it ended, seconds, so that its flow
    /// still names its columns when someone opens it the next working day (then the alias
    /// is removed; the oldest ended go first when `max_aliases` is reached).
    pub alias_retention_s: u64,
}

impl Default for Homer {
    fn default() -> Self {
        Homer {
            api: String::new(),
            user: "admin".into(),
            password: String::new(),
            aliases: true,
            max_aliases: 5000,
            alias_rate: 5,
            alias_retention_s: 48 * 3600,
        }
    }
}

/// Metrics settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Serve `/metrics` and `/health`.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: HttpInput::default(),
            ws: WsInput::default(),
            mqtt: MqttInput::default(),
            amqp: AmqpInput::default(),
            limits: Limits::default(),
            output: vec![Output::new(
                CollectorUrl::parse("udp://127.0.0.1:9060").expect("a valid URL"),
            )],
            queue: Queue::default(),
            spool: Spool::default(),
            hep: Hep::default(),
            correlation: Correlation::default(),
            metrics: Metrics::default(),
            homer: Homer::default(),
            shutdown_timeout_ms: 5000,
        }
    }
}

impl Default for HttpInput {
    fn default() -> Self {
        HttpInput {
            enabled: true,
            listen: ([127, 0, 0, 1], 8090).into(),
            username: String::new(),
            password: String::new(),
            max_body_bytes: 4 << 20,
            max_decompressed_bytes: 8 << 20,
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

impl Default for WsInput {
    fn default() -> Self {
        WsInput {
            enabled: true,
            listen: ([127, 0, 0, 1], 8091).into(),
            max_message_bytes: 16 << 20,
            token: String::new(),
            require_subprotocol: false,
        }
    }
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            capacity: 65_536,
            max_bytes: crate::output::DEFAULT_QUEUE_BYTES,
            when_full: WhenFull::DropNewest,
        }
    }
}

impl Default for Hep {
    fn default() -> Self {
        Hep {
            capture_id: 2001,
            node_name: String::new(),
            auth_key: String::new(),
            sip_as_sip: true,
            max_age_s: 12 * 3600,
            max_ahead_s: 300,
            qos: Default::default(),
            payload: Default::default(),
        }
    }
}

impl Default for Correlation {
    fn default() -> Self {
        Correlation {
            fallback: Fallback::Session,
            hold_ms: 10_000,
            idle_s: 3600,
            max_handles: 200_000,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            enabled: true,
            listen: ([127, 0, 0, 1], 9466).into(),
        }
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

/// Command-line flags and environment variables of `serve` and `check`: each overrides
/// the file's setting of the same name.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// HTTP input address (`http.listen`); `off` disables it.
    #[arg(long, env = "HEPLINK_HTTP", value_name = "ADDR")]
    pub http: Option<String>,
    /// Basic auth user for the HTTP input (`http.username`).
    #[arg(long, env = "HEPLINK_HTTP_USERNAME")]
    pub http_username: Option<String>,
    /// Basic auth password for the HTTP input (`http.password`).
    #[arg(long, env = "HEPLINK_HTTP_PASSWORD", hide_env_values = true)]
    pub http_password: Option<String>,
    /// homer-app's API, for named columns and `homer check` (`homer.api`).
    #[arg(long, env = "HEPLINK_HOMER_API", value_name = "URL")]
    pub homer_api: Option<String>,
    /// The Homer API user (`homer.user`).
    #[arg(long, env = "HEPLINK_HOMER_USER")]
    pub homer_user: Option<String>,
    /// The Homer API password (`homer.password`).
    #[arg(long, env = "HEPLINK_HOMER_PASSWORD", hide_env_values = true)]
    pub homer_password: Option<String>,
    /// Largest HTTP body, bytes (`http.max_body_bytes`).
    #[arg(long, env = "HEPLINK_HTTP_MAX_BODY_BYTES")]
    pub http_max_body_bytes: Option<usize>,
    /// Largest body after gzip, bytes (`http.max_decompressed_bytes`).
    #[arg(long, env = "HEPLINK_HTTP_MAX_DECOMPRESSED_BYTES")]
    pub http_max_decompressed_bytes: Option<usize>,
    /// HTTPS certificate chain for the HTTP input (`http.tls_cert`).
    #[arg(long, env = "HEPLINK_HTTP_TLS_CERT", value_name = "FILE")]
    pub http_tls_cert: Option<String>,
    /// HTTPS key for the HTTP input (`http.tls_key`).
    #[arg(long, env = "HEPLINK_HTTP_TLS_KEY", value_name = "FILE")]
    pub http_tls_key: Option<String>,
    /// WebSocket input address (`ws.listen`); `off` disables it.
    #[arg(long, env = "HEPLINK_WS", value_name = "ADDR")]
    pub ws: Option<String>,
    /// Largest WebSocket message, bytes (`ws.max_message_bytes`).
    #[arg(long, env = "HEPLINK_WS_MAX_MESSAGE_BYTES")]
    pub ws_max_message_bytes: Option<usize>,
    /// Token wsevh must give in its URL query, `?token=…` (`ws.token`).
    #[arg(long, env = "HEPLINK_WS_TOKEN", hide_env_values = true)]
    pub ws_token: Option<String>,
    /// Refuse WebSocket upgrades without the janus-event-handlers subprotocol
    /// (`ws.require_subprotocol`).
    #[arg(long, env = "HEPLINK_WS_REQUIRE_SUBPROTOCOL")]
    pub ws_require_subprotocol: Option<bool>,
    /// MQTT broker to take mqttevh's events from: `mqtt://HOST:PORT` or `mqtts://…`
    /// (`mqtt.url`).
    #[arg(long, env = "HEPLINK_MQTT", value_name = "URL")]
    pub mqtt: Option<String>,
    /// MQTT topic filter, repeatable (`mqtt.topics`; default `/janus/events/#`).
    #[arg(
        long = "mqtt-topic",
        env = "HEPLINK_MQTT_TOPIC",
        value_name = "FILTER",
        value_delimiter = ','
    )]
    pub mqtt_topic: Vec<String>,
    /// MQTT protocol version (`mqtt.version`).
    #[arg(long, env = "HEPLINK_MQTT_VERSION", value_enum)]
    pub mqtt_version: Option<MqttVersion>,
    /// MQTT subscription QoS, 0 or 1 (`mqtt.qos`).
    #[arg(long, env = "HEPLINK_MQTT_QOS")]
    pub mqtt_qos: Option<u8>,
    /// MQTT client id (`mqtt.client_id`).
    #[arg(long, env = "HEPLINK_MQTT_CLIENT_ID")]
    pub mqtt_client_id: Option<String>,
    /// MQTT persistent session (`mqtt.persistent`).
    #[arg(long, env = "HEPLINK_MQTT_PERSISTENT")]
    pub mqtt_persistent: Option<bool>,
    /// MQTT user (`mqtt.username`).
    #[arg(long, env = "HEPLINK_MQTT_USERNAME")]
    pub mqtt_username: Option<String>,
    /// MQTT password (`mqtt.password`).
    #[arg(long, env = "HEPLINK_MQTT_PASSWORD", hide_env_values = true)]
    pub mqtt_password: Option<String>,
    /// RabbitMQ to take rabbitmqevh's events from: `amqp://USER:PASS@HOST:PORT/VHOST` or
    /// `amqps://…` (`amqp.url`).
    #[arg(long, env = "HEPLINK_AMQP", value_name = "URL", hide_env_values = true)]
    pub amqp: Option<String>,
    /// The queue to declare and consume; with partitions, their base name (`amqp.queue`).
    #[arg(long, env = "HEPLINK_AMQP_QUEUE", value_name = "NAME")]
    pub amqp_queue: Option<String>,
    /// An exchange to bind the queue to (`amqp.exchange`).
    #[arg(long, env = "HEPLINK_AMQP_EXCHANGE", value_name = "NAME")]
    pub amqp_exchange: Option<String>,
    /// Partition queues behind a consistent-hash exchange, for scale-out
    /// (`amqp.partitions`).
    #[arg(long, env = "HEPLINK_AMQP_PARTITIONS", value_name = "N")]
    pub amqp_partitions: Option<u16>,
    /// Unacknowledged messages at most, per queue (`amqp.prefetch`).
    #[arg(long, env = "HEPLINK_AMQP_PREFETCH", value_name = "N")]
    pub amqp_prefetch: Option<u16>,
    /// Most connections per input (`limits.max_connections`).
    #[arg(long, env = "HEPLINK_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most connections per input from one address (`limits.max_connections_per_peer`).
    #[arg(long, env = "HEPLINK_MAX_CONNECTIONS_PER_PEER")]
    pub max_connections_per_peer: Option<usize>,
    /// Time for a request head, ms (`limits.header_timeout_ms`).
    #[arg(long, env = "HEPLINK_HEADER_TIMEOUT_MS")]
    pub header_timeout_ms: Option<u64>,
    /// Idle time between requests, s (`limits.idle_timeout_s`).
    #[arg(long, env = "HEPLINK_IDLE_TIMEOUT_S")]
    pub idle_timeout_s: Option<u64>,
    /// Minimum request rate, bytes/s (`limits.min_rate_bytes`).
    #[arg(long, env = "HEPLINK_MIN_RATE_BYTES")]
    pub min_rate_bytes: Option<u64>,
    /// Body bytes in flight across HTTP connections (`limits.body_budget_bytes`).
    #[arg(long, env = "HEPLINK_BODY_BUDGET_BYTES")]
    pub body_budget_bytes: Option<usize>,
    /// A collector: `udp://HOST:PORT`, `tcp://HOST:PORT` or `tls://HOST:PORT`, with backups
    /// for failover as `tcp://a:9061|tcp://b:9061` (repeatable: every packet goes to each;
    /// replaces the file's `output`).
    #[arg(
        long = "to",
        env = "HEPLINK_TO",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub to: Vec<CollectorUrl>,
    /// UDP collectors: packets per second at most, 0 for unpaced (`output.udp_rate`).
    #[arg(long, env = "HEPLINK_UDP_RATE", value_name = "PACKETS")]
    pub udp_rate: Option<u32>,
    /// UDP collectors: packets that may leave at once (`output.udp_burst`).
    #[arg(long, env = "HEPLINK_UDP_BURST", value_name = "PACKETS")]
    pub udp_burst: Option<u32>,
    /// TCP/TLS collectors: seconds without write progress before a collector counts as
    /// stalled and its connection is replaced (`output.stall_s`).
    #[arg(long, env = "HEPLINK_STALL_S", value_name = "SECONDS")]
    pub stall_s: Option<u64>,
    /// TCP/TLS collectors: milliseconds within which the collector reads what its TCP
    /// acknowledged; more recent bytes are resent after a lost connection
    /// (`output.read_grace_ms`).
    #[arg(long, env = "HEPLINK_READ_GRACE_MS", value_name = "MS")]
    pub read_grace_ms: Option<u64>,
    /// Oldest event time sent as is, seconds before now; older events get the receive
    /// time (`hep.max_age_s`; 0: no limit).
    #[arg(long, env = "HEPLINK_MAX_AGE_S", value_name = "SECONDS")]
    pub max_age_s: Option<u64>,
    /// Latest event time sent as is, seconds after now (`hep.max_ahead_s`).
    #[arg(long, env = "HEPLINK_MAX_AHEAD_S", value_name = "SECONDS")]
    pub max_ahead_s: Option<u64>,
    /// Packets per collector queue (`queue.capacity`).
    #[arg(long, env = "HEPLINK_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Bytes per collector queue (`queue.max_bytes`).
    #[arg(long, env = "HEPLINK_QUEUE_MAX_BYTES")]
    pub queue_max_bytes: Option<usize>,
    /// Full-queue policy (`queue.when_full`).
    #[arg(long, env = "HEPLINK_WHEN_FULL", value_enum)]
    pub when_full: Option<WhenFull>,
    /// Spool directory for TCP/TLS collectors (`spool.dir`).
    #[arg(long, env = "HEPLINK_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<String>,
    /// Spool cap per collector, bytes (`spool.max_bytes`).
    #[arg(long, env = "HEPLINK_SPOOL_MAX_BYTES")]
    pub spool_max_bytes: Option<u64>,
    /// HEP capture id (`hep.capture_id`).
    #[arg(long, env = "HEPLINK_CAPTURE_ID")]
    pub capture_id: Option<u32>,
    /// HEP node name (`hep.node_name`).
    #[arg(long, env = "HEPLINK_NODE_NAME")]
    pub node_name: Option<String>,
    /// HEP auth key (`hep.auth_key`).
    #[arg(long, env = "HEPLINK_AUTH_KEY", hide_env_values = true)]
    pub auth_key: Option<String>,
    /// Send sip-in/sip-out as SIP packets (`hep.sip_as_sip`).
    #[arg(long, env = "HEPLINK_SIP_AS_SIP")]
    pub sip_as_sip: Option<bool>,
    /// QoS reports made of Janus media stats, for Homer's QoS tab (`hep.qos`).
    #[arg(long, env = "HEPLINK_QOS", value_parser = choice::<crate::map::qos::QosReports>())]
    pub qos: Option<crate::map::qos::QosReports>,
    /// The LOG payload's form: words then JSON, or JSON only (`hep.payload`).
    #[arg(long, env = "HEPLINK_PAYLOAD", value_parser = choice::<crate::map::LogFormat>())]
    pub payload: Option<crate::map::LogFormat>,
    /// Fallback grouping (`correlation.fallback`).
    #[arg(long, env = "HEPLINK_FALLBACK", value_parser = choice::<Fallback>())]
    pub fallback: Option<Fallback>,
    /// Hold time for unbound events, ms (`correlation.hold_ms`).
    #[arg(long, env = "HEPLINK_HOLD_MS")]
    pub hold_ms: Option<u64>,
    /// Idle expiry, s (`correlation.idle_s`).
    #[arg(long, env = "HEPLINK_IDLE_S")]
    pub idle_s: Option<u64>,
    /// Handle cap (`correlation.max_handles`).
    #[arg(long, env = "HEPLINK_MAX_HANDLES")]
    pub max_handles: Option<usize>,
    /// Metrics address (`metrics.listen`); `off` disables it.
    #[arg(long, env = "HEPLINK_METRICS", value_name = "ADDR")]
    pub metrics: Option<String>,
    /// TLS settings of `tls://` collectors given with --to (`output.tls`).
    #[command(flatten)]
    pub tls: crate::tls::TlsClientArgs,
    /// Shutdown drain time, ms (`shutdown_timeout_ms`).
    #[arg(long, env = "HEPLINK_SHUTDOWN_TIMEOUT_MS")]
    pub shutdown_timeout_ms: Option<u64>,
}

impl Overrides {
    /// Every other flag given replaces its key.
    fn apply_scalars(&self, c: &mut Config) {
        let o = self;
        macro_rules! set {
            ($($field:ident => $($path:ident).+;)*) => {
                $( if let Some(v) = &o.$field { c.$($path).+ = v.clone(); } )*
            };
        }
        set! {
            http_username => http.username;
            http_password => http.password;
            homer_api => homer.api;
            homer_user => homer.user;
            homer_password => homer.password;
            http_max_body_bytes => http.max_body_bytes;
            http_max_decompressed_bytes => http.max_decompressed_bytes;
            http_tls_cert => http.tls_cert;
            http_tls_key => http.tls_key;
            mqtt => mqtt.url;
            mqtt_version => mqtt.version;
            mqtt_qos => mqtt.qos;
            mqtt_client_id => mqtt.client_id;
            mqtt_persistent => mqtt.persistent;
            mqtt_username => mqtt.username;
            mqtt_password => mqtt.password;
            amqp => amqp.url;
            amqp_queue => amqp.queue;
            amqp_exchange => amqp.exchange;
            amqp_partitions => amqp.partitions;
            amqp_prefetch => amqp.prefetch;
            ws_max_message_bytes => ws.max_message_bytes;
            ws_token => ws.token;
            ws_require_subprotocol => ws.require_subprotocol;
            max_connections => limits.max_connections;
            max_connections_per_peer => limits.max_connections_per_peer;
            header_timeout_ms => limits.header_timeout_ms;
            idle_timeout_s => limits.idle_timeout_s;
            min_rate_bytes => limits.min_rate_bytes;
            body_budget_bytes => limits.body_budget_bytes;
            queue_capacity => queue.capacity;
            queue_max_bytes => queue.max_bytes;
            when_full => queue.when_full;
            spool_dir => spool.dir;
            spool_max_bytes => spool.max_bytes;
            capture_id => hep.capture_id;
            node_name => hep.node_name;
            auth_key => hep.auth_key;
            sip_as_sip => hep.sip_as_sip;
            qos => hep.qos;
            payload => hep.payload;
            max_age_s => hep.max_age_s;
            max_ahead_s => hep.max_ahead_s;
            fallback => correlation.fallback;
            hold_ms => correlation.hold_ms;
            idle_s => correlation.idle_s;
            max_handles => correlation.max_handles;
            shutdown_timeout_ms => shutdown_timeout_ms;
        }
    }

    /// `--to` replaces the configured collectors (each with the transport flags); without
    /// it, the flags given change every configured collector.
    fn apply_outputs(&self, outputs: &mut Vec<Output>) {
        let o = self;
        if !o.to.is_empty() {
            *outputs =
                o.to.iter()
                    .map(|u| Output {
                        tls: o.tls.settings(),
                        udp_rate: o.udp_rate.unwrap_or(DEFAULT_UDP_RATE),
                        udp_burst: o.udp_burst.unwrap_or(DEFAULT_UDP_BURST),
                        stall_s: o.stall_s.unwrap_or_else(default_stall_s),
                        read_grace_ms: o.read_grace_ms.unwrap_or_else(default_read_grace_ms),
                        ..Output::new(u.clone())
                    })
                    .collect();
            return;
        }
        for out in outputs {
            if o.tls.given() {
                out.tls = o.tls.settings();
            }
            out.udp_rate = o.udp_rate.unwrap_or(out.udp_rate);
            out.udp_burst = o.udp_burst.unwrap_or(out.udp_burst);
            out.stall_s = o.stall_s.unwrap_or(out.stall_s);
            out.read_grace_ms = o.read_grace_ms.unwrap_or(out.read_grace_ms);
        }
    }
}

fn addr_or_off(key: &'static str, v: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if v == "off" {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|e| ConfigError::Invalid {
        key,
        message: format!(
            "{v:?}: {e}; give an IP address and a port, e.g. 127.0.0.1:8090 or [::1]:8090 (host names are not resolved for listening), or off"
        ),
    })
}

/// A file a setting names must exist and be readable.
fn readable_file(key: &'static str, p: &Path) -> Result<(), ConfigError> {
    match std::fs::File::open(p) {
        Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => Ok(()),
        Ok(_) => Err(ConfigError::Invalid {
            key,
            message: format!("{} is not a file", p.display()),
        }),
        Err(e) => Err(ConfigError::Invalid {
            key,
            message: format!("cannot read {}: {e}", p.display()),
        }),
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
        toml::from_str(text).map_err(|e| {
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
        })
    }

    /// The file (if any), then the flags and environment variables, then validation.
    pub fn load(file: Option<&Path>, o: &Overrides) -> Result<Config, ConfigError> {
        let mut c = match file {
            Some(f) => Self::from_file(f)?,
            None => Config::default(),
        };
        let listeners = [
            (
                "http.listen (--http, HEPLINK_HTTP)",
                &o.http,
                &mut c.http.enabled,
                &mut c.http.listen,
            ),
            (
                "ws.listen (--ws, HEPLINK_WS)",
                &o.ws,
                &mut c.ws.enabled,
                &mut c.ws.listen,
            ),
            (
                "metrics.listen (--metrics, HEPLINK_METRICS)",
                &o.metrics,
                &mut c.metrics.enabled,
                &mut c.metrics.listen,
            ),
        ];
        for (key, given, enabled, listen) in listeners {
            if let Some(v) = given {
                match addr_or_off(key, v)? {
                    Some(a) => (*enabled, *listen) = (true, a),
                    None => *enabled = false,
                }
            }
        }
        if !o.mqtt_topic.is_empty() {
            c.mqtt.topics = o.mqtt_topic.clone();
        }
        o.apply_outputs(&mut c.output);
        o.apply_scalars(&mut c);
        c.validate()?;
        Ok(c)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, message: String| Err(ConfigError::Invalid { key, message });
        if self.output.is_empty() {
            return bad("output", "at least one collector is needed".into());
        }
        if self.queue.capacity == 0 {
            return bad("queue.capacity", "must be at least 1".into());
        }
        if self.queue.max_bytes < crate::output::MIN_QUEUE_BYTES {
            return bad(
                "queue.max_bytes",
                format!(
                    "must be at least {} (the largest HEP packet)",
                    crate::output::MIN_QUEUE_BYTES
                ),
            );
        }
        for (key, v) in [
            ("hep.node_name", &self.hep.node_name),
            ("hep.auth_key", &self.hep.auth_key),
        ] {
            if v.contains('"') || v.contains('\\') {
                return bad(
                    key,
                    "must not contain \" or \\ (heplify-server copies it into JSON unescaped)"
                        .into(),
                );
            }
        }
        if self.http.tls_cert.is_empty() != self.http.tls_key.is_empty() {
            return bad("http.tls_cert", "tls_cert and tls_key go together".into());
        }
        if self.http.username.is_empty() != self.http.password.is_empty() {
            return bad("http.username", "username and password go together".into());
        }
        for (key, v) in [
            ("limits.max_connections", self.limits.max_connections as u64),
            (
                "limits.max_connections_per_peer",
                self.limits.max_connections_per_peer as u64,
            ),
            ("limits.header_timeout_ms", self.limits.header_timeout_ms),
            ("limits.min_rate_bytes", self.limits.min_rate_bytes),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1".into());
            }
        }
        self.validate_paths()?;
        if self.limits.body_budget_bytes < self.http.max_body_bytes {
            return bad(
                "limits.body_budget_bytes",
                format!(
                    "must be at least http.max_body_bytes ({}), or no body that size could be read",
                    self.http.max_body_bytes
                ),
            );
        }
        self.validate_exposure()?;
        self.mqtt.validate()?;
        self.amqp.validate()?;
        if !self.http.enabled
            && !self.ws.enabled
            && self.mqtt.url.is_empty()
            && self.amqp.url.is_empty()
        {
            return bad("http.enabled", "no input enabled".into());
        }
        Ok(())
    }

    /// An input open to the network beside one that is locked is an open door: refused.
    fn validate_exposure(&self) -> Result<(), ConfigError> {
        let http_locked = self.http.enabled && !self.http.username.is_empty();
        let ws_locked = self.ws.enabled && !self.ws.token.is_empty();
        if self.ws.enabled && !ws_locked && http_locked && !self.ws.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                key: "ws.token",
                message: format!(
                    "the WebSocket input listens on {} without a token while the HTTP input requires credentials: anyone who can reach it could post events. Set ws.token (--ws-token, and ?token=… in wsevh's backend URL), or listen on 127.0.0.1",
                    self.ws.listen
                ),
            });
        }
        if self.http.enabled && !http_locked && ws_locked && !self.http.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                key: "http.username",
                message: format!(
                    "the HTTP input listens on {} without credentials while the WebSocket input requires a token: anyone who can reach it could post events. Set http.username and http.password (sampleevh's backend_user / backend_pwd), or listen on 127.0.0.1",
                    self.http.listen
                ),
            });
        }
        Ok(())
    }

    /// What `check` and `serve` warn of: inputs that listen beyond loopback without
    /// credentials.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.http.enabled
            && self.http.username.is_empty()
            && !self.http.listen.ip().is_loopback()
        {
            w.push(format!("the HTTP input listens on {} without credentials (http.username / http.password): anyone who can reach it can post events", self.http.listen));
        }
        if self.ws.enabled && self.ws.token.is_empty() && !self.ws.listen.ip().is_loopback() {
            w.push(format!("the WebSocket input listens on {} without a token (ws.token): anyone who can reach it can send events", self.ws.listen));
        }
        w
    }

    /// The files and directories the settings name: checked here, so that `check` finds
    /// them and `serve` fails at start naming the setting.
    fn validate_paths(&self) -> Result<(), ConfigError> {
        if !self.http.tls_cert.is_empty() {
            readable_file(
                "http.tls_cert (--http-tls-cert)",
                Path::new(&self.http.tls_cert),
            )?;
            readable_file(
                "http.tls_key (--http-tls-key)",
                Path::new(&self.http.tls_key),
            )?;
        }
        for o in &self.output {
            for (key, f) in [
                ("output.tls.ca_file (--tls-ca)", &o.tls.ca_file),
                ("output.tls.cert_file (--tls-cert)", &o.tls.cert_file),
                ("output.tls.key_file (--tls-key)", &o.tls.key_file),
            ] {
                if let Some(p) = f {
                    readable_file(key, p)?;
                }
            }
        }
        if !self.spool.dir.is_empty() {
            let d = Path::new(&self.spool.dir);
            let usable = if d.exists() {
                d.is_dir()
            } else {
                // It will be created: its nearest existing ancestor must be a directory.
                d.ancestors()
                    .skip(1)
                    .find(|a| a.exists())
                    .is_some_and(Path::is_dir)
            };
            if !usable {
                return Err(ConfigError::Invalid {
                    key: "spool.dir (--spool-dir)",
                    message: format!("{} is not a directory and cannot be created", d.display()),
                });
            }
        }
        Ok(())
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
        let o = Overrides {
            http: Some("127.0.0.1:7000".into()),
            ws: Some("off".into()),
            to: vec![
                "tcp://127.0.0.1:9061".parse().unwrap(),
                "udp://[::1]:9060".parse().unwrap(),
            ],
            hold_ms: Some(250),
            node_name: Some("janus-a".into()),
            ..Default::default()
        };
        let c = Config::load(None, &o).unwrap();
        assert_eq!(c.http.listen.port(), 7000);
        assert!(!c.ws.enabled);
        assert_eq!(c.output.len(), 2);
        assert_eq!(c.correlation.hold_ms, 250);
        assert_eq!(c.hep.node_name, "janus-a");
        let bad = Overrides {
            node_name: Some("a\"b".into()),
            ..Default::default()
        };
        assert!(Config::load(None, &bad)
            .unwrap_err()
            .to_string()
            .contains("hep.node_name"));
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
