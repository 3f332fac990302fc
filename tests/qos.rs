//! WebRTC QoS in Homer (#13 item 4): every media stats event of every real capture gives
//! the RTCP JSON (type 5) and rtpagent (type 34) reports `reference/homer-qos.md` §7
//! verified on a real Homer, with the field paths homer-ui's QoS worker and heplify-server's
//! metrics read, in the event's flow and between the PeerConnection's addresses.

mod common;

use bytes::Bytes;
use heplink::map::qos::QosReports;
use heplink::map::MapConfig;
use heplink::pipeline::Pipeline;
use heplink::proto::{Packet, ProtoType};
use serde_json::Value;

/// For each event: (the event's JSON, its own packet, the QoS packets it gave), in order.
fn run(scenario: &str, qos: QosReports) -> Vec<(Value, Vec<u8>, Vec<Vec<u8>>)> {
    let map = MapConfig {
        qos,
        ..MapConfig::default()
    };
    let mut p = Pipeline::new(Default::default(), map).event_time();
    let mut out: Vec<(Value, Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
    let mut sink = |o: heplink::pipeline::Output<'_>| {
        if o.made == heplink::pipeline::Made::Verdict {
            return;
        }
        let bytes = o.packet.to_vec();
        if o.made == heplink::pipeline::Made::Qos {
            out.last_mut().unwrap().2.push(bytes);
        } else {
            let ev: Value = serde_json::from_slice(&o.correlated.event.raw).unwrap();
            out.push((ev, bytes, Vec::new()));
        }
    };
    for body in common::fixture_bodies(scenario) {
        let rejected = p.push_body(&Bytes::from(body), 0, &mut sink).rejected;
        assert!(rejected.is_empty());
    }
    let now = p.now();
    p.flush(now, &mut sink);
    out
}

fn decode(b: &[u8]) -> Packet<'_> {
    heplink::proto::decode(b, heplink::proto::Mode::Strict).expect("heplify-server accepts it")
}

/// The RTCP JSON reports (as JSON) of these bodies, one after the other at their own times.
fn rtcp_reports<const N: usize>(bodies: [String; N]) -> Vec<Value> {
    let mut p = Pipeline::new(Default::default(), MapConfig::default()).event_time();
    let mut packets: Vec<Bytes> = Vec::new();
    for body in bodies {
        p.push_body(&Bytes::from(body), 0, &mut |o| packets.push(o.packet));
    }
    let now = p.now();
    p.flush(now, &mut |o| packets.push(o.packet));
    packets
        .iter()
        .map(|b| decode(b))
        .filter(|p| p.proto_type == Some(ProtoType::RTCP_JSON))
        .map(|p| serde_json::from_slice(heplink::map::log_json(p.payload.unwrap())).unwrap())
        .collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("a number: {v}"))
}

#[test]
fn every_media_stats_event_gives_the_reports_homer_charts() {
    let mut total = (0, 0);
    for scenario in common::ALL_CAPTURES.iter() {
        for (ev, own, qos) in run(scenario, QosReports::RtcpRtp) {
            let own = decode(&own);
            let is_stats = ev["type"] == 32 && ev["subtype"] == 3;
            // One medium per event, or an array of them (`combine_media_stats`).
            let mediums: Vec<&Value> = match &ev["event"] {
                Value::Array(a) => a.iter().collect(),
                o => vec![o],
            };
            let mediums: Vec<&Value> = mediums
                .into_iter()
                .filter(|m| is_stats && matches!(m["media"].as_str(), Some("audio" | "video")))
                .collect();
            if mediums.is_empty() {
                assert!(qos.is_empty(), "{scenario}: no QoS for {ev}");
                continue;
            }
            // Each medium's reports in turn: its RTCP reports, then (audio) its rtpagent ones.
            let mut rest = &qos[..];
            for inner in mediums {
                let media = inner["media"].as_str().unwrap();
                let (sent, recv) = (u(&inner["packets-sent"]), u(&inner["packets-received"]));
                let lost_in = inner["lost"].as_i64().unwrap_or(0).max(0) as u64;
                let n = usize::from(sent > 0)
                    + usize::from(recv > 0)
                    + if media == "audio" {
                        usize::from(recv + lost_in > 0) + usize::from(sent > 0)
                    } else {
                        0
                    };
                assert!(rest.len() >= n, "{scenario}: {ev}");
                let (qos, more) = rest.split_at(n);
                rest = more;
                let rtcp: Vec<Packet> = qos
                    .iter()
                    .map(|b| decode(b))
                    .filter(|p| p.proto_type == Some(ProtoType::RTCP_JSON))
                    .collect();
                let rtp: Vec<Packet> = qos
                    .iter()
                    .map(|b| decode(b))
                    .filter(|p| p.proto_type == Some(ProtoType::MOS_FULL))
                    .collect();
                assert_eq!(rtcp.len() + rtp.len(), qos.len(), "only types 5 and 34");
                // One report per direction that carries media.
                assert_eq!(
                    rtcp.len(),
                    usize::from(sent > 0) + usize::from(recv > 0),
                    "{scenario}: {ev}"
                );
                // The event's flow, and the PeerConnection's two addresses as its LOG row has
                // them (Janus's side and the peer's).
                let ends = [(own.src_ip, own.src_port), (own.dst_ip, own.dst_port)];
                for p in rtcp.iter().chain(&rtp) {
                    assert_eq!(p.correlation_id, own.correlation_id, "{scenario}");
                    assert_eq!(p.timestamp_micros(), own.timestamp_micros());
                    assert_eq!(p.node_name, own.node_name);
                    assert!(
                        ends.contains(&(p.src_ip, p.src_port))
                            && ends.contains(&(p.dst_ip, p.dst_port))
                    );
                    assert_ne!((p.src_ip, p.src_port), (p.dst_ip, p.dst_port));
                }
                let base = u(&inner["base"]);
                // Janus's report (Janus -> peer: what it sent) comes first, then the peer's
                // (peer -> Janus: what Janus received).
                let ways = [(sent > 0, true), (recv > 0, false)];
                let ways = ways.iter().filter(|w| w.0).map(|w| w.1);
                for (p, janus_to_peer) in rtcp.iter().zip(ways) {
                    let r: Value =
                        serde_json::from_slice(heplink::map::log_json(p.payload.unwrap())).unwrap();
                    // The paths homer-ui's QoS worker and heplify-server read (§2).
                    let si = &r["sender_information"];
                    for k in [
                        "ntp_timestamp_sec",
                        "ntp_timestamp_usec",
                        "rtp_timestamp",
                        "packets",
                        "octets",
                    ] {
                        u(&si[k]);
                    }
                    assert!(
                        u(&si["packets"]) > 0 && u(&si["octets"]) > 0,
                        "charted: {r}"
                    );
                    assert_eq!(r["type"], 200);
                    assert_eq!(r["report_count"], 1);
                    assert_eq!(r["sdes_ssrc"], r["ssrc"]);
                    let b = &r["report_blocks"][0];
                    for k in [
                        "source_ssrc",
                        "fraction_lost",
                        "packets_lost",
                        "highest_seq_no",
                        "ia_jitter",
                        "lsr",
                        "dlsr",
                    ] {
                        u(&b[k]);
                    }
                    assert!(u(&b["fraction_lost"]) <= 255);
                    let (jitter, lost) = if janus_to_peer {
                        assert_eq!(u(&si["packets"]), sent);
                        assert_eq!(u(&si["octets"]), u(&inner["bytes-sent"]));
                        (u(&inner["jitter-local"]), inner["lost"].as_i64().unwrap())
                    } else {
                        assert_eq!(u(&si["packets"]), recv);
                        assert_eq!(u(&si["octets"]), u(&inner["bytes-received"]));
                        (
                            u(&inner["jitter-remote"]),
                            inner["lost-by-remote"].as_i64().unwrap(),
                        )
                    };
                    // Jitter in RTP timestamp units; loss cumulative, clamped to 24 bits.
                    assert_eq!(u(&b["ia_jitter"]), jitter * (base / 1000), "{r}");
                    assert_eq!(
                        u(&b["packets_lost"]) as i64,
                        lost.clamp(0, 0x7F_FFFF),
                        "{r}"
                    );
                    // Round trip only when Janus knows it, and no other XR key.
                    match u(&inner["rtt"]) {
                        0 => assert!(r.get("report_blocks_xr").is_none(), "{r}"),
                        rtt => assert_eq!(
                            r["report_blocks_xr"],
                            serde_json::json!({"round_trip_delay": rtt})
                        ),
                    }
                    total.0 += 1;
                }
                // rtpagent reports for audio only, both directions that carry media.
                if media == "video" {
                    assert!(rtp.is_empty(), "no MOS for video");
                }
                for p in &rtp {
                    let r: Value =
                        serde_json::from_slice(heplink::map::log_json(p.payload.unwrap())).unwrap();
                    for k in [
                        "TOTAL_PK",
                        "EXPECTED_PK",
                        "PACKET_LOSS",
                        "JITTER",
                        "DELTA",
                        "TL_BYTE",
                        "CLOCK",
                        "DIR",
                    ] {
                        u(&r[k]);
                    }
                    let mos = r["MOS"].as_f64().unwrap();
                    assert!((1.0..=4.5).contains(&mos), "{r}");
                    assert_eq!(r["SOURCE"], "JANUS");
                    assert_eq!(r["TYPE"], "PERIODIC");
                    assert_eq!(
                        r["CORRELATION_ID"].as_str().map(str::as_bytes),
                        own.correlation_id
                    );
                    assert_eq!(u(&r["DELTA"]), u(&inner["rtt"]));
                    total.1 += 1;
                }
            }
            assert!(
                rest.is_empty(),
                "{scenario}: reports beyond the media of {ev}"
            );
        }
    }
    // The captures hold audio and video stats both ways.
    assert!(total.0 > 100 && total.1 > 30, "{total:?}");
}

#[test]
fn a_sip_call_s_reports_carry_its_call_id_for_homer_s_sip_flow() {
    let mut n = 0;
    for (ev, _, qos) in run("sip-call-simple", QosReports::RtcpRtp) {
        for b in &qos {
            let p = decode(b);
            let cid = std::str::from_utf8(p.correlation_id.unwrap()).unwrap();
            assert!(
                !cid.starts_with("janus-fixtures:"),
                "the Call-ID, not a Janus id: {cid} for {ev}"
            );
            n += 1;
        }
    }
    assert!(n > 0);
}

#[test]
fn qos_off_sends_media_stats_as_log_rows_only_and_rtcp_leaves_out_rtpagent() {
    for scenario in common::ALL_CAPTURES.iter() {
        assert!(run(scenario, QosReports::Off)
            .iter()
            .all(|(_, _, q)| q.is_empty()));
        for (_, _, q) in run(scenario, QosReports::Rtcp) {
            assert!(q
                .iter()
                .all(|b| decode(b).proto_type == Some(ProtoType::RTCP_JSON)));
        }
    }
}

#[test]
fn fraction_lost_comes_from_the_interval_since_the_previous_sample() {
    // Two samples of one medium: 11 of 19 packets of the interval lost on Janus's side.
    let ev = |ts: u64, lost: u64, recv: u64| {
        serde_json::json!({"emitter":"q","type":32,"subtype":3,"timestamp":ts,"session_id":1,"handle_id":2,
            "event":{"mid":"0","mindex":0,"media":"audio","codec":"opus","base":48000,"rtt":20,
            "lost":lost,"lost-by-remote":0,"jitter-local":4,"jitter-remote":0,
            "packets-received":recv,"packets-sent":100,"bytes-received":recv*100,"bytes-sent":12_345}})
        .to_string()
    };
    let reports = rtcp_reports([
        ev(1_795_000_000_000_000, 0, 100),
        ev(1_795_000_002_000_000, 11, 108),
    ]);
    // Janus -> peer reports carry Janus's report block on the peer's stream.
    let a: Vec<&Value> = reports
        .iter()
        .filter(|r| r["sender_information"]["octets"] == 12_345)
        .collect();
    assert_eq!(a.len(), 2);
    assert_eq!(
        a[0]["report_blocks"][0]["fraction_lost"], 0,
        "no previous sample"
    );
    // 11 lost of 11 + 8 expected in the interval: 256 * 11 / 19.
    assert_eq!(a[1]["report_blocks"][0]["fraction_lost"], 148);
    assert_eq!(a[1]["report_blocks"][0]["ia_jitter"], 4 * 48);
    assert_eq!(a[1]["report_blocks_xr"]["round_trip_delay"], 20);
}

#[test]
fn a_hangup_or_a_detach_forgets_the_handle_s_previous_sample() {
    // Two samples with 11 of 19 packets lost between them give a fraction lost of 148
    // (the test above); with the handle's PeerConnection hung up (or the handle detached)
    // in between, the second sample has no previous one: 0.
    let stats = |ts: u64, lost: u64, recv: u64| {
        serde_json::json!({"emitter":"q","type":32,"subtype":3,"timestamp":ts,"session_id":1,"handle_id":2,
            "event":{"mid":"0","media":"audio","codec":"opus","base":48000,
            "lost":lost,"packets-received":recv,"packets-sent":100,"bytes-sent":12_345}})
        .to_string()
    };
    let hangup = serde_json::json!({"emitter":"q","type":16,"subtype":6,"timestamp":1_795_000_001_000_000u64,
        "session_id":1,"handle_id":2,"event":{"connection":"hangup","reason":"DTLS alert"}})
    .to_string();
    let detached = serde_json::json!({"emitter":"q","type":2,"timestamp":1_795_000_001_000_000u64,
        "session_id":1,"handle_id":2,"event":{"name":"detached","plugin":"janus.plugin.echotest"}})
    .to_string();
    let webrtcup = serde_json::json!({"emitter":"q","type":16,"subtype":6,"timestamp":1_795_000_001_000_000u64,
        "session_id":1,"handle_id":2,"event":{"connection":"webrtcup"}})
    .to_string();
    let second_fraction = |between: &str| {
        let a: Vec<Value> = rtcp_reports([
            stats(1_795_000_000_000_000, 0, 100),
            between.to_string(),
            stats(1_795_000_002_000_000, 11, 108),
        ])
        .into_iter()
        .filter(|r| r["sender_information"]["octets"] == 12_345)
        .collect();
        assert_eq!(a.len(), 2, "{between}");
        a[1]["report_blocks"][0]["fraction_lost"].clone()
    };
    assert_eq!(second_fraction(&webrtcup), 148, "not an end: remembered");
    assert_eq!(second_fraction(&hangup), 0, "hung up: forgotten");
    assert_eq!(second_fraction(&detached), 0, "detached: forgotten");
}
