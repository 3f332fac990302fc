//! The delivery state machine of one TCP/TLS collector: what was written, what the
//! collector has certainly read, what must be written again after a lost connection, when
//! a connection is stalled, and when to look for the preferred collector again.
//!
//! Sans-IO, in the manner of quinn-proto: no sockets and no clock. The sender tells it
//! what it wrote ([`Delivery::written`]), what the kernel says of the connection
//! ([`Delivery::observe`], from `TCP_INFO`) and the time; it answers with the batches that
//! are confirmed (counted as sent, and the spool committed up to them), the batches to
//! write again after a loss ([`Delivery::lost`]), and whether the connection is stalled
//! ([`Delivery::stalled`]). The TCP, TLS and spooled senders share it; their loops only
//! carry bytes.
//!
//! # What "confirmed" means
//!
//! HEP has no acknowledgement, so the collector's TCP is the only witness, and a poor one:
//! a byte its TCP acknowledged may still sit unread in its receive buffer, and a collector
//! reset or killed then loses it. The window it advertises says little about that buffer:
//! Linux offers at most `rcv_ssthresh`, about half the buffer, so a collector that stops
//! reading keeps offering its usual window until the buffer is more than half full
//! (measured on loopback, Linux 6.18: a collector that stopped reading held 118 KB
//! unread behind a 64 KB window at the moment it closed it; with a 32 KB buffer, 25 KB
//! behind 15.8 KB; and its window did not move for the first 24 KB).
//!
//! So a batch goes through three states:
//!
//! - **written**: handed to the kernel.
//! - **trusted**: the collector's TCP acknowledged it more than `read_grace` (250 ms by
//!   default) ago and its window has been at its largest (the collector keeps up; within
//!   [`window_slack`], the window's own jitter) at every look since. A collector that
//!   reads continuously has read it. Any look that finds the window further below its
//!   largest (the collector is behind, or stopped reading) withdraws the trust of every
//!   batch not yet confirmed: it may be in the unread pile.
//! - **confirmed** (counted as sent, the spool committed up to it): trusted for
//!   [`SETTLE`] without a break, or vouched for by the window: the collector offers room
//!   for [`BUFFER_PER_WINDOW`] times its largest window beyond the batch, more than its
//!   buffer holds, so it read the batch (`acked + window - 3 * max_window`).
//!
//! When the connection is lost (reset, error, stall), the trusted batches count as read
//! (the collector kept up until then: a collector killed while reading continuously costs
//! about `read_grace` of traffic in duplicates, not more) and everything else is written
//! again on the next connection. A collector that stops reading closes its window once
//! its buffer is half full, withdrawing the trust of what it holds; it is lost only if
//! it stops and dies before that and [`SETTLE`] after the bytes came (a trickle into a
//! large buffer).
//!
//! Where the kernel gives no such facts (another OS, an old kernel), the rule is time:
//! what was written more than [`Delivery::new`]'s `fallback` ago on a connection that is
//! still up counts as confirmed.
//!
//! Why this file is over 500 lines: half of it is the state machine's unit and property
//! tests, kept beside the rules they check.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a batch stays trusted (acknowledged, and the window at its largest at every
/// look since) before it is confirmed: a collector that stopped reading shows it by then
/// unless the traffic since is a trickle its buffer hides.
pub const SETTLE: Duration = Duration::from_secs(2);

/// How far below its largest a window may be and still count as at its largest: Linux's
/// advertised window moves by its scaling unit and with receive-buffer tuning while the
/// collector reads everything (measured on loopback at rest, all acknowledged and read:
/// 104,448 of a largest 110,592, 6 KiB short). An eighth of the largest: a small buffer's
/// window is small, and so is its slack.
pub fn window_slack(max_window: u32) -> u64 {
    u64::from(max_window) / 8
}

/// The most a collector's receive buffer holds, in multiples of the largest window it
/// advertised on the connection. Linux advertises about half of its buffer (measured
/// 1.6-1.8 times the window held unread at a closed window); three leaves a margin.
pub const BUFFER_PER_WINDOW: u64 = 3;

/// What the kernel says of a TCP connection (`TCP_INFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketFacts {
    /// Bytes the collector's TCP acknowledged on this connection (`tcpi_bytes_acked`;
    /// TLS records and handshake included, as the sender counts what it wrote).
    pub acked: u64,
    /// The receive window the collector advertises now, in bytes (`tcpi_snd_wnd`).
    pub window: u32,
}

/// One batch written on the current connection.
#[derive(Debug)]
struct Batch<T> {
    /// Its end on the connection: bytes handed to the kernel up to and including it.
    end: u64,
    /// When it was written.
    at: Instant,
    /// Since when it is trusted (see the module documentation), if it is.
    trusted: Option<Instant>,
    /// HEP packets in it.
    packets: u64,
    /// The sender's handle on it: the bytes (to write again) or the spool position.
    token: T,
}

/// A batch the state machine is done with: confirmed, or to be written again.
#[derive(Debug, PartialEq, Eq)]
pub struct Settled<T> {
    /// HEP packets in it.
    pub packets: u64,
    /// The sender's handle on it.
    pub token: T,
}

/// What a lost connection leaves: the batches taken as read (trusted until the loss), and
/// those to write again.
#[derive(Debug, PartialEq, Eq)]
pub struct Lost<T> {
    /// Trusted: the collector kept up until the loss; counted as sent.
    pub read: Vec<Settled<T>>,
    /// Not known to be read: written again on the next connection.
    pub again: Vec<Settled<T>>,
}

/// The delivery state of one collector's connection (see the module documentation).
#[derive(Debug)]
pub struct Delivery<T> {
    batches: VecDeque<Batch<T>>,
    /// Bytes handed to the kernel on this connection.
    written: u64,
    /// The largest window the collector advertised on this connection.
    max_window: u32,
    /// The last acknowledged count seen, and when it last moved (or nothing was owed).
    acked: u64,
    progress_at: Instant,
    /// Samples of the acknowledged count, oldest first: the newest one older than
    /// `read_grace` and all since.
    acks: VecDeque<(Instant, u64)>,
    /// Whether this connection gave socket facts (else the time rule applies).
    facts: bool,
    stall: Duration,
    read_grace: Duration,
    fallback: Duration,
}

impl<T> Delivery<T> {
    /// A state for a sender whose connections are stalled after `stall` without progress,
    /// whose collector reads what its TCP acknowledged within `read_grace`, and which,
    /// without socket facts, confirms what is older than `fallback`.
    pub fn new(stall: Duration, read_grace: Duration, fallback: Duration, now: Instant) -> Self {
        Delivery {
            batches: VecDeque::new(),
            written: 0,
            max_window: 0,
            acked: 0,
            progress_at: now,
            acks: VecDeque::new(),
            facts: false,
            stall,
            read_grace,
            fallback,
        }
    }

    /// The acknowledged count as of `read_grace` before `now` (0 when the connection is
    /// younger), pruning samples no longer needed.
    fn acked_before_grace(&mut self, now: Instant) -> u64 {
        let Some(horizon) = now.checked_sub(self.read_grace) else {
            return 0;
        };
        while self.acks.len() >= 2 && self.acks[1].0 <= horizon {
            self.acks.pop_front();
        }
        match self.acks.front() {
            Some(&(at, acked)) if at <= horizon => acked,
            _ => 0,
        }
    }

    /// A new connection is up: byte counts start again at zero. Batches of the previous
    /// connection must have been taken with [`Delivery::lost`] or [`Delivery::closed`].
    pub fn connected(&mut self, now: Instant) {
        debug_assert!(self.batches.is_empty());
        self.written = 0;
        self.max_window = 0;
        self.acked = 0;
        self.progress_at = now;
        self.acks.clear();
        self.facts = false;
    }

    /// The sender handed one more batch to the kernel; `wire_end` is the number of bytes
    /// handed to it on this connection so far (TLS: the records, not the plaintext).
    pub fn written(&mut self, now: Instant, wire_end: u64, packets: u64, token: T) {
        if self.acked >= self.written {
            // Nothing was owed until now: the stall clock starts with this write.
            self.progress_at = now;
        }
        self.written = self.written.max(wire_end);
        self.batches.push_back(Batch {
            end: wire_end,
            at: now,
            trusted: None,
            packets,
            token,
        });
    }

    /// Takes in what the kernel says of the connection (or `None` when it says nothing)
    /// and returns the batches now confirmed, oldest first.
    pub fn observe(&mut self, now: Instant, facts: Option<SocketFacts>) -> Vec<Settled<T>> {
        let n = match facts {
            Some(f) => {
                self.facts = true;
                if f.acked > self.acked || f.acked >= self.written {
                    self.progress_at = now;
                }
                self.acked = self.acked.max(f.acked);
                self.acks.push_back((now, self.acked));
                self.max_window = self.max_window.max(f.window);
                let read = self.acked_before_grace(now).min(self.acked);
                let behind = u64::from(f.window) + window_slack(self.max_window)
                    < u64::from(self.max_window);
                for b in &mut self.batches {
                    if behind {
                        b.trusted = None;
                    } else if b.end <= read {
                        b.trusted.get_or_insert(now);
                    } else {
                        break;
                    }
                }
                // Room offered beyond what the buffer can hold: read.
                let vouched = (self.acked + u64::from(f.window))
                    .saturating_sub(BUFFER_PER_WINDOW * u64::from(self.max_window));
                self.batches
                    .iter()
                    .take_while(|b| {
                        b.end <= vouched
                            || b.trusted
                                .is_some_and(|t| now.saturating_duration_since(t) >= SETTLE)
                    })
                    .count()
            }
            None if self.facts => {
                // Facts stopped coming (the socket is going away): confirm nothing more.
                0
            }
            None => self
                .batches
                .iter()
                .take_while(|b| now.saturating_duration_since(b.at) >= self.fallback)
                .count(),
        };
        self.batches.drain(..n).map(settle).collect()
    }

    /// Whether the connection owes bytes that made no progress for the stall time: the
    /// collector stopped reading, and the connection should be replaced.
    pub fn stalled(&self, now: Instant) -> bool {
        self.written > self.acked && now.saturating_duration_since(self.progress_at) >= self.stall
    }

    /// When [`Delivery::stalled`] may become true, if bytes are owed.
    pub fn stall_deadline(&self) -> Option<Instant> {
        (self.written > self.acked).then_some(self.progress_at + self.stall)
    }

    /// Whether batches wait for confirmation.
    pub fn unconfirmed(&self) -> bool {
        !self.batches.is_empty()
    }

    /// The connection was lost (reset, error, stall, or closed while batches were owed):
    /// the trusted batches count as read, every other one is to be written again; both
    /// oldest first.
    pub fn lost(&mut self) -> Lost<T> {
        let n = self
            .batches
            .iter()
            .take_while(|b| b.trusted.is_some())
            .count();
        Lost {
            read: self.batches.drain(..n).map(settle).collect(),
            again: self.batches.drain(..).map(settle).collect(),
        }
    }

    /// The collector closed cleanly (FIN, no reset) after we ended the connection: it read
    /// everything, so every batch is confirmed.
    pub fn closed(&mut self) -> Vec<Settled<T>> {
        self.batches.drain(..).map(settle).collect()
    }
}

fn settle<T>(b: Batch<T>) -> Settled<T> {
    Settled {
        packets: b.packets,
        token: b.token,
    }
}

/// Which of a collector's targets (the preferred one, then backups) is in use, and when to
/// look whether the preferred one is back.
#[derive(Debug)]
pub struct Route {
    current: usize,
    since: Instant,
    failback: Duration,
}

impl Route {
    /// Starts on the preferred target; on a backup, looks for the preferred one every
    /// `failback`.
    pub fn new(failback: Duration, now: Instant) -> Route {
        Route {
            current: 0,
            since: now,
            failback,
        }
    }

    /// The target in use (0: the preferred one).
    pub fn current(&self) -> usize {
        self.current
    }

    /// A connection to target `i` is up; true when that is a failover (another target
    /// than before).
    pub fn connected(&mut self, i: usize, now: Instant) -> bool {
        let moved = i != self.current;
        self.current = i;
        self.since = now;
        moved
    }

    /// Whether to look now whether the preferred target answers again; looking starts a
    /// new period.
    pub fn check_preferred(&mut self, now: Instant) -> bool {
        if self.current == 0 || now.saturating_duration_since(self.since) < self.failback {
            return false;
        }
        self.since = now;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn tokens(v: Vec<Settled<u32>>) -> Vec<u32> {
        v.into_iter().map(|s| s.token).collect()
    }

    fn facts(acked: u64, window: u32) -> Option<SocketFacts> {
        Some(SocketFacts { acked, window })
    }

    fn again(l: Lost<u32>) -> Vec<u32> {
        tokens(l.again)
    }

    #[test]
    fn trusted_for_the_settle_time_is_confirmed_a_window_below_its_largest_withdraws_trust() {
        let t = Instant::now();
        let k = 10_000u64;
        let s = SETTLE;
        let mut d = Delivery::new(ms(10_000), ms(50), ms(2000), t);
        d.connected(t);
        d.observe(t, facts(0, 64_000));
        d.written(t, k, 1, 1);
        d.written(t, 2 * k, 1, 2);
        // Acknowledged just now: not trusted yet.
        assert!(d.observe(t + ms(1), facts(2 * k, 64_000)).is_empty());
        // Past the read grace, window at its largest: trusted, not yet confirmed.
        assert!(d.observe(t + ms(60), facts(2 * k, 64_000)).is_empty());
        assert_eq!(
            tokens(d.observe(t + ms(60) + s, facts(2 * k, 64_000))),
            vec![1, 2]
        );
        let t = t + ms(60) + s;
        d.written(t, 3 * k, 1, 3);
        d.written(t, 4 * k, 1, 4);
        assert!(d.observe(t + ms(60), facts(4 * k, 64_000)).is_empty());
        // Within the slack (an eighth, at least 8 KiB) of its largest: still at it.
        assert!(d
            .observe(t + ms(80), facts(4 * k, 64_000 - 8_000))
            .is_empty());
        // Further short of its largest window: behind; trust withdrawn, nothing
        // confirmed however long it stays so.
        let short = 64_000 - window_slack(64_000) as u32 - 512;
        assert!(d.observe(t + ms(100), facts(4 * k, short)).is_empty());
        assert!(d
            .observe(t + ms(100) + s * 3, facts(4 * k, short))
            .is_empty());
        // Lost now: both come back.
        assert_eq!(again(d.lost()), vec![3, 4]);
    }

    #[test]
    fn room_beyond_what_the_buffer_holds_vouches_for_a_batch() {
        let t = Instant::now();
        let mut d = Delivery::new(ms(10_000), ms(50), ms(2000), t);
        d.connected(t);
        d.observe(t, facts(0, 10_000));
        d.written(t, 1_000, 1, 1);
        d.written(t, 40_000, 1, 2);
        // The window is never at its largest again, so nothing is trusted; but the
        // collector offers room up to 49,000 while its buffer holds at most 30,000: it read
        // the first 19,000.
        assert_eq!(tokens(d.observe(t + ms(1), facts(40_000, 9_000))), vec![1]);
        assert_eq!(again(d.lost()), vec![2]);
    }

    #[test]
    fn what_was_trusted_counts_as_read_after_a_loss_the_rest_comes_back() {
        let t = Instant::now();
        let mut d = Delivery::new(ms(10_000), ms(50), ms(2000), t);
        d.connected(t);
        for i in 0..10u32 {
            let at = t + ms(20 * u64::from(i));
            d.written(at, u64::from(i + 1) * 100, 1, i);
            // Acknowledged at once, window unchanged (Linux's rcv_ssthresh clamp).
            d.observe(at, facts(u64::from(i + 1) * 100, 64_000));
        }
        // At 180 ms, what was acknowledged by 130 ms (batches 0..=6) is trusted.
        let l = d.lost();
        assert_eq!(tokens(l.read), vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(tokens(l.again), vec![7, 8, 9]);
    }

    #[test]
    fn a_collector_that_stopped_reading_keeps_its_whole_buffer_unconfirmed() {
        let t = Instant::now();
        let mut d = Delivery::new(ms(10_000), ms(50), ms(2000), t);
        d.connected(t);
        assert!(d.observe(t, facts(0, 64_000)).is_empty());
        for i in 1..=20u32 {
            d.written(t, u64::from(i) * 6400, 1, i);
        }
        // Its window stays open while its buffer fills (64,000 bytes trusted)...
        assert!(d.observe(t + ms(100), facts(64_000, 64_000)).is_empty());
        // ... then closes: 128,000 bytes acknowledged, none read, none confirmed.
        assert!(d.observe(t + ms(200), facts(128_000, 0)).is_empty());
        assert!(d
            .observe(t + ms(200) + SETTLE, facts(128_000, 0))
            .is_empty());
        assert_eq!(again(d.lost()).len(), 20);
    }

    #[test]
    fn stall_is_no_acknowledgement_progress_while_bytes_are_owed() {
        let t = Instant::now();
        let mut d = Delivery::new(ms(1000), ms(50), ms(2000), t);
        d.connected(t);
        assert!(!d.stalled(t + ms(5000)), "nothing owed, never stalled");
        d.written(t + ms(5000), 100, 1, 1);
        assert!(!d.stalled(t + ms(5500)));
        assert_eq!(d.stall_deadline(), Some(t + ms(6000)));
        d.observe(t + ms(5900), facts(50, 1000));
        assert!(
            !d.stalled(t + ms(6500)),
            "progress at 5.9 s restarts the clock"
        );
        assert!(d.stalled(t + ms(6900)));
        d.observe(t + ms(7000), facts(100, 1000));
        assert!(!d.stalled(t + ms(9000)), "everything acknowledged");
    }

    #[test]
    fn without_socket_facts_the_time_rule_confirms() {
        let t = Instant::now();
        let mut d = Delivery::new(ms(10_000), ms(50), ms(2000), t);
        d.connected(t);
        d.written(t, 100, 1, 1);
        d.written(t + ms(1500), 200, 1, 2);
        assert!(d.observe(t + ms(1000), None).is_empty());
        assert_eq!(tokens(d.observe(t + ms(2100), None)), vec![1]);
        assert_eq!(tokens(d.closed()), vec![2]);
    }

    #[test]
    fn once_facts_came_their_absence_confirms_nothing() {
        let t = Instant::now();
        let mut d = Delivery::new(ms(10_000), ms(50), ms(2000), t);
        d.connected(t);
        d.written(t, 100, 1, 1);
        d.observe(t, facts(0, 1000));
        assert!(d.observe(t + ms(60_000), None).is_empty());
        assert_eq!(again(d.lost()), vec![1]);
    }

    #[test]
    fn route_looks_for_the_preferred_target_only_from_a_backup_and_each_period() {
        let t = Instant::now();
        let mut r = Route::new(ms(30_000), t);
        assert!(!r.connected(0, t));
        assert!(!r.check_preferred(t + ms(60_000)), "on the preferred one");
        assert!(r.connected(1, t + ms(60_000)));
        assert!(!r.check_preferred(t + ms(70_000)));
        assert!(r.check_preferred(t + ms(90_000)));
        assert!(!r.check_preferred(t + ms(100_000)), "a new period started");
        assert_eq!(r.current(), 1);
    }

    /// Property: whatever the interleaving of writes, facts and a loss, with a receiver
    /// that reads what its TCP acknowledged within the read grace (sometimes at once,
    /// sometimes late), advertises a window clamped as Linux does and holds at most
    /// [`BUFFER_PER_WINDOW`] times its first window, every batch comes out exactly once, in
    /// order, and nothing unread is ever confirmed or taken as read.
    #[test]
    fn every_batch_settles_once_in_order_and_nothing_unread_is_confirmed() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n.max(1)
        };
        for _ in 0..500 {
            let t0 = Instant::now();
            let mut t = t0;
            let mut d = Delivery::new(ms(1000), ms(50), ms(2000), t);
            d.connected(t);
            // A buffer at most BUFFER_PER_WINDOW times the first window (see that).
            let mut clamp = 1000 + rnd(30_000);
            let capacity = clamp + rnd(clamp * (BUFFER_PER_WINDOW - 1));
            d.observe(t, facts(0, clamp as u32));
            let (mut written, mut acked, mut read) = (0u64, 0u64, 0u64);
            // When each acknowledged byte count was reached.
            let mut ack_times: Vec<(Instant, u64)> = vec![(t, 0)];
            let mut out = Vec::new();
            let mut next = 0u32;
            let mut ends = std::collections::HashMap::new();
            for _ in 0..rnd(80) {
                t += ms(rnd(30));
                // The receiver reads at least what was acknowledged a grace ago.
                let due = ack_times
                    .iter()
                    .rev()
                    .find(|(at, _)| *at + ms(50) <= t)
                    .map_or(0, |&(_, a)| a);
                read = read.max(due);
                match rnd(3) {
                    0 => {
                        written += 1 + rnd(5000);
                        ends.insert(next, written);
                        d.written(t, written, 1, next);
                        next += 1;
                    }
                    1 => {
                        // The receiver's TCP takes what fits; the application reads some.
                        acked = (acked + rnd(written - acked + 1)).min(read + capacity);
                        ack_times.push((t, acked));
                        read += rnd(acked - read + 1);
                    }
                    _ => {
                        clamp = (clamp + rnd(2000)).min(capacity);
                        let window = (capacity - (acked - read)).min(clamp) as u32;
                        for s in d.observe(t, facts(acked, window)) {
                            assert!(ends[&s.token] <= read, "confirmed unread bytes");
                            out.push(s.token);
                        }
                    }
                }
            }
            let l = d.lost();
            for s in &l.read {
                assert!(ends[&s.token] <= read, "took unread bytes as read");
            }
            out.extend(tokens(l.read));
            out.extend(tokens(l.again));
            assert_eq!(out, (0..next).collect::<Vec<_>>());
        }
    }
}
