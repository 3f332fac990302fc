//! `heplink convert` end to end: a real Janus capture → pcap → our strict decoder.

use std::process::Command;

use heplink::capture::{read_capture, CaptureEvent};
use heplink::proto::{decode, Mode, ProtoType};
use serde_json::Value;

#[test]
fn videoroom_capture_converts_to_one_valid_packet_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("vr.pcap");
    let input = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/janus/videoroom-2pub-2sub-webrtc.jsonl"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_heplink"))
        .args(["convert", input, "--qos", "off", "--summary", "-o"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(
        summary.starts_with("janus-fixtures:core:2026-11-24T03  packets=2\n"),
        "{summary}"
    );
    assert!(summary.contains("janus-fixtures:videoroom:4242  packets=206\n    rooms: videoroom:4242\n    participants: 3957083503320980 (pubB), 5725960458842129 (pubA)\n"), "{summary}");
    assert!(
        summary.contains("janus-fixtures:transport:http:2026-11-24T03  packets=98\n"),
        "{summary}"
    );

    let mut n = 0;
    let mut verdicts = 0;
    let mut last_ts = 0;
    read_capture(std::fs::File::open(&pcap).unwrap(), &mut |ev| {
        let CaptureEvent::Packet { bytes, origin } = ev else {
            panic!("stream error")
        };
        let p = decode(bytes, Mode::Strict).expect("every packet passes heplify-server's rules");
        assert_eq!(p.proto_type, Some(ProtoType::LOG));
        assert_eq!(p.capture_id, Some(2001));
        assert_eq!(p.node_name, Some(&b"janus-fixtures"[..]));
        let cid = std::str::from_utf8(p.correlation_id.unwrap()).unwrap();
        let payload: Value =
            serde_json::from_slice(heplink::map::log_json(p.payload.unwrap())).unwrap();
        assert_eq!(payload["heplink"]["cid"], cid);
        if payload.get("summary").is_some() || payload.get("room_summary").is_some() {
            // A verdict: at the time of the event that ended its PeerConnection.
            verdicts += 1;
            return;
        }
        // The original event is nested unchanged, and the HEP time is its timestamp.
        let ts = payload["event"]["timestamp"].as_u64().unwrap();
        assert_eq!(p.timestamp_micros(), Some(ts));
        last_ts = last_ts.max(ts);
        if cid.ends_with(":videoroom:4242") {
            assert_eq!(payload["heplink"]["group"], "videoroom");
            assert_eq!(payload["heplink"]["room"], 4242);
        }
        // Addresses: one family per packet (checked by the decoder's source, the builder).
        assert_eq!(p.src_ip.unwrap().is_ipv4(), p.dst_ip.unwrap().is_ipv4());
        assert!(matches!(origin, heplink::capture::Origin::Udp { dst, .. } if dst.port() == 9060));
        n += 1;
    })
    .unwrap();
    assert_eq!(n, 300, "one packet per event");
    assert_eq!(verdicts, 6, "five PeerConnections and the room");
}

#[test]
fn real_addresses_come_from_ice_and_the_janus_side() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("sip.pcap");
    let input = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/janus/sip-call-simple.jsonl"
    );
    let st = Command::new(env!("CARGO_BIN_EXE_heplink"))
        .args(["convert", input, "-o"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(st.status.success());
    let mut sip = Vec::new();
    let mut pairs = std::collections::BTreeSet::new();
    read_capture(std::fs::File::open(&pcap).unwrap(), &mut |ev| {
        let CaptureEvent::Packet { bytes, .. } = ev else {
            panic!()
        };
        let p = decode(bytes, Mode::Strict).unwrap();
        let cid = String::from_utf8(p.correlation_id.unwrap().to_vec()).unwrap();
        let src = format!("{}:{}", p.src_ip.unwrap(), p.src_port.unwrap());
        let dst = format!("{}:{}", p.dst_ip.unwrap(), p.dst_port.unwrap());
        if p.proto_type == Some(ProtoType::SIP) {
            let first = std::str::from_utf8(p.payload.unwrap())
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .to_string();
            sip.push((cid, src, dst, first));
        } else if cid == "E3v9o7TaUn98fjRVB30rjbJ" {
            pairs.insert((src, dst));
        }
    })
    .unwrap();
    assert_eq!(sip.len(), 12, "6 sip-in + 6 sip-out as SIP packets");
    // The INVITE goes from Janus's SIP stack to the UAS, with the call's Call-ID.
    let invite = &sip[0];
    assert_eq!(invite.0, "Pd1uWiPpZq7yyN4TZjvDs0i");
    assert!(
        invite.3.starts_with("INVITE sip:frontdesk@127.0.0.42:5070"),
        "{invite:?}"
    );
    assert!(invite.1.starts_with("127.0.0.41:"), "{invite:?}");
    assert_eq!(invite.2, "127.0.0.42:5070");
    // Call 2's PeerConnection: the peer 127.0.0.44 (from ICE) and Janus 127.0.0.2.
    assert!(
        pairs
            .iter()
            .any(|(s, d)| s.starts_with("127.0.0.2:") && d.starts_with("127.0.0.44:")),
        "{pairs:?}"
    );
}
