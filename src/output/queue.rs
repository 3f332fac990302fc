//! A collector's queue: bounded in packets (the channel) and in bytes (a permit per byte
//! queued, given back as the sender takes packets), with the full policy.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, Semaphore};

use super::WhenFull;
use crate::metrics::CollectorMetrics;

/// The sending end of one collector's queue: bounded in packets (the channel) and in
/// bytes (`bytes`, a permit per byte queued, given back as the sender takes packets).
#[derive(Debug, Clone)]
pub struct Queue {
    tx: mpsc::Sender<Bytes>,
    bytes: Arc<Semaphore>,
    policy: WhenFull,
    metrics: Arc<CollectorMetrics>,
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
                        self.metrics.dropped_queue_full.fetch_add(1, Relaxed);
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                },
                Err(_) => {
                    self.metrics.dropped_queue_full.fetch_add(1, Relaxed);
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
            self.metrics.queue_depth.fetch_add(1, Relaxed);
            self.metrics.enqueued.fetch_add(1, Relaxed);
        }
        ok
    }

    /// The collector's metrics.
    pub fn metrics(&self) -> &Arc<CollectorMetrics> {
        &self.metrics
    }
}

/// The receiving end of one collector's queue: what it takes gives its bytes back to the
/// queue's byte bound.
#[derive(Debug)]
pub(crate) struct QueueRx {
    rx: mpsc::Receiver<Bytes>,
    bytes: Arc<Semaphore>,
}

impl QueueRx {
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
    metrics: Arc<CollectorMetrics>,
) -> (Queue, QueueRx) {
    let (tx, rx) = mpsc::channel(capacity);
    let bytes = Arc::new(Semaphore::new(max_bytes.min(Semaphore::MAX_PERMITS)));
    (
        Queue {
            tx,
            bytes: bytes.clone(),
            policy,
            metrics,
        },
        QueueRx { rx, bytes },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The queue is full at its byte bound, whatever room its packet bound leaves, and a
    /// packet taken gives its bytes back.
    #[tokio::test]
    async fn queue_is_bounded_in_bytes() {
        let m = Arc::new(CollectorMetrics::default());
        let (q, mut rx) = queue(1_000_000, 100_000, WhenFull::DropNewest, m.clone());
        let packet = Bytes::from(vec![0u8; 1_500]);
        let mut queued = 0;
        while q.push(packet.clone()).await {
            queued += 1;
        }
        assert_eq!(queued, 100_000 / 1_500, "full at the byte bound");
        assert_eq!(m.dropped_queue_full.load(Relaxed), 1);
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
        let m = Arc::new(CollectorMetrics::default());
        let (q, mut rx) = queue(1_000_000, 3_000, WhenFull::Block, m.clone());
        let packet = Bytes::from(vec![0u8; 1_500]);
        assert!(q.push(packet.clone()).await);
        assert!(q.push(packet.clone()).await);
        let third = tokio::time::timeout(Duration::from_millis(50), q.push(packet.clone()));
        assert!(third.await.is_err(), "waits while the bytes are spent");
        assert!(rx.try_recv().is_ok());
        assert!(q.push(packet.clone()).await);
        assert_eq!(m.dropped_queue_full.load(Relaxed), 0);
    }
}
