//! Diagnosis: what an operator who opens Homer after a call went wrong needs first.
//!
//! Sans-IO, after correlation: it watches every correlated event and
//!
//! - keeps, per PeerConnection (a handle's life from its first JSEP or ICE event to its
//!   hangup, its handle's detach or its session's end), the facts Janus reports (ICE and
//!   DTLS states, `webrtcup`, hangup reason, media gaps, `slow_link`, loss, jitter, RTT,
//!   MOS) and, when it ends, gives its [`Summary`]: the verdict (see [`pc`]) in words and
//!   JSON, sent as one LOG row in the PeerConnection's flow;
//! - keeps, per room, who was in it, and when its last PeerConnection ends gives the room's
//!   summary (participants, durations, the worst PeerConnection);
//! - names what heplink draws ([`names`]): short names for PeerConnections (in labels and
//!   Homer aliases) and names for Janus's and the API client's columns, handed out as
//!   [`NameChange`]s for the alias keeper;
//! - counts ended PeerConnections per plugin and outcome, and the time to `webrtcup`.
//!
//! Bounded: at most [`MAX_HANDLES`] handles and [`MAX_ROOMS`] rooms (the oldest go first).
//!
//! Why this file is over 500 lines: the state (handles, rooms) and the rules that read each
//! event into it are one unit; the names, the verdicts' words and the PeerConnection facts
//! are in `naming.rs`, `names.rs`, `words.rs` and `pc.rs`.

pub mod names;
mod naming;
pub mod pc;
mod words;

use std::collections::VecDeque;

/// Maps and sets keyed per event (emitter names, handle ids): ahash, several times faster
/// than std's SipHash on these keys and randomly seeded all the same.
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
type HashSet<K> = std::collections::HashSet<K, ahash::RandomState>;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::correlate::Correlated;
use crate::janus::event::{Body, EventType, Plugin, RoomId};
use crate::janus::Event;
use crate::json::{write_json_str, write_u64};
use crate::map::label::{str_field, Key};
use names::Role;
use naming::role_of;
pub use pc::Outcome;
use pc::Pc;

/// Most handles whose state is kept.
pub const MAX_HANDLES: usize = 50_000;
/// Most rooms whose tally is kept.
pub const MAX_ROOMS: usize = 10_000;
/// Participants listed in a room summary at most.
pub const MAX_LISTED: usize = 50;
/// Upper bounds of the time-to-`webrtcup` histogram's buckets, seconds.
pub const WEBRTCUP_BUCKETS: [f64; 8] = [0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0];

/// A summary row: words first (what homer-ui previews), then JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The words (`✔ pubA ▲ ok 12 min MOS 4.3`).
    pub words: String,
    /// The JSON members after the label: `"summary":{…}` or `"room_summary":{…}`.
    pub json: String,
    /// The outcome (of the PeerConnection, or the room's worst).
    pub outcome: Outcome,
    /// A room's summary, not a PeerConnection's.
    pub room: bool,
}

/// A name for an address, for the alias keeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameChange {
    /// The address.
    pub ip: IpAddr,
    /// The port; 0 for every port of `ip`.
    pub port: u16,
    /// The alias (see [`names::alias`]).
    pub name: String,
    /// Its PeerConnection ended: the name is kept for the retention, then removed.
    pub ended: bool,
}

/// The diagnosis counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiagStats {
    /// Ended PeerConnections per plugin ([`plugin_index`]) and outcome.
    pub ended: [[u64; 5]; 6],
    /// Time-to-`webrtcup` observations per bucket ([`WEBRTCUP_BUCKETS`], then +Inf).
    pub webrtcup_buckets: [u64; 9],
    /// Their sum, seconds.
    pub webrtcup_sum: f64,
    /// Handles dropped for the bound.
    pub evicted: u64,
    /// SIP calls that ended with messages Janus received (`sip-in`) and none it sent
    /// (`sip-out`): a Janus ≥ 1.3 built against sofia-sip < 1.13 cannot report those.
    pub sip_out_missing: u64,
}

/// The plugins the counters tell apart, in the order of [`DiagStats::ended`].
pub const PLUGINS: [&str; 6] = [
    "videoroom",
    "audiobridge",
    "textroom",
    "sip",
    "other",
    "unknown",
];

/// The index of a plugin in [`PLUGINS`].
pub fn plugin_index(p: Option<Plugin>) -> usize {
    match p {
        Some(Plugin::VideoRoom) => 0,
        Some(Plugin::AudioBridge) => 1,
        Some(Plugin::TextRoom) => 2,
        Some(Plugin::Sip) => 3,
        Some(Plugin::Other) => 4,
        None => 5,
    }
}

type Key2 = (Arc<str>, u64);

/// What a handle's alias is made of: its short name, room, plugin and plugin package.
type NamedFrom = (
    String,
    Option<(Plugin, RoomId)>,
    Option<Plugin>,
    Option<Arc<str>>,
);

#[derive(Debug, Default)]
struct Handle {
    session: Option<u64>,
    plugin: Option<Plugin>,
    plugin_name: Option<Arc<str>>,
    opaque: Option<Arc<str>>,
    room: Option<(Plugin, RoomId)>,
    call: Option<Arc<str>>,
    display: Option<Arc<str>>,
    participant: Option<RoomId>,
    feeds: Vec<RoomId>,
    nth: usize,
    short: Option<String>,
    client: Option<SocketAddr>,
    named: Option<String>,
    /// What `named` was made of (the short name and the context's parts): while they
    /// stay the same, the alias is not made again for every event of the handle.
    named_from: Option<NamedFrom>,
    far: Option<(SocketAddr, String)>,
    /// `sip-in` / `sip-out` seen during the PeerConnection (a SIP call).
    sip_seen: (bool, bool),
    pc: Option<Pc>,
}

#[derive(Debug, Default)]
pub(crate) struct Room {
    live: HashSet<u64>,
    subscribers: usize,
    displays: HashMap<RoomId, Arc<str>>,
    heads: HashMap<String, u64>,
    ended: Vec<(String, u64, Role, Outcome, u64, Option<f64>)>,
    more: usize,
    counts: [u64; 5],
    first_us: Option<u64>,
    last_us: u64,
}

/// The field names read from events.
struct Keys {
    ice: Key,
    dtls: Key,
    connection: Key,
    reason: Key,
    media: Key,
}

static KEYS: std::sync::LazyLock<Keys> = std::sync::LazyLock::new(|| Keys {
    ice: Key::new("ice"),
    dtls: Key::new("dtls"),
    connection: Key::new("connection"),
    reason: Key::new("reason"),
    media: Key::new("media"),
});

/// The diagnosis state (see the module documentation).
#[derive(Debug, Default)]
pub struct Diagnoser {
    handles: HashMap<Key2, Handle>,
    order: VecDeque<Key2>,
    sessions: HashMap<Key2, Vec<u64>>,
    rooms: HashMap<(Arc<str>, Plugin, RoomId), Room>,
    room_order: VecDeque<(Arc<str>, Plugin, RoomId)>,
    named: HashSet<(IpAddr, u16, u8)>,
    /// Emitters already warned of calls without `sip-out`.
    warned_sip_out: HashSet<Arc<str>>,
    last: (usize, usize),
    stats: DiagStats,
}

/// What one event gave.
#[derive(Debug, Default)]
pub struct Findings {
    /// Summary rows to send in the event's flow.
    pub summaries: Vec<Summary>,
    /// Names for the alias keeper.
    pub names: Vec<NameChange>,
    /// Things the operator should be told (logged at WARN by the pipeline).
    pub warnings: Vec<String>,
}

impl Diagnoser {
    /// The counters.
    pub fn stats(&self) -> &DiagStats {
        &self.stats
    }

    /// Handles with state now.
    pub fn handles(&self) -> usize {
        self.handles.len()
    }

    /// The short name of an event's PeerConnection, when it has one.
    pub fn short_name(&self, ev: &Event) -> Option<&str> {
        let hid = ev.handle_id?;
        self.handles
            .get(&(ev.emitter.clone(), hid))?
            .short
            .as_deref()
    }

    /// Looks at one correlated event (an event sent to several groups is looked at once).
    pub fn event(&mut self, c: &Correlated, out: &mut Findings) {
        let mut reads = crate::map::stats::EventReads::new(&c.event.raw);
        self.event_with(c, &mut reads, out);
    }

    /// [`Diagnoser::event`], with what was read of the event already (the QoS reports
    /// read the same media stats and SDPs).
    pub(crate) fn event_with(
        &mut self,
        c: &Correlated,
        reads: &mut crate::map::stats::EventReads<'_>,
        out: &mut Findings,
    ) {
        let ev = &c.event;
        let this = (ev.raw.as_ptr() as usize, ev.raw.len());
        if this == self.last {
            return;
        }
        self.last = this;
        self.name_sides(c, out);
        let at = ev.timestamp.unwrap_or(0);
        if let (EventType::Session, Body::Session { name, .. }) = (ev.kind, &ev.body) {
            if matches!(&**name, "destroyed" | "timeout") {
                if let Some(sid) = ev.session_id {
                    let key = (ev.emitter.clone(), sid);
                    for hid in self.sessions.remove(&key).unwrap_or_default() {
                        let hk = (ev.emitter.clone(), hid);
                        self.end(&hk, at, out);
                        self.handles.remove(&hk);
                    }
                }
            }
            return;
        }
        let Some(hid) = ev.handle_id else {
            return;
        };
        let key = (ev.emitter.clone(), hid);
        self.learn(&key, c);
        if let Some((_, inbound)) = ev.sip_message() {
            if let Some(h) = self.handles.get_mut(&key) {
                if inbound {
                    h.sip_seen.0 = true;
                } else {
                    h.sip_seen.1 = true;
                }
            }
        }
        let detached = matches!(&ev.body, Body::Handle { name, .. } if &**name == "detached");
        if matches!(
            ev.kind,
            EventType::Jsep | EventType::WebRtc | EventType::Media
        ) {
            self.pc_event(&key, c, at, reads, out);
        }
        if detached {
            self.end(&key, at, out);
            if let Some(h) = self.handles.remove(&key) {
                if let Some(sid) = h.session {
                    if let Some(v) = self.sessions.get_mut(&(ev.emitter.clone(), sid)) {
                        v.retain(|x| *x != hid);
                    }
                }
            }
        }
    }

    fn handle_mut(&mut self, key: &Key2) -> &mut Handle {
        if !self.handles.contains_key(key) {
            while self.handles.len() >= MAX_HANDLES {
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                if self.handles.remove(&old).is_some() {
                    self.stats.evicted += 1;
                }
            }
            // Ids gone from the table stay in the order until they come round: bounded
            // by compacting when it doubles.
            if self.order.len() > 2 * MAX_HANDLES {
                let handles = &self.handles;
                self.order.retain(|k| handles.contains_key(k));
            }
            self.order.push_back(key.clone());
        }
        self.handles.entry(key.clone()).or_default()
    }

    fn room_mut(&mut self, rk: &(Arc<str>, Plugin, RoomId)) -> &mut Room {
        if !self.rooms.contains_key(rk) {
            while self.rooms.len() >= MAX_ROOMS {
                let Some(old) = self.room_order.pop_front() else {
                    break;
                };
                self.rooms.remove(&old);
            }
            self.room_order.push_back(rk.clone());
        }
        self.rooms.entry(rk.clone()).or_default()
    }

    /// A JSEP, WebRTC or media event of a handle.
    fn pc_event(
        &mut self,
        key: &Key2,
        c: &Correlated,
        at: u64,
        reads: &mut crate::map::stats::EventReads<'_>,
        out: &mut Findings,
    ) {
        let ev = &c.event;
        let k = &*KEYS;
        let field = |key: &Key| str_field(&ev.raw, key);
        let h = self.handles.get_mut(key).expect("learnt");
        // Media stats and states of a PeerConnection that ended (late events) start none.
        if h.pc.is_none() && !matches!(ev.kind, EventType::Jsep | EventType::WebRtc) {
            return;
        }
        if h.pc.is_none() && ev.ends_peer_connection() {
            return;
        }
        let pc = h.pc.get_or_insert_with(|| Pc::new(at));
        pc.last_us = pc.last_us.max(at);
        let room_key = h.room.clone().map(|(p, r)| (key.0.clone(), p, r));
        if pc.start_us == at {
            if let Some(rk) = room_key {
                let room = self.room_mut(&rk);
                room.live.insert(key.1);
                room.first_us.get_or_insert(at);
            }
        }
        let h = self.handles.get_mut(key).expect("learnt");
        let role = role_of(h);
        let pc = h.pc.as_mut().expect("made");
        pc.roles |= 1 << role as u8;
        match (ev.kind, ev.subtype) {
            (EventType::Jsep, _) => {
                pc.offer_us.get_or_insert(at);
                if let Some(j) = reads.jsep() {
                    pc.has_av |= j.sdp.split('\n').any(|l| {
                        (l.starts_with("m=audio ") || l.starts_with("m=video "))
                            && !l.starts_with("m=audio 0 ")
                            && !l.starts_with("m=video 0 ")
                    });
                }
            }
            (EventType::WebRtc, Some(1)) => {
                if let Some(s) = field(&k.ice) {
                    pc.ice(s)
                }
            }
            (EventType::WebRtc, Some(4)) => {
                if let Some(client) = c.facts.client {
                    h.client = Some(client);
                }
            }
            (EventType::WebRtc, Some(5)) => {
                if let Some(s) = field(&k.dtls) {
                    pc.dtls(s)
                }
            }
            (EventType::WebRtc, Some(6)) => match field(&k.connection) {
                Some("webrtcup") => {
                    pc.webrtcup_us.get_or_insert(at);
                }
                Some("hangup") => {
                    pc.hangup = field(&k.reason).map(str::to_string);
                }
                _ => {}
            },
            (EventType::Media, Some(1)) => {
                let on = memchr::memmem::find(&ev.raw, b"\"receiving\":true").is_some()
                    || memchr::memmem::find(&ev.raw, b"\"receiving\": true").is_some();
                pc.receiving(field(&k.media).unwrap_or("media"), on, at);
            }
            (EventType::Media, Some(2)) => pc.slow_links += 1,
            (EventType::Media, Some(3)) => pc.stats(reads.media_stats()),
            _ => {}
        }
        self.alias_client(key, out);
        if ev.ends_peer_connection() {
            self.end(key, at, out);
        }
    }

    /// A handle's PeerConnection ended at `at`: its summary, counters, the room's tally.
    fn end(&mut self, key: &Key2, at: u64, out: &mut Findings) {
        let Some(h) = self.handles.get_mut(key) else {
            return;
        };
        let Some(pc) = h.pc.take() else { return };
        let end = at.max(pc.last_us);
        let role = role_of(h);
        if std::mem::take(&mut h.sip_seen) == (true, false) {
            self.stats.sip_out_missing += 1;
            if self.warned_sip_out.len() < 1024 && self.warned_sip_out.insert(key.0.clone()) {
                out.warnings.push(format!(
                    "Janus {:?} reports the SIP messages it receives (sip-in) but none it sends (sip-out): a Janus 1.3 or newer built against sofia-sip older than 1.13 cannot report them (its log says \"sofia-sip logs redirection unavailable\"). Build Janus against sofia-sip 1.13 or newer to see its INVITE, ACK and BYE in Homer.",
                    key.0
                ));
            }
        }
        let h = self.handles.get_mut(key).expect("known");
        let v = pc.verdict(end, role);
        let short = h.short.clone().unwrap_or_else(|| names::handle_tag(key.1));
        let plugin = h.plugin;
        self.stats.ended[plugin_index(plugin)][v.outcome.index()] += 1;
        if let Some(t) = v.to_webrtcup_us {
            let secs = t as f64 / 1e6;
            let b = WEBRTCUP_BUCKETS
                .iter()
                .position(|ub| secs <= *ub)
                .unwrap_or(WEBRTCUP_BUCKETS.len());
            self.stats.webrtcup_buckets[b] += 1;
            self.stats.webrtcup_sum += secs;
        }
        let words = words::pc_words(&short, &v, &pc);
        let mut json = String::with_capacity(512);
        json.push_str("\"summary\":{\"handle_id\":");
        write_u64(&mut json, key.1);
        json.push_str(",\"session_id\":");
        match h.session {
            Some(s) => write_u64(&mut json, s),
            None => json.push_str("null"),
        }
        json.push_str(",\"emitter\":");
        write_json_str(&mut json, &key.0);
        json.push_str(",\"plugin\":");
        match (plugin, h.plugin_name.as_deref()) {
            (Some(Plugin::Other), Some(n)) => {
                write_json_str(&mut json, n.strip_prefix("janus.plugin.").unwrap_or(n))
            }
            (Some(p), _) => write_json_str(&mut json, p.short()),
            (None, _) => json.push_str("null"),
        }
        json.push_str(",\"name\":");
        write_json_str(&mut json, &short);
        json.push_str(",\"role\":");
        write_json_str(&mut json, role.as_str());
        if let Some((_, r)) = &h.room {
            json.push_str(",\"room\":");
            r.write_json(&mut json);
        }
        if let Some(call) = &h.call {
            json.push_str(",\"call_id\":");
            write_json_str(&mut json, call);
        }
        if let Some(cl) = h.client {
            json.push_str(",\"client\":\"");
            crate::json::write_socket_addr(&mut json, cl);
            json.push('"');
        }
        pc.write_facts(&v, &mut json);
        json.push('}');
        out.summaries.push(Summary {
            words,
            json,
            outcome: v.outcome,
            room: false,
        });
        // The names stay for the retention: the alias keeper is told they ended.
        if let (Some(cl), Some(name)) = (h.client, h.named.clone()) {
            out.names.push(NameChange {
                ip: cl.ip(),
                port: cl.port(),
                name,
                ended: true,
            });
        }
        if let Some((far, name)) = h.far.take() {
            out.names.push(NameChange {
                ip: far.ip(),
                port: far.port(),
                name,
                ended: true,
            });
        }
        h.client = None;
        h.named = None;
        let room_key = h.room.clone().map(|(p, r)| (key.0.clone(), p, r));
        if let Some(rk) = room_key {
            let room = self.room_mut(&rk);
            room.live.remove(&key.1);
            room.counts[v.outcome.index()] += 1;
            room.last_us = room.last_us.max(end);
            if room.ended.len() < MAX_LISTED {
                room.ended
                    .push((short, key.1, role, v.outcome, v.duration_us, v.mos));
            } else {
                room.more += 1;
            }
            if room.live.is_empty() {
                let room = self.rooms.remove(&rk).expect("known");
                self.room_order.retain(|k| k != &rk);
                out.summaries.push(words::room_summary(&rk, &room));
            }
        }
    }
}

#[cfg(test)]
mod tests;
