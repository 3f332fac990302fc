//! When a body is safe: the bookkeeping behind the intake journal's checkpoint and the
//! broker inputs' acknowledgements.
//!
//! A body is *released* once the correlator holds none of its events (each body is taken
//! at its own time, which the correlator keeps on what it holds: the pipeline task hands
//! [`Settling::settle`] the correlator's `held_times`). Its packets were then queued to every
//! collector. With a spool, it is *safe* once every spooled collector also took into its
//! spool what was queued at its release (each output's [`Progress`], which it publishes
//! for this: control state, not a counter of `/metrics`); without one, at its release.
//!
//! Bodies are released in any order: one whose events wait for a binding does not hold
//! back the bodies after it (a broker's prefetch window would otherwise fill up behind one
//! held event, and the binding it waits for could never arrive).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use super::journal::{Intake, Record};
use super::{Job, Outcome, Receipt};
use crate::output::Progress;
use crate::telemetry::{Emit, Ingest};

/// Bodies taken and not yet safe, each with what to do once it is (`T`).
#[derive(Debug)]
pub struct Settler<T> {
    /// Taken, some event still held: (taken at, token), oldest first.
    pending: VecDeque<(u64, T)>,
    /// Released, waiting for the spools: (each spooled collector's `enqueued` then, token).
    waiting: VecDeque<(Vec<u64>, T)>,
    /// The spooled collectors' progress (empty: safe at release).
    spooled: Vec<Arc<Progress>>,
}

impl<T> Settler<T> {
    /// A settler that waits for these collectors' spools.
    pub fn new(spooled: Vec<Arc<Progress>>) -> Self {
        Settler {
            pending: VecDeque::new(),
            waiting: VecDeque::new(),
            spooled,
        }
    }

    /// A body was taken at `at` (a time no other body was taken at).
    pub fn take(&mut self, at: u64, token: T) {
        self.pending.push_back((at, token));
    }

    /// A body none of whose events was held, taken after its packets were queued: safe
    /// once the spools take them (at the next [`Settler::settle`]; at once without a
    /// spool).
    pub fn take_released(&mut self, token: T) {
        let marks = self.spooled.iter().map(|p| p.enqueued()).collect();
        self.waiting.push_back((marks, token));
    }

    /// After the released packets were queued: moves the bodies none of whose events is
    /// held (`held`: the times of the bodies with held events; `None`: nothing is held any
    /// more) on, and appends the tokens of the safe ones to `out`, in the order they
    /// became safe.
    pub fn settle(&mut self, held: Option<&HashSet<u64>>, out: &mut Vec<T>) {
        let released = |at: &u64| held.is_none_or(|h| !h.contains(at));
        if self.pending.iter().any(|(at, _)| released(at)) {
            let pending = std::mem::take(&mut self.pending);
            for (at, t) in pending {
                if released(&at) {
                    self.take_released(t);
                } else {
                    self.pending.push_back((at, t));
                }
            }
        }
        self.settle_released(out);
    }

    /// Appends the tokens of the released bodies the spools took to `out` (what
    /// [`Settler::settle`] does without looking at held events).
    pub fn settle_released(&mut self, out: &mut Vec<T>) {
        while let Some((marks, _)) = self.waiting.front() {
            let taken = self
                .spooled
                .iter()
                .zip(marks)
                .all(|(p, &mark)| p.spooled() >= mark);
            if !taken {
                break;
            }
            if let Some((_, t)) = self.waiting.pop_front() {
                out.push(t);
            }
        }
    }

    /// Whether every body taken is safe.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.waiting.is_empty()
    }

    /// The tokens not yet safe, in any order.
    pub fn outstanding(&self) -> impl Iterator<Item = &T> {
        self.pending
            .iter()
            .map(|(_, t)| t)
            .chain(self.waiting.iter().map(|(_, t)| t))
    }
}

/// What the pipeline task does once a body is safe.
pub enum Token {
    /// A journaled body: the checkpoint may pass it.
    Journal(u64),
    /// A broker message: acknowledge it.
    Receipt(Receipt),
}

/// The pipeline task's bookkeeping of bodies not yet safe: the intake journal (with the
/// spool), the bodies taken and not yet safe, and what becomes of them (the checkpoint,
/// the brokers' receipts).
pub struct Settling {
    settler: Settler<Token>,
    intake: Option<Intake>,
    held: HashSet<u64>,
    done: Vec<Token>,
    /// The time the last body was taken at: each body gets its own.
    last_at: u64,
}

impl Settling {
    /// A time for the next body, after the previous one's.
    pub fn time(&mut self) -> u64 {
        self.last_at = crate::time::now_us().max(self.last_at + 1);
        self.last_at
    }

    /// Journals `job`, taken at `at`, before the pipeline takes it (and before its
    /// answer): its sequence number, unless there is no journal (no spool), a broker
    /// keeps the message until it is acknowledged, or the write failed (counted in
    /// `telemetry`).
    pub fn journal(&mut self, at: u64, job: &Job, telemetry: &dyn Emit<Ingest>) -> Option<u64> {
        match (self.intake.as_mut(), &job.receipt) {
            (Some(intake), None) => intake.take(at, job, telemetry),
            _ => None,
        }
    }

    /// The bodies the journal kept from the last run that were delivered then, to warm the
    /// correlator up with (nothing of them is sent); once.
    pub fn journal_warm(&mut self) -> Vec<Record> {
        self.intake
            .as_mut()
            .map(|i| std::mem::take(&mut i.warm))
            .unwrap_or_default()
    }

    /// The bodies the journal kept from the last run that were not safe yet, to take
    /// again (each through [`Settling::taken_again`]); once.
    pub fn journal_back(&mut self) -> Vec<Record> {
        self.intake
            .as_mut()
            .map(|i| std::mem::take(&mut i.back))
            .unwrap_or_default()
    }

    /// A body of the last run is taken again at the time it was taken then: it waits to be
    /// safe under its old sequence number.
    pub fn taken_again(&mut self, r: &Record) {
        self.last_at = self.last_at.max(r.at_us);
        if let Some(intake) = self.intake.as_mut() {
            intake.newest = intake.newest.max(r.seq);
        }
        self.settler.take(r.at_us, Token::Journal(r.seq));
    }

    /// Whether every body taken is safe.
    pub fn is_empty(&self) -> bool {
        self.settler.is_empty()
    }

    /// Flushes the journal to the disk (at the end).
    pub fn sync(&mut self) {
        if let Some(intake) = self.intake.as_mut() {
            if let Err(e) = intake.journal.sync() {
                tracing::error!(error = %e, "Intake journal sync failed.");
            }
        }
    }

    /// Settles what is safe now (`held_times` gives the times of the bodies with events
    /// held; `all_released`: the correlator holds nothing any more); advances the
    /// journal's checkpoint.
    pub fn settle(&mut self, held_times: impl FnOnce(&mut HashSet<u64>), all_released: bool) {
        if !self.settler.is_empty() {
            self.held.clear();
            held_times(&mut self.held);
            let held = (!all_released).then_some(&self.held);
            self.settler.settle(held, &mut self.done);
            self.acknowledge();
        }
        if let Some(intake) = self.intake.as_mut() {
            let oldest = self
                .settler
                .outstanding()
                .filter_map(|t| match t {
                    Token::Journal(seq) => Some(*seq),
                    Token::Receipt(_) => None,
                })
                .min();
            intake.checkpoint(oldest);
        }
    }

    /// A body went through the pipeline at `at` and its packets were queued: from now on
    /// it waits to be safe. `journaled`: its sequence number in the intake journal;
    /// `receipt`: its broker message's; `unreadable`: nothing in it read as an event (the
    /// broker rejects it at once, without redelivery); `held`: some of its events wait
    /// for a binding. A body neither journaled nor a broker's (no spool) has nothing to
    /// wait for.
    pub fn taken(
        &mut self,
        at: u64,
        journaled: Option<u64>,
        receipt: Option<Receipt>,
        unreadable: bool,
        held: bool,
    ) {
        let token = match (journaled, receipt) {
            (_, Some(r)) if unreadable => {
                r.settle(Outcome::Malformed);
                None
            }
            (_, Some(r)) => Some(Token::Receipt(r)),
            (Some(seq), None) => Some(Token::Journal(seq)),
            (None, None) => None,
        };
        if let Some(t) = token {
            if held {
                self.settler.take(at, t);
            } else {
                self.settler.take_released(t);
                self.settle_released();
            }
        }
    }

    /// Settles the released bodies the spools took (no walk over the held events; the
    /// checkpoint waits for the tick).
    pub fn settle_released(&mut self) {
        self.settler.settle_released(&mut self.done);
        self.acknowledge();
    }

    fn acknowledge(&mut self) {
        for t in self.done.drain(..) {
            if let Token::Receipt(r) = t {
                r.settle(Outcome::Safe);
            }
        }
    }
}

impl Settling {
    /// Bookkeeping that waits for these collectors' spools, with the intake journal when
    /// the spool is on.
    pub fn new(spooled: Vec<Arc<Progress>>, intake: Option<Intake>) -> Settling {
        Settling {
            settler: Settler::new(spooled),
            intake,
            held: HashSet::new(),
            done: Vec::new(),
            last_at: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_body_does_not_hold_back_the_ones_after_it() {
        let mut s = Settler::new(Vec::new());
        for at in [10, 20, 30] {
            s.take(at, at);
        }
        let mut out = Vec::new();
        s.settle(Some(&HashSet::from([20])), &mut out);
        assert_eq!(out, [10, 30]);
        out.clear();
        s.settle(Some(&HashSet::from([20])), &mut out);
        assert!(out.is_empty());
        s.settle(None, &mut out);
        assert_eq!(out, [20]);
        assert!(s.is_empty());
        // Known released when taken: safe at once without a spool.
        s.take_released(40);
        out.clear();
        s.settle_released(&mut out);
        assert_eq!(out, [40]);
    }

    #[test]
    fn with_a_spool_a_body_is_safe_once_its_packets_are_spooled() {
        let c = Arc::new(Progress::default());
        let mut s = Settler::new(vec![c.clone()]);
        c.queued(5);
        s.take(1, "a");
        let mut out = Vec::new();
        s.settle(None, &mut out);
        assert!(out.is_empty(), "5 queued, 0 spooled");
        c.queued(4);
        s.take(2, "b");
        s.settle(None, &mut out);
        c.in_spool(5);
        s.settle(None, &mut out);
        assert_eq!(out, ["a"], "b waits for 9");
        c.in_spool(4);
        s.settle(None, &mut out);
        assert_eq!(out, ["a", "b"]);
    }
}
