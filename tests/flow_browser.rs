//! `heplink flow` checked in a real browser (Debian's chromium, headless): the page loads
//! without script errors, shows the expected columns and arrows for a real capture, and
//! clicking an arrow shows its payload. Needs `chromium` (installed by `.ci/run`).

mod common;

use std::process::Command;

fn chromium_here(test: &str) -> bool {
    common::peers(
        test,
        &[(
            "chromium",
            common::on_path("chromium"),
            "apt-get install chromium",
        )],
    )
}

fn chromium_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=5000", "--dump-dom", url])
        .output()
        .expect("chromium is not installed (apt-get install chromium)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_videoroom_flow_renders_with_its_columns_and_arrows() {
    if !chromium_here("the_videoroom_flow_renders_with_its_columns_and_arrows") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("flow.html");
    let svg = dir.path().join("flow.svg");
    let cap = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/janus/videoroom-2pub-2sub-webrtc.jsonl"
    );
    let st = Command::new(env!("CARGO_BIN_EXE_heplink"))
        .args(["flow", cap, "--cid", "janus-fixtures:videoroom:4242", "-o"])
        .arg(&html)
        .arg("--svg")
        .arg(&svg)
        .status()
        .unwrap();
    assert!(st.success());
    let dom = chromium_dom(&format!("file://{}#selftest", html.display()));
    assert!(dom.contains(r#"data-ready="yes""#), "the script ran");
    assert!(!dom.contains(r#"id="script-error""#), "no script error");
    assert!(
        dom.contains(r#"data-selftest="ok""#),
        "clicking an arrow shows its payload"
    );
    // 12 columns (5 PeerConnections × 2 sides, the API client, Janus's signalling side) and
    // one arrow per packet of the room: 200.
    assert_eq!(dom.matches(r#"class="column""#).count(), 12);
    assert_eq!(dom.matches(r#"class="arrow"#).count(), 200);
    for label in [
        ">joined pubA<",
        ">remote offer<",
        ">ice connected<",
        ">webrtcup<",
        ">subscribing<",
        ">leaving pubA<",
    ] {
        assert!(dom.contains(label), "{label}");
    }
    assert!(
        dom.contains(">pubA<") || dom.contains("pubA,") || dom.contains(", pubA<"),
        "participant names on columns"
    );
    // The SVG export is the same drawing.
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg"));
    assert_eq!(svg.matches(r#"class="arrow""#).count(), 200);
}

#[test]
fn a_sip_capture_shows_sip_methods() {
    if !chromium_here("a_sip_capture_shows_sip_methods") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("sip.html");
    let cap = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/janus/sip-call-simple.jsonl"
    );
    let st = Command::new(env!("CARGO_BIN_EXE_heplink"))
        .args(["flow", cap, "--cid", "Pd1uWiPpZq7yyN4TZjvDs0i", "-o"])
        .arg(&html)
        .status()
        .unwrap();
    assert!(st.success());
    let dom = chromium_dom(&format!("file://{}", html.display()));
    assert!(!dom.contains(r#"id="script-error""#));
    for label in [
        ">INVITE<",
        ">180 Ringing<",
        ">200 OK<",
        ">ACK<",
        ">BYE<",
        ">calling<",
        ">webrtcup<",
    ] {
        assert!(dom.contains(label), "{label}");
    }
}
