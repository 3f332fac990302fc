//! Inputs: where Janus events come in. Each input turns what arrives (an HTTP body, a
//! WebSocket message, a broker's message) into a [`Job`] for the pipeline task and counts
//! what it rejects. The broker inputs (`mqtt`, `amqp`) give each job a [`Receipt`] and
//! acknowledge the message once the pipeline sends it back settled.

pub mod amqp;
pub mod auth;
pub mod body;
pub mod guard;
pub mod http;
pub mod journal;
pub mod mqtt;
pub mod settle;
pub mod tls_listener;
pub mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use axum::Router;
use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::metrics::Input;
use crate::pipeline::Rejections;
pub use tls_listener::TlsListener;

/// A body for the pipeline task.
pub struct Job {
    /// The body as received (decompressed).
    pub body: Bytes,
    /// Which input it came from.
    pub input: Input,
    /// A broker message's receipt, sent back once the message is settled.
    pub receipt: Option<Receipt>,
    /// A body replayed only to rebuild the correlator's state: nothing of it is sent.
    /// It counts as taken now (the state it rebuilds is as fresh as the takeover: the
    /// events that kept it alive, the media statistics, are not replayed).
    pub warm: bool,
}

/// What became of a broker message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its events are safe: queued to every collector, and in every spool where a spool
    /// is on. Acknowledge it.
    Safe,
    /// Nothing in it reads as an event: reject it without redelivery.
    Malformed,
}

/// Takes a job at once, in the caller's task, and says which of its events were rejected
/// (`None`: the agent is shutting down). The HTTP input answers through it: a POST is
/// answered without a hop to the pipeline task and back (one wake-up each way per
/// request). The agent's implementation runs the pipeline task's own step under the lock
/// the pipeline task takes for each of its jobs and ticks, so bodies stay in one order.
pub trait Taker: Send + Sync + 'static {
    /// Takes `job`.
    fn take(&self, job: Job) -> Pin<Box<dyn Future<Output = Option<Rejections>> + Send + '_>>;
}

/// Which broker message a job is: the connection it came on (inputs count connections,
/// a receipt of an earlier one is stale) and its delivery tag or packet id there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// The input's connection count when the message came.
    pub connection: u64,
    /// The message's delivery tag (AMQP) or packet id (MQTT).
    pub delivery: u64,
}

/// Goes with a broker message through the pipeline, back to its input once settled.
#[derive(Debug)]
pub struct Receipt {
    /// Where the input waits for it.
    pub to: mpsc::UnboundedSender<(Tag, Outcome)>,
    /// The message.
    pub tag: Tag,
}

impl Receipt {
    /// Tells the input what became of its message.
    pub fn settle(self, outcome: Outcome) {
        // The input may be gone (it stopped, or reconnected): the broker redelivers.
        let _ = self.to.send((self.tag, outcome));
    }
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
