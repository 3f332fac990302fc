//! A collector's queue: bounded in packets (the channel) and in bytes (a permit per byte
//! queued, given back as the sender takes packets), with the full policy.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, Semaphore};

use super::WhenFull;
use super::{Counts, Progress};
use crate::telemetry::{Collector, Emit};

/// The sending end of one collector's queue: bounded in packets (the channel) and in
/// bytes (`bytes`, a permit per byte queued, given back as the sender takes packets).
#[derive(Debug, Clone)]
pub struct Queue {
    tx: mpsc::Sender<Bytes>,
    bytes: Arc<Semaphore>,
    policy: WhenFull,
    metrics: Arc<Counts>,
    progress: Arc<Progress>,
}

/// Most bytes a collector's queue holds by default (`queue.max_bytes`): with packets of
/// Janus's size (about 650 bytes) some 25,000 of them; 65,536 packets of 1.5 KB would
/// otherwise be about 100 MiB.
pub const DEFAULT_QUEUE_BYTES: usize = 16 << 20;

/// The least `queue.max_bytes` may be: the largest HEP packet (its length is 16 bits).
pub const MIN_QUEUE_BYTES: usize = 1 << 16;

impl Queue {
    /// Queues a packet according to the full policy; false when it was dropped. Full
    /// means either bound: the queue's packets or its bytes.
    pub async fn push(&self, packet: Bytes) -> bool {
        // A packet's length fits 16 bits (HEP); the bytes are taken first, and given back
        // by the receiving end ([`QueueRx`]) when it takes the packet.
        let n = u32::try_from(packet.len()).unwrap_or(u32::MAX);
        let ok = match self.policy {
            WhenFull::DropNewest => match self.bytes.try_acquire_many(n) {
                Ok(permit) => match self.tx.try_send(packet) {
                    Ok(()) => {
                        permit.forget();
                        true
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.metrics.add(Collector::DroppedQueueFull, 1);
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                },
                Err(_) => {
                    self.metrics.add(Collector::DroppedQueueFull, 1);
                    false
                }
            },
            WhenFull::Block => match self.bytes.acquire_many(n).await {
                Ok(permit) => {
                    let ok = self.tx.send(packet).await.is_ok();
                    if ok {
                        permit.forget();
                    }
                    ok
                }
                Err(_) => false,
            },
        };
        if ok {
            self.metrics.add(Collector::QueueDepth, 1);
            self.progress.queued(1);
        }
        ok
    }

    /// How far this collector's queue and spool got (control state: what a body's
    /// acknowledgement waits for).
    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }
}

/// The receiving end of one collector's queue: what it takes gives its bytes back to the
/// queue's byte bound.
#[derive(Debug)]
pub(crate) struct QueueRx {
    rx: mpsc::Receiver<Bytes>,
    bytes: Arc<Semaphore>,
    progress: Arc<Progress>,
}

impl QueueRx {
    /// The queue's progress, which the senders move.
    pub(crate) fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    fn taken(&self, n: usize) {
        if n > 0 {
            self.bytes.add_permits(n);
        }
    }

    /// The next packet; `None` once the queue is closed and empty.
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        let p = self.rx.recv().await?;
        self.taken(p.len());
        Some(p)
    }

    /// The next packet if one is queued.
    pub(crate) fn try_recv(&mut self) -> Result<Bytes, mpsc::error::TryRecvError> {
        let p = self.rx.try_recv()?;
        self.taken(p.len());
        Ok(p)
    }

    /// Waits for packets and appends up to `limit` of them to `buf`; 0 once the queue is
    /// closed and empty.
    pub(crate) async fn recv_many(&mut self, buf: &mut Vec<Bytes>, limit: usize) -> usize {
        let start = buf.len();
        let n = self.rx.recv_many(buf, limit).await;
        self.taken(buf[start..].iter().map(Bytes::len).sum());
        n
    }

    /// Whether every sending end is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

/// A collector's queue of at most `capacity` packets and `max_bytes` bytes.
pub(super) fn queue(
    capacity: usize,
    max_bytes: usize,
    policy: WhenFull,
    metrics: Arc<Counts>,
    progress: Arc<Progress>,
) -> (Queue, QueueRx) {
    let (tx, rx) = mpsc::channel(capacity);
    let bytes = Arc::new(Semaphore::new(max_bytes.min(Semaphore::MAX_PERMITS)));
    (
        Queue {
            tx,
            bytes: bytes.clone(),
            policy,
            metrics,
            progress: progress.clone(),
        },
        QueueRx {
            rx,
            bytes,
            progress,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Tally;
    use std::time::Duration;

    fn counted() -> (Arc<Tally<Collector>>, Arc<Counts>) {
        let t = Arc::new(Tally::default());
        (t.clone(), Arc::new(Counts::new("test".into(), t)))
    }

    /// The queue is full at its byte bound, whatever room its packet bound leaves, and a
    /// packet taken gives its bytes back.
    #[tokio::test]
    async fn queue_is_bounded_in_bytes() {
        let (t, m) = counted();
        let (q, mut rx) = queue(1_000_000, 100_000, WhenFull::DropNewest, m, Arc::default());
        let packet = Bytes::from(vec![0u8; 1_500]);
        let mut queued = 0;
        while q.push(packet.clone()).await {
            queued += 1;
        }
        assert_eq!(queued, 100_000 / 1_500, "full at the byte bound");
        assert_eq!(t.get(Collector::DroppedQueueFull), 1);
        assert_eq!(q.progress().enqueued(), queued);
        assert!(!q.push(Bytes::from(vec![0u8; 1_500])).await);
        // A smaller packet still fits in what is left.
        assert!(q.push(Bytes::from(vec![0u8; 100])).await);
        // Taking packets (one at a time, or many) gives their bytes back.
        assert_eq!(rx.recv().await.map(|p| p.len()), Some(1_500));
        assert!(q.push(packet.clone()).await);
        let mut batch = Vec::new();
        rx.recv_many(&mut batch, 10).await;
        assert_eq!(batch.len(), 10);
        for _ in 0..10 {
            assert!(q.push(packet.clone()).await);
        }
        assert!(!q.push(packet.clone()).await);
    }

    /// With `block`, a push waits for bytes to be taken rather than dropping.
    #[tokio::test]
    async fn a_blocking_queue_waits_for_bytes() {
        let (t, m) = counted();
        let (q, mut rx) = queue(1_000_000, 3_000, WhenFull::Block, m, Arc::default());
        let packet = Bytes::from(vec![0u8; 1_500]);
        assert!(q.push(packet.clone()).await);
        assert!(q.push(packet.clone()).await);
        let third = tokio::time::timeout(Duration::from_millis(50), q.push(packet.clone()));
        assert!(third.await.is_err(), "waits while the bytes are spent");
        assert!(rx.try_recv().is_ok());
        assert!(q.push(packet.clone()).await);
        assert_eq!(t.get(Collector::DroppedQueueFull), 0);
    }
}
