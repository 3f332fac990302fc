//! Rooms (VideoRoom, AudioBridge, TextRoom): one group per room. A handle binds when an
//! event of its own names the room (`joined`, `subscribing`, `join`, …); a handle that
//! manages rooms belongs to each of them; events without session or handle (`leaving`,
//! `unpublished`, `kicked`, forwarders) go to the room they name, tied to the
//! participant's handle through (room, participant id).

use super::cid::CidKey;
use super::emitter::{Cx, EmitterState};
use super::group::{emit, intern, push_unique, Group};
use super::state::{HandleState, Learned};
use super::{Facts, GroupKey, HashMap};
use crate::janus::event::{Event, Plugin, PluginEvent, RoomId};

/// A VideoRoom, AudioBridge or TextRoom event naming a room: the rooms the handle is in
/// or manages, its participant id, display name and feeds.
pub(super) fn learn_room(
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
    h.hold.gave_up = h.hold.gave_up && h.groups.is_empty();
}

fn add_feeds(h: &mut HandleState, feeds: &[RoomId]) {
    for f in feeds {
        if !h.feeds.contains(f) {
            h.feeds.push(f.clone());
        }
    }
}

impl EmitterState {
    /// A plugin event with no handle: to the room it names (with what its participant's
    /// handle knows), else to its session, else to the plugin's flow.
    pub(super) fn room_event(&mut self, cx: &mut Cx<'_>, ev: Event) {
        let Some(p) = ev.plugin() else {
            let key = CidKey::Core(super::cid::hour(ev.timestamp.unwrap_or(cx.now)));
            return emit(cx.out, ev, self.cid(cx.em, key), Facts::default());
        };
        let pl = p.plugin.unwrap_or(Plugin::Other);
        let (Some(room), true) = (p.room.clone(), pl.binds() && pl != Plugin::Sip) else {
            // A plugin event with no handle and no room: the session, if any, else core.
            return match ev.session_id {
                Some(sid) => self.session_event(cx, sid, ev),
                None => {
                    let cid = self.cid(cx.em, CidKey::Plugin(pl));
                    emit(cx.out, ev, cid, Facts::default())
                }
            };
        };
        let key = GroupKey::Room(pl, room.clone());
        let g = intern(&mut self.groups, cx.em, key.clone());
        let mut facts = Facts {
            group: Some(key),
            ..Facts::default()
        };
        if let Some(id) = p.participant.clone() {
            let pk = (pl, room.clone(), id.clone());
            if let Some(h) = self
                .participants
                .get(&pk)
                .and_then(|hid| self.handles.get(hid))
            {
                facts = Facts {
                    group: facts.group,
                    ..Self::handle_facts(h)
                };
            }
            facts.participant = Some((room.clone(), id));
            if matches!(p.name.as_deref(), Some("leaving" | "kicked" | "left")) {
                self.participants.remove(&pk);
            }
        }
        if p.name.as_deref() == Some("destroyed") {
            self.participants
                .retain(|(ppl, r, _), _| !(*ppl == pl && *r == room));
        }
        emit(cx.out, ev, g.cid.clone(), facts);
    }
}
