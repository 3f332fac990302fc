//! The agent's observable happenings, one value each (after vector's internal events):
//! emitting one counts it, logs it and limits how often it logs, in one place, so that a
//! counter and its log line cannot drift apart and a flood cannot flood the log.
//!
//! Each kind of happening logs at most once per interval ([`LogLimit`]), saying how many
//! lines it held back since the last; its counter counts every one. The counting goes
//! through the telemetry seam ([`Emit`], which the agent installs): the components that
//! emit these name neither the metrics registry nor its counters.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::observe::LogLimit;
use crate::reject::{Reject, REJECTS};
use crate::telemetry::{Alias, Collector, Emit, Ingest, Input};

/// Input refused (a request, a connection, a WebSocket message, a broker message):
/// counted in `heplink_rejected_total{input, reason}`; logged at WARN, at most once a
/// second per reason.
#[derive(Debug)]
pub struct InputRejected<'a> {
    /// Where it came in.
    pub input: Input,
    /// Why it was refused.
    pub reason: Reject,
    /// Who sent it, when known.
    pub peer: Option<SocketAddr>,
    /// The log line's message: what happened, in words.
    pub what: &'a str,
    /// More for the log line (e.g. `status=413 size=9000000`); may be empty.
    pub detail: fmt::Arguments<'a>,
}

static REJECT_LOGS: [LogLimit; REJECTS] =
    [const { LogLimit::new(Duration::from_secs(1)) }; REJECTS];

impl InputRejected<'_> {
    /// Counts it, and logs it unless its reason logged within the last second.
    pub fn emit(self, m: &(impl Emit<Ingest> + ?Sized)) {
        m.add(Ingest::Rejected(self.input, self.reason), 1);
        if let Some(suppressed) = REJECT_LOGS[self.reason as usize].allow() {
            tracing::warn!(
                input = self.input.label(),
                reason = self.reason.label(),
                peer = %self.peer.map_or_else(|| "?".to_string(), |p| p.to_string()),
                suppressed,
                "{} {}",
                self.what,
                self.detail
            );
        }
    }
}

/// A UDP datagram larger than the configured MTU was sent (it is fragmented on the way):
/// counted in `heplink_udp_over_mtu_total`; logged at most once a minute.
#[derive(Debug)]
pub struct UdpOverMtu<'a> {
    /// The collector.
    pub collector: &'a str,
    /// The packet's size.
    pub size: usize,
    /// The configured MTU.
    pub mtu: usize,
}

impl UdpOverMtu<'_> {
    /// Counts it, and logs it unless one logged within the last minute.
    pub fn emit(self, m: &(impl Emit<Collector> + ?Sized)) {
        static LOG: LogLimit = LogLimit::new(Duration::from_secs(60));
        m.add(Collector::OverMtu, 1);
        if let Some(suppressed) = LOG.allow() {
            tracing::warn!(collector = %self.collector, size = self.size, mtu = self.mtu, suppressed, "HEP packet larger than the MTU: it will be fragmented (TCP avoids that).");
        }
    }
}

/// A UDP send failed: counted in `heplink_send_errors_total` (and the collector's last
/// error); logged at most once a second.
#[derive(Debug)]
pub struct UdpSendFailed<'a> {
    /// The collector.
    pub collector: &'a str,
    /// What the socket said.
    pub error: &'a std::io::Error,
}

impl UdpSendFailed<'_> {
    /// Counts it, and logs it unless one logged within the last second.
    pub fn emit(self, m: &(impl Emit<Collector> + ?Sized)) {
        static LOG: LogLimit = LogLimit::new(Duration::from_secs(1));
        m.error(Collector::SendErrors, self.error);
        m.add(Collector::SendErrors, 1);
        if let Some(suppressed) = LOG.allow() {
            tracing::warn!(collector = %self.collector, error = %self.error, suppressed, "UDP send failed.");
        }
    }
}

/// The spool's cap dropped packets not yet confirmed (the oldest first): counted in
/// `heplink_dropped_spool_total`; logged at WARN at most once a second.
#[derive(Debug)]
pub struct SpoolCapDropped<'a> {
    /// The collector whose spool it is.
    pub collector: &'a str,
    /// Packets dropped.
    pub packets: u64,
    /// The cap, bytes.
    pub max_bytes: u64,
}

impl SpoolCapDropped<'_> {
    /// Counts them, and logs unless a drop logged within the last second.
    pub fn emit(self, m: &(impl Emit<Collector> + ?Sized)) {
        static LOG: LogLimit = LogLimit::new(Duration::from_secs(1));
        m.add(Collector::DroppedSpool, self.packets);
        if let Some(suppressed) = LOG.allow() {
            tracing::warn!(collector = %self.collector, packets = self.packets, max_bytes = self.max_bytes, suppressed, "Spool at its cap: the oldest packets were dropped.");
        }
    }
}

/// A spool write failed (disk full, read-only, gone): the packets are lost, counted in
/// `heplink_dropped_spool_error_total`; logged at ERROR at most once a second.
#[derive(Debug)]
pub struct SpoolWriteFailed<'a> {
    /// The collector whose spool it is.
    pub collector: &'a str,
    /// Why.
    pub error: &'a std::io::Error,
    /// Packets lost.
    pub packets: u64,
}

impl SpoolWriteFailed<'_> {
    /// Counts them, and logs unless a failure logged within the last second.
    pub fn emit(self, m: &(impl Emit<Collector> + ?Sized)) {
        static LOG: LogLimit = LogLimit::new(Duration::from_secs(1));
        m.add(Collector::DroppedSpoolError, self.packets);
        if let Some(suppressed) = LOG.allow() {
            tracing::error!(collector = %self.collector, error = %self.error, packets = self.packets, suppressed, "Spool write failed: packets dropped.");
        }
    }
}

/// A write to a TCP/TLS collector failed, or stalled (the collector stopped reading): the
/// connection is replaced and what it may not have read is written again. Counted in
/// `heplink_collector_stalls_total` or `heplink_send_errors_total` (and the collector's
/// last error); logged at WARN at most once a second per kind.
#[derive(Debug)]
pub struct CollectorWriteFailed<'a> {
    /// The collector.
    pub collector: &'a str,
    /// Why (`TimedOut`: a stall).
    pub error: &'a std::io::Error,
}

impl CollectorWriteFailed<'_> {
    /// Counts it, marks the collector disconnected, and logs unless one of its kind
    /// logged within the last second.
    pub fn emit(self, m: &(impl Emit<Collector> + ?Sized)) {
        static STALL: LogLimit = LogLimit::new(Duration::from_secs(1));
        static FAILED: LogLimit = LogLimit::new(Duration::from_secs(1));
        m.error(Collector::SendErrors, self.error);
        m.set(Collector::Connected, 0);
        if self.error.kind() == std::io::ErrorKind::TimedOut {
            m.add(Collector::Stalls, 1);
            if let Some(suppressed) = STALL.allow() {
                tracing::warn!(collector = %self.collector, error = %self.error, suppressed, "The collector stopped reading; replacing the connection.");
            }
        } else {
            m.add(Collector::SendErrors, 1);
            if let Some(suppressed) = FAILED.allow() {
                tracing::warn!(collector = %self.collector, error = %self.error, suppressed, "Write to the collector failed; reconnecting.");
            }
        }
    }
}

/// A Homer API call for aliases failed: counted in `heplink_homer_alias_failures_total`;
/// logged at WARN at most once every 10 seconds.
#[derive(Debug)]
pub struct AliasFailed<'a> {
    /// What was being done, in words.
    pub what: &'a str,
    /// Why.
    pub error: &'a crate::homer::ApiError,
}

impl AliasFailed<'_> {
    /// Counts it, and logs unless one logged within the last 10 seconds.
    pub fn emit(self, m: &(impl Emit<Alias> + ?Sized)) {
        static LOG: LogLimit = LogLimit::new(Duration::from_secs(10));
        m.add(Alias::Failures, 1);
        if let Some(suppressed) = LOG.allow() {
            tracing::warn!(error = %self.error, suppressed, "Homer aliases: {}", self.what);
        }
    }
}

/// A gzip body arrived from an HTTP client (sampleevh with `compress = true`): warned of
/// once per run, because Janus's sampleevh compresses each batch into a fixed 8,192-byte
/// buffer and drops the whole batch when it does not fit (`janus_sampleevh.c`, "Failed to
/// compress event"), in 1.1.2 and 1.4.1 alike: a loss heplink never sees.
pub struct GzipFromJanus {
    /// The client.
    pub peer: Option<std::net::SocketAddr>,
}

impl GzipFromJanus {
    /// Logs it once per run.
    pub fn emit(self) {
        static ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !ONCE.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                peer = ?self.peer,
                "Gzip bodies arrive: sampleevh compresses each batch into a fixed 8 KiB buffer and drops the whole batch in Janus when it does not fit (about 30-40 grouped events); set compress = false in janus.eventhandler.sampleevh.jcfg, or use wsevh. Shown once."
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_counts_though_the_log_is_limited() {
        let m = crate::telemetry::Tally::default();
        for _ in 0..1000 {
            InputRejected {
                input: Input::Ws,
                reason: Reject::BadWsMessage,
                peer: None,
                what: "WebSocket error: closing.",
                detail: format_args!(""),
            }
            .emit(&m);
        }
        assert_eq!(
            m.get(Ingest::Rejected(Input::Ws, Reject::BadWsMessage)),
            1000
        );
        // The log of this reason is spent for a second; another reason's is not.
        assert!(REJECT_LOGS[Reject::BadWsMessage as usize].allow().is_none());
        assert!(REJECT_LOGS[Reject::Overloaded as usize].allow().is_some());
    }
}
