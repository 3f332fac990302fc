//! Sending HEP to collectors: one bounded queue and one task per collector.
//!
//! - UDP: one packet per datagram; packets above the MTU are sent with a warning.
//! - TCP and TLS ([`tcp`](self) senders over [`conn`](self) connections): packets back to
//!   back (heplify-server frames them by the HEP length), written in batches; a closed peer
//!   is noticed before writing; reconnection with capped exponential backoff and jitter.
//!   What counts as sent, what is written again after a lost connection (at least once,
//!   duplicates bounded), stalls and failback are decided by the sans-IO [`delivery`]
//!   state machine from `TCP_INFO` facts.

mod conn;
pub mod delivery;
pub mod pace;
mod progress;
mod queue;
pub mod spool;
mod tcp;
mod tcp_facts;
mod udp;

pub use progress::Progress;
pub(crate) use queue::QueueRx;
pub use queue::{Queue, DEFAULT_QUEUE_BYTES, MIN_QUEUE_BYTES};
pub use tcp::RESEND_WINDOW;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::telemetry::{Collector, Emit};

/// What a collector's sender counts through (the seam the caller installs: the agent's
/// metrics registry, or nothing) and the collector's name in its log lines.
#[derive(Debug)]
pub(crate) struct Counts {
    /// The collector's URL, as its log lines name it.
    pub(crate) url: String,
    emit: Arc<dyn Emit<Collector>>,
}

impl Counts {
    /// Counts of the collector `url` into `emit`.
    pub(crate) fn new(url: String, emit: Arc<dyn Emit<Collector>>) -> Counts {
        Counts { url, emit }
    }
}

impl Emit<Collector> for Counts {
    fn add(&self, key: Collector, n: u64) {
        self.emit.add(key, n);
    }
    fn sub(&self, key: Collector, n: u64) {
        self.emit.sub(key, n);
    }
    fn set(&self, key: Collector, v: u64) {
        self.emit.set(key, v);
    }
    fn error(&self, key: Collector, error: &dyn std::fmt::Display) {
        self.emit.error(key, error);
    }
}

/// What happens when a collector's queue is full.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Drop the new packet and count it (inputs never wait on a collector).
    DropNewest,
    /// Wait for room: inputs slow down (HTTP answers later, WebSocket reads pause).
    Block,
}

/// The transport of a collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `udp://`.
    Udp,
    /// `tcp://`.
    Tcp,
    /// `tls://`: TCP framing inside TLS.
    Tls,
}

/// A collector URL, parsed once where it is read (the configuration file, `--to`,
/// `HEPLINK_TO`); written back as `scheme://HOST:PORT[|backup…]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CollectorUrl {
    /// The transport.
    pub transport: Transport,
    /// `HOST:PORT` as written (a host name is resolved when connecting).
    pub address: String,
    /// Backup collectors, in order of preference (`tcp://a:9061|tcp://b:9061`): used while
    /// the ones before them cannot be reached.
    pub failover: Vec<CollectorUrl>,
}

/// A collector URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("collector URL {url:?}: {message}")]
pub struct UrlError {
    url: String,
    message: &'static str,
}

impl std::fmt::Display for CollectorUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        };
        write!(f, "{scheme}://{}", self.address)?;
        for b in &self.failover {
            write!(f, "|{b}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for CollectorUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, UrlError> {
        CollectorUrl::parse(s)
    }
}

impl TryFrom<String> for CollectorUrl {
    type Error = UrlError;
    fn try_from(s: String) -> Result<Self, UrlError> {
        CollectorUrl::parse(&s)
    }
}

impl From<CollectorUrl> for String {
    fn from(u: CollectorUrl) -> String {
        u.to_string()
    }
}

impl CollectorUrl {
    /// Whether packets go over UDP.
    pub fn is_udp(&self) -> bool {
        self.transport == Transport::Udp
    }

    /// The host part (for TLS verification and SNI).
    pub fn host(&self) -> &str {
        self.address
            .rsplit_once(':')
            .map_or(&self.address, |(h, _)| h)
    }

    /// Parses `udp://HOST:PORT`, `tcp://HOST:PORT` or `tls://HOST:PORT`, optionally
    /// followed by backups: `tcp://a:9061|tcp://b:9061` (TCP/TLS only, same transport).
    pub fn parse(url: &str) -> Result<CollectorUrl, UrlError> {
        let mut parts = url.split('|');
        let mut main = Self::parse_one(parts.next().unwrap_or(""))?;
        for b in parts {
            let b = Self::parse_one(b)?;
            if main.transport == Transport::Udp || b.transport != main.transport {
                return Err(UrlError {
                    url: url.into(),
                    message: "failover needs TCP or TLS collectors of one transport",
                });
            }
            main.failover.push(b);
        }
        Ok(main)
    }

    fn parse_one(url: &str) -> Result<CollectorUrl, UrlError> {
        let err = |message| UrlError {
            url: url.into(),
            message,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| err("expected udp://HOST:PORT or tcp://HOST:PORT"))?;
        let transport = match scheme {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            _ => return Err(err("the scheme must be udp, tcp or tls")),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| err("a port is required"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(err("expected HOST:PORT"));
        }
        Ok(CollectorUrl {
            transport,
            address: rest.into(),
            failover: Vec::new(),
        })
    }
}

/// How a collector's queue and sender behave.
#[derive(Debug, Clone, Copy)]
pub struct SendOptions {
    /// Packets the queue holds.
    pub capacity: usize,
    /// Bytes the queue holds (at least [`MIN_QUEUE_BYTES`]).
    pub max_bytes: usize,
    /// The full policy.
    pub policy: WhenFull,
    /// UDP: warn above this size.
    pub mtu: usize,
    /// TCP/TLS without spool: a collector that closes cleanly (FIN, not a reset) once
    /// everything is written has received it (one-shot senders like `replay`); otherwise
    /// the last [`RESEND_WINDOW`] is sent again on the next connection.
    pub fin_confirms: bool,
    /// On a backup collector, how often to look whether the preferred one is back.
    pub failback: Duration,
    /// TCP/TLS: a write that makes no progress for this long means the collector stopped
    /// reading: the connection is replaced.
    pub stall: Duration,
    /// TCP/TLS: the collector reads what its TCP acknowledged within this time (see
    /// [`delivery`]).
    pub read_grace: Duration,
    /// UDP: packets per second (0: unpaced), see [`pace::Pacer`].
    pub udp_rate: u32,
    /// UDP: packets that may go at once before the rate applies.
    pub udp_burst: u32,
}

/// Starts the task of one collector; returns its queue (with the collector's
/// [`Progress`], [`Queue::progress`]) and the task. `tls` applies to `tls://` collectors;
/// the sender counts through `telemetry`.
pub fn spawn(
    url: CollectorUrl,
    opts: SendOptions,
    tls: &crate::tls::TlsClient,
    spool: Option<crate::output::spool::Spool>,
    telemetry: Arc<dyn Emit<Collector>>,
) -> Result<(Queue, tokio::task::JoinHandle<()>), crate::tls::TlsError> {
    let SendOptions {
        capacity,
        max_bytes,
        policy,
        mtu,
        fin_confirms,
        failback,
        udp_rate,
        udp_burst,
        stall,
        read_grace,
    } = opts;
    let m = Arc::new(Counts::new(url.to_string(), telemetry));
    let (queue, rx) = queue::queue(capacity, max_bytes, policy, m.clone(), Arc::default());
    let mut targets: Vec<(String, conn::Tls)> = Vec::new();
    for u in std::iter::once(&url).chain(url.failover.iter()) {
        let tls = match u.transport {
            Transport::Tls => {
                let (cfg, name) = crate::tls::client(tls, u.host())?;
                Some((tokio_rustls::TlsConnector::from(cfg), name))
            }
            _ => None,
        };
        targets.push((u.address.clone(), tls));
    }
    let task = match (url.transport, spool) {
        (Transport::Udp, _) => {
            let pacer = pace::Pacer::new(udp_rate, udp_burst, std::time::Instant::now());
            tokio::spawn(udp::run_udp(url.address, rx, mtu, pacer, m))
        }
        (_, None) => tokio::spawn(tcp::run_tcp(
            targets,
            rx,
            fin_confirms,
            failback,
            (stall, read_grace),
            m,
        )),
        (_, Some(sp)) => tokio::spawn(tcp::run_spooled(
            targets,
            rx,
            failback,
            (stall, read_grace),
            m,
            sp,
        )),
    };
    Ok((queue, task))
}

async fn resolve(address: &str) -> std::io::Result<SocketAddr> {
    tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

/// Capped exponential backoff with ±25% jitter: 100 ms, 200 ms, … up to 5 s.
#[derive(Debug)]
pub struct Backoff {
    next_ms: u64,
    seed: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Backoff { next_ms: 100, seed }
    }
}

impl Backoff {
    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        // xorshift: jitter needs no cryptographic randomness.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let base = self.next_ms;
        self.next_ms = (self.next_ms * 2).min(5000);
        let jitter = (self.seed % (base / 2 + 1)) as i64 - (base / 4) as i64;
        Duration::from_millis((base as i64 + jitter).max(1) as u64)
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.next_ms = 100;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            CollectorUrl::parse("udp://127.0.0.1:9060").unwrap(),
            CollectorUrl {
                transport: Transport::Udp,
                address: "127.0.0.1:9060".into(),
                failover: vec![]
            }
        );
        assert_eq!(
            CollectorUrl::parse("tcp://homer.example:9061/")
                .unwrap()
                .address,
            "homer.example:9061"
        );
        assert_eq!(
            CollectorUrl::parse("tcp://[::1]:9061").unwrap().address,
            "[::1]:9061"
        );
        for bad in [
            "127.0.0.1:9060",
            "http://x:1",
            "udp://x",
            "udp://:1",
            "udp://x:99999",
            "wss://x:1",
        ] {
            assert!(CollectorUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_grows_capped_with_jitter() {
        let mut b = Backoff::default();
        let d: Vec<u64> = (0..10).map(|_| b.next_delay().as_millis() as u64).collect();
        assert!((75..=125).contains(&d[0]), "{d:?}");
        assert!((150..=250).contains(&d[1]), "{d:?}");
        assert!(d[9] <= 6250 && d[9] >= 3750, "{d:?}");
        b.reset();
        assert!(b.next_delay().as_millis() <= 125);
    }
}
