//! The tables of the configuration file but the brokers' (`brokers.rs`) and the
//! collectors' TLS (`crate::tls::TlsClient`): each key once, with its flag and default
//! (see [`crate::settings`]).

use std::net::SocketAddr;

use crate::correlate::Fallback;
use crate::map::qos::QosReports;
use crate::map::LogFormat;
use crate::output::{CollectorUrl, WhenFull};
use crate::settings::{heading, section};
use crate::tls::TlsClient;

/// A listener's flag: an address, or `off` (no listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Not listening.
    Off,
    /// Listening here.
    At(SocketAddr),
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(v: &str) -> Result<Listen, String> {
        if v == "off" {
            return Ok(Listen::Off);
        }
        v.parse().map(Listen::At).map_err(|e| {
            format!(
                "{v:?}: {e}; give an IP address and a port, e.g. 127.0.0.1:8090 or [::1]:8090 (host names are not resolved for listening), or off"
            )
        })
    }
}

impl Listen {
    /// Sets an input's `enabled` and `listen` keys.
    fn set(self, enabled: &mut bool, listen: &mut SocketAddr) {
        match self {
            Listen::Off => *enabled = false,
            Listen::At(a) => (*enabled, *listen) = (true, a),
        }
    }
}

crate::settings::parsed!(Listen);

section! {
    /// HTTP input settings (Janus's sample event handler, `janus.eventhandler.sampleevh`).
    pub struct HttpInput {
        /// Whether the HTTP input listens for POSTs.
        #[flag("http-enabled")]
        pub enabled: bool = true,
        /// The HTTP input's address; the flag also takes `off` (no HTTP input).
        #[flag("http", value_name = "ADDR")]
        #[via(Listen, |s, v| v.set(&mut s.enabled, &mut s.listen))]
        pub listen: SocketAddr = ([127, 0, 0, 1], 8090).into(),
        /// Basic auth user of the HTTP input (Janus's `backend_user`); none when empty.
        #[flag("http-username")]
        pub username: String = String::new(),
        /// Basic auth password of the HTTP input (Janus's `backend_pwd`).
        #[flag("http-password", hide_env_values = true)]
        pub password: String = String::new(),
        /// Largest HTTP request body accepted, bytes (413 beyond).
        #[flag("http-max-body-bytes")]
        pub max_body_bytes: usize = 4 << 20,
        /// Largest HTTP body after gzip decompression, bytes (413 beyond; gzip bombs stop
        /// here).
        #[flag("http-max-decompressed-bytes")]
        pub max_decompressed_bytes: usize = 8 << 20,
        /// HTTPS: the HTTP input's certificate chain (PEM); empty: plain HTTP.
        #[flag("http-tls-cert", value_name = "FILE")]
        pub tls_cert: String = String::new(),
        /// HTTPS: the HTTP input's key (PEM).
        #[flag("http-tls-key", value_name = "FILE")]
        pub tls_key: String = String::new(),
    }
}

section! {
    /// WebSocket input settings (Janus's `janus.eventhandler.wsevh`).
    pub struct WsInput {
        /// Whether the WebSocket input accepts wsevh connections.
        #[flag("ws-enabled")]
        pub enabled: bool = true,
        /// The WebSocket input's address; the flag also takes `off` (no WebSocket input).
        #[flag("ws", value_name = "ADDR")]
        #[via(Listen, |s, v| v.set(&mut s.enabled, &mut s.listen))]
        pub listen: SocketAddr = ([127, 0, 0, 1], 8091).into(),
        /// Largest WebSocket message accepted, bytes (closed with code 1009 beyond).
        #[flag("ws-max-message-bytes")]
        pub max_message_bytes: usize = 16 << 20,
        /// A token wsevh must give in its URL query (`ws://host:port/?token=…`, set in
        /// its `backend`); empty: no authentication. When set, the HTTP input's Basic
        /// auth (if on) is accepted instead too.
        #[flag("ws-token", hide_env_values = true)]
        pub token: String = String::new(),
        /// Refuse WebSocket upgrades that do not ask for the `janus-event-handlers`
        /// subprotocol.
        #[flag("ws-require-subprotocol")]
        pub require_subprotocol: bool = false,
    }
}

section! {
    /// Limits on the inputs' connections (each of HTTP and WebSocket has its own counts).
    pub struct Limits {
        /// Most connections open at once per input; beyond, new ones are closed at once.
        #[flag("max-connections")]
        pub max_connections: usize = 4096,
        /// Most connections open at once from one address, per input.
        #[flag("max-connections-per-peer")]
        pub max_connections_per_peer: usize = 512,
        /// Time a new connection has to send its request head, ms (the base of every
        /// request's time too).
        #[flag("header-timeout-ms")]
        pub header_timeout_ms: u64 = 10_000,
        /// Idle time allowed between two requests on a keep-alive HTTP connection, s.
        #[flag("idle-timeout-s")]
        pub idle_timeout_s: u64 = 60,
        /// Bytes per second a request must keep up once started (slower ones are closed).
        #[flag("min-rate-bytes")]
        pub min_rate_bytes: u64 = 16 << 10,
        /// Body bytes in flight across all HTTP connections (compressed and
        /// decompressed); requests wait for room, then get 503.
        #[flag("body-budget-bytes")]
        pub body_budget_bytes: usize = 32 << 20,
    }
}

/// Default UDP pace: a receiver that keeps Linux's default 208 KiB buffer (about 90
/// queued packets of Janus's size) and reads 20,000 packets/s loses none of it.
pub const DEFAULT_UDP_RATE: u32 = 15_000;

/// Default UDP burst: well below what a default receive buffer holds (about 90 packets
/// up to 1.4 KB, each taking 2,304 bytes of it, and fewer of the larger SDP-carrying ones).
pub const DEFAULT_UDP_BURST: u32 = 32;

section! {
    /// One collector (`[[output]]`; the flags apply to every collector).
    pub struct Output {
        /// A collector: `udp://HOST:PORT`, `tcp://HOST:PORT` or `tls://HOST:PORT`, with
        /// backups for failover as `tcp://a:9061|tcp://b:9061`. The flag is repeatable
        /// (every packet goes to each) and replaces the file's collectors.
        #[flag("to", value_name = "URL")]
        #[via(Vec<CollectorUrl>, |_, _| ())] // the list's: see `Section for Vec<Output>`
        pub url: CollectorUrl = CollectorUrl::parse("udp://127.0.0.1:9060").expect("a valid URL"),
        /// UDP packets above this size are still sent, with a warning (IP fragmentation).
        #[flag("mtu")]
        pub mtu: usize = 1472,
        /// With backups (`url = "tcp://a:9061|tcp://b:9061"`): how often, in seconds, a
        /// sender on a backup looks whether the preferred collector is back.
        #[flag("failback-s", value_name = "SECONDS")]
        pub failback_s: u64 = 30,
        /// UDP collectors: packets per second at most (0: unpaced). A collector that keeps
        /// the kernel's default receive buffer loses what a burst puts beyond it.
        #[flag("udp-rate", value_name = "PACKETS")]
        pub udp_rate: u32 = DEFAULT_UDP_RATE,
        /// UDP collectors: packets that may leave at once before `udp_rate` applies.
        #[flag("udp-burst", value_name = "PACKETS")]
        pub udp_burst: u32 = DEFAULT_UDP_BURST,
        /// TCP/TLS collectors: seconds without write progress after which the collector
        /// counts as stalled (stopped reading) and the connection is replaced.
        #[flag("stall-s", value_name = "SECONDS")]
        pub stall_s: u64 = 10,
        /// TCP/TLS collectors: milliseconds within which the collector reads what its TCP
        /// acknowledged. What was acknowledged more recently is written again if the
        /// connection is lost (see `output::delivery`): higher for a collector that reads
        /// late, more duplicates. The default, 250 ms: an ordinary collector process on a
        /// loaded machine waits tens of milliseconds for a core (measured: at 25 ms, a
        /// collector SIGKILLed every 0.8 s on a busy 2-core machine lost 5% of the events,
        /// read by its TCP but not by it).
        #[flag("read-grace-ms", value_name = "MS")]
        pub read_grace_ms: u64 = 250,
        #[table(skip_serializing_if = "crate::settings::is_default")]
        /// TLS settings (for `tls://`).
        pub tls: TlsClient,
    }
}

impl Output {
    /// A collector at `url` with every other setting at its default.
    pub fn new(url: CollectorUrl) -> Output {
        Output {
            url,
            ..Default::default()
        }
    }
}

/// The collectors: `--to` replaces the file's, then the other flags set each.
impl crate::settings::Section for Vec<Output> {
    fn keys(prefix: &str, out: &mut Vec<crate::settings::Key>) {
        Output::keys(prefix, out)
    }
    fn args(cmd: clap::Command, prefix: &str) -> clap::Command {
        // An array of tables: `[[output]]`, not `[output]`.
        let table = heading(prefix);
        let list = table.as_deref().map_or_else(String::new, |t| {
            t.replacen('[', "[[", 1).replacen(']', "]]", 1)
        });
        Output::args(cmd, prefix).mut_args(|a| match a.get_help_heading() == table.as_deref() {
            true => a.help_heading(list.clone()),
            false => a,
        })
    }

    fn apply(&mut self, m: &clap::ArgMatches) {
        if let Some(urls) = crate::settings::given::<Vec<CollectorUrl>>(m, "to") {
            *self = urls.into_iter().map(Output::new).collect();
        }
        for o in self {
            o.apply(m);
        }
    }
}

section! {
    /// The queue between mapping and sending (one per collector).
    pub struct Queue {
        /// Packets per collector queue.
        #[flag("queue-capacity")]
        pub capacity: usize = 65_536,
        /// Bytes per collector queue: full at either bound.
        #[flag("queue-max-bytes")]
        pub max_bytes: usize = crate::output::DEFAULT_QUEUE_BYTES,
        /// What happens when a collector's queue is full.
        #[flag("when-full")]
        pub when_full: WhenFull = WhenFull::DropNewest,
    }
}

section! {
    /// Disk spool settings: what TCP/TLS collectors have not confirmed survives outages
    /// and agent restarts. (UDP has no delivery to confirm: no spool.)
    pub struct Spool {
        /// The spool's directory (one subdirectory per collector); empty: no spool.
        #[flag("spool-dir", value_name = "DIR")]
        pub dir: String = String::new(),
        /// Most bytes the spool keeps per collector; beyond it the oldest are dropped
        /// (counted).
        #[flag("spool-max-bytes")]
        pub max_bytes: u64 = 1 << 30,
    }
}

section! {
    /// HEP header settings.
    pub struct Hep {
        /// HEP capture agent id (chunk 0x000c).
        #[flag("capture-id")]
        pub capture_id: u32 = 2001,
        /// HEP node name (chunk 0x0013); empty uses the Janus `emitter`.
        #[flag("node-name")]
        pub node_name: String = String::new(),
        /// HEP auth key (chunk 0x000e; heplify-server stores it in clear and never checks
        /// it).
        #[flag("auth-key", hide_env_values = true)]
        pub auth_key: String = String::new(),
        /// Send SIP plugin `sip-in`/`sip-out` messages as SIP (type 1) packets.
        #[flag("sip-as-sip")]
        pub sip_as_sip: bool = true,
        /// Oldest event time sent as it is, seconds before the agent's clock; an older
        /// event is sent with its receive time (counted; its own time stays in the
        /// payload). 0: no limit. The default keeps heplify-server's daily partitions
        /// (yesterday to tomorrow).
        #[flag("max-age-s", value_name = "SECONDS")]
        pub max_age_s: u64 = 12 * 3600,
        /// Latest event time sent as it is, seconds after the agent's clock.
        #[flag("max-ahead-s", value_name = "SECONDS")]
        pub max_ahead_s: u64 = 300,
        /// QoS reports made of Janus media stats, besides their LOG rows: `rtcp_rtp` (RTCP
        /// JSON, type 5, and for audio rtpagent reports with a MOS, type 34), `rtcp`, or
        /// `off`.
        #[flag("qos")]
        pub qos: QosReports = Default::default(),
        /// The LOG payload's form: `words` (the label as a line of words, then the JSON:
        /// homer-ui previews the first 50 characters) or `json` (the JSON only).
        #[flag("payload")]
        pub payload: LogFormat = Default::default(),
    }
}

section! {
    /// Correlation settings.
    pub struct Correlation {
        /// Grouping of events that belong to no room or call.
        #[flag("fallback")]
        pub fallback: Fallback = Fallback::Session,
        /// How long events wait for their handle's binding, milliseconds.
        #[flag("hold-ms")]
        pub hold_ms: u64 = 10_000,
        /// Inactivity after which correlation state is forgotten, seconds.
        #[flag("idle-s")]
        pub idle_s: u64 = 3600,
        /// Most handles tracked per Janus instance.
        #[flag("max-handles")]
        pub max_handles: usize = 200_000,
    }
}

section! {
    /// Homer's REST API settings (homer-app v3): named columns, `heplink homer check`.
    pub struct Homer {
        /// homer-app's base URL (`http://homer:9080`); empty: no API use (no aliases).
        #[flag("homer-api", value_name = "URL")]
        pub api: String = String::new(),
        /// The Homer API user (an admin: aliases need one).
        #[flag("homer-user")]
        pub user: String = "admin".into(),
        /// The Homer API password.
        #[flag("homer-password", hide_env_values = true)]
        pub password: String = String::new(),
        /// Keep Homer's aliases for Janus's addresses and each live PeerConnection's
        /// client.
        #[flag("homer-aliases")]
        pub aliases: bool = true,
        /// Most Homer aliases the agent keeps.
        #[flag("homer-max-aliases")]
        pub max_aliases: usize = 5000,
        /// Most Homer alias changes a second.
        #[flag("homer-alias-rate")]
        pub alias_rate: u32 = 5,
        /// How long a PeerConnection's alias stays after it ended, seconds, so that its
        /// flow still names its columns when someone opens it the next working day (then
        /// the alias is removed; the oldest ended go first when `max_aliases` is reached).
        #[flag("homer-alias-retention-s", value_name = "SECONDS")]
        pub alias_retention_s: u64 = 48 * 3600,
    }
}

section! {
    /// Prometheus `/metrics` and `/health`.
    pub struct Metrics {
        /// Whether `/metrics` and `/health` are served.
        #[flag("metrics-enabled")]
        pub enabled: bool = true,
        /// The address of `/metrics` and `/health`; the flag also takes `off` (none).
        #[flag("metrics", value_name = "ADDR")]
        #[via(Listen, |s, v| v.set(&mut s.enabled, &mut s.listen))]
        pub listen: SocketAddr = ([127, 0, 0, 1], 9466).into(),
    }
}
