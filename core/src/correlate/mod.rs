//! The correlator: learns which sessions, handles and PeerConnections belong together and
//! gives every event its correlation id. Sans-IO and deterministic: time is an input
//! (`now`, in microseconds, from the caller's clock or the events' own timestamps).
//!
//! Rules (per Janus instance, the `emitter`, which is part of every id):
//! - VideoRoom, AudioBridge, TextRoom: one group per room, `<emitter>:<plugin>:<room>`. A
//!   handle binds when an event of its own names the room (`joined`, `subscribing`,
//!   `join`, …); a handle that manages rooms (`created`, `edited`, `destroyed`, `kicked`)
//!   belongs to each of them; events without session or handle (`leaving`,
//!   `unpublished`, `kicked`, forwarders) go to the room they name, and are tied to the
//!   participant's handle through (room, participant id).
//! - SIP plugin: the Call-ID of the call in progress, `<call-id>` exactly, so homer-app's
//!   default SIP correlation pulls the events into the call. A call's set-up (the remote
//!   offer and first ICE events before `calling`) is held until the Call-ID is known;
//!   teardown after `hangup` stays with the call until the next call's offer.
//! - Anything else: a fallback id, `<emitter>:session:<id>` by default (or per handle,
//!   or per opaque id). Core events: `<emitter>:core:<YYYY-MM-DDTHH>`; transport events
//!   not tied to a session (HTTP requests, whose connection ids are not sessions'):
//!   `<emitter>:transport:<plugin>:<YYYY-MM-DDTHH>` (e.g. `…:transport:http:2026-11-24T03`),
//!   one flow per hour (UTC, of the event's time) so that they stay searchable instead of
//!   growing forever; external events: `<emitter>:external`.
//! - Events of a handle that may still bind are held (bounded in time and count) and
//!   released with the right id. Session-level events go to every group of the session's
//!   handles (one packet per group), to the session's fallback flow as well when one of
//!   its handles never binds (an echotest beside a VideoRoom), and to a group a handle
//!   gets within the hold window after the event (`session created` reaches the room the
//!   session's publisher joins later).
//! - State is bounded: it ends on detach / destroy (after a grace period equal to the
//!   hold time, for late events), expires after inactivity, and a cap evicts the
//!   least recently active handles. Every release, expiry and eviction is counted.
//!
//! The rules live by concern, each a method of `EmitterState` taking the event's context
//! (`Cx`): `state.rs` (the tables' rows), `emitter.rs` (the tables, and which path an event takes), `session.rs`
//! (sessions and their transports), `handle.rs` (handles: what an event teaches, then
//! bound, held or fallback), `room.rs`, `sip.rs`, `hold.rs` (the one hold state handles
//! and sessions share), `sweep.rs` (expiry, eviction), `cid.rs` (fallback, core and
//! transport ids), `group.rs` (interned groups, handing events out). This file is the
//! API; `types.rs` its values.

use std::collections::HashMap as StdHashMap;
use std::sync::Arc;

use crate::janus::event::Event;

mod cid;
mod emitter;
mod group;
mod handle;
mod hold;
mod room;
mod session;
mod sip;
mod state;
mod sweep;
#[cfg(test)]
mod tests;
mod types;

pub use cid::hour_label;
pub use types::{Config, Correlated, Facts, Fallback, GroupKey, Stats};

use emitter::{Cx, EmitterState};

/// Maps keyed by ids: ahash (fast, randomly seeded, so crafted ids cannot force collisions).
type HashMap<K, V> = StdHashMap<K, V, ahash::RandomState>;

/// The correlator. See the module documentation for the rules.
#[derive(Debug)]
pub struct Correlator {
    cfg: Config,
    emitters: HashMap<Arc<str>, EmitterState>,
    stats: Stats,
    last_sweep: u64,
}

/// How often (µs of the clock) the correlator sweeps for expired holds and state.
const SWEEP_EVERY_US: u64 = 100_000;

impl Correlator {
    /// A correlator with these settings.
    pub fn new(cfg: Config) -> Self {
        Correlator {
            cfg,
            emitters: HashMap::default(),
            stats: Stats::default(),
            last_sweep: 0,
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Handles tracked (live or in their grace period), over all emitters.
    pub fn handles(&self) -> usize {
        self.emitters.values().map(|e| e.handles.len()).sum()
    }

    /// Events waiting for a binding, over all emitters.
    pub fn held(&self) -> usize {
        self.emitters
            .values()
            .map(|e| {
                e.handles.values().map(|h| h.hold.held.len()).sum::<usize>()
                    + e.sessions
                        .values()
                        .map(|s| s.hold.held.len())
                        .sum::<usize>()
            })
            .sum()
    }

    /// When the oldest held event came in (the `now` it was pushed with), if any is held:
    /// everything pushed before it has been released.
    pub fn oldest_held(&self) -> Option<u64> {
        self.emitters
            .values()
            .flat_map(|e| {
                let h = e.handles.values().flat_map(|h| h.hold.held.first());
                let s = e.sessions.values().flat_map(|s| s.hold.held.first());
                h.chain(s).map(|h| h.at)
            })
            .min()
    }

    /// The times (the `now` they were pushed with) of the events held, added to `out`:
    /// a body taken at its own time has all its events released when its time is not
    /// there.
    pub fn held_times(&self, out: &mut std::collections::HashSet<u64>) {
        for e in self.emitters.values() {
            let h = e.handles.values().flat_map(|h| h.hold.held.iter());
            let s = e.sessions.values().flat_map(|s| s.hold.held.iter());
            out.extend(h.chain(s).map(|h| h.at));
        }
    }

    /// Whether the correlator holds no state at all.
    pub fn is_empty(&self) -> bool {
        self.emitters.is_empty()
    }

    /// Takes one event at time `now`; appends what can be released to `out`, in order.
    pub fn push(&mut self, ev: Event, now: u64, out: &mut Vec<Correlated>) {
        self.stats.events += 1;
        if now >= self.last_sweep + SWEEP_EVERY_US {
            self.tick(now, out);
        }
        // After the sweep, which counts its own releases.
        let start = out.len();
        let emitter = ev.emitter.clone();
        let Correlator {
            cfg,
            emitters,
            stats,
            ..
        } = self;
        let em = emitters.entry(emitter.clone()).or_default();
        let mut cx = Cx {
            em: &emitter,
            cfg,
            st: stats,
            now,
            out,
        };
        em.push(&mut cx, ev);
        self.stats.released += (out.len() - start) as u64;
    }

    /// Releases held events whose time is up and forgets ended or idle state.
    pub fn tick(&mut self, now: u64, out: &mut Vec<Correlated>) {
        self.last_sweep = now;
        let start = out.len();
        let Correlator {
            cfg,
            emitters,
            stats,
            ..
        } = self;
        emitters.retain(|name, em| {
            em.sweep(&mut Cx {
                em: name,
                cfg,
                st: stats,
                now,
                out,
            });
            !em.is_empty()
        });
        self.stats.released += (out.len() - start) as u64;
    }

    /// Releases every held event (with the fallback id where no binding came), e.g. at
    /// the end of a capture or at shutdown, at time `now` (µs). State is kept.
    pub fn flush(&mut self, now: u64, out: &mut Vec<Correlated>) {
        let start = out.len();
        let Correlator {
            cfg,
            emitters,
            stats,
            ..
        } = self;
        for (name, em) in emitters.iter_mut() {
            let mut cx = Cx {
                em: name,
                cfg,
                st: stats,
                now,
                out,
            };
            let holding = |h: &hold::Hold| !h.held.is_empty();
            for hid in hold::ids_where(&em.handles, |h| &h.hold, holding) {
                em.release_handle_fallback(&mut cx, hid);
            }
            for sid in hold::ids_where(&em.sessions, |s| &s.hold, holding) {
                em.release_session(&mut cx, sid);
            }
        }
        self.stats.released += (out.len() - start) as u64;
    }
}
