//! Events of newer Janus (1.2–1.4) parse and map without loss (#13 item 5): the periodic
//! core status update, media stats with `rtt-values`, combined media stats (an array),
//! VideoRoom `rtp_forward` / `stop_rtp_forward`, and SIP DTMF. Each becomes one LOG row
//! with its label, the event nested unchanged, in the right flow.

mod common;

use bytes::Bytes;
use heplink::map::MapConfig;
use heplink::pipeline::Pipeline;
use heplink::proto::ProtoType;
use serde_json::{json, Value};

const T: u64 = 1_795_000_000_000_000;

/// (proto type, cid, payload) of every packet the events give, in order.
fn run(events: &[Value]) -> Vec<(ProtoType, String, Vec<u8>)> {
    let mut p = Pipeline::new(Default::default(), MapConfig::default()).event_time();
    let mut out = Vec::new();
    let mut sink = |o: heplink::pipeline::Output<'_>| {
        let b = o.packet;
        let d = heplink::proto::decode(&b, heplink::proto::Mode::Strict).unwrap();
        out.push((
            d.proto_type.unwrap(),
            String::from_utf8(d.correlation_id.unwrap().to_vec()).unwrap(),
            d.payload.unwrap().to_vec(),
        ));
    };
    for e in events {
        let rejected = p
            .push_body(&Bytes::from(e.to_string()), 0, &mut sink)
            .rejected;
        assert!(rejected.is_empty(), "{rejected:?}");
    }
    let now = p.now();
    p.flush(now, &mut sink);
    out
}

/// The LOG rows: (cid, label, the nested event).
fn rows(packets: &[(ProtoType, String, Vec<u8>)]) -> Vec<(String, String, Value)> {
    packets
        .iter()
        .filter(|(t, _, _)| *t == ProtoType::LOG)
        .map(|(_, cid, p)| {
            let v: Value = serde_json::from_slice(heplink::map::log_json(p)).unwrap();
            (
                cid.clone(),
                v["label"].as_str().unwrap().to_string(),
                v["event"].clone(),
            )
        })
        .collect()
}

#[test]
fn the_periodic_core_status_update() {
    let e = json!({"emitter":"j","type":256,"subtype":1,"timestamp":T,
        "event":{"status":"update","info":{"sessions":3,"handles":7,"peerconnections":6,"stats-period":1}}});
    let r = rows(&run(std::slice::from_ref(&e)));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, "core update");
    assert!(
        r[0].0.starts_with("j:core:"),
        "the hourly core flow: {}",
        r[0].0
    );
    assert_eq!(r[0].2, e, "nested unchanged");
}

fn attach(session: u64, handle: u64, plugin: &str, t: u64) -> Value {
    json!({"emitter":"j","type":2,"timestamp":t,"session_id":session,"handle_id":handle,
        "event":{"name":"attached","plugin":plugin}})
}

fn stats(media: &str, mid: &str, rtt_values: bool) -> Value {
    let mut s = json!({"mid":mid,"mindex":0,"media":media,"codec":"opus","base":48000,"rtt":30,
        "lost":2,"lost-by-remote":1,"jitter-local":3,"jitter-remote":5,"in-link-quality":100,
        "in-media-link-quality":100,"out-link-quality":100,"out-media-link-quality":100,
        "packets-received":500,"packets-sent":400,"bytes-received":50_000,"bytes-sent":40_000,
        "bytes-received-lastsec":4000,"bytes-sent-lastsec":4000,"nacks-received":0,"nacks-sent":0,
        "retransmissions-received":0});
    if rtt_values {
        s["rtt-values"] = json!({"ntp": 3_912_345_678u64, "lsr": 123_456, "dlsr": 6_554});
    }
    s
}

#[test]
fn media_stats_with_rtt_values_give_the_peer_s_lsr_and_dlsr() {
    let e = json!({"emitter":"j","type":32,"subtype":3,"timestamp":T + 10,"session_id":1,"handle_id":2,
        "event":stats("audio","0",true)});
    let packets = run(&[attach(1, 2, "janus.plugin.echotest", T), e.clone()]);
    let r = rows(&packets);
    assert_eq!(
        r.last().unwrap().2,
        e,
        "nested unchanged, rtt-values included"
    );
    let peer_report: Vec<Value> = packets
        .iter()
        .filter(|(t, _, _)| *t == ProtoType::RTCP_JSON)
        .map(|(_, _, p)| serde_json::from_slice::<Value>(heplink::map::log_json(p)).unwrap())
        .filter(|r| r["sender_information"]["packets"] == 500)
        .collect();
    assert_eq!(peer_report.len(), 1);
    assert_eq!(peer_report[0]["report_blocks"][0]["lsr"], 123_456);
    assert_eq!(peer_report[0]["report_blocks"][0]["dlsr"], 6_554);
}

#[test]
fn combined_media_stats_are_one_row_and_reports_for_each_medium() {
    let e = json!({"emitter":"j","type":32,"subtype":3,"timestamp":T + 10,"session_id":1,"handle_id":2,
        "event":[stats("audio","0",false), stats("video","1",false)]});
    let packets = run(&[attach(1, 2, "janus.plugin.echotest", T), e.clone()]);
    let r = rows(&packets);
    assert_eq!(r.last().unwrap().2, e);
    assert!(
        r.last().unwrap().1.starts_with("media stats"),
        "{}",
        r.last().unwrap().1
    );
    let rtcp = packets
        .iter()
        .filter(|(t, _, _)| *t == ProtoType::RTCP_JSON)
        .count();
    let rtp = packets
        .iter()
        .filter(|(t, _, _)| *t == ProtoType::MOS_FULL)
        .count();
    assert_eq!(
        (rtcp, rtp),
        (4, 2),
        "both ways for audio and video; MOS for audio"
    );
}

#[test]
fn rtp_forward_events_go_to_their_room() {
    let joined = json!({"emitter":"j","type":64,"timestamp":T + 1,"session_id":1,"handle_id":2,
        "event":{"plugin":"janus.plugin.videoroom","data":{"event":"joined","room":1234,"id":77,"private_id":5,"display":"alice"}}});
    let fwd = json!({"emitter":"j","type":64,"timestamp":T + 2,
        "event":{"plugin":"janus.plugin.videoroom","data":{"event":"rtp_forward","room":1234,"publisher_id":77,
            "media":"audio","stream_id":1,"host":"10.0.0.9","port":5002,"codec":"opus"}}});
    let stop = json!({"emitter":"j","type":64,"timestamp":T + 3,
        "event":{"plugin":"janus.plugin.videoroom","data":{"event":"stop_rtp_forward","room":1234,"publisher_id":77,"stream_id":1}}});
    let r = rows(&run(&[
        attach(1, 2, "janus.plugin.videoroom", T),
        joined,
        fwd.clone(),
        stop.clone(),
    ]));
    let of = |e: &Value| r.iter().find(|x| &x.2 == e).expect("its row").clone();
    for (e, label) in [(&fwd, "rtp_forward"), (&stop, "stop_rtp_forward")] {
        let (cid, l, _) = of(e);
        assert_eq!(cid, "j:videoroom:1234");
        assert!(l.starts_with(label), "{l}");
    }
}

#[test]
fn sip_dtmf_goes_to_its_call() {
    let call = "a84b4c76e66710@pc33.example.com";
    let calling = json!({"emitter":"j","type":64,"timestamp":T + 1,"session_id":1,"handle_id":2,
        "event":{"plugin":"janus.plugin.sip","data":{"event":"calling","call-id":call}}});
    let dtmf = json!({"emitter":"j","type":64,"timestamp":T + 2,"session_id":1,"handle_id":2,
        "event":{"plugin":"janus.plugin.sip","data":{"event":"dtmf","call-id":call,"signal":"5","duration":160}}});
    let r = rows(&run(&[
        attach(1, 2, "janus.plugin.sip", T),
        calling,
        dtmf.clone(),
    ]));
    let (cid, label, _) = r.iter().find(|x| x.2 == dtmf).expect("its row").clone();
    assert_eq!(cid, call, "the SIP call's flow");
    assert!(label.starts_with("dtmf"), "{label}");
}

/// Janus 1.4.1 built against sofia-sip 1.13 reports the SIP messages it sends with bare LF
/// line ends: each is sent as SIP is written (CRLF, a blank line, a true
/// Content-Length), between the addresses its headers name, never a made-up `240.x`.
#[test]
fn janus_1_4_sip_out_is_sent_as_sip_between_real_addresses() {
    let mut lines = common::fixture_bodies("1.4.1/sip-call-simple")
        .into_iter()
        .map(Ok);
    let c = heplink::capture::jsonl::convert(&mut lines, Default::default(), Default::default())
        .unwrap();
    let mut sip = 0;
    let mut janus_sides = std::collections::BTreeSet::new();
    for (_, bytes) in &c.packets {
        let p = heplink::proto::decode(bytes, heplink::proto::Mode::Strict).unwrap();
        if p.proto_type != Some(heplink::proto::ProtoType::SIP) {
            continue;
        }
        sip += 1;
        let text = std::str::from_utf8(p.payload.unwrap()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("a SIP eof (blank line)");
        assert!(
            !head.replace("\r\n", "").contains('\n'),
            "bare LF in {head}"
        );
        let length = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map(|v| v.parse::<usize>().unwrap());
        assert_eq!(length.unwrap_or(0), body.len(), "{head}");
        for ip in [p.src_ip.unwrap(), p.dst_ip.unwrap()] {
            assert!(!ip.to_string().starts_with("240."), "{ip} for {head}");
        }
        janus_sides.insert((p.src_ip.unwrap(), p.src_port.unwrap()));
        janus_sides.insert((p.dst_ip.unwrap(), p.dst_port.unwrap()));
    }
    assert_eq!(sip, 12, "every SIP message of both calls");
    // Two columns: Janus's SIP stack (one address for all it sent and received) and the
    // far end.
    let want: std::collections::BTreeSet<(std::net::IpAddr, u16)> = [
        ("127.0.0.41".parse().unwrap(), 49472),
        ("127.0.0.42".parse().unwrap(), 5070),
    ]
    .into();
    assert_eq!(janus_sides, want);
}
