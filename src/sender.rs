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
    /// Parses `udp://HOST:PORT` or `tcp://HOST:PORT`.
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
            "tls" => return Err(err("tls:// is not supported yet; use tcp:// or udp://")),
            _ => return Err(err("the scheme must be udp or tcp")),
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

/// Starts the task of one collector; returns its queue and the task.
pub fn spawn(
    url: CollectorUrl,
    capacity: usize,
    policy: WhenFull,
    mtu: usize,
    metrics: Arc<CollectorMetrics>,
) -> (Queue, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(capacity);
    let m = metrics.clone();
    let task = match url.transport {
        Transport::Udp => tokio::spawn(run_udp(url.address, rx, mtu, m)),
        Transport::Tcp => tokio::spawn(run_tcp(url.address, rx, m)),
    };
    (
        Queue {
            tx,
            policy,
            metrics,
        },
        task,
    )
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

/// Whether the collector closed the connection (a read would return end of file).
fn peer_closed(s: &TcpStream) -> bool {
    let mut b = [0u8; 64];
    loop {
        match s.try_read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue, // the collector said something: ignore it
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Most bytes written in one batch.
const BATCH_BYTES: usize = 256 * 1024;

async fn run_tcp(address: String, mut rx: mpsc::Receiver<Bytes>, m: Arc<CollectorMetrics>) {
    let mut backoff = Backoff::default();
    let mut batch = BytesMut::with_capacity(BATCH_BYTES);
    let mut batch_packets = 0u64;
    let mut first = true;
    'connect: loop {
        let mut stream = loop {
            let attempt = async { TcpStream::connect(resolve(&address).await?).await };
            match attempt.await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    break s;
                }
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
            if batch.is_empty() {
                match rx.recv().await {
                    Some(p) => {
                        m.queue_depth.fetch_sub(1, Relaxed);
                        batch.extend_from_slice(&p);
                        batch_packets = 1;
                    }
                    None => {
                        let _ = stream.shutdown().await;
                        m.connected.store(0, Relaxed);
                        return;
                    }
                }
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
            if peer_closed(&stream) {
                tracing::warn!(collector = %address, "The collector closed the connection.");
                m.connected.store(0, Relaxed);
                continue 'connect;
            }
            match stream.write_all(&batch).await {
                Ok(()) => {
                    m.packets.fetch_add(batch_packets, Relaxed);
                    m.bytes.fetch_add(batch.len() as u64, Relaxed);
                    batch.clear();
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
            "tls://x:1",
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
