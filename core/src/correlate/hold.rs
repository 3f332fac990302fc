//! Holding: events of a handle or session that may still bind wait here, bounded in time
//! (`hold_us`) and count (`max_held`), then go to their groups or, when no binding came,
//! to the fallback. The handle and the session paths share this one state ([`Hold`]).

use std::num::NonZeroU64;
use std::sync::Arc;

use super::group::{emit, emit_groups, Group};
use super::{Config, Correlated, Facts};
use crate::janus::event::Event;

/// An event kept past its body's processing, with when it came in.
#[derive(Debug, Clone)]
pub(super) struct Held {
    /// The event, owning its bytes.
    pub event: Event,
    /// The `now` it was pushed with.
    pub at: u64,
}

impl Held {
    /// An event kept past its body's processing: with bytes of its own
    /// ([`Event::detached`]), so that what is kept is the event, not its whole body.
    pub(super) fn new(event: Event, at: u64) -> Held {
        Held {
            event: event.detached(),
            at,
        }
    }
}

/// What a handle or a session holds while it waits for a binding, and its life: the state
/// the two paths share.
#[derive(Debug, Default)]
pub(super) struct Hold {
    /// Events waiting, oldest first.
    pub held: Vec<Held>,
    /// The hold ran out without a binding: events go to the fallback until one comes.
    pub gave_up: bool,
    /// When the last event came (the clock's `now`).
    pub last_seen: u64,
    /// When it ended (detached, destroyed), if it did: kept for the grace period. Not
    /// zero (see [`Hold::end`]), so that it takes 8 bytes, not 16: a handle's state stays
    /// within its 256 (`tests.rs`).
    pub ended_at: Option<NonZeroU64>,
}

/// Why a handle or session is forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Over {
    /// It ended and its grace period (the hold time) passed.
    Ended,
    /// Nothing came for `idle_us`.
    Idle,
}

impl Hold {
    /// A new hold, seen at `now`.
    pub(super) fn seen(now: u64) -> Hold {
        Hold {
            last_seen: now,
            ..Hold::default()
        }
    }

    /// Holds `ev`; when the hold is full, gives back the oldest (to send to the fallback).
    pub(super) fn push(&mut self, ev: Event, now: u64, max_held: usize) -> Option<Held> {
        let first = (self.held.len() >= max_held).then(|| self.held.remove(0));
        self.held.push(Held::new(ev, now));
        first
    }

    /// Whether the oldest held event has waited the hold time.
    pub(super) fn ran_out(&self, now: u64, hold_us: u64) -> bool {
        self.held
            .first()
            .is_some_and(|e| now.saturating_sub(e.at) >= hold_us)
    }

    /// It ended at `now` (a clock at 0 counts as 1 µs).
    pub(super) fn end(&mut self, now: u64) {
        self.ended_at = NonZeroU64::new(now.max(1));
    }

    /// Whether it is time to forget it, and why.
    pub(super) fn over(&self, now: u64, cfg: &Config) -> Option<Over> {
        match self.ended_at {
            Some(t) if now.saturating_sub(t.get()) >= cfg.hold_us => Some(Over::Ended),
            None if now.saturating_sub(self.last_seen) >= cfg.idle_us => Some(Over::Idle),
            _ => None,
        }
    }
}

/// The ids of a table's rows whose hold passes `keep` (collected first: releasing changes
/// the table).
pub(super) fn ids_where<V>(
    table: &super::HashMap<u64, V>,
    hold: impl Fn(&V) -> &Hold,
    keep: impl Fn(&Hold) -> bool,
) -> Vec<u64> {
    table
        .iter()
        .filter(|(_, v)| keep(hold(v)))
        .map(|(k, _)| *k)
        .collect()
}

/// Where released events go: a bound handle's or session's groups, or a fallback id.
pub(super) enum To<'a> {
    Groups(&'a [Group]),
    Cid(Arc<str>),
}

/// Emits held events in order, each with `base` and the time it was held.
pub(super) fn release_held(
    out: &mut Vec<Correlated>,
    held: Vec<Held>,
    base: &Facts,
    now: u64,
    to: &To,
) {
    for h in held {
        let facts = Facts {
            held_us: now.saturating_sub(h.at),
            ..base.clone()
        };
        match to {
            To::Groups(groups) => emit_groups(out, h.event, groups, facts),
            To::Cid(cid) => emit(out, h.event, cid.clone(), facts),
        }
    }
}
