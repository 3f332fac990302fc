//! Round trips through the real binary: replay → listen gives back, byte for byte, what
//! `convert` makes of a Janus capture, or the HEP capture itself; over UDP and TCP.

mod common;

use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use heplink::proto::{decode, Mode};

fn listener(transport: &str, count: usize, out: &Path) -> (String, Child) {
    let port = match transport {
        "udp" => UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
        _ => TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
    };
    let child = common::bin()
        .args([
            "listen",
            "-q",
            "--no-flows",
            &format!("--{transport}"),
            &format!("127.0.0.1:{port}"),
            "--count",
            &count.to_string(),
            "-w",
        ])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    (format!("{transport}://127.0.0.1:{port}"), child)
}

fn replay(files: &[&Path], to: &str, extra: &[&str]) {
    let st = common::bin()
        .arg("replay")
        .args(files)
        .args(["--to", to, "--fast"])
        .args(extra)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn janus_jsonl_replayed_equals_convert_byte_for_byte_udp_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/janus/sip-call-simple.jsonl");
    let want = common::convert_to_pcap(&jsonl, &dir.path().join("converted.pcap"));
    // 87 events, 12 QoS reports of its media stats and the verdicts of its two calls.
    assert_eq!(want.len(), 101);
    for transport in ["udp", "tcp"] {
        let got_path = dir.path().join(format!("got-{transport}.pcap"));
        let (to, mut child) = listener(transport, want.len(), &got_path);
        replay(&[&jsonl], &to, &["--keep-time"]);
        assert!(child.wait().unwrap().success());
        assert_eq!(common::pcap_packets(&got_path), want, "{transport}");
    }
}

#[test]
fn hep_pcap_replayed_is_byte_identical_and_restamping_changes_only_time() {
    let dir = tempfile::tempdir().unwrap();
    let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hep/kamailio-siptrace-v3.pcap");
    let want = common::pcap_packets(&cap);
    for transport in ["udp", "tcp"] {
        let got_path = dir.path().join(format!("got-{transport}.pcap"));
        let (to, mut child) = listener(transport, want.len(), &got_path);
        replay(&[&cap], &to, &["--keep-time"]);
        assert!(child.wait().unwrap().success());
        assert_eq!(common::pcap_packets(&got_path), want, "{transport}");
    }
    // Re-stamped: same packets but the time, which now starts about now, same spacing.
    let got_path = dir.path().join("restamped.pcap");
    let (to, mut child) = listener("udp", want.len(), &got_path);
    replay(&[&cap], &to, &[]);
    assert!(child.wait().unwrap().success());
    let got = common::pcap_packets(&got_path);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let t0 = decode(&want[0], Mode::Strict)
        .unwrap()
        .timestamp_micros()
        .unwrap();
    let g0 = decode(&got[0], Mode::Strict)
        .unwrap()
        .timestamp_micros()
        .unwrap();
    assert!(now.abs_diff(g0) < 60_000_000, "re-stamped to now");
    for (g, w) in got.iter().zip(&want) {
        let (pg, pw) = (
            decode(g, Mode::Strict).unwrap(),
            decode(w, Mode::Strict).unwrap(),
        );
        assert_eq!(
            pg.timestamp_micros().unwrap() - g0,
            pw.timestamp_micros().unwrap() - t0
        );
        assert_eq!(
            (pg.payload, pg.src_ip, pg.dst_port, pg.capture_id),
            (pw.payload, pw.src_ip, pw.dst_port, pw.capture_id)
        );
        assert_eq!(g.len(), w.len());
    }
}

#[test]
fn replay_to_an_absent_collector_fails_with_a_count() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hep/kamailio-siptrace-v3.pcap");
    let out = common::bin()
        .arg("replay")
        .arg(&cap)
        .args([
            "--to",
            &format!("tcp://127.0.0.1:{port}"),
            "--fast",
            "--drain-timeout",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("39 packets could not be sent"), "{err}");
}

#[test]
fn replayed_janus_capture_has_the_hour_of_its_new_time_in_its_ids() {
    let dir = tempfile::tempdir().unwrap();
    let cap = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hep/janus-videoroom-2pub-2sub-webrtc.pcap");
    let want = common::pcap_packets(&cap);
    let got_path = dir.path().join("restamped.pcap");
    let (to, mut child) = listener("udp", want.len(), &got_path);
    replay(&[&cap], &to, &[]);
    assert!(child.wait().unwrap().success());
    let got = common::pcap_packets(&got_path);
    let (mut hourly, mut rooms) = (0, 0);
    for (g, w) in got.iter().zip(&want) {
        let (pg, pw) = (
            decode(g, Mode::Strict).unwrap(),
            decode(w, Mode::Strict).unwrap(),
        );
        let cid = std::str::from_utf8(pg.correlation_id.unwrap()).unwrap();
        let old = std::str::from_utf8(pw.correlation_id.unwrap()).unwrap();
        if old.contains(":core:") || old.contains(":transport:") {
            // The id's hour is the hour of the packet's new time (or the one before, for
            // a session that began in it).
            let ts = pg.timestamp_micros().unwrap() / 1_000_000;
            let hour = |t: u64| heplink::correlate::hour_label(t / 3600);
            assert!(
                cid.ends_with(&hour(ts)) || cid.ends_with(&hour(ts.saturating_sub(3600))),
                "{cid} at {ts}"
            );
            assert_ne!(cid, old);
            // The payload names the new id wherever it named the old one.
            let text = std::str::from_utf8(pg.payload.unwrap()).unwrap();
            assert!(!text.contains(old), "{text}");
            hourly += 1;
        } else {
            assert_eq!(cid, old, "a room's id has no hour");
            rooms += 1;
        }
        assert_eq!(g.len(), w.len());
    }
    assert!(hourly > 50 && rooms > 200, "{hourly} {rooms}");
}
