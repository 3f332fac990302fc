//! Connection limits of the inputs: a cap on open connections (in all, and per peer
//! address, so that one noisy host cannot take the slots Janus needs), and deadlines on
//! what a connection reads:
//!
//! - a new connection must send its first request head within `header_timeout`;
//! - once a request has started, it must keep coming at `min_rate` bytes/s: it may take
//!   `header_timeout + bytes / min_rate` in all (a slowloris trickle is cut, a large
//!   body at a decent rate is not);
//! - between requests, a keep-alive connection may stay idle for `idle_timeout`.
//!
//! A WebSocket input applies only the first rule: after the upgrade, wsevh's connection
//! lives as long as Janus wants.

use crate::internal_events::InputRejected;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

use crate::reject::Reject;
use crate::telemetry::{Emit, Ingest, Input};

/// The limits of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one address.
    pub max_per_peer: usize,
    /// Time for the first request head (and the base of every request's time).
    pub header_timeout: Duration,
    /// Idle time allowed between requests (`None`: no limit, e.g. after an upgrade).
    pub idle_timeout: Option<Duration>,
    /// Bytes per second a request must keep up once it has started.
    pub min_rate: u64,
    /// Only the first rule applies (WebSocket).
    pub upgrade: bool,
}

impl Limits {
    /// The HTTP input's limits, from the `[limits]` table.
    pub fn http(s: &crate::config::Limits) -> Limits {
        Limits::new(s, false)
    }

    /// The WebSocket input's limits (only the first rule after the upgrade).
    pub fn ws(s: &crate::config::Limits) -> Limits {
        Limits::new(s, true)
    }

    fn new(s: &crate::config::Limits, upgrade: bool) -> Limits {
        Limits {
            max_connections: s.max_connections,
            max_per_peer: s.max_connections_per_peer,
            header_timeout: Duration::from_millis(s.header_timeout_ms),
            idle_timeout: Some(Duration::from_secs(s.idle_timeout_s)),
            min_rate: s.min_rate_bytes,
            upgrade,
        }
    }
}

/// Counts the open connections of one input, in all and per address.
#[derive(Debug)]
pub struct Gate {
    limits: Limits,
    input: Input,
    metrics: Arc<dyn Emit<Ingest>>,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

impl Gate {
    /// A gate with these limits, counting into `metrics` for `input`.
    pub fn new(limits: Limits, input: Input, metrics: Arc<dyn Emit<Ingest>>) -> Arc<Gate> {
        Arc::new(Gate {
            limits,
            input,
            metrics,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// Admits a connection from `peer`, or refuses it (counted, logged at most once a
    /// second) when a cap is reached.
    pub fn admit(self: &Arc<Gate>, peer: SocketAddr) -> Option<Ticket> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let per = open.1.get(&peer.ip()).copied().unwrap_or(0);
        if open.0 >= self.limits.max_connections || per >= self.limits.max_per_peer {
            let (total, from_peer) = (open.0, per);
            drop(open);
            InputRejected {
                input: self.input,
                reason: Reject::TooManyConnections,
                peer: Some(peer),
                what: "Connection refused: too many connections;",
                detail: format_args!(
                    "open={total} from_peer={from_peer} max={} max_per_peer={}",
                    self.limits.max_connections, self.limits.max_per_peer
                ),
            }
            .emit(&self.metrics);
            return None;
        }
        open.0 += 1;
        *open.1.entry(peer.ip()).or_insert(0) += 1;
        Some(Ticket {
            gate: self.clone(),
            peer: peer.ip(),
        })
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// Wraps an admitted connection in the deadlines.
    pub fn guard(
        self: &Arc<Gate>,
        io: TcpStream,
        ticket: Ticket,
        peer: SocketAddr,
    ) -> Guarded<TcpStream> {
        // HTTP servers read nothing while a keep-alive connection is idle, so the idle
        // deadline is kept by a watchdog that shuts the socket down (through a duplicate
        // of its descriptor) when the connection stayed idle too long.
        let idle = match (
            self.limits.idle_timeout,
            std::os::fd::AsFd::as_fd(&io).try_clone_to_owned(),
        ) {
            (Some(t), Ok(fd)) if !self.limits.upgrade => {
                let w = Arc::new(Watch::new());
                tokio::spawn(watchdog(w.clone(), fd, t, self.clone()));
                Some(w)
            }
            _ => None,
        };
        Guarded {
            io,
            gate: self.clone(),
            _ticket: ticket,
            peer,
            phase: Phase::New,
            since: Instant::now(),
            bytes: 0,
            sleep: Box::pin(tokio::time::sleep(self.limits.header_timeout)),
            idle,
        }
    }
}

/// An open connection's place at the gate; given back when dropped.
#[derive(Debug)]
pub struct Ticket {
    gate: Arc<Gate>,
    peer: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.peer);
            }
        }
    }
}

/// What the idle watchdog of a connection knows. The connection writes it with plain
/// atomic stores (twice per request); the watchdog reads it when its own timer fires, so
/// a request costs it no wake-up.
#[derive(Debug)]
struct Watch {
    /// The time the values below count from.
    base: Instant,
    /// Idle (answered, nothing read since) from `base` + this many µs on; [`BUSY`] while
    /// a request is coming in or being answered.
    idle_since: AtomicU64,
    closed: AtomicBool,
    /// Woken only when the connection closes.
    wake: tokio::sync::Notify,
}

/// [`Watch::idle_since`] of a connection that is not idle.
const BUSY: u64 = u64::MAX;

impl Watch {
    fn new() -> Watch {
        Watch {
            base: Instant::now(),
            idle_since: AtomicU64::new(BUSY),
            closed: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Idle from `now` on, or busy.
    fn set_idle(&self, idle: bool, now: Instant) {
        let v = if idle {
            now.saturating_duration_since(self.base).as_micros() as u64
        } else {
            BUSY
        };
        self.idle_since.store(v, Release);
    }
}

/// Shuts the connection down once it has been idle for `timeout`; ends with it. It looks
/// at the connection once per `timeout` while busy, and at the end of an idle spell's
/// `timeout`: a connection that went idle meanwhile is seen at the next look, which then
/// waits for the rest of that spell's time.
async fn watchdog(w: Arc<Watch>, fd: std::os::fd::OwnedFd, timeout: Duration, gate: Arc<Gate>) {
    use std::os::fd::AsRawFd;
    loop {
        if w.closed.load(Acquire) {
            return;
        }
        let until = match w.idle_since.load(Acquire) {
            BUSY => Instant::now() + timeout,
            us => {
                let since = w.base + Duration::from_micros(us);
                if since.elapsed() >= timeout {
                    gate.metrics
                        .add(Ingest::Rejected(gate.input, Reject::Timeout), 1);
                    let _ = nix::sys::socket::shutdown(
                        fd.as_raw_fd(),
                        nix::sys::socket::Shutdown::Both,
                    );
                    return;
                }
                since + timeout
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = w.wake.notified() => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connected, nothing read yet.
    New,
    /// A request is coming in (bytes read since the last write).
    Reading,
    /// Answered; waiting for the next request.
    Idle,
    /// Upgraded (WebSocket): no deadlines any more.
    Free,
}

/// A connection under the gate's deadlines.
#[derive(Debug)]
pub struct Guarded<Io> {
    io: Io,
    gate: Arc<Gate>,
    _ticket: Ticket,
    peer: SocketAddr,
    phase: Phase,
    since: Instant,
    bytes: u64,
    sleep: Pin<Box<Sleep>>,
    idle: Option<Arc<Watch>>,
}

impl<Io> Drop for Guarded<Io> {
    fn drop(&mut self) {
        if let Some(w) = &self.idle {
            w.closed.store(true, Release);
            w.wake.notify_one();
        }
    }
}

impl<Io> Guarded<Io> {
    fn set_idle(&self, idle: bool, now: Instant) {
        if let Some(w) = &self.idle {
            w.set_idle(idle, now);
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let l = &self.gate.limits;
        match self.phase {
            Phase::New => Some(self.since + l.header_timeout),
            Phase::Reading => {
                let allowance =
                    Duration::from_secs_f64(self.bytes as f64 / l.min_rate.max(1) as f64);
                Some(self.since + l.header_timeout + allowance)
            }
            Phase::Idle => l.idle_timeout.map(|t| self.since + t),
            Phase::Free => None,
        }
    }

    fn timed_out(&self) -> io::Error {
        let gate = &self.gate;
        let what = match self.phase {
            Phase::New => "no request head in time",
            Phase::Reading => "request slower than the minimum rate",
            _ => "idle too long",
        };
        if self.phase == Phase::Idle {
            // A keep-alive connection left idle: counted, not worth a log line.
            gate.metrics
                .add(Ingest::Rejected(gate.input, Reject::Timeout), 1);
        } else {
            InputRejected {
                input: gate.input,
                reason: Reject::Timeout,
                peer: Some(self.peer),
                what: "Connection closed:",
                detail: format_args!("{what}; bytes={}", self.bytes),
            }
            .emit(&gate.metrics);
        }
        io::Error::new(io::ErrorKind::TimedOut, what)
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Guarded<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                if n > 0 {
                    match self.phase {
                        Phase::New | Phase::Idle => {
                            if self.phase == Phase::Idle {
                                self.since = Instant::now();
                                self.set_idle(false, self.since);
                            }
                            self.phase = Phase::Reading;
                            self.bytes = n;
                        }
                        Phase::Reading => self.bytes += n,
                        Phase::Free => {}
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(deadline) = self.deadline() else {
                    return Poll::Pending;
                };
                if Instant::now() >= deadline {
                    return Poll::Ready(Err(self.timed_out()));
                }
                // The timer is moved only to an earlier deadline: deadlines mostly move
                // later (each request starts a new one), and resetting a timer costs a trip
                // through the timer wheel. One that fires before the deadline wakes this
                // read, which then sets it to the deadline.
                if self.sleep.deadline() > deadline {
                    self.sleep.as_mut().reset(deadline);
                }
                if self.sleep.as_mut().poll(cx).is_ready() {
                    if Instant::now() >= deadline {
                        return Poll::Ready(Err(self.timed_out()));
                    }
                    self.sleep.as_mut().reset(deadline);
                    if self.sleep.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(self.timed_out()));
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Guarded<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            // An answer: the request is over.
            self.phase = if self.gate.limits.upgrade {
                Phase::Free
            } else {
                Phase::Idle
            };
            self.since = Instant::now();
            self.set_idle(self.phase == Phase::Idle, self.since);
            self.bytes = 0;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A TCP listener for axum whose connections pass the gate.
#[derive(Debug)]
pub struct GuardedListener {
    inner: TcpListener,
    gate: Arc<Gate>,
}

impl GuardedListener {
    /// Accepts on `inner` through `gate`.
    pub fn new(inner: TcpListener, gate: Arc<Gate>) -> GuardedListener {
        GuardedListener { inner, gate }
    }
}

/// Accepts the next admitted connection from `l` (refused ones are closed at once;
/// accept errors such as running out of file descriptors wait a moment).
pub async fn accept_admitted(l: &TcpListener, gate: &Arc<Gate>) -> (TcpStream, SocketAddr, Ticket) {
    loop {
        match l.accept().await {
            Ok((s, peer)) => {
                if let Some(t) = gate.admit(peer) {
                    let _ = s.set_nodelay(true);
                    return (s, peer, t);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Accept failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = Guarded<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        let (s, peer, t) = accept_admitted(&self.inner, &self.gate).await;
        (self.gate.guard(s, t, peer), peer)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Sets the soft limit of open files to the hard one, so that the connection caps, not
/// the file descriptor limit (1,024 by default in a shell), decide what is refused.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
            tracing::debug!(from = soft, to = hard, "Raised the open files limit.");
        }
    }
}
