//! Property tests: builder ↔ decoder symmetry, no panics on arbitrary bytes, and framing
//! independent of how a stream is split into reads.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{Bytes, BytesMut};
use heplink_proto::*;
use proptest::prelude::*;

fn addr_pair() -> impl Strategy<Value = Option<(IpAddr, IpAddr)>> {
    prop_oneof![
        Just(None),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| Some((
            IpAddr::V4(Ipv4Addr::from(a)),
            IpAddr::V4(Ipv4Addr::from(b))
        ))),
        (any::<u128>(), any::<u128>()).prop_map(|(a, b)| Some((
            IpAddr::V6(Ipv6Addr::from(a)),
            IpAddr::V6(Ipv6Addr::from(b))
        ))),
    ]
}

fn safe_text() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        any::<u8>().prop_filter("no quote", |b| *b != b'"' && *b != b'\\'),
        0..40,
    )
}

prop_compose! {
    fn builder()(
        proto in 1u8..=255,
        addrs in addr_pair(),
        ip_proto in proptest::option::of(any::<u8>()),
        ports in proptest::option::of((any::<u16>(), any::<u16>())),
        ts in proptest::option::of(any::<u64>().prop_map(|t| t % 4_000_000_000_000_000)),
        capture_id in proptest::option::of(any::<u32>()),
        auth_key in proptest::option::of(safe_text()),
        cid in proptest::collection::vec(any::<u8>(), 1..60),
        node in proptest::option::of(safe_text()),
        vlan in proptest::option::of(any::<u16>()),
        vendor_chunks in proptest::collection::vec((1u16..=0xffff, 0x2au16..=0xffff, proptest::collection::vec(any::<u8>(), 0..20)), 0..3),
        payload in proptest::collection::vec(any::<u8>(), 1..3000),
    ) -> PacketBuilder {
        let mut b = PacketBuilder::new(ProtoType(proto), payload);
        b.ip_proto = ip_proto;
        if let Some((s, d)) = addrs { b.src_ip = Some(s); b.dst_ip = Some(d); }
        if let Some((s, d)) = ports { b.src_port = Some(s); b.dst_port = Some(d); }
        if let Some(t) = ts { b = b.timestamp_micros(t); }
        b.capture_id = capture_id;
        b.auth_key = auth_key.map(Bytes::from);
        b.correlation_id = Some(Bytes::from(cid));
        b.node_name = node.map(Bytes::from);
        b.vlan = vlan;
        for (v, k, body) in vendor_chunks { b = b.chunk(VendorId(v), ChunkType(k), body); }
        b
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn builder_output_decodes_to_the_same_fields_and_reencodes_identically(b in builder()) {
        let bytes = b.to_bytes().unwrap();
        prop_assert_eq!(bytes.len(), b.encoded_len());
        let p = decode(&bytes, Mode::Strict).unwrap();
        prop_assert_eq!(p.proto_type, b.proto_type);
        prop_assert_eq!(p.src_ip, b.src_ip);
        prop_assert_eq!(p.dst_ip, b.dst_ip);
        prop_assert_eq!(p.ip_family, b.src_ip.map(|a| if a.is_ipv4() { 2 } else { 10 }));
        prop_assert_eq!(p.ip_proto, b.ip_proto);
        prop_assert_eq!(p.src_port, b.src_port);
        prop_assert_eq!(p.dst_port, b.dst_port);
        prop_assert_eq!(p.ts_sec, b.ts_sec);
        prop_assert_eq!(p.ts_usec, b.ts_usec);
        prop_assert_eq!(p.capture_id, b.capture_id);
        prop_assert_eq!(p.auth_key, b.auth_key.as_deref());
        prop_assert_eq!(p.correlation_id, b.correlation_id.as_deref());
        prop_assert_eq!(p.node_name, b.node_name.as_deref());
        prop_assert_eq!(p.vlan, b.vlan);
        prop_assert_eq!(p.payload, Some(&b.payload[..]));
        let vendor: Vec<_> = p.chunks().filter(|c| c.vendor != VendorId::GENERIC)
            .map(|c| (c.vendor, c.kind, c.body.to_vec())).collect();
        let want: Vec<_> = b.extra.iter().map(|c| (c.vendor, c.kind, c.body.to_vec())).collect();
        prop_assert_eq!(vendor, want);
        // Re-encoding the view gives the same bytes in both modes.
        for mode in [Mode::Strict, Mode::Lenient] {
            let mut out = BytesMut::new();
            decode(&bytes, mode).unwrap().encode_raw(&mut out);
            prop_assert_eq!(&out[..], &bytes[..]);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        for mode in [Mode::Strict, Mode::Lenient] {
            if let Ok(p) = decode(&data, mode) {
                let mut out = BytesMut::new();
                p.encode_raw(&mut out);
                prop_assert_eq!(&out[..], p.raw);
                let _ = p.chunks().count();
            }
        }
        let _ = frame(&data);
        let _ = Frames::new(&data).count();
    }

    #[test]
    fn mutated_packets_never_panic_and_strict_implies_lenient(
        b in builder(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)
    ) {
        let mut bytes = b.to_bytes().unwrap().to_vec();
        for (i, v) in flips { let n = bytes.len(); bytes[i % n] = v; }
        let strict = decode(&bytes, Mode::Strict);
        let lenient = decode(&bytes, Mode::Lenient);
        if let Ok(s) = &strict {
            // Everything strict accepts, lenient accepts with the same chunks.
            let l = lenient.as_ref().unwrap();
            prop_assert_eq!(s.chunks().collect::<Vec<_>>(), l.chunks().collect::<Vec<_>>());
        }
    }

    #[test]
    fn any_split_of_a_stream_gives_the_same_frames(
        packets in proptest::collection::vec(builder(), 1..6),
        cuts in proptest::collection::vec(1usize..700, 1..40),
    ) {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for b in &packets {
            let p = b.to_bytes().unwrap();
            stream.extend_from_slice(&p);
            want.push(p);
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut pos = 0;
        let mut cut = cuts.iter().cycle();
        while pos < stream.len() {
            let n = (*cut.next().unwrap()).min(stream.len() - pos);
            buf.extend_from_slice(&stream[pos..pos + n]);
            pos += n;
            while let Some(f) = next_frame(&mut buf).unwrap() {
                got.push(f);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, want);
    }
}
