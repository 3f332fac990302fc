use super::naming::sip_user;
use super::*;
use crate::correlate::{Config, Correlator};
use crate::janus::EventParser;

/// Every capture of `fixtures/janus/` (and its version folders), by name.
pub(crate) fn captures() -> Vec<(String, String)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/janus");
    let mut out = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(root)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".jsonl")
                && !name.ends_with(".raw.jsonl")
                && !name.ends_with(".wsevh.jsonl")
            {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// What a capture gave: summaries, names, the diagnoser, (handle, short name) per event.
type Diagnosed = (Vec<Summary>, Vec<NameChange>, Diagnoser, Vec<(u64, String)>);

/// A capture through the correlator and the diagnoser: the summaries and names.
pub(crate) fn diagnose(text: &str) -> Diagnosed {
    let mut parser = EventParser::new();
    let mut corr = Correlator::new(Config::default());
    let mut d = Diagnoser::default();
    let mut f = Findings::default();
    let mut labels = Vec::new();
    let mut buf = Vec::new();
    let mut now = 0;
    for line in text.lines() {
        for piece in crate::janus::split_events(&bytes::Bytes::from(line.to_string())) {
            let ev = parser.parse(piece.unwrap()).unwrap();
            now = now.max(ev.timestamp.unwrap_or(0));
            corr.push(ev, now, &mut buf);
        }
        for c in buf.drain(..) {
            d.event(&c, &mut f);
            if let (Some(h), Some(n)) = (c.event.handle_id, d.short_name(&c.event)) {
                labels.push((h, n.to_string()));
            }
        }
    }
    corr.flush(now, &mut buf);
    for c in buf.drain(..) {
        d.event(&c, &mut f);
    }
    (f.summaries, f.names, d, labels)
}

/// The PeerConnections of a capture: (handle, first JSEP or ICE event) per life.
fn peerconnections(text: &str) -> usize {
    let mut live = std::collections::HashSet::new();
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let evs = match v {
            serde_json::Value::Array(a) => a,
            v => vec![v],
        };
        for e in evs {
            let (t, h) = (e["type"].as_u64().unwrap_or(0), e["handle_id"].as_u64());
            let Some(h) = h else { continue };
            if (t == 8 || t == 16) && live.insert(h) {
                n += 1;
            }
            let hangup = t == 16 && e["event"]["connection"] == "hangup";
            let detached = t == 2 && e["event"]["name"] == "detached";
            if hangup || detached {
                live.remove(&h);
            }
        }
    }
    n
}

#[test]
fn one_verdict_per_peerconnection_of_every_capture_and_the_working_calls_are_ok() {
    for (name, text) in captures() {
        let (summaries, _, d, _) = diagnose(&text);
        let pcs: Vec<&Summary> = summaries.iter().filter(|s| !s.room).collect();
        assert_eq!(
            pcs.len(),
            peerconnections(&text),
            "{name}: one per PeerConnection"
        );
        let ended: u64 = d.stats().ended.iter().flatten().sum();
        assert_eq!(ended as usize, pcs.len(), "{name}: counted");
        if !name.contains("fail-") {
            for s in &pcs {
                assert!(
                    matches!(s.outcome, Outcome::Ok | Outcome::Degraded),
                    "{name}: {}",
                    s.words
                );
            }
        }
        for s in &summaries {
            // Words first: no JSON punctuation before them, and valid JSON after.
            assert!(!s.words.starts_with(['{', '"', '[']), "{name}: {}", s.words);
            let v: serde_json::Value = serde_json::from_str(&format!("{{{}}}", s.json)).unwrap();
            let key = if s.room { "room_summary" } else { "summary" };
            assert!(v[key].is_object(), "{name}: {}", s.json);
            if !s.room {
                assert!(v[key]["handle_id"].is_u64());
                assert!(v[key]["session_id"].is_u64(), "{name}: {}", s.json);
                assert_eq!(v[key]["outcome"], s.outcome.as_str());
            }
        }
    }
}

#[test]
fn the_videoroom_has_five_ok_peerconnections_and_one_room_summary() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/janus/videoroom-2pub-2sub-webrtc.jsonl"
    ))
    .unwrap();
    let (summaries, names, _, _) = diagnose(&text);
    let words: Vec<&str> = summaries.iter().map(|s| s.words.as_str()).collect();
    assert_eq!(
        summaries.iter().filter(|s| !s.room).count(),
        5,
        "{words:#?}"
    );
    let rooms: Vec<&Summary> = summaries.iter().filter(|s| s.room).collect();
    assert_eq!(rooms.len(), 1, "{words:#?}");
    assert!(
        rooms[0].words.contains("room 4242 ended: 5 PCs"),
        "{}",
        rooms[0].words
    );
    assert!(
        words.iter().any(|w| w.starts_with("✔ pubA ▲ ok")),
        "{words:#?}"
    );
    assert!(
        words.iter().any(|w| w.starts_with("✔ s1◂pubB ok")),
        "{words:#?}"
    );
    // Every client named, then told it ended; Janus named once.
    let ended = names.iter().filter(|n| n.ended).count();
    assert_eq!(ended, 5, "{names:#?}");
    assert!(names
        .iter()
        .any(|n| n.name == "janus janus-fixtures" && n.port == 0));
    assert!(names.iter().any(|n| n.name.starts_with("janus api")));
    assert!(names.iter().any(|n| n.name.starts_with("api 127.0.0.1")));
}

#[test]
fn heads_are_distinct_within_each_room_of_every_capture() {
    for (name, text) in captures() {
        let (_, names, _, labels) = diagnose(&text);
        // The short names of different handles never share a 14-character head.
        let mut by_head: HashMap<String, u64> = HashMap::default();
        for (h, n) in labels {
            let head = names::head(&n).to_string();
            let prev = *by_head.entry(head.clone()).or_insert(h);
            assert_eq!(prev, h, "{name}: {head} names two handles");
        }
        // Two live clients never get the same alias.
        let mut live: HashMap<(IpAddr, u16), String> = HashMap::default();
        for n in &names {
            if n.ended {
                live.remove(&(n.ip, n.port));
                continue;
            }
            live.insert((n.ip, n.port), n.name.clone());
            let mut heads: Vec<&str> = live.values().map(|n| names::head(n)).collect();
            let all = heads.len();
            heads.sort();
            heads.dedup();
            assert_eq!(heads.len(), all, "{name}: {live:#?}");
        }
    }
}

#[test]
fn the_sip_call_names_both_sides_of_the_dialog() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/janus/sip-call-simple.jsonl"
    ))
    .unwrap();
    let (summaries, names, _, _) = diagnose(&text);
    assert!(
        names.iter().any(|n| n.name.starts_with("☎ frontdesk")),
        "{names:#?}"
    );
    assert!(
        names.iter().any(|n| n.name.starts_with("janus sip ")),
        "{names:#?}"
    );
    let pcs: Vec<&Summary> = summaries.iter().filter(|s| !s.room).collect();
    assert_eq!(pcs.len(), 2, "two calls on one handle: two PeerConnections");
    for s in pcs {
        assert!(s.json.contains("\"call_id\":"), "{}", s.json);
        assert!(s.json.contains("\"plugin\":\"sip\""), "{}", s.json);
    }
}

#[test]
fn sip_users_from_headers() {
    assert_eq!(
        sip_user("\"Bob\" <sip:bob@10.0.0.1>;tag=1").as_deref(),
        Some("bob")
    );
    assert_eq!(
        sip_user("sip:frontdesk@127.0.0.42:5070;tag=x").as_deref(),
        Some("frontdesk")
    );
    assert_eq!(sip_user("<tel:+12345>").as_deref(), Some("+12345"));
    assert_eq!(sip_user("garbage"), None);
}

#[test]
#[ignore = "prints the verdicts of every capture"]
fn print_verdicts() {
    for (name, text) in captures() {
        let (summaries, names, _, _) = diagnose(&text);
        println!("== {name}");
        for s in summaries {
            println!("{}\n   {}", s.words, s.json);
        }
        for n in names {
            println!("   name {}:{} {:?} ended={}", n.ip, n.port, n.name, n.ended);
        }
    }
}

/// The failure captures (`fixtures/janus/FAILURES.md`): the failing PeerConnection's
/// handle and the verdict it must get, on Janus 1.1.2 and 1.4.1.
const FAILURES: &[(&str, u64, Outcome)] = &[
    ("fail-ice.jsonl", 6168049105062257, Outcome::IceFailed),
    ("1.4.1/fail-ice.jsonl", 3316606946795406, Outcome::IceFailed),
    (
        "fail-dtls-fingerprint.jsonl",
        7661923846683860,
        Outcome::DtlsFailed,
    ),
    (
        "1.4.1/fail-dtls-fingerprint.jsonl",
        1278882450294771,
        Outcome::DtlsFailed,
    ),
    (
        "fail-dtls-timeout.jsonl",
        6736232336492635,
        Outcome::DtlsFailed,
    ),
    (
        "1.4.1/fail-dtls-timeout.jsonl",
        2037298307663572,
        Outcome::DtlsFailed,
    ),
    (
        "fail-dtls-timeout-sub.jsonl",
        3006093766679037,
        Outcome::DtlsFailed,
    ),
    (
        "1.4.1/fail-dtls-timeout-sub.jsonl",
        7810780152128796,
        Outcome::DtlsFailed,
    ),
    ("fail-media-stops.jsonl", 8418641822232956, Outcome::NoMedia),
    (
        "1.4.1/fail-media-stops.jsonl",
        58795591862175,
        Outcome::NoMedia,
    ),
    ("fail-loss-20.jsonl", 2083119176044072, Outcome::Degraded),
    (
        "1.4.1/fail-loss-20.jsonl",
        4842036075478508,
        Outcome::Degraded,
    ),
];

#[test]
fn each_failure_capture_gives_its_verdict_and_the_working_peerconnections_beside_it_ok() {
    let all = captures();
    for (file, failing, want) in FAILURES {
        let text = &all.iter().find(|(n, _)| n == file).expect(file).1;
        let (summaries, _, d, _) = diagnose(text);
        let mut seen = false;
        for s in summaries.iter().filter(|s| !s.room) {
            let v: serde_json::Value = serde_json::from_str(&format!("{{{}}}", s.json)).unwrap();
            let hid = v["summary"]["handle_id"].as_u64().unwrap();
            if hid == *failing {
                assert_eq!(s.outcome, *want, "{file}: {}", s.words);
                seen = true;
            } else {
                assert_eq!(s.outcome, Outcome::Ok, "{file}: {}", s.words);
            }
        }
        assert!(seen, "{file}: no verdict for {failing}");
        // The room's verdict names the failing one as the worst.
        let room = summaries.iter().find(|s| s.room).expect("a room verdict");
        assert_eq!(room.outcome, *want, "{file}: {}", room.words);
        assert!(room.json.contains("\"worst\":{\"name\":"));
        // Counted per plugin and outcome.
        assert_eq!(d.stats().ended[0][want.index()], 1, "{file}");
    }
}

#[test]
fn the_words_say_what_failed_first() {
    let all = captures();
    let words = |file: &str| -> Vec<String> {
        let text = &all.iter().find(|(n, _)| n == file).unwrap().1;
        diagnose(text).0.into_iter().map(|s| s.words).collect()
    };
    let has = |file: &str, start: &str| {
        let w = words(file);
        assert!(w.iter().any(|x| x.starts_with(start)), "{file}: {w:#?}");
    };
    has("1.4.1/fail-ice.jsonl", "✖ s2◂pubA ICE failed after");
    has(
        "1.4.1/fail-dtls-timeout.jsonl",
        "✖ pubB ▲ DTLS failed after 20 s (DTLS timeout)",
    );
    has("1.4.1/fail-media-stops.jsonl", "✖ pubB ▲ no media");
    has("1.4.1/fail-loss-20.jsonl", "⚠ pubB ▲ degraded loss");
    has("fail-dtls-fingerprint.jsonl", "✖ pubB ▲ DTLS failed");
}

#[test]
fn a_sip_call_without_sip_out_is_counted_and_warned_of_once_per_emitter() {
    // The 1.4.1 call as a Janus built against sofia-sip 1.12 would report it: its sip-out
    // events gone.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/janus/1.4.1/sip-call-simple.jsonl"
    ))
    .unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.contains("\"sip-out\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(without.len() < text.len());
    let mut parser = EventParser::new();
    let mut corr = Correlator::new(Config::default());
    let mut d = Diagnoser::default();
    let mut f = Findings::default();
    let mut buf = Vec::new();
    for line in without.lines() {
        for piece in crate::janus::split_events(&bytes::Bytes::from(line.to_string())) {
            let ev = parser.parse(piece.unwrap()).unwrap();
            let now = ev.timestamp.unwrap_or(0);
            corr.push(ev, now, &mut buf);
        }
        for c in buf.drain(..) {
            d.event(&c, &mut f);
        }
    }
    assert_eq!(d.stats().sip_out_missing, 2, "both calls");
    assert_eq!(f.warnings.len(), 1, "once per emitter: {:?}", f.warnings);
    assert!(f.warnings[0].contains("sofia-sip"));
    // With sip-out, nothing to say.
    let (_, _, d, _) = diagnose(&text);
    assert_eq!(d.stats().sip_out_missing, 0);
}
