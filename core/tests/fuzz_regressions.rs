//! Inputs the fuzz targets once failed on (`fixtures/fuzz/`), checked with the targets'
//! own invariants: any body through read, correlate, map and encode never panics, every
//! packet encodes (and decodes strictly), and every event read gives at least one packet.

use bytes::Bytes;
use heplink_core::correlate;
use heplink_core::map::MapConfig;
use heplink_core::pipeline::{Output, Pipeline};

fn check(name: &str, data: &[u8]) {
    let mut p = Pipeline::new(correlate::Config::default(), MapConfig::default());
    let mut packets = 0u64;
    let mut sink = |o: Output<'_>| {
        heplink_core::proto::decode(&o.packet, heplink_core::proto::Mode::Strict)
            .unwrap_or_else(|e| panic!("{name}: a packet that does not decode: {e}"));
        packets += 1;
    };
    let _ = p.push_body(
        &Bytes::copy_from_slice(data),
        1_700_000_000_000_000,
        &mut sink,
    );
    p.flush(1_700_000_000_000_001, &mut sink);
    assert_eq!(
        p.stats().unencodable,
        0,
        "{name}: an event whose packet did not encode"
    );
    assert!(
        packets >= p.stats().events,
        "{name}: {packets} packets for {} events",
        p.stats().events
    );
}

/// A `sip-out` event whose `sip` is empty: it was mapped to a SIP packet with an empty
/// payload, which the encoder refuses, so the event was lost.
#[test]
fn events_empty_sip_message() {
    check(
        "events-empty-sip-message",
        include_bytes!("../../fixtures/fuzz/events-empty-sip-message.json"),
    );
}

/// Every kept input, including ones added without a named test above.
#[test]
fn every_kept_input() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/fuzz");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        check(&path.display().to_string(), &std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n >= 1);
}
