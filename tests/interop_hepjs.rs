//! Interop with npm `hep-js` 1.0.22, the sipcapture Node HEP library, in both directions.
//! Needs `node` and `npm install` in `tests/node` (done by `.ci/run`).

mod common;

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use heplink::proto::{decode, ChunkType, Mode, PacketBuilder, ProtoType, VendorId};
use serde_json::Value;

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

fn hepjs_here(test: &str) -> bool {
    common::peers(
        test,
        &[
            ("node", common::on_path("node"), "apt-get install nodejs"),
            (
                "hep-js",
                node_dir().join("node_modules/hep-js").is_dir(),
                "`npm ci` in tests/node",
            ),
        ],
    )
}

fn node(mode: &str, stdin: &[u8]) -> Vec<Value> {
    let dir = node_dir();
    let mut child = Command::new("node")
        .arg(dir.join("hepjs_interop.js"))
        .arg(mode)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is not installed");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn text(b: Option<&[u8]>) -> Option<String> {
    b.map(|b| String::from_utf8(b.to_vec()).unwrap())
}

#[test]
fn packets_hepjs_encodes_decode_field_for_field() {
    if !hepjs_here("packets_hepjs_encodes_decode_field_for_field") {
        return;
    }
    let cases = node("encode", b"");
    assert_eq!(cases.len(), 5);
    for c in &cases {
        let bytes = unhex(c["hex"].as_str().unwrap());
        let p = decode(&bytes, Mode::Strict).unwrap_or_else(|e| panic!("{e} in {c}"));
        let r = &c["rcinfo"];
        let ip = |k: &str| Some(r[k].as_str().unwrap().parse::<IpAddr>().unwrap());
        assert_eq!(
            p.ip_family,
            Some(r["protocolFamily"].as_u64().unwrap() as u8)
        );
        assert_eq!(p.ip_proto, Some(r["protocol"].as_u64().unwrap() as u8));
        assert_eq!(p.src_ip, ip("srcIp"));
        assert_eq!(p.dst_ip, ip("dstIp"));
        assert_eq!(p.src_port.map(u64::from), r["srcPort"].as_u64());
        assert_eq!(p.dst_port.map(u64::from), r["dstPort"].as_u64());
        assert_eq!(p.ts_sec.map(u64::from), r["timeSeconds"].as_u64());
        assert_eq!(p.ts_usec.map(u64::from), r["timeUseconds"].as_u64());
        assert_eq!(
            p.proto_type.map(|t| u64::from(t.0)),
            r["payloadType"].as_u64()
        );
        assert_eq!(p.capture_id.map(u64::from), r["captureId"].as_u64());
        assert_eq!(
            text(p.correlation_id).as_deref(),
            r["correlation_id"].as_str()
        );
        assert_eq!(text(p.auth_key).as_deref(), r["capturePass"].as_str());
        // hep-js always writes a node name, falling back to the capture id as text.
        let node = r["hepNodeName"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| r["captureId"].to_string());
        assert_eq!(text(p.node_name), Some(node));
        assert_eq!(text(p.payload).as_deref(), c["payload"].as_str());
        if let Some(v) = r["vendor_note"].as_str() {
            let chunk = p.chunks().find(|c| c.vendor == VendorId::GENESYS).unwrap();
            assert_eq!(chunk.kind, ChunkType(0x80));
            assert_eq!(chunk.body, v.as_bytes());
        }
    }
}

#[test]
fn packets_we_encode_hepjs_decodes_to_the_same_fields() {
    if !hepjs_here("packets_we_encode_hepjs_decodes_to_the_same_fields") {
        return;
    }
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let builders = vec![
        PacketBuilder::new(ProtoType::LOG, r#"{"janus":"event","n":1}"#)
            .udp((ip("10.0.0.1"), 8088), (ip("10.0.0.2"), 0))
            .timestamp_micros(1_732_406_400_654_321)
            .capture_id(2001)
            .correlation_id("janus-1:room:4242")
            .node_name("janus-1"),
        PacketBuilder::new(
            ProtoType::SIP,
            "INVITE sip:frontdesk@127.0.0.42 SIP/2.0\r\nCall-ID: Pd1u\r\nCSeq: 1 INVITE\r\n\r\n",
        )
        .udp((ip("127.0.0.41"), 5060), (ip("127.0.0.42"), 5070))
        .timestamp_micros(1)
        .capture_id(7)
        .correlation_id("Pd1u")
        .auth_key("secret"),
        // IPv6: hep-js reads no IPv6 address chunks, the rest must still come through.
        PacketBuilder::new(ProtoType::RTCP_JSON, "{}")
            .udp((ip("2001:db8::1"), 1), (ip("2001:db8::2"), 2))
            .timestamp_micros(1_700_000_000_000_000)
            .correlation_id("v6"),
    ];
    let mut stream = Vec::new();
    for b in &builders {
        stream.extend_from_slice(&b.to_bytes().unwrap());
    }
    let decoded = node("decode", &stream);
    assert_eq!(decoded.len(), builders.len());
    for (b, d) in builders.iter().zip(&decoded) {
        let r = &d["rcinfo"];
        assert_eq!(
            r["payloadType"].as_u64(),
            b.proto_type.map(|t| u64::from(t.0))
        );
        assert_eq!(r["srcPort"].as_u64(), b.src_port.map(u64::from));
        assert_eq!(r["dstPort"].as_u64(), b.dst_port.map(u64::from));
        assert_eq!(r["timeSeconds"].as_u64(), b.ts_sec.map(u64::from));
        assert_eq!(r["timeUseconds"].as_u64(), b.ts_usec.map(u64::from));
        assert_eq!(r["captureId"].as_u64(), b.capture_id.map(u64::from));
        assert_eq!(
            r["correlation_id"].as_str(),
            b.correlation_id
                .as_deref()
                .map(|c| std::str::from_utf8(c).unwrap())
        );
        assert_eq!(
            r["capturePass"].as_str(),
            b.auth_key
                .as_deref()
                .map(|c| std::str::from_utf8(c).unwrap())
        );
        assert_eq!(
            r["hepNodeName"].as_str(),
            b.node_name
                .as_deref()
                .map(|c| std::str::from_utf8(c).unwrap())
        );
        assert_eq!(d["payload"].as_str().unwrap().as_bytes(), &b.payload[..]);
        match b.src_ip {
            Some(IpAddr::V4(a)) => {
                assert_eq!(r["protocolFamily"], 2);
                assert_eq!(r["srcIp"].as_str(), Some(a.to_string().as_str()));
                assert_eq!(
                    r["dstIp"].as_str(),
                    b.dst_ip.map(|a| a.to_string()).as_deref()
                );
            }
            _ => {
                assert_eq!(r["protocolFamily"], 10);
                assert!(
                    r.get("srcIp").is_none(),
                    "hep-js has no IPv6 address chunks: {r}"
                );
            }
        }
    }
}
