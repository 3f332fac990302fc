//! The strong reference pipeline the agent is measured against (`cargo bench --bench load
//! strong-…`, and `benches/compare-runs`): the least work that still turns each event of a
//! POST into the HEP packet a collector stores, on the agent's HTTP stack (axum's server
//! on tokio's multi-threaded runtime, one handler and no router, as the agent).
//!
//! Per POST: the body is validated and cut into events by serde_json as borrowed
//! [`RawValue`]s (no `Value`, nothing re-serialised, nothing copied); each event's key
//! (session id, timestamp, emitter) is found in its raw bytes; each event becomes one HEP
//! packet with the chunks the agent's LOG packets carry (IPv6 addresses and ports, IP
//! protocol, time stamp, proto type, capture id, correlation id = the session id's digits,
//! node name = the emitter, payload = the raw event), encoded by `heplink-proto` into one
//! buffer per POST; and the POST's packets go out with one `sendmmsg` before the answer.
//! No correlation, no hold, no queue, no caps, no counters, no QoS reports.

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use bytes::BytesMut;
use heplink::proto::{PacketBuilder, ProtoType};
use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use serde_json::value::RawValue;

/// Serves on `http` until killed, sending to the UDP collector `to`.
pub fn serve(http: SocketAddr, to: SocketAddr) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.connect(to).unwrap();
        let l = tokio::net::TcpListener::bind(http).await.unwrap();
        let app = ingest.with_state(Arc::new(udp)).into_make_service();
        axum::serve(l, app).await.unwrap();
    });
}

async fn ingest(State(udp): State<Arc<UdpSocket>>, body: Bytes) -> axum::response::Response {
    let array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let events: Vec<&RawValue> = match array {
        true => match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return json(StatusCode::BAD_REQUEST, "{\"error\":\"bad JSON\"}"),
        },
        false => match serde_json::from_slice(&body) {
            Ok(v) => vec![v],
            Err(_) => return json(StatusCode::BAD_REQUEST, "{\"error\":\"bad JSON\"}"),
        },
    };
    // One buffer for the POST's packets: the events, plus the chunks around each.
    let mut out = BytesMut::with_capacity(body.len() + events.len() * 160);
    let mut ends = Vec::with_capacity(events.len());
    for e in &events {
        let raw = e.get().as_bytes();
        let sid = digits_after(raw, b"\"session_id\":");
        let id = std::str::from_utf8(sid).ok().and_then(|s| s.parse().ok());
        let ts = digits_after(raw, b"\"timestamp\":");
        let ts: u64 = std::str::from_utf8(ts)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut b = PacketBuilder::new(ProtoType::LOG, body.slice_ref(raw));
        b.ip_proto = Some(heplink::proto::registry::ip_proto::TCP);
        let client = heplink::map::synthetic_client(id.unwrap_or(0), false);
        let janus = IpAddr::V6(heplink::map::SYNTHETIC_JANUS_V6);
        (b.src_ip, b.src_port) = (Some(janus), Some(8088));
        (b.dst_ip, b.dst_port) = (Some(client), Some(9));
        b.set_timestamp_micros(ts);
        b.capture_id = Some(2001);
        b.correlation_id = Some(match sid.is_empty() {
            true => Bytes::from_static(b"0"),
            false => body.slice_ref(sid),
        });
        let emitter = string_after(raw, b"\"emitter\":\"");
        b.node_name = Some(match emitter.is_empty() {
            true => Bytes::from_static(b"janus"),
            false => body.slice_ref(emitter),
        });
        if b.encode(&mut out).is_ok() {
            ends.push(out.len());
        }
    }
    send(&udp, &out, &ends);
    json(StatusCode::OK, "{\"ok\":true}")
}

/// Sends the packets of `buf` (each ends at the next of `ends`) with one `sendmmsg` (more
/// only if the kernel takes part of them).
fn send(udp: &UdpSocket, buf: &[u8], ends: &[usize]) {
    let mut start = 0;
    let iovs: Vec<[IoSlice<'_>; 1]> = ends
        .iter()
        .map(|&e| {
            let s = IoSlice::new(&buf[start..e]);
            start = e;
            [s]
        })
        .collect();
    let mut done = 0;
    while done < iovs.len() {
        let rest = &iovs[done..];
        // The socket is connected: no address per message.
        let addrs: Vec<Option<SockaddrStorage>> = vec![None; rest.len()];
        let mut hdrs = MultiHeaders::<SockaddrStorage>::preallocate(rest.len(), None);
        match sendmmsg(
            udp.as_raw_fd(),
            &mut hdrs,
            rest,
            &addrs,
            [],
            MsgFlags::empty(),
        ) {
            Ok(r) => done += r.count().max(1),
            Err(_) => done += 1,
        }
    }
}

/// The digits after the first `key` in `raw` (spaces skipped), or nothing.
fn digits_after<'a>(raw: &'a [u8], key: &[u8]) -> &'a [u8] {
    let Some(i) = memchr::memmem::find(raw, key) else {
        return &[];
    };
    let mut s = i + key.len();
    while raw.get(s) == Some(&b' ') {
        s += 1;
    }
    let n = raw[s..].iter().take_while(|b| b.is_ascii_digit()).count();
    &raw[s..s + n]
}

/// The bytes of the string after the first `key` (which ends with its opening quote), up to
/// its closing quote, or nothing.
fn string_after<'a>(raw: &'a [u8], key: &[u8]) -> &'a [u8] {
    let Some(i) = memchr::memmem::find(raw, key) else {
        return &[];
    };
    let s = i + key.len();
    match memchr::memchr2(b'"', b'\\', &raw[s..]) {
        Some(n) if raw[s + n] == b'"' => &raw[s..s + n],
        _ => &[],
    }
}

fn json(status: StatusCode, body: &'static str) -> axum::response::Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
