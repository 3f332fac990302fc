//! How far a collector's queue and spool got: control state, not a metric. The output
//! owns it and moves it; the acknowledgement bookkeeping (`ack::settle`) waits on it (a
//! body is safe once every spool took what was queued at its release). The metrics may
//! read it for export, never the reverse: no count decides anything.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Release};

/// A collector's progress, published by its output as an `Arc<Progress>`
/// ([`Queue::progress`](super::Queue::progress)). Both numbers only grow.
#[derive(Debug, Default)]
pub struct Progress {
    /// Packets taken into the queue, ever.
    enqueued: AtomicU64,
    /// Packets taken from the queue into the spool (or lost to a failed spool write: they
    /// will never be in it, and nothing waits for them), ever.
    spooled: AtomicU64,
    /// Packets confirmed sent (UDP: handed to the kernel; TCP/TLS: confirmed read, see
    /// `output::delivery`), ever.
    sent: AtomicU64,
}

impl Progress {
    /// Packets taken into the queue so far.
    pub fn enqueued(&self) -> u64 {
        self.enqueued.load(Acquire)
    }

    /// Packets the spool took (or lost) so far: every packet up to this count of
    /// [`Progress::enqueued`] is on the disk (or never will be).
    pub fn spooled(&self) -> u64 {
        self.spooled.load(Acquire)
    }

    /// Packets confirmed sent so far (what `heplink_sent_packets_total` also counts; this is
    /// the copy a caller may decide on, e.g. `homer check` whether its probe went out).
    pub fn sent(&self) -> u64 {
        self.sent.load(Acquire)
    }

    /// `n` packets were confirmed sent.
    pub(crate) fn confirmed(&self, n: u64) {
        self.sent.fetch_add(n, Release);
    }

    /// `n` packets were queued.
    pub(crate) fn queued(&self, n: u64) {
        self.enqueued.fetch_add(n, Release);
    }

    /// `n` packets left the queue into the spool (after the write).
    pub(crate) fn in_spool(&self, n: u64) {
        self.spooled.fetch_add(n, Release);
    }
}
