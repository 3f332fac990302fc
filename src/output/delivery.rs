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
//! HEP has no acknowledgement, so the collector's TCP is the only witness. A byte is
//! confirmed once the collector's TCP acknowledged it (`tcpi_bytes_acked`) **and** its
//! application has certainly read it: a collector killed with unread data in its receive
//! buffer loses that data although TCP acknowledged it. Two bounds on what may be unread,
//! both applied:
//!
//! - **Read latency**: a collector that reads continuously reads what its TCP acknowledged
//!   within a short time (`read_grace`, 25 ms by default). Bytes acknowledged more
//!   recently than that may be unread. This bound is needed because Linux keeps the
//!   advertised window at `rcv_ssthresh` while the free buffer is larger, so a little
//!   unread data does not show in the window (measured: 500 unread bytes under a 100 KB
//!   window left it unchanged).
//! - **The window**: the collector's buffer holds at most the largest window it advertised
//!   on this connection; the part of that it does not offer now sits unread. A collector
//!   that stopped reading closes its window, and everything it holds stays unconfirmed. A
//!   shortfall up to [`WINDOW_NOISE`] is taken as rounding (only the read grace applies).
//!
//! So everything up to `min(acked as of read_grace ago, acked - (max_window - window))` is
//! confirmed; the rest is written again on the next connection. A collector that reads
//! continuously and dies costs about `read_grace` of traffic in duplicates, not the whole
//! history. A collector slower than `read_grace` while its window stays open (the case
//! the window cannot show) can lose what it had not read when it dies: raise
//! `read_grace` for such a collector.
//!
//! Where the kernel gives no such facts (another OS, an old kernel), the rule is time:
//! what was written more than [`Delivery::new`]'s `fallback` ago on a connection that is
//! still up counts as confirmed.
//!
//! Why this file is over 500 lines: half of it is the state machine's unit and property
//! tests, kept beside the rules they check.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A window this much below the largest one is taken as the receiver's rounding (Linux
/// advertises windows in steps of its window scale and of the MSS, and sends no update
/// for a small gain), not as unread data: a collector that reads continuously can keep a
/// window a few KB below its largest for good, and its last bytes would never be
/// confirmed. Bytes within this margin are still covered by the read grace.
pub const WINDOW_NOISE: u64 = 16 * 1024;

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
            packets,
            token,
        });
    }

    /// Takes in what the kernel says of the connection (or `None` when it says nothing)
    /// and returns the batches now confirmed, oldest first.
    pub fn observe(&mut self, now: Instant, facts: Option<SocketFacts>) -> Vec<Settled<T>> {
        let safe = match facts {
            Some(f) => {
                self.facts = true;
                if f.acked > self.acked || f.acked >= self.written {
                    self.progress_at = now;
                }
                self.acked = self.acked.max(f.acked);
                self.acks.push_back((now, self.acked));
                self.max_window = self.max_window.max(f.window);
                let mut unread = u64::from(self.max_window - f.window.min(self.max_window));
                if unread <= WINDOW_NOISE {
                    // Rounding, not unread data: the read grace covers this much.
                    unread = 0;
                }
                let read = self.acked_before_grace(now);
                read.min(self.acked.saturating_sub(unread))
            }
            None if self.facts => {
                // Facts stopped coming (the socket is going away): confirm nothing more.
                0
            }
            None => {
                let old = self
                    .batches
                    .iter()
                    .take_while(|b| now.saturating_duration_since(b.at) >= self.fallback)
                    .last();
                old.map_or(0, |b| b.end)
            }
        };
        let n = self.batches.iter().take_while(|b| b.end <= safe).count();
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
    /// every batch not confirmed is returned, oldest first, to be written again.
    pub fn lost(&mut self) -> Vec<Settled<T>> {
        self.batches.drain(..).map(settle).collect()
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

    #[test]
    fn acknowledged_and_read_is_confirmed_unread_is_not() {
        let t = Instant::now();
        let k = 100_000u64;
        let mut d = Delivery::new(ms(10_000), ms(50), ms(2000), t);
        d.connected(t);
        d.observe(t, facts(0, 1_000_000));
        d.written(t, k, 1, 1);
        d.written(t, 2 * k, 1, 2);
        d.written(t, 3 * k, 1, 3);
        // Acknowledged with the window wide open, but just now: it may not be read yet.
        assert!(d.observe(t + ms(1), facts(3 * k, 1_000_000)).is_empty());
        // The read grace passed: read.
        assert_eq!(
            tokens(d.observe(t + ms(60), facts(3 * k, 1_000_000))),
            vec![1, 2, 3]
        );
        d.written(t + ms(60), 4 * k, 2, 4);
        d.written(t + ms(60), 5 * k, 2, 5);
        assert!(d.observe(t + ms(61), facts(5 * k, 850_000)).is_empty());
        // Acknowledged long enough ago, but the window shrank by 150 KB: bytes 350 K..500 K
        // are unread, and batch 4 (300 K..400 K) is partly among them.
        assert!(d.observe(t + ms(200), facts(5 * k, 850_000)).is_empty());
        // The collector read on: 100 KB unread, batch 4 is read.
        assert_eq!(
            tokens(d.observe(t + ms(210), facts(5 * k, 900_000))),
            vec![4]
        );
        // A shortfall of a few KB is the receiver's rounding: read (after the grace).
        assert_eq!(
            tokens(d.observe(t + ms(220), facts(5 * k, 1_000_000 - 4096))),
            vec![5]
        );
    }

    #[test]
    fn what_is_unread_comes_back_after_a_loss() {
        let t = Instant::now();
        let mut d = Delivery::new(ms(10_000), ms(50), ms(2000), t);
        d.connected(t);
        d.observe(t, facts(0, 1_000_000));
        d.written(t, 100_000, 1, 1);
        d.written(t, 200_000, 1, 2);
        assert!(d.observe(t + ms(10), facts(200_000, 900_000)).is_empty());
        // 100 KB unread: the second batch.
        assert_eq!(
            tokens(d.observe(t + ms(100), facts(200_000, 900_000))),
            vec![1]
        );
        // Lost now: only what may be unread comes back.
        assert_eq!(tokens(d.lost()), vec![2]);
    }

    #[test]
    fn what_was_acknowledged_within_the_read_grace_comes_back_after_a_loss() {
        let t = Instant::now();
        let mut d = Delivery::new(ms(10_000), ms(50), ms(2000), t);
        d.connected(t);
        for i in 0..10u32 {
            let at = t + ms(20 * u64::from(i));
            d.written(at, u64::from(i + 1) * 100, 1, i);
            // Acknowledged at once, window unchanged (Linux's rcv_ssthresh clamp).
            d.observe(at, facts(u64::from(i + 1) * 100, 64_000));
        }
        // At 180 ms, what was acknowledged by 130 ms (batches 0..=6) is read.
        assert_eq!(tokens(d.lost()), vec![7, 8, 9]);
    }

    #[test]
    fn a_collector_that_stopped_reading_keeps_its_whole_buffer_unconfirmed() {
        let t = Instant::now();
        let mut d = Delivery::new(ms(10_000), ms(50), ms(2000), t);
        d.connected(t);
        assert!(d.observe(t, facts(0, 64_000)).is_empty());
        for i in 1..=10u32 {
            d.written(t, u64::from(i) * 6400, 1, i);
        }
        // The window closed: 64,000 bytes acknowledged, none read.
        assert!(d.observe(t, facts(64_000, 0)).is_empty());
        assert_eq!(d.lost().len(), 10);
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
        assert_eq!(tokens(d.lost()), vec![1]);
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
    /// sometimes late) and advertises a window clamped as Linux does, every batch comes out
    /// exactly once, in order, and nothing unread is ever confirmed.
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
            let capacity = 1000 + rnd(100_000);
            let mut clamp = 1000 + rnd(capacity);
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
            out.extend(tokens(d.lost()));
            assert_eq!(out, (0..next).collect::<Vec<_>>());
        }
    }
}
