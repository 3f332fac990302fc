//! End to end with a real WebRTC peer: the real Janus (Debian's 1.1.2, then 1.4.1 built by
//! `.ci/build-janus`) runs its echotest
//! with an aiortc PeerConnection (Opus audio + VP8 video, real ICE, DTLS and SRTP), its
//! sample event handler posts to `heplink serve`, which sends HEP over UDP to
//! `heplink listen --jsonl`. Everything runs in a network namespace of its own (see
//! `tests/webrtc/run.sh`), so the fixed ports cannot clash and nothing leaves it.
//!
//! A second scenario runs a VideoRoom: two publishers, a viewer subscribed to both feeds
//! and one to a single feed (a session each, plus an admin session that creates and
//! destroys the room). A third calls a real `sipp` UAS through Janus's SIP plugin.
//!
//! The assertions are what an operator looks for in Homer after a call: every ICE, DTLS,
//! WebRTC-up and hangup event and the media statistics arrived, each once, as valid HEP
//! under the session's correlation id, with the media events addressed by the ICE
//! selected pair, and media counters that show RTP really flowed; in the VideoRoom, the
//! room's correlation id on every event of its sessions and handles and on nothing else.
//!
//! Needs `janus`, Janus 1.4.1, `iproute2`, `unshare` and a Python with aiortc (`.ci/run` creates it in
//! `target/webrtc-venv`; set `HEPLINK_WEBRTC_PYTHON` to use another one).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use common::janus::{on_each_version, JanusBin};
use serde_json::Value;

fn python() -> PathBuf {
    match std::env::var_os("HEPLINK_WEBRTC_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/webrtc-venv/bin/python"),
    }
}

/// Runs `body` on what [`run_scenario`] gives, once per Janus version.
fn on_each_janus(scenario: &str, body: impl Fn((Vec<Value>, Value, String))) {
    let py = python();
    let mut needs = vec![
        (
            "aiortc",
            py.exists(),
            "`python3 -m venv target/webrtc-venv && target/webrtc-venv/bin/pip install -r tests/webrtc/requirements.txt`",
        ),
        ("unshare", common::on_path("unshare"), "apt-get install util-linux"),
        ("ip", common::on_path("ip"), "apt-get install iproute2"),
    ];
    if scenario == "sip" {
        needs.push((
            "sipp",
            common::on_path("sipp"),
            "apt-get install sip-tester",
        ));
    }
    on_each_version(scenario, &needs, |jb| body(run_scenario(jb, scenario)));
}

/// Runs a scenario of `tests/webrtc/run.sh` on a Janus; returns the packets `listen`
/// decoded, the ids the peer script printed, and `listen`'s flow summary.
fn run_scenario(jb: &JanusBin, scenario: &str) -> (Vec<Value>, Value, String) {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/webrtc/run.sh");
    let mut cmd = Command::new("unshare");
    // Unprivileged, a user namespace maps us to root inside it, enough for its own netns.
    if !is_root() {
        cmd.arg("-r");
    }
    let out = cmd
        .env("JANUS_BIN", &jb.bin)
        .env("JANUS_LIBDIR", &jb.libdir)
        .arg("--net")
        .arg("bash")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_heplink"))
        .arg(&py)
        .arg(dir.path())
        .arg(scenario)
        .output()
        .expect("unshare runs");
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    assert!(
        out.status.success(),
        "scenario failed: {}\nstderr: {}\npeer: {}\nserve: {}\njanus: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        read("peer.log"),
        read("serve.log"),
        read("janus.log"),
    );
    let peer: Value = serde_json::from_str(read("peer.json").trim()).expect("peer ids");
    let packets = read("hep.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("listen writes JSON lines"))
        .collect();
    (packets, peer, read("flows.txt"))
}

/// The Janus event a packet carries, after checking it is valid HEP as heplink sends it.
fn event_of(p: &Value) -> Value {
    assert_eq!(p["version"], 3);
    assert_eq!(p["proto_type"], 100, "Janus events are sent as LOG");
    let mut body: Value = serde_json::from_slice(heplink::map::log_json(
        p["payload"].as_str().unwrap().as_bytes(),
    ))
    .unwrap();
    assert_eq!(
        body["heplink"]["cid"], p["correlation_id"],
        "payload stamp and HEP chunk 17 agree"
    );
    body["event"].take()
}

/// An event's type, subtype (0 when absent) and [`detail`].
fn kind_of(ev: &Value) -> (u64, u64, String) {
    let (t, st) = (
        ev["type"].as_u64().unwrap(),
        ev["subtype"].as_u64().unwrap_or(0),
    );
    (t, st, detail(t, st, &ev["event"]))
}

/// What tells events of one kind apart: ICE or DTLS state, connection, medium, or the
/// plugin's event name.
fn detail(t: u64, st: u64, inner: &Value) -> String {
    let field = match (t, st) {
        (16, 1) => &inner["ice"],
        (16, 5) => &inner["dtls"],
        (16, 6) => &inner["connection"],
        (32, _) => &inner["media"],
        (64, _) => &inner["data"]["event"],
        _ => return String::new(),
    };
    field.as_str().unwrap_or("").to_string()
}

/// Whether the effective user is root (from /proc, no extra crate).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn aiortc_echotest_call_reaches_hep_under_one_session_id() {
    on_each_janus("echotest", echotest);
}

fn echotest((packets, peer, flows): (Vec<Value>, Value, String)) {
    let sid = peer["session_id"].as_u64().unwrap();
    let hid = peer["handle_id"].as_u64().unwrap();
    assert!(
        flows.contains(" 0 rejected"),
        "listen rejected packets: {flows}"
    );
    let want_cid = format!("heplink-webrtc:session:{sid}");

    // (type, subtype, detail) -> count, for the peer's handle; plus the pair's addresses.
    let mut seen: BTreeMap<(u64, u64, String), usize> = BTreeMap::new();
    let mut pair: Option<(String, u64, String, u64)> = None;
    let mut audio_rx = 0u64;
    let mut video_rx = 0u64;
    let mut echoed = 0u64;
    let mut timestamps = Vec::new();
    let (qos, packets): (Vec<&Value>, Vec<&Value>) = packets
        .iter()
        .partition(|p| matches!(p["proto_type"].as_u64(), Some(5 | 34)));
    for p in packets {
        let ev = &event_of(p);
        if ev["session_id"].as_u64() == Some(sid) {
            assert_eq!(p["correlation_id"], want_cid.as_str(), "{ev}");
        }
        if ev["handle_id"].as_u64() != Some(hid) {
            continue;
        }
        let (t, st, detail) = kind_of(ev);
        let inner = &ev["event"];
        *seen.entry((t, st, detail)).or_default() += 1;
        if (t, st) == (16, 4) {
            let c = &inner["candidates"];
            pair = Some((
                c["local"]["address"].as_str().unwrap().to_string(),
                c["local"]["port"].as_u64().unwrap(),
                c["remote"]["address"].as_str().unwrap().to_string(),
                c["remote"]["port"].as_u64().unwrap(),
            ));
        }
        if (t, st) == (32, 3) {
            let rx = inner["packets-received"].as_u64().unwrap();
            echoed = echoed.max(inner["packets-sent"].as_u64().unwrap());
            match inner["media"].as_str() {
                Some("audio") => audio_rx = audio_rx.max(rx),
                Some("video") => video_rx = video_rx.max(rx),
                _ => {}
            }
        }
        // Once the pair is known, media-plane events are addressed by it.
        if let (Some((la, lp, ra, rp)), true) = (&pair, t == 32 || (t == 16 && st != 2 && st != 3))
        {
            assert_eq!(
                (
                    p["src_ip"].as_str().unwrap(),
                    p["src_port"].as_u64().unwrap()
                ),
                (la.as_str(), *lp),
                "{ev}"
            );
            assert_eq!(
                (
                    p["dst_ip"].as_str().unwrap(),
                    p["dst_port"].as_u64().unwrap()
                ),
                (ra.as_str(), *rp),
                "{ev}"
            );
        }
        timestamps.push(ev["timestamp"].as_u64().unwrap());
    }
    let count = |t: u64, st: u64, d: &str| seen.get(&(t, st, d.to_string())).copied().unwrap_or(0);
    let any = |t: u64, st: u64| {
        seen.iter()
            .filter(|((a, b, _), _)| *a == t && *b == st)
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    assert_eq!(count(2, 0, ""), 2, "attached + detached: {seen:?}");
    assert_eq!(count(8, 0, ""), 2, "remote offer + local answer: {seen:?}");
    for state in ["gathering", "connecting", "connected", "ready"] {
        assert_eq!(count(16, 1, state), 1, "ICE {state}: {seen:?}");
    }
    assert!(any(16, 2) >= 1, "local candidates: {seen:?}");
    assert!(any(16, 3) >= 1, "remote candidates: {seen:?}");
    assert_eq!(any(16, 4), 1, "selected pair: {seen:?}");
    assert_eq!(count(16, 5, "connected"), 1, "DTLS connected: {seen:?}");
    assert_eq!(count(16, 6, "webrtcup"), 1, "{seen:?}");
    assert_eq!(count(16, 6, "hangup"), 1, "{seen:?}");
    assert!(
        count(32, 3, "audio") >= 2 && count(32, 3, "video") >= 2,
        "{seen:?}"
    );
    let (la, _, ra, _) = pair.expect("a selected pair");
    assert_eq!((la.as_str(), ra.as_str()), ("127.0.0.2", "127.0.0.3"));
    assert!(audio_rx > 50, "Opus RTP reached Janus: {audio_rx} packets");
    assert!(video_rx > 10, "VP8 RTP reached Janus: {video_rx} packets");
    assert!(echoed > 50, "the echotest sent RTP back: {echoed} packets");
    // WebRTC QoS from the real media stats: RTCP JSON (type 5) both ways between the
    // selected pair, in the call's flow, charted by Homer only with sender information.
    let (rtcp, rtpagent): (Vec<&Value>, Vec<&Value>) =
        qos.iter().partition(|p| p["proto_type"] == 5);
    let stats = count(32, 3, "audio") + count(32, 3, "video");
    assert!(
        rtcp.len() >= stats,
        "{} RTCP reports for {stats} samples",
        rtcp.len()
    );
    let mut ways = std::collections::BTreeSet::new();
    for p in &rtcp {
        assert_eq!(p["correlation_id"], want_cid.as_str());
        let r: Value = serde_json::from_slice(heplink::map::log_json(
            p["payload"].as_str().unwrap().as_bytes(),
        ))
        .unwrap();
        assert_eq!(r["type"], 200, "{r}");
        assert!(
            r["sender_information"]["packets"].as_u64().unwrap() > 0,
            "{r}"
        );
        assert!(
            r["sender_information"]["octets"].as_u64().unwrap() > 0,
            "{r}"
        );
        assert!(
            r["ssrc"].as_u64().unwrap() > 0,
            "the SSRC from the SDP: {r}"
        );
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
            assert!(b[k].is_u64(), "{k} in {r}");
        }
        ways.insert((
            p["src_ip"].as_str().unwrap().to_string(),
            p["dst_ip"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(
        ways,
        [("127.0.0.2", "127.0.0.3"), ("127.0.0.3", "127.0.0.2")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .into(),
        "Janus -> peer and peer -> Janus"
    );
    assert!(!rtpagent.is_empty(), "audio rtpagent reports");
    for p in &rtpagent {
        let r: Value = serde_json::from_slice(heplink::map::log_json(
            p["payload"].as_str().unwrap().as_bytes(),
        ))
        .unwrap();
        let mos = r["MOS"].as_f64().unwrap();
        assert!((1.0..=4.5).contains(&mos), "{r}");
        assert_eq!(r["CODEC_NAME"], "opus", "audio only: {r}");
        assert_eq!(r["CORRELATION_ID"], want_cid.as_str());
    }
    // HTTP delivery keeps Janus's order within one handle. Janus stamps an event on the
    // thread that makes it (ICE loop, plugin, core) before queueing it for the handler, so
    // neighbours in its queue may carry times a little out of order (1.4 ms seen in one
    // CI run); a reordering by the agent would move events by far more than that.
    assert!(
        timestamps.windows(2).all(|w| w[0] <= w[1] + 5_000),
        "{timestamps:?}"
    );
}

#[test]
fn aiortc_videoroom_publishers_and_subscriber_share_the_room_id() {
    on_each_janus("videoroom", videoroom);
}

fn videoroom((packets, peer, flows): (Vec<Value>, Value, String)) {
    assert!(
        flows.contains(" 0 rejected"),
        "listen rejected packets: {flows}"
    );
    assert!(
        flows.contains("pubA (") && flows.contains("pubB ("),
        "publishers named in the flow summary: {flows}"
    );
    let room = peer["room"].as_u64().unwrap();
    let room_cid = format!("heplink-webrtc:videoroom:{room}");
    let ids = |who: &str| {
        (
            peer[who][0].as_u64().unwrap(),
            peer[who][1].as_u64().unwrap(),
        )
    };
    let who = ["admin", "pubA", "pubB", "subC", "subD"];
    let sessions: Vec<u64> = who.iter().map(|w| ids(w).0).collect();
    let name_of = |hid: Option<u64>| who.iter().find(|w| Some(ids(w).1) == hid).copied();

    // (participant, type, subtype, detail) -> count.
    let mut seen: BTreeMap<(&str, u64, u64, String), usize> = BTreeMap::new();
    let mut in_room = 0;
    let mut sent_to = BTreeMap::new();
    let mut distinct = std::collections::HashSet::new();
    let mut received_from = BTreeMap::new();
    let events = packets
        .iter()
        .filter(|p| !matches!(p["proto_type"].as_u64(), Some(5 | 34)));
    let mut verdicts = Vec::new();
    for p in events {
        let ev = event_of(p);
        let cid = p["correlation_id"].as_str().unwrap();
        if ev.is_null() {
            // Not a Janus event: heplink's verdict on a PeerConnection (`summary`) or on the
            // room once it is destroyed (`room_summary`), under the room's id.
            let body: Value = serde_json::from_slice(heplink::map::log_json(
                p["payload"].as_str().unwrap().as_bytes(),
            ))
            .unwrap();
            assert_eq!(cid, room_cid, "{body}");
            let s = if body["summary"].is_object() {
                assert!(
                    sessions.contains(&body["summary"]["session_id"].as_u64().unwrap()),
                    "{body}"
                );
                &body["summary"]
            } else {
                &body["room_summary"]
            };
            assert_eq!(s["room"], room, "{body}");
            verdicts.push(body.clone());
            continue;
        }
        assert!(distinct.insert(ev.to_string()), "sent twice: {ev}");
        let ours = ev["session_id"]
            .as_u64()
            .is_some_and(|s| sessions.contains(&s))
            || ev["event"]["data"]["room"].as_u64() == Some(room);
        // The room's id on every event of its sessions, handles and id-less plugin events,
        // and on nothing else (core and transport events keep their own).
        assert_eq!(cid == room_cid, ours, "{cid}: {ev}");
        in_room += usize::from(ours);
        let Some(name) = name_of(ev["handle_id"].as_u64()) else {
            continue;
        };
        let (t, st, detail) = kind_of(&ev);
        let inner = &ev["event"];
        if (t, st) == (32, 3) {
            if name.starts_with("sub") {
                let tx = inner["packets-sent"].as_u64().unwrap();
                let e = sent_to.entry(name).or_insert(0u64);
                *e = (*e).max(tx);
            } else {
                let rx = inner["packets-received"].as_u64().unwrap();
                let e = received_from.entry(name).or_insert(0u64);
                *e = (*e).max(rx);
            }
        }
        *seen.entry((name, t, st, detail)).or_default() += 1;
    }
    let count = |w: &str, t: u64, st: u64, d: &str| {
        seen.get(&(w, t, st, d.to_string())).copied().unwrap_or(0)
    };
    assert!(in_room > 100, "{in_room} packets in the room");
    let pcs: Vec<&Value> = verdicts
        .iter()
        .map(|b| &b["summary"])
        .filter(|s| s.is_object())
        .collect();
    assert_eq!(pcs.len(), 4, "a verdict per PeerConnection: {verdicts:?}");
    // Media flowed (checked below), though a loaded machine may call a call degraded.
    assert!(
        pcs.iter()
            .all(|s| s["outcome"] == "ok" || s["outcome"] == "degraded"),
        "{verdicts:?}"
    );
    assert_eq!(verdicts.len(), 5, "and one for the room: {verdicts:?}");
    for w in ["pubA", "pubB", "subC", "subD"] {
        assert_eq!(count(w, 2, 0, ""), 2, "{w} attached + detached: {seen:?}");
        // A publisher that updates its stream (seen under load: pubB `updated`) makes
        // Janus renegotiate with its subscribers: more JSEP for them, never fewer.
        let renegotiated = w.starts_with("sub")
            && (count("pubA", 64, 0, "updated") + count("pubB", 64, 0, "updated")) > 0;
        if renegotiated {
            assert!(count(w, 8, 0, "") >= 2, "{w} offer + answer: {seen:?}");
        } else {
            assert_eq!(count(w, 8, 0, ""), 2, "{w} offer + answer: {seen:?}");
        }
        assert_eq!(count(w, 16, 4, ""), 1, "{w} selected pair: {seen:?}");
        assert_eq!(count(w, 16, 5, "connected"), 1, "{w} DTLS: {seen:?}");
        assert_eq!(count(w, 16, 6, "webrtcup"), 1, "{w}: {seen:?}");
        assert_eq!(count(w, 16, 6, "hangup"), 1, "{w}: {seen:?}");
        assert!(
            count(w, 32, 3, "audio") >= 2 && count(w, 32, 3, "video") >= 2,
            "{w} media stats: {seen:?}"
        );
    }
    for w in ["pubA", "pubB"] {
        assert_eq!(count(w, 64, 0, "joined"), 1, "{w}: {seen:?}");
        assert_eq!(count(w, 64, 0, "published"), 1, "{w}: {seen:?}");
        assert!(
            received_from[w] > 50,
            "{w}'s RTP reached Janus: {received_from:?}"
        );
    }
    for w in ["subC", "subD"] {
        assert_eq!(count(w, 64, 0, "subscribing"), 1, "{w}: {seen:?}");
        assert_eq!(count(w, 64, 0, "subscribed"), 1, "{w}: {seen:?}");
        assert!(sent_to[w] > 50, "Janus forwarded feeds to {w}: {sent_to:?}");
    }
    assert_eq!(count("admin", 64, 0, "created"), 1, "{seen:?}");
    assert_eq!(count("admin", 64, 0, "destroyed"), 1, "{seen:?}");
}

/// The SIP packets (HEP type 1) of a run: (src, dst, correlation id, first line).
fn sip_packets(packets: &[Value]) -> Vec<(String, String, String, String)> {
    packets
        .iter()
        .filter(|p| p["proto_type"] == 1)
        .map(|p| {
            let end = |ip: &str, port: &str| format!("{}:{}", p[ip].as_str().unwrap(), p[port]);
            (
                end("src_ip", "src_port"),
                end("dst_ip", "dst_port"),
                p["correlation_id"].as_str().unwrap().to_string(),
                p["payload"]
                    .as_str()
                    .unwrap()
                    .lines()
                    .next()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

/// A SIP call through Janus's SIP plugin: an aiortc peer registers as a guest and calls a
/// real `sipp` UAS (`tests/webrtc/sipp/uas.xml`, RTP echoed), which answers; the peer
/// hangs up. Janus reports each SIP message (`sip-in`, and `sip-out` in both versions),
/// which heplink sends as HEP SIP under the call's Call-ID, with the handle's events and
/// the call's QoS under the same id.
#[test]
fn aiortc_sip_call_through_janus_reaches_hep_under_the_call_id() {
    on_each_janus("sip", sip_call);
}

fn sip_call((packets, peer, flows): (Vec<Value>, Value, String)) {
    assert!(
        flows.contains(" 0 rejected"),
        "listen rejected packets: {flows}"
    );
    let call_id = peer["call_id"].as_str().expect("the peer's Call-ID");
    let hid = peer["handle_id"].as_u64().unwrap();
    let sip = sip_packets(&packets);
    let lines: Vec<&str> = sip.iter().map(|(_, _, _, l)| l.as_str()).collect();
    for (_, _, cid, line) in &sip {
        assert_eq!(cid, call_id, "{line}");
    }
    // Janus -> UAS: INVITE, ACK, BYE; UAS -> Janus: 180, 200 (INVITE), 200 (BYE).
    let starts = |w: &str| lines.iter().filter(|l| l.starts_with(w)).count();
    assert_eq!(
        starts("INVITE sip:frontdesk@127.0.0.5:5070 "),
        1,
        "{lines:?}"
    );
    assert_eq!(starts("ACK "), 1, "{lines:?}");
    assert_eq!(starts("BYE "), 1, "{lines:?}");
    assert_eq!(starts("SIP/2.0 180 "), 1, "{lines:?}");
    assert_eq!(starts("SIP/2.0 200 "), 2, "{lines:?}");
    // The handle's events while the call is up (the plugin's, the PeerConnection's) are
    // in the call; the call's media is too.
    let mut in_call = std::collections::BTreeSet::new();
    for p in packets.iter().filter(|p| p["proto_type"] == 100) {
        let ev = event_of(p);
        if ev["handle_id"].as_u64() != Some(hid) {
            continue;
        }
        let (t, st, detail) = kind_of(&ev);
        if ["calling", "accepted", "hangup"].contains(&detail.as_str())
            || (t, st) == (16, 4)
            || (t, st, detail.as_str()) == (16, 6, "webrtcup")
        {
            assert_eq!(p["correlation_id"], call_id, "{ev}");
            in_call.insert(format!("{t}/{st}/{detail}"));
        }
    }
    assert_eq!(
        in_call,
        [
            "16/4/",
            "16/6/hangup",
            "16/6/webrtcup",
            "64/0/accepted",
            "64/0/calling",
            "64/0/hangup"
        ]
        .map(String::from)
        .into(),
        "the call's events under its Call-ID"
    );
    let qos: Vec<&Value> = packets
        .iter()
        .filter(|p| matches!(p["proto_type"].as_u64(), Some(5 | 34)))
        .collect();
    assert!(!qos.is_empty(), "the call's QoS");
    assert!(
        qos.iter().all(|p| p["correlation_id"] == call_id),
        "QoS under the Call-ID"
    );
}

/// Each SIP message drawn between the addresses its dialog names (docs/homer.md: a request from
/// its top Via to its Request-URI, a response from its Contact, else the dialog's, to its
/// top Via): Janus's SIP stack 127.0.0.4, the UAS 127.0.0.5:5070, never a synthetic column.
#[test]
fn aiortc_sip_call_messages_between_the_dialogs_addresses() {
    on_each_janus("sip", |(packets, _, _)| {
        for (src, dst, _, line) in sip_packets(&packets) {
            // Janus's SIP stack sends every request of this call, the UAS every response.
            let (janus, uas) = if line.starts_with("SIP/2.0") {
                (&dst, &src)
            } else {
                (&src, &dst)
            };
            assert!(
                janus.starts_with("127.0.0.4:") && uas == "127.0.0.5:5070",
                "{line}: {src} -> {dst}"
            );
        }
    });
}
