//! What one handle event teaches the correlator about its handle: the handle's state is
//! tracked (`track`), then updated from the event (`learn`: plugin, addresses, the SIP
//! call in progress, the rooms it joins or manages). Where the event then goes (its
//! groups, a hold, the fallback) is `EmitterState::route_handle_event` in `mod.rs`.
//!
//! These are free functions over the tables they touch, so that one lookup of the handle
//! serves the whole event (no re-lookups after an insert).

use std::sync::Arc;

use smallvec::smallvec;

use super::{
    intern, push_unique, Group, GroupKey, Groups, HandleState, HashMap, SessionState, SipPhase,
};
use crate::janus::event::{Body, Event, Plugin, PluginEvent, RoomId};

/// What an event said besides the handle's own state.
#[derive(Debug, Default)]
pub(super) struct Learned {
    /// The handle was detached.
    pub detached: bool,
    /// A SIP message or call event of another call than the handle's: its own id.
    pub own_cid: Option<(Arc<str>, GroupKey)>,
    /// A room participant this event introduced (plugin, room, participant id).
    pub new_participant: Option<(Plugin, RoomId, RoomId)>,
    /// The room a plugin event names.
    pub named: Option<GroupKey>,
}

/// The handle's state, created on its first event; the handle is listed in its session.
pub(super) fn track<'a>(
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
        held: Vec::new(),
        gave_up: false,
        client: session_client,
        janus: None,
        opaque: None,
        last_seen: now,
        ended_at: None,
    });
    h.last_seen = now;
    if h.session.is_none() {
        h.session = sid;
    }
    if h.opaque.is_none() {
        h.opaque = ev.opaque_id.clone();
    }
    if let Some(sid) = h.session {
        let s = sessions.entry(sid).or_default();
        s.last_seen = now;
        if !s.handles.contains(&hid) {
            s.handles.push(hid);
        }
    }
    h
}

/// Updates the handle from its event.
pub(super) fn learn(
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
            h.gave_up = false;
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
                    learn_room(h, groups, em, (pl, room), p, &mut learned)
                }
                _ => {}
            }
        }
        _ => {}
    }
    learned
}

/// A SIP plugin event: which call the handle is in.
fn learn_sip(
    h: &mut HandleState,
    groups: &mut HashMap<GroupKey, Group>,
    em: &str,
    p: &PluginEvent,
    learned: &mut Learned,
) {
    let Some(call) = &p.call_id else {
        return;
    };
    let name = p.name.as_deref().unwrap_or("");
    let message = matches!(name, "sip-in" | "sip-out");
    let invite = p.sip.as_deref().is_some_and(|m| m.starts_with("INVITE "));
    let key = GroupKey::Call(call.clone());
    let current = h.groups.iter().any(|g| g.key == key);
    let starts =
        matches!(name, "calling" | "incoming") || invite || (h.groups.is_empty() && !message);
    if !current && starts {
        h.groups = smallvec![intern(groups, em, key)];
        h.sip = SipPhase::InCall;
        h.gave_up = false;
    } else if !current {
        // Another call's event (a late one, or a SIP message of its own).
        learned.own_cid = Some((call.clone(), key));
    } else if name == "hangup" {
        h.sip = SipPhase::Idle;
    }
}

/// A VideoRoom, AudioBridge or TextRoom event naming a room: the rooms the handle is in
/// or manages, its participant id, display name and feeds.
fn learn_room(
    h: &mut HandleState,
    groups: &mut HashMap<GroupKey, Group>,
    em: &str,
    (pl, room): (Plugin, &RoomId),
    p: &PluginEvent,
    learned: &mut Learned,
) {
    let name = p.name.as_deref().unwrap_or("");
    let g = intern(groups, em, GroupKey::Room(pl, room.clone()));
    learned.named = Some(g.key.clone());
    let manages = matches!(name, "created" | "edited" | "destroyed" | "kicked");
    let joins = matches!(name, "joined" | "subscribing" | "roomchanged" | "join");
    if manages {
        push_unique(&mut h.groups, g);
    } else if joins {
        if pl != Plugin::TextRoom {
            // A participant is in one room: moving replaces the old one, rooms it manages
            // stay.
            if let Some((old_room, _)) = &h.participant {
                let old = GroupKey::Room(pl, old_room.clone());
                if old != g.key {
                    h.groups.retain(|x| x.key != old);
                }
            }
        }
        push_unique(&mut h.groups, g);
        if let Some(id) = &p.participant {
            h.participant = Some((room.clone(), id.clone()));
            learned.new_participant = Some((pl, room.clone(), id.clone()));
        } else if pl == Plugin::VideoRoom && name == "subscribing" {
            h.participant = None;
        }
        if p.display.is_some() {
            h.display = p.display.clone();
        }
        add_feeds(h, &p.feeds);
    } else if name == "leave" && pl == Plugin::TextRoom && h.groups.len() > 1 {
        h.groups.retain(|x| x.key != g.key);
    } else if h.groups.is_empty() {
        push_unique(&mut h.groups, g);
    }
    if name == "updated" {
        add_feeds(h, &p.feeds);
    }
    h.gave_up = h.gave_up && h.groups.is_empty();
}

fn add_feeds(h: &mut HandleState, feeds: &[RoomId]) {
    for f in feeds {
        if !h.feeds.contains(f) {
            h.feeds.push(f.clone());
        }
    }
}
