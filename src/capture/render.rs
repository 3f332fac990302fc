//! Printing decoded packets: one readable line, or one JSON object, per packet.

use std::fmt::Write as _;

use base64::Engine as _;
use heplink_proto::{DecodeError, Packet};
use serde_json::{json, Map, Value};

use crate::capture::Origin;

/// The JSON object of one decoded packet (its fields: `docs/tools.md`).
pub fn packet_json(index: u64, p: &Packet<'_>, origin: Option<&Origin>) -> Value {
    let mut m = Map::new();
    m.insert("index".into(), json!(index));
    m.insert("version".into(), json!(p.version.number()));
    m.insert("proto_type".into(), json!(p.proto_type.map(|t| t.0)));
    m.insert(
        "proto_name".into(),
        json!(p.proto_type.and_then(|t| t.name())),
    );
    m.insert("ip_family".into(), json!(p.ip_family));
    m.insert("ip_proto".into(), json!(p.ip_proto));
    m.insert("src_ip".into(), json!(p.src_ip.map(|a| a.to_string())));
    m.insert("src_port".into(), json!(p.src_port));
    m.insert("dst_ip".into(), json!(p.dst_ip.map(|a| a.to_string())));
    m.insert("dst_port".into(), json!(p.dst_port));
    m.insert("ts_sec".into(), json!(p.ts_sec));
    m.insert("ts_usec".into(), json!(p.ts_usec));
    m.insert("capture_id".into(), json!(p.capture_id));
    m.insert("node_name".into(), text(p.node_name));
    m.insert("auth_key".into(), text(p.auth_key));
    m.insert("correlation_id".into(), text(p.correlation_id));
    if let Some(v) = p.vlan {
        m.insert("vlan".into(), json!(v));
    }
    match p.payload.map(std::str::from_utf8) {
        Some(Ok(s)) => {
            m.insert("payload".into(), json!(s));
        }
        Some(Err(_)) => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(p.payload.unwrap_or(&[]));
            m.insert("payload".into(), Value::Null);
            m.insert("payload_b64".into(), json!(b64));
        }
        None => {
            m.insert("payload".into(), Value::Null);
        }
    }
    let chunks: Vec<Value> = p
        .chunks()
        .map(|c| json!({"vendor": c.vendor.0, "type": c.kind.0, "length": c.wire_len()}))
        .collect();
    m.insert("chunks".into(), Value::Array(chunks));
    if let Some(o) = origin {
        m.insert("capture".into(), origin_json(o));
    }
    Value::Object(m)
}

/// The JSON object of a rejected packet.
pub fn error_json(index: u64, e: &DecodeError, origin: Option<&Origin>) -> Value {
    let mut v = json!({"index": index, "error": e.to_string(), "offset": e.offset});
    if let Some(o) = origin {
        v["capture"] = origin_json(o);
    }
    v
}

fn origin_json(o: &Origin) -> Value {
    match o {
        Origin::Udp { frame, src, dst } => {
            json!({"transport": "udp", "frame": frame, "src": src.to_string(), "dst": dst.to_string()})
        }
        Origin::Tcp { frame, src, dst } => {
            json!({"transport": "tcp", "frame": frame, "src": src.to_string(), "dst": dst.to_string()})
        }
        Origin::Stream { offset } => json!({"transport": "stream", "offset": offset}),
    }
}

fn text(b: Option<&[u8]>) -> Value {
    match b {
        Some(b) => json!(String::from_utf8_lossy(b)),
        None => Value::Null,
    }
}

/// One readable line for a decoded packet.
pub fn packet_line(index: u64, p: &Packet<'_>) -> String {
    let mut s = String::with_capacity(160);
    let _ = write!(s, "#{index} HEPv{}", p.version.number());
    match p.proto_type {
        Some(t) => {
            let _ = write!(s, " {t}");
        }
        None => s.push_str(" no-proto-type"),
    }
    let ep = |ip: Option<std::net::IpAddr>, port: Option<u16>| match (ip, port) {
        (Some(std::net::IpAddr::V6(a)), Some(p)) => format!("[{a}]:{p}"),
        (Some(a), Some(p)) => format!("{a}:{p}"),
        (Some(a), None) => a.to_string(),
        (None, Some(p)) => format!("?:{p}"),
        (None, None) => "?".into(),
    };
    let proto = match p.ip_proto {
        Some(6) => "TCP".to_string(),
        Some(17) => "UDP".to_string(),
        Some(132) => "SCTP".to_string(),
        Some(n) => format!("ip-proto-{n}"),
        None => "-".to_string(),
    };
    let _ = write!(
        s,
        " {} -> {} {proto}",
        ep(p.src_ip, p.src_port),
        ep(p.dst_ip, p.dst_port)
    );
    if let (Some(sec), Some(us)) = (p.ts_sec, p.ts_usec) {
        let _ = write!(s, " {}", format_utc(sec, us));
    }
    if let Some(c) = p.correlation_id {
        let _ = write!(s, " cid={}", quoted(c));
    }
    if let Some(n) = p.node_name {
        let _ = write!(s, " node={}", quoted(n));
    }
    if let Some(c) = p.capture_id {
        let _ = write!(s, " capture={c}");
    }
    let payload = p.payload.unwrap_or(&[]);
    let _ = write!(s, " payload={}B", payload.len());
    if !payload.is_empty() {
        let _ = write!(s, " {}", preview(payload, 100));
    }
    s
}

fn quoted(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

/// The first `max` characters of a payload on one line, control characters escaped.
fn preview(b: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(b);
    let mut out = String::new();
    for (i, ch) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match ch {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Formats Unix seconds and microseconds as an RFC 3339 UTC time.
pub fn format_utc(sec: u32, usec: u32) -> String {
    let days = i64::from(sec / 86_400);
    let rem = sec % 86_400;
    let (y, m, d) = crate::time::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{usec:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_utc(1_700_000_000, 123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(format_utc(951_782_400, 1), "2000-02-29T00:00:00.000001Z");
        assert_eq!(format_utc(u32::MAX, 0), "2106-02-07T06:28:15.000000Z");
    }

    #[test]
    fn preview_escapes_and_cuts() {
        assert_eq!(preview(b"a\r\nb\x01", 10), "a\\r\\nb\\x01");
        assert_eq!(preview(b"abcdef", 3), "abc…");
    }
}
