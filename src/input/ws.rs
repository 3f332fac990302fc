//! The WebSocket input (Janus's wsevh connects as the client, subprotocol
//! `janus-event-handlers`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::Job;
use crate::metrics::{Input, Metrics, Reject};

/// What the WebSocket handler needs.
pub struct WsState {
    /// The pipeline task.
    pub jobs: mpsc::Sender<Job>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Largest message accepted.
    pub max_message: usize,
    /// Turns true at shutdown.
    pub stop: watch::Receiver<bool>,
}

/// The upgrade handler of the WebSocket input.
pub async fn ws_upgrade(
    State(st): State<Arc<WsState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.protocols(["janus-event-handlers"])
        .max_message_size(st.max_message)
        .on_upgrade(move |socket| ws_session(socket, peer, st))
}

async fn ws_session(mut socket: WebSocket, peer: SocketAddr, st: Arc<WsState>) {
    st.metrics.ws_connections.fetch_add(1, Relaxed);
    st.metrics.ws_connections_total.fetch_add(1, Relaxed);
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
                st.metrics.reject(Input::Ws, Reject::BadWsMessage);
                tracing::warn!(%peer, error = %e, "WebSocket error.");
                break;
            }
        };
        let job = Job {
            body,
            input: Input::Ws,
            reply: None,
        };
        if st.jobs.send(job).await.is_err() {
            break;
        }
    }
    st.metrics.ws_connections.fetch_sub(1, Relaxed);
    tracing::info!(%peer, "Janus WebSocket connection closed.");
}
