//! The UDP sender: one packet per datagram, what is queued sent in batches with one
//! `sendmmsg`, paced by a [`super::pace::Pacer`].

use crate::internal_events::{UdpOverMtu, UdpSendFailed};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;

use super::Counts;
use super::{pace, resolve, Backoff, QueueRx};
use crate::telemetry::{Collector, Emit};

/// Sends what the queue holds to the UDP collector at `address` until the queue closes.
pub(super) async fn run_udp(
    address: String,
    mut rx: QueueRx,
    mtu: usize,
    mut pacer: pace::Pacer,
    m: Arc<Counts>,
) {
    let sock = bind(&address, &m).await;
    let progress = rx.progress().clone();
    m.set(Collector::Connected, 1);
    tracing::info!(collector = %address, "Sending HEP over UDP.");
    // Whatever is queued goes out in batches: one `sendmmsg` per batch rather than one
    // `send` per packet (on loopback the syscalls cost more than the packets).
    let mut batch: Vec<Bytes> = Vec::with_capacity(UDP_BATCH);
    while rx.recv_many(&mut batch, UDP_BATCH).await > 0 {
        if batch.len() < UDP_BATCH {
            // Let the tasks that are ready (other POSTs being answered) run first, then
            // take what they queued: under load many small bodies make one batch; when
            // idle this costs one trip through the scheduler.
            tokio::task::yield_now().await;
            while batch.len() < UDP_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
        }
        m.sub(Collector::QueueDepth, batch.len() as u64);
        for p in &batch {
            if p.len() > mtu {
                UdpOverMtu {
                    collector: &address,
                    size: p.len(),
                    mtu,
                }
                .emit(&m);
            }
        }
        send_paced(&sock, &batch, &mut pacer, &address, (&m, &progress)).await;
        batch.clear();
    }
    m.set(Collector::Connected, 0);
}

/// A UDP socket connected to `address`, retried (with a growing pause, each failure
/// counted) until it resolves and binds.
async fn bind(address: &str, m: &Counts) -> UdpSocket {
    let mut backoff = Backoff::default();
    let mut failures = super::conn::FailureLog::default();
    loop {
        let bound = async {
            let to = resolve(address).await?;
            let local: SocketAddr = if to.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            failures.connected(address);
            let s = UdpSocket::bind(local).await?;
            s.connect(to).await?;
            Ok::<_, std::io::Error>(s)
        };
        match bound.await {
            Ok(s) => return s,
            Err(e) => {
                // Once per change of reason at WARN (a host that does not resolve says so),
                // the retries at DEBUG.
                m.add(Collector::SendErrors, 1);
                m.error(Collector::SendErrors, &e);
                let d = backoff.next_delay();
                failures.report(address, &e, d);
                tokio::time::sleep(d).await;
            }
        }
    }
}

/// Sends `batch` as the pacer allows, in `sendmmsg` batches; counts what went and what
/// failed (a refused packet, i.e. the ICMP of an earlier one, is tried once more).
async fn send_paced(
    sock: &UdpSocket,
    batch: &[Bytes],
    pacer: &mut pace::Pacer,
    address: &str,
    (m, progress): (&Counts, &super::Progress),
) {
    let mut done = 0;
    let mut retry_at = None;
    while done < batch.len() {
        // The pacer says how many may go now; the others wait their turn.
        let (allowed, wait) = pacer.take(std::time::Instant::now(), batch.len() - done);
        if allowed == 0 {
            m.add(Collector::PacedWaits, 1);
            tokio::time::sleep(wait.unwrap_or(Duration::from_micros(100))).await;
            continue;
        }
        let limit = done + allowed;
        while done < limit {
            let rest = &batch[done..limit];
            let sent = if rest.len() == 1 {
                sock.send(&rest[0]).await.map(|_| 1)
            } else {
                match sock.writable().await {
                    Ok(()) => sock.try_io(tokio::io::Interest::WRITABLE, || send_batch(sock, rest)),
                    Err(e) => Err(e),
                }
            };
            match sent {
                Ok(n) => {
                    m.add(Collector::Packets, n as u64);
                    progress.confirmed(n as u64);
                    let bytes: usize = rest[..n].iter().map(Bytes::len).sum();
                    m.add(Collector::Bytes, bytes as u64);
                    done += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    UdpSendFailed {
                        collector: address,
                        error: &e,
                    }
                    .emit(m);
                    // A refusal reports the ICMP port unreachable of an earlier
                    // datagram (Linux keeps it on the socket until the next send, which
                    // it fails without sending): this packet was not sent, so it is
                    // tried once more. Any other error, or a second refusal, loses it.
                    if e.kind() == std::io::ErrorKind::ConnectionRefused && retry_at != Some(done) {
                        retry_at = Some(done);
                    } else {
                        done += 1;
                    }
                }
            }
        }
    }
}

/// Most packets per `sendmmsg`.
const UDP_BATCH: usize = 64;

/// Sends the first packets of `pkts` (up to [`UDP_BATCH`]) on the connected socket in one
/// `sendmmsg`; returns how many went. An error means the first one could not be sent.
fn send_batch(sock: &UdpSocket, pkts: &[Bytes]) -> std::io::Result<usize> {
    use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;
    let n = pkts.len().min(UDP_BATCH);
    let iovs: Vec<[IoSlice<'_>; 1]> = pkts[..n].iter().map(|p| [IoSlice::new(p)]).collect();
    // The socket is connected: no address per message.
    let addrs: Vec<Option<SockaddrStorage>> = vec![None; n];
    let mut hdrs = MultiHeaders::<SockaddrStorage>::preallocate(n, None);
    let res = sendmmsg(
        sock.as_raw_fd(),
        &mut hdrs,
        &iovs,
        &addrs,
        [],
        MsgFlags::empty(),
    )
    .map_err(std::io::Error::from)?;
    Ok(res.count())
}
