//! The WebSocket input (Janus's wsevh connects as the client, subprotocol
//! `janus-event-handlers`).

use crate::internal_events::InputRejected;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::ack::Job;
use crate::reject::Reject;
use crate::telemetry::{Emit, Ingest, Input};

/// What the WebSocket handler needs.
pub struct WsState {
    /// The pipeline task.
    pub jobs: mpsc::Sender<Job>,
    /// Counters.
    pub metrics: Arc<dyn Emit<Ingest>>,
    /// Largest message accepted.
    pub max_message: usize,
    /// Turns true at shutdown.
    pub stop: watch::Receiver<bool>,
    /// The expected `Authorization` header value (the HTTP input's Basic auth), if any.
    pub auth: Option<Vec<u8>>,
    /// The token expected in the URL query (`?token=…`), if any.
    pub token: Option<String>,
    /// Refuse upgrades without the `janus-event-handlers` subprotocol.
    pub require_subprotocol: bool,
    /// Failed authentication per address (the HTTP input's throttle rules).
    pub auth_failures: super::auth::AuthThrottle,
}

/// Most bytes queued for a peer that does not read (pongs included); beyond, the
/// connection is closed.
const MAX_WRITE_BUFFER: usize = 1 << 20;

/// Whether the upgrade request carries the credentials asked for. They are asked for
/// when a token is configured: then the token in the URL query, or the HTTP input's Basic
/// auth when that is on, lets it in. (Janus's wsevh cannot send Basic auth: userinfo in its
/// backend URL is not sent, as a test with the real Janus shows; it can carry the token.)
fn authorized(st: &WsState, headers: &HeaderMap, uri: &Uri) -> bool {
    if st.token.is_none() {
        return true;
    }
    let basic = st.auth.as_ref().is_some_and(|expected| {
        let given = headers
            .get(header::AUTHORIZATION)
            .map_or(&b""[..], |v| v.as_bytes());
        super::auth::ct_eq(expected, given)
    });
    let token = st.token.as_ref().is_some_and(|expected| {
        uri.query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.strip_prefix("token="))
            .any(|given| super::auth::ct_eq(expected.as_bytes(), given.as_bytes()))
    });
    basic || token
}

/// The upgrade handler of the WebSocket input.
pub async fn ws_upgrade(
    State(st): State<Arc<WsState>>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    headers: HeaderMap,
    uri: Uri,
    ws: WebSocketUpgrade,
) -> Response {
    if !authorized(&st, &headers, &uri) {
        let (delay, failures) = st.auth_failures.fail(peer.ip());
        tokio::time::sleep(delay).await;
        InputRejected {
            input: Input::Ws,
            reason: Reject::Unauthorized,
            peer: Some(peer),
            what: "WebSocket upgrade refused: wrong or missing credentials;",
            detail: format_args!("failures={failures}"),
        }
        .emit(&st.metrics);
        let mut r = (StatusCode::UNAUTHORIZED, "wrong or missing credentials\n").into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"heplink\""),
        );
        return r;
    }
    st.auth_failures.succeed(peer.ip());
    let ws = ws
        .protocols(["janus-event-handlers"])
        .max_message_size(st.max_message)
        .max_frame_size(st.max_message)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER);
    if st.require_subprotocol && ws.selected_protocol().is_none() {
        InputRejected {
            input: Input::Ws,
            reason: Reject::BadWsMessage,
            peer: Some(peer),
            what: "WebSocket upgrade refused: no janus-event-handlers subprotocol.",
            detail: format_args!(""),
        }
        .emit(&st.metrics);
        return (
            StatusCode::BAD_REQUEST,
            "ask for the janus-event-handlers subprotocol\n",
        )
            .into_response();
    }
    ws.on_upgrade(move |socket| ws_session(socket, peer, st))
}

async fn ws_session(mut socket: WebSocket, peer: SocketAddr, st: Arc<WsState>) {
    st.metrics.add(Ingest::WsConnections, 1);
    st.metrics.add(Ingest::WsConnectionsTotal, 1);
    tracing::info!(%peer, "Janus connected over WebSocket.");
    let mut stop = st.stop.clone();
    loop {
        let msg = tokio::select! {
            m = socket.recv() => m,
            _ = stop.wait_for(|s| *s) => break,
        };
        let body = match msg {
            Some(Ok(Message::Text(t))) => Bytes::from(t),
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                let text = e.to_string();
                if text.contains("too long") || text.contains("Space limit") {
                    // Over max_message_bytes: say so with 1009 (message too big).
                    InputRejected {
                        input: Input::Ws,
                        reason: Reject::WsMessageTooLarge,
                        peer: Some(peer),
                        what: "WebSocket message too large: closing with 1009;",
                        detail: format_args!("max={}", st.max_message),
                    }
                    .emit(&st.metrics);
                    let close = CloseFrame {
                        code: 1009,
                        reason: "message too big".into(),
                    };
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(1),
                        socket.send(Message::Close(Some(close))),
                    )
                    .await;
                } else {
                    InputRejected {
                        input: Input::Ws,
                        reason: Reject::BadWsMessage,
                        peer: Some(peer),
                        what: "WebSocket error: closing;",
                        detail: format_args!("error={text}"),
                    }
                    .emit(&st.metrics);
                }
                break;
            }
        };
        let job = Job {
            body,
            input: Input::Ws,
            receipt: None,
            warm: false,
        };
        if st.jobs.send(job).await.is_err() {
            break;
        }
    }
    st.metrics.sub(Ingest::WsConnections, 1);
    tracing::info!(%peer, "Janus WebSocket connection closed.");
}
