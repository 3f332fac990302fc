//! Every LOG payload of every real capture starts with a short human label that Homer's
//! 50-character preview shows whole, and stays JSON with the original event nested
//! unchanged and the correlation facts kept.

mod common;

use heplink::proto::{decode, Mode, ProtoType};

#[test]
fn every_event_of_every_fixture_has_a_label_within_the_first_50_bytes() {
    let mut labels = std::collections::BTreeSet::new();
    let mut n = 0;
    for scenario in common::CAPTURES {
        let bodies = common::fixture_bodies(scenario);
        let events = common::fixture_events(scenario);
        let mut lines = bodies.into_iter().map(Ok);
        let c =
            heplink::capture::jsonl::convert(&mut lines, Default::default(), Default::default())
                .unwrap();
        let mut originals: Vec<serde_json::Value> = events.clone();
        for (_, bytes) in &c.packets {
            let p = decode(bytes, Mode::Strict).unwrap();
            if p.proto_type != Some(ProtoType::LOG) {
                continue;
            }
            let payload = p.payload.unwrap();
            assert!(payload.starts_with(b"{\"label\":\""), "{scenario}");
            let v: serde_json::Value =
                serde_json::from_slice(payload).expect("the payload is JSON");
            let label = v["label"].as_str().unwrap();
            assert!(!label.is_empty() && label.len() <= 38, "{label:?}");
            // The label, quotes included, ends within Homer's 50-character preview.
            let end = 10 + serde_json::to_string(label).unwrap().len() - 1;
            assert!(end <= 50, "{label:?} ends at byte {end}");
            assert!(
                !label.starts_with("event type"),
                "an unknown event in a fixture: {label}"
            );
            // The facts and the original event are kept.
            assert!(v["heplink"]["cid"].is_string());
            let pos = originals
                .iter()
                .position(|o| *o == v["event"])
                .unwrap_or_else(|| {
                    panic!(
                        "{scenario}: the event is not nested unchanged: {}",
                        v["event"]
                    )
                });
            originals.swap_remove(pos);
            labels.insert(label.to_string());
            n += 1;
        }
    }
    assert!(n > 600, "{n} LOG packets");
    // The labels say what happened, e.g.:
    for want in [
        "joined pubA",
        "remote offer",
        "local answer",
        "ice connected",
        "webrtcup",
        "hangup",
        "session created",
        "attached videoroom",
        "media stats audio",
        "echotest event",
    ] {
        assert!(labels.contains(want), "no {want:?} among {labels:?}");
    }
}
