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
//! Why this file is over 500 lines: the correlator's rules share one `EmitterState` and its
//! tables (sessions, handles, rooms, calls, holds). What a handle event teaches about its
//! handle is in `handle.rs` (one lookup per event, free functions over the tables); the
//! routing (groups, hold, fallback), sessions, rooms and sweeps stay here, each rule a
//! method of its own taking the event's context (`Cx`). Unit tests are at the end.

use std::collections::HashMap as StdHashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use smallvec::SmallVec;

/// Maps keyed by ids: ahash (fast, randomly seeded, so crafted ids cannot force collisions).
type HashMap<K, V> = StdHashMap<K, V, ahash::RandomState>;

use crate::janus::event::{Body, Event, EventType, Plugin, RoomId};

mod handle;

/// How events that belong to no room or call are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// `<emitter>:session:<session_id>`.
    #[default]
    Session,
    /// `<emitter>:handle:<handle_id>` (session-level events: the session id).
    Handle,
    /// `<emitter>:opaque:<opaque_id>` when the handle has one, else the session id.
    OpaqueId,
}

impl crate::choice::Choice for Fallback {
    const ALL: &'static [(&'static str, Self)] = &[
        ("session", Self::Session),
        ("handle", Self::Handle),
        ("opaque-id", Self::OpaqueId),
    ];
}
crate::choice::display_choice!(Fallback);

/// Correlator settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The fallback policy.
    pub fallback: Fallback,
    /// How long events wait for their handle's binding, µs (also the grace period after
    /// a handle or session ends).
    pub hold_us: u64,
    /// Inactivity after which a handle or session is forgotten, µs.
    pub idle_us: u64,
    /// Most handles tracked per emitter; beyond it the least recently active are evicted.
    pub max_handles: usize,
    /// Most events held per handle or session; beyond it the oldest is released.
    pub max_held: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fallback: Fallback::Session,
            hold_us: 10_000_000,
            idle_us: 3_600_000_000,
            max_handles: 200_000,
            max_held: 512,
        }
    }
}

/// A group: a room of a plugin, or a SIP call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupKey {
    /// A room.
    Room(Plugin, RoomId),
    /// A SIP call (its Call-ID).
    Call(Arc<str>),
}

/// A group with its correlation id, shared (interned) by every handle in it.
#[derive(Debug, Clone)]
struct Group(Arc<GroupInner>);

#[derive(Debug)]
struct GroupInner {
    key: GroupKey,
    cid: Arc<str>,
}

impl std::ops::Deref for Group {
    type Target = GroupInner;
    fn deref(&self) -> &GroupInner {
        &self.0
    }
}

/// The interned group of `key` (one allocation per room or call, not per handle).
fn intern(cache: &mut HashMap<GroupKey, Group>, emitter: &str, key: GroupKey) -> Group {
    if let Some(g) = cache.get(&key) {
        return g.clone();
    }
    let cid: Arc<str> = match &key {
        GroupKey::Room(p, r) => format!("{emitter}:{}:{r}", p.short()).into(),
        GroupKey::Call(c) => c.clone(),
    };
    let g = Group(Arc::new(GroupInner {
        key: key.clone(),
        cid,
    }));
    cache.insert(key, g.clone());
    g
}

type Groups = SmallVec<[Group; 2]>;

/// What heplink learned about an event, sent along in its payload and used for addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The group, when the event belongs to one.
    pub group: Option<GroupKey>,
    /// The participant (room id, participant id) of the handle or event.
    pub participant: Option<(RoomId, RoomId)>,
    /// The participant's display name.
    pub display: Option<Arc<str>>,
    /// Publishers a subscriber handle receives.
    pub feeds: Vec<RoomId>,
    /// The SIP Call-ID.
    pub call_id: Option<Arc<str>>,
    /// How long the event was held before its id was known, µs.
    pub held_us: u64,
    /// The client side of the PeerConnection or session, when known.
    pub client: Option<SocketAddr>,
    /// Janus's side of the PeerConnection, when known.
    pub janus: Option<SocketAddr>,
}

/// An event with its correlation id.
#[derive(Debug, Clone)]
pub struct Correlated {
    /// The event.
    pub event: Event,
    /// The correlation id.
    pub cid: Arc<str>,
    /// The facts learned.
    pub facts: Facts,
}

/// Counters of what the correlator did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events taken in.
    pub events: u64,
    /// Packets released (an event can give more than one).
    pub released: u64,
    /// Events that waited for a binding.
    pub held: u64,
    /// Held events released with the fallback id because no binding came in time.
    pub hold_expired: u64,
    /// Held events released early because a handle or session held too many.
    pub hold_overflow: u64,
    /// Handles and sessions forgotten after inactivity.
    pub expired: u64,
    /// Handles evicted by the cap.
    pub evicted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SipPhase {
    /// No call yet, or the last one is over and no new one started.
    Idle,
    /// A new call's offer came; its Call-ID is not known yet.
    SettingUp,
    /// In a call.
    InCall,
}

#[derive(Debug, Clone)]
struct Held {
    event: Event,
    at: u64,
}

impl Held {
    /// An event kept past its body's processing: with bytes of its own
    /// ([`Event::detached`]), so that what is kept is the event, not its whole body.
    fn new(event: Event, at: u64) -> Held {
        Held {
            event: event.detached(),
            at,
        }
    }
}

#[derive(Debug)]
struct HandleState {
    session: Option<u64>,
    plugin: Option<Plugin>,
    groups: Groups,
    /// The room this handle participates in (as publisher, subscriber or member).
    participant: Option<(RoomId, RoomId)>,
    display: Option<Arc<str>>,
    feeds: Vec<RoomId>,
    sip: SipPhase,
    held: Vec<Held>,
    /// The hold ran out without a binding: events go to the fallback until one comes.
    gave_up: bool,
    client: Option<SocketAddr>,
    janus: Option<SocketAddr>,
    opaque: Option<Arc<str>>,
    last_seen: u64,
    ended_at: Option<u64>,
}

#[derive(Debug, Default)]
struct SessionState {
    handles: SmallVec<[u64; 2]>,
    /// Groups of handles already forgotten, for the session's last events.
    past_groups: Groups,
    held: Vec<Held>,
    /// A handle of the session sends to the session's fallback flow (it never binds):
    /// the session's events go there too, besides its handles' groups.
    fallback_used: bool,
    gave_up: bool,
    client: Option<SocketAddr>,
    transport_id: Option<Arc<str>>,
    persistent_transport: bool,
    last_seen: u64,
    ended_at: Option<u64>,
}

#[derive(Debug)]
struct TransportSeen {
    client: Option<SocketAddr>,
    at: u64,
}

#[derive(Debug, Default)]
struct EmitterState {
    sessions: HashMap<u64, SessionState>,
    handles: HashMap<u64, HandleState>,
    /// (plugin, room, participant id) → handle.
    participants: HashMap<(Plugin, RoomId, RoomId), u64>,
    transports: HashMap<Arc<str>, TransportSeen>,
    /// Persistent connection id → sessions created on it.
    transport_sessions: HashMap<Arc<str>, SmallVec<[u64; 2]>>,
    /// Interned groups; an entry goes when no handle or session refers to it any more.
    groups: HashMap<GroupKey, Group>,
    /// Recent fallback ids (read from `&self` methods too, hence the cell).
    cids: std::cell::RefCell<CidCache>,
    /// Per session: its events sent before any of its handles had a group, kept for the
    /// hold window, so that a group one of its handles gets within it receives them too
    /// (with the groups that already have them). Only sessions that have some pay.
    late: HashMap<u64, Vec<(Held, Groups)>>,
}

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
                e.handles.values().map(|h| h.held.len()).sum::<usize>()
                    + e.sessions.values().map(|s| s.held.len()).sum::<usize>()
            })
            .sum()
    }

    /// When the oldest held event came in (the `now` it was pushed with), if any is held:
    /// everything pushed before it has been released.
    pub fn oldest_held(&self) -> Option<u64> {
        self.emitters
            .values()
            .flat_map(|e| {
                let h = e.handles.values().flat_map(|h| h.held.first());
                let s = e.sessions.values().flat_map(|s| s.held.first());
                h.chain(s).map(|h| h.at)
            })
            .min()
    }

    /// The times (the `now` they were pushed with) of the events held, added to `out`:
    /// a body taken at its own time has all its events released when its time is not
    /// there.
    pub fn held_times(&self, out: &mut std::collections::HashSet<u64>) {
        for e in self.emitters.values() {
            let h = e.handles.values().flat_map(|h| h.held.iter());
            let s = e.sessions.values().flat_map(|s| s.held.iter());
            out.extend(h.chain(s).map(|h| h.at));
        }
    }

    /// Forgets, without releasing them, the held events pushed at `at`: a body replayed
    /// only to rebuild state (nothing of it is to be sent) leaves nothing behind.
    pub fn drop_held_at(&mut self, at: u64) -> usize {
        let mut n = 0;
        for e in self.emitters.values_mut() {
            for h in e.handles.values_mut() {
                let before = h.held.len();
                h.held.retain(|x| x.at != at);
                n += before - h.held.len();
            }
            for s in e.sessions.values_mut() {
                let before = s.held.len();
                s.held.retain(|x| x.at != at);
                n += before - s.held.len();
            }
        }
        n
    }

    /// Whether the correlator holds no state at all.
    pub fn is_empty(&self) -> bool {
        self.emitters.is_empty()
    }

    /// Takes one event at time `now`; appends what can be released to `out`, in order.
    pub fn push(&mut self, ev: Event, now: u64, out: &mut Vec<Correlated>) {
        self.stats.events += 1;
        let start = out.len();
        if now >= self.last_sweep + SWEEP_EVERY_US {
            self.tick(now, out);
        }
        let cfg = self.cfg.clone();
        let em = self.emitters.entry(ev.emitter.clone()).or_default();
        let mut stats = std::mem::take(&mut self.stats);
        em.push(&cfg, &mut stats, ev, now, out);
        stats.released += (out.len() - start) as u64;
        self.stats = stats;
    }

    /// Releases held events whose time is up and forgets ended or idle state.
    pub fn tick(&mut self, now: u64, out: &mut Vec<Correlated>) {
        self.last_sweep = now;
        let start = out.len();
        let cfg = self.cfg.clone();
        let mut stats = std::mem::take(&mut self.stats);
        self.emitters.retain(|name, em| {
            em.sweep(name, &cfg, &mut stats, now, out);
            !(em.sessions.is_empty()
                && em.handles.is_empty()
                && em.participants.is_empty()
                && em.transports.is_empty())
        });
        stats.released += (out.len() - start) as u64;
        self.stats = stats;
    }

    /// Releases every held event (with the fallback id where no binding came), e.g. at
    /// the end of a capture or at shutdown, at time `now` (µs). State is kept.
    pub fn flush(&mut self, now: u64, out: &mut Vec<Correlated>) {
        let start = out.len();
        let cfg = self.cfg.clone();
        for (name, em) in self.emitters.iter_mut() {
            let hids: Vec<u64> = em
                .handles
                .iter()
                .filter(|(_, h)| !h.held.is_empty())
                .map(|(k, _)| *k)
                .collect();
            for hid in hids {
                em.release_handle_fallback(name, &cfg, hid, now, out);
            }
            let sids: Vec<u64> = em
                .sessions
                .iter()
                .filter(|(_, s)| !s.held.is_empty())
                .map(|(k, _)| *k)
                .collect();
            for sid in sids {
                em.release_session(name, &cfg, sid, now, out);
            }
        }
        self.stats.released += (out.len() - start) as u64;
    }
}

/// What a fallback or emitter-level correlation id is made of (besides the emitter).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CidKey {
    /// Core events (and session-less events), per hour (µs since the epoch / 1 h).
    Core(u64),
    External,
    Session(u64),
    Handle(u64),
    Opaque(Arc<str>),
    /// A transport plugin's package name (`janus.transport.http`), or `None`, per hour.
    Transport(Option<Arc<str>>, u64),
    /// Plugin events with neither handle, session nor room.
    Plugin(Plugin),
}

impl CidKey {
    fn session(sid: Option<u64>, at_us: u64) -> CidKey {
        sid.map_or(CidKey::Core(hour(at_us)), CidKey::Session)
    }

    fn format(&self, em: &str) -> String {
        match self {
            CidKey::Core(h) => format!("{em}:core:{}", hour_label(*h)),
            CidKey::External => format!("{em}:external"),
            CidKey::Session(s) => format!("{em}:session:{s}"),
            CidKey::Handle(h) => format!("{em}:handle:{h}"),
            CidKey::Opaque(o) => format!("{em}:opaque:{o}"),
            CidKey::Transport(t, h) => {
                let name = t.as_deref().unwrap_or("unknown");
                let short = name.strip_prefix("janus.transport.").unwrap_or(name);
                format!("{em}:transport:{short}:{}", hour_label(*h))
            }
            CidKey::Plugin(p) => format!("{em}:{}", p.short()),
        }
    }
}

/// The hour of a time in µs since the epoch (the bucket of core and transport flows).
fn hour(at_us: u64) -> u64 {
    at_us / 3_600_000_000
}

/// An hour as `YYYY-MM-DDTHH` (UTC), from hours since the epoch.
pub fn hour_label(hours: u64) -> String {
    let (y, m, d) = crate::time::civil_from_days((hours / 24) as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}", hours % 24)
}

/// Slots of the [`CidCache`] of an emitter.
const CID_SLOTS: usize = 256;

/// Recent fallback ids. An id is a pure function of (emitter, [`CidKey`]), so this
/// direct-mapped cache can never give a wrong one: it only spares formatting and
/// allocating a new `Arc<str>` for every event of a session, handle or transport (and
/// lets the mapper reuse the id's bytes). Bounded to [`CID_SLOTS`] entries per emitter.
#[derive(Debug, Default)]
struct CidCache {
    slots: Vec<Option<(CidKey, Arc<str>)>>,
}

impl CidCache {
    fn get(&mut self, em: &str, key: CidKey) -> Arc<str> {
        if self.slots.is_empty() {
            self.slots.resize(CID_SLOTS, None);
        }
        let h = match &key {
            CidKey::Session(id) | CidKey::Handle(id) => {
                id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
            }
            k => ahash::RandomState::with_seeds(1, 2, 3, 4).hash_one(k),
        };
        let i = (h as usize) % CID_SLOTS;
        if let Some((k, v)) = &self.slots[i] {
            if *k == key {
                return v.clone();
            }
        }
        let v: Arc<str> = key.format(em).into();
        self.slots[i] = Some((key, v.clone()));
        v
    }
}

/// The context of one event's handling: the emitter, the settings, the counters, the
/// clock and where correlated events go.
struct Cx<'a> {
    em: &'a str,
    cfg: &'a Config,
    st: &'a mut Stats,
    now: u64,
    out: &'a mut Vec<Correlated>,
}

fn push_unique(groups: &mut Groups, g: Group) {
    if !groups.iter().any(|x| x.key == g.key) {
        groups.push(g);
    }
}

impl EmitterState {
    /// The fallback id of `key` for emitter `em`.
    fn cid(&self, em: &str, key: CidKey) -> Arc<str> {
        self.cids.borrow_mut().get(em, key)
    }

    fn push(
        &mut self,
        cfg: &Config,
        st: &mut Stats,
        ev: Event,
        now: u64,
        out: &mut Vec<Correlated>,
    ) {
        let emitter = ev.emitter.clone();
        let em = &*emitter;
        match ev.kind {
            EventType::Core => {
                let key = CidKey::Core(hour(ev.timestamp.unwrap_or(now)));
                emit(out, ev, self.cid(em, key), Facts::default())
            }
            EventType::External if ev.session_id.is_none() => {
                emit(out, ev, self.cid(em, CidKey::External), Facts::default())
            }
            EventType::Transport => self.transport_event(em, cfg, st, ev, now, out),
            EventType::Session => {
                let Some(sid) = ev.session_id else {
                    let key = CidKey::Core(hour(ev.timestamp.unwrap_or(now)));
                    return emit(out, ev, self.cid(em, key), Facts::default());
                };
                let s = self.sessions.entry(sid).or_default();
                s.last_seen = now;
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
                        if let Some(t) = transport_id.as_ref().and_then(|t| self.transports.get(t))
                        {
                            s.client = t.client;
                        }
                    }
                    ending = matches!(&**name, "destroyed" | "timeout");
                }
                self.session_event(em, cfg, st, sid, ev, now, out);
                if ending {
                    if let Some(s) = self.sessions.get_mut(&sid) {
                        s.ended_at = Some(now);
                    }
                    // Held events stay until the grace period ends: a binding may
                    // still arrive (events can come out of order).
                }
            }
            _ => match (ev.handle_id, ev.session_id) {
                (Some(hid), _) => self.handle_event(em, cfg, st, hid, ev, now, out),
                (None, _) if ev.kind == EventType::Plugin => {
                    self.room_event(em, cfg, st, ev, now, out)
                }
                (None, Some(sid)) => {
                    self.sessions.entry(sid).or_default().last_seen = now;
                    self.session_event(em, cfg, st, sid, ev, now, out)
                }
                (None, None) => {
                    let key = CidKey::Core(hour(ev.timestamp.unwrap_or(now)));
                    emit(out, ev, self.cid(em, key), Facts::default())
                }
            },
        }
    }

    fn transport_event(
        &mut self,
        em: &str,
        cfg: &Config,
        st: &mut Stats,
        ev: Event,
        now: u64,
        out: &mut Vec<Correlated>,
    ) {
        let at = hour(ev.timestamp.unwrap_or(now));
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
            return emit(out, ev, self.cid(em, flow), Facts::default());
        };
        if self.transports.len() < 65_536 || self.transports.contains_key(&id) {
            self.transports
                .insert(id.clone(), TransportSeen { client, at: now });
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
            return emit(
                out,
                ev,
                self.cid(em, flow),
                Facts {
                    client,
                    ..Facts::default()
                },
            );
        }
        sids.sort_unstable();
        for sid in sids {
            self.session_event(em, cfg, st, sid, ev.clone(), now, out);
        }
    }

    /// Groups of a session's handles (current, then those of forgotten handles).
    fn session_groups(&self, sid: u64) -> Groups {
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
    fn session_may_bind(&self, sid: u64) -> bool {
        let Some(s) = self.sessions.get(&sid) else {
            return false;
        };
        if s.gave_up {
            return false;
        }
        s.handles.is_empty()
            || s.handles.iter().any(|h| {
                self.handles
                    .get(h)
                    .is_some_and(|h| !h.gave_up && h.plugin.is_none_or(Plugin::binds))
            })
    }

    #[allow(clippy::too_many_arguments)]
    fn session_event(
        &mut self,
        em: &str,
        cfg: &Config,
        st: &mut Stats,
        sid: u64,
        ev: Event,
        now: u64,
        out: &mut Vec<Correlated>,
    ) {
        let groups = self.session_groups(sid);
        let client = self.sessions.get(&sid).and_then(|s| s.client);
        if !groups.is_empty() {
            self.release_session(em, cfg, sid, now, out);
            let facts = Facts {
                client,
                ..Facts::default()
            };
            if self.sessions.get(&sid).is_some_and(|s| s.fallback_used) {
                emit(
                    out,
                    ev.clone(),
                    self.session_cid(em, cfg, sid),
                    facts.clone(),
                );
            }
            emit_groups(out, ev, &groups, facts);
            return;
        }
        if self.session_may_bind(sid) {
            st.held += 1;
            let s = self.sessions.entry(sid).or_default();
            if s.held.len() >= cfg.max_held {
                st.hold_overflow += 1;
                let first = s.held.remove(0);
                let cid = self.session_cid(em, cfg, sid);
                emit(
                    out,
                    first.event,
                    cid,
                    Facts {
                        client,
                        held_us: now.saturating_sub(first.at),
                        ..Facts::default()
                    },
                );
            }
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.held.push(Held::new(ev, now));
            }
            return;
        }
        let cid = self.session_cid(em, cfg, sid);
        self.keep_late(cfg, sid, &ev, now);
        emit(
            out,
            ev,
            cid,
            Facts {
                client,
                ..Facts::default()
            },
        );
    }

    /// Keeps a session event sent to the fallback for the hold window (see `late`).
    fn keep_late(&mut self, cfg: &Config, sid: u64, ev: &Event, now: u64) {
        if !self.sessions.contains_key(&sid) {
            return;
        }
        let late = self.late.entry(sid).or_default();
        late.retain(|(h, _)| now.saturating_sub(h.at) < cfg.hold_us);
        if late.len() < cfg.max_held {
            late.push((Held::new(ev.clone(), now), Groups::new()));
        }
    }

    /// A handle of session `sid` got a group: the session's recent events that went to
    /// the fallback reach each group they have not reached yet.
    fn echo_late(&mut self, sid: u64, now: u64, hold_us: u64, out: &mut Vec<Correlated>) {
        // The common case, on every event of a bound handle: nothing kept.
        if !self.late.contains_key(&sid) {
            return;
        }
        let groups = self.session_groups(sid);
        let client = self.sessions.get(&sid).and_then(|s| s.client);
        let Some(late) = self.late.get_mut(&sid) else {
            return;
        };
        late.retain(|(h, _)| now.saturating_sub(h.at) < hold_us);
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
            emit_groups(out, h.event.clone(), &new, facts);
        }
    }

    fn session_cid(&self, em: &str, cfg: &Config, sid: u64) -> Arc<str> {
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
    fn release_session(
        &mut self,
        em: &str,
        cfg: &Config,
        sid: u64,
        now: u64,
        out: &mut Vec<Correlated>,
    ) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if s.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut s.held);
        let fallback_used = s.fallback_used;
        let base = Facts {
            client: s.client,
            ..Facts::default()
        };
        let groups = self.session_groups(sid);
        let cid = self.session_cid(em, cfg, sid);
        if groups.is_empty() {
            for h in &held {
                self.keep_late(cfg, sid, &h.event, h.at);
            }
            release_held(out, held, &base, now, &To::Cid(cid));
        } else {
            if fallback_used {
                release_held(out, held.clone(), &base, now, &To::Cid(cid));
            }
            release_held(out, held, &base, now, &To::Groups(&groups));
        }
    }

    fn handle_cid(&self, em: &str, cfg: &Config, hid: u64, h: &HandleState) -> Arc<str> {
        match cfg.fallback {
            Fallback::Handle => self.cid(em, CidKey::Handle(hid)),
            Fallback::OpaqueId => match &h.opaque {
                Some(o) => self.cid(em, CidKey::Opaque(o.clone())),
                None => self.cid(em, CidKey::session(h.session, h.last_seen)),
            },
            Fallback::Session => self.cid(em, CidKey::session(h.session, h.last_seen)),
        }
    }

    fn handle_facts(h: &HandleState) -> Facts {
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

    #[allow(clippy::too_many_arguments)]
    fn handle_event(
        &mut self,
        em: &str,
        cfg: &Config,
        st: &mut Stats,
        hid: u64,
        ev: Event,
        now: u64,
        out: &mut Vec<Correlated>,
    ) {
        if !self.handles.contains_key(&hid) && self.handles.len() >= cfg.max_handles {
            // The hard cap: make room before tracking one more handle.
            self.evict(em, cfg, st, now, out);
        }
        let h = handle::track(&mut self.sessions, &mut self.handles, hid, &ev, now);
        let learned = handle::learn(h, &mut self.groups, em, &ev);
        let bound = !h.groups.is_empty();
        let may_bind = !h.gave_up && h.plugin.is_none_or(Plugin::binds);
        if let Some(key) = learned.new_participant {
            self.participants.insert(key, hid);
        }
        let mut cx = Cx {
            em,
            cfg,
            st,
            now,
            out,
        };
        if let Some((cid, key)) = learned.own_cid {
            let h = &self.handles[&hid];
            let mut facts = Self::handle_facts(h);
            facts.call_id = Some(cid.clone());
            facts.group = Some(key);
            emit(cx.out, ev, cid, facts);
        } else if bound {
            self.send_bound(&mut cx, hid, ev, learned.named);
        } else if may_bind {
            self.hold(&mut cx, hid, ev);
        } else {
            self.send_fallback(&mut cx, hid, ev);
        }
        if learned.detached {
            // Held events wait out the grace period: a binding may still come.
            if let Some(h) = self.handles.get_mut(&hid) {
                h.ended_at = Some(now);
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
        self.release_handle(hid, &groups, cx.now, cx.out);
        if let Some(sid) = session {
            self.release_session(cx.em, cx.cfg, sid, cx.now, cx.out);
            self.echo_late(sid, cx.now, cx.cfg.hold_us, cx.out);
        }
        emit_groups(cx.out, ev, &to, facts);
    }

    /// An event of a handle that may still bind: held (the oldest goes to the fallback
    /// when the hold is full).
    fn hold(&mut self, cx: &mut Cx<'_>, hid: u64, ev: Event) {
        cx.st.held += 1;
        if self.handles[&hid].held.len() >= cx.cfg.max_held {
            cx.st.hold_overflow += 1;
            let cid = self.handle_cid(cx.em, cx.cfg, hid, &self.handles[&hid]);
            let h = self.handles.get_mut(&hid).expect("tracked");
            let first = h.held.remove(0);
            let facts = Facts {
                held_us: cx.now.saturating_sub(first.at),
                ..Self::handle_facts(h)
            };
            emit(cx.out, first.event, cid, facts);
        }
        let h = self.handles.get_mut(&hid).expect("tracked");
        h.held.push(Held::new(ev, cx.now));
    }

    /// An event of a handle that never binds (or gave up): what it held, then this one,
    /// to the fallback flow.
    fn send_fallback(&mut self, cx: &mut Cx<'_>, hid: u64, ev: Event) {
        self.release_handle_fallback(cx.em, cx.cfg, hid, cx.now, cx.out);
        let session = self.handles[&hid].session;
        if cx.cfg.fallback == Fallback::Session {
            if let Some(s) = session.and_then(|sid| self.sessions.get_mut(&sid)) {
                s.fallback_used = true;
            }
        }
        let h = &self.handles[&hid];
        let cid = self.handle_cid(cx.em, cx.cfg, hid, h);
        emit(cx.out, ev, cid, Self::handle_facts(h));
        if let Some(sid) = session {
            if !self.session_may_bind(sid) {
                self.release_session(cx.em, cx.cfg, sid, cx.now, cx.out);
            }
        }
    }

    /// Releases a bound handle's held events to its groups.
    fn release_handle(&mut self, hid: u64, groups: &[Group], now: u64, out: &mut Vec<Correlated>) {
        let Some(h) = self.handles.get_mut(&hid) else {
            return;
        };
        if h.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut h.held);
        release_held(out, held, &Self::handle_facts(h), now, &To::Groups(groups));
    }

    /// Releases a handle's held events to the fallback id.
    fn release_handle_fallback(
        &mut self,
        em: &str,
        cfg: &Config,
        hid: u64,
        now: u64,
        out: &mut Vec<Correlated>,
    ) {
        let Some(h) = self.handles.get(&hid) else {
            return;
        };
        if h.held.is_empty() {
            return;
        }
        if !h.groups.is_empty() {
            let groups = h.groups.clone();
            return self.release_handle(hid, &groups, now, out);
        }
        let cid = self.handle_cid(em, cfg, hid, h);
        let h = self.handles.get_mut(&hid).expect("present");
        let held = std::mem::take(&mut h.held);
        release_held(out, held, &Self::handle_facts(h), now, &To::Cid(cid));
    }

    fn room_event(
        &mut self,
        em: &str,
        cfg: &Config,
        st: &mut Stats,
        ev: Event,
        now: u64,
        out: &mut Vec<Correlated>,
    ) {
        let Some(p) = ev.plugin() else {
            let key = CidKey::Core(hour(ev.timestamp.unwrap_or(now)));
            return emit(out, ev, self.cid(em, key), Facts::default());
        };
        let pl = p.plugin.unwrap_or(Plugin::Other);
        let (Some(room), true) = (p.room.clone(), pl.binds() && pl != Plugin::Sip) else {
            // A plugin event with no handle and no room: the session, if any, else core.
            return match ev.session_id {
                Some(sid) => self.session_event(em, cfg, st, sid, ev, now, out),
                None => emit(out, ev, self.cid(em, CidKey::Plugin(pl)), Facts::default()),
            };
        };
        let key = GroupKey::Room(pl, room.clone());
        let g = intern(&mut self.groups, em, key.clone());
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
        emit(out, ev, g.cid.clone(), facts);
    }

    /// Releases expired holds; forgets ended and idle state; applies the handle cap.
    fn sweep(
        &mut self,
        em: &str,
        cfg: &Config,
        st: &mut Stats,
        now: u64,
        out: &mut Vec<Correlated>,
    ) {
        // Session events kept for late groups: only for the hold window.
        self.late.retain(|_, v| {
            v.retain(|(h, _)| now.saturating_sub(h.at) < cfg.hold_us);
            !v.is_empty()
        });
        // Holds that ran out.
        for hid in ran_out(
            self.handles.iter().map(|(k, h)| (*k, &h.held)),
            now,
            cfg.hold_us,
        ) {
            if let Some(h) = self.handles.get_mut(&hid) {
                st.hold_expired += h.held.len() as u64;
                h.gave_up = true;
            }
            self.release_handle_fallback(em, cfg, hid, now, out);
        }
        for sid in ran_out(
            self.sessions.iter().map(|(k, s)| (*k, &s.held)),
            now,
            cfg.hold_us,
        ) {
            if let Some(s) = self.sessions.get_mut(&sid) {
                st.hold_expired += s.held.len() as u64;
                s.gave_up = true;
            }
            self.release_session(em, cfg, sid, now, out);
        }
        // Ended (after the grace period) or idle handles.
        let gone: Vec<(u64, bool)> = self
            .handles
            .iter()
            .filter_map(|(k, h)| match h.ended_at {
                Some(t) if now.saturating_sub(t) >= cfg.hold_us => Some((*k, false)),
                None if now.saturating_sub(h.last_seen) >= cfg.idle_us => Some((*k, true)),
                _ => None,
            })
            .collect();
        for (hid, idle) in gone {
            if idle {
                st.expired += 1;
            }
            self.forget_handle(em, cfg, hid, now, out);
        }
        if self.handles.len() > cfg.max_handles {
            self.evict(em, cfg, st, now, out);
        }
        let gone: Vec<(u64, bool)> = self
            .sessions
            .iter()
            .filter_map(|(k, s)| match s.ended_at {
                Some(t) if now.saturating_sub(t) >= cfg.hold_us => Some((*k, false)),
                None if now.saturating_sub(s.last_seen) >= cfg.idle_us && s.handles.is_empty() => {
                    Some((*k, true))
                }
                _ => None,
            })
            .collect();
        for (sid, idle) in gone {
            if idle {
                st.expired += 1;
            }
            self.forget_session(em, cfg, sid, now, out);
        }
        self.transports
            .retain(|_, t| now.saturating_sub(t.at) < cfg.hold_us);
    }

    /// Forgets an ended or idle session: what it holds is released, its transport's list
    /// and its handles are forgotten.
    fn forget_session(
        &mut self,
        em: &str,
        cfg: &Config,
        sid: u64,
        now: u64,
        out: &mut Vec<Correlated>,
    ) {
        self.release_session(em, cfg, sid, now, out);
        let Some(s) = self.sessions.remove(&sid) else {
            return;
        };
        if let Some(t) = &s.transport_id {
            if let Some(list) = self.transport_sessions.get_mut(t) {
                list.retain(|x| *x != sid);
                if list.is_empty() {
                    self.transport_sessions.remove(t);
                }
            }
        }
        for h in s.handles {
            self.forget_handle(em, cfg, h, now, out);
        }
    }

    /// Evicts the least recently active handles down to 90% of the cap (counted).
    fn evict(
        &mut self,
        em: &str,
        cfg: &Config,
        st: &mut Stats,
        now: u64,
        out: &mut Vec<Correlated>,
    ) {
        let mut by_age: Vec<(u64, u64)> = self
            .handles
            .iter()
            .map(|(k, h)| (h.last_seen, *k))
            .collect();
        by_age.sort_unstable();
        let excess = self
            .handles
            .len()
            .saturating_sub(cfg.max_handles * 9 / 10)
            .max(1);
        for (_, hid) in by_age.into_iter().take(excess) {
            st.evicted += 1;
            self.forget_handle(em, cfg, hid, now, out);
        }
    }

    fn forget_handle(
        &mut self,
        em: &str,
        cfg: &Config,
        hid: u64,
        now: u64,
        out: &mut Vec<Correlated>,
    ) {
        self.release_handle_fallback(em, cfg, hid, now, out);
        let Some(h) = self.handles.remove(&hid) else {
            return;
        };
        self.participants.retain(|_, v| *v != hid);
        if let Some(s) = h.session.and_then(|sid| self.sessions.get_mut(&sid)) {
            s.handles.retain(|x| *x != hid);
            for g in h.groups {
                push_unique(&mut s.past_groups, g);
            }
        }
    }
}

/// The ids whose oldest held event has waited `hold_us` or more.
fn ran_out<'a>(
    held: impl Iterator<Item = (u64, &'a Vec<Held>)>,
    now: u64,
    hold_us: u64,
) -> Vec<u64> {
    held.filter(|(_, h)| {
        h.first()
            .is_some_and(|e| now.saturating_sub(e.at) >= hold_us)
    })
    .map(|(k, _)| k)
    .collect()
}

/// Where released events go: a bound handle's or session's groups, or a fallback id.
enum To<'a> {
    Groups(&'a [Group]),
    Cid(Arc<str>),
}

/// Emits held events in order, each with `base` and the time it was held.
fn release_held(out: &mut Vec<Correlated>, held: Vec<Held>, base: &Facts, now: u64, to: &To) {
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

fn emit(out: &mut Vec<Correlated>, event: Event, cid: Arc<str>, facts: Facts) {
    out.push(Correlated { event, cid, facts });
}

fn emit_groups(out: &mut Vec<Correlated>, event: Event, groups: &[Group], facts: Facts) {
    let last = groups.len() - 1;
    let mut event = Some(event);
    for (i, g) in groups.iter().enumerate() {
        let e = if i == last {
            event.take().expect("once")
        } else {
            event.clone().expect("present")
        };
        let mut f = facts.clone();
        f.group = Some(g.key.clone());
        if let GroupKey::Call(c) = &g.key {
            f.call_id = Some(c.clone());
        }
        emit(out, e, g.cid.clone(), f);
    }
}

#[cfg(test)]
mod hour_tests {
    use super::*;

    #[test]
    fn hour_labels_are_utc_calendar_hours() {
        assert_eq!(hour_label(hour(1_795_489_768_469_225)), "2026-11-24T03");
        assert_eq!(hour_label(0), "1970-01-01T00");
        assert_eq!(hour_label(hour(951_782_400_000_000)), "2000-02-29T00");
        assert_eq!(hour_label(hour(4_102_444_800_000_000 - 1)), "2099-12-31T23");
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Guards the per-handle memory figure (≤ 1 KiB per live handle, measured by
    /// `cargo bench --bench state_size`): the tables' slots must not grow unnoticed.
    #[test]
    fn state_structs_stay_small() {
        assert!(
            std::mem::size_of::<HandleState>() <= 256,
            "{}",
            std::mem::size_of::<HandleState>()
        );
        assert!(
            std::mem::size_of::<SessionState>() <= 152,
            "{}",
            std::mem::size_of::<SessionState>()
        );
        assert_eq!(std::mem::size_of::<Group>(), 8);
    }
}

#[cfg(test)]
mod kept_tests {
    use super::*;
    use bytes::Bytes;

    /// Every event the correlator keeps (held for a binding, kept for late groups).
    fn kept(c: &Correlator) -> Vec<&Event> {
        let mut v = Vec::new();
        for e in c.emitters.values() {
            v.extend(
                e.handles
                    .values()
                    .flat_map(|h| h.held.iter().map(|h| &h.event)),
            );
            v.extend(
                e.sessions
                    .values()
                    .flat_map(|s| s.held.iter().map(|h| &h.event)),
            );
            v.extend(
                e.late
                    .values()
                    .flat_map(|l| l.iter().map(|(h, _)| &h.event)),
            );
        }
        v
    }

    /// A kept event owns its bytes: it does not keep the body it came in (for the HTTP
    /// input, the connection's read buffer) alive. Sharing the body's allocation kept
    /// every such body for the hold window: 100-224 MiB under 100-event POSTs.
    #[test]
    fn kept_events_do_not_keep_their_body() {
        let session = br#"{"emitter":"j","type":1,"timestamp":1795489769234105,"session_id":7,"event":{"name":"created","transport":{"transport":"janus.transport.http","id":"1"}}}"#;
        let attached = br#"{"emitter":"j","type":2,"timestamp":1795489769241014,"session_id":7,"handle_id":8,"event":{"name":"attached","plugin":"janus.plugin.videoroom","opaque_id":"x"}}"#;
        // One large body holding both events, as an HTTP body read in one piece.
        let mut big = Vec::with_capacity(1 << 20);
        big.extend_from_slice(session);
        big.extend_from_slice(attached);
        big.resize(1 << 20, b' ');
        let body = Bytes::from(big);
        let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        let mut parser = crate::janus::EventParser::new();
        let mut c = Correlator::new(Config::default());
        let mut out = Vec::new();
        let now = 1_795_489_769_000_000;
        for (a, b) in [
            (0, session.len()),
            (session.len(), session.len() + attached.len()),
        ] {
            let ev = parser.parse(body.slice(a..b)).unwrap();
            c.push(ev, now, &mut out);
        }
        let kept = kept(&c);
        assert!(!kept.is_empty(), "the handle's event waits for its room");
        for ev in kept {
            let p = ev.raw.as_ptr() as usize;
            assert!(!range.contains(&p), "a kept event points into its body");
        }
    }
}
