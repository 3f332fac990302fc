//! Every LOG payload of every real capture starts with words: a short human label that
//! Homer's 50-character preview shows whole, with no JSON punctuation before it; the rest
//! stays JSON with the original event nested unchanged and the correlation facts kept.
//! Each PeerConnection's verdict is a LOG row of its own, words first too.

mod common;

use heplink::proto::{decode, Mode, ProtoType};

#[test]
fn every_event_of_every_fixture_has_words_first_within_the_first_50_characters() {
    let mut labels = std::collections::BTreeSet::new();
    let (mut n, mut summaries) = (0, 0);
    for scenario in common::ALL_CAPTURES.iter() {
        let bodies = common::fixture_bodies(scenario);
        let events = common::fixture_events(scenario);
        let mut lines = bodies.into_iter().map(Ok);
        let c =
            heplink::capture::jsonl::convert(&mut lines, Default::default(), Default::default())
                .unwrap();
        let originals: Vec<serde_json::Value> = events.clone();
        for (_, bytes) in &c.packets {
            let p = decode(bytes, Mode::Strict).unwrap();
            if p.proto_type != Some(ProtoType::LOG) {
                continue;
            }
            let payload = std::str::from_utf8(p.payload.unwrap()).unwrap();
            // Words, one line, then the JSON.
            let (words, json) = payload.split_once('\n').expect("a words line");
            assert!(!words.starts_with(['{', '"', '[']), "{scenario}: {words}");
            let v: serde_json::Value = serde_json::from_str(json).expect("the rest is JSON");
            assert_eq!(heplink::map::log_json(payload.as_bytes()), json.as_bytes());
            let label = v["label"].as_str().unwrap();
            assert_eq!(label, words, "the JSON keeps the label");
            assert!(
                !label.starts_with("event type"),
                "an unknown event in a fixture: {label}"
            );
            if v.get("summary").is_some() || v.get("room_summary").is_some() {
                // A verdict says its outcome within the preview; its details may run on.
                let preview: String = words.chars().take(50).collect();
                let outcome = [
                    "ok",
                    "degraded",
                    "no media",
                    "ICE failed",
                    "DTLS failed",
                    "ended:",
                ];
                assert!(
                    outcome.iter().any(|o| preview.contains(o)),
                    "{scenario}: {words}"
                );
                summaries += 1;
                continue;
            }
            assert!(
                words.chars().count() <= 50,
                "{words:?} is cut by the preview"
            );
            // The facts and the original event are kept.
            assert!(v["heplink"]["cid"].is_string());
            assert!(
                originals.contains(&v["event"]),
                "{scenario}: the event is not nested unchanged: {}",
                v["event"]
            );
            labels.insert(label.to_string());
            n += 1;
        }
    }
    assert!(n > 600, "{n} LOG packets");
    assert!(summaries >= 14, "{summaries} verdict rows");
    // The labels say what happened, e.g.:
    for want in [
        "joined pubA",
        "remote offer pubA ▲",
        "local answer pubA ▲",
        "ice connected pubA ▲",
        "webrtcup s1◂pubB",
        "hangup DTLS alert pubA ▲",
        "hangup Janus API s2◂pubA",
        "session created",
        "attached videoroom pubA ▲",
        "attached echotest echotest-web ●",
        "media stats audio pubA ▲",
        "echotest event",
    ] {
        assert!(
            labels.contains(want),
            "no {want:?} among {} labels",
            labels.len()
        );
    }
}
