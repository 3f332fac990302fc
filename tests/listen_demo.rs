//! `heplink listen` and `heplink demo` through the real binary.

mod common;

use std::io::Read;
use std::net::UdpSocket;
use std::process::Stdio;
use std::time::Duration;

use heplink::capture::{read_capture, CaptureEvent};

#[test]
fn demo_prints_one_flow_per_room_with_every_peerconnection() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("demo.html");
    let out = common::bin()
        .arg("demo")
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // 300 events, 108 QoS reports of the room's media stats (RTCP JSON for each way that
    // carries media, rtpagent for audio) and 6 verdicts (5 PeerConnections and the room),
    // in the room's flow.
    assert!(
        text.starts_with("414 packets, 0 rejected, 3 correlation ids\n"),
        "{text}"
    );
    let room = text
        .split("janus-fixtures:videoroom:4242  314 packets")
        .nth(1)
        .expect("the room's flow");
    assert!(
        room.contains("proto types: RTCP(5), RTP-FULL(34), LOG(100)"),
        "{room}"
    );
    // 5 PeerConnections: Janus's side and the peer's side of each, plus the API client
    // and Janus's signalling side.
    assert!(room.contains("columns (12):"), "{room}");
    for peer in [
        "127.0.0.3:54800",
        "127.0.0.4:56703",
        "127.0.0.5:55529",
        "127.0.0.6:50628",
        "127.0.0.7:45514",
    ] {
        assert!(room.contains(peer), "{peer} missing: {room}");
    }
    assert!(
        room.contains("participants: pubA (5725960458842129), pubB (3957083503320980)"),
        "{room}"
    );
    // The counts and the room's packet types and participants, as the README shows them.
    for line in [
        "414 packets, 0 rejected, 3 correlation ids\n",
        "    proto types: RTCP(5), RTP-FULL(34), LOG(100)\n",
        "    participants: pubA (5725960458842129), pubB (3957083503320980)\n",
    ] {
        assert!(text.contains(line), "{line} in {text}");
        assert!(
            include_str!("../README.md").contains(line),
            "README's demo output shows {line}"
        );
    }
    // The verdicts, as the README shows them.
    for v in [
        "    ✔ pubB◂pubA ok 9 s MOS 4.4\n",
        "    ✔ s3◂pubA+pubB ok 11 s MOS 4.4\n",
        "    ✔ pubA ▲ ok 11 s MOS 4.4\n",
        "    ✔ room 4242 ended: 5 PCs, 5 ok\n",
    ] {
        assert!(room.contains(v), "{v} in {room}");
        assert!(
            include_str!("../README.md").contains(v),
            "README's demo output shows {v}"
        );
    }
    // The HTML picture of the same flows was written.
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches(r#"class="flow""#).count(), 3);
    // One arrow per event and per verdict; the QoS reports are for Homer's QoS tab, not
    // arrows. The verdicts are listed at the top of the room's flow.
    assert_eq!(page.matches(r#"class="arrow""#).count(), 306);
    assert_eq!(page.matches(r#"<ul class="verdicts">"#).count(), 1);
    assert!(
        page.contains("✔ room 4242 ended: 5 PCs, 5 ok"),
        "the room's verdict"
    );
}

#[test]
fn listen_prints_writes_pcap_and_jsonl_and_reports_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (pcap, jsonl) = (dir.path().join("got.pcap"), dir.path().join("got.jsonl"));
    let mut child = common::bin()
        .args([
            "listen",
            "--udp",
            &format!("127.0.0.1:{port}"),
            "--count",
            "6",
            "-w",
        ])
        .arg(&pcap)
        .arg("--jsonl")
        .arg(&jsonl)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Five real packets (Kamailio siptrace) and one bad one.
    let mut sent = Vec::new();
    let cap = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/hep/kamailio-siptrace-v3.pcap"
    );
    read_capture(std::fs::File::open(cap).unwrap(), &mut |ev| {
        if let CaptureEvent::Packet { bytes, .. } = ev {
            if sent.len() < 5 {
                sent.push(bytes.to_vec());
            }
        }
    })
    .unwrap();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for p in &sent {
        s.send_to(p, ("127.0.0.1", port)).unwrap();
    }
    s.send_to(b"HEP3\x00\x07x", ("127.0.0.1", port)).unwrap();
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "a rejected packet: exit 1\n{stdout}"
    );
    assert!(stdout.contains("#5 rejected: "), "{stdout}");
    assert!(
        stdout.contains("5 packets, 1 rejected, 1 correlation ids"),
        "{stdout}"
    );
    // The pcap holds exactly the bytes received.
    let mut got = Vec::new();
    read_capture(std::fs::File::open(&pcap).unwrap(), &mut |ev| {
        if let CaptureEvent::Packet { bytes, .. } = ev {
            got.push(bytes.to_vec());
        }
    })
    .unwrap();
    let mut want = sent.clone();
    want.push(b"HEP3\x00\x07x".to_vec());
    assert_eq!(got, want);
    let lines = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(lines.lines().count(), 6);
    assert!(lines.lines().last().unwrap().contains("\"error\""));
}

#[test]
fn listen_reports_what_the_kernel_dropped_when_its_buffer_overflows() {
    // A listener with a tiny receive buffer and a burst far beyond it: every datagram
    // sent is either received or counted as dropped by the kernel (SO_RXQ_OVFL).
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = common::bin()
        .args(["listen", "-q", "--udp-buffer", "2048", "--duration", "2.5"])
        .arg("--udp")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let cap = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hep/kamailio-siptrace-v3.pcap");
    let mut packet = None;
    read_capture(std::fs::File::open(cap).unwrap(), &mut |ev| {
        if let CaptureEvent::Packet { bytes, .. } = ev {
            packet.get_or_insert_with(|| bytes.to_vec());
        }
    })
    .unwrap();
    let packet = packet.unwrap();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent = 5000u64;
    for _ in 0..sent {
        s.send_to(&packet, ("127.0.0.1", port)).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let received: u64 = text
        .split(" packets, ")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    let dropped: u64 = text
        .lines()
        .find(|l| l.contains("UDP datagrams dropped by the kernel"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(dropped > 0, "a 2 KiB buffer overflows: {text}");
    assert_eq!(received + dropped, sent, "{text}");
    assert!(text.contains("receive buffer was full"), "{text}");
}

#[test]
fn listen_jsonl_is_written_line_by_line_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("live.jsonl");
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = common::bin()
        .args(["listen", "-q", "--no-flows", "--duration", "5", "--jsonl"])
        .arg(&jsonl)
        .arg("--udp")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let cap = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hep/kamailio-siptrace-v3.pcap");
    let packet = common::pcap_packets(&cap).remove(0);
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(&packet, ("127.0.0.1", port))
        .unwrap();
    // Before listen exits, the line is in the file.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut lines = 0;
    while lines == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        lines = std::fs::read_to_string(&jsonl)
            .unwrap_or_default()
            .lines()
            .count();
    }
    assert!(child.try_wait().unwrap().is_none(), "listen still runs");
    assert_eq!(lines, 1);
    let _ = child.kill();
}

/// `flow` draws what `listen --jsonl` wrote exactly as it draws the capture that was sent.
#[test]
fn flow_draws_listen_jsonl_as_it_draws_the_capture() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("sip.pcap");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/janus/sip-call-simple.jsonl"
    );
    let st = common::bin()
        .args(["convert", fixture, "-o"])
        .arg(&pcap)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let sent = common::pcap_packets(&pcap).len();
    let jsonl = dir.path().join("got.jsonl");
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut listen = common::bin()
        .args(["listen", "-q", "--no-flows", "--duration", "20", "--jsonl"])
        .arg(&jsonl)
        .arg("--udp")
        .arg(format!("127.0.0.1:{port}"))
        .args(["--count", &sent.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let st = common::bin()
        .arg("replay")
        .arg(&pcap)
        .args([
            "--to",
            &format!("udp://127.0.0.1:{port}"),
            "--keep-time",
            "--fast",
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert!(listen.wait().unwrap().success(), "listen got all {sent}");
    let page = |from: &std::path::Path, name: &str| {
        let out = dir.path().join(name);
        let st = common::bin()
            .arg("flow")
            .arg(from)
            .arg("-o")
            .arg(&out)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "flow {}", from.display());
        std::fs::read_to_string(out).unwrap()
    };
    let (a, b) = (page(&pcap, "a.html"), page(&jsonl, "b.html"));
    assert!(
        a.contains(">INVITE<") && a.contains(">calling<"),
        "the call is drawn"
    );
    assert!(
        a == b,
        "the same page from the capture and from listen's JSONL"
    );
}
