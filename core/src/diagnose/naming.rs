//! Naming: what a handle is (session, plugin, room, call, display, feeds), its short
//! name, and the names of Janus's sides, the API client and the SIP far end.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::names::{self, Role};
use super::{Diagnoser, Findings, Handle, Key2, NameChange};
use crate::correlate::{Correlated, GroupKey};
use crate::janus::event::{Body, EventType, Plugin};
use crate::map::label::{str_field, Key};

impl Diagnoser {
    /// Names Janus's sides and the API client.
    pub(super) fn name_sides(&mut self, c: &Correlated, out: &mut Findings) {
        let ev = &c.event;
        if let Some(j) = c.facts.janus {
            self.name_once(j.ip(), 0, 0, || format!("janus {}", ev.emitter), out);
        }
        let client = c.facts.client.or(match &ev.body {
            Body::Transport { client, .. } => *client,
            _ => None,
        });
        if matches!(ev.kind, EventType::Transport | EventType::Session) {
            if let Some(cl) = client {
                self.name_once(cl.ip(), 0, 1, || format!("api {}", cl.ip()), out);
                if c.facts.janus.is_none() {
                    let syn = if cl.is_ipv4() {
                        IpAddr::V4(crate::map::SYNTHETIC_JANUS_V4)
                    } else {
                        IpAddr::V6(crate::map::SYNTHETIC_JANUS_V6)
                    };
                    self.name_once(syn, 0, 0, || "janus api".to_string(), out);
                }
            }
        }
        if let Some((sip, inbound)) = ev.sip_message() {
            let (src, dst) = crate::map::sip_sides(sip);
            let janus = if inbound { dst } else { src };
            if let Some(j) = janus {
                self.name_once(
                    j.ip(),
                    j.port(),
                    0,
                    || format!("janus sip {}", ev.emitter),
                    out,
                );
            }
            self.far_end(c, sip, inbound, if inbound { src } else { dst }, out);
        }
    }

    /// Names the SIP far end from an INVITE: its To when Janus calls, its From when Janus
    /// is called.
    pub(super) fn far_end(
        &mut self,
        c: &Correlated,
        sip: &str,
        inbound: bool,
        far: Option<SocketAddr>,
        out: &mut Findings,
    ) {
        let (Some(far), Some(hid)) = (far, c.event.handle_id) else {
            return;
        };
        if !sip.starts_with("INVITE ") {
            return;
        }
        let header = if inbound {
            crate::janus::sip::sip_header(sip, "from", Some("f"))
        } else {
            crate::janus::sip::sip_header(sip, "to", Some("t"))
        };
        let Some(user) = header.and_then(sip_user) else {
            return;
        };
        let name = names::alias(&format!("☎ {user}"), "sip far end");
        if let Some(h) = self.handles.get_mut(&(c.event.emitter.clone(), hid)) {
            if h.far.as_ref().is_some_and(|(a, n)| *a == far && *n == name) {
                return;
            }
            h.far = Some((far, name.clone()));
        }
        out.names.push(NameChange {
            ip: far.ip(),
            port: far.port(),
            name,
            ended: false,
        });
    }

    pub(super) fn name_once(
        &mut self,
        ip: IpAddr,
        port: u16,
        what: u8,
        name: impl FnOnce() -> String,
        out: &mut Findings,
    ) {
        if self.named.contains(&(ip, port, what)) || self.named.len() >= 4096 {
            return;
        }
        self.named.insert((ip, port, what));
        let n = name();
        out.names.push(NameChange {
            ip,
            port,
            name: if names::is_janus(&n) {
                n
            } else {
                names::alias(&n, "")
            },
            ended: false,
        });
    }

    /// What an event says of its handle: session, plugin, room, call, display, feeds.
    pub(super) fn learn(&mut self, key: &Key2, c: &Correlated) {
        let ev = &c.event;
        let h = self.handle_mut(key);
        let mut changed = h.short.is_none();
        if h.session.is_none() {
            if let Some(sid) = ev.session_id {
                h.session = Some(sid);
                let s = self.sessions.entry((ev.emitter.clone(), sid)).or_default();
                if s.len() < 64 {
                    s.push(key.1);
                }
            }
        }
        let h = self.handles.get_mut(key).expect("just made");
        if h.opaque.is_none() {
            h.opaque = ev.opaque_id.clone();
        }
        if let Body::Handle { plugin, .. } = &ev.body {
            if let Some(p) = plugin {
                h.plugin = Some(*p);
            }
            if h.plugin_name.is_none() {
                h.plugin_name = plugin_package(&ev.raw).map(Arc::from);
            }
        }
        match &c.facts.group {
            Some(GroupKey::Room(p, r)) if h.room.is_none() => {
                h.room = Some((*p, r.clone()));
                h.plugin = Some(*p);
                changed = true;
            }
            Some(GroupKey::Call(call)) if h.call.is_none() => {
                h.call = Some(call.clone());
                h.plugin = Some(Plugin::Sip);
                changed = true;
            }
            _ => {}
        }
        if c.facts.display.is_some() && c.facts.display != h.display {
            h.display = c.facts.display.clone();
            changed = true;
        }
        if c.facts.feeds.len() != h.feeds.len() {
            h.feeds = c.facts.feeds.clone();
            changed = true;
        }
        if let Some((_, id)) = &c.facts.participant {
            if h.participant.as_ref() != Some(id) {
                h.participant = Some(id.clone());
                changed = true;
            }
        }
        if let Some(p) = ev.plugin() {
            if p.sip.is_none() && p.name.as_deref() == Some("subscribing") {
                changed = true;
            }
        }
        if changed {
            self.rename(key);
        }
    }

    /// Gives a handle its short name (distinct within its room) and, when its client
    /// address is known, an alias.
    pub(super) fn rename(&mut self, key: &Key2) {
        let h = &self.handles[key];
        let role = role_of(h);
        let who = h
            .display
            .as_deref()
            .map(str::to_string)
            .or_else(|| h.opaque.as_deref().map(str::to_string))
            .unwrap_or_else(|| names::handle_tag(key.1));
        let room_key = h.room.clone().map(|(p, r)| (key.0.clone(), p, r));
        let (display, participant) = (h.display.clone(), h.participant.clone());
        let feeds = h.feeds.clone();
        let mut nth = h.nth;
        let mut feed_names = Vec::new();
        if let Some(rk) = &room_key {
            let room = self.room_mut(rk);
            if let (Role::Publisher | Role::Participant, Some(d), Some(id)) =
                (role, &display, &participant)
            {
                if room.displays.len() < 1024 {
                    room.displays.insert(id.clone(), d.clone());
                }
            }
            if role == Role::Subscriber && nth == 0 && display.is_none() {
                room.subscribers += 1;
                nth = room.subscribers;
            }
            for f in &feeds {
                feed_names.push(match room.displays.get(f) {
                    Some(d) => d.to_string(),
                    None => {
                        let id = f.to_string();
                        let n = id.chars().count();
                        id.chars().skip(n.saturating_sub(4)).collect()
                    }
                });
            }
        }
        let mut short = names::short(role, &who, nth, &feed_names);
        if let Some(rk) = &room_key {
            let room = self.room_mut(rk);
            let mut k = 1;
            let base = short.clone();
            while room
                .heads
                .get(names::head(&short))
                .is_some_and(|other| *other != key.1)
            {
                k += 1;
                short = format!("{k}·{base}");
            }
            if room.heads.len() < 4096 {
                room.heads.insert(names::head(&short).to_string(), key.1);
            }
        }
        let h = self.handles.get_mut(key).expect("known");
        h.nth = nth;
        h.short = Some(short);
    }

    /// The client's alias, when its address and name are known and it changed.
    pub(super) fn alias_client(&mut self, key: &Key2, out: &mut Findings) {
        let h = self.handles.get_mut(key).expect("learnt");
        let (Some(client), Some(short)) = (h.client, h.short.as_deref()) else {
            return;
        };
        // Made again only when what it is made of changed (most events change nothing).
        let same = |f: &super::NamedFrom| {
            f.0 == short && f.1 == h.room && f.2 == h.plugin && f.3 == h.plugin_name
        };
        if h.named.is_some() && h.named_from.as_ref().is_some_and(same) {
            return;
        }
        let name = names::alias(short, &context(h));
        h.named_from = Some((
            short.to_string(),
            h.room.clone(),
            h.plugin,
            h.plugin_name.clone(),
        ));
        if h.named.as_deref() == Some(&name) {
            return;
        }
        h.named = Some(name.clone());
        out.names.push(NameChange {
            ip: client.ip(),
            port: client.port(),
            name,
            ended: false,
        });
    }
}

/// The plugin package of a handle event (`"plugin":"janus.plugin.echotest"`).
pub(super) fn plugin_package(raw: &[u8]) -> Option<&str> {
    static PLUGIN: std::sync::LazyLock<Key> = std::sync::LazyLock::new(|| Key::new("plugin"));
    str_field(raw, &PLUGIN)
}

pub(super) fn role_of(h: &Handle) -> Role {
    match (h.plugin, &h.room) {
        (Some(Plugin::VideoRoom), Some(_)) if !h.feeds.is_empty() => Role::Subscriber,
        (Some(Plugin::VideoRoom), Some(_)) => Role::Publisher,
        (Some(Plugin::AudioBridge | Plugin::TextRoom), _) => Role::Participant,
        (Some(Plugin::Sip), _) => Role::Sip,
        _ => Role::Other,
    }
}

/// The context part of a PeerConnection's alias.
pub(super) fn context(h: &Handle) -> String {
    match (&h.room, h.plugin) {
        (Some((Plugin::VideoRoom, r)), _) => format!("room {r}"),
        (Some((p, r)), _) => format!("{} {r}", p.short()),
        (None, Some(Plugin::Sip)) => "sip".into(),
        _ => h
            .plugin_name
            .as_deref()
            .map(|n| n.strip_prefix("janus.plugin.").unwrap_or(n).to_string())
            .unwrap_or_default(),
    }
}

/// The user part of a SIP From/To header (`"Bob" <sip:bob@host>;tag=…` → `bob`), or the
/// display name when quoted.
pub(super) fn sip_user(h: &str) -> Option<String> {
    let uri = match (h.find('<'), h.find('>')) {
        (Some(a), Some(b)) if a < b => &h[a + 1..b],
        _ => h.split(';').next()?,
    };
    let rest = uri
        .trim()
        .strip_prefix("sips:")
        .or_else(|| uri.trim().strip_prefix("sip:"))
        .or_else(|| uri.trim().strip_prefix("tel:"))?;
    let user = match rest.split_once('@') {
        Some((u, _)) => u,
        None => rest.split([';', ':']).next()?,
    };
    (!user.is_empty()).then(|| names::chars(user, 24).to_string())
}
