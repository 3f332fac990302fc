//! Sending HEP to collectors: one bounded queue and one task per collector.
//!
//! - UDP: one packet per datagram; packets above the MTU are sent with a warning.
//! - TCP: packets back to back (heplify-server frames them by the HEP length), written in
//!   batches; a closed peer is noticed before writing; reconnection with capped
//!   exponential backoff and jitter; the batch being written when a connection fails is
//!   written again on the next one (at least once).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::config::WhenFull;
use crate::metrics::CollectorMetrics;

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

/// A parsed collector URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorUrl {
    /// The transport.
    pub transport: Transport,
    /// `HOST:PORT` as written (a host name is resolved when connecting).
    pub address: String,
}

/// A collector URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("collector URL {url:?}: {message}")]
pub struct UrlError {
    url: String,
    message: &'static str,
}

impl CollectorUrl {
    /// The host part (for TLS verification and SNI).
    pub fn host(&self) -> &str {
        self.address
            .rsplit_once(':')
            .map_or(&self.address, |(h, _)| h)
    }

    /// Parses `udp://HOST:PORT`, `tcp://HOST:PORT` or `tls://HOST:PORT`.
    pub fn parse(url: &str) -> Result<CollectorUrl, UrlError> {
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
        })
    }
}

/// The sending end of one collector's queue.
#[derive(Debug, Clone)]
pub struct Queue {
    tx: mpsc::Sender<Bytes>,
    policy: WhenFull,
    metrics: Arc<CollectorMetrics>,
}

impl Queue {
    /// Queues a packet according to the full policy; false when it was dropped.
    pub async fn push(&self, packet: Bytes) -> bool {
        let ok = match self.policy {
            WhenFull::DropNewest => match self.tx.try_send(packet) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.metrics.dropped_queue_full.fetch_add(1, Relaxed);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
            WhenFull::Block => self.tx.send(packet).await.is_ok(),
        };
        if ok {
            self.metrics.queue_depth.fetch_add(1, Relaxed);
        }
        ok
    }

    /// The collector's metrics.
    pub fn metrics(&self) -> &Arc<CollectorMetrics> {
        &self.metrics
    }
}

/// Starts the task of one collector; returns its queue and the task. `tls` applies to
/// `tls://` collectors.
pub fn spawn(
    url: CollectorUrl,
    capacity: usize,
    policy: WhenFull,
    mtu: usize,
    tls: &crate::tls::TlsClient,
    metrics: Arc<CollectorMetrics>,
) -> Result<(Queue, tokio::task::JoinHandle<()>), crate::tls::TlsError> {
    let (tx, rx) = mpsc::channel(capacity);
    let m = metrics.clone();
    let task = match url.transport {
        Transport::Udp => tokio::spawn(run_udp(url.address, rx, mtu, m)),
        Transport::Tcp => tokio::spawn(run_tcp(url.address, rx, None, m)),
        Transport::Tls => {
            let (cfg, name) = crate::tls::client(tls, url.host())?;
            let connector = tokio_rustls::TlsConnector::from(cfg);
            tokio::spawn(run_tcp(url.address, rx, Some((connector, name)), m))
        }
    };
    Ok((
        Queue {
            tx,
            policy,
            metrics,
        },
        task,
    ))
}

/// A collector connection: plain TCP or TLS over TCP.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    /// Whether the collector is still there, closed cleanly, or dropped data.
    async fn peer(&mut self) -> Peer {
        match self {
            Conn::Plain(s) => peer_state(s),
            Conn::Tls(s) => {
                // No peeking inside TLS: a read that would wait means the peer is there.
                use tokio::io::AsyncReadExt;
                let mut b = [0u8; 256];
                loop {
                    match tokio::time::timeout(Duration::ZERO, s.read(&mut b)).await {
                        Err(_) => return peer_state(s.get_ref().0),
                        Ok(Ok(0)) => return Peer::Closed,
                        // A FIN without TLS close_notify: closed after reading.
                        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            return Peer::Closed
                        }
                        Ok(Err(_)) => return Peer::Lost,
                        Ok(Ok(_)) => continue,
                    }
                }
            }
        }
    }

    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(b).await,
            Conn::Tls(s) => {
                s.write_all(b).await?;
                s.flush().await
            }
        }
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Conn::Plain(s) => s.shutdown().await,
            Conn::Tls(s) => s.shutdown().await,
        };
    }
}

type Tls = Option<(
    tokio_rustls::TlsConnector,
    rustls::pki_types::ServerName<'static>,
)>;

async fn connect(address: &str, tls: &Tls) -> std::io::Result<Conn> {
    let s = TcpStream::connect(resolve(address).await?).await?;
    let _ = s.set_nodelay(true);
    match tls {
        None => Ok(Conn::Plain(s)),
        Some((c, name)) => Ok(Conn::Tls(Box::new(c.connect(name.clone(), s).await?))),
    }
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

async fn run_udp(
    address: String,
    mut rx: mpsc::Receiver<Bytes>,
    mtu: usize,
    m: Arc<CollectorMetrics>,
) {
    let mut backoff = Backoff::default();
    let sock = loop {
        let bound = async {
            let to = resolve(&address).await?;
            let local: SocketAddr = if to.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let s = UdpSocket::bind(local).await?;
            s.connect(to).await?;
            Ok::<_, std::io::Error>(s)
        };
        match bound.await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(collector = %address, error = %e, "Cannot set up the UDP collector, retrying.");
                m.send_errors.fetch_add(1, Relaxed);
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    };
    m.connected.store(1, Relaxed);
    tracing::info!(collector = %address, "Sending HEP over UDP.");
    while let Some(p) = rx.recv().await {
        m.queue_depth.fetch_sub(1, Relaxed);
        if p.len() > mtu && m.over_mtu.fetch_add(1, Relaxed) % 1000 == 0 {
            tracing::warn!(collector = %address, size = p.len(), mtu, "HEP packet larger than the MTU: it will be fragmented (TCP avoids that).");
        }
        match sock.send(&p).await {
            Ok(n) => {
                m.packets.fetch_add(1, Relaxed);
                m.bytes.fetch_add(n as u64, Relaxed);
            }
            Err(e) => {
                // ICMP port unreachable while the collector is down: the packet is lost.
                if m.send_errors.fetch_add(1, Relaxed) % 1000 == 0 {
                    tracing::warn!(collector = %address, error = %e, "UDP send failed.");
                }
            }
        }
    }
    m.connected.store(0, Relaxed);
}

/// What a look at the connection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// Still open.
    Open,
    /// Closed with a FIN (or TLS close): the collector had read everything we wrote
    /// (a socket closed with unread data answers with a reset instead).
    Closed,
    /// Reset, TLS alert, or error: what we wrote last may not have been read.
    Lost,
}

/// Looks at a plain TCP connection without blocking.
fn peer_state(s: &TcpStream) -> Peer {
    let mut b = [0u8; 64];
    loop {
        match s.try_read(&mut b) {
            Ok(0) => return Peer::Closed,
            Ok(_) => continue, // the collector said something: ignore it
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Peer::Open,
            Err(_) => return Peer::Lost,
        }
    }
}

/// Most bytes written in one batch.
const BATCH_BYTES: usize = 256 * 1024;

/// How long the queue may be idle before the last batch is confirmed by a liveness check.
const CONFIRM_IDLE: Duration = Duration::from_millis(200);

/// The TCP/TLS sender. The batch last written stays "unconfirmed" until a later check
/// finds the connection still open (before the next write, after a quiet moment, or at
/// shutdown when the collector answers our FIN with its own): a collector that died or
/// refused us (TLS 1.3 rejects a client certificate only after the handshake) right
/// after a write that succeeded gets that batch again on the next connection. At least
/// once: a batch the collector had read before dying may arrive twice.
async fn run_tcp(
    address: String,
    mut rx: mpsc::Receiver<Bytes>,
    tls: Tls,
    m: Arc<CollectorMetrics>,
) {
    let mut backoff = Backoff::default();
    let mut batch = BytesMut::with_capacity(BATCH_BYTES);
    let mut batch_packets = 0u64;
    let mut unconfirmed = BytesMut::new();
    let mut unconfirmed_packets = 0u64;
    let mut first = true;
    let mut closing = false;
    'connect: loop {
        // What was written but not confirmed goes first on the new connection.
        if !unconfirmed.is_empty() {
            unconfirmed.extend_from_slice(&batch);
            batch = std::mem::take(&mut unconfirmed);
            batch_packets += unconfirmed_packets;
            unconfirmed_packets = 0;
        }
        let mut stream = loop {
            match connect(&address, &tls).await {
                Ok(s) => break s,
                Err(e) => {
                    m.send_errors.fetch_add(1, Relaxed);
                    let d = backoff.next_delay();
                    tracing::debug!(collector = %address, error = %e, delay_ms = d.as_millis() as u64, "Collector unreachable, retrying.");
                    // Nothing to send and the queue closed: shutting down.
                    if batch.is_empty() && rx.is_closed() && rx.is_empty() {
                        return;
                    }
                    tokio::time::sleep(d).await;
                }
            }
        };
        if !first {
            m.reconnects.fetch_add(1, Relaxed);
        }
        first = false;
        m.connected.store(1, Relaxed);
        tracing::info!(collector = %address, "Connected to the collector.");
        loop {
            if batch.is_empty() && !closing {
                let next = if unconfirmed.is_empty() {
                    rx.recv().await.map(Some)
                } else {
                    match tokio::time::timeout(CONFIRM_IDLE, rx.recv()).await {
                        Ok(p) => p.map(Some),
                        Err(_) => Some(None), // quiet: confirm below
                    }
                };
                match next {
                    Some(Some(p)) => {
                        m.queue_depth.fetch_sub(1, Relaxed);
                        batch.extend_from_slice(&p);
                        batch_packets = 1;
                        while batch.len() < BATCH_BYTES {
                            match rx.try_recv() {
                                Ok(p) => {
                                    m.queue_depth.fetch_sub(1, Relaxed);
                                    batch.extend_from_slice(&p);
                                    batch_packets += 1;
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    Some(None) => {}
                    None => closing = true,
                }
            }
            match stream.peer().await {
                Peer::Open => {}
                state => {
                    if state == Peer::Closed {
                        // It read everything before closing: confirmed.
                        m.packets.fetch_add(unconfirmed_packets, Relaxed);
                        unconfirmed.clear();
                        unconfirmed_packets = 0;
                    }
                    tracing::warn!(collector = %address, ?state, "The collector closed the connection.");
                    m.connected.store(0, Relaxed);
                    if closing && batch.is_empty() && unconfirmed.is_empty() {
                        return;
                    }
                    continue 'connect;
                }
            }
            // Still open: what was written before has been taken.
            m.packets.fetch_add(unconfirmed_packets, Relaxed);
            unconfirmed.clear();
            unconfirmed_packets = 0;
            if batch.is_empty() {
                if closing {
                    // Our FIN; a collector that read everything closes in turn.
                    stream.shutdown().await;
                    m.connected.store(0, Relaxed);
                    return;
                }
                continue;
            }
            match stream.write_all(&batch).await {
                Ok(()) => {
                    m.bytes.fetch_add(batch.len() as u64, Relaxed);
                    unconfirmed = std::mem::take(&mut batch);
                    unconfirmed_packets = batch_packets;
                    batch_packets = 0;
                    backoff.reset();
                }
                Err(e) => {
                    m.send_errors.fetch_add(1, Relaxed);
                    tracing::warn!(collector = %address, error = %e, "Write to the collector failed; reconnecting.");
                    m.connected.store(0, Relaxed);
                    continue 'connect;
                }
            }
        }
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
                address: "127.0.0.1:9060".into()
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
