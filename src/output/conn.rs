//! One connection to a TCP/TLS collector and the I/O around it: connecting (with
//! failover targets), writing with a stall deadline, looking whether the collector is still
//! there, ending a connection, and the facts the delivery state machine needs (bytes
//! handed to the kernel, `TCP_INFO`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::delivery::SocketFacts;
use super::spool::Spool;
use super::Counts;
use super::{resolve, QueueRx};
use crate::internal_events::{SpoolCapDropped, SpoolWriteFailed};
use crate::telemetry::{Collector, Emit};

/// A TCP stream that counts the bytes handed to the kernel: under TLS this is the
/// records, which is what the collector's TCP acknowledges.
pub(super) struct Counted {
    tcp: TcpStream,
    wire: u64,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.wire += n as u64;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A collector connection: plain TCP or TLS over TCP.
pub(super) enum Conn {
    Plain(Counted),
    Tls(Box<tokio_rustls::client::TlsStream<Counted>>),
}

impl Conn {
    fn counted(&self) -> &Counted {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    /// Bytes handed to the kernel on this connection.
    pub(super) fn wire(&self) -> u64 {
        self.counted().wire
    }

    /// What the kernel says of the connection (`TCP_INFO`).
    pub(super) fn facts(&self) -> Option<SocketFacts> {
        super::tcp_facts::read(&self.counted().tcp)
    }

    /// Whether the collector is still there, closed cleanly, or dropped data.
    pub(super) async fn peer(&mut self) -> Peer {
        self.peer_with(|| {}).await
    }

    /// As [`Conn::peer`], calling `meanwhile` while it waits (the spool keeps draining
    /// the queue).
    pub(super) async fn peer_with(&mut self, mut meanwhile: impl FnMut()) -> Peer {
        let state = self.peer_now().await;
        if state != Peer::Closed {
            return state;
        }
        // Linux reports a FIN as end of file even when the data we wrote after it was
        // answered with a reset (that only shows in SO_ERROR). Give a reset the time to
        // come before calling the close clean.
        let tcp = &self.counted().tcp;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        while tokio::time::Instant::now() < deadline {
            if !matches!(tcp.take_error(), Ok(None)) {
                return Peer::Lost;
            }
            meanwhile();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Peer::Closed
    }

    async fn peer_now(&mut self) -> Peer {
        match self {
            Conn::Plain(s) => peer_state(&s.tcp),
            Conn::Tls(s) => {
                // No peeking inside TLS: a read that would wait means the peer is there.
                use tokio::io::AsyncReadExt;
                let mut b = [0u8; 256];
                loop {
                    match tokio::time::timeout(Duration::ZERO, s.read(&mut b)).await {
                        Err(_) => return peer_state(&s.get_ref().0.tcp),
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

    /// Writes all of `b`; while a write waits, `absorb` (the spooled sender's) keeps
    /// taking the queue into the spool as packets come. Fails with `TimedOut` when no byte
    /// could be written for `stall` (a collector that stopped reading: its window and our
    /// buffer are full).
    pub(super) async fn write_watched(
        &mut self,
        b: &[u8],
        stall: Duration,
        mut absorb: Option<&mut Absorb<'_>>,
    ) -> std::io::Result<()> {
        let mut off = 0;
        while off < b.len() {
            let n = {
                let step = async {
                    match self {
                        Conn::Plain(s) => s.write(&b[off..]).await,
                        Conn::Tls(s) => s.write(&b[off..]).await,
                    }
                };
                watch(step, stall, absorb.as_deref_mut()).await?
            };
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            off += n;
        }
        if let Conn::Tls(s) = self {
            watch(s.flush(), stall, absorb).await?;
        }
        Ok(())
    }

    pub(super) async fn shutdown(&mut self) {
        let _ = match self {
            Conn::Plain(s) => s.shutdown().await,
            // Only the TCP FIN: a TLS close_notify is data, and a collector that already
            // exited answers data with a reset, which would read as "not delivered".
            Conn::Tls(s) => {
                let _ = s.flush().await;
                s.get_mut().0.tcp.shutdown().await
            }
        };
    }
}

/// What the spooled sender keeps doing while a write waits: the queue into the spool.
pub(super) struct Absorb<'a> {
    pub(super) rx: &'a mut QueueRx,
    pub(super) spool: &'a mut crate::output::spool::Spool,
    pub(super) m: &'a Counts,
    pub(super) closing: &'a mut bool,
}

impl Absorb<'_> {
    /// Waits for a packet and takes it, with whatever else is queued, into the spool.
    async fn next(&mut self) {
        match self.rx.recv().await {
            Some(p) => *self.closing |= spool_queued(self.rx, self.spool, self.m, Some(p)),
            None => *self.closing = true,
        }
    }
}

/// Runs `step`, absorbing the queue meanwhile; `TimedOut` when it takes longer than
/// `stall`.
pub(super) async fn watch<T>(
    step: impl std::future::Future<Output = std::io::Result<T>>,
    stall: Duration,
    mut absorb: Option<&mut Absorb<'_>>,
) -> std::io::Result<T> {
    let deadline = tokio::time::sleep(stall);
    tokio::pin!(step, deadline);
    loop {
        let open = absorb.as_ref().is_some_and(|a| !*a.closing);
        tokio::select! {
            r = &mut step => return r,
            _ = async { absorb.as_mut().expect("open").next().await }, if open => {}
            _ = &mut deadline => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no progress writing to the collector for {} s: it stopped reading", stall.as_secs_f32()),
                ));
            }
        }
    }
}

pub(super) type Tls = Option<(
    tokio_rustls::TlsConnector,
    rustls::pki_types::ServerName<'static>,
)>;

pub(super) async fn connect(address: &str, tls: &Tls) -> std::io::Result<Conn> {
    let s = TcpStream::connect(resolve(address).await?).await?;
    let _ = s.set_nodelay(true);
    keepalive(&s);
    let s = Counted { tcp: s, wire: 0 };
    match tls {
        None => Ok(Conn::Plain(s)),
        Some((c, name)) => Ok(Conn::Tls(Box::new(c.connect(name.clone(), s).await?))),
    }
}

/// TCP keepalive after 1 s idle, every second: the collector's answer to a probe carries
/// its current window, so once it has read the last bytes of a quiet connection the
/// delivery state machine sees the window open again and confirms them (a receiver sends
/// no window update of its own when the gain is small). It also finds a collector host
/// that vanished without a reset.
fn keepalive(s: &TcpStream) {
    use nix::sys::socket::{setsockopt, sockopt};
    let _ = setsockopt(s, sockopt::KeepAlive, &true);
    let _ = setsockopt(s, sockopt::TcpKeepIdle, &1);
    let _ = setsockopt(s, sockopt::TcpKeepInterval, &1);
    let _ = setsockopt(s, sockopt::TcpKeepCount, &10);
}

/// Which of a collector's targets (preferred one, then backups) is in use, since when.
pub(super) async fn connect_first(targets: &[(String, Tls)]) -> std::io::Result<(Conn, usize)> {
    let mut last = None;
    for (i, (address, tls)) in targets.iter().enumerate() {
        match connect(address, tls).await {
            Ok(c) => return Ok((c, i)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no collector")))
}

/// Ends a connection with our FIN and waits (1 s at most) for the collector's answer:
/// `Closed` when it closed cleanly, having read everything; `Lost` when it reset (what
/// we wrote last may be unread); `Open` when it did not answer in time. `meanwhile` runs
/// while waiting.
pub(super) async fn finish(stream: &mut Conn, mut meanwhile: impl FnMut()) -> Peer {
    stream.shutdown().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::Instant::now() < deadline {
        match stream.peer_with(&mut meanwhile).await {
            Peer::Open => tokio::time::sleep(Duration::from_millis(10)).await,
            done => return done,
        }
    }
    Peer::Open
}

/// Whether the preferred collector accepts connections again.
pub(super) async fn preferred_back(targets: &[(String, Tls)]) -> bool {
    let probe = async { TcpStream::connect(resolve(&targets[0].0).await?).await };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(_))
    )
}

/// Logs a collector's connection failures at WARN with the reason once per change of
/// state (the first failure, or a different reason), and the repeats at DEBUG: a
/// misconfigured `tls://` collector (unknown issuer, expired, wrong name) shows at the
/// default level without a line per retry.
#[derive(Debug, Default)]
pub(super) struct FailureLog {
    last: Option<String>,
    repeats: u64,
}

impl FailureLog {
    pub(super) fn report(&mut self, address: &str, e: &std::io::Error, retry_in: Duration) {
        let reason = e.to_string();
        let retry_ms = retry_in.as_millis() as u64;
        if self.last.as_deref() == Some(reason.as_str()) {
            self.repeats += 1;
            tracing::debug!(collector = %address, error = %reason, retry_ms, repeats = self.repeats, "Collector still unreachable.");
        } else if reason.contains("lookup address") || reason.contains("no address") {
            tracing::warn!(collector = %address, error = %reason, retry_ms, "The collector's host name does not resolve (check the host in --to / output.url); retrying (with backoff) until it does.");
            self.last = Some(reason);
            self.repeats = 0;
        } else {
            tracing::warn!(collector = %address, error = %reason, retry_ms, "Cannot connect to the collector; retrying (with backoff) until it answers.");
            self.last = Some(reason);
            self.repeats = 0;
        }
    }

    pub(super) fn connected(&mut self, address: &str) {
        if self.last.take().is_some() {
            tracing::info!(collector = %address, repeats = self.repeats, "Collector reachable again.");
        }
        self.repeats = 0;
    }
}

/// What a look at the connection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Peer {
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

/// Moves what is queued into the spool without waiting; true when the queue closed.
pub(super) fn spool_queued(
    rx: &mut QueueRx,
    spool: &mut Spool,
    m: &Counts,
    first: Option<Bytes>,
) -> bool {
    let mut batch: Vec<Bytes> = first.into_iter().collect();
    let mut closed = false;
    loop {
        match rx.try_recv() {
            Ok(p) => batch.push(p),
            Err(mpsc::error::TryRecvError::Empty) => break,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                closed = true;
                break;
            }
        }
    }
    if !batch.is_empty() {
        m.sub(Collector::QueueDepth, batch.len() as u64);
        let before = spool.dropped;
        if let Err(e) = spool.append(&batch) {
            // The disk failed (full, read-only, gone): these packets are lost, and counted.
            SpoolWriteFailed {
                collector: &m.url,
                error: &e,
                packets: batch.len() as u64,
            }
            .emit(m);
        }
        if spool.dropped > before {
            SpoolCapDropped {
                collector: &m.url,
                packets: spool.dropped - before,
                max_bytes: spool.max_bytes(),
            }
            .emit(m);
        }
    }
    rx.progress().in_spool(batch.len() as u64);
    m.set(Collector::SpoolBytes, spool.pending_bytes());
    closed
}
