//! Homer 11's HEP rules (#13 item 6; `reference/homer11.md` §1), checked byte by byte on
//! every packet `convert` (and so `serve`) makes of every real capture, QoS reports
//! included, by a chunk walk of its own (not heplink's decoder): the HEP length equals
//! the packet's, every chunk fits and has at least 6 bytes, fixed-size chunks have their
//! exact sizes, a proto type and both time chunks are present with microseconds below
//! 1,000,000, no compressed payload (0x10, which Homer 11 drops), at most 65,507 bytes.

mod common;

#[test]
fn every_packet_meets_homer_11_s_rules() {
    let mut n = 0;
    for scenario in common::ALL_CAPTURES.iter() {
        let mut lines = common::fixture_bodies(scenario).into_iter().map(Ok);
        let c =
            heplink::capture::jsonl::convert(&mut lines, Default::default(), Default::default())
                .unwrap();
        for (_, p) in &c.packets {
            check(p).unwrap_or_else(|e| panic!("{scenario}: {e}"));
            n += 1;
        }
    }
    assert!(n > 1000, "{n} packets");
}

fn check(p: &[u8]) -> Result<(), String> {
    if &p[..4] != b"HEP3" {
        return Err("not HEP3".into());
    }
    let total = u16::from_be_bytes([p[4], p[5]]) as usize;
    if total != p.len() {
        return Err(format!(
            "length field {total} for a {}-byte packet",
            p.len()
        ));
    }
    if total > 65_507 {
        return Err(format!("{total} bytes: above 65,507"));
    }
    let mut at = 6;
    let (mut proto, mut secs, mut usecs) = (false, false, None);
    while at < total {
        if at + 6 > total {
            return Err(format!("a chunk header cut at {at}"));
        }
        let kind = u16::from_be_bytes([p[at + 2], p[at + 3]]);
        let len = u16::from_be_bytes([p[at + 4], p[at + 5]]) as usize;
        if len < 6 || at + len > total {
            return Err(format!("chunk 0x{kind:02x} of length {len} at {at}"));
        }
        let body = &p[at + 6..at + len];
        let fixed = match kind {
            0x01 | 0x02 | 0x0b => Some(1),
            0x07 | 0x08 | 0x12 => Some(2),
            0x03 | 0x04 | 0x09 | 0x0a | 0x0c => Some(4),
            0x05 | 0x06 => Some(16),
            _ => None,
        };
        if let Some(size) = fixed {
            if body.len() != size {
                return Err(format!(
                    "chunk 0x{kind:02x} of {} bytes, not {size}",
                    body.len()
                ));
            }
        }
        match kind {
            0x0b => proto = body[0] != 0,
            0x09 => secs = true,
            0x0a => usecs = Some(u32::from_be_bytes(body.try_into().unwrap())),
            0x10 => return Err("a compressed payload (0x10)".into()),
            _ => {}
        }
        at += len;
    }
    if !proto {
        return Err("no proto type".into());
    }
    if !secs || usecs.is_none_or(|u| u >= 1_000_000) {
        return Err(format!(
            "time chunks: seconds {secs}, microseconds {usecs:?}"
        ));
    }
    Ok(())
}
