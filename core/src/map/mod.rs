//! Mapping correlated Janus events to HEP packets.
//!
//! - Janus events → proto type 100 (LOG; configurable) with the payload
//!   `<label>\n{"label":"<label>","heplink":{<facts>},"event":<the original event, byte for byte>}`:
//!   words first, because homer-ui previews the first 50 characters of a payload as the
//!   arrow's text (see [`label`]); the JSON after the first line feed ([`log_json`]).
//!   [`LogFormat::Json`] leaves the words line out.
//! - Verdicts (the diagnosis's) → LOG rows of the same shape, with a `summary` or
//!   `room_summary` object instead of the event ([`Mapper::summary`]).
//! - SIP plugin `sip-in` / `sip-out` → proto type 1 (SIP), the SIP message as payload and
//!   its Call-ID as correlation id.
//! - Time from the event's `timestamp` (µs exact); the caller's clock when it has none.
//! - Addresses: real where Janus gives them (ICE candidates and selected pair per handle,
//!   the HTTP/WebSocket client of the session, SIP Via / Request-URI / Contact), stable
//!   synthetic ones otherwise (see [`synthetic_client`], [`SYNTHETIC_JANUS_V6`]). Events
//!   the client caused (remote JSEP, remote candidates, transport and session events) go
//!   client → Janus; everything else Janus → client.
//!
//! Why this file is over 500 lines: the mapper (events, verdict rows, the payload's two
//! forms), its address rules (ICE, transport, SIP headers and each dialog's two sides,
//! synthetic addresses) and their tests. The SIP address helpers (about 150 lines) are the
//! next to move into a module of their own; the rules would still be read together.

pub mod label;
pub mod qos;
pub(crate) mod stats;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use heplink_proto::{EncodeError, PacketBuilder, ProtoType};

use crate::correlate::{Correlated, GroupKey};
use crate::janus::event::{Body, Event, EventType, RoomId};
use crate::janus::sip::sip_header;
use crate::json::{write_json_str, write_u64};

/// Mapper settings.
#[derive(Debug, Clone)]
pub struct MapConfig {
    /// HEP capture agent id (chunk 0x000c).
    pub capture_id: u32,
    /// Node name (chunk 0x0013); `None` uses the event's emitter.
    pub node_name: Option<String>,
    /// Auth key (chunk 0x000e), if any.
    pub auth_key: Option<String>,
    /// Proto type of Janus events.
    pub event_proto: ProtoType,
    /// Send `sip-in` / `sip-out` as SIP (type 1) packets.
    pub sip_as_sip: bool,
    /// Event times a collector accepts, around the caller's clock; `None`: any time.
    pub time_window: Option<TimeWindow>,
    /// QoS reports made of media stats (see [`qos`]).
    pub qos: qos::QosReports,
    /// The LOG payload's form.
    pub log_format: LogFormat,
}

/// The form of a LOG payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// The label as a line of words, then the JSON (homer-ui previews words).
    #[default]
    Words,
    /// The JSON only.
    Json,
}

impl crate::choice::Choice for LogFormat {
    const ALL: &'static [(&'static str, Self)] = &[("words", Self::Words), ("json", Self::Json)];
}
crate::choice::display_choice!(LogFormat);

/// The JSON of a LOG payload: after its words line, or the whole payload when it opens
/// with `{` (the JSON form, or a QoS report).
pub fn log_json(payload: &[u8]) -> &[u8] {
    if payload.first() == Some(&b'{') {
        return payload;
    }
    match memchr::memchr(b'\n', payload) {
        Some(i) => &payload[i + 1..],
        None => payload,
    }
}

/// The event times sent as they are: from `max_age_us` before the clock to `max_ahead_us`
/// after it. heplify-server stores rows only in its daily partitions (yesterday to
/// tomorrow), and a row outside them fails the database COPY of its whole batch, good
/// rows included; so an event outside the window is sent with the clock's time instead
/// (its own time stays in the payload, in the Janus event) and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// How far back an event time may be, µs.
    pub max_age_us: u64,
    /// How far ahead an event time may be, µs.
    pub max_ahead_us: u64,
}

/// What the mapper changed, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapStats {
    /// Events sent with the clock's time: their own was older than the window.
    pub time_rewritten_old: u64,
    /// Events sent with the clock's time: their own was ahead of the window.
    pub time_rewritten_future: u64,
    /// QoS reports (HEP type 5 and 34) made of media stats.
    pub qos_reports: u64,
}

impl Default for MapConfig {
    fn default() -> Self {
        MapConfig {
            capture_id: 2001,
            node_name: None,
            auth_key: None,
            event_proto: ProtoType::LOG,
            sip_as_sip: true,
            time_window: None,
            qos: qos::QosReports::default(),
            log_format: LogFormat::default(),
        }
    }
}

/// Synthetic address of Janus when none is known (IPv6 unique local).
pub const SYNTHETIC_JANUS_V6: Ipv6Addr = Ipv6Addr::new(0xfd6a, 0x616e, 0x7573, 0, 0, 0, 0, 1);
/// Synthetic address of Janus when the client is known and IPv4 (reserved 240.0.0.0/4).
pub const SYNTHETIC_JANUS_V4: Ipv4Addr = Ipv4Addr::new(240, 0, 0, 1);

/// The synthetic client address for an id (a handle, a session, a room): IPv6
/// `fd63:6c69:656e:7400:<id as 64 bits>`, or IPv4 `240.x.y.z` (low 24 bits, never
/// `240.0.0.1`) when it must match an IPv4 Janus address.
pub fn synthetic_client(id: u64, v4: bool) -> IpAddr {
    if v4 {
        let low = (id & 0x00ff_ffff) as u32;
        let low = if low <= 1 { low + 2 } else { low };
        IpAddr::V4(Ipv4Addr::from(0xf000_0000 | low))
    } else {
        IpAddr::V6(Ipv6Addr::new(
            0xfd63,
            0x6c69,
            0x656e,
            0x7400,
            (id >> 48) as u16,
            (id >> 32) as u16,
            (id >> 16) as u16,
            id as u16,
        ))
    }
}

/// A stable 64-bit id for a room (numeric ids as they are; string ids hashed, FNV-1a).
fn room_hash(r: &RoomId) -> u64 {
    match r {
        RoomId::Num(n) => *n,
        RoomId::Str(s) => s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }),
    }
}

/// Slots of the mapper's cache of correlation-id bytes.
const CID_SLOTS: usize = 16;
/// Payloads are written into blocks of this size, split off one by one (one allocation
/// per block rather than per packet).
const PAYLOAD_BLOCK: usize = 64 * 1024;

/// Turns correlated events into HEP packets.
#[derive(Debug)]
pub struct Mapper {
    cfg: MapConfig,
    last_node: Option<(Arc<str>, Bytes)>,
    /// The bytes of recent correlation ids, by the id's `Arc` (the correlator shares one
    /// `Arc` per group and fallback id). Holding the `Arc` keeps its address from being
    /// reused, so pointer equality is exact.
    cids: Vec<Option<(Arc<str>, Bytes)>>,
    block: BytesMut,
    stats: MapStats,
    sip_janus: SipJanus,
    /// The current event's label, a buffer reused from event to event.
    label: String,
    /// QoS state (SDP facts, previous stats samples) and reports being built.
    qos: qos::Qos,
    reports: Vec<qos::Report>,
}

impl Mapper {
    /// A mapper with these settings.
    pub fn new(cfg: MapConfig) -> Self {
        Mapper {
            cfg,
            last_node: None,
            cids: vec![None; CID_SLOTS],
            block: BytesMut::new(),
            stats: MapStats::default(),
            sip_janus: SipJanus::default(),
            label: String::with_capacity(64),
            qos: qos::Qos::default(),
            reports: Vec::new(),
        }
    }

    /// The QoS reports (HEP type 5 and 34) an event gives besides its own packet: for
    /// media stats, per medium and direction (see [`qos`]); for other events none, but
    /// JSEP, hangup and detach events update the QoS state. Each passes the encoder's
    /// checks.
    pub fn qos_reports(&mut self, c: &Correlated, now_us: u64, out: &mut Vec<PacketBuilder>) {
        let mut reads = stats::EventReads::new(&c.event.raw);
        self.qos_reports_with(c, &mut reads, now_us, out);
    }

    /// [`Mapper::qos_reports`], with what was read of the event already (the diagnosis
    /// reads the same media stats and SDPs).
    pub(crate) fn qos_reports_with(
        &mut self,
        c: &Correlated,
        reads: &mut stats::EventReads<'_>,
        now_us: u64,
        out: &mut Vec<PacketBuilder>,
    ) {
        let peer_janus = pair(c.facts.client, c.facts.janus, synthetic_id(c));
        let mut reports = std::mem::take(&mut self.reports);
        self.qos
            .event(c, self.cfg.qos, peer_janus, reads, &mut reports);
        if reports.is_empty() {
            self.reports = reports;
            return;
        }
        // The event's own packet counted a rewritten time already.
        let counted = (
            self.stats.time_rewritten_old,
            self.stats.time_rewritten_future,
        );
        let ts = self.packet_time(c.event.timestamp, now_us);
        (
            self.stats.time_rewritten_old,
            self.stats.time_rewritten_future,
        ) = counted;
        let node = self.node(&c.event.emitter);
        // The flow's id: the SIP Call-ID for a SIP-plugin call (Homer's SIP flow), else the
        // id of the flow's LOG rows.
        let cid = match &c.facts.call_id {
            Some(call) => Bytes::copy_from_slice(call.as_bytes()),
            None => self.cid_bytes(&c.cid),
        };
        for r in reports.drain(..) {
            let proto = if r.rtpagent {
                ProtoType::MOS_FULL
            } else {
                ProtoType::RTCP_JSON
            };
            let mut b = PacketBuilder::new(proto, Bytes::from(r.payload));
            b.ip_proto = Some(heplink_proto::registry::ip_proto::UDP);
            (b.src_ip, b.src_port) = (Some(r.src.ip()), Some(r.src.port()));
            (b.dst_ip, b.dst_port) = (Some(r.dst.ip()), Some(r.dst.port()));
            b.set_timestamp_micros(ts);
            b.capture_id = Some(self.cfg.capture_id);
            b.node_name = Some(node.clone());
            b.correlation_id = Some(cid.clone());
            b.auth_key = self.cfg.auth_key.as_ref().map(|k| Bytes::from(k.clone()));
            if b.validate().is_ok() {
                self.stats.qos_reports += 1;
                out.push(b);
            }
        }
        self.reports = reports;
    }

    /// What the mapper changed so far.
    pub fn stats(&self) -> &MapStats {
        &self.stats
    }

    /// The time to send: the event's own, or `now_us` when it has none or it lies
    /// outside the [`TimeWindow`]; with which side it fell out of (true: too old).
    fn window_time(&self, event_us: Option<u64>, now_us: u64) -> (u64, Option<bool>) {
        let Some(ts) = event_us else {
            return (now_us, None);
        };
        match self.cfg.time_window {
            Some(w) if ts < now_us.saturating_sub(w.max_age_us) => (now_us, Some(true)),
            Some(w) if ts > now_us.saturating_add(w.max_ahead_us) => (now_us, Some(false)),
            _ => (ts, None),
        }
    }

    /// [`Mapper::window_time`], counting a rewrite.
    fn packet_time(&mut self, event_us: Option<u64>, now_us: u64) -> u64 {
        let (ts, rewritten) = self.window_time(event_us, now_us);
        match rewritten {
            Some(true) => self.stats.time_rewritten_old += 1,
            Some(false) => self.stats.time_rewritten_future += 1,
            None => {}
        }
        ts
    }

    /// The correlation id as bytes, shared with earlier packets of the same id.
    fn cid_bytes(&mut self, cid: &Arc<str>) -> Bytes {
        let slot = (Arc::as_ptr(cid) as *const u8 as usize >> 4) % CID_SLOTS;
        if let Some((a, b)) = &self.cids[slot] {
            if Arc::ptr_eq(a, cid) {
                return b.clone();
            }
        }
        let b = Bytes::copy_from_slice(cid.as_bytes());
        self.cids[slot] = Some((cid.clone(), b.clone()));
        b
    }

    /// Encodes the HEP packet of one correlated event into `out` (validated once, by the
    /// encoder) and returns it with its time stamp (µs); `now_us` stamps events without a
    /// timestamp. An event too large for one packet is sent as its head, marked.
    ///
    /// At 81 lines, the hot path of every event in one place: proto type, addresses,
    /// payload, the too-large fallback, the encoder call.
    pub fn encode(
        &mut self,
        c: &Correlated,
        name: Option<&str>,
        now_us: u64,
        out: &mut BytesMut,
    ) -> Result<(Bytes, u64), EncodeError> {
        let ev = &c.event;
        let ts = self.packet_time(ev.timestamp, now_us);
        let node = self.node(&ev.emitter);
        let (proto, payload, (src, dst), cid) =
            if let (true, Some((sip, inbound))) = (self.cfg.sip_as_sip, ev.sip_message()) {
                // SIP as SIP is written (Janus ≥ 1.3 reports what it sends with bare LF).
                let sip = crate::janus::sip::sip_crlf(sip);
                let sip = &*sip;
                let call = crate::janus::sip::sip_call_id(sip);
                let cid = call.map_or_else(
                    || self.cid_bytes(&c.cid),
                    |s| Bytes::copy_from_slice(s.as_bytes()),
                );
                let (mut src, mut dst) = sip_sides(sip);
                // Both sides of the dialog: learnt from the messages that name them, and
                // used for those that do not (a 200 OK to a BYE without Contact).
                let (janus, far) = if inbound {
                    (&mut dst, &mut src)
                } else {
                    (&mut src, &mut dst)
                };
                if let Some(call) = call {
                    self.sip_janus.fill(call, janus, far);
                }
                (
                    ProtoType::SIP,
                    Bytes::copy_from_slice(sip.as_bytes()),
                    sip_fill(src, dst, inbound, c),
                    cid,
                )
            } else {
                let ends = event_endpoints(c);
                label::label(c, name, &mut self.label);
                (
                    self.cfg.event_proto,
                    self.payload(c, None),
                    ends,
                    self.cid_bytes(&c.cid),
                )
            };
        // Built in place (the by-value builder methods would move it once per call).
        let mut b = PacketBuilder::new(proto, payload);
        // Janus events reach us over HTTP, WebSocket or a broker: TCP. A SIP message keeps
        // UDP, the SIP plugin's default transport.
        b.ip_proto = Some(if proto == ProtoType::SIP {
            heplink_proto::registry::ip_proto::UDP
        } else {
            heplink_proto::registry::ip_proto::TCP
        });
        (b.src_ip, b.src_port) = (Some(src.ip()), Some(src.port()));
        (b.dst_ip, b.dst_port) = (Some(dst.ip()), Some(dst.port()));
        b.set_timestamp_micros(ts);
        b.capture_id = Some(self.cfg.capture_id);
        b.node_name = Some(node);
        b.correlation_id = Some(cid);
        b.auth_key = self.cfg.auth_key.as_ref().map(|k| Bytes::from(k.clone()));
        match b.encode(out) {
            Err(EncodeError::TooLarge { .. }) => {
                // A huge event (an SDP of tens of KB): send its head instead, marked.
                let mut payload = String::new();
                label::label(c, name, &mut self.label);
                if self.cfg.log_format == LogFormat::Words {
                    payload.push_str(&self.label);
                    payload.push('\n');
                }
                payload.push_str("{\"label\":");
                write_json_str(&mut payload, &self.label);
                payload.push_str(",\"heplink\":{\"truncated\":true,\"original_bytes\":");
                let _ = write!(payload, "{}", ev.raw.len());
                payload.push_str(",\"cid\":");
                write_json_str(&mut payload, &c.cid);
                payload.push_str("},\"event_head\":");
                let text = String::from_utf8_lossy(&ev.raw);
                let head: String = text.chars().take(30_000).collect();
                write_json_str(&mut payload, &head);
                payload.push('}');
                b.proto_type = Some(self.cfg.event_proto);
                b.payload = Bytes::from(payload);
                b.encode(out)?;
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        Ok((out.split().freeze(), ts))
    }

    /// A verdict's LOG row in the flow of the event that ended it (the same addresses and
    /// id as the event's own row), with its time.
    ///
    /// `words` and `json` (the members after the label) are the verdict's; `room`: a
    /// room's verdict (its id is the room's, never a call's).
    pub fn summary(
        &mut self,
        c: &Correlated,
        (words, json, room): (&str, &str, bool),
        now_us: u64,
        out: &mut BytesMut,
    ) -> Result<(Bytes, u64), EncodeError> {
        let ts = self.window_time(c.event.timestamp, now_us).0;
        let node = self.node(&c.event.emitter);
        let (src, dst) = event_endpoints(c);
        self.label.clear();
        self.label.push_str(words);
        let payload = self.payload(c, Some(json));
        // A verdict is Janus's word: Janus → client.
        let (src, dst) = if from_client(&c.event) {
            (dst, src)
        } else {
            (src, dst)
        };
        let mut b = PacketBuilder::new(self.cfg.event_proto, payload);
        b.ip_proto = Some(heplink_proto::registry::ip_proto::TCP);
        (b.src_ip, b.src_port) = (Some(src.ip()), Some(src.port()));
        (b.dst_ip, b.dst_port) = (Some(dst.ip()), Some(dst.port()));
        b.set_timestamp_micros(ts);
        b.capture_id = Some(self.cfg.capture_id);
        b.node_name = Some(node);
        b.correlation_id = Some(match &c.facts.call_id {
            Some(call) if !room => Bytes::copy_from_slice(call.as_bytes()),
            _ => self.cid_bytes(&c.cid),
        });
        b.auth_key = self.cfg.auth_key.as_ref().map(|k| Bytes::from(k.clone()));
        b.encode(out)?;
        Ok((out.split().freeze(), ts))
    }

    /// `<label>\n{"label":…,"heplink":{facts},"event":<raw>}` (the label is
    /// `self.label`), or with `extra` members (a summary) in place of the event. The facts
    /// are written as JSON text, the event is copied byte for byte (heplify-server drops
    /// invalid UTF-8 itself).
    fn payload(&mut self, c: &Correlated, extra: Option<&str>) -> Bytes {
        let f = &c.facts;
        let need = c.event.raw.len() + 2 * self.label.len() + extra.map_or(0, str::len) + 256;
        if self.block.capacity() < need {
            self.block = BytesMut::with_capacity(need.max(PAYLOAD_BLOCK));
        }
        let mut s = std::mem::take(&mut self.block);
        // Words first: Homer previews the first 50 characters of a payload.
        if self.cfg.log_format == LogFormat::Words {
            s.extend_from_slice(self.label.as_bytes());
            s.extend_from_slice(b"\n");
        }
        s.extend_from_slice(b"{\"label\":");
        write_json_str(&mut s, &self.label);
        if let Some(x) = extra {
            s.extend_from_slice(b",");
            s.extend_from_slice(x.as_bytes());
        }
        s.extend_from_slice(b",\"heplink\":{\"cid\":");
        write_json_str(&mut s, &c.cid);
        match &f.group {
            Some(GroupKey::Room(p, r)) => {
                s.extend_from_slice(b",\"group\":\"");
                s.extend_from_slice(p.short().as_bytes());
                s.extend_from_slice(b"\",\"room\":");
                r.write_json(&mut s);
            }
            Some(GroupKey::Call(_)) => s.extend_from_slice(b",\"group\":\"sip\""),
            None => {}
        }
        if let Some((_, id)) = &f.participant {
            s.extend_from_slice(b",\"participant\":");
            id.write_json(&mut s);
        }
        if let Some(d) = &f.display {
            s.extend_from_slice(b",\"display\":");
            write_json_str(&mut s, d);
        }
        if !f.feeds.is_empty() {
            s.extend_from_slice(b",\"feeds\":[");
            for (i, feed) in f.feeds.iter().enumerate() {
                if i > 0 {
                    s.extend_from_slice(b",");
                }
                feed.write_json(&mut s);
            }
            s.extend_from_slice(b"]");
        }
        if let Some(call) = &f.call_id {
            s.extend_from_slice(b",\"call_id\":");
            write_json_str(&mut s, call);
        }
        if f.held_us > 0 {
            s.extend_from_slice(b",\"held_us\":");
            write_u64(&mut s, f.held_us);
        }
        if extra.is_some() {
            s.extend_from_slice(b"}}");
        } else {
            s.extend_from_slice(b"},\"event\":");
            s.extend_from_slice(&c.event.raw);
            s.extend_from_slice(b"}");
        }
        let payload = s.split().freeze();
        self.block = s;
        payload
    }

    /// The node name of an emitter, cached for the last emitter seen.
    fn node(&mut self, emitter: &Arc<str>) -> Bytes {
        if let Some(n) = &self.cfg.node_name {
            return Bytes::from(n.clone());
        }
        match &self.last_node {
            Some((e, n)) if Arc::ptr_eq(e, emitter) || **e == **emitter => n.clone(),
            _ => {
                let n = Bytes::from(sanitize_node(emitter));
                self.last_node = Some((emitter.clone(), n.clone()));
                n
            }
        }
    }
}

/// Node name from an emitter: `"` and `\` (which heplify-server copies into JSON
/// unescaped) and control characters become `_`; empty becomes `janus`.
pub fn sanitize_node(emitter: &str) -> String {
    if emitter.is_empty() {
        return "janus".into();
    }
    emitter
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Whether the client caused this event (it goes client → Janus).
pub fn from_client(ev: &Event) -> bool {
    match ev.kind {
        EventType::Jsep => matches!(ev.body, Body::Jsep { remote: true, .. }),
        EventType::WebRtc => ev.subtype == Some(3),
        EventType::Transport | EventType::Session => true,
        _ => false,
    }
}

/// The id a synthetic client address is derived from.
fn synthetic_id(c: &Correlated) -> u64 {
    let ev = &c.event;
    ev.handle_id
        .or(ev.session_id)
        .or_else(|| match &c.facts.group {
            Some(GroupKey::Room(_, r)) => Some(room_hash(r)),
            _ => None,
        })
        .unwrap_or(0)
}

/// Source and destination of a Janus event packet.
pub fn event_endpoints(c: &Correlated) -> (SocketAddr, SocketAddr) {
    let client = c.facts.client.or(match &c.event.body {
        Body::Transport { client, .. } => *client,
        _ => None,
    });
    let (client, janus) = pair(client, c.facts.janus, synthetic_id(c));
    if from_client(&c.event) {
        (client, janus)
    } else {
        (janus, client)
    }
}

/// Completes a (client, Janus) pair with synthetic addresses of the same family.
fn pair(
    client: Option<SocketAddr>,
    janus: Option<SocketAddr>,
    id: u64,
) -> (SocketAddr, SocketAddr) {
    match (client, janus) {
        (Some(c), Some(j)) if c.is_ipv4() == j.is_ipv4() => (c, j),
        (Some(c), Some(j)) => (to_v6(c), to_v6(j)),
        (Some(c), None) => {
            let j = if c.is_ipv4() {
                IpAddr::V4(SYNTHETIC_JANUS_V4)
            } else {
                IpAddr::V6(SYNTHETIC_JANUS_V6)
            };
            (c, SocketAddr::new(j, 0))
        }
        (None, Some(j)) => (SocketAddr::new(synthetic_client(id, j.is_ipv4()), 0), j),
        (None, None) => (
            SocketAddr::new(synthetic_client(id, false), 0),
            SocketAddr::new(IpAddr::V6(SYNTHETIC_JANUS_V6), 0),
        ),
    }
}

fn to_v6(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    }
}

/// Source and destination of a SIP message: a request goes from its top Via's sent-by to
/// its Request-URI; a response from its Contact to its top Via's sent-by. What cannot be
/// read (host names, missing headers) is synthetic.
pub fn sip_endpoints(msg: &str, inbound: bool, c: &Correlated) -> (SocketAddr, SocketAddr) {
    let (src, dst) = sip_sides(msg);
    sip_fill(src, dst, inbound, c)
}

/// The sender and receiver a SIP message names: a request's Via and Request-URI, a
/// response's Contact and Via (IP hosts only).
pub fn sip_sides(msg: &str) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let first = msg.lines().next().unwrap_or("");
    let via = sip_header(msg, "via", Some("v")).and_then(via_sent_by);
    if first.starts_with("SIP/2.0") {
        let contact = sip_header(msg, "contact", Some("m")).and_then(uri_host_port);
        (contact, via)
    } else {
        let ruri = first
            .split_ascii_whitespace()
            .nth(1)
            .and_then(uri_host_port);
        (via, ruri)
    }
}

/// The two sides of each SIP dialog (Janus's, the far end's) per Call-ID, as its messages
/// name them; bounded (cleared when full).
#[derive(Debug, Default)]
struct SipJanus {
    by_call: ahash::AHashMap<Box<str>, (Option<SocketAddr>, Option<SocketAddr>)>,
}

/// Calls remembered by [`SipJanus`] at most.
const SIP_JANUS_CALLS: usize = 4096;

impl SipJanus {
    /// Learns the sides a message names; fills those it does not from earlier messages.
    fn fill(&mut self, call: &str, janus: &mut Option<SocketAddr>, far: &mut Option<SocketAddr>) {
        if self.by_call.len() >= SIP_JANUS_CALLS && !self.by_call.contains_key(call) {
            self.by_call.clear();
        }
        let known = match self.by_call.get_mut(call) {
            Some(k) => k,
            None => self.by_call.entry(call.into()).or_default(),
        };
        for (side, kept) in [(janus, &mut known.0), (far, &mut known.1)] {
            match side {
                Some(a) => *kept = Some(*a),
                None => *side = *kept,
            }
        }
    }
}

/// Both ends of a SIP message from what it names, with a stable synthetic address for a
/// side it does not name (Janus's SIP stack for Janus, the peer otherwise).
fn sip_fill(
    src: Option<SocketAddr>,
    dst: Option<SocketAddr>,
    inbound: bool,
    c: &Correlated,
) -> (SocketAddr, SocketAddr) {
    // Known side, and a synthetic partner: Janus's SIP stack for outbound requests, the peer inbound.
    let id = synthetic_id(c) ^ u64::from(inbound);
    let fill = |a: Option<SocketAddr>, other: Option<SocketAddr>, janus_side: bool| {
        a.unwrap_or_else(|| {
            let v4 = other.is_none_or(|o| o.is_ipv4());
            let ip = if janus_side {
                if v4 {
                    IpAddr::V4(SYNTHETIC_JANUS_V4)
                } else {
                    IpAddr::V6(SYNTHETIC_JANUS_V6)
                }
            } else {
                synthetic_client(id, v4)
            };
            SocketAddr::new(ip, 5060)
        })
    };
    let src_full = fill(src, dst, !inbound);
    let dst_full = fill(dst, Some(src_full), inbound);
    if src_full.is_ipv4() == dst_full.is_ipv4() {
        (src_full, dst_full)
    } else {
        (to_v6(src_full), to_v6(dst_full))
    }
}

/// `SIP/2.0/UDP host:port;params` → host:port (port 5060 when absent), IP hosts only.
fn via_sent_by(v: &str) -> Option<SocketAddr> {
    let v = v.split(',').next()?;
    let sent_by = v.split_ascii_whitespace().nth(1)?.split(';').next()?;
    host_port(sent_by)
}

/// `<sip:user@host:port;params>` or `sip:host` → host:port, IP hosts only.
fn uri_host_port(u: &str) -> Option<SocketAddr> {
    let u = u.trim();
    let u = match (u.find('<'), u.find('>')) {
        (Some(a), Some(b)) if a < b => &u[a + 1..b],
        _ => u,
    };
    let rest = u.strip_prefix("sips:").or_else(|| u.strip_prefix("sip:"))?;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hp = rest.split([';', '?', '>']).next()?;
    host_port(hp)
}

fn host_port(hp: &str) -> Option<SocketAddr> {
    if let Some(v6) = hp.strip_prefix('[') {
        let (ip, rest) = v6.split_once(']')?;
        let port = rest
            .strip_prefix(':')
            .map_or(Some(5060), |p| p.parse().ok())?;
        return Some(SocketAddr::new(ip.parse().ok()?, port));
    }
    let (ip, port) = match hp.rsplit_once(':') {
        Some((ip, p)) => (ip, p.parse().ok()?),
        None => (hp, 5060),
    };
    Some(SocketAddr::new(IpAddr::V4(ip.parse().ok()?), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_address_parsing() {
        assert_eq!(
            via_sent_by("SIP/2.0/UDP 127.0.0.41:51182;branch=z9;rport"),
            Some("127.0.0.41:51182".parse().unwrap())
        );
        assert_eq!(
            via_sent_by("SIP/2.0/TCP [2001:db8::1]:5070;branch=x"),
            Some("[2001:db8::1]:5070".parse().unwrap())
        );
        assert_eq!(via_sent_by("SIP/2.0/UDP pbx.example.org;branch=x"), None);
        assert_eq!(
            uri_host_port("sip:frontdesk@127.0.0.42:5070"),
            Some("127.0.0.42:5070".parse().unwrap())
        );
        assert_eq!(
            uri_host_port("<sip:carol@127.0.0.41:51182;transport=udp>"),
            Some("127.0.0.41:51182".parse().unwrap())
        );
        assert_eq!(
            uri_host_port("\"Bob\" <sip:bob@10.0.0.9>;expires=60"),
            Some("10.0.0.9:5060".parse().unwrap())
        );
        assert_eq!(uri_host_port("tel:+123"), None);
    }

    #[test]
    fn synthetic_addresses_are_stable_and_distinct() {
        assert_eq!(
            synthetic_client(0x0001_0002_0003_0004, false).to_string(),
            "fd63:6c69:656e:7400:1:2:3:4"
        );
        assert_eq!(
            synthetic_client(0xabcdef, true).to_string(),
            "240.171.205.239"
        );
        assert_ne!(synthetic_client(1, true), IpAddr::V4(SYNTHETIC_JANUS_V4));
        assert_eq!(sanitize_node("a\"b\\c\n"), "a_b_c_");
        assert_eq!(sanitize_node(""), "janus");
    }
}
