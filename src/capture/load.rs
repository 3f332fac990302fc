//! A capture file into HEP packets: Janus JSONL through the pipeline (as `serve` would
//! send it), pcap, pcapng or a raw HEP stream as it is. `replay` sends what this reads,
//! `flow` draws it.

use bytes::Bytes;
use heplink_proto::{decode, Mode};

use crate::capture::{read_capture, CaptureEvent};

/// A packet and its time stamp (µs).
#[derive(Debug, Clone)]
pub struct Timed {
    /// HEP time stamp, µs (0 when the packet has none).
    pub ts: u64,
    /// The packet.
    pub bytes: Bytes,
}

/// Loads one capture: Janus JSONL through the pipeline, anything else as HEP.
pub fn load(path: &std::path::Path) -> anyhow::Result<Vec<Timed>> {
    let data = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let first = data.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if matches!(first, Some(b'{') | Some(b'[')) {
        let text = String::from_utf8_lossy(&data).into_owned();
        if is_listen_jsonl(&text) {
            anyhow::bail!(
                "{}: this is `heplink listen --jsonl` output (decoded HEP packets), not Janus \
                 events: capture with `heplink listen --write FILE.pcap` and give that file",
                path.display()
            );
        }
        let mut lines = text.lines().map(|l| Ok(l.to_string()));
        let c = crate::capture::jsonl::convert(&mut lines, Default::default(), Default::default())?;
        // One line per rejected event, at most 10, then the count.
        for (line, msg) in c.rejected.iter().take(10) {
            tracing::warn!(file = %path.display(), line, %msg, "Event rejected.");
        }
        if c.rejected.len() > 10 {
            tracing::warn!(file = %path.display(), more = c.rejected.len() - 10, "More events rejected.");
        }
        return Ok(c
            .packets
            .into_iter()
            .map(|(ts, bytes)| Timed { ts, bytes })
            .collect());
    }
    let mut out = Vec::new();
    read_capture(std::io::Cursor::new(data), &mut |ev| {
        if let CaptureEvent::Packet { bytes, .. } = ev {
            let ts = decode(bytes, Mode::Lenient)
                .ok()
                .and_then(|p| p.timestamp_micros())
                .unwrap_or(0);
            out.push(Timed {
                ts,
                bytes: Bytes::copy_from_slice(bytes),
            });
        }
    })
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(out)
}

/// Whether a JSON-lines text is what `heplink listen --jsonl` writes: numbered objects with
/// the decoded packet's `proto_type` and `payload` (or a rejected one's `error`) rather
/// than a Janus event's `type`.
pub fn is_listen_jsonl(text: &str) -> bool {
    let Some(first) = text.lines().find(|l| !l.trim().is_empty()) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(first).is_ok_and(|v| {
        let packet = v.get("proto_type").is_some() && v.get("payload").is_some();
        let rejected = v.get("index").is_some() && v.get("error").is_some();
        (packet || rejected) && v.get("type").is_none()
    })
}
