//! Acknowledgement: when a body is safe, for every input alike. An input hands the
//! pipeline task a [`Job`] (the HTTP input through a [`Taker`], in its own handler; the
//! WebSocket and broker inputs through the task's channel); a broker's job carries a
//! [`Receipt`] that comes back to its input with an [`Outcome`] once the body is settled.
//!
//! Two things make a body safe, both owned here:
//!
//! - [`journal`]: with the spool on, a body that no broker keeps (HTTP, WebSocket) is
//!   appended to the intake journal before it is answered, so a 2xx survives a SIGKILL;
//!   the journal's checkpoint passes it once it is safe.
//! - [`settle`]: a body is safe once the correlator holds none of its events and every
//!   spooled collector took their packets into its spool (read from each output's
//!   [`Progress`](crate::output::Progress) handle, not from the counters); the broker
//!   inputs acknowledge it then, the journal checkpoints it.
//!
//! The walk of one body: input → [`Job`] → the pipeline task (`agent::task`), which has
//! [`settle::Settling`] journal it, runs the pipeline, queues the packets and hands
//! `Settling` what the pipeline said of the body ([`settle::Settling::taken`]) → once
//! safe, the journal's checkpoint passes it or its [`Receipt`] goes back to the broker
//! input, which acknowledges the message. The pipeline task decides nothing of this.

pub mod journal;
pub mod settle;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::pipeline::Rejections;
use crate::telemetry::Input;

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
