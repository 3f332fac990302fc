//! WebRTC QoS for Homer: Janus media stats (type 32, subtype 3) as HEP type 5 RTCP JSON
//! reports (homer-app's QoS tab, heplify-server's `heplify_rtcp_*` gauges) and, for audio,
//! HEP type 34 rtpagent reports (the MOS badge on the flow's arrows, the RTP tab). The
//! shapes and the mapping are the ones verified on a real Homer
//! (`reference/homer-qos.md` §7): per stats sample and medium,
//!
//! - report A, Janus → peer: a sender report with what Janus sent (`packets-sent`,
//!   `bytes-sent`) and a report block on the peer's stream as Janus received it (`lost`,
//!   `jitter-local`, fraction lost from the previous sample);
//! - report B, peer → Janus: the peer's stream as Janus received it (`packets-received`,
//!   `bytes-received`) and the peer's report on Janus's stream (`lost-by-remote`,
//!   `jitter-remote`, `rtt-values` when Janus ≥ 1.1.4 gives them);
//! - `report_blocks_xr.round_trip_delay` = `rtt` (ms) only when Janus knows it;
//! - audio only: two rtpagent reports (DIR 0 measured by Janus, DIR 1 from the peer's RR)
//!   with an E-model MOS.
//!
//! A direction with no packets is left out (a publisher's Janus sends it nothing; Homer
//! would not chart a sender report without packets anyway), and so are data channels.
//! Jitter in the RTCP JSON is in RTP timestamp units (RFC 3550, what heplify decodes from
//! RTCP on the wire); in rtpagent reports it is in ms. SSRCs and payload types come from
//! the handle's JSEP SDPs (0 when unknown); the PeerConnection's addresses from its
//! selected pair, as for its LOG rows.
//!
//! State per handle (SDP facts, the previous sample per medium) is bounded: it goes with
//! the handle's hangup or detach, and beyond [`MAX_HANDLES`] the oldest handle is dropped.
//!
//! Why this file is over 500 lines: the mapping of §7 is one table of field conversions per
//! report shape (RTCP JSON both ways, rtpagent both ways) plus its unit tests; split by
//! shape it would spread one table over files. Reading the stats is apart
//! (`stats.rs`).

use std::borrow::Cow;
use std::collections::VecDeque;

/// Maps looked up per media event (by emitter and handle, by medium): ahash, several times
/// faster than std's SipHash on these keys and randomly seeded all the same.
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;

use super::stats::Stats;
use crate::correlate::Correlated;
use crate::janus::event::EventType;
use crate::json::{write_hundredths, write_i64, write_ip, write_json_str, write_u64};

/// Most handles whose QoS state is kept.
pub const MAX_HANDLES: usize = 50_000;

/// Which QoS reports the mapper adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QosReports {
    /// None: media stats stay LOG rows only.
    Off,
    /// RTCP JSON (type 5) only.
    Rtcp,
    /// RTCP JSON (type 5) and, for audio, rtpagent reports with a MOS (type 34).
    #[default]
    RtcpRtp,
}

impl crate::choice::Choice for QosReports {
    const ALL: &'static [(&'static str, Self)] = &[
        ("off", Self::Off),
        ("rtcp", Self::Rtcp),
        ("rtcp-rtp", Self::RtcpRtp),
    ];
}
crate::choice::display_choice!(QosReports);

/// What the SDPs say of one `mid`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Mid {
    /// Janus's SSRC (its own SDP).
    janus_ssrc: u32,
    /// The peer's SSRC (the peer's SDP).
    peer_ssrc: u32,
    /// The first payload type of the m-line.
    pt: Option<u8>,
}

/// Counters of the previous sample of one medium.
#[derive(Debug, Clone, Copy, Default)]
struct Prev {
    lost: i64,
    received: u64,
    lost_remote: i64,
    sent: u64,
}

#[derive(Debug, Default)]
struct HandleQos {
    mids: HashMap<Arc<str>, Mid>,
    prev: HashMap<Arc<str>, Prev>,
}

/// One report to send: its proto type, payload, source and destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// 5 (RTCP JSON) or 34 (rtpagent).
    pub rtpagent: bool,
    /// The JSON payload.
    pub payload: String,
    /// Source address.
    pub src: SocketAddr,
    /// Destination address.
    pub dst: SocketAddr,
}

/// The QoS state of the mapper (see the module documentation).
#[derive(Debug, Default)]
pub struct Qos {
    handles: HashMap<(Arc<str>, u64), HandleQos>,
    order: VecDeque<(Arc<str>, u64)>,
    /// A kept buffer for the key of a medium's previous sample.
    name: String,
}

impl Qos {
    /// Handles with QoS state now.
    pub fn handles(&self) -> usize {
        self.handles.len()
    }

    fn handle(&mut self, key: (Arc<str>, u64)) -> &mut HandleQos {
        if !self.handles.contains_key(&key) {
            while self.handles.len() >= MAX_HANDLES {
                match self.order.pop_front() {
                    Some(old) => {
                        self.handles.remove(&old);
                    }
                    None => break,
                }
            }
            self.order.push_back(key.clone());
        }
        self.handles.entry(key).or_default()
    }

    /// Takes in one correlated event: learns SDP facts from JSEP, forgets a handle that
    /// hung up or detached, and for media stats appends the reports to `out`.
    pub(crate) fn event(
        &mut self,
        c: &Correlated,
        reports: QosReports,
        peer_janus: (SocketAddr, SocketAddr),
        reads: &mut super::stats::EventReads<'_>,
        out: &mut Vec<Report>,
    ) {
        let ev = &c.event;
        let Some(hid) = ev.handle_id else { return };
        let key = (ev.emitter.clone(), hid);
        match (ev.kind, ev.subtype) {
            (EventType::Jsep, _) => {
                let Some(j) = reads.jsep() else {
                    return;
                };
                let janus_side = j.owner == "local";
                let h = self.handle(key);
                for (mid, ssrc, pt) in sdp_media(&j.sdp) {
                    let m = match h.mids.get_mut(&*mid) {
                        Some(m) => m,
                        None => h.mids.entry(Arc::from(mid)).or_default(),
                    };
                    if janus_side {
                        m.janus_ssrc = ssrc.unwrap_or(m.janus_ssrc);
                    } else {
                        m.peer_ssrc = ssrc.unwrap_or(m.peer_ssrc);
                    }
                    m.pt = m.pt.or(pt);
                }
            }
            (EventType::Handle, _) | (EventType::WebRtc, Some(6))
                if ev.ends_peer_connection() && self.handles.remove(&key).is_some() =>
            {
                self.order.retain(|k| k != &key);
            }
            (EventType::Media, Some(3)) if reports != QosReports::Off => {
                let Some(all) = reads.media_stats() else {
                    return;
                };
                let ts = ev.timestamp.unwrap_or(0);
                for s in all {
                    let media = s.media.as_deref().unwrap_or("");
                    if !(media.starts_with("audio") || media.starts_with("video")) {
                        continue;
                    }
                    let mid = s.mid.as_deref().unwrap_or(media);
                    // The previous sample's key, `mid/media`, written into a kept buffer:
                    // allocated only for a medium not seen before.
                    let mut name = std::mem::take(&mut self.name);
                    name.clear();
                    name.push_str(mid);
                    name.push('/');
                    name.push_str(media);
                    let h = self.handle(key.clone());
                    let m = h.mids.get(mid).copied().unwrap_or_default();
                    let now = Prev {
                        lost: s.lost,
                        received: s.packets_received,
                        lost_remote: s.lost_by_remote,
                        sent: s.packets_sent,
                    };
                    let prev = match h.prev.get_mut(name.as_str()) {
                        Some(p) => Some(std::mem::replace(p, now)),
                        None => h.prev.insert(Arc::from(name.as_str()), now),
                    };
                    self.name = name;
                    let rtp = reports == QosReports::RtcpRtp && media.starts_with("audio");
                    // The flow's id, as the HEP chunk carries it: a SIP call's Call-ID.
                    let cid = c.facts.call_id.as_deref().unwrap_or(&c.cid);
                    write_reports(s, m, prev, ts, peer_janus, cid, (mid, media), rtp, out);
                }
            }
            _ => {}
        }
    }
}

/// (mid, first SSRC, first payload type) of each m-line of an SDP; a section without
/// `a=mid` is named by its index.
fn sdp_media(sdp: &str) -> Vec<(Cow<'_, str>, Option<u32>, Option<u8>)> {
    let mut out: Vec<(Cow<'_, str>, Option<u32>, Option<u8>)> = Vec::new();
    // Lines end with CRLF (or LF); only `m=`, `a=mid:` and `a=ssrc:` lines matter.
    for line in sdp.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(m) = line.strip_prefix("m=") {
            let pt = m.split_whitespace().nth(3).and_then(|p| p.parse().ok());
            out.push((Cow::Owned(out.len().to_string()), None, pt));
        } else if let Some(a) = line.strip_prefix("a=") {
            let Some(last) = out.last_mut() else { continue };
            if let Some(mid) = a.strip_prefix("mid:") {
                last.0 = Cow::Borrowed(mid.trim());
            } else if let Some(ssrc) = a.strip_prefix("ssrc:") {
                if last.1.is_none() {
                    last.1 = ssrc.split_whitespace().next().and_then(|s| s.parse().ok());
                }
            }
        }
    }
    out
}

/// `min(255, 256·Δlost/Δtotal)`, 0 without a previous sample or progress.
fn fraction(lost_now: i64, lost_before: i64, total_delta: i64) -> u32 {
    let dl = lost_now - lost_before;
    if dl <= 0 || total_delta <= 0 {
        return 0;
    }
    ((256 * dl) / total_delta).clamp(0, 255) as u32
}

/// The E-model MOS as homer-ui and heplify-server compute it: rtt and jitter in ms, loss
/// in percent.
pub fn mos(rtt_ms: f64, jitter_ms: f64, loss_pct: f64) -> (f64, f64) {
    let el = rtt_ms + 2.0 * jitter_ms + 10.0;
    let mut r = if el < 160.0 {
        93.2 - el / 40.0
    } else {
        93.2 - (el - 120.0) / 10.0
    };
    r -= 2.5 * loss_pct;
    let r = r.clamp(0.0, 100.0);
    let mos = 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r);
    (
        (mos.clamp(1.0, 4.5) * 100.0).round() / 100.0,
        (r * 100.0).round() / 100.0,
    )
}

/// The report block of one RTCP JSON report.
struct Block {
    frac: u32,
    lost: u32,
    highest: u32,
    jitter: u64,
    lsr_dlsr: (u32, u32),
}

/// `key` (the JSON before a value) and the number `v`.
fn num(p: &mut String, key: &str, v: u64) {
    p.push_str(key);
    write_u64(p, v);
}

/// `key` and `v`, a value already written as JSON (or a part of a string).
fn text(p: &mut String, key: &str, v: &str) {
    p.push_str(key);
    p.push_str(v);
}

/// One sender report in heplify's `RTCP_Packet` JSON: `(ntp seconds, fraction)`,
/// `(packets, octets)`, `(ssrc, source ssrc)`, its block, and XR's round trip only when
/// `rtt` is known.
fn rtcp_json(
    (ntp_sec, ntp_frac): (u64, u64),
    (packets, octets): (u32, u32),
    (ssrc, source): (u32, u32),
    b: &Block,
    rtt: u32,
) -> String {
    let mut p = String::with_capacity(400);
    num(
        &mut p,
        "{\"sender_information\":{\"ntp_timestamp_sec\":",
        ntp_sec,
    );
    num(&mut p, ",\"ntp_timestamp_usec\":", ntp_frac);
    num(&mut p, ",\"rtp_timestamp\":0,\"packets\":", packets.into());
    num(&mut p, ",\"octets\":", octets.into());
    num(&mut p, "},\"ssrc\":", ssrc.into());
    num(
        &mut p,
        ",\"type\":200,\"report_count\":1,\"report_blocks\":[{\"source_ssrc\":",
        source.into(),
    );
    num(&mut p, ",\"fraction_lost\":", b.frac.into());
    num(&mut p, ",\"packets_lost\":", b.lost.into());
    num(&mut p, ",\"highest_seq_no\":", b.highest.into());
    num(&mut p, ",\"ia_jitter\":", b.jitter);
    num(&mut p, ",\"lsr\":", b.lsr_dlsr.0.into());
    num(&mut p, ",\"dlsr\":", b.lsr_dlsr.1.into());
    num(&mut p, "}],\"sdes_ssrc\":", ssrc.into());
    if rtt > 0 {
        num(
            &mut p,
            ",\"report_blocks_xr\":{\"round_trip_delay\":",
            rtt.min(65535).into(),
        );
        p.push('}');
    }
    p.push('}');
    p
}

/// The QoS reports of one stream's stats: RTCP (HEP type 5) for what Janus sent and
/// received, and with `rtp` the rtpagent reports (HEP type 34) of both directions.
#[allow(clippy::too_many_arguments)]
fn write_reports(
    s: &Stats,
    m: Mid,
    prev: Option<Prev>,
    ts_us: u64,
    ends: (SocketAddr, SocketAddr),
    cid: &str,
    (mid, media): (&str, &str),
    rtp: bool,
    out: &mut Vec<Report>,
) {
    rtcp_reports(s, m, prev, ts_us, ends, out);
    if rtp {
        rtpagent_reports(s, m, prev, ts_us, ends, cid, (mid, media), out);
    }
}

/// RTCP report A (Janus → peer: what Janus sent, its block on the peer's stream) and B
/// (peer → Janus: what Janus received, the peer's block on Janus's stream).
fn rtcp_reports(
    s: &Stats,
    m: Mid,
    prev: Option<Prev>,
    ts_us: u64,
    (peer, janus): (SocketAddr, SocketAddr),
    out: &mut Vec<Report>,
) {
    let ntp_sec = ts_us / 1_000_000 + 2_208_988_800;
    let ntp_frac = ((ts_us % 1_000_000) << 32) / 1_000_000;
    let ts_units = |ms: u32| u64::from(ms) * u64::from(s.base / 1000);
    let clamp_lost = |l: i64| l.clamp(0, 0x7F_FFFF) as u32;
    let (lsr, dlsr) = s.rtt_values.as_ref().map_or((0, 0), |v| (v.lsr, v.dlsr));
    let ntp = (ntp_sec, ntp_frac);
    // Report A: Janus -> peer (what Janus sent; its block on the peer's stream).
    if s.packets_sent > 0 {
        let frac = prev.map_or(0, |p| {
            let dr = s.packets_received as i64 - p.received as i64;
            fraction(s.lost, p.lost, (s.lost - p.lost) + dr)
        });
        let block = Block {
            frac,
            lost: clamp_lost(s.lost),
            highest: (s.packets_received as i64 + s.lost.max(0)) as u32,
            jitter: ts_units(s.jitter_local),
            lsr_dlsr: (0, 0),
        };
        let sender = (s.packets_sent as u32, s.bytes_sent as u32);
        let payload = rtcp_json(ntp, sender, (m.janus_ssrc, m.peer_ssrc), &block, s.rtt);
        out.push(Report {
            rtpagent: false,
            payload,
            src: janus,
            dst: peer,
        });
    }
    // Report B: peer -> Janus (what Janus received; the peer's block on Janus's stream).
    if s.packets_received > 0 {
        let frac = prev.map_or(0, |p| {
            let ds = s.packets_sent as i64 - p.sent as i64;
            fraction(s.lost_by_remote, p.lost_remote, ds)
        });
        let block = Block {
            frac,
            lost: clamp_lost(s.lost_by_remote),
            highest: s.packets_sent as u32,
            jitter: ts_units(s.jitter_remote),
            lsr_dlsr: (lsr, dlsr),
        };
        let sender = (s.packets_received as u32, s.bytes_received as u32);
        let payload = rtcp_json(ntp, sender, (m.peer_ssrc, m.janus_ssrc), &block, s.rtt);
        out.push(Report {
            rtpagent: false,
            payload,
            src: peer,
            dst: janus,
        });
    }
}

/// rtpagent: DIR 0 measured by Janus on the peer's stream, DIR 1 from the peer's RR.
#[allow(clippy::too_many_arguments)]
fn rtpagent_reports(
    s: &Stats,
    m: Mid,
    prev: Option<Prev>,
    ts_us: u64,
    (peer, janus): (SocketAddr, SocketAddr),
    cid: &str,
    (mid, media): (&str, &str),
    out: &mut Vec<Report>,
) {
    let interval_loss = |lost: i64, before: i64, total: i64| {
        let dl = (lost - before).max(0) as f64;
        if total > 0 {
            100.0 * dl / total as f64
        } else {
            0.0
        }
    };
    let dirs = [
        Dir {
            dir: 0,
            total: s.packets_received,
            expected: s.packets_received as i64 + s.lost.max(0),
            lost: s.lost,
            jitter: s.jitter_local,
            bytes: s.bytes_received,
            ssrc: m.peer_ssrc,
            loss_pct: prev.map_or(0.0, |p| {
                let dr = s.packets_received as i64 - p.received as i64;
                interval_loss(s.lost, p.lost, dr + (s.lost - p.lost))
            }),
            ends: (peer, janus),
        },
        Dir {
            dir: 1,
            total: (s.packets_sent as i64 - s.lost_by_remote.max(0)).max(0) as u64,
            expected: s.packets_sent as i64,
            lost: s.lost_by_remote,
            jitter: s.jitter_remote,
            bytes: s.bytes_sent,
            ssrc: m.janus_ssrc,
            loss_pct: prev.map_or(0.0, |p| {
                interval_loss(
                    s.lost_by_remote,
                    p.lost_remote,
                    s.packets_sent as i64 - p.sent as i64,
                )
            }),
            ends: (janus, peer),
        },
    ];
    for d in dirs.iter().filter(|d| d.expected > 0) {
        let (src, dst) = d.ends;
        out.push(Report {
            rtpagent: true,
            payload: rtpagent_json(s, m, d, ts_us, cid, (mid, media)),
            src,
            dst,
        });
    }
}

/// One direction of an rtpagent report.
struct Dir {
    dir: u8,
    total: u64,
    expected: i64,
    lost: i64,
    jitter: u32,
    bytes: u64,
    ssrc: u32,
    loss_pct: f64,
    ends: (SocketAddr, SocketAddr),
}

/// The rtpagent (HEP type 34) JSON of one direction.
fn rtpagent_json(
    s: &Stats,
    m: Mid,
    d: &Dir,
    ts_us: u64,
    cid: &str,
    (mid, media): (&str, &str),
) -> String {
    let Dir {
        dir,
        total,
        expected,
        lost,
        jitter,
        bytes,
        ssrc,
        loss_pct,
        ends: (src, dst),
    } = *d;
    let (mos, r) = mos(f64::from(s.rtt), f64::from(jitter), loss_pct);
    // Each figure is written once and copied where the report repeats it.
    let (mut mos_s, mut r_s) = (String::new(), String::new());
    write_hundredths(&mut mos_s, mos);
    write_hundredths(&mut r_s, r);
    let mut p = String::with_capacity(700);
    p.push_str("{\"CORRELATION_ID\":");
    write_json_str(&mut p, cid);
    p.push_str(",\"RTP_SIP_CALL_ID\":");
    write_json_str(&mut p, cid);
    num(&mut p, ",\"REPORT_TS\":", ts_us / 1_000_000);
    num(&mut p, ",\"TL_BYTE\":", bytes);
    num(&mut p, ",\"TOTAL_PK\":", total);
    p.push_str(",\"EXPECTED_PK\":");
    write_i64(&mut p, expected);
    num(&mut p, ",\"PACKET_LOSS\":", lost.max(0) as u64);
    num(&mut p, ",\"JITTER\":", jitter.into());
    num(&mut p, ",\"MAX_JITTER\":", jitter.into());
    num(&mut p, ",\"MEAN_JITTER\":", jitter.into());
    num(&mut p, ",\"DELTA\":", s.rtt.into());
    num(&mut p, ",\"MAX_DELTA\":", s.rtt.into());
    text(&mut p, ",\"MOS\":", &mos_s);
    text(&mut p, ",\"MIN_MOS\":", &mos_s);
    text(&mut p, ",\"MEAN_MOS\":", &mos_s);
    text(&mut p, ",\"RFACTOR\":", &r_s);
    text(&mut p, ",\"MIN_RFACTOR\":", &r_s);
    text(&mut p, ",\"MEAN_RFACTOR\":", &r_s);
    p.push_str(",\"SRC_IP\":\"");
    write_ip(&mut p, src.ip());
    num(&mut p, "\",\"SRC_PORT\":", src.port().into());
    p.push_str(",\"DST_IP\":\"");
    write_ip(&mut p, dst.ip());
    num(&mut p, "\",\"DST_PORT\":", dst.port().into());
    let _ = write!(p, ",\"SSRC\":\"{ssrc:08x}\"");
    p.push_str(",\"CODEC_PT\":");
    write_i64(&mut p, m.pt.map_or(-1, i64::from));
    num(&mut p, ",\"CLOCK\":", s.base.into());
    p.push_str(",\"CODEC_NAME\":");
    write_json_str(&mut p, s.codec.as_deref().unwrap_or(""));
    num(&mut p, ",\"DIR\":", dir.into());
    num(&mut p, ",\"PARTY\":", dir.into());
    text(&mut p, ",\"REPORT_NAME\":\"janus:mid", mid);
    text(&mut p, ":", media);
    p.push_str("\",\"TYPE\":\"PERIODIC\",\"SOURCE\":\"JANUS\"}");
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_mids_ssrcs_and_payload_types() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 9\r\na=mid:0\r\na=ssrc:1183878243 cname:x\r\na=ssrc:1183878243 msid:y\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";
        assert_eq!(
            sdp_media(sdp),
            vec![
                ("0".into(), Some(1_183_878_243), Some(111)),
                ("1".into(), None, Some(96)),
                ("2".into(), None, None),
            ]
        );
    }

    #[test]
    fn mos_matches_the_reference_figures() {
        // reference/homer-qos.md §5: rtt 0, jitter 8 ms, no loss: R 92.55, MOS 4.4.
        assert_eq!(mos(0.0, 8.0, 0.0), (4.4, 92.55));
        assert!(mos(0.0, 0.0, 57.9).0 < 1.5, "heavy loss gives a poor MOS");
    }

    #[test]
    fn fraction_lost_is_eight_bit_fixed_point_of_the_interval() {
        assert_eq!(fraction(11, 0, 19), 148);
        assert_eq!(fraction(5, 5, 100), 0);
        assert_eq!(fraction(500, 0, 10), 255);
    }
}
