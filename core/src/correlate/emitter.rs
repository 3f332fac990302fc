//! One Janus instance's state (its sessions, handles, rooms, transports) and where each of
//! its events goes first: by type to the core, transport, session, handle or room path.

use std::sync::Arc;

use smallvec::SmallVec;

use super::cid::{hour, CidCache, CidKey};
use super::group::{emit, Group, Groups};
use super::hold::Held;
use super::state::{HandleState, SessionState, TransportSeen};
use super::{Config, Correlated, Facts, GroupKey, HashMap, Stats};
use crate::janus::event::{Event, EventType, Plugin, RoomId};

/// The context of one event's handling (or one sweep): the emitter, the settings, the
/// counters, the clock and where correlated events go. Every rule takes it.
pub(super) struct Cx<'a> {
    /// The emitter (Janus's `server_name`), part of every id.
    pub em: &'a str,
    /// The settings.
    pub cfg: &'a Config,
    /// The counters.
    pub st: &'a mut Stats,
    /// The clock, µs.
    pub now: u64,
    /// Where correlated events go, in order.
    pub out: &'a mut Vec<Correlated>,
}

/// One emitter's tables.
#[derive(Debug, Default)]
pub(super) struct EmitterState {
    pub sessions: HashMap<u64, SessionState>,
    pub handles: HashMap<u64, HandleState>,
    /// (plugin, room, participant id) → handle.
    pub participants: HashMap<(Plugin, RoomId, RoomId), u64>,
    pub transports: HashMap<Arc<str>, TransportSeen>,
    /// Persistent connection id → sessions created on it.
    pub transport_sessions: HashMap<Arc<str>, SmallVec<[u64; 2]>>,
    /// Interned groups; an entry goes when no handle or session refers to it any more.
    pub groups: HashMap<GroupKey, Group>,
    /// Recent fallback ids (read from `&self` methods too, hence the cell).
    pub cids: std::cell::RefCell<CidCache>,
    /// Per session: its events sent before any of its handles had a group, kept for the
    /// hold window, so that a group one of its handles gets within it receives them too
    /// (with the groups that already have them). Only sessions that have some pay.
    pub late: HashMap<u64, Vec<(Held, Groups)>>,
}

impl EmitterState {
    /// The fallback id of `key` for emitter `em`.
    pub(super) fn cid(&self, em: &str, key: CidKey) -> Arc<str> {
        self.cids.borrow_mut().get(em, key)
    }

    /// The hour's core flow, for events that name nothing else.
    fn core(&self, cx: &mut Cx<'_>, ev: Event) {
        let key = CidKey::Core(hour(ev.timestamp.unwrap_or(cx.now)));
        emit(cx.out, ev, self.cid(cx.em, key), Facts::default())
    }

    /// Takes one event of this emitter.
    pub(super) fn push(&mut self, cx: &mut Cx<'_>, ev: Event) {
        match ev.kind {
            EventType::Core => self.core(cx, ev),
            EventType::External if ev.session_id.is_none() => emit(
                cx.out,
                ev,
                self.cid(cx.em, CidKey::External),
                Facts::default(),
            ),
            EventType::Transport => self.transport_event(cx, ev),
            EventType::Session => match ev.session_id {
                Some(sid) => self.session_lifecycle(cx, sid, ev),
                None => self.core(cx, ev),
            },
            _ => match (ev.handle_id, ev.session_id) {
                (Some(hid), _) => self.handle_event(cx, hid, ev),
                (None, _) if ev.kind == EventType::Plugin => self.room_event(cx, ev),
                (None, Some(sid)) => {
                    self.sessions.entry(sid).or_default().hold.last_seen = cx.now;
                    self.session_event(cx, sid, ev)
                }
                (None, None) => self.core(cx, ev),
            },
        }
    }

    /// Whether the emitter holds nothing any more (it can be forgotten).
    pub(super) fn is_empty(&self) -> bool {
        self.sessions.is_empty()
            && self.handles.is_empty()
            && self.participants.is_empty()
            && self.transports.is_empty()
    }
}
