//! `heplink flow` checked in a real browser (Debian's chromium, headless): the page loads
//! without script errors, shows the expected columns and arrows for a real capture, and
//! clicking an arrow shows its payload; the page opens on the room, its columns fit the
//! window and name their participants, its headers stay visible. Needs `chromium`
//! (installed by `.ci/run`).

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
    chromium_dom_at(url, (1280, 900))
}

/// The DOM after the page's script ran, in a window of `size` (width, height) pixels.
fn chromium_dom_at(url: &str, size: (u32, u32)) -> String {
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
        .arg(format!("--window-size={},{}", size.0, size.1))
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
    // one arrow per packet of the room: 200 events and 6 verdicts (5 PeerConnections and
    // the room), which are also listed atop the flow.
    assert_eq!(dom.matches(r#"class="column""#).count(), 12);
    assert_eq!(dom.matches(r#"class="arrow"#).count(), 206);
    assert_eq!(dom.matches(r#"<li class="ok">"#).count(), 6);
    for label in [
        ">joined pubA<",
        ">remote offer pubA ▲<",
        ">ice connected pubA ▲<",
        ">webrtcup s1◂pubB<",
        ">✔ room 4242 ended: 5 PCs, 5 ok<",
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
    assert_eq!(svg.matches(r#"class="arrow""#).count(), 206);
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
        ">webrtcup sipcall-caro ☎<",
    ] {
        assert!(dom.contains(label), "{label}");
    }
}

/// What the page's `#layouttest` measured in the browser, by name.
fn layout(dom: &str, key: &str) -> String {
    let attr = format!("data-layout-{key}=\"");
    let at = dom
        .find(&attr)
        .unwrap_or_else(|| panic!("no {attr} in the page: did the script run?"));
    let rest = &dom[at + attr.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The whole capture (core, transport and the room): the page opens on the room, drawn
/// whole across a 1600 × 1000 window without scrolling, its columns named (participants,
/// Janus, subscribers) in readable type, its headers held while the box scrolls, and the
/// core and transport flows folded away.
#[test]
fn the_page_opens_on_the_room_which_fits_the_window_and_names_its_participants() {
    let test = "the_page_opens_on_the_room_which_fits_the_window_and_names_its_participants";
    if !chromium_here(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("flow.html");
    let cap = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/janus/videoroom-2pub-2sub-webrtc.jsonl"
    );
    let st = Command::new(env!("CARGO_BIN_EXE_heplink"))
        .args(["flow", cap, "-o"])
        .arg(&html)
        .status()
        .unwrap();
    assert!(st.success());
    // The smallest title height (its box, in CSS pixels) each window must give.
    for (size, min_px) in [((1600, 1000), 12.0), ((1280, 800), 9.0)] {
        let dom = chromium_dom_at(&format!("file://{}#layouttest", html.display()), size);
        assert!(!dom.contains(r#"id="script-error""#), "no script error");
        assert_eq!(
            layout(&dom, "first"),
            "janus-fixtures:videoroom:4242",
            "{size:?}"
        );
        assert_eq!(layout(&dom, "first-arrow-in-view"), "true", "{size:?}");
        assert_eq!(
            layout(&dom, "columns-in-view"),
            "true",
            "all 12 columns, {size:?}"
        );
        let titles = layout(&dom, "titles");
        let titles: Vec<&str> = titles.split('|').collect();
        assert_eq!(titles.len(), 12, "{titles:?}");
        for name in ["pubA", "pubB", "Janus", "subscriber"] {
            assert!(titles.contains(&name), "{name} names a column: {titles:?}");
        }
        let px: f64 = layout(&dom, "title-px").parse().unwrap();
        assert!(px >= min_px, "column titles {px} px high at {size:?}");
        assert_eq!(layout(&dom, "head-sticks"), "true", "{size:?}");
        assert_eq!(layout(&dom, "noise-folded"), "true", "{size:?}");
        // The summary names the room and its participants before any flow.
        let summary = &dom[..dom.find("<main>").unwrap()];
        assert!(
            summary.contains("janus-fixtures:videoroom:4242") && summary.contains("pubA, pubB")
        );
    }
}
