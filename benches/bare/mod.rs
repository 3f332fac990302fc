//! The bare pipeline the agent is measured against (`cargo bench --bench load bare-…`):
//! axum on tokio's multi-threaded runtime, as the agent, doing the same HTTP work with
//! nothing else. A POST's body is parsed with serde_json (one event or an array), each
//! event becomes a HEP packet (its JSON as payload, its session as correlation id, its
//! timestamp) encoded by `heplink-proto` and sent over UDP from the handler, and the
//! answer is `{"ok":true}`. No correlation, no hold, no queue, no caps, no counters: what
//! it manages bounds what the agent's HTTP path can.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use heplink::proto::{PacketBuilder, ProtoType};
use serde_json::Value;

/// Serves on `http` until killed, sending to the UDP collector `to`.
pub fn serve(http: SocketAddr, to: SocketAddr) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.connect(to).unwrap();
        udp.set_nonblocking(true).unwrap();
        let app = Router::new().fallback(ingest).with_state(Arc::new(udp));
        let l = tokio::net::TcpListener::bind(http).await.unwrap();
        axum::serve(l, app).await.unwrap();
    });
}

async fn ingest(State(udp): State<Arc<UdpSocket>>, body: Bytes) -> axum::response::Response {
    let events = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(a)) => a,
        Ok(v) => vec![v],
        Err(_) => return json(StatusCode::BAD_REQUEST, "{\"error\":\"bad JSON\"}"),
    };
    for e in &events {
        let payload = serde_json::to_vec(e).unwrap();
        let cid = e["session_id"].as_u64().unwrap_or(0).to_string();
        let p = PacketBuilder::new(ProtoType::LOG, payload)
            .udp(([127, 0, 0, 1].into(), 8088), ([127, 0, 0, 1].into(), 9060))
            .timestamp_micros(e["timestamp"].as_u64().unwrap_or(0))
            .capture_id(2001)
            .correlation_id(cid)
            .node_name("janus");
        if let Ok(b) = p.to_bytes() {
            let _ = udp.send(&b);
        }
    }
    json(StatusCode::OK, "{\"ok\":true}")
}

fn json(status: StatusCode, body: &'static str) -> axum::response::Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
