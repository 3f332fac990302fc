//! Where the time of one event goes: split, parse, correlate, map, encode, measured
//! stage by stage over the real fixture mix (ns per event, one core). Prints a table.
//! Run: `cargo bench --bench breakdown`.

#[path = "../../benches/common/mod.rs"]
mod common;

/// The allocator the `heplink` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use heplink_core::correlate::{self, Correlator};
use heplink_core::janus::{split_events, EventParser};
use heplink_core::map::{MapConfig, Mapper};

fn main() {
    let bodies: Vec<Bytes> = common::replicated(8).into_iter().map(Bytes::from).collect();
    let rounds = 30;
    let pieces: Vec<Bytes> = bodies
        .iter()
        .flat_map(|b| split_events(b).into_iter().map(Result::unwrap))
        .collect();
    let n = (pieces.len() * rounds) as f64;
    let bytes: usize = pieces.iter().map(|p| p.len()).sum();

    let t = Instant::now();
    for _ in 0..rounds {
        for b in &bodies {
            black_box(split_events(b));
        }
    }
    let split = t.elapsed().as_nanos() as f64 / n;

    let mut parser = EventParser::new();
    let t = Instant::now();
    for _ in 0..rounds {
        for p in &pieces {
            black_box(parser.parse(p.clone()).unwrap());
        }
    }
    let parse = t.elapsed().as_nanos() as f64 / n;

    {
        let ice = pieces
            .iter()
            .find(|p| p.windows(9).any(|w| w == b"gathering"))
            .unwrap()
            .clone();
        let s = std::str::from_utf8(&ice).unwrap();
        let t = Instant::now();
        for _ in 0..100_000 {
            black_box(serde_json::from_str::<serde::de::IgnoredAny>(black_box(s)).unwrap());
        }
        println!(
            "calib IgnoredAny {} B: {} ns",
            s.len(),
            t.elapsed().as_nanos() / 100_000
        );
        let t = Instant::now();
        for _ in 0..100_000 {
            black_box(
                serde_json::from_str::<
                    std::collections::BTreeMap<&str, &serde_json::value::RawValue>,
                >(black_box(s))
                .unwrap(),
            );
        }
        println!("calib map of raw: {} ns", t.elapsed().as_nanos() / 100_000);
        let t = Instant::now();
        for _ in 0..100_000 {
            black_box(parser.parse(ice.clone()).unwrap());
        }
        println!("our parse: {} ns", t.elapsed().as_nanos() / 100_000);
        let media = pieces
            .iter()
            .find(|p| {
                p.windows(13).any(|w| w == b"\"subtype\":3,\"")
                    && p.windows(9).any(|w| w == b"\"type\":32")
            })
            .unwrap()
            .clone();
        let ms = std::str::from_utf8(&media).unwrap();
        let t = Instant::now();
        for _ in 0..100_000 {
            let mut sc = heplink_core::janus::scan::Scanner::new(black_box(ms));
            sc.skip().unwrap();
            black_box(sc.pos());
        }
        println!(
            "skip media {} B: {} ns",
            ms.len(),
            t.elapsed().as_nanos() / 100_000
        );
        let t = Instant::now();
        for _ in 0..100_000 {
            black_box(serde_json::from_str::<serde::de::IgnoredAny>(black_box(ms)).unwrap());
        }
        println!(
            "serde IgnoredAny media: {} ns",
            t.elapsed().as_nanos() / 100_000
        );
        let t = Instant::now();
        for _ in 0..100_000 {
            black_box(parser.parse(media.clone()).unwrap());
        }
        println!("our parse media: {} ns", t.elapsed().as_nanos() / 100_000);
    }
    // per type
    let mut by: std::collections::BTreeMap<(u16, Option<u16>), (usize, usize, u128)> =
        Default::default();
    for p in &pieces {
        let e = parser.parse(p.clone()).unwrap();
        let t = Instant::now();
        for _ in 0..20 {
            black_box(parser.parse(p.clone()).unwrap());
        }
        let el = t.elapsed().as_nanos();
        let ent = by.entry((e.kind.code(), e.subtype)).or_default();
        ent.0 += 1;
        ent.1 += p.len();
        ent.2 += el / 20;
    }
    for ((k, s), (n, b, ns)) in by {
        println!(
            "type {k}/{s:?}: {n} events, {} B avg, {} ns avg, {} ns total share",
            b / n,
            ns / n as u128,
            ns
        );
    }
    let events: Vec<_> = pieces
        .iter()
        .map(|p| parser.parse(p.clone()).unwrap())
        .collect();
    let t = Instant::now();
    let mut correlated = Vec::new();
    for _ in 0..rounds {
        let mut c = Correlator::new(correlate::Config::default());
        let mut out = Vec::with_capacity(events.len() + 16);
        for (i, e) in events.iter().enumerate() {
            c.push(e.clone(), 1_795_000_000_000_000 + i as u64, &mut out);
        }
        c.flush(1_795_000_000_000_000 + events.len() as u64, &mut out);
        correlated = out;
    }
    let correlate_ns = t.elapsed().as_nanos() as f64 / n;

    // Mapping ends at encoded bytes: the two are one step.
    let mut mapper = Mapper::new(MapConfig::default());
    let t = Instant::now();
    let mut out = BytesMut::with_capacity(1 << 17);
    for _ in 0..rounds {
        for c in &correlated {
            std::hint::black_box(mapper.encode(c, None, 0, &mut out).unwrap());
        }
    }
    let map_encode = t.elapsed().as_nanos() as f64 / n;
    let total = split + parse + correlate_ns + map_encode;
    println!(
        "{} events, {:.0} bytes per event on average",
        pieces.len(),
        bytes as f64 / pieces.len() as f64
    );
    println!("stage      ns/event");
    for (name, v) in [
        ("split", split),
        ("parse", parse),
        ("correlate", correlate_ns),
        ("map+encode", map_encode),
        ("total", total),
    ] {
        println!("{name:<11} {v:>8.0}");
    }
    println!("=> {:.0} events/s on one core", 1e9 / total);
}
