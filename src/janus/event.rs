//! The Janus event model: typed, tolerant parsing of what Janus 1.x event handlers emit.
//!
//! An [`Event`] keeps the event's original JSON bytes (`raw`, sent on unchanged) and the
//! few facts correlation and mapping need, parsed with borrowing serde structs (never a
//! `serde_json::Value`). Unknown types, subtypes and fields are kept in `raw` and never an
//! error; a malformed event is an [`EventError`] that does not affect its neighbours.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Event type values (the `type` bit mask of Janus).
pub mod kind {
    /// Session created, destroyed, timeout.
    pub const SESSION: u16 = 1;
    /// Handle attached, detached.
    pub const HANDLE: u16 = 2;
    /// External (Admin API `custom_event`).
    pub const EXTERNAL: u16 = 4;
    /// JSEP offer / answer.
    pub const JSEP: u16 = 8;
    /// ICE, candidates, selected pair, DTLS, PeerConnection state.
    pub const WEBRTC: u16 = 16;
    /// Media state, slow link, stats.
    pub const MEDIA: u16 = 32;
    /// Plugin events.
    pub const PLUGIN: u16 = 64;
    /// Transport events.
    pub const TRANSPORT: u16 = 128;
    /// Core events (startup, status update, shutdown).
    pub const CORE: u16 = 256;
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
            RoomId::Num(n) => {
                let _ = write!(out, "{n}");
            }
            RoomId::Str(s) => write_json_str(out, s),
        }
    }
}

/// Writes `s` as a JSON string literal.
pub fn write_json_str<W: fmt::Write>(out: &mut W, s: &str) {
    let _ = out.write_char('"');
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        let _ = out.write_str(s);
        let _ = out.write_char('"');
        return;
    }
    for c in s.chars() {
        let _ = match c {
            '"' => out.write_str("\\\""),
            '\\' => out.write_str("\\\\"),
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            '\t' => out.write_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32),
            c => out.write_char(c),
        };
    }
    let _ = out.write_char('"');
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
    pub kind: u16,
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
    /// The plugin event's facts, if this is one.
    pub fn plugin(&self) -> Option<&PluginEvent> {
        match &self.body {
            Body::Plugin(p) => Some(p),
            _ => None,
        }
    }

    /// Whether this is a `sip-in` or `sip-out` event carrying a SIP message.
    pub fn sip_message(&self) -> Option<(&str, bool)> {
        let p = self.plugin()?;
        let sip = p.sip.as_deref()?;
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
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            EventError::Json(_) => "malformed_json",
            EventError::NoType => "no_type",
        }
    }
}

/// Parses events and interns emitter names (every event of one Janus shares one `Arc`).
#[derive(Debug, Default)]
pub struct EventParser {
    emitters: Vec<Arc<str>>,
}

/// A u64 given as a number or a decimal string.
struct U64Lenient(u64);

impl<'de> Deserialize<'de> for U64Lenient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = U64Lenient;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an unsigned integer id")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<U64Lenient, E> {
                Ok(U64Lenient(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<U64Lenient, E> {
                u64::try_from(v).map(U64Lenient).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<U64Lenient, E> {
                if v >= 0.0 && v.fract() == 0.0 && v < 1.8e19 {
                    Ok(U64Lenient(v as u64))
                } else {
                    Err(E::custom("not an unsigned integer"))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<U64Lenient, E> {
                v.parse().map(U64Lenient).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RoomId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RoomId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a room or participant id (number or string)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RoomId, E> {
                Ok(RoomId::Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RoomId, E> {
                Ok(RoomId::Str(v.to_string().into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RoomId, E> {
                Ok(RoomId::Str(v.to_string().into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RoomId, E> {
                Ok(RoomId::Str(v.into()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The top level of an event, parsed in one pass: when `type` comes before `event` (the
/// order Janus writes), `event` is parsed straight into the typed body of that type;
/// otherwise it is kept raw and parsed afterwards.
#[derive(Default)]
struct Top<'a> {
    emitter: Option<Cow<'a, str>>,
    kind: Option<u16>,
    subtype: Option<u16>,
    timestamp: Option<u64>,
    session_id: Option<u64>,
    handle_id: Option<u64>,
    opaque_id: Option<Cow<'a, str>>,
    event: Option<EventField<'a>>,
}

// Lives on the stack for one parse; boxing the large variant would allocate per event.
#[allow(clippy::large_enum_variant)]
enum EventField<'a> {
    Parsed(Parsed<'a>),
    Raw(&'a RawValue),
}

/// A string that borrows from the input when it has no escapes.
struct BStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for BStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<BStr<'de>, E> {
                Ok(BStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BStr<'de>, E> {
                Ok(BStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Janus event object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<Top<'de>, A::Error> {
                let mut t = Top::default();
                while let Some(key) = m.next_key::<BStr<'de>>()? {
                    match &*key.0 {
                        "emitter" => t.emitter = m.next_value::<Option<BStr<'de>>>()?.map(|b| b.0),
                        "type" => t.kind = m.next_value()?,
                        "subtype" => t.subtype = m.next_value()?,
                        "timestamp" => {
                            t.timestamp = m.next_value::<Option<U64Lenient>>()?.map(|v| v.0)
                        }
                        "session_id" => {
                            t.session_id = m.next_value::<Option<U64Lenient>>()?.map(|v| v.0)
                        }
                        "handle_id" => {
                            t.handle_id = m.next_value::<Option<U64Lenient>>()?.map(|v| v.0)
                        }
                        "opaque_id" => {
                            t.opaque_id = m.next_value::<Option<BStr<'de>>>()?.map(|b| b.0)
                        }
                        "event" => {
                            t.event = Some(match t.kind {
                                Some(kind) => EventField::Parsed(
                                    m.next_value_seed(TypedSeed(kind, t.subtype))?,
                                ),
                                None => EventField::Raw(m.next_value()?),
                            })
                        }
                        _ => {
                            m.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(t)
            }
        }
        d.deserialize_map(V)
    }
}

/// Deserializes an `event` object into the typed body of its event type (and subtype,
/// when known: ICE-state and DTLS bodies hold nothing heplink reads, so they are skipped).
struct TypedSeed(u16, Option<u16>);

impl<'de> de::DeserializeSeed<'de> for TypedSeed {
    type Value = Parsed<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed<'de>, D::Error> {
        if self.0 == kind::WEBRTC && matches!(self.1, Some(1 | 5)) {
            de::IgnoredAny::deserialize(d)?;
            return Ok(Parsed::WebRtc(WebRtcBody::default()));
        }
        parse_typed(self.0, d)
    }
}

/// The typed body of each event type, still borrowing the input.
// Lives on the stack for one parse; boxing the large variants would allocate per event.
#[allow(clippy::large_enum_variant)]
enum Parsed<'a> {
    Session(SessionBody<'a>),
    Handle(HandleBody<'a>),
    Jsep(JsepBody<'a>),
    WebRtc(WebRtcBody<'a>),
    Plugin(PluginBody<'a>),
    Transport(TransportBody<'a>),
    Other,
}

fn parse_typed<'de, D: Deserializer<'de>>(kind: u16, d: D) -> Result<Parsed<'de>, D::Error> {
    Ok(match kind {
        kind::SESSION => Parsed::Session(SessionBody::deserialize(d)?),
        kind::HANDLE => Parsed::Handle(HandleBody::deserialize(d)?),
        kind::JSEP => Parsed::Jsep(JsepBody::deserialize(d)?),
        kind::WEBRTC => Parsed::WebRtc(WebRtcBody::deserialize(d)?),
        kind::PLUGIN => Parsed::Plugin(PluginBody::deserialize(d)?),
        kind::TRANSPORT => Parsed::Transport(TransportBody::deserialize(d)?),
        _ => {
            de::IgnoredAny::deserialize(d)?;
            Parsed::Other
        }
    })
}

#[derive(Deserialize)]
struct SessionBody<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    transport: Option<SessionTransport<'a>>,
}

#[derive(Deserialize)]
struct SessionTransport<'a> {
    #[serde(borrow, default)]
    transport: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct HandleBody<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    plugin: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct JsepBody<'a> {
    #[serde(borrow, default)]
    owner: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    jsep: Option<JsepInner<'a>>,
}

#[derive(Deserialize)]
struct JsepInner<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct WebRtcBody<'a> {
    #[serde(borrow, default, rename = "local-candidate")]
    local_candidate: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "remote-candidate")]
    remote_candidate: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "selected-pair")]
    selected_pair: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    connection: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PluginBody<'a> {
    #[serde(borrow, default)]
    plugin: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<PluginData<'a>>,
}

#[derive(Deserialize)]
struct PluginData<'a> {
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    videoroom: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    audiobridge: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    textroom: Option<Cow<'a, str>>,
    #[serde(default)]
    room: Option<RoomId>,
    #[serde(default)]
    id: Option<RoomId>,
    #[serde(default)]
    publisher_id: Option<RoomId>,
    #[serde(default)]
    private_id: Option<U64Lenient>,
    #[serde(borrow, default)]
    display: Option<&'a RawValue>,
    #[serde(borrow, default)]
    username: Option<&'a RawValue>,
    #[serde(default)]
    streams: Option<Vec<Stream>>,
    #[serde(default)]
    feed: Option<RoomId>,
    #[serde(borrow, default, rename = "call-id")]
    call_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sip: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Stream {
    #[serde(default)]
    feed_id: Option<RoomId>,
}

#[derive(Deserialize)]
struct TransportBody<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    transport: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<TransportData<'a>>,
}

#[derive(Deserialize)]
struct TransportData<'a> {
    #[serde(borrow, default)]
    ip: Option<Cow<'a, str>>,
    #[serde(default)]
    port: Option<u16>,
}

fn json_err(e: serde_json::Error) -> EventError {
    EventError::Json(e.to_string())
}

impl EventParser {
    /// A parser.
    pub fn new() -> Self {
        Self::default()
    }

    fn emitter(&mut self, name: &str) -> Arc<str> {
        if let Some(e) = self.emitters.iter().find(|e| &***e == name) {
            return e.clone();
        }
        let e: Arc<str> = name.into();
        // A bounded cache: a flood of distinct emitters must not grow it without end.
        if self.emitters.len() < 64 {
            self.emitters.push(e.clone());
        }
        e
    }

    /// Parses one event object (as cut out by [`crate::janus::split_events`]).
    pub fn parse(&mut self, raw: Bytes) -> Result<Event, EventError> {
        // One UTF-8 check of the whole event, then serde reads strings without re-checking.
        let text = std::str::from_utf8(&raw)
            .map_err(|e| EventError::Json(format!("invalid UTF-8: {e}")))?;
        let top: Top<'_> = serde_json::from_str(text).map_err(json_err)?;
        let kind = top.kind.ok_or(EventError::NoType)?;
        let parsed = match top.event {
            Some(EventField::Parsed(p)) => p,
            Some(EventField::Raw(r)) => {
                parse_typed(kind, &mut serde_json::Deserializer::from_str(r.get()))
                    .map_err(json_err)?
            }
            None => Parsed::Other,
        };
        let body = build_body(top.subtype, parsed);
        let emitter = self.emitter(top.emitter.as_deref().unwrap_or(""));
        let opaque_id = top.opaque_id.map(|o| Arc::from(&*o));
        Ok(Event {
            emitter,
            kind,
            subtype: top.subtype,
            timestamp: top.timestamp,
            session_id: top.session_id,
            handle_id: top.handle_id,
            opaque_id,
            body,
            raw,
        })
    }
}

fn arc(s: Option<Cow<'_, str>>) -> Option<Arc<str>> {
    s.map(|s| Arc::from(&*s))
}

/// A string-valued field, or `None` when it is absent or of another type.
fn lenient_str(v: Option<&RawValue>) -> Option<Arc<str>> {
    let v = v?;
    serde_json::from_str::<Cow<'_, str>>(v.get())
        .ok()
        .map(|s| Arc::from(&*s))
}

fn build_body(subtype: Option<u16>, parsed: Parsed<'_>) -> Body {
    match parsed {
        Parsed::Session(b) => {
            let (transport, transport_id) = match b.transport {
                Some(t) => (arc(t.transport), arc(t.id)),
                None => (None, None),
            };
            Body::Session {
                name: arc(b.name).unwrap_or_else(|| "".into()),
                transport_id,
                transport,
            }
        }
        Parsed::Handle(b) => Body::Handle {
            name: arc(b.name).unwrap_or_else(|| "".into()),
            plugin: b.plugin.as_deref().map(Plugin::from_package),
        },
        Parsed::Jsep(b) => Body::Jsep {
            remote: b.owner.as_deref() == Some("remote"),
            sdp_type: arc(b.jsep.and_then(|j| j.kind)).unwrap_or_else(|| "".into()),
        },
        Parsed::WebRtc(b) => {
            let mut w = WebRtc::default();
            match subtype {
                Some(2) => w.local = b.local_candidate.as_deref().and_then(candidate_addr),
                Some(3) => w.remote = b.remote_candidate.as_deref().and_then(candidate_addr),
                Some(4) => {
                    if let Some((l, r)) = b.selected_pair.as_deref().and_then(selected_pair) {
                        w.local = Some(l);
                        w.remote = Some(r);
                    }
                }
                Some(6) => w.hangup = b.connection.as_deref() == Some("hangup"),
                _ => {}
            }
            Body::WebRtc(w)
        }
        Parsed::Plugin(b) => {
            let mut p = PluginEvent {
                plugin: b.plugin.as_deref().map(Plugin::from_package),
                ..Default::default()
            };
            if let Some(d) = b.data {
                p.name = arc(d.event.or(d.videoroom).or(d.audiobridge).or(d.textroom));
                p.room = d.room;
                p.participant = d.id.or(d.publisher_id);
                p.private_id = d.private_id.map(|p| p.0);
                p.display = lenient_str(d.display).or_else(|| lenient_str(d.username));
                p.feeds = d
                    .streams
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|s| s.feed_id)
                    .collect();
                p.feeds.extend(d.feed);
                p.feeds.dedup();
                p.sip = arc(d.sip);
                p.call_id = arc(d.call_id)
                    .or_else(|| p.sip.as_deref().and_then(sip_call_id).map(Arc::from));
            }
            Body::Plugin(Box::new(p))
        }
        Parsed::Transport(b) => {
            let client = b.data.and_then(|d| {
                let ip: IpAddr = d.ip?.parse().ok()?;
                Some(SocketAddr::new(ip, d.port.unwrap_or(0)))
            });
            Body::Transport {
                id: arc(b.id),
                transport: arc(b.transport),
                client,
            }
        }
        Parsed::Other => Body::Other,
    }
}

/// The address of an ICE candidate line: `foundation component transport priority ip port typ …`
/// (with or without the `candidate:` prefix).
pub fn candidate_addr(c: &str) -> Option<SocketAddr> {
    let mut f = c.trim().split_ascii_whitespace();
    let _foundation = f.next()?;
    let _component = f.next()?;
    let _transport = f.next()?;
    let _priority = f.next()?;
    let ip: IpAddr = f.next()?.parse().ok()?;
    let port: u16 = f.next()?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// Local and remote addresses of `"<lip>:<lport> [host,udp] <-> <rip>:<rport> [srflx,udp]"`.
pub fn selected_pair(s: &str) -> Option<(SocketAddr, SocketAddr)> {
    let (l, r) = s.split_once("<->")?;
    let addr = |side: &str| -> Option<SocketAddr> {
        let a = side.split_ascii_whitespace().next()?;
        let (ip, port) = a.rsplit_once(':')?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
    };
    Some((addr(l)?, addr(r)?))
}

/// The value of the `Call-ID` (or compact `i`) header of a SIP message.
pub fn sip_call_id(msg: &str) -> Option<&str> {
    sip_header(msg, "call-id", Some("i"))
}

/// The first value of a SIP header (case-insensitive name, optional compact form).
pub fn sip_header<'m>(msg: &'m str, name: &str, compact: Option<&str>) -> Option<&'m str> {
    for line in msg.split("\r\n").skip(1).flat_map(|l| l.split('\n')) {
        if line.is_empty() {
            break;
        }
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        let n = n.trim();
        if n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c)) {
            let v = v.trim();
            return (!v.is_empty()).then_some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Event, EventError> {
        EventParser::new().parse(Bytes::from(s.to_string()))
    }

    #[test]
    fn candidates_and_pairs() {
        assert_eq!(
            candidate_addr("1 1 udp 2015363327 127.0.0.2 20748 typ host"),
            Some("127.0.0.2:20748".parse().unwrap())
        );
        assert_eq!(
            candidate_addr("candidate:842163049 1 udp 1677729535 203.0.113.7 51432 typ srflx raddr 0.0.0.0 rport 0 generation 0"),
            Some("203.0.113.7:51432".parse().unwrap())
        );
        assert_eq!(
            candidate_addr("remote1 1 udp 1862270975 127.0.0.6 50628 typ prflx raddr 127.0.0.6 rport 50628\r\n"),
            Some("127.0.0.6:50628".parse().unwrap())
        );
        assert_eq!(candidate_addr("garbage"), None);
        assert_eq!(
            selected_pair("127.0.0.2:20126 [host,udp] <-> 127.0.0.5:55529 [host,udp]"),
            Some((
                "127.0.0.2:20126".parse().unwrap(),
                "127.0.0.5:55529".parse().unwrap()
            ))
        );
        assert_eq!(
            selected_pair("[::1]:1 [host,udp] <-> [2001:db8::5]:2 [srflx,udp]"),
            Some((
                "[::1]:1".parse().unwrap(),
                "[2001:db8::5]:2".parse().unwrap()
            ))
        );
    }

    #[test]
    fn sip_headers() {
        let m = "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP x\r\ncall-ID:  abc@h \r\n\r\nv=0\r\nCall-ID: body";
        assert_eq!(sip_call_id(m), Some("abc@h"));
        assert_eq!(
            sip_call_id("SIP/2.0 200 OK\r\ni: compact\r\n\r\n"),
            Some("compact")
        );
        assert_eq!(sip_call_id("SIP/2.0 200 OK\r\n\r\nCall-ID: in-body"), None);
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
        assert_eq!(e.kind, 4096);
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
