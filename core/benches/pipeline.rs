//! Events per second through model + correlator + mapper + encoder, no I/O, one core,
//! with the real fixture mix (one event-handler body per call, as Janus posts them).
//! Target: ≥ 1,000,000 events/s.

#[path = "../../benches/common/mod.rs"]
mod common;

/// The allocator the `heplink` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use heplink_core::correlate;
use heplink_core::map::MapConfig;
use heplink_core::pipeline::Pipeline;

fn bench(c: &mut Criterion) {
    let bodies: Vec<Bytes> = common::replicated(8).into_iter().map(Bytes::from).collect();
    let events: u64 = bodies
        .iter()
        .map(|b| heplink_core::janus::split_events(b).len() as u64)
        .sum();
    let bytes: u64 = bodies.iter().map(|b| b.len() as u64).sum();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(events));
    g.bench_function(
        format!("fixture_mix_{events}_events_{}KB", bytes / 1024),
        |b| {
            b.iter(|| {
                let mut p = Pipeline::new(correlate::Config::default(), MapConfig::default());
                let mut now = 1_795_000_000_000_000u64;
                let mut packets = 0u64;
                for body in &bodies {
                    now += 10;
                    // The pipeline ends at encoded packets.
                    p.push_body(body, now, &mut |o| {
                        black_box(&o.packet);
                        packets += 1;
                    });
                }
                p.flush(now, &mut |_| packets += 1);
                black_box(packets)
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
