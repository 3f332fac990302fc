//! Correlation of the real Janus captures in `fixtures/janus/`: the correlation id(s) of
//! every event, in input order, against golden files reviewed by hand
//! (`fixtures/janus/<scenario>.cids.tsv`; `HEPLINK_REGEN_FIXTURES=1` rewrites them), and
//! the rules of the VideoRoom scenario asserted directly.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use heplink::correlate;
use heplink::janus::event::{Body, Event};
use heplink::janus::split_events;
use heplink::map::MapConfig;
use heplink::pipeline::Pipeline;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/janus")
}

/// Every event of a capture with the correlation ids it was sent with.
struct Run {
    events: Vec<Event>,
    cids: Vec<Vec<String>>,
    packets: usize,
}

fn run(scenario: &str, cfg: correlate::Config) -> Run {
    let text = std::fs::read_to_string(dir().join(format!("{scenario}.jsonl"))).unwrap();
    // Event time is the clock, as in `convert`. One packet per event: the QoS reports
    // media stats add have their own tests (`tests/qos.rs`).
    let map = MapConfig {
        qos: heplink::map::qos::QosReports::Off,
        ..MapConfig::default()
    };
    let mut p = Pipeline::new(cfg, map).event_time();
    let mut order: HashMap<usize, usize> = HashMap::new();
    let mut events: Vec<Event> = Vec::new();
    let mut outputs: Vec<(Bytes, String, bool)> = Vec::new();
    let mut parser = heplink::janus::EventParser::new();
    for line in text.lines() {
        let body = Bytes::from(line.to_string());
        for piece in split_events(&body) {
            let piece = piece.unwrap();
            order.insert(piece.as_ptr() as usize, events.len());
            events.push(parser.parse(piece).unwrap());
        }
        let rejected = p
            .push_body(&body, 0, &mut |o| {
                if o.made != heplink::pipeline::Made::Event {
                    return;
                }
                outputs.push((
                    o.correlated.event.raw.clone(),
                    o.correlated.cid.to_string(),
                    heplink::proto::decode(&o.packet, heplink::proto::Mode::Strict).is_ok(),
                ))
            })
            .rejected;
        assert!(rejected.is_empty(), "{rejected:?}");
    }
    let now = p.now();
    p.flush(now, &mut |o| {
        if o.made != heplink::pipeline::Made::Event {
            return;
        }
        outputs.push((
            o.correlated.event.raw.clone(),
            o.correlated.cid.to_string(),
            heplink::proto::decode(&o.packet, heplink::proto::Mode::Strict).is_ok(),
        ))
    });
    assert_eq!(p.stats().unencodable, 0, "every packet encodes");
    let mut cids = vec![Vec::new(); events.len()];
    for (raw, cid, ok) in &outputs {
        assert!(ok, "{cid}: packet not encodable");
        // The event's own bytes, or equal ones for an event the correlator kept (held, or
        // kept for late groups: it copies those, so as not to keep their body).
        let i = order
            .get(&(raw.as_ptr() as usize))
            .copied()
            .or_else(|| events.iter().position(|e| e.raw == *raw))
            .expect("an event of the capture");
        cids[i].push(cid.clone());
    }
    Run {
        events,
        cids,
        packets: outputs.len(),
    }
}

fn describe(e: &Event) -> String {
    let kind = match e.subtype {
        Some(s) => format!("{}/{s}", e.kind),
        None => e.kind.to_string(),
    };
    let what = match &e.body {
        Body::Session { name, .. } | Body::Handle { name, .. } => name.to_string(),
        Body::Jsep { remote, sdp_type } => {
            format!("{} {sdp_type}", if *remote { "remote" } else { "local" })
        }
        Body::Plugin(p) => p.name.as_deref().unwrap_or("-").to_string(),
        Body::Transport { .. } => "transport".into(),
        Body::WebRtc(_) | Body::Other => String::new(),
    };
    let id = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    format!("{kind}\t{}\t{}\t{what}", id(e.session_id), id(e.handle_id))
}

#[test]
fn every_event_gets_the_golden_correlation_id() {
    for scenario in common::ALL_CAPTURES.iter() {
        let r = run(scenario, correlate::Config::default());
        let mut got = String::from("# index\ttype\tsession\thandle\tevent\tcorrelation ids\n");
        for (i, (e, c)) in r.events.iter().zip(&r.cids).enumerate() {
            got.push_str(&format!("{i}\t{}\t{}\n", describe(e), c.join(" ")));
        }
        let path = dir().join(format!("{scenario}.cids.tsv"));
        if std::env::var_os("HEPLINK_REGEN_FIXTURES").is_some() {
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap();
        for (g, w) in got.lines().zip(want.lines()) {
            assert_eq!(g, w, "{scenario}");
        }
        assert_eq!(got.lines().count(), want.lines().count(), "{scenario}");
    }
}

#[test]
fn videoroom_every_handle_event_and_idless_room_event_carries_the_room_id_nothing_else() {
    let r = run("videoroom-2pub-2sub-webrtc", correlate::Config::default());
    let room = "janus-fixtures:videoroom:4242";
    let handles: BTreeSet<u64> = r.events.iter().filter_map(|e| e.handle_id).collect();
    assert_eq!(handles.len(), 6);
    let sessions: BTreeSet<u64> = r.events.iter().filter_map(|e| e.session_id).collect();
    assert_eq!(sessions.len(), 4);
    for (e, cids) in r.events.iter().zip(&r.cids) {
        let of_room = e.handle_id.is_some()
            || e.session_id.is_some()
            || e.plugin().is_some_and(|p| p.room.is_some());
        if of_room {
            assert_eq!(cids, &vec![room.to_string()], "{}", describe(e));
        } else {
            assert_eq!(cids.len(), 1);
            assert_ne!(cids[0], room, "{}", describe(e));
        }
    }
    // One packet per event: nothing dropped, nothing doubled.
    assert_eq!(r.packets, r.events.len());
    assert_eq!(r.events.len(), 300);
}

#[test]
fn sip_handle_events_go_to_the_call_in_progress() {
    let r = run("sip-call-simple", correlate::Config::default());
    let (c1, c2) = ("Pd1uWiPpZq7yyN4TZjvDs0i", "E3v9o7TaUn98fjRVB30rjbJ");
    let mut call_of_offer = Vec::new();
    let mut hangup_conn = Vec::new();
    for (e, cids) in r.events.iter().zip(&r.cids) {
        if e.handle_id.is_some() {
            assert_eq!(cids.len(), 1);
            assert!(cids[0] == c1 || cids[0] == c2, "{} → {cids:?}", describe(e));
            if let Some(p) = e.plugin() {
                if let Some(call) = &p.call_id {
                    assert_eq!(&cids[0], &**call, "{}", describe(e));
                }
            }
            if matches!(e.body, Body::Jsep { remote: true, .. }) {
                call_of_offer.push(cids[0].clone());
            }
            if matches!(&e.body, Body::WebRtc(w) if w.hangup) {
                hangup_conn.push(cids[0].clone());
            }
        }
    }
    // Each call's set-up (its offer, before `calling`) and teardown (PeerConnection
    // hangup, after the plugin's `hangup`) belong to it.
    assert_eq!(call_of_offer, [c1, c2]);
    assert_eq!(hangup_conn, [c1, c2]);
}
