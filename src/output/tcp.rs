//! The TCP/TLS senders, plain and spooled. Their loops carry bytes; what counts as sent,
//! what is written again after a lost connection, when a connection is stalled and when
//! to fail back are decided by [`super::delivery`].
//!
//! Each sender is a state (`Plain`, `Spooled`) whose `step` does one turn on a connection
//! and says what comes next ([`Step`]); the `run_` functions only reconnect.
//!
//! Why this file is over 500 lines: the plain and the spooled sender are two states over
//! the same `Link` (connect, observe, stall, failback); they differ in where bytes come
//! from (memory or the spool) and what a confirmation does (count, or count and commit),
//! which a trait would hide rather than shorten.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::conn::{
    connect_first, finish, preferred_back, spool_queued, Absorb, Conn, FailureLog, Peer, Tls,
};
use super::delivery::{Delivery, Route, Settled};
use super::spool::{Pos, Spool};
use super::Counts;
use super::{Backoff, QueueRx};
use crate::internal_events::CollectorWriteFailed;
use crate::telemetry::{Collector, Emit};

/// Most bytes written in one batch.
const BATCH_BYTES: usize = 256 * 1024;

/// While batches wait for confirmation, how often the connection is looked at (its
/// `TCP_INFO` sampled) when the queue is idle: what is resent after a loss is what was
/// acknowledged within the read grace of the last sample, so samples are kept close.
const CONFIRM_IDLE: Duration = Duration::from_millis(5);

/// Without socket facts (see [`super::delivery`]), what was written in this last span of
/// time is written again when the connection is lost.
pub const RESEND_WINDOW: Duration = Duration::from_secs(2);

/// What the senders share: the targets, the route between them, the delivery state, the
/// backoff and failure log, the metrics.
struct Link<T> {
    targets: Vec<(String, Tls)>,
    route: Route,
    delivery: Delivery<T>,
    backoff: Backoff,
    failures: FailureLog,
    m: Arc<Counts>,
    /// The queue's progress: confirmed packets are published there too.
    progress: Arc<super::Progress>,
    first: bool,
}

impl<T> Link<T> {
    fn new(
        targets: Vec<(String, Tls)>,
        failback: Duration,
        (stall, read_grace): (Duration, Duration),
        (m, progress): (Arc<Counts>, Arc<super::Progress>),
    ) -> Self {
        let now = Instant::now();
        Link {
            targets,
            route: Route::new(failback, now),
            delivery: Delivery::new(stall, read_grace, RESEND_WINDOW, now),
            backoff: Backoff::default(),
            failures: FailureLog::default(),
            m,
            progress,
            first: true,
        }
    }

    fn address(&self) -> &str {
        &self.targets[self.route.current()].0
    }

    /// One connection attempt over the targets in order; counts and logs a failure and
    /// returns the time to wait before the next.
    async fn try_connect(&mut self) -> Result<Conn, Duration> {
        match connect_first(&self.targets).await {
            Ok((s, i)) => {
                let now = Instant::now();
                if self.route.connected(i, now) {
                    tracing::warn!(collector = %self.targets[i].0, preferred = %self.targets[0].0, "Failing over to another collector.");
                }
                self.delivery.connected(now);
                if !self.first {
                    self.m.add(Collector::Reconnects, 1);
                }
                self.first = false;
                self.m.set(Collector::Connected, 1);
                let address = self.targets[i].0.clone();
                self.failures.connected(&address);
                Ok(s)
            }
            Err(e) => {
                self.m.add(Collector::SendErrors, 1);
                self.m.error(Collector::SendErrors, &e);
                let d = self.backoff.next_delay();
                let address = self.address().to_owned();
                self.failures.report(&address, &e, d);
                Err(d)
            }
        }
    }

    /// Counts confirmed batches as sent; returns the last one's token.
    fn count_sent(&self, settled: Vec<Settled<T>>) -> Option<T> {
        let mut last = None;
        for s in settled {
            self.m.add(Collector::Packets, s.packets);
            self.progress.confirmed(s.packets);
            self.m.sub(Collector::InFlight, s.packets);
            last = Some(s.token);
        }
        last
    }

    /// Looks at the connection: the confirmed batches, counted as sent.
    fn observe(&mut self, stream: &Conn) -> Option<T> {
        let done = self.delivery.observe(Instant::now(), stream.facts());
        self.count_sent(done)
    }

    /// The connection is gone: what the collector was trusted to have read is counted as
    /// sent (its last token returned); what was not, to write again (counted as resent).
    fn lose(&mut self) -> (Option<T>, Vec<Settled<T>>) {
        self.m.set(Collector::Connected, 0);
        let lost = self.delivery.lost();
        let read = self.count_sent(lost.read);
        let n: u64 = lost.again.iter().map(|s| s.packets).sum();
        self.m.add(Collector::Resent, n);
        (read, lost.again)
    }

    /// A batch was written.
    fn written(&mut self, stream: &Conn, bytes: usize, packets: u64, token: T) {
        self.m.add(Collector::Bytes, bytes as u64);
        self.delivery
            .written(Instant::now(), stream.wire(), packets, token);
        self.backoff.reset();
    }

    /// Whether the connection should be replaced because nothing moved: counted, logged.
    fn stalled(&self) -> bool {
        if !self.delivery.stalled(Instant::now()) {
            return false;
        }
        let e = std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the collector acknowledged nothing for the stall time: it stopped reading",
        );
        CollectorWriteFailed {
            collector: self.address(),
            error: &e,
        }
        .emit(&self.m);
        true
    }

    /// On a backup, whether the preferred collector answers again (looked at once per
    /// failback period).
    async fn preferred_is_back(&mut self) -> bool {
        if !self.route.check_preferred(Instant::now()) || !preferred_back(&self.targets).await {
            return false;
        }
        tracing::info!(collector = %self.targets[0].0, "The preferred collector is back.");
        true
    }
}

/// The TCP/TLS sender without a spool. Batches not confirmed (see [`super::delivery`])
/// are kept in memory and written again, first, on the next connection: at least once,
/// duplicates bounded by what the collector may not have read.
pub(super) async fn run_tcp(
    targets: Vec<(String, Tls)>,
    rx: QueueRx,
    fin_confirms: bool,
    failback: Duration,
    (stall, read_grace): (Duration, Duration),
    m: Arc<Counts>,
) {
    let mut s = Plain {
        link: Link::new(
            targets,
            failback,
            (stall, read_grace),
            (m.clone(), rx.progress().clone()),
        ),
        rx,
        m,
        batch: BytesMut::with_capacity(BATCH_BYTES),
        batch_packets: 0,
        again: Vec::new(),
        closing: false,
        fin_confirms,
        stall,
    };
    loop {
        s.requeue();
        let Some(mut stream) = s.connect().await else {
            return;
        };
        tracing::info!(collector = %s.link.address(), "Connected to the collector.");
        loop {
            match s.step(&mut stream).await {
                Step::Go => {}
                Step::Reconnect => {
                    s.again = s.link.lose().1;
                    break;
                }
                Step::Done => {
                    s.m.set(Collector::Connected, 0);
                    return;
                }
            }
        }
    }
}

/// The plain sender's state: the connection's delivery state, the queue, the batch being
/// built, what is to be written again first on the next connection.
struct Plain {
    link: Link<Bytes>,
    rx: QueueRx,
    m: Arc<Counts>,
    batch: BytesMut,
    batch_packets: u64,
    /// Written, not known to be read, from the lost connection.
    again: Vec<Settled<Bytes>>,
    /// The queue closed: write what is left, then stop.
    closing: bool,
    fin_confirms: bool,
    stall: Duration,
}

impl Plain {
    /// What may not have been read goes first on the new connection, in order.
    fn requeue(&mut self) {
        if self.again.is_empty() {
            return;
        }
        let again: usize = self.again.iter().map(|s| s.token.len()).sum();
        let mut b = BytesMut::with_capacity(self.batch.len() + again);
        for s in self.again.drain(..) {
            b.extend_from_slice(&s.token);
            self.batch_packets += s.packets;
            self.m.sub(Collector::InFlight, s.packets);
        }
        b.extend_from_slice(&self.batch);
        self.batch = b;
    }

    /// A connection; `None` when there is nothing left to send and nothing will come.
    async fn connect(&mut self) -> Option<Conn> {
        loop {
            match self.link.try_connect().await {
                Ok(s) => return Some(s),
                Err(d) => {
                    if self.batch.is_empty() && self.rx.is_closed() && self.rx.is_empty() {
                        return None;
                    }
                    tokio::time::sleep(d).await;
                }
            }
        }
    }

    /// With an empty batch: waits for packets (looking at the connection every
    /// [`CONFIRM_IDLE`] while batches wait for confirmation) and takes what is queued.
    async fn fill(&mut self) {
        let next = if self.link.delivery.unconfirmed() {
            match tokio::time::timeout(CONFIRM_IDLE, self.rx.recv()).await {
                Ok(p) => p.map(Some),
                Err(_) => Some(None),
            }
        } else {
            self.rx.recv().await.map(Some)
        };
        match next {
            Some(Some(p)) => {
                take(&mut self.batch, &mut self.batch_packets, p, &self.m);
                while self.batch.len() < BATCH_BYTES {
                    match self.rx.try_recv() {
                        Ok(p) => take(&mut self.batch, &mut self.batch_packets, p, &self.m),
                        Err(_) => break,
                    }
                }
            }
            Some(None) => {}
            None => self.closing = true,
        }
    }

    /// The collector closed after reading everything written: all confirmed.
    fn confirm_all(&mut self) {
        let done = self.link.delivery.closed();
        self.link.count_sent(done);
    }

    /// One step on a connection: fill the batch, look at the peer, confirm, move back to
    /// the preferred collector, write the batch (or close at the end).
    async fn step(&mut self, stream: &mut Conn) -> Step {
        if self.batch.is_empty() && !self.closing {
            self.fill().await;
        }
        match stream.peer().await {
            Peer::Open => {}
            Peer::Closed if self.batch.is_empty() && (self.closing || self.fin_confirms) => {
                // The collector closed at the end, after reading: all delivered.
                self.confirm_all();
                return Step::Done;
            }
            state => {
                tracing::warn!(collector = %self.link.address(), ?state, "The collector closed the connection.");
                return Step::Reconnect;
            }
        }
        self.link.observe(stream);
        if self.link.stalled() {
            return Step::Reconnect;
        }
        if self.link.preferred_is_back().await {
            if finish(stream, || {}).await == Peer::Closed {
                self.confirm_all();
            }
            return Step::Reconnect;
        }
        if self.batch.is_empty() {
            return match self.closing {
                true => self.close_out(stream).await,
                false => Step::Go,
            };
        }
        match stream.write_watched(&self.batch, self.stall, None).await {
            Ok(()) => {
                let b = std::mem::take(&mut self.batch).freeze();
                self.m.add(Collector::InFlight, self.batch_packets);
                self.link.written(stream, b.len(), self.batch_packets, b);
                self.batch_packets = 0;
                self.link.observe(stream);
                Step::Go
            }
            Err(e) => {
                CollectorWriteFailed {
                    collector: self.link.address(),
                    error: &e,
                }
                .emit(&self.m);
                Step::Reconnect
            }
        }
    }

    /// The queue closed and everything is written: our FIN; a collector that read
    /// everything closes in turn.
    async fn close_out(&mut self, stream: &mut Conn) -> Step {
        match finish(stream, || {}).await {
            Peer::Lost => return Step::Reconnect,
            Peer::Closed => self.confirm_all(),
            // No answer in time: what the kernel confirms, or the collector was trusted to
            // have read, is sent; the rest is not known to be delivered and is counted as
            // dropped.
            Peer::Open => {
                self.link.observe(stream);
                let lost = self.link.delivery.lost();
                self.link.count_sent(lost.read);
                let left: u64 = lost.again.iter().map(|s| s.packets).sum();
                self.m.sub(Collector::InFlight, left);
                self.m.add(Collector::DroppedShutdown, left);
            }
        }
        Step::Done
    }
}

/// One packet from the queue into the batch being built.
fn take(batch: &mut BytesMut, n: &mut u64, p: Bytes, m: &Counts) {
    m.sub(Collector::QueueDepth, 1);
    batch.extend_from_slice(&p);
    *n += 1;
}

/// Commits the spool up to `pos` (the last confirmed batch's end).
fn commit(spool: &mut Spool, pos: Option<Pos>, m: &Counts) {
    if let Some(pos) = pos {
        if let Err(e) = spool.commit(pos) {
            tracing::error!(error = %e, "Spool commit failed.");
        }
        m.set(Collector::SpoolBytes, spool.pending_bytes());
    }
}

/// The TCP/TLS sender with a disk spool: everything queued goes to disk first and is sent
/// from there. The spool is committed up to the last confirmed batch (see
/// [`super::delivery`]); a lost connection rewinds to the commit and sends again from
/// there.
pub(super) async fn run_spooled(
    targets: Vec<(String, Tls)>,
    rx: QueueRx,
    failback: Duration,
    (stall, read_grace): (Duration, Duration),
    m: Arc<Counts>,
    spool: Spool,
) {
    // Whatever a previous run left unsent is sent first.
    m.set(Collector::SpoolBytes, spool.pending_bytes());
    let mut s = Spooled {
        link: Link::new(
            targets,
            failback,
            (stall, read_grace),
            (m.clone(), rx.progress().clone()),
        ),
        rx,
        spool,
        m,
        closing: false,
        last_sync: Instant::now(),
        stall,
    };
    loop {
        s.spool.rewind();
        let mut stream = s.connect().await;
        tracing::info!(collector = %s.link.address(), spooled = s.spool.pending_bytes(), "Connected to the collector.");
        loop {
            match s.step(&mut stream).await {
                Step::Go => {}
                Step::Reconnect => {
                    lose_spooled(&mut s.link, &mut s.spool);
                    break;
                }
                Step::Done => {
                    s.m.set(Collector::Connected, 0);
                    return;
                }
            }
        }
    }
}

/// What a sender does after a step.
enum Step {
    /// Goes on, on this connection.
    Go,
    /// Rewinds and connects again (what was not confirmed is written again).
    Reconnect,
    /// Stops: everything is delivered, or what is not stays in the spool for the next run.
    Done,
}

/// The spooled sender's state: the connection's delivery state, the queue it takes
/// packets from, the spool they go through.
struct Spooled {
    link: Link<Pos>,
    rx: QueueRx,
    spool: Spool,
    m: Arc<Counts>,
    /// The queue closed: drain the spool, then stop.
    closing: bool,
    last_sync: Instant,
    stall: Duration,
}

impl Spooled {
    /// Moves what is queued into the spool.
    fn absorb(&mut self) {
        self.closing |= spool_queued(&mut self.rx, &mut self.spool, &self.m, None);
    }

    /// A connection, taking packets into the spool while it waits.
    async fn connect(&mut self) -> Conn {
        loop {
            self.absorb();
            let d = match self.link.try_connect().await {
                Ok(s) => return s,
                Err(d) => d,
            };
            let sleep = tokio::time::sleep(d);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    p = self.rx.recv(), if !self.closing => match p {
                        Some(p) => self.closing |= spool_queued(&mut self.rx, &mut self.spool, &self.m, Some(p)),
                        None => self.closing = true,
                    },
                }
            }
        }
    }

    /// The collector closed after reading everything written: all confirmed, committed.
    fn confirm_all(&mut self) {
        let all = self.link.delivery.closed();
        let last = self.link.count_sent(all);
        commit(&mut self.spool, last, &self.m);
    }

    /// What the connection confirms now is committed.
    fn observe(&mut self, stream: &Conn) {
        let last = self.link.observe(stream);
        commit(&mut self.spool, last, &self.m);
    }

    /// One step on a connection: take what is queued, look at the peer, confirm, move
    /// back to the preferred collector, write the next batch from the spool (or wait for
    /// packets, or close at the end).
    async fn step(&mut self, stream: &mut Conn) -> Step {
        self.absorb();
        if self.last_sync.elapsed() > Duration::from_secs(1) {
            let _ = self.spool.sync();
            self.last_sync = Instant::now();
        }
        let done = self.closing && !self.spool.has_unread();
        match stream.peer_with(|| self.absorb()).await {
            Peer::Open => {}
            Peer::Closed if done => {
                self.confirm_all();
                return Step::Done;
            }
            state => {
                tracing::warn!(collector = %self.link.address(), ?state, "The collector closed the connection.");
                return Step::Reconnect;
            }
        }
        self.observe(stream);
        if self.link.stalled() {
            return Step::Reconnect;
        }
        if self.link.preferred_is_back().await {
            if finish(stream, || self.absorb()).await == Peer::Closed {
                self.confirm_all();
            }
            return Step::Reconnect;
        }
        match self.spool.read_batch(BATCH_BYTES) {
            Ok(Some((bytes, n, end))) => {
                let mut absorb = Absorb {
                    rx: &mut self.rx,
                    spool: &mut self.spool,
                    m: &self.m,
                    closing: &mut self.closing,
                };
                match stream
                    .write_watched(&bytes, self.stall, Some(&mut absorb))
                    .await
                {
                    Ok(()) => {
                        self.m.add(Collector::InFlight, n);
                        self.link.written(stream, bytes.len(), n, end);
                        self.observe(stream);
                    }
                    Err(e) => {
                        CollectorWriteFailed {
                            collector: self.link.address(),
                            error: &e,
                        }
                        .emit(&self.m);
                        return Step::Reconnect;
                    }
                }
            }
            Ok(None) if self.closing => return self.close_out(stream).await,
            Ok(None) => {
                let next = if self.link.delivery.unconfirmed() {
                    tokio::time::timeout(CONFIRM_IDLE, self.rx.recv()).await
                } else {
                    Ok(self.rx.recv().await)
                };
                match next {
                    Ok(Some(p)) => {
                        self.closing |=
                            spool_queued(&mut self.rx, &mut self.spool, &self.m, Some(p))
                    }
                    Ok(None) => self.closing = true,
                    Err(_) => {}
                }
            }
            Err(e) => {
                tracing::error!(collector = %self.link.address(), error = %e, "Spool read failed.");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Step::Go
    }

    /// The queue closed and the spool is written: our FIN; a collector that read
    /// everything closes in turn.
    async fn close_out(&mut self, stream: &mut Conn) -> Step {
        match finish(stream, || self.absorb()).await {
            Peer::Closed => self.confirm_all(),
            // Not read: send it again (within the shutdown drain time).
            Peer::Lost => return Step::Reconnect,
            // No answer: what is not confirmed or trusted stays in the spool for the next
            // run.
            Peer::Open => {
                self.observe(stream);
                let lost = self.link.delivery.lost();
                let last = self.link.count_sent(lost.read);
                commit(&mut self.spool, last, &self.m);
                let left: u64 = lost.again.iter().map(|s| s.packets).sum();
                self.m.sub(Collector::InFlight, left);
            }
        }
        let _ = self.spool.sync();
        self.m
            .set(Collector::SpoolBytes, self.spool.pending_bytes());
        Step::Done
    }
}

/// The spooled sender lost its connection: what the collector was trusted to have read
/// is committed; the spool rewinds to the commit (on the next connection), so the other
/// batches are counted as resent and leave the in-flight count.
fn lose_spooled(link: &mut Link<Pos>, spool: &mut Spool) {
    let (read, again) = link.lose();
    commit(spool, read, &link.m);
    let n: u64 = again.iter().map(|s| s.packets).sum();
    link.m.sub(Collector::InFlight, n);
}
