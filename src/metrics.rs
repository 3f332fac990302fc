//! The agent's counters and gauges (plain atomics, counted where things happen), exposed
//! on `/metrics` through prometheus-client: a collector (`Scrape`) reads them on each
//! scrape and the crate's encoder writes Prometheus's text format (0.0.4), escaping
//! included. The names, types and help texts are those documented in the README (the
//! output is byte for byte what the hand-written renderer gave).
//!
//! The counting components (inputs, outputs, the alias keeper, the intake journal) never
//! name this module: they emit through the telemetry seam (`telemetry.rs`), whose
//! [`Emit`] this registry implements for each kind of key, and the agent installs it.
//! Nothing here is read to decide anything (a collector's progress, which the
//! acknowledgements wait for, is the output's own `Progress`).
//!
//! Why this file is over 500 lines: every metric's name, type and help text is listed in
//! the family tables (`PLAIN_FAMILIES`, `BROKER_FAMILIES`, `COLLECTOR_FAMILIES`) beside
//! the counters they read, one entry per counter, so `/metrics` and this list cannot
//! drift; and each key of the telemetry seam is mapped to its counter here, one match arm
//! per key, so the components that count and the registry cannot drift either.

use crate::reject::Reject;
use crate::telemetry::{Alias, Broker, Collector, Emit, Ingest};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Janus event types in the order of the `type` label.
pub const EVENT_TYPES: [&str; 10] = crate::janus::event::EventType::LABELS;

pub use crate::telemetry::{Input, INPUTS};

/// The Homer alias keeper's counters (here, with the other counters: the keeper, its
/// internal events and `/metrics` read them without importing each other).
#[derive(Debug, Default)]
pub struct AliasMetrics {
    /// Aliases the keeper holds in Homer now.
    pub held: AtomicU64,
    /// Aliases created or deleted.
    pub writes: AtomicU64,
    /// API calls that failed.
    pub failures: AtomicU64,
    /// Changes dropped: the channel was full or the cap was reached with none ended.
    pub dropped: AtomicU64,
    /// Aliases removed after their retention, or to make room for a new one.
    pub expired: AtomicU64,
}

/// Counters of one collector.
#[derive(Debug, Default)]
pub struct CollectorMetrics {
    /// The collector's URL (the `collector` label).
    pub url: String,
    /// Packets sent.
    pub packets: AtomicU64,
    /// Bytes sent.
    pub bytes: AtomicU64,
    /// Send errors.
    pub send_errors: AtomicU64,
    /// Reconnections (TCP).
    pub reconnects: AtomicU64,
    /// 1 while connected (UDP: always 1).
    pub connected: AtomicU64,
    /// Packets in the queue.
    pub queue_depth: AtomicU64,
    /// Packets dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Packets dropped at shutdown because the drain time ran out.
    pub dropped_shutdown: AtomicU64,
    /// UDP packets larger than the configured MTU (sent anyway).
    pub over_mtu: AtomicU64,
    /// Bytes in the disk spool not yet confirmed by the collector.
    pub spool_bytes: AtomicU64,
    /// Packets dropped by the spool's cap.
    pub dropped_spool: AtomicU64,
    /// Packets dropped because a spool write failed (disk full, read-only, gone).
    pub dropped_spool_error: AtomicU64,
    /// Times a UDP batch waited for the pacer.
    pub paced_waits: AtomicU64,
    /// Connections replaced because the collector stopped reading.
    pub stalls: AtomicU64,
    /// Packets written again on a new connection because the collector may not have read
    /// them (each a possible duplicate at the collector).
    pub resent: AtomicU64,
    /// Packets written to a TCP/TLS collector and not yet confirmed (acknowledged and
    /// read, see `output::delivery`).
    pub in_flight: AtomicU64,
    /// The last connection or write error, for messages (`replay`, `homer check`).
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl CollectorMetrics {
    /// The last error seen sending to this collector, if any.
    pub fn error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }
}

/// Counters of one broker input (MQTT or AMQP).
#[derive(Debug, Default)]
pub struct BrokerMetrics {
    /// Whether it is on at all.
    pub enabled: AtomicU64,
    /// 1 while connected and subscribed (consuming).
    pub connected: AtomicU64,
    /// Connections made (the first and every reconnection).
    pub connections: AtomicU64,
    /// Messages received.
    pub messages: AtomicU64,
    /// Messages acknowledged (their events safe).
    pub acks: AtomicU64,
    /// Messages rejected without redelivery (nothing in them reads as an event).
    pub nacks: AtomicU64,
    /// Messages the broker delivered again (a possible duplicate each).
    pub redeliveries: AtomicU64,
    /// Partition queues this agent consumes as the active consumer now (AMQP).
    pub partitions_held: AtomicU64,
    /// Bodies of the correlation log replayed when a partition was taken over (AMQP).
    pub state_replayed: AtomicU64,
    /// The last connection error, for `/health`.
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl BrokerMetrics {
    /// The last connection error.
    pub fn error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }
}

impl CollectorMetrics {
    fn counter(&self, key: Collector) -> &AtomicU64 {
        match key {
            Collector::Packets => &self.packets,
            Collector::Bytes => &self.bytes,
            Collector::SendErrors => &self.send_errors,
            Collector::Reconnects => &self.reconnects,
            Collector::Connected => &self.connected,
            Collector::QueueDepth => &self.queue_depth,
            Collector::DroppedQueueFull => &self.dropped_queue_full,
            Collector::DroppedShutdown => &self.dropped_shutdown,
            Collector::OverMtu => &self.over_mtu,
            Collector::SpoolBytes => &self.spool_bytes,
            Collector::DroppedSpool => &self.dropped_spool,
            Collector::DroppedSpoolError => &self.dropped_spool_error,
            Collector::PacedWaits => &self.paced_waits,
            Collector::Stalls => &self.stalls,
            Collector::Resent => &self.resent,
            Collector::InFlight => &self.in_flight,
        }
    }
}

/// The registry's side of the seam: a collector's sender counts into these atomics.
impl Emit<Collector> for CollectorMetrics {
    fn add(&self, key: Collector, n: u64) {
        self.counter(key).fetch_add(n, Relaxed);
    }
    fn sub(&self, key: Collector, n: u64) {
        self.counter(key).fetch_sub(n, Relaxed);
    }
    fn set(&self, key: Collector, v: u64) {
        self.counter(key).store(v, Relaxed);
    }
    fn error(&self, _: Collector, error: &dyn std::fmt::Display) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(error.to_string());
        }
    }
}

impl BrokerMetrics {
    fn counter(&self, key: Broker) -> &AtomicU64 {
        match key {
            Broker::Connected => &self.connected,
            Broker::Connections => &self.connections,
            Broker::Messages => &self.messages,
            Broker::Acks => &self.acks,
            Broker::Nacks => &self.nacks,
            Broker::Redeliveries => &self.redeliveries,
            Broker::PartitionsHeld => &self.partitions_held,
            Broker::StateReplayed => &self.state_replayed,
        }
    }
}

/// The registry's side of the seam: the alias keeper counts into these atomics.
impl Emit<Alias> for AliasMetrics {
    fn add(&self, key: Alias, n: u64) {
        self.counter(key).fetch_add(n, Relaxed);
    }
    fn sub(&self, key: Alias, n: u64) {
        self.counter(key).fetch_sub(n, Relaxed);
    }
    fn set(&self, key: Alias, v: u64) {
        self.counter(key).store(v, Relaxed);
    }
}

impl AliasMetrics {
    fn counter(&self, key: Alias) -> &AtomicU64 {
        match key {
            Alias::Held => &self.held,
            Alias::Writes => &self.writes,
            Alias::Failures => &self.failures,
            Alias::Dropped => &self.dropped,
            Alias::Expired => &self.expired,
        }
    }
}

/// All the agent's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    events: [[AtomicU64; 10]; 4],
    rejected: [[AtomicU64; crate::reject::REJECTS]; 4],
    /// The broker inputs' counters: MQTT, then AMQP.
    pub brokers: [BrokerMetrics; 2],
    /// HTTP requests answered.
    pub http_requests: AtomicU64,
    /// Bodies taken again from the intake journal at start.
    pub journal_replayed: AtomicU64,
    /// Intake journal writes that failed (those bodies are not durable).
    pub journal_errors: AtomicU64,
    /// The Homer alias keeper's counters.
    pub homer: Arc<AliasMetrics>,
    /// WebSocket connections open now.
    pub ws_connections: AtomicU64,
    /// WebSocket connections accepted in total.
    pub ws_connections_total: AtomicU64,
    /// Packets built.
    pub packets: AtomicU64,
    /// Handles tracked by the correlator.
    pub handles: AtomicU64,
    /// Events waiting for a binding.
    pub held: AtomicU64,
    /// Held events released with the fallback id (hold time ran out).
    pub hold_expired: AtomicU64,
    /// Held events released early (too many held).
    pub hold_overflow: AtomicU64,
    /// State forgotten after inactivity.
    pub expired: AtomicU64,
    /// Handles evicted by the cap.
    pub evicted: AtomicU64,
    /// Events that could not be encoded.
    pub unencodable: AtomicU64,
    /// Events sent with the receive time: their own was too far in the past.
    pub time_rewritten_old: AtomicU64,
    /// Events sent with the receive time: their own was too far in the future.
    pub time_rewritten_future: AtomicU64,
    /// The collectors.
    pub collectors: Vec<Arc<CollectorMetrics>>,
    /// The diagnosis's counters (ended PeerConnections, time to `webrtcup`), copied from
    /// the pipeline on its tick.
    pub diagnosis: std::sync::Mutex<crate::diagnose::DiagStats>,
}

impl Metrics {
    /// Metrics for these collectors.
    pub fn new(collectors: Vec<Arc<CollectorMetrics>>) -> Self {
        Metrics {
            collectors,
            ..Default::default()
        }
    }

    /// Counts events received.
    pub fn event(&self, input: Input, type_idx: usize, n: u64) {
        self.events[input as usize][type_idx].fetch_add(n, Relaxed);
    }

    /// Counts a rejection.
    pub fn reject(&self, input: Input, r: Reject) {
        self.reject_n(input, r, 1);
    }

    /// Counts `n` rejections.
    pub fn reject_n(&self, input: Input, r: Reject, n: u64) {
        self.rejected[input as usize][r as usize].fetch_add(n, Relaxed);
    }

    /// Events received from an input (all types).
    pub fn events_total(&self, input: Input) -> u64 {
        self.events[input as usize]
            .iter()
            .map(|a| a.load(Relaxed))
            .sum()
    }

    /// Rejections of one reason from an input.
    pub fn rejected(&self, input: Input, r: Reject) -> u64 {
        self.rejected[input as usize][r as usize].load(Relaxed)
    }

    /// `/metrics`: every counter and gauge in Prometheus's text format (0.0.4), encoded by
    /// prometheus-client from a collector over the agent's own atomics.
    pub fn render(self: &Arc<Self>) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Scrape(self.clone())));
        let mut s = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut s, &registry);
        s
    }

    /// Each metric family, as [`Families::family`] takes it.
    fn encode(&self, mut e: Families<'_>) -> std::fmt::Result {
        e.family(
            "heplink_events_received_total",
            "counter",
            "Janus events received, per input and event type.",
            INPUTS.iter().flat_map(|&input| {
                EVENT_TYPES.iter().enumerate().map(move |(i, t)| {
                    let v = self.events[input as usize][i].load(Relaxed);
                    (vec![("input", input.label()), ("type", *t)], v)
                })
            }),
        )?;
        e.family(
            "heplink_rejected_total",
            "counter",
            "Input rejected, per input and reason.",
            INPUTS.iter().flat_map(|&input| {
                crate::reject::LABELS.iter().enumerate().map(move |(i, r)| {
                    let v = self.rejected[input as usize][i].load(Relaxed);
                    (vec![("input", input.label()), ("reason", *r)], v)
                })
            }),
        )?;
        e.family(
            "heplink_time_rewritten_total",
            "counter",
            "Events sent with the receive time because their own was outside the accepted window, per reason.",
            [
                ("too_old", &self.time_rewritten_old),
                ("in_future", &self.time_rewritten_future),
            ]
            .map(|(reason, v)| (vec![("reason", reason)], v.load(Relaxed))),
        )?;
        let d = self.diagnosis.lock().map(|d| d.clone()).unwrap_or_default();
        e.family(
            "heplink_peerconnections_ended_total",
            "counter",
            "PeerConnections that ended, per plugin and verdict (ok, degraded, no-media, dtls-failed, ice-failed).",
            crate::diagnose::PLUGINS.iter().enumerate().flat_map(|(pi, p)| {
                let d = &d;
                crate::diagnose::Outcome::ALL.iter().map(move |o| {
                    (
                        vec![("plugin", *p), ("outcome", o.as_str())],
                        d.ended[pi][o.index()],
                    )
                })
            }),
        )?;
        e.family(
            "heplink_sip_calls_without_sip_out_total",
            "counter",
            "SIP-plugin calls that ended with messages Janus received and none it sent (Janus >= 1.3 built against sofia-sip < 1.13 cannot report them).",
            [(vec![], d.sip_out_missing)],
        )?;
        let mut buckets: Vec<(f64, u64)> = crate::diagnose::WEBRTCUP_BUCKETS
            .iter()
            .copied()
            .zip(d.webrtcup_buckets)
            .collect();
        buckets.push((f64::INFINITY, d.webrtcup_buckets[buckets.len()]));
        e.histogram(
            "heplink_webrtcup_seconds",
            "Time from a PeerConnection's first JSEP to webrtcup, seconds.",
            d.webrtcup_sum,
            d.webrtcup_buckets.iter().sum(),
            &buckets,
        )?;
        for (name, kind, help, f) in BROKER_FAMILIES {
            let on = self.brokers.iter().zip(["mqtt", "amqp"]);
            let on = on.filter(|(b, _)| b.enabled.load(Relaxed) == 1);
            e.family(
                name,
                kind,
                help,
                on.map(|(b, label)| (vec![("input", label)], f(b).load(Relaxed))),
            )?;
        }
        for (name, kind, help, f) in PLAIN_FAMILIES {
            e.family(name, kind, help, [(vec![], f(self).load(Relaxed))])?;
        }
        for (name, kind, help, f) in COLLECTOR_FAMILIES {
            let series = self.collectors.iter();
            let series = series.map(|c| (vec![("collector", c.url.as_str())], f(c).load(Relaxed)));
            e.family(name, kind, help, series)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// The broker input `input`'s counters (MQTT's for an input that is not a broker's).
    fn broker(&self, input: Input) -> &BrokerMetrics {
        &self.brokers[usize::from(input == Input::Amqp)]
    }

    fn ingest(&self, key: Ingest) -> &AtomicU64 {
        match key {
            Ingest::Rejected(input, r) => &self.rejected[input as usize][r as usize],
            Ingest::HttpRequests => &self.http_requests,
            Ingest::WsConnections => &self.ws_connections,
            Ingest::WsConnectionsTotal => &self.ws_connections_total,
            Ingest::JournalErrors => &self.journal_errors,
            Ingest::JournalReplayed => &self.journal_replayed,
            Ingest::Broker(input, b) => self.broker(input).counter(b),
        }
    }
}

/// The registry's side of the seam: the inputs and the intake journal count into these
/// atomics.
impl Emit<Ingest> for Metrics {
    fn add(&self, key: Ingest, n: u64) {
        self.ingest(key).fetch_add(n, Relaxed);
    }
    fn sub(&self, key: Ingest, n: u64) {
        self.ingest(key).fetch_sub(n, Relaxed);
    }
    fn set(&self, key: Ingest, v: u64) {
        self.ingest(key).store(v, Relaxed);
    }
    fn error(&self, key: Ingest, error: &dyn std::fmt::Display) {
        if let Ingest::Broker(input, _) = key {
            if let Ok(mut g) = self.broker(input).last_error.lock() {
                *g = Some(error.to_string());
            }
        }
    }
}

/// A family with one series: (name, type, help, its counter).
type Plain = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Metrics) -> &AtomicU64,
);
/// A family with a series per broker input.
type PerBroker = (
    &'static str,
    &'static str,
    &'static str,
    fn(&BrokerMetrics) -> &AtomicU64,
);
/// A family with a series per collector.
type PerCollector = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CollectorMetrics) -> &AtomicU64,
);

/// The broker inputs' families (a series for each configured one).
const BROKER_FAMILIES: [PerBroker; 9] = [
    (
        "heplink_broker_connected",
        "gauge",
        "1 while the broker input is connected and consuming.",
        |b| &b.connected,
    ),
    (
        "heplink_broker_connections_total",
        "counter",
        "Connections the broker input made (reconnections included).",
        |b| &b.connections,
    ),
    (
        "heplink_broker_messages_total",
        "counter",
        "Messages the broker input received.",
        |b| &b.messages,
    ),
    (
        "heplink_broker_acks_total",
        "counter",
        "Messages acknowledged once their events were safe.",
        |b| &b.acks,
    ),
    (
        "heplink_broker_nacks_total",
        "counter",
        "Messages rejected without redelivery: nothing in them reads as an event.",
        |b| &b.nacks,
    ),
    (
        "heplink_broker_redeliveries_total",
        "counter",
        "Messages the broker delivered again (each a possible duplicate).",
        |b| &b.redeliveries,
    ),
    (
        "heplink_broker_partitions_held",
        "gauge",
        "Partition queues this agent is the active consumer of.",
        |b| &b.partitions_held,
    ),
    (
        "heplink_broker_state_replayed_total",
        "counter",
        "Correlation-log messages replayed on taking over a partition.",
        |b| &b.state_replayed,
    ),
    (
        "heplink_broker_enabled",
        "gauge",
        "1 when the broker input is configured.",
        |b| &b.enabled,
    ),
];

/// The families with one series.
const PLAIN_FAMILIES: [Plain; 18] = [
    (
        "heplink_homer_aliases",
        "gauge",
        "Aliases the agent keeps in Homer now.",
        |m| &m.homer.held,
    ),
    (
        "heplink_homer_alias_writes_total",
        "counter",
        "Homer aliases created or deleted.",
        |m| &m.homer.writes,
    ),
    (
        "heplink_homer_alias_failures_total",
        "counter",
        "Homer API calls for aliases that failed.",
        |m| &m.homer.failures,
    ),
    (
        "heplink_homer_alias_dropped_total",
        "counter",
        "Alias changes not made: the keeper's queue was full or its cap reached.",
        |m| &m.homer.dropped,
    ),
    (
        "heplink_homer_alias_expired_total",
        "counter",
        "Aliases of ended PeerConnections removed after their retention or for the cap.",
        |m| &m.homer.expired,
    ),
    (
        "heplink_http_requests_total",
        "counter",
        "HTTP requests answered.",
        |m| &m.http_requests,
    ),
    (
        "heplink_journal_replayed_bodies_total",
        "counter",
        "Bodies taken again from the intake journal at start (their events may be sent twice).",
        |m| &m.journal_replayed,
    ),
    (
        "heplink_journal_errors_total",
        "counter",
        "Intake journal writes that failed (those bodies were not durable).",
        |m| &m.journal_errors,
    ),
    (
        "heplink_ws_connections",
        "gauge",
        "WebSocket connections open.",
        |m| &m.ws_connections,
    ),
    (
        "heplink_ws_connections_total",
        "counter",
        "WebSocket connections accepted.",
        |m| &m.ws_connections_total,
    ),
    (
        "heplink_packets_built_total",
        "counter",
        "HEP packets built.",
        |m| &m.packets,
    ),
    (
        "heplink_correlation_handles",
        "gauge",
        "Handles tracked by the correlator (live or in their grace period).",
        |m| &m.handles,
    ),
    (
        "heplink_correlation_held",
        "gauge",
        "Events waiting for their handle's binding.",
        |m| &m.held,
    ),
    (
        "heplink_correlation_hold_expired_total",
        "counter",
        "Held events released with the fallback id.",
        |m| &m.hold_expired,
    ),
    (
        "heplink_correlation_hold_overflow_total",
        "counter",
        "Held events released early: too many held.",
        |m| &m.hold_overflow,
    ),
    (
        "heplink_correlation_expired_total",
        "counter",
        "Sessions and handles forgotten after inactivity.",
        |m| &m.expired,
    ),
    (
        "heplink_correlation_evicted_total",
        "counter",
        "Handles evicted by the cap.",
        |m| &m.evicted,
    ),
    (
        "heplink_unencodable_total",
        "counter",
        "Events that could not be encoded as HEP.",
        |m| &m.unencodable,
    ),
];

/// The collectors' families.
const COLLECTOR_FAMILIES: [PerCollector; 16] = [
    (
        "heplink_spool_bytes",
        "gauge",
        "Bytes spooled to disk and not yet confirmed, per collector.",
        |c| &c.spool_bytes,
    ),
    (
        "heplink_dropped_spool_total",
        "counter",
        "Packets dropped by the spool's cap.",
        |c| &c.dropped_spool,
    ),
    (
        "heplink_dropped_spool_error_total",
        "counter",
        "Packets dropped: a spool write failed (disk full, read-only, gone).",
        |c| &c.dropped_spool_error,
    ),
    (
        "heplink_sent_packets_total",
        "counter",
        "HEP packets sent, per collector.",
        |c| &c.packets,
    ),
    (
        "heplink_sent_bytes_total",
        "counter",
        "HEP bytes sent, per collector.",
        |c| &c.bytes,
    ),
    (
        "heplink_send_errors_total",
        "counter",
        "Send errors, per collector.",
        |c| &c.send_errors,
    ),
    (
        "heplink_reconnects_total",
        "counter",
        "Reconnections, per collector.",
        |c| &c.reconnects,
    ),
    (
        "heplink_collector_connected",
        "gauge",
        "1 while the collector is connected.",
        |c| &c.connected,
    ),
    (
        "heplink_queue_depth",
        "gauge",
        "Packets queued for a collector.",
        |c| &c.queue_depth,
    ),
    (
        "heplink_dropped_queue_full_total",
        "counter",
        "Packets dropped: the collector's queue was full.",
        |c| &c.dropped_queue_full,
    ),
    (
        "heplink_dropped_shutdown_total",
        "counter",
        "Packets dropped: shutdown drain time ran out.",
        |c| &c.dropped_shutdown,
    ),
    (
        "heplink_udp_over_mtu_total",
        "counter",
        "UDP packets larger than the configured MTU (sent).",
        |c| &c.over_mtu,
    ),
    (
        "heplink_udp_paced_waits_total",
        "counter",
        "Times a UDP batch waited for the pacer (udp_rate), per collector.",
        |c| &c.paced_waits,
    ),
    (
        "heplink_collector_stalls_total",
        "counter",
        "Connections replaced because the collector stopped reading, per collector.",
        |c| &c.stalls,
    ),
    (
        "heplink_resent_packets_total",
        "counter",
        "Packets written again after a lost connection (possible duplicates), per collector.",
        |c| &c.resent,
    ),
    (
        "heplink_unconfirmed_packets",
        "gauge",
        "Packets written to a TCP/TLS collector, not yet confirmed read, per collector.",
        |c| &c.in_flight,
    ),
];

/// The agent's counters, read on each scrape.
#[derive(Debug)]
struct Scrape(Arc<Metrics>);

impl prometheus_client::collector::Collector for Scrape {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        self.0.encode(Families(encoder))
    }
}

/// Writes metric families through prometheus-client's encoder.
struct Families<'a>(DescriptorEncoder<'a>);

impl Families<'_> {
    /// A histogram with one series: its sum, count and (upper bound, count) buckets, the
    /// last one +Inf.
    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        sum: f64,
        count: u64,
        buckets: &[(f64, u64)],
    ) -> std::fmt::Result {
        let mut m = self
            .0
            .encode_descriptor(name, help, None, MetricType::Histogram)?;
        m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, buckets, None)
    }

    /// One family: `name` as exposed (a counter's ends in `_total`, which the encoder
    /// adds to the base name), `kind` `counter` or `gauge`, and its series (labels, value).
    fn family<'l>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        series: impl IntoIterator<Item = (Vec<(&'l str, &'l str)>, u64)>,
    ) -> std::fmt::Result {
        let (base, kind) = match kind {
            "counter" => (
                name.strip_suffix("_total").unwrap_or(name),
                MetricType::Counter,
            ),
            _ => (name, MetricType::Gauge),
        };
        let mut m = self.0.encode_descriptor(base, help, None, kind)?;
        for (labels, v) in series {
            if labels.is_empty() {
                // The family's one series.
                return put(m, kind, v);
            }
            put(m.encode_family(&labels)?, kind, v)?;
        }
        Ok(())
    }
}

/// One value of a counter or gauge.
fn put(m: MetricEncoder<'_>, kind: MetricType, v: u64) -> std::fmt::Result {
    match kind {
        MetricType::Counter => ConstCounter::new(v).encode(m),
        _ => ConstGauge::new(v as i64).encode(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_writes_every_family_once_with_its_series_and_escapes_labels() {
        let c = Arc::new(CollectorMetrics {
            url: r#"tcp://a"b\c:9061"#.into(),
            ..Default::default()
        });
        c.packets.store(7, Relaxed);
        let m = Arc::new(Metrics::new(vec![c]));
        m.reject_n(Input::Http, Reject::BadGzip, 3);
        let text = m.render();
        assert!(text.contains("# TYPE heplink_rejected_total counter\n"));
        assert!(text.contains("heplink_rejected_total{input=\"http\",reason=\"bad_gzip\"} 3\n"));
        assert!(text.contains("# TYPE heplink_queue_depth gauge\n"));
        assert!(text.contains("heplink_packets_built_total 0\n"));
        // A label value is escaped as the text format wants (a hand-written renderer
        // would have broken the line).
        assert!(
            text.contains(r#"heplink_sent_packets_total{collector="tcp://a\"b\\c:9061"} 7"#),
            "{text}"
        );
        // Each family once; no broker series while no broker input is configured.
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let mut names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        names.dedup();
        assert_eq!(names.len(), types);
        assert!(!text.contains("heplink_broker_connected{"));
    }
}
