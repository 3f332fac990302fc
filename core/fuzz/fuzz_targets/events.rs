//! Any body through the whole pipeline (read, correlate, map, encode): no panic, every
//! packet it encodes decodes strictly, none fails to encode, and every event that reads
//! gives at least one packet.
#![no_main]

use bytes::Bytes;
use heplink_core::correlate;
use heplink_core::map::MapConfig;
use heplink_core::pipeline::Pipeline;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = Pipeline::new(correlate::Config::default(), MapConfig::default());
    let body = Bytes::copy_from_slice(data);
    let mut packets = 0u64;
    let mut sink = |o: heplink_core::pipeline::Output<'_>| {
        heplink_core::proto::decode(&o.packet, heplink_core::proto::Mode::Strict)
            .expect("what the pipeline encodes decodes strictly");
        packets += 1;
    };
    let _ = p.push_body(&body, 1_700_000_000_000_000, &mut sink);
    p.flush(1_700_000_000_000_001, &mut sink);
    assert_eq!(p.stats().unencodable, 0, "every packet encodes");
    assert!(
        packets >= p.stats().events,
        "{packets} packets for {} events",
        p.stats().events
    );
});
