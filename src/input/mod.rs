//! Inputs: where Janus events come in. Each input turns what arrives (an HTTP body, a
//! WebSocket message) into a [`Job`] for the pipeline task and counts what it rejects.
//! A new input (MQTT, AMQP, …) is a module here that produces [`Job`]s.

pub mod auth;
pub mod body;
pub mod guard;
pub mod http;
pub mod journal;
pub mod tls_listener;
pub mod ws;

use std::net::SocketAddr;

use axum::Router;
use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use crate::metrics::Input;
use crate::pipeline::Rejections;
pub use tls_listener::TlsListener;

/// A body for the pipeline task.
pub struct Job {
    /// The body as received (decompressed).
    pub body: Bytes,
    /// Which input it came from.
    pub input: Input,
    /// Where the rejected events go back to (HTTP answers with them), if anywhere.
    pub reply: Option<oneshot::Sender<Rejections>>,
}

/// The address of the peer of a connection, as handlers see it (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

macro_rules! peer_of {
    ($($l:ty),*) => {$(
        impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, $l>> for Peer {
            fn connect_info(s: axum::serve::IncomingStream<'_, $l>) -> Peer {
                Peer(*s.remote_addr())
            }
        }
    )*};
}
peer_of!(tokio::net::TcpListener, guard::GuardedListener, TlsListener);

/// Serves `app` on `l` until `stop` turns true; handlers see the peer's address
/// (`ConnectInfo<Peer>`).
pub async fn serve_router<L>(l: L, app: Router, mut stop: watch::Receiver<bool>)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    Peer: for<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let svc = app.into_make_service_with_connect_info::<Peer>();
    let r = axum::serve(l, svc)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "Listener failed.");
    }
}
