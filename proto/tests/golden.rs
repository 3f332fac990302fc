//! Golden vectors, checked by hand byte for byte, and one test per rejection rule of
//! heplify-server (reference §1.5 and §8).

use std::net::IpAddr;

use bytes::BytesMut;
use heplink_proto::*;

/// Parses hex with any whitespace and `"text"` runs (as in the reference's listings).
fn hex(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut parts = s.split('"');
    while let Some(h) = parts.next() {
        let h: String = h.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        assert!(h.len().is_multiple_of(2), "odd hex run {h}");
        for i in (0..h.len()).step_by(2) {
            out.push(u8::from_str_radix(&h[i..i + 2], 16).unwrap());
        }
        match parts.next() {
            Some(text) => out.extend_from_slice(text.as_bytes()),
            None => break,
        }
    }
    out
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// 95 bytes of JSON for the worked example.
const EXAMPLE_JSON: &str = r#"{"emitter":"janus-00001","type":64,"timestamp":1700000000123456,"event":{"plugin":"videoroom"}}"#;

/// Reference §1.9, byte for byte. The reference's header says 226 (0xe2), but its own
/// chunks add up to 6 + 127 + 101 = 228 bytes (0xe4): the listing is right, the total is not.
fn worked_example() -> Vec<u8> {
    let mut v = hex(r#"48 45 50 33 00 e4
        00 00 00 01 00 07 02
        00 00 00 02 00 07 11
        00 00 00 03 00 0a 0a 00 00 01
        00 00 00 04 00 0a 0a 00 00 02
        00 00 00 07 00 08 1f 98
        00 00 00 08 00 08 00 00
        00 00 00 09 00 0a 65 53 f1 00
        00 00 00 0a 00 0a 00 01 e2 40
        00 00 00 0b 00 07 64
        00 00 00 0c 00 0a 00 00 07 d1
        00 00 00 11 00 15 "janus:room:1234"
        00 00 00 13 00 0d "janus-1"
        00 00 00 0f 00 65"#);
    v.extend_from_slice(EXAMPLE_JSON.as_bytes());
    v
}

#[test]
fn worked_example_encodes_byte_for_byte() {
    assert_eq!(EXAMPLE_JSON.len(), 95);
    let b = PacketBuilder::new(ProtoType::LOG, EXAMPLE_JSON)
        .udp((ip("10.0.0.1"), 8088), (ip("10.0.0.2"), 0))
        .timestamp_micros(1_700_000_000_123_456)
        .capture_id(2001)
        .correlation_id("janus:room:1234")
        .node_name("janus-1");
    let bytes = b.to_bytes().unwrap();
    assert_eq!(bytes.len(), 228);
    assert_eq!(&bytes[..], &worked_example()[..]);
    assert_eq!(b.encoded_len(), 228);
}

#[test]
fn worked_example_decodes_every_field() {
    let raw = worked_example();
    let p = decode(&raw, Mode::Strict).unwrap();
    assert_eq!(p.version, Version::V3);
    assert_eq!(p.ip_family, Some(2));
    assert_eq!(p.ip_proto, Some(17));
    assert_eq!(p.src_ip, Some(ip("10.0.0.1")));
    assert_eq!(p.dst_ip, Some(ip("10.0.0.2")));
    assert_eq!(p.src_port, Some(8088));
    assert_eq!(p.dst_port, Some(0));
    assert_eq!(p.ts_sec, Some(1_700_000_000));
    assert_eq!(p.ts_usec, Some(123_456));
    assert_eq!(p.timestamp_micros(), Some(1_700_000_000_123_456));
    assert_eq!(p.proto_type, Some(ProtoType::LOG));
    assert_eq!(p.capture_id, Some(2001));
    assert_eq!(p.correlation_id, Some(&b"janus:room:1234"[..]));
    assert_eq!(p.node_name, Some(&b"janus-1"[..]));
    assert_eq!(p.payload, Some(EXAMPLE_JSON.as_bytes()));
    assert_eq!(p.auth_key, None);
    assert_eq!(p.chunk_count, 13);
    let kinds: Vec<u16> = p.chunks().map(|c| c.kind.0).collect();
    assert_eq!(kinds, [1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 0x11, 0x13, 0x0f]);
    // The payload borrows the input: zero-copy.
    let payload = p.payload.unwrap();
    assert!(std::ptr::eq(payload.as_ptr(), raw[133..].as_ptr()));
}

/// A SIP OPTIONS over IPv4 with an empty auth key chunk, as some agents send it.
#[test]
fn sip_with_empty_auth_key_decodes() {
    let sip = "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x1\r\nCSeq: 1 OPTIONS\r\n\r\n";
    let mut raw = hex(r#"48 45 50 33 00 00
        00 00 00 01 00 07 02
        00 00 00 02 00 07 11
        00 00 00 03 00 0a c0 a8 01 01
        00 00 00 04 00 0a c0 a8 01 02
        00 00 00 07 00 08 13 c4
        00 00 00 08 00 08 13 c4
        00 00 00 09 00 0a 5a a2 9b 98
        00 00 00 0a 00 0a 00 01 d2 f4
        00 00 00 0b 00 07 01
        00 00 00 0c 00 0a 00 00 00 00
        00 00 00 0e 00 06"#);
    raw.extend_from_slice(&[0, 0, 0, 0x0f, 0, (6 + sip.len()) as u8]);
    raw.extend_from_slice(sip.as_bytes());
    let n = raw.len() as u16;
    raw[4..6].copy_from_slice(&n.to_be_bytes());
    let p = decode(&raw, Mode::Strict).unwrap();
    assert_eq!(p.src_ip, Some(ip("192.168.1.1")));
    assert_eq!(p.src_port, Some(5060));
    assert_eq!(p.ts_sec, Some(0x5aa29b98));
    assert_eq!(p.ts_usec, Some(0x0001d2f4));
    assert_eq!(p.proto_type, Some(ProtoType::SIP));
    assert_eq!(p.capture_id, Some(0));
    assert_eq!(p.auth_key, Some(&b""[..]));
    assert_eq!(p.payload, Some(sip.as_bytes()));
    assert_eq!(p.correlation_id, None);
}

/// HEPv2 over IPv4 as Kamailio's siptrace and captagent write it (time header
/// little-endian, 2 bytes of padding after the capture id).
#[test]
fn hepv2_ipv4_decodes() {
    let raw = hex(r#"02 10 02 11 13 c4 13 c5
        7f 00 00 01 7f 00 00 02
        00 f1 53 65  40 e2 01 00  d1 07  00 00
        "INVITE sip:x SIP/2.0""#);
    let p = decode(&raw, Mode::Strict).unwrap();
    assert_eq!(p.version, Version::V2);
    assert_eq!(p.ip_family, Some(2));
    assert_eq!(p.ip_proto, Some(17));
    assert_eq!(p.src_ip, Some(ip("127.0.0.1")));
    assert_eq!(p.dst_ip, Some(ip("127.0.0.2")));
    assert_eq!(p.src_port, Some(5060));
    assert_eq!(p.dst_port, Some(5061));
    assert_eq!(p.ts_sec, Some(1_700_000_000));
    assert_eq!(p.ts_usec, Some(123_456));
    assert_eq!(p.capture_id, Some(2001));
    assert_eq!(p.proto_type, Some(ProtoType::SIP));
    assert_eq!(p.payload, Some(&b"INVITE sip:x SIP/2.0"[..]));
    assert_eq!(p.chunks().count(), 0);
}

#[test]
fn hepv1_ipv6_decodes() {
    let raw = hex(r#"01 28 0a 06 13 c4 13 c4
        20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01
        20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02
        "BYE sip:y SIP/2.0""#);
    let p = decode(&raw, Mode::Strict).unwrap();
    assert_eq!(p.version, Version::V1);
    assert_eq!(p.ip_family, Some(10));
    assert_eq!(p.ip_proto, Some(6));
    assert_eq!(p.src_ip, Some(ip("2001:db8::1")));
    assert_eq!(p.dst_ip, Some(ip("2001:db8::2")));
    assert_eq!(p.ts_sec, None);
    assert_eq!(p.payload, Some(&b"BYE sip:y SIP/2.0"[..]));
}

#[test]
fn hepv2_rejections() {
    let e = decode(&hex("02 10 07 11 13 c4 13 c5"), Mode::Strict).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::BadFamily(7));
    assert_eq!(e.offset, 2);
    let e = decode(
        &hex("02 11 02 11 13 c4 13 c5 7f 00 00 01 7f 00 00 02"),
        Mode::Strict,
    )
    .unwrap_err();
    assert_eq!(
        e.kind,
        DecodeErrorKind::BadHeaderLength {
            declared: 0x11,
            expected: 16
        }
    );
    let e = decode(
        &hex("02 10 02 11 13 c4 13 c5 7f 00 00 01 7f 00"),
        Mode::Strict,
    )
    .unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::Truncated { needed: 14 });
}

/// IPv6 addresses and two vendor chunks (Kamailio and Genesys), hand-checked.
#[test]
fn ipv6_and_vendor_chunks() {
    let raw = hex(r#"48 45 50 33 00 7c
        00 00 00 01 00 07 0a
        00 00 00 02 00 07 11
        00 00 00 05 00 16 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01
        00 00 00 06 00 16 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02
        00 00 00 07 00 08 27 11
        00 00 00 08 00 08 23 84
        00 00 00 0b 00 07 64
        00 00 00 11 00 07 "c"
        00 02 00 80 00 0a de ad be ef
        00 08 01 00 00 0b "vend1"
        00 00 00 0f 00 09 "[1]""#);
    assert_eq!(raw.len(), 0x7c);
    let p = decode(&raw, Mode::Strict).unwrap();
    assert_eq!(p.ip_family, Some(10));
    assert_eq!(p.src_ip, Some(ip("2001:db8::1")));
    assert_eq!(p.dst_ip, Some(ip("fd00::2")));
    assert_eq!(p.src_port, Some(10001));
    assert_eq!(p.dst_port, Some(9092));
    assert_eq!(p.correlation_id, Some(&b"c"[..]));
    assert_eq!(p.payload, Some(&b"[1]"[..]));
    let vendor: Vec<_> = p
        .chunks()
        .filter(|c| c.vendor != VendorId::GENERIC)
        .map(|c| (c.vendor, c.kind, c.body))
        .collect();
    assert_eq!(
        vendor,
        [
            (
                VendorId::KAMAILIO,
                ChunkType(0x80),
                &[0xde, 0xad, 0xbe, 0xef][..]
            ),
            (VendorId::GENESYS, ChunkType(0x100), &b"vend1"[..]),
        ]
    );
    // Lenient re-encoding keeps them in order, byte for byte.
    let lp = decode(&raw, Mode::Lenient).unwrap();
    let mut out = BytesMut::new();
    lp.encode_raw(&mut out);
    assert_eq!(&out[..], &raw[..]);
    // The builder writes the same bytes from the same parts.
    let b = PacketBuilder::new(ProtoType::LOG, "[1]")
        .udp((ip("2001:db8::1"), 10001), (ip("fd00::2"), 9092))
        .correlation_id("c")
        .chunk(
            VendorId::KAMAILIO,
            ChunkType(0x80),
            vec![0xde, 0xad, 0xbe, 0xef],
        )
        .chunk(VendorId::GENESYS, ChunkType(0x100), "vend1");
    assert_eq!(&b.to_bytes().unwrap()[..], &raw[..]);
}

/// Every chunk with a fixed size, at that size, plus the two that decode as fields
/// without a heplify-server size rule (keep-alive).
#[test]
fn every_fixed_size_chunk() {
    let raw = hex(r#"48 45 50 33 00 a6
        00 00 00 01 00 07 02
        00 00 00 02 00 07 06
        00 00 00 03 00 0a 01 02 03 04
        00 00 00 04 00 0a 05 06 07 08
        00 00 00 05 00 16 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 09
        00 00 00 06 00 16 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 0a
        00 00 00 07 00 08 00 01
        00 00 00 08 00 08 00 02
        00 00 00 09 00 0a 00 00 00 03
        00 00 00 0a 00 0a 00 00 00 04
        00 00 00 0b 00 07 05
        00 00 00 0c 00 0a 00 00 00 06
        00 00 00 0d 00 08 00 07
        00 00 00 12 00 08 00 08
        00 00 00 11 00 06
        00 00 00 0f 00 07 "x""#);
    assert_eq!(raw.len(), 0xa6);
    let p = decode(&raw, Mode::Strict).unwrap();
    assert_eq!(p.ip_proto, Some(6));
    // IPv6 chunks come after the IPv4 ones: the last address wins, as in heplify-server.
    assert_eq!(p.src_ip, Some(ip("::9")));
    assert_eq!(p.dst_ip, Some(ip("::a")));
    assert_eq!((p.src_port, p.dst_port), (Some(1), Some(2)));
    assert_eq!((p.ts_sec, p.ts_usec), (Some(3), Some(4)));
    assert_eq!(p.proto_type, Some(ProtoType::RTCP_JSON));
    assert_eq!(p.capture_id, Some(6));
    assert_eq!(p.keep_alive, Some(7));
    assert_eq!(p.vlan, Some(8));
    assert_eq!(p.correlation_id, Some(&b""[..]));
    assert_eq!(p.payload, Some(&b"x"[..]));
}

fn packet_with(chunk: &[u8]) -> Vec<u8> {
    let mut raw = b"HEP3\0\0".to_vec();
    raw.extend_from_slice(chunk);
    let n = raw.len() as u16;
    raw[4..6].copy_from_slice(&n.to_be_bytes());
    raw
}

// ---- one test per rejection rule ----

#[test]
fn rule_magic_must_be_hep3() {
    let e = decode(&hex(r#""HEP2" 00 06"#), Mode::Strict).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::BadMagic(*b"HEP2"));
    assert_eq!(e.offset, 0);
    let e = decode(&hex(r#""EEP3" 00 06"#), Mode::Strict).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::EepMagic);
    assert!(decode(&hex(r#""EEP3" 00 06"#), Mode::Lenient).is_ok());
}

#[test]
fn rule_header_needs_six_bytes() {
    let e = decode(b"HEP3\0", Mode::Strict).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::Truncated { needed: 1 });
    let e = decode(b"", Mode::Strict).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::Truncated { needed: 6 });
}

#[test]
fn rule_length_field_equals_packet_size() {
    let mut raw = worked_example();
    raw.push(0);
    let e = decode(&raw, Mode::Strict).unwrap_err();
    assert_eq!(
        e.kind,
        DecodeErrorKind::LengthMismatch {
            declared: 228,
            actual: 229
        }
    );
    assert_eq!(e.offset, 4);
    // Lenient mode takes the declared length and ignores the rest.
    assert_eq!(decode(&raw, Mode::Lenient).unwrap().raw.len(), 228);
    raw.truncate(227);
    let e = decode(&raw, Mode::Lenient).unwrap_err();
    assert!(matches!(e.kind, DecodeErrorKind::LengthMismatch { .. }));
}

#[test]
fn rule_chunk_header_needs_six_bytes() {
    let raw = packet_with(&hex("00 00 00 0b 00 07 64  00 00 00"));
    let e = decode(&raw, Mode::Strict).unwrap_err();
    assert_eq!(
        e.kind,
        DecodeErrorKind::ChunkHeaderTruncated { remaining: 3 }
    );
    assert_eq!(e.offset, 13);
    assert!(decode(&raw, Mode::Lenient).is_err());
}

#[test]
fn rule_chunk_length_at_least_six() {
    let raw = packet_with(&hex("00 00 00 0f 00 05 00 00 00"));
    let e = decode(&raw, Mode::Strict).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::ChunkTooShort { length: 5 });
    assert_eq!(e.chunk, Some(ChunkType::PAYLOAD));
    assert_eq!(e.offset, 6);
    assert!(decode(&raw, Mode::Lenient).is_err());
}

#[test]
fn rule_chunk_inside_packet() {
    let raw = packet_with(&hex("00 00 00 0b 00 07 64  00 00 00 0f 00 20 41 42"));
    let e = decode(&raw, Mode::Strict).unwrap_err();
    assert_eq!(
        e.kind,
        DecodeErrorKind::ChunkPastEnd {
            length: 32,
            remaining: 8
        }
    );
    assert_eq!(e.offset, 13);
    assert_eq!(
        e.to_string(),
        "chunk length 32 runs past the end of the packet (8 byte(s) left) at byte 13 (chunk payload(15))"
    );
}

#[test]
fn rule_fixed_sizes_one_two_four_sixteen() {
    for (kind, good) in [
        (0x01u16, 1usize),
        (0x02, 1),
        (0x0b, 1),
        (0x07, 2),
        (0x08, 2),
        (0x12, 2),
        (0x03, 4),
        (0x04, 4),
        (0x09, 4),
        (0x0a, 4),
        (0x0c, 4),
        (0x05, 16),
        (0x06, 16),
    ] {
        for bad in [good - 1, good + 1] {
            let mut chunk = vec![0, 0];
            chunk.extend_from_slice(&kind.to_be_bytes());
            chunk.extend_from_slice(&((bad + 6) as u16).to_be_bytes());
            chunk.resize(6 + bad, 0);
            let raw = packet_with(&chunk);
            let e = decode(&raw, Mode::Strict).unwrap_err();
            assert_eq!(
                e.kind,
                DecodeErrorKind::WrongFixedSize {
                    expected: good,
                    actual: bad
                },
                "type {kind:#x}"
            );
            assert_eq!(e.chunk, Some(ChunkType(kind)));
            // Lenient keeps the chunk raw and leaves the field empty.
            let p = decode(&raw, Mode::Lenient).unwrap();
            assert_eq!(p.chunks().count(), 1);
            assert_eq!(
                (p.ip_family, p.src_port, p.ts_sec, p.src_ip),
                (None, None, None, None)
            );
        }
    }
}

#[test]
fn rule_fixed_sizes_apply_to_vendor_chunks_too() {
    // heplify-server ignores the vendor id, so a vendor chunk of type 0x0b must be 1 byte.
    let raw = packet_with(&hex("00 08 00 0b 00 08 64 00"));
    let e = decode(&raw, Mode::Strict).unwrap_err();
    assert_eq!(e.vendor, Some(VendorId::GENESYS));
    assert!(matches!(e.kind, DecodeErrorKind::WrongFixedSize { .. }));
}

#[test]
fn unknown_chunk_types_are_skipped_by_length() {
    let raw = packet_with(&hex("00 00 77 77 00 09 01 02 03  00 00 00 0b 00 07 64"));
    let p = decode(&raw, Mode::Strict).unwrap();
    assert_eq!(p.proto_type, Some(ProtoType::LOG));
    let first = p.chunks().next().unwrap();
    assert_eq!(first.kind, ChunkType(0x7777));
    assert_eq!(first.kind.to_string(), "0x7777");
}

// ---- encoder refusals ----

fn ok_builder() -> PacketBuilder {
    PacketBuilder::new(ProtoType::LOG, "{}").correlation_id("c")
}

#[test]
fn encoder_refuses_what_heplify_server_drops() {
    let mut b = ok_builder();
    b.proto_type = None;
    assert_eq!(b.to_bytes(), Err(EncodeError::MissingProtoType));
    let mut b = ok_builder();
    b.proto_type = Some(ProtoType::RESERVED);
    assert_eq!(b.to_bytes(), Err(EncodeError::ReservedProtoType));
    let mut b = ok_builder();
    b.payload = Default::default();
    assert_eq!(b.to_bytes(), Err(EncodeError::EmptyPayload));
    let b = PacketBuilder::new(ProtoType::LOG, "{}");
    assert_eq!(
        b.to_bytes(),
        Err(EncodeError::MissingCorrelationId(ProtoType::LOG))
    );
    let b = PacketBuilder::new(ProtoType::LOG, "{}").correlation_id("");
    assert_eq!(
        b.to_bytes(),
        Err(EncodeError::MissingCorrelationId(ProtoType::LOG))
    );
    // SIP needs no correlation id: heplify-server uses the Call-ID.
    assert!(PacketBuilder::new(ProtoType::SIP, "INVITE")
        .to_bytes()
        .is_ok());
}

#[test]
fn encoder_refuses_oversize_without_truncating() {
    let max_payload = MAX_PACKET_LEN - ok_builder().encoded_len() + 2;
    let mut b = ok_builder();
    b.payload = vec![b'a'; max_payload].into();
    assert_eq!(b.to_bytes().unwrap().len(), MAX_PACKET_LEN);
    b.payload = vec![b'a'; max_payload + 1].into();
    assert_eq!(
        b.to_bytes(),
        Err(EncodeError::TooLarge {
            size: MAX_PACKET_LEN + 1
        })
    );
    b.payload = vec![b'a'; 70_000].into();
    let mut out = BytesMut::new();
    assert!(b.encode(&mut out).is_err());
    assert!(out.is_empty(), "nothing written on error");
}

#[test]
fn encoder_refuses_quote_and_backslash() {
    for (name, key, field, byte) in [
        ("a\"b", "", "node name", '"'),
        ("a\\b", "", "node name", '\\'),
        ("ok", "k\"", "auth key", '"'),
        ("ok", "k\\", "auth key", '\\'),
    ] {
        let b = ok_builder()
            .node_name(name.to_string())
            .auth_key(key.to_string());
        assert_eq!(
            b.to_bytes(),
            Err(EncodeError::ForbiddenByte { field, byte })
        );
    }
}

#[test]
fn encoder_refuses_mixed_families() {
    let b = ok_builder().udp((ip("10.0.0.1"), 1), (ip("::1"), 2));
    assert_eq!(b.to_bytes(), Err(EncodeError::MixedFamilies));
}

#[test]
fn encoder_checks_extra_chunks() {
    let b = ok_builder().chunk(VendorId::GENERIC, ChunkType::VLAN, vec![1u8]);
    assert_eq!(
        b.to_bytes(),
        Err(EncodeError::DuplicateField(ChunkType::VLAN))
    );
    let b = ok_builder().chunk(VendorId::GENERIC, ChunkType::TCP_FLAGS, vec![1u8, 2]);
    assert!(b.to_bytes().is_ok(), "0x17 has no heplify-server size rule");
    let b = ok_builder().chunk(VendorId::GENESYS, ChunkType::CORRELATION_ID, "x");
    assert_eq!(
        b.to_bytes(),
        Err(EncodeError::VendorReusesGenericType {
            vendor: VendorId::GENESYS,
            chunk: ChunkType::CORRELATION_ID
        })
    );
    let b = ok_builder().chunk(VendorId::GENESYS, ChunkType(0x80), "x");
    let bytes = b.to_bytes().unwrap();
    let p = decode(&bytes, Mode::Strict).unwrap();
    assert!(p
        .chunks()
        .any(|c| c.vendor == VendorId::GENESYS && c.body == b"x"));
}

// ---- framer ----

#[test]
fn framer_answers_complete_or_needed() {
    let raw = worked_example();
    assert_eq!(frame(&raw[..3]), Ok(Frame::Incomplete(3)));
    assert_eq!(frame(&raw[..100]), Ok(Frame::Incomplete(128)));
    assert_eq!(frame(&raw), Ok(Frame::Complete(228)));
    let mut two = raw.clone();
    two.extend_from_slice(&raw);
    assert_eq!(frame(&two), Ok(Frame::Complete(228)));
    assert_eq!(frame(b"HEP3\x00\x05"), Err(FrameError { length: 5 }));
    assert_eq!(frame(b"HEP3\xff\xe4"), Err(FrameError { length: 65508 }));
    assert_eq!(frame(b"HEP3\xff\xe3"), Ok(Frame::Incomplete(65507 - 6)));
}

#[test]
fn next_frame_splits_a_bytes_mut() {
    let raw = worked_example();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&raw);
    buf.extend_from_slice(&raw[..10]);
    let f = next_frame(&mut buf).unwrap().unwrap();
    assert_eq!(&f[..], &raw[..]);
    assert_eq!(next_frame(&mut buf), Ok(None));
    assert_eq!(buf.len(), 10);
}
