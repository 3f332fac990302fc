//! The telemetry seam: what the inputs, the outputs, the acknowledgement bookkeeping and the
//! Homer alias keeper count, without knowing who keeps the counts (after vector's
//! internal events, which emit through a facade the binary installs).
//!
//! A component is handed an [`Emit`] for its keys ([`Collector`], [`Ingest`], [`Alias`])
//! when it is started; it adds to and sets those keys (through the internal events of
//! `internal_events.rs` when a happening is also logged) and never reads them back.
//! The agent installs the metrics registry (`metrics.rs` implements [`Emit`] for each
//! key type and renders `/metrics`); the tools and the tests install [`Nop`], or a
//! [`Tally`] to look at what was counted. The per-component handle rather than a global
//! one: a process may run several agents (the tests do), each with its own `/metrics`.
//!
//! Nothing emitted here decides anything. State that something waits on (how far a
//! collector's spool got, which a body's acknowledgement waits for) is not telemetry: it
//! goes through a typed handle its owner publishes (`output::Progress`), which the
//! metrics may read too.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::reject::Reject;

/// The inputs (the `input` label of the counters, and the origin of a journaled body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    /// HTTP (sampleevh).
    Http = 0,
    /// WebSocket (wsevh).
    Ws = 1,
    /// MQTT (mqttevh through a broker).
    Mqtt = 2,
    /// AMQP (rabbitmqevh through RabbitMQ).
    Amqp = 3,
}

/// Every input, in label order.
pub const INPUTS: [Input; 4] = [Input::Http, Input::Ws, Input::Mqtt, Input::Amqp];

impl Input {
    /// The `input` label.
    pub fn label(self) -> &'static str {
        match self {
            Input::Http => "http",
            Input::Ws => "ws",
            Input::Mqtt => "mqtt",
            Input::Amqp => "amqp",
        }
    }
}

/// Where a component's counts go: the seam the agent installs (see the module
/// documentation). `K` names what may be counted (a key of one component's).
pub trait Emit<K>: Send + Sync + fmt::Debug {
    /// Adds `n` to `key` (a counter, or a gauge going up).
    fn add(&self, key: K, n: u64);
    /// Takes `n` from the gauge `key`.
    fn sub(&self, key: K, n: u64);
    /// Sets the gauge `key` to `v`.
    fn set(&self, key: K, v: u64);
    /// Records `error` as the last error of what `key` belongs to (a collector, a broker
    /// input), for messages and `/health`; counts nothing.
    fn error(&self, key: K, error: &dyn fmt::Display) {
        let _ = (key, error);
    }
}

/// A shared handle counts where what it holds counts.
impl<K, T: Emit<K> + ?Sized> Emit<K> for Arc<T> {
    fn add(&self, key: K, n: u64) {
        (**self).add(key, n);
    }
    fn sub(&self, key: K, n: u64) {
        (**self).sub(key, n);
    }
    fn set(&self, key: K, v: u64) {
        (**self).set(key, v);
    }
    fn error(&self, key: K, error: &dyn fmt::Display) {
        (**self).error(key, error);
    }
}

/// Counts nothing: the default of the tools and the tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Nop;

impl<K> Emit<K> for Nop {
    fn add(&self, _: K, _: u64) {}
    fn sub(&self, _: K, _: u64) {}
    fn set(&self, _: K, _: u64) {}
}

/// An [`Emit`] that counts nothing, as a handle.
pub fn nop<K: 'static>() -> Arc<dyn Emit<K>> {
    Arc::new(Nop)
}

/// Keeps what was emitted, by key, for a test or a tool to look at (the registry's
/// `/metrics` is the agent's way).
#[derive(Debug)]
pub struct Tally<K> {
    counts: Mutex<Vec<(K, u64)>>,
    last_error: Mutex<Option<String>>,
}

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Tally {
            counts: Mutex::new(Vec::new()),
            last_error: Mutex::new(None),
        }
    }
}

impl<K: PartialEq + Copy> Tally<K> {
    /// The value of `key` (0 when never emitted).
    pub fn get(&self, key: K) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, v)| *v)
    }

    /// The last error recorded.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn with(&self, key: K, f: impl FnOnce(&mut u64)) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => f(v),
            None => {
                let mut v = 0;
                f(&mut v);
                counts.push((key, v));
            }
        }
    }
}

impl<K: PartialEq + Copy + Send + fmt::Debug> Emit<K> for Tally<K> {
    fn add(&self, key: K, n: u64) {
        self.with(key, |v| *v += n);
    }
    fn sub(&self, key: K, n: u64) {
        self.with(key, |v| *v = v.saturating_sub(n));
    }
    fn set(&self, key: K, v: u64) {
        self.with(key, |x| *x = v);
    }
    fn error(&self, _: K, error: &dyn fmt::Display) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
    }
}

/// What one collector's sender counts (the `collector` label's series of `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collector {
    /// Packets sent (confirmed, for TCP/TLS).
    Packets,
    /// Bytes sent.
    Bytes,
    /// Send errors.
    SendErrors,
    /// Reconnections (TCP).
    Reconnects,
    /// Gauge: 1 while connected (UDP: always 1).
    Connected,
    /// Gauge: packets in the queue.
    QueueDepth,
    /// Packets dropped because the queue was full.
    DroppedQueueFull,
    /// Packets dropped at shutdown because the drain time ran out.
    DroppedShutdown,
    /// UDP packets larger than the configured MTU (sent anyway).
    OverMtu,
    /// Gauge: bytes in the disk spool not yet confirmed by the collector.
    SpoolBytes,
    /// Packets dropped by the spool's cap.
    DroppedSpool,
    /// Packets dropped because a spool write failed.
    DroppedSpoolError,
    /// Times a UDP batch waited for the pacer.
    PacedWaits,
    /// Connections replaced because the collector stopped reading.
    Stalls,
    /// Packets written again on a new connection (each a possible duplicate).
    Resent,
    /// Gauge: packets written to a TCP/TLS collector and not yet confirmed.
    InFlight,
}

/// What the inputs (and the intake journal) count, agent-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingest {
    /// Input refused, per input and reason.
    Rejected(Input, Reject),
    /// HTTP requests answered.
    HttpRequests,
    /// Gauge: WebSocket connections open.
    WsConnections,
    /// WebSocket connections accepted.
    WsConnectionsTotal,
    /// Intake journal writes that failed.
    JournalErrors,
    /// Bodies taken again from the intake journal at start.
    JournalReplayed,
    /// A broker input's (MQTT or AMQP) counts.
    Broker(Input, Broker),
}

/// What a broker input counts (under [`Ingest::Broker`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// Gauge: 1 while connected and consuming.
    Connected,
    /// Connections made (the first and every reconnection).
    Connections,
    /// Messages received.
    Messages,
    /// Messages acknowledged (their events safe).
    Acks,
    /// Messages rejected without redelivery.
    Nacks,
    /// Messages the broker delivered again.
    Redeliveries,
    /// Gauge: partition queues consumed as the active consumer (AMQP).
    PartitionsHeld,
    /// Correlation-log bodies replayed on a takeover (AMQP).
    StateReplayed,
}

/// What the Homer alias keeper counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alias {
    /// Gauge: aliases held in Homer now.
    Held,
    /// Aliases created or deleted.
    Writes,
    /// API calls that failed.
    Failures,
    /// Changes dropped (the channel full, or the cap reached with none ended).
    Dropped,
    /// Aliases removed after their retention or for the cap.
    Expired,
}

/// One broker input's view of an [`Emit<Ingest>`]: its [`Broker`] keys under its own
/// input.
#[derive(Debug, Clone)]
pub struct BrokerEmit {
    emit: Arc<dyn Emit<Ingest>>,
    input: Input,
    /// What `/health` reads (control state, not a counter).
    status: Arc<crate::status::InputStatus>,
}

impl BrokerEmit {
    /// The broker keys of `input` (MQTT or AMQP) in `emit`, and its status for `/health`.
    pub fn new(
        emit: Arc<dyn Emit<Ingest>>,
        input: Input,
        status: Arc<crate::status::InputStatus>,
    ) -> BrokerEmit {
        BrokerEmit {
            emit,
            input,
            status,
        }
    }

    /// The input is connected and consuming.
    pub fn up(&self) {
        self.status.up();
        self.set(Broker::Connected, 1);
    }

    /// The input stopped (shutdown).
    pub fn stopped(&self) {
        self.status.stopped();
        self.set(Broker::Connected, 0);
    }

    /// Adds `n` to `key`.
    pub fn add(&self, key: Broker, n: u64) {
        self.emit.add(Ingest::Broker(self.input, key), n);
    }

    /// Sets the gauge `key`.
    pub fn set(&self, key: Broker, v: u64) {
        self.emit.set(Ingest::Broker(self.input, key), v);
    }

    /// The input is down: not connected, with this error (for `/health`).
    pub fn down(&self, e: &dyn fmt::Display) {
        self.status.down(e);
        self.set(Broker::Connected, 0);
        self.emit
            .error(Ingest::Broker(self.input, Broker::Connected), e);
    }

    /// The agent-wide keys (rejections).
    pub fn ingest(&self) -> &dyn Emit<Ingest> {
        &*self.emit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_keeps_counters_gauges_and_the_last_error() {
        let t = Tally::default();
        t.add(Collector::Packets, 3);
        t.add(Collector::Packets, 4);
        t.add(Collector::InFlight, 5);
        t.sub(Collector::InFlight, 2);
        t.set(Collector::Connected, 1);
        Emit::error(&t, Collector::SendErrors, &"refused");
        assert_eq!(t.get(Collector::Packets), 7);
        assert_eq!(t.get(Collector::InFlight), 3);
        assert_eq!(t.get(Collector::Connected), 1);
        assert_eq!(t.get(Collector::Stalls), 0);
        assert_eq!(t.last_error().as_deref(), Some("refused"));
        let t = Arc::new(Tally::default());
        let b = BrokerEmit::new(t.clone(), Input::Mqtt, Default::default());
        b.add(Broker::Acks, 1);
        b.down(&"gone");
        assert_eq!(t.get(Ingest::Broker(Input::Mqtt, Broker::Acks)), 1);
        assert_eq!(t.last_error().as_deref(), Some("gone"));
    }
}
