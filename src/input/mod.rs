//! Inputs: where Janus events come in. Each input turns what arrives (an HTTP body, a
//! WebSocket message, a broker's message) into a [`Job`](crate::ack::Job) for the
//! pipeline task and counts what it rejects. The broker inputs (`mqtt`, `amqp`) give each
//! job a [`Receipt`](crate::ack::Receipt) and acknowledge the message once the pipeline
//! sends it back settled; when a body is safe is [`crate::ack`]'s to say.

pub mod amqp;
pub mod auth;
pub mod body;
pub mod guard;
pub mod http;
pub mod mqtt;
pub mod tls_listener;
pub mod ws;

use std::net::SocketAddr;

use axum::Router;
use tokio::sync::watch;

pub use tls_listener::TlsListener;

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
pub async fn serve_router<L>(l: L, app: Router, stop: watch::Receiver<bool>)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    Peer: for<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    serve(l, app.into_make_service_with_connect_info::<Peer>(), stop).await
}

/// Serves on `l` with a service made per connection by `make` until `stop` turns true.
pub async fn serve<L, M, S>(l: L, make: M, mut stop: watch::Receiver<bool>)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    M: for<'a> tower_service::Service<
            axum::serve::IncomingStream<'a, L>,
            Error = std::convert::Infallible,
            Response = S,
        > + Send
        + 'static,
    for<'a> <M as tower_service::Service<axum::serve::IncomingStream<'a, L>>>::Future: Send,
    S: tower_service::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let r = axum::serve(l, make)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "Listener failed.");
    }
}
