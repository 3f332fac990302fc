//! Decode and encode of realistic packets: a 300-byte Janus event, a 1.5 KB SIP INVITE
//! and an 8 KB JSEP offer. Targets on one core: decode ≥ 1 GB/s, encode ≥ 5 M packets/s
//! of 300 bytes.

use std::hint::black_box;
use std::net::IpAddr;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use heplink::proto::{decode, Mode, PacketBuilder, ProtoType};

fn builder(payload_len: usize, proto: ProtoType) -> PacketBuilder {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let mut payload = String::from(
        r#"{"emitter":"janus-1","type":16,"subtype":1,"timestamp":1732406401400000,"session_id":8879576811135393,"handle_id":6836738107974166,"event":{"ice":"connected","sdp":""#,
    );
    while payload.len() + 3 < payload_len {
        payload.push('a');
    }
    payload.push_str("\"}}");
    PacketBuilder::new(proto, payload)
        .udp((ip("203.0.113.7"), 51432), (ip("10.0.0.5"), 10104))
        .timestamp_micros(1_732_406_401_400_000)
        .capture_id(2001)
        .correlation_id("janus-1:room:4242")
        .node_name("janus-1")
}

fn sizes() -> Vec<(&'static str, PacketBuilder)> {
    // payload sizes chosen so the whole packets are about 300 B, 1.5 KB and 8 KB
    vec![
        ("janus_event_300B", builder(300 - 139, ProtoType::LOG)),
        ("sip_invite_1500B", builder(1500 - 139, ProtoType::SIP)),
        ("jsep_offer_8KB", builder(8192 - 139, ProtoType::LOG)),
    ]
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_strict");
    for (name, b) in sizes() {
        let bytes = b.to_bytes().unwrap();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{name}_{}", bytes.len())),
            &bytes,
            |bench, bytes| {
                bench.iter(|| {
                    let p = decode(black_box(bytes), Mode::Strict).unwrap();
                    black_box(p.payload);
                })
            },
        );
    }
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for (name, b) in sizes() {
        g.throughput(Throughput::Elements(1));
        let mut out = BytesMut::with_capacity(1 << 16);
        g.bench_function(format!("{name}_{}", b.encoded_len()), |bench| {
            bench.iter(|| {
                out.clear();
                black_box(&b).encode(&mut out).unwrap();
                black_box(out.len());
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_decode, bench_encode);
criterion_main!(benches);
