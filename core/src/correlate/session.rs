//! Sessions and their transports: a session's events go to every group of its handles
//! (and to its fallback flow when one of its handles never binds); they wait while a handle
//! may still bind, and those sent before any group existed reach a group that comes within
//! the hold window (`late`). Events of a persistent transport (WebSocket, …) go to the
//! sessions created on it; others to the transport's flow of the hour.

use std::net::SocketAddr;
use std::sync::Arc;

use smallvec::SmallVec;

use super::cid::{hour, CidKey};
use super::emitter::{Cx, EmitterState};
use super::group::{emit, emit_groups, push_unique, Groups};
use super::hold::{release_held, Held, To};
use super::state::TransportSeen;
use super::{Config, Facts, Fallback};
use crate::janus::event::{Body, Event, Plugin};

impl EmitterState {
    /// A session event (type 1): created (its transport and client), destroyed or timed
    /// out (it ends after the grace period), then routed as any session event.
    pub(super) fn session_lifecycle(&mut self, cx: &mut Cx<'_>, sid: u64, ev: Event) {
        let s = self.sessions.entry(sid).or_default();
        s.hold.last_seen = cx.now;
        // A session event without a readable body still goes out (to the session).
        let mut ending = false;
        if let Body::Session {
            name,
            transport_id,
            transport,
        } = &ev.body
        {
            if &**name == "created" {
                s.persistent_transport = transport
                    .as_deref()
                    .is_some_and(|t| t != "janus.transport.http");
                // Only persistent connections tie later transport events to sessions.
                if s.persistent_transport {
                    s.transport_id = transport_id.clone();
                    if let Some(t) = transport_id {
                        let list = self.transport_sessions.entry(t.clone()).or_default();
                        if !list.contains(&sid) {
                            list.push(sid);
                        }
                    }
                }
                if let Some(t) = transport_id.as_ref().and_then(|t| self.transports.get(t)) {
                    s.client = t.client;
                }
            }
            ending = matches!(&**name, "destroyed" | "timeout");
        }
        self.session_event(cx, sid, ev);
        if ending {
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.hold.end(cx.now);
            }
            // Held events stay until the grace period ends: a binding may still arrive
            // (events can come out of order).
        }
    }

    /// A transport event (type 128): to the sessions created on its connection, or to the
    /// transport's flow of the hour.
    pub(super) fn transport_event(&mut self, cx: &mut Cx<'_>, ev: Event) {
        let at = hour(ev.timestamp.unwrap_or(cx.now));
        let (id, client, flow) = match &ev.body {
            Body::Transport {
                id,
                client,
                transport,
            } => {
                let name = transport.as_deref().unwrap_or("unknown");
                let short = name.strip_prefix("janus.transport.").unwrap_or(name);
                // Every HTTP request comes from a new ephemeral port: keep the client's IP
                // only, so Homer draws one column per client rather than one per request.
                let client = match client {
                    Some(c) if short == "http" => Some(SocketAddr::new(c.ip(), 0)),
                    c => *c,
                };
                (id.clone(), client, CidKey::Transport(transport.clone(), at))
            }
            _ => (None, None, CidKey::Transport(None, at)),
        };
        let Some(id) = id else {
            return emit(cx.out, ev, self.cid(cx.em, flow), Facts::default());
        };
        if self.transports.len() < 65_536 || self.transports.contains_key(&id) {
            self.transports
                .insert(id.clone(), TransportSeen { client, at: cx.now });
        }
        // Persistent connections (WebSocket, …) belong to the sessions created on them.
        let mut sids: SmallVec<[u64; 2]> = self
            .transport_sessions
            .get(&id)
            .cloned()
            .unwrap_or_default();
        if sids.is_empty() {
            // Not tied to a session (HTTP requests, connections without sessions): one flow
            // per transport plugin.
            let facts = Facts {
                client,
                ..Facts::default()
            };
            return emit(cx.out, ev, self.cid(cx.em, flow), facts);
        }
        sids.sort_unstable();
        for sid in sids {
            self.session_event(cx, sid, ev.clone());
        }
    }

    /// Groups of a session's handles (current, then those of forgotten handles).
    pub(super) fn session_groups(&self, sid: u64) -> Groups {
        let mut groups = Groups::new();
        if let Some(s) = self.sessions.get(&sid) {
            for h in &s.handles {
                if let Some(h) = self.handles.get(h) {
                    for g in &h.groups {
                        push_unique(&mut groups, g.clone());
                    }
                }
            }
            for g in &s.past_groups {
                push_unique(&mut groups, g.clone());
            }
        }
        groups
    }

    /// Whether a session's events should wait: no handle bound yet, and some handle may bind.
    pub(super) fn session_may_bind(&self, sid: u64) -> bool {
        let Some(s) = self.sessions.get(&sid) else {
            return false;
        };
        if s.hold.gave_up {
            return false;
        }
        s.handles.is_empty()
            || s.handles.iter().any(|h| {
                self.handles
                    .get(h)
                    .is_some_and(|h| !h.hold.gave_up && h.plugin.is_none_or(Plugin::binds))
            })
    }

    /// An event of session `sid`: to its handles' groups, held while a handle may bind,
    /// else to the session's fallback flow (and kept for a group that comes late).
    pub(super) fn session_event(&mut self, cx: &mut Cx<'_>, sid: u64, ev: Event) {
        let groups = self.session_groups(sid);
        let client = self.sessions.get(&sid).and_then(|s| s.client);
        let facts = Facts {
            client,
            ..Facts::default()
        };
        if !groups.is_empty() {
            self.release_session(cx, sid);
            if self.sessions.get(&sid).is_some_and(|s| s.fallback_used) {
                let cid = self.session_cid(cx.em, cx.cfg, sid);
                emit(cx.out, ev.clone(), cid, facts.clone());
            }
            emit_groups(cx.out, ev, &groups, facts);
            return;
        }
        if self.session_may_bind(sid) {
            cx.st.held += 1;
            let s = self.sessions.entry(sid).or_default();
            if let Some(first) = s.hold.push(ev, cx.now, cx.cfg.max_held) {
                cx.st.hold_overflow += 1;
                let cid = self.session_cid(cx.em, cx.cfg, sid);
                let facts = Facts {
                    held_us: cx.now.saturating_sub(first.at),
                    ..facts
                };
                emit(cx.out, first.event, cid, facts);
            }
            return;
        }
        let cid = self.session_cid(cx.em, cx.cfg, sid);
        self.keep_late(cx.cfg, sid, &ev, cx.now);
        emit(cx.out, ev, cid, facts);
    }

    /// Keeps a session event sent to the fallback at `at` for the hold window (see `late`).
    fn keep_late(&mut self, cfg: &Config, sid: u64, ev: &Event, at: u64) {
        if !self.sessions.contains_key(&sid) {
            return;
        }
        let late = self.late.entry(sid).or_default();
        late.retain(|(h, _)| at.saturating_sub(h.at) < cfg.hold_us);
        if late.len() < cfg.max_held {
            late.push((Held::new(ev.clone(), at), Groups::new()));
        }
    }

    /// A handle of session `sid` got a group: the session's recent events that went to
    /// the fallback reach each group they have not reached yet.
    pub(super) fn echo_late(&mut self, cx: &mut Cx<'_>, sid: u64) {
        // The common case, on every event of a bound handle: nothing kept.
        if !self.late.contains_key(&sid) {
            return;
        }
        let groups = self.session_groups(sid);
        let client = self.sessions.get(&sid).and_then(|s| s.client);
        let Some(late) = self.late.get_mut(&sid) else {
            return;
        };
        let now = cx.now;
        late.retain(|(h, _)| now.saturating_sub(h.at) < cx.cfg.hold_us);
        for (h, sent) in late.iter_mut() {
            let new: Groups = groups
                .iter()
                .filter(|g| !sent.iter().any(|x| x.key == g.key))
                .cloned()
                .collect();
            if new.is_empty() {
                continue;
            }
            for g in &new {
                sent.push(g.clone());
            }
            let facts = Facts {
                client,
                held_us: now.saturating_sub(h.at),
                ..Facts::default()
            };
            emit_groups(cx.out, h.event.clone(), &new, facts);
        }
    }

    /// The session's fallback id (its opaque id's with `fallback = "opaque_id"`).
    pub(super) fn session_cid(&self, em: &str, cfg: &Config, sid: u64) -> Arc<str> {
        if cfg.fallback == Fallback::OpaqueId {
            if let Some(o) = self.sessions.get(&sid).and_then(|s| {
                s.handles
                    .iter()
                    .find_map(|h| self.handles.get(h).and_then(|h| h.opaque.clone()))
            }) {
                return self.cid(em, CidKey::Opaque(o));
            }
        }
        self.cid(em, CidKey::Session(sid))
    }

    /// Releases a session's held events to its groups, or to the fallback when it has none.
    pub(super) fn release_session(&mut self, cx: &mut Cx<'_>, sid: u64) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if s.hold.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut s.hold.held);
        let fallback_used = s.fallback_used;
        let base = Facts {
            client: s.client,
            ..Facts::default()
        };
        let groups = self.session_groups(sid);
        let cid = self.session_cid(cx.em, cx.cfg, sid);
        if groups.is_empty() {
            for h in &held {
                self.keep_late(cx.cfg, sid, &h.event, h.at);
            }
            release_held(cx.out, held, &base, cx.now, &To::Cid(cid));
        } else {
            if fallback_used {
                release_held(cx.out, held.clone(), &base, cx.now, &To::Cid(cid));
            }
            release_held(cx.out, held, &base, cx.now, &To::Groups(&groups));
        }
    }
}
