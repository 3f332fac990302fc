//! Inputs: where Janus events come in. Each input turns what arrives (an HTTP body, a
//! WebSocket message) into a [`Job`] for the pipeline task and counts what it rejects.
//! A new input (MQTT, AMQP, …) is a module here that produces [`Job`]s.

pub mod http;
pub mod tls_listener;
pub mod ws;

use std::net::SocketAddr;

use axum::Router;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::metrics::Input;
use crate::pipeline::Rejected;
pub use tls_listener::TlsListener;

/// A body for the pipeline task.
pub struct Job {
    /// The body as received (decompressed).
    pub body: Bytes,
    /// Which input it came from.
    pub input: Input,
    /// Where the rejected events go back to (HTTP answers with them), if anywhere.
    pub reply: Option<oneshot::Sender<Vec<Rejected>>>,
}

/// Serves `app` on an HTTPS listener until `stop` turns true.
pub async fn serve_tls_router(l: TlsListener, app: Router, mut stop: watch::Receiver<bool>) {
    let r = axum::serve(l, app.into_make_service())
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "HTTPS listener failed.");
    }
}

/// Serves `app` on `l` until `stop` turns true.
pub async fn serve_router(l: TcpListener, app: Router, mut stop: watch::Receiver<bool>) {
    let svc = app.into_make_service_with_connect_info::<SocketAddr>();
    let r = axum::serve(l, svc)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "Listener failed.");
    }
}
