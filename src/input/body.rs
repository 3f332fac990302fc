//! Reading request bodies within bounds: one budget of body bytes in flight shared by
//! all connections, bodies kept in pieces and joined once at the exact size, gzip inflated
//! with the cap enforced as bytes come out, and a rejected body read and discarded for a
//! bounded time (as nginx's `lingering_time`) so that a client that sends it whole first
//! still reads the answer.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most time spent reading and discarding a rejected request's body before answering, so
/// that a client that sends its whole body first still reads the status (RFC 9112 §9.6):
/// a bound in time, not bytes (nginx's `lingering_time` is 30 s), so an 80 MiB body sent
/// at loopback or LAN speed is read to its end. The bytes go nowhere (no memory), and the
/// connection guard's minimum rate still closes a client that trickles.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Most time waiting for the next piece of a rejected body (nginx's `lingering_timeout`).
const DRAIN_IDLE: Duration = Duration::from_secs(2);

/// How long a request waits for room in the body budget before a 503.
pub const BUDGET_WAIT: Duration = Duration::from_secs(5);

/// Budget permits are taken in steps of this many bytes while inflating.
pub const INFLATE_STEP: usize = 64 << 10;

/// Bodies inflated at once (the machine's two cores; Janus's gzip bodies take well under
/// a millisecond each).
pub const INFLATE_SLOTS: usize = 2;

/// Reads and discards `body` for at most [`DRAIN_TIME`], and [`DRAIN_IDLE`] between
/// pieces.
pub(super) async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Ok(Some(Ok(_))) = tokio::time::timeout(DRAIN_IDLE, body.frame()).await {}
    })
    .await;
}

/// Why a body could not be read.
pub(super) enum ReadError {
    TooLarge(usize),
    Overloaded,
    Broken,
}

/// Takes `n` bytes of the budget, waiting up to [`BUDGET_WAIT`].
pub(super) async fn take_budget(budget: &Arc<Semaphore>, n: usize) -> Option<OwnedSemaphorePermit> {
    let n = u32::try_from(n).ok()?;
    // Mostly the budget has room: no timer then.
    if let Ok(p) = budget.clone().try_acquire_many_owned(n) {
        return Some(p);
    }
    tokio::time::timeout(BUDGET_WAIT, budget.clone().acquire_many_owned(n))
        .await
        .ok()?
        .ok()
}

/// Reads the body in pieces, each counted against the budget, up to `max` bytes. The
/// pieces are kept as they come (no buffer that doubles as it grows) and joined once at
/// the end into an allocation of the exact size.
pub(super) async fn read_body(
    body: &mut Body,
    max: usize,
    budget: &Arc<Semaphore>,
    held: &mut Option<OwnedSemaphorePermit>,
) -> Result<Bytes, ReadError> {
    let mut pieces = Pieces::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(ReadError::Broken);
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if len + data.len() > max {
            return Err(ReadError::TooLarge(len + data.len()));
        }
        let permit = take_budget(budget, data.len())
            .await
            .ok_or(ReadError::Overloaded)?;
        match held {
            Some(h) => h.merge(permit),
            None => *held = Some(permit),
        }
        len += data.len();
        pieces.push(data);
    }
    Ok(join(pieces, len))
}

/// A body's pieces as they came; mostly there is one, kept inline (no list allocated).
type Pieces = smallvec::SmallVec<[Bytes; 1]>;

/// One buffer of exactly `len` bytes from `pieces` (no copy for a single piece).
fn join(mut pieces: Pieces, len: usize) -> Bytes {
    if pieces.len() == 1 {
        return pieces.pop().expect("one");
    }
    let mut out = BytesMut::with_capacity(len);
    for p in pieces {
        out.extend_from_slice(&p);
    }
    out.freeze()
}

/// Why a gzip body could not be inflated.
#[derive(Debug)]
pub enum GunzipError {
    /// More than the cap.
    TooLarge,
    /// Not gzip, or cut short.
    Bad(String),
    /// The budget of bytes in flight stayed spent.
    Overloaded,
}

/// Inflates `data` with a cap: reading stops one byte past `max`, so a bomb costs at most
/// `max`; with a budget, every [`INFLATE_STEP`] bytes that come out take their share of
/// it first (waiting up to [`BUDGET_WAIT`]). Blocking: run it off the async workers.
pub fn gunzip(
    data: &[u8],
    max: usize,
    budget: Option<&Arc<Semaphore>>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), GunzipError> {
    let mut pieces = Pieces::new();
    let mut len = 0usize;
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut d = flate2::read::MultiGzDecoder::new(data).take(max as u64 + 1);
    loop {
        if let Some(b) = budget {
            let started = Instant::now();
            let permit = loop {
                match b.clone().try_acquire_many_owned(INFLATE_STEP as u32) {
                    Ok(p) => break p,
                    Err(_) if started.elapsed() < BUDGET_WAIT => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return Err(GunzipError::Overloaded),
                }
            };
            match held.as_mut() {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
        }
        // Each step into a buffer of its own size: nothing doubles as the body grows.
        let mut step = vec![0u8; INFLATE_STEP];
        let mut filled = 0;
        while filled < step.len() {
            let n = d
                .read(&mut step[filled..])
                .map_err(|e| GunzipError::Bad(e.to_string()))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        step.truncate(filled);
        len += filled;
        if len > max {
            return Err(GunzipError::TooLarge);
        }
        let last = filled < INFLATE_STEP;
        pieces.push(Bytes::from(step));
        if last {
            break;
        }
    }
    Ok((join(pieces, len), held))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gunzip_caps_bombs() {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![b' '; 10 << 20]).unwrap();
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 20_000);
        assert!(matches!(
            gunzip(&bomb, 1 << 20, None),
            Err(GunzipError::TooLarge)
        ));
        assert_eq!(
            gunzip(&bomb, 10 << 20, None).ok().map(|b| b.0.len()),
            Some(10 << 20)
        );
        assert!(matches!(
            gunzip(b"not gzip", 100, None),
            Err(GunzipError::Bad(_))
        ));
    }

    #[test]
    fn gunzip_takes_its_share_of_the_budget_and_gives_up_when_it_stays_spent() {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![b' '; 1 << 20]).unwrap();
        let gz = e.finish().unwrap();
        let budget = Arc::new(Semaphore::new(4 << 20));
        let (b, held) = gunzip(&gz, 2 << 20, Some(&budget)).unwrap();
        assert_eq!(b.len(), 1 << 20);
        assert!(
            budget.available_permits() <= (3 << 20),
            "held while the body lives"
        );
        drop(held);
        assert_eq!(budget.available_permits(), 4 << 20);
        // A budget smaller than the body: the inflation waits, then gives up.
        let small = Arc::new(Semaphore::new(256 << 10));
        assert!(matches!(
            gunzip(&gz, 2 << 20, Some(&small)),
            Err(GunzipError::Overloaded)
        ));
    }
}
