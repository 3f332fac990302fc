//! Shared by the benchmarks: the real fixture mix, replicated with distinct ids.

#![allow(dead_code)]

use std::path::Path;

/// Bodies (one per line) of the real captures.
pub fn fixture_lines() -> Vec<String> {
    // The agent's manifest folder or the core's (`core/benches` includes this file).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("fixtures/janus"))
        .find(|d| d.is_dir())
        .expect("fixtures/janus beside the manifest or above it");
    let mut lines = Vec::new();
    for s in [
        "videoroom-2pub-2sub-webrtc",
        "sip-call-simple",
        "audiobridge-3users",
        "textroom-datachannel-webrtc",
        "echotest-webrtc",
        "grouping-compressed",
    ] {
        let text = std::fs::read_to_string(dir.join(format!("{s}.jsonl"))).unwrap();
        lines.extend(text.lines().map(String::from));
    }
    lines
}

/// `copies` copies of the mix, each with its own session/handle ids (a digit prefix
/// changed) and timestamps shifted forward, so correlation state behaves as in a long run.
pub fn replicated(copies: usize) -> Vec<String> {
    let base = fixture_lines();
    let mut out = Vec::with_capacity(base.len() * copies);
    for c in 0..copies {
        for l in &base {
            let shifted = l
                .replace("\"session_id\":", &format!("\"session_id\":{}", c + 1))
                .replace("\"handle_id\":", &format!("\"handle_id\":{}", c + 1));
            out.push(shifted);
        }
    }
    out
}
