//! Handles: a handle event is tracked (`track`), teaches the handle what it says
//! (`learn`: plugin, addresses, and through `sip.rs` and `room.rs` the call or rooms it is
//! in), then goes to the handle's groups, waits in its hold while it may still bind, or
//! goes to the fallback flow when it never binds (`EmitterState::handle_event`).
//!
//! `track` and `learn` are free functions over the tables they touch, so that one lookup
//! of the handle serves the whole event (no re-lookups after an insert).

use std::sync::Arc;

use super::cid::CidKey;
use super::emitter::{Cx, EmitterState};
use super::group::{emit, emit_groups, Group, Groups};
use super::hold::{release_held, Hold, To};
use super::sip::learn_sip;
use super::state::{HandleState, Learned, SessionState, SipPhase};
use super::{room, Facts, Fallback, GroupKey, HashMap};
use crate::janus::event::{Body, Event, Plugin};

/// The handle's state, created on its first event; the handle is listed in its session.
fn track<'a>(
    sessions: &mut HashMap<u64, SessionState>,
    handles: &'a mut HashMap<u64, HandleState>,
    hid: u64,
    ev: &Event,
    now: u64,
) -> &'a mut HandleState {
    let sid = ev.session_id;
    // Until ICE names the PeerConnection's client, the session's client (the address its
    // API requests came from) stands for it.
    let session_client = sid.and_then(|s| sessions.get(&s)).and_then(|s| s.client);
    let h = handles.entry(hid).or_insert_with(|| HandleState {
        session: sid,
        plugin: None,
        groups: Groups::new(),
        participant: None,
        display: None,
        feeds: Vec::new(),
        sip: SipPhase::Idle,
        hold: Hold::seen(now),
        client: session_client,
        janus: None,
        opaque: None,
    });
    h.hold.last_seen = now;
    if h.session.is_none() {
        h.session = sid;
    }
    if h.opaque.is_none() {
        h.opaque = ev.opaque_id.clone();
    }
    if let Some(sid) = h.session {
        let s = sessions.entry(sid).or_default();
        s.hold.last_seen = now;
        if !s.handles.contains(&hid) {
            s.handles.push(hid);
        }
    }
    h
}

/// Updates the handle from its event.
fn learn(
    h: &mut HandleState,
    groups: &mut HashMap<GroupKey, Group>,
    em: &str,
    ev: &Event,
) -> Learned {
    let mut learned = Learned::default();
    match &ev.body {
        Body::Handle { name, plugin } => {
            if let Some(p) = plugin {
                h.plugin = Some(*p);
            }
            learned.detached = &**name == "detached";
        }
        Body::WebRtc(w) => {
            if w.remote.is_some() {
                h.client = w.remote;
            }
            if w.local.is_some() {
                h.janus = w.local;
            }
        }
        // A remote offer with no call in progress starts a new call: hold its events until
        // the Call-ID is known. Mid-call offers are renegotiations.
        Body::Jsep { remote, sdp_type }
            if h.plugin == Some(Plugin::Sip)
                && *remote
                && &**sdp_type == "offer"
                && h.sip == SipPhase::Idle =>
        {
            h.sip = SipPhase::SettingUp;
            h.groups.clear();
            h.hold.gave_up = false;
            h.client = None;
            h.janus = None;
        }
        Body::Plugin(p) => {
            if let Some(pl) = p.plugin {
                h.plugin.get_or_insert(pl);
            }
            match (h.plugin.unwrap_or(Plugin::Other), &p.room) {
                (Plugin::Sip, _) => learn_sip(h, groups, em, p, &mut learned),
                (pl @ (Plugin::VideoRoom | Plugin::AudioBridge | Plugin::TextRoom), Some(room)) => {
                    room::learn_room(h, groups, em, (pl, room), p, &mut learned)
                }
                _ => {}
            }
        }
        _ => {}
    }
    learned
}

impl EmitterState {
    /// The handle's fallback id, as the settings say.
    fn handle_cid(&self, em: &str, fallback: Fallback, hid: u64, h: &HandleState) -> Arc<str> {
        match fallback {
            Fallback::Handle => self.cid(em, CidKey::Handle(hid)),
            Fallback::OpaqueId => match &h.opaque {
                Some(o) => self.cid(em, CidKey::Opaque(o.clone())),
                None => self.cid(em, CidKey::session(h.session, h.hold.last_seen)),
            },
            Fallback::Session => self.cid(em, CidKey::session(h.session, h.hold.last_seen)),
        }
    }

    /// What the handle's events say of it: participant, display, feeds, call, addresses.
    pub(super) fn handle_facts(h: &HandleState) -> Facts {
        Facts {
            group: None,
            participant: h.participant.clone(),
            display: h.display.clone(),
            feeds: h.feeds.clone(),
            call_id: h.groups.iter().find_map(|g| match &g.key {
                GroupKey::Call(c) => Some(c.clone()),
                _ => None,
            }),
            held_us: 0,
            client: h.client,
            janus: h.janus,
        }
    }

    /// An event of handle `hid`.
    pub(super) fn handle_event(&mut self, cx: &mut Cx<'_>, hid: u64, ev: Event) {
        if !self.handles.contains_key(&hid) && self.handles.len() >= cx.cfg.max_handles {
            // The hard cap: make room before tracking one more handle.
            self.evict(cx);
        }
        let h = track(&mut self.sessions, &mut self.handles, hid, &ev, cx.now);
        let learned = learn(h, &mut self.groups, cx.em, &ev);
        let bound = !h.groups.is_empty();
        let may_bind = !h.hold.gave_up && h.plugin.is_none_or(Plugin::binds);
        if let Some(key) = learned.new_participant {
            self.participants.insert(key, hid);
        }
        if let Some((cid, key)) = learned.own_cid {
            let h = &self.handles[&hid];
            let mut facts = Self::handle_facts(h);
            facts.call_id = Some(cid.clone());
            facts.group = Some(key);
            emit(cx.out, ev, cid, facts);
        } else if bound {
            self.send_bound(cx, hid, ev, learned.named);
        } else if may_bind {
            self.hold(cx, hid, ev);
        } else {
            self.send_fallback(cx, hid, ev);
        }
        if learned.detached {
            // Held events wait out the grace period: a binding may still come.
            if let Some(h) = self.handles.get_mut(&hid) {
                h.hold.end(cx.now);
            }
        }
    }

    /// A bound handle's event: to its groups (only the room it names, if it names one of
    /// them), after what the handle and its session held.
    fn send_bound(&mut self, cx: &mut Cx<'_>, hid: u64, ev: Event, named: Option<GroupKey>) {
        let h = &self.handles[&hid];
        let groups = h.groups.clone();
        let to: Groups = match &named {
            Some(k) if groups.iter().any(|g| &g.key == k) => {
                groups.iter().filter(|g| &g.key == k).cloned().collect()
            }
            _ => groups.clone(),
        };
        let facts = Self::handle_facts(h);
        let session = h.session;
        self.release_handle(cx, hid, &groups);
        if let Some(sid) = session {
            self.release_session(cx, sid);
            self.echo_late(cx, sid);
        }
        emit_groups(cx.out, ev, &to, facts);
    }

    /// An event of a handle that may still bind: held (the oldest goes to the fallback
    /// when the hold is full).
    fn hold(&mut self, cx: &mut Cx<'_>, hid: u64, ev: Event) {
        cx.st.held += 1;
        let Some(h) = self.handles.get_mut(&hid) else {
            return;
        };
        let Some(first) = h.hold.push(ev, cx.now, cx.cfg.max_held) else {
            return;
        };
        cx.st.hold_overflow += 1;
        let h = &self.handles[&hid];
        let cid = self.handle_cid(cx.em, cx.cfg.fallback, hid, h);
        let facts = Facts {
            held_us: cx.now.saturating_sub(first.at),
            ..Self::handle_facts(h)
        };
        emit(cx.out, first.event, cid, facts);
    }

    /// An event of a handle that never binds (or gave up): what it held, then this one,
    /// to the fallback flow.
    fn send_fallback(&mut self, cx: &mut Cx<'_>, hid: u64, ev: Event) {
        self.release_handle_fallback(cx, hid);
        let session = self.handles[&hid].session;
        if cx.cfg.fallback == Fallback::Session {
            if let Some(s) = session.and_then(|sid| self.sessions.get_mut(&sid)) {
                s.fallback_used = true;
            }
        }
        let h = &self.handles[&hid];
        let cid = self.handle_cid(cx.em, cx.cfg.fallback, hid, h);
        emit(cx.out, ev, cid, Self::handle_facts(h));
        if let Some(sid) = session {
            if !self.session_may_bind(sid) {
                self.release_session(cx, sid);
            }
        }
    }

    /// Releases a bound handle's held events to its groups.
    fn release_handle(&mut self, cx: &mut Cx<'_>, hid: u64, groups: &[Group]) {
        let Some(h) = self.handles.get_mut(&hid) else {
            return;
        };
        if h.hold.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut h.hold.held);
        let base = Self::handle_facts(h);
        release_held(cx.out, held, &base, cx.now, &To::Groups(groups));
    }

    /// Releases a handle's held events to its groups, or to the fallback id when it has
    /// none.
    pub(super) fn release_handle_fallback(&mut self, cx: &mut Cx<'_>, hid: u64) {
        let Some(h) = self.handles.get(&hid) else {
            return;
        };
        if h.hold.held.is_empty() {
            return;
        }
        if !h.groups.is_empty() {
            let groups = h.groups.clone();
            return self.release_handle(cx, hid, &groups);
        }
        let cid = self.handle_cid(cx.em, cx.cfg.fallback, hid, h);
        let h = self.handles.get_mut(&hid).expect("present");
        let held = std::mem::take(&mut h.hold.held);
        let base = Self::handle_facts(h);
        release_held(cx.out, held, &base, cx.now, &To::Cid(cid));
    }
}
