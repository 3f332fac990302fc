//! The real Janus captures of `fixtures/janus/`, by name: shared by the agent's tests and
//! the core's (`core/tests/` includes this file by path, so it needs nothing but std and
//! serde_json).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository's `fixtures/` folder, from the agent's or the core's manifest folder.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("fixtures"))
        .find(|d| d.join("janus").is_dir())
        .expect("fixtures/janus beside the manifest or above it")
}

/// The fixture's events in order, arrays (grouped bodies) flattened.
pub fn fixture_events(scenario: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for line in fixture_bodies(scenario) {
        match serde_json::from_str(&line).unwrap() {
            serde_json::Value::Array(a) => out.extend(a),
            v => out.push(v),
        }
    }
    out
}

/// Every Janus capture of `fixtures/janus/` posted by the HTTP event handler.
pub const CAPTURES: &[&str] = &[
    "videoroom-2pub-2sub-webrtc",
    "sip-call-simple",
    "audiobridge-3users",
    "textroom-datachannel-webrtc",
    "echotest-webrtc",
    "echotest-http-only",
    "grouping-indented",
    "grouping-compressed",
];

/// The captures besides [`CAPTURES`]: Debian 1.1.2's failure captures, and the same
/// scenarios and failures recorded with Janus 1.4.1 (`fixtures/janus/1.4.1/`).
pub const MORE_CAPTURES: &[&str] = &[
    "fail-ice",
    "fail-dtls-fingerprint",
    "fail-dtls-timeout",
    "fail-dtls-timeout-sub",
    "fail-media-stops",
    "fail-loss-20",
    "1.4.1/videoroom-2pub-2sub-webrtc",
    "1.4.1/videoroom-2pub-2sub-20s",
    "1.4.1/videoroom-http-only",
    "1.4.1/combined-stats-videoroom",
    "1.4.1/sip-call-simple",
    "1.4.1/audiobridge-3users",
    "1.4.1/textroom-datachannel-webrtc",
    "1.4.1/echotest-webrtc",
    "1.4.1/echotest-http-only",
    "1.4.1/grouping-indented",
    "1.4.1/grouping-compressed",
    "1.4.1/grouping-compressed-videoroom",
    "1.4.1/fail-ice",
    "1.4.1/fail-dtls-fingerprint",
    "1.4.1/fail-dtls-timeout",
    "1.4.1/fail-dtls-timeout-sub",
    "1.4.1/fail-media-stops",
    "1.4.1/fail-loss-20",
];

/// Every Janus capture: [`CAPTURES`], then [`MORE_CAPTURES`].
pub static ALL_CAPTURES: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| [CAPTURES, MORE_CAPTURES].concat());

/// The fixture's bodies, one per line.
pub fn fixture_bodies(scenario: &str) -> Vec<String> {
    let path = fixtures_dir().join(format!("janus/{scenario}.jsonl"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}
