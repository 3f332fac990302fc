//! The committed HEP captures in `fixtures/hep/` decode to their committed golden output,
//! and every packet in them re-encodes byte for byte. `HEPLINK_REGEN_FIXTURES=1`
//! rewrites the golden files (review the diff).

mod common;

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use heplink::capture::{read_capture, CaptureEvent};
use heplink::proto::{decode, Mode};

fn captures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hep");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

#[test]
fn decode_matches_golden() {
    for cap in captures() {
        let out = common::bin()
            .args(["decode", "--json"])
            .arg(&cap)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", cap.display());
        let golden = cap.with_extension("decode.jsonl");
        if std::env::var_os("HEPLINK_REGEN_FIXTURES").is_some() {
            std::fs::write(&golden, &out.stdout).unwrap();
        }
        let want = std::fs::read_to_string(&golden).unwrap();
        let got = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            got.lines().count(),
            want.lines().count(),
            "{}",
            cap.display()
        );
        for (g, w) in got.lines().zip(want.lines()) {
            assert_eq!(g, w, "{}", cap.display());
        }
    }
}

#[test]
fn every_captured_packet_reencodes_byte_for_byte() {
    for cap in captures() {
        let mut n = 0;
        read_capture(std::fs::File::open(&cap).unwrap(), &mut |ev| {
            if let CaptureEvent::Packet { bytes, .. } = ev {
                let p = decode(bytes, Mode::Lenient).unwrap();
                let mut out = BytesMut::new();
                p.encode_raw(&mut out);
                assert_eq!(&out[..], bytes);
                n += 1;
            }
        })
        .unwrap();
        assert!(n > 10, "{}: {n} packets", cap.display());
    }
}

/// The Janus captures converted to HEP (the bytes `serve` would send) match the
/// committed pcaps in `fixtures/hep/janus-*.pcap`: any change to mapping or correlation
/// shows up here (`HEPLINK_REGEN_FIXTURES=1` rewrites them; review the decode diff).
#[test]
fn converted_janus_captures_match_the_committed_pcaps() {
    for scenario in common::ALL_CAPTURES.iter() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let input = dir.join(format!("fixtures/janus/{scenario}.jsonl"));
        let text = std::fs::read_to_string(&input).unwrap();
        let mut lines = text.lines().map(|l| Ok(l.to_string()));
        let c =
            heplink::capture::jsonl::convert(&mut lines, Default::default(), Default::default())
                .unwrap();
        // `1.4.1/x` is `janus-1.4.1-x.pcap`: every capture's pcap in one folder.
        let name = scenario.replace('/', "-");
        let committed = dir.join(format!("fixtures/hep/janus-{name}.pcap"));
        if std::env::var_os("HEPLINK_REGEN_FIXTURES").is_some() {
            heplink::cmd::convert::write_pcap(&committed, &c.packets).unwrap();
        }
        let mut want = Vec::new();
        read_capture(std::fs::File::open(&committed).unwrap(), &mut |ev| {
            if let CaptureEvent::Packet { bytes, .. } = ev {
                want.push(bytes.to_vec());
            }
        })
        .unwrap();
        let got: Vec<Vec<u8>> = c.packets.iter().map(|(_, b)| b.to_vec()).collect();
        assert_eq!(got.len(), want.len(), "{scenario}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(g == w, "{scenario}: packet {i} differs");
        }
    }
}
