//! `heplink decode` on pcap, pcapng and raw streams, through the real binary.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use heplink::capture::pcap_writer::PcapWriter;
use heplink::proto::{PacketBuilder, ProtoType};
use serde_json::Value;

fn heplink() -> Command {
    Command::new(env!("CARGO_BIN_EXE_heplink"))
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn log_packet(cid: &str, payload: &str, src: &str, dst: &str) -> Vec<u8> {
    let (s, d) = (sa(src), sa(dst));
    PacketBuilder::new(ProtoType::LOG, payload.to_string())
        .udp((s.ip(), s.port()), (d.ip(), d.port()))
        .timestamp_micros(1_732_406_400_123_456)
        .capture_id(2001)
        .correlation_id(cid.to_string())
        .node_name("janus-a")
        .to_bytes()
        .unwrap()
        .to_vec()
}

fn run_json(args: &[&str], stdin: Option<&[u8]>) -> (Vec<Value>, i32) {
    let mut cmd = heplink();
    cmd.arg("decode").arg("--json").args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, out.status.code().unwrap())
}

#[test]
fn pcap_udp_ipv4_ipv6_noise_and_a_bad_packet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udp.pcap");
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    let a = log_packet("room:1", r#"{"a":1}"#, "10.0.0.1:8088", "10.0.0.2:0");
    w.udp(1, sa("127.0.0.1:40000"), sa("127.0.0.1:9060"), &a)
        .unwrap();
    // A DNS-like datagram on another port: not HEP, skipped silently.
    w.udp(
        2,
        sa("127.0.0.1:5353"),
        sa("127.0.0.1:53"),
        b"\x12\x34\x01\x00",
    )
    .unwrap();
    let b = log_packet(
        "sess:9",
        "plain text",
        "[2001:db8::1]:5060",
        "[2001:db8::2]:5061",
    );
    w.udp(3, sa("[::1]:40001"), sa("[::1]:19999"), &b).unwrap();
    // HEP with a wrong length field: rejected, decoding goes on.
    let mut bad = a.clone();
    bad[5] = bad[5].wrapping_add(1);
    w.udp(4, sa("127.0.0.1:40000"), sa("127.0.0.1:9060"), &bad)
        .unwrap();
    let mut binary = PacketBuilder::new(ProtoType::RTCP_JSON, vec![0xff, 0x00, 0xfe]);
    binary.correlation_id = Some("bin".into());
    w.udp(
        5,
        sa("127.0.0.1:40000"),
        sa("127.0.0.1:9060"),
        &binary.to_bytes().unwrap(),
    )
    .unwrap();
    w.finish().unwrap();

    let (lines, code) = run_json(&[path.to_str().unwrap()], None);
    assert_eq!(code, 1, "a rejected packet makes the exit status 1");
    assert_eq!(lines.len(), 4);
    let l0 = &lines[0];
    assert_eq!(l0["index"], 0);
    assert_eq!(l0["version"], 3);
    assert_eq!(l0["proto_type"], 100);
    assert_eq!(l0["ip_family"], 2);
    assert_eq!(l0["src_ip"], "10.0.0.1");
    assert_eq!(l0["src_port"], 8088);
    assert_eq!(l0["dst_ip"], "10.0.0.2");
    assert_eq!(l0["dst_port"], 0);
    assert_eq!(l0["ts_sec"], 1_732_406_400u64);
    assert_eq!(l0["ts_usec"], 123_456);
    assert_eq!(l0["capture_id"], 2001);
    assert_eq!(l0["node_name"], "janus-a");
    assert_eq!(l0["auth_key"], Value::Null);
    assert_eq!(l0["correlation_id"], "room:1");
    assert_eq!(l0["payload"], r#"{"a":1}"#);
    let chunks = l0["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 13);
    assert_eq!(
        chunks[0],
        serde_json::json!({"vendor": 0, "type": 1, "length": 7})
    );
    assert_eq!(l0["capture"]["transport"], "udp");
    assert_eq!(l0["capture"]["frame"], 1);
    let l1 = &lines[1];
    assert_eq!(l1["ip_family"], 10);
    assert_eq!(l1["src_ip"], "2001:db8::1");
    assert_eq!(l1["capture"]["frame"], 3);
    let l2 = &lines[2];
    assert_eq!(l2["index"], 2);
    assert!(
        l2["error"].as_str().unwrap().contains("length field"),
        "{l2}"
    );
    assert_eq!(l2["offset"], 4);
    let l3 = &lines[3];
    assert_eq!(l3["payload"], Value::Null);
    assert_eq!(l3["payload_b64"], "/wD+");
}

#[test]
fn pcap_tcp_stream_reassembled_on_any_port() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tcp.pcap");
    let packets: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            log_packet(
                &format!("c{i}"),
                &"x".repeat(100 + i * 700),
                "10.1.1.1:1",
                "10.1.1.2:2",
            )
        })
        .collect();
    let stream: Vec<u8> = packets.concat();
    let (src, dst) = (sa("192.0.2.1:51000"), sa("192.0.2.2:7777"));
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    let isn = 4_294_967_000u32; // wraps around u32 inside the stream
    w.tcp(0, src, dst, isn, true, &[]).unwrap();
    // Odd cuts; segment 2 arrives before segment 1; segment 0 is retransmitted.
    let cuts = [0usize, 3, 500, 1201, 2000, 2999, stream.len()];
    let seg = |k: usize| (cuts[k], &stream[cuts[k]..cuts[k + 1]]);
    let order = [0usize, 2, 1, 0, 3, 4, 5];
    for (n, &k) in order.iter().enumerate() {
        let (off, data) = seg(k);
        let seq = isn.wrapping_add(1).wrapping_add(off as u32);
        w.tcp(n as u64 + 1, src, dst, seq, false, data).unwrap();
    }
    // A non-HEP TCP flow (HTTP) is ignored.
    w.tcp(
        20,
        sa("192.0.2.3:40000"),
        sa("192.0.2.4:80"),
        1,
        false,
        b"GET / HTTP/1.1\r\n\r\n",
    )
    .unwrap();
    w.finish().unwrap();

    let (lines, code) = run_json(&[path.to_str().unwrap()], None);
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(lines.len(), 5);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["correlation_id"], format!("c{i}"));
        assert_eq!(l["payload"].as_str().unwrap().len(), 100 + i * 700);
        assert_eq!(l["capture"]["transport"], "tcp");
        assert_eq!(l["capture"]["dst"], "192.0.2.2:7777");
    }
}

#[test]
fn pcap_tcp_stream_cut_short_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.pcap");
    let p = log_packet("c", "payload", "10.1.1.1:1", "10.1.1.2:2");
    let (src, dst) = (sa("192.0.2.1:51000"), sa("192.0.2.2:9061"));
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    w.tcp(0, src, dst, 10, true, &[]).unwrap();
    w.tcp(1, src, dst, 11, false, &p).unwrap();
    w.tcp(2, src, dst, 11 + p.len() as u32, false, &p[..20])
        .unwrap();
    w.finish().unwrap();
    let (lines, code) = run_json(&[path.to_str().unwrap()], None);
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["correlation_id"], "c");
    assert!(lines[1]["stream_error"]
        .as_str()
        .unwrap()
        .contains("20 byte(s) left over"));
}

/// A minimal pcapng writer: section header, one Ethernet interface, enhanced packets.
fn pcapng(frames: &[Vec<u8>]) -> Vec<u8> {
    fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
        let pad = (4 - body.len() % 4) % 4;
        let len = (12 + body.len() + pad) as u32;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.extend(std::iter::repeat_n(0u8, pad));
        out.extend_from_slice(&len.to_le_bytes());
    }
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&1u16.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&262_144u32.to_le_bytes());
    block(&mut out, 1, &idb);
    for f in frames {
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(f);
        block(&mut out, 6, &epb);
    }
    out
}

#[test]
fn pcapng_udp() {
    // Take Ethernet frames out of a pcap written by our writer.
    let mut w = PcapWriter::new(Vec::new()).unwrap();
    for i in 0..3 {
        let p = log_packet(&format!("ng{i}"), "{}", "10.0.0.1:1", "10.0.0.2:2");
        w.udp(i, sa("127.0.0.1:1000"), sa("127.0.0.1:9060"), &p)
            .unwrap();
    }
    let pcap = w.finish().unwrap();
    let mut frames = Vec::new();
    let mut pos = 24;
    while pos < pcap.len() {
        let len = u32::from_le_bytes(pcap[pos + 8..pos + 12].try_into().unwrap()) as usize;
        frames.push(pcap[pos + 16..pos + 16 + len].to_vec());
        pos += 16 + len;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.pcapng");
    std::fs::write(&path, pcapng(&frames)).unwrap();
    let (lines, code) = run_json(&[path.to_str().unwrap()], None);
    assert_eq!(code, 0);
    let cids: Vec<_> = lines
        .iter()
        .map(|l| l["correlation_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(cids, ["ng0", "ng1", "ng2"]);
}

#[test]
fn raw_stream_from_file_and_stdin() {
    let mut stream = Vec::new();
    for i in 0..3 {
        stream.extend(log_packet(
            &format!("r{i}"),
            "{}",
            "10.0.0.1:1",
            "10.0.0.2:2",
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.hep");
    std::fs::write(&path, &stream).unwrap();
    let (lines, code) = run_json(&[path.to_str().unwrap()], None);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["capture"]["offset"], (stream.len() / 3 * 2) as u64);
    // stdin, with a broken frame length after two good packets
    let mut broken = stream[..stream.len() / 3 * 2].to_vec();
    broken.extend_from_slice(b"HEP3\x00\x02junk");
    let (lines, code) = run_json(&["-"], Some(&broken));
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["correlation_id"], "r1");
    assert!(lines[2]["stream_error"]
        .as_str()
        .unwrap()
        .contains("frame length 2"));
}

#[test]
fn readable_output_and_lenient_mode() {
    let mut p = log_packet("room:7", "{\"x\":\"y\"}\r\n", "10.0.0.1:8088", "10.0.0.2:0");
    p[0] = b'E'; // EEP3: heplify-server rejects it, lenient mode reads it
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.hep");
    std::fs::write(&path, &p).unwrap();
    let out = heplink()
        .args(["decode", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("#0 rejected: magic EEP3"), "{text}");
    let out = heplink()
        .args(["decode", "--lenient", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim_end(),
        "#0 HEPv3 LOG(100) 10.0.0.1:8088 -> 10.0.0.2:0 UDP 2024-11-24T00:00:00.123456Z \
         cid=\"room:7\" node=\"janus-a\" capture=2001 payload=11B {\"x\":\"y\"}\\r\\n"
    );
}

#[test]
fn missing_file_is_an_error_with_status_2() {
    let out = heplink()
        .args(["decode", "/nonexistent/x.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.pcap"));
}
