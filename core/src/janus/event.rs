//! The Janus event model: typed, tolerant parsing of what Janus 1.x event handlers emit.
//!
//! An [`Event`] keeps the event's original JSON bytes (`raw`, sent on unchanged) and the
//! few facts correlation and mapping need, parsed with borrowing serde structs (never a
//! `serde_json::Value`). Unknown types, subtypes and fields are kept in `raw` and never an
//! error; a malformed event is an [`EventError`] that does not affect its neighbours.
//!
//! Why this file is over 500 lines: the event model and its one-pass reader are one unit
//! (every field the reader decodes is a field of the model). The ICE and SIP helpers it
//! uses are in `ice.rs` and `sip.rs`, the JSON writers in `crate::json`.

use crate::janus::ice::{candidate_addr, selected_pair};
use crate::janus::sip::sip_call_id;
use crate::json::{write_json_str, write_u64};
use crate::reject::Reject;
use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;

use super::scan::{self, Num, Scalar, ScanError, Scanner};

/// The `type` of a Janus event (one bit of Janus's event mask), or a value Janus may add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// 1: session created, destroyed, timeout.
    Session,
    /// 2: handle attached, detached.
    Handle,
    /// 4: external (Admin API `custom_event`).
    External,
    /// 8: JSEP offer / answer.
    Jsep,
    /// 16: ICE, candidates, selected pair, DTLS, PeerConnection state.
    WebRtc,
    /// 32: media state, slow link, stats.
    Media,
    /// 64: plugin events.
    Plugin,
    /// 128: transport events.
    Transport,
    /// 256: core events (startup, status update, shutdown).
    Core,
    /// Any other value: kept as it came.
    Other(u16),
}

impl EventType {
    /// The known types in Janus's order, then the label of every other value: the `type`
    /// label of `heplink_events_total` indexed by [`EventType::index`].
    pub const LABELS: [&'static str; 10] =
        ["1", "2", "4", "8", "16", "32", "64", "128", "256", "other"];

    /// The type Janus's `type` field names.
    pub fn from_code(code: u16) -> Self {
        match code {
            1 => Self::Session,
            2 => Self::Handle,
            4 => Self::External,
            8 => Self::Jsep,
            16 => Self::WebRtc,
            32 => Self::Media,
            64 => Self::Plugin,
            128 => Self::Transport,
            256 => Self::Core,
            other => Self::Other(other),
        }
    }

    /// The value of Janus's `type` field.
    pub fn code(self) -> u16 {
        match self {
            Self::Session => 1,
            Self::Handle => 2,
            Self::External => 4,
            Self::Jsep => 8,
            Self::WebRtc => 16,
            Self::Media => 32,
            Self::Plugin => 64,
            Self::Transport => 128,
            Self::Core => 256,
            Self::Other(code) => code,
        }
    }

    /// This type's place in [`EventType::LABELS`].
    pub fn index(self) -> usize {
        match self {
            Self::Session => 0,
            Self::Handle => 1,
            Self::External => 2,
            Self::Jsep => 3,
            Self::WebRtc => 4,
            Self::Media => 5,
            Self::Plugin => 6,
            Self::Transport => 7,
            Self::Core => 8,
            Self::Other(_) => 9,
        }
    }
}

/// Janus's number (`16`), as the golden files and labels write it.
impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// A room or participant id: a number, or a string with `string_ids = true`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoomId {
    /// Numeric id.
    Num(u64),
    /// String id.
    Str(Arc<str>),
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomId::Num(n) => write!(f, "{n}"),
            RoomId::Str(s) => f.write_str(s),
        }
    }
}

impl RoomId {
    /// Writes the id as a JSON value (number or string).
    pub fn write_json<W: fmt::Write>(&self, out: &mut W) {
        match self {
            RoomId::Num(n) => write_u64(out, *n),
            RoomId::Str(s) => write_json_str(out, s),
        }
    }
}

/// The plugins correlation knows about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plugin {
    /// `janus.plugin.videoroom`.
    VideoRoom,
    /// `janus.plugin.audiobridge`.
    AudioBridge,
    /// `janus.plugin.textroom`.
    TextRoom,
    /// `janus.plugin.sip`.
    Sip,
    /// Any other plugin (echotest, streaming, …): no binding, events use the fallback id.
    Other,
}

impl Plugin {
    /// From a plugin package name.
    pub fn from_package(name: &str) -> Plugin {
        match name {
            "janus.plugin.videoroom" => Plugin::VideoRoom,
            "janus.plugin.audiobridge" => Plugin::AudioBridge,
            "janus.plugin.textroom" => Plugin::TextRoom,
            "janus.plugin.sip" => Plugin::Sip,
            _ => Plugin::Other,
        }
    }

    /// The short name used in correlation ids.
    pub fn short(self) -> &'static str {
        match self {
            Plugin::VideoRoom => "videoroom",
            Plugin::AudioBridge => "audiobridge",
            Plugin::TextRoom => "textroom",
            Plugin::Sip => "sip",
            Plugin::Other => "other",
        }
    }

    /// Whether handles of this plugin bind to a room or a call (and are worth holding).
    pub fn binds(self) -> bool {
        self != Plugin::Other
    }
}

/// A parsed event: original bytes plus the facts heplink uses.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event object exactly as received.
    pub raw: Bytes,
    /// `emitter` (the Janus `server_name`); empty when absent.
    pub emitter: Arc<str>,
    /// `type`.
    pub kind: EventType,
    /// `subtype` (types 16, 32, 256).
    pub subtype: Option<u16>,
    /// `timestamp`, microseconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// `session_id`.
    pub session_id: Option<u64>,
    /// `handle_id`.
    pub handle_id: Option<u64>,
    /// `opaque_id`.
    pub opaque_id: Option<Arc<str>>,
    /// What the body says, as far as heplink needs it.
    pub body: Body,
    /// Taken again only to rebuild state (a journal's delivered body, a partition's log):
    /// when the correlator releases it, the diagnosis and the QoS state learn from it, but
    /// no packet of it, its QoS reports or a verdict it closes is sent (its first run sent
    /// them). Set by the pipeline's `replay_body`; `false` as read.
    pub replayed: bool,
}

/// The facts of an event's `event` object, per type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Body {
    /// Type 1.
    Session {
        /// `name`: created, destroyed, timeout.
        name: Arc<str>,
        /// `transport.id` (on created).
        transport_id: Option<Arc<str>>,
        /// `transport.transport` (on created).
        transport: Option<Arc<str>>,
    },
    /// Type 2.
    Handle {
        /// `name`: attached, detached.
        name: Arc<str>,
        /// `plugin` package name.
        plugin: Option<Plugin>,
    },
    /// Type 8.
    Jsep {
        /// `owner == "remote"`.
        remote: bool,
        /// `jsep.type`: offer, answer.
        sdp_type: Arc<str>,
    },
    /// Type 16.
    WebRtc(WebRtc),
    /// Type 64.
    Plugin(Box<PluginEvent>),
    /// Type 128.
    Transport {
        /// `id`, the connection's id.
        id: Option<Arc<str>>,
        /// `transport` package name.
        transport: Option<Arc<str>>,
        /// `data.ip` / `data.port`: the client.
        client: Option<SocketAddr>,
    },
    /// Any other type (4 external, 32 media, 256 core, unknown types).
    #[default]
    Other,
}

/// The parts of a type-16 event used for addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebRtc {
    /// Address of a `local-candidate` (2) or of the local side of a selected pair (4).
    pub local: Option<SocketAddr>,
    /// Address of a `remote-candidate` (3) or of the remote side of a selected pair (4).
    pub remote: Option<SocketAddr>,
    /// `connection: "hangup"` (6).
    pub hangup: bool,
}

/// A plugin event's facts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PluginEvent {
    /// The plugin.
    pub plugin: Option<Plugin>,
    /// `data.event`, or `data.videoroom` / `data.audiobridge` / `data.textroom`.
    pub name: Option<Arc<str>>,
    /// `data.room`.
    pub room: Option<RoomId>,
    /// `data.id` (participant), or `publisher_id` of forwarder events.
    pub participant: Option<RoomId>,
    /// `data.private_id` (0 when absent).
    pub private_id: Option<u64>,
    /// `data.display`, or TextRoom's `username`.
    pub display: Option<Arc<str>>,
    /// `data.streams[].feed_id` (subscriptions), and `data.feed`.
    pub feeds: Vec<RoomId>,
    /// `data["call-id"]`, or the Call-ID header of `data.sip`.
    pub call_id: Option<Arc<str>>,
    /// `data.sip`: a whole SIP message (`sip-in` / `sip-out`).
    pub sip: Option<Arc<str>>,
}

impl Event {
    /// The same event with bytes of its own. `raw` is otherwise a slice of the body it
    /// came in, which for a body read in one piece is a slice of the HTTP input's read
    /// buffer: an event kept after its body was taken (held for a binding, kept for a
    /// late group) would keep that whole allocation alive, tens or hundreds of KB for an
    /// event of a few hundred bytes.
    pub fn detached(mut self) -> Event {
        self.raw = Bytes::copy_from_slice(&self.raw);
        self
    }

    /// The plugin event's facts, if this is one.
    pub fn plugin(&self) -> Option<&PluginEvent> {
        match &self.body {
            Body::Plugin(p) => Some(p),
            _ => None,
        }
    }

    /// Whether this event ends the handle's PeerConnection: the handle detached (type 2) or
    /// its PeerConnection hung up (type 16, subtype 6), as the event reader read them.
    pub fn ends_peer_connection(&self) -> bool {
        match &self.body {
            Body::Handle { name, .. } => &**name == "detached",
            Body::WebRtc(w) => w.hangup,
            _ => false,
        }
    }

    /// Whether this is a `sip-in` or `sip-out` event carrying a SIP message (a blank one
    /// is not: it goes out as a plain event; found by the `events` fuzz target).
    pub fn sip_message(&self) -> Option<(&str, bool)> {
        let p = self.plugin()?;
        let sip = p.sip.as_deref().filter(|s| !s.trim().is_empty())?;
        match p.name.as_deref() {
            Some("sip-in") => Some((sip, true)),
            Some("sip-out") => Some((sip, false)),
            _ => None,
        }
    }
}

/// Why an event could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or a field of the wrong type.
    #[error("malformed event: {0}")]
    Json(String),
    /// No `type`.
    #[error("event without \"type\"")]
    NoType,
}

impl EventError {
    /// Why it is rejected.
    pub fn reason(&self) -> Reject {
        match self {
            EventError::Json(_) => Reject::MalformedJson,
            EventError::NoType => Reject::NoType,
        }
    }
}

/// Parses events, interning emitter names and the short names events repeat (every
/// event of one Janus shares one `Arc` for its emitter, every `attached` one for its name).
#[derive(Debug, Default)]
pub struct EventParser {
    emitters: Vec<Arc<str>>,
    names: Vec<Arc<str>>,
}

/// Bounded caches: a flood of distinct names must not grow them without end.
const MAX_INTERNED: usize = 64;
/// Only names up to this length are interned (event names, SDP types, transports).
const MAX_INTERNED_LEN: usize = 40;

fn intern(cache: &mut Vec<Arc<str>>, name: &str) -> Arc<str> {
    if let Some(e) = cache.iter().find(|e| &***e == name) {
        return e.clone();
    }
    let e: Arc<str> = name.into();
    if cache.len() < MAX_INTERNED && name.len() <= MAX_INTERNED_LEN {
        cache.push(e.clone());
    }
    e
}

fn scan_err(e: ScanError) -> EventError {
    EventError::Json(e.to_string())
}

/// A u64 given as a number or a decimal string, or `null`.
fn opt_u64_lenient(sc: &mut Scanner<'_>) -> scan::R<Option<u64>> {
    let at = sc.pos();
    Ok(match sc.opt_scalar()? {
        None => None,
        Some(Scalar::Num(Num::U(v))) => Some(v),
        Some(Scalar::Num(Num::F(v))) if v >= 0.0 && v.fract() == 0.0 && v < 1.8e19 => {
            Some(v as u64)
        }
        Some(Scalar::Num(_)) => return Err(ScanError::new("expected an unsigned integer id", at)),
        Some(Scalar::Str(s)) => Some(
            s.parse()
                .map_err(|_| ScanError::new("expected an unsigned integer id", at))?,
        ),
    })
}

/// A room or participant id (number or string), or `null`.
fn opt_room_id(sc: &mut Scanner<'_>) -> scan::R<Option<RoomId>> {
    Ok(sc.opt_scalar()?.map(|v| match v {
        Scalar::Num(Num::U(v)) => RoomId::Num(v),
        Scalar::Num(Num::I(v)) => RoomId::Str(v.to_string().into()),
        Scalar::Num(Num::F(v)) => RoomId::Str(v.to_string().into()),
        Scalar::Str(s) => RoomId::Str(s.into()),
    }))
}

/// The top level of an event, as read.
#[derive(Default)]
struct Top<'a> {
    emitter: Option<Cow<'a, str>>,
    kind: Option<EventType>,
    subtype: Option<u16>,
    timestamp: Option<u64>,
    session_id: Option<u64>,
    handle_id: Option<u64>,
    opaque_id: Option<Cow<'a, str>>,
}

impl EventParser {
    /// A parser.
    pub fn new() -> Self {
        Self::default()
    }

    fn name(&mut self, s: Option<Cow<'_, str>>) -> Option<Arc<str>> {
        s.map(|s| intern(&mut self.names, &s))
    }

    /// Parses one event object (as cut out by [`crate::janus::split_events`]).
    pub fn parse(&mut self, raw: Bytes) -> Result<Event, EventError> {
        // One UTF-8 check of the whole event; the scanner then reads it as text.
        let text = std::str::from_utf8(&raw)
            .map_err(|e| EventError::Json(format!("invalid UTF-8: {e}")))?;
        let mut sc = Scanner::new(text);
        self.read_event(&mut sc, true, |_, _| raw.clone())
    }

    /// Reads the event object at the scanner's position (in a text already checked as
    /// UTF-8); `raw(start, end)` gives the bytes of the object's span. With `whole`, only
    /// whitespace may follow the object.
    pub fn read_event(
        &mut self,
        sc: &mut Scanner<'_>,
        whole: bool,
        raw: impl FnOnce(usize, usize) -> Bytes,
    ) -> Result<Event, EventError> {
        let mut top = Top::default();
        let mut body = None;
        let mut event_at = None;
        if sc.peek().map_err(scan_err)? != b'{' {
            return Err(EventError::Json("an event must be a JSON object".into()));
        }
        let start = sc.pos();
        sc.object(|sc, key| {
            match &*key {
                "emitter" => top.emitter = sc.opt_str()?,
                "type" => top.kind = sc.opt_u16()?.map(EventType::from_code),
                "subtype" => top.subtype = sc.opt_u16()?,
                "timestamp" => top.timestamp = opt_u64_lenient(sc)?,
                "session_id" => top.session_id = opt_u64_lenient(sc)?,
                "handle_id" => top.handle_id = opt_u64_lenient(sc)?,
                "opaque_id" => top.opaque_id = sc.opt_str()?,
                "event" => match top.kind {
                    // Janus writes `type` (and `subtype`) before `event`: read it typed now.
                    Some(kind) => body = Some(self.body(sc, kind, top.subtype)?),
                    None => {
                        sc.peek()?;
                        event_at = Some(sc.pos());
                        sc.skip()?;
                    }
                },
                _ => sc.skip()?,
            }
            Ok(())
        })
        .map_err(scan_err)?;
        let end = sc.pos();
        if whole {
            sc.end().map_err(scan_err)?;
        }
        let kind = top.kind.ok_or(EventError::NoType)?;
        let body = match (body, event_at) {
            (Some(b), _) => b,
            (None, Some(at)) => self
                .body(&mut sc.at_pos(at), kind, top.subtype)
                .map_err(scan_err)?,
            (None, None) => Body::Other,
        };
        let emitter = intern(&mut self.emitters, top.emitter.as_deref().unwrap_or(""));
        Ok(Event {
            emitter,
            kind,
            subtype: top.subtype,
            timestamp: top.timestamp,
            session_id: top.session_id,
            handle_id: top.handle_id,
            opaque_id: top.opaque_id.map(|o| Arc::from(&*o)),
            body,
            raw: raw(start, end),
            replayed: false,
        })
    }

    /// Reads an `event` object into the typed body of its event type (and subtype: ICE-state
    /// and DTLS bodies hold nothing heplink reads, so they are only checked).
    fn body(
        &mut self,
        sc: &mut Scanner<'_>,
        kind: EventType,
        subtype: Option<u16>,
    ) -> scan::R<Body> {
        match kind {
            EventType::Session => self.session_body(sc),
            EventType::Handle => self.handle_body(sc),
            EventType::Jsep => self.jsep_body(sc),
            EventType::WebRtc if matches!(subtype, Some(1 | 5)) => {
                sc.skip()?;
                Ok(Body::WebRtc(WebRtc::default()))
            }
            EventType::WebRtc => Self::webrtc_body(sc, subtype),
            EventType::Plugin => self.plugin_body(sc),
            EventType::Transport => self.transport_body(sc),
            _ => {
                sc.skip()?;
                Ok(Body::Other)
            }
        }
    }

    /// A session event: its name and the transport that carries it.
    fn session_body(&mut self, sc: &mut Scanner<'_>) -> scan::R<Body> {
        let (mut name, mut transport, mut transport_id) = (None, None, None);
        sc.object(|sc, key| {
            match &*key {
                "name" => name = self.name(sc.opt_str()?),
                "transport" => {
                    sc.opt_object(|sc, key| {
                        match &*key {
                            "transport" => transport = self.name(sc.opt_str()?),
                            "id" => transport_id = sc.opt_str()?.map(|s| Arc::from(&*s)),
                            _ => sc.skip()?,
                        }
                        Ok(())
                    })?;
                }
                _ => sc.skip()?,
            }
            Ok(())
        })?;
        Ok(Body::Session {
            name: name.unwrap_or_else(|| intern(&mut self.names, "")),
            transport_id,
            transport,
        })
    }

    /// A handle event: its name and the plugin attached.
    fn handle_body(&mut self, sc: &mut Scanner<'_>) -> scan::R<Body> {
        let (mut name, mut plugin) = (None, None);
        sc.object(|sc, key| {
            match &*key {
                "name" => name = self.name(sc.opt_str()?),
                "plugin" => plugin = sc.opt_str()?.map(|p| Plugin::from_package(&p)),
                _ => sc.skip()?,
            }
            Ok(())
        })?;
        Ok(Body::Handle {
            name: name.unwrap_or_else(|| intern(&mut self.names, "")),
            plugin,
        })
    }

    /// A JSEP event: whose SDP (local or remote) and its type.
    fn jsep_body(&mut self, sc: &mut Scanner<'_>) -> scan::R<Body> {
        let (mut remote, mut sdp_type) = (false, None);
        sc.object(|sc, key| {
            match &*key {
                "owner" => remote = sc.opt_str()?.as_deref() == Some("remote"),
                "jsep" => {
                    sc.opt_object(|sc, key| {
                        match &*key {
                            "type" => sdp_type = self.name(sc.opt_str()?),
                            _ => sc.skip()?,
                        }
                        Ok(())
                    })?;
                }
                _ => sc.skip()?,
            }
            Ok(())
        })?;
        Ok(Body::Jsep {
            remote,
            sdp_type: sdp_type.unwrap_or_else(|| intern(&mut self.names, "")),
        })
    }

    /// A WebRTC event: the addresses ICE names, and a hangup.
    fn webrtc_body(sc: &mut Scanner<'_>, subtype: Option<u16>) -> scan::R<Body> {
        let mut w = WebRtc::default();
        sc.object(|sc, key| {
            match (&*key, subtype) {
                ("local-candidate", Some(2)) => {
                    w.local = sc.opt_str()?.as_deref().and_then(candidate_addr)
                }
                ("remote-candidate", Some(3)) => {
                    w.remote = sc.opt_str()?.as_deref().and_then(candidate_addr)
                }
                ("selected-pair", Some(4)) => {
                    if let Some((l, r)) = sc.opt_str()?.as_deref().and_then(selected_pair) {
                        w.local = Some(l);
                        w.remote = Some(r);
                    }
                }
                ("connection", Some(6)) => w.hangup = sc.opt_str()?.as_deref() == Some("hangup"),
                ("local-candidate" | "remote-candidate" | "selected-pair" | "connection", _) => {
                    sc.opt_str()?;
                }
                _ => sc.skip()?,
            }
            Ok(())
        })?;
        Ok(Body::WebRtc(w))
    }

    /// A plugin event: the plugin and what its `data` says.
    fn plugin_body(&mut self, sc: &mut Scanner<'_>) -> scan::R<Body> {
        let mut p = PluginEvent::default();
        sc.object(|sc, key| {
            match &*key {
                "plugin" => p.plugin = sc.opt_str()?.map(|s| Plugin::from_package(&s)),
                "data" => {
                    sc.opt_object(|sc, key| self.plugin_data(sc, &key, &mut p))?;
                }
                _ => sc.skip()?,
            }
            Ok(())
        })?;
        p.feeds.dedup();
        if p.call_id.is_none() {
            p.call_id = p.sip.as_deref().and_then(sip_call_id).map(Arc::from);
        }
        Ok(Body::Plugin(Box::new(p)))
    }

    /// A transport event: the transport, its connection id and the client address.
    fn transport_body(&mut self, sc: &mut Scanner<'_>) -> scan::R<Body> {
        let (mut id, mut transport, mut ip, mut port) = (None, None, None, None);
        sc.object(|sc, key| {
            match &*key {
                "id" => id = sc.opt_str()?.map(|s| Arc::from(&*s)),
                "transport" => transport = self.name(sc.opt_str()?),
                "data" => {
                    sc.opt_object(|sc, key| {
                        match &*key {
                            "ip" => ip = sc.opt_str()?.and_then(|s| s.parse::<IpAddr>().ok()),
                            "port" => port = sc.opt_u16()?,
                            _ => sc.skip()?,
                        }
                        Ok(())
                    })?;
                }
                _ => sc.skip()?,
            }
            Ok(())
        })?;
        Ok(Body::Transport {
            id,
            transport,
            client: ip.map(|ip| SocketAddr::new(ip, port.unwrap_or(0))),
        })
    }

    /// One field of a plugin event's `data`.
    fn plugin_data<'a>(
        &mut self,
        sc: &mut Scanner<'a>,
        key: &str,
        p: &mut PluginEvent,
    ) -> scan::R<()> {
        match key {
            // `event` wins over the plugin-named fields, whatever their order.
            "event" => {
                if let Some(n) = self.name(sc.opt_str()?) {
                    p.name = Some(n);
                }
            }
            "videoroom" | "audiobridge" | "textroom" => {
                let n = self.name(sc.opt_str()?);
                if p.name.is_none() {
                    p.name = n;
                }
            }
            "room" => p.room = opt_room_id(sc)?,
            "id" => {
                if let Some(id) = opt_room_id(sc)? {
                    p.participant = Some(id);
                }
            }
            "publisher_id" => {
                let id = opt_room_id(sc)?;
                if p.participant.is_none() {
                    p.participant = id;
                }
            }
            "private_id" => p.private_id = opt_u64_lenient(sc)?,
            "display" => {
                if let Some(d) = sc.any_str()? {
                    p.display = Some(Arc::from(&*d));
                }
            }
            "username" => {
                let d = sc.any_str()?;
                if p.display.is_none() {
                    p.display = d.map(|d| Arc::from(&*d));
                }
            }
            "streams" => {
                if sc.peek()? == b'n' {
                    sc.skip()?;
                } else {
                    sc.array(|sc| {
                        sc.object(|sc, key| {
                            match &*key {
                                "feed_id" => p.feeds.extend(opt_room_id(sc)?),
                                _ => sc.skip()?,
                            }
                            Ok(())
                        })
                    })?;
                }
            }
            "feed" => p.feeds.extend(opt_room_id(sc)?),
            "call-id" => {
                if let Some(c) = sc.opt_str()? {
                    p.call_id = Some(Arc::from(&*c));
                }
            }
            "sip" => p.sip = sc.opt_str()?.map(|s| Arc::from(&*s)),
            _ => sc.skip()?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Event, EventError> {
        EventParser::new().parse(Bytes::from(s.to_string()))
    }

    #[test]
    fn ids_rooms_and_tolerance() {
        let e = parse(r#"{"emitter":"j","type":64,"timestamp":"1732406400123456","session_id":8879576811135393,"handle_id":"6836738107974166","event":{"plugin":"janus.plugin.videoroom","data":{"event":"joined","room":"lobby","id":"alice-1","private_id":2947384,"display":42,"unknown":{"x":[1]}}},"new_top_field":true}"#).unwrap();
        assert_eq!(e.timestamp, Some(1_732_406_400_123_456));
        assert_eq!(e.handle_id, Some(6_836_738_107_974_166));
        let p = e.plugin().unwrap();
        assert_eq!(p.room, Some(RoomId::Str("lobby".into())));
        assert_eq!(p.participant, Some(RoomId::Str("alice-1".into())));
        assert_eq!(
            p.display, None,
            "a display of the wrong type is ignored, not an error"
        );
        assert_eq!(p.plugin, Some(Plugin::VideoRoom));
        // Unknown type: kept, no error.
        let e = parse(r#"{"emitter":"j","type":4096,"event":{"anything":[1,2]}}"#).unwrap();
        assert_eq!(e.kind, EventType::Other(4096));
        assert_eq!(e.body, Body::Other);
        // Media stats as an array (combine_media_stats).
        let e = parse(r#"{"emitter":"j","type":32,"subtype":3,"event":[{"mid":"0"},{"mid":"1"}]}"#)
            .unwrap();
        assert_eq!(e.subtype, Some(3));
        assert!(matches!(
            parse(r#"{"emitter":"j","event":{}}"#),
            Err(EventError::NoType)
        ));
        assert!(matches!(parse(r#"{"type":"x"}"#), Err(EventError::Json(_))));
        assert!(matches!(
            parse(r#"{"type":1,"session_id":-5}"#),
            Err(EventError::Json(_))
        ));
        assert!(matches!(parse(r#"{"type":1"#), Err(EventError::Json(_))));
    }

    #[test]
    fn subscriber_feeds_and_sip_call_id() {
        let e = parse(r#"{"type":64,"event":{"plugin":"janus.plugin.videoroom","data":{"event":"subscribing","room":4242,"streams":[{"feed_id":1},{"feed_id":1},{"feed_id":2},{"type":"data"}],"private_id":0}}}"#).unwrap();
        assert_eq!(
            e.plugin().unwrap().feeds,
            vec![RoomId::Num(1), RoomId::Num(2)]
        );
        let e = parse(r#"{"type":64,"event":{"plugin":"janus.plugin.sip","data":{"event":"sip-in","sip":"BYE sip:c@h SIP/2.0\r\nCall-ID: xyz\r\n\r\n"}}}"#).unwrap();
        assert_eq!(e.plugin().unwrap().call_id.as_deref(), Some("xyz"));
        assert_eq!(e.sip_message().map(|(_, inbound)| inbound), Some(true));
    }
}
