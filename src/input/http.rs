//! The HTTP input (Janus's sample event handler): POST bodies of one event, an array or
//! NDJSON, optionally gzip and Basic auth.
//!
//! Every request costs bounded memory and time: the body is read in pieces against a
//! budget of body bytes in flight shared by all connections (compressed and decompressed),
//! gzip is inflated off the async workers with the cap enforced as bytes come out, a
//! rejected request's body is read and discarded up to a bound so that a client that
//! sends its whole body before reading still sees the status, and a 4xx answer lists at
//! most [`MAX_LISTED`] rejected events.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::Job;
use crate::metrics::{Input, Metrics, Reject};
use crate::observe::LogLimit;

use crate::pipeline::MAX_LISTED;

/// Most bytes of a rejected request's body read and discarded before answering, so that
/// a client that sends its whole body first still reads the status (RFC 9112 §9.6).
pub const DRAIN_MAX: usize = 8 << 20;

/// Most time spent discarding a rejected body.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// How long a request waits for room in the body budget before a 503.
pub const BUDGET_WAIT: Duration = Duration::from_secs(5);

/// Budget permits are taken in steps of this many bytes while inflating.
pub const INFLATE_STEP: usize = 64 << 10;

/// What the HTTP handler needs.
pub struct HttpState {
    /// The pipeline task.
    pub jobs: mpsc::Sender<Job>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The whole expected `Authorization` header value, when Basic auth is on.
    pub auth: Option<Vec<u8>>,
    /// Cap on the body as received.
    pub max_body: usize,
    /// Cap on the decompressed body.
    pub max_decompressed: usize,
    /// Body bytes in flight across all connections (one permit per byte).
    pub budget: Arc<Semaphore>,
    /// Failed authentication per peer address, for the growing delay.
    pub auth_failures: AuthThrottle,
    /// Bodies that may inflate at once ([`INFLATE_SLOTS`] permits).
    pub inflate_slots: Arc<Semaphore>,
}

/// Bodies inflated at once (the machine's two cores; Janus's gzip bodies take well under
/// a millisecond each).
pub const INFLATE_SLOTS: usize = 2;

/// Slows down failed authentication per peer address: the n-th failure in a row waits
/// `base` × 2^(n-1) (50 ms by default, at most 3.2 s) before its 401. A success clears the address.
#[derive(Debug)]
pub struct AuthThrottle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    base: Duration,
}

impl Default for AuthThrottle {
    fn default() -> Self {
        AuthThrottle::new(Duration::from_millis(50))
    }
}

/// Addresses remembered by [`AuthThrottle`] at most (then the oldest half is forgotten).
const THROTTLE_ENTRIES: usize = 10_000;

impl AuthThrottle {
    /// A throttle whose first delay is `base` (doubling up to 64 × `base`).
    pub fn new(base: Duration) -> AuthThrottle {
        AuthThrottle {
            failures: Mutex::default(),
            base,
        }
    }

    /// Records a failure from `ip`; returns the delay to apply and the failures so far.
    pub fn fail(&self, ip: IpAddr) -> (Duration, u32) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() >= THROTTLE_ENTRIES && !f.contains_key(&ip) {
            let mut by_age: Vec<(IpAddr, Instant)> = f.iter().map(|(k, v)| (*k, v.1)).collect();
            by_age.sort_by_key(|e| e.1);
            for (k, _) in by_age.into_iter().take(THROTTLE_ENTRIES / 2) {
                f.remove(&k);
            }
        }
        let e = f.entry(ip).or_insert((0, Instant::now()));
        // A quiet minute forgives.
        if e.1.elapsed() > Duration::from_secs(60) {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = Instant::now();
        let n = e.0;
        (self.base * (1u32 << (n - 1).min(6)), n)
    }

    /// Forgets `ip`'s failures (it authenticated).
    pub fn succeed(&self, ip: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if !f.is_empty() {
            f.remove(&ip);
        }
    }
}

/// Compares in time that depends only on the expected value's length.
pub fn ct_eq(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != given.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

fn plain(status: StatusCode, msg: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], msg).into_response()
}

static REJECT_LOG: LogLimit = LogLimit::new(Duration::from_secs(1));

/// A rejected request: counted, logged at WARN (at most once a second, with the count
/// of lines suppressed), its body discarded up to [`DRAIN_MAX`], answered with
/// `Connection: close`.
async fn reject(
    st: &HttpState,
    peer: Option<SocketAddr>,
    reason: Reject,
    size: Option<usize>,
    body: Option<Body>,
    mut resp: Response,
) -> Response {
    st.metrics.reject(Input::Http, reason);
    if let Some(suppressed) = REJECT_LOG.allow() {
        tracing::warn!(
            peer = %peer.map_or_else(|| "?".to_string(), |p| p.to_string()),
            reason = reason.label(),
            status = resp.status().as_u16(),
            size = size.unwrap_or(0),
            suppressed,
            "HTTP request rejected."
        );
    }
    if let Some(b) = body {
        drain(b).await;
    }
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

/// Reads and discards up to [`DRAIN_MAX`] bytes of `body` within [`DRAIN_TIME`].
async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut n = 0;
        while n < DRAIN_MAX {
            match body.frame().await {
                Some(Ok(f)) => n += f.data_ref().map_or(0, Bytes::len),
                _ => return,
            }
        }
    })
    .await;
}

/// Why a body could not be read.
enum ReadError {
    TooLarge(usize),
    Overloaded,
    Broken,
}

/// Takes `n` bytes of the budget, waiting up to [`BUDGET_WAIT`].
async fn take_budget(budget: &Arc<Semaphore>, n: usize) -> Option<OwnedSemaphorePermit> {
    let n = u32::try_from(n).ok()?;
    tokio::time::timeout(BUDGET_WAIT, budget.clone().acquire_many_owned(n))
        .await
        .ok()?
        .ok()
}

/// Reads the body in pieces, each counted against the budget, up to `max` bytes. The
/// pieces are kept as they come (no buffer that doubles as it grows) and joined once at
/// the end into an allocation of the exact size.
async fn read_body(
    body: &mut Body,
    max: usize,
    budget: &Arc<Semaphore>,
    held: &mut Option<OwnedSemaphorePermit>,
) -> Result<Bytes, ReadError> {
    let mut pieces: Vec<Bytes> = Vec::new();
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

/// One buffer of exactly `len` bytes from `pieces` (no copy for a single piece).
fn join(mut pieces: Vec<Bytes>, len: usize) -> Bytes {
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
    let mut pieces: Vec<Bytes> = Vec::new();
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

/// The handler of every request on the HTTP input.
pub async fn http_ingest(State(st): State<Arc<HttpState>>, req: Request) -> Response {
    st.metrics.http_requests.fetch_add(1, Relaxed);
    let peer = req
        .extensions()
        .get::<ConnectInfo<super::Peer>>()
        .map(|c| c.0 .0);
    let (parts, mut body) = req.into_parts();
    let headers = &parts.headers;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if parts.method != Method::POST {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "{\"error\":\"POST Janus events here\"}".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return reject(&st, peer, Reject::MethodNotAllowed, declared, Some(body), r).await;
    }
    if let Some(expected) = &st.auth {
        let given = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        let ip = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip());
        if !ct_eq(expected, given) {
            let (delay, failures) = st.auth_failures.fail(ip);
            tracing::debug!(%ip, failures, delay_ms = delay.as_millis() as u64, "Authentication failed.");
            tokio::time::sleep(delay).await;
            let mut r = plain(
                StatusCode::UNAUTHORIZED,
                "{\"error\":\"wrong or missing credentials\"}".into(),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"heplink\""),
            );
            return reject(&st, peer, Reject::Unauthorized, declared, Some(body), r).await;
        }
        st.auth_failures.succeed(ip);
    }
    let too_large = |n: usize| {
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{{\"error\":\"body of {n} bytes or more, larger than {} bytes\"}}",
                st.max_body
            ),
        )
    };
    if let Some(n) = declared.filter(|n| *n > st.max_body) {
        return reject(
            &st,
            peer,
            Reject::BodyTooLarge,
            Some(n),
            Some(body),
            too_large(n),
        )
        .await;
    }
    let encoding = encoding(headers);
    if !matches!(encoding.as_str(), "" | "identity" | "gzip" | "x-gzip") {
        let r = plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "{{\"error\":\"unsupported Content-Encoding {}; send identity or gzip\"}}",
                json_escape(&encoding)
            ),
        );
        return reject(
            &st,
            peer,
            Reject::UnsupportedEncoding,
            declared,
            Some(body),
            r,
        )
        .await;
    }
    let mut held = None;
    let raw = match read_body(&mut body, st.max_body, &st.budget, &mut held).await {
        Ok(b) => b,
        Err(ReadError::TooLarge(n)) => {
            drop(held);
            return reject(
                &st,
                peer,
                Reject::BodyTooLarge,
                Some(n),
                Some(body),
                too_large(n),
            )
            .await;
        }
        Err(ReadError::Overloaded) => {
            drop(held);
            let mut r = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "{\"error\":\"too many request bodies in flight; retry\"}".into(),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return reject(&st, peer, Reject::Overloaded, declared, Some(body), r).await;
        }
        Err(ReadError::Broken) => {
            // The client went away mid-body: nobody to answer.
            return plain(
                StatusCode::BAD_REQUEST,
                "{\"error\":\"body cut short\"}".into(),
            );
        }
    };
    let size = raw.len();
    let body = if matches!(encoding.as_str(), "gzip" | "x-gzip") {
        let (max, budget) = (st.max_decompressed, st.budget.clone());
        // At most INFLATE_SLOTS bodies inflate at once, each on a blocking thread: a flood
        // of bombs takes that many threads (and their allocator heaps), not one each.
        let Some(_slot) = take_budget(&st.inflate_slots, 1).await else {
            let r = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "{\"error\":\"too many compressed bodies in flight; retry\"}".into(),
            );
            return reject(&st, peer, Reject::Overloaded, Some(size), None, r).await;
        };
        let inflated = tokio::task::spawn_blocking(move || gunzip(&raw, max, Some(&budget))).await;
        match inflated {
            Ok(Ok((b, permit))) => {
                if let (Some(h), Some(p)) = (held.as_mut(), permit) {
                    h.merge(p);
                }
                b
            }
            Ok(Err(GunzipError::TooLarge)) => {
                let r = plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "{{\"error\":\"decompressed body larger than {} bytes\"}}",
                        st.max_decompressed
                    ),
                );
                return reject(&st, peer, Reject::DecompressedTooLarge, Some(size), None, r).await;
            }
            Ok(Err(GunzipError::Overloaded)) | Err(_) => {
                let r = plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "{\"error\":\"too many request bodies in flight; retry\"}".into(),
                );
                return reject(&st, peer, Reject::Overloaded, Some(size), None, r).await;
            }
            Ok(Err(GunzipError::Bad(e))) => {
                let r = plain(
                    StatusCode::BAD_REQUEST,
                    format!("{{\"error\":\"bad gzip body: {}\"}}", json_escape(&e)),
                );
                return reject(&st, peer, Reject::BadGzip, Some(size), None, r).await;
            }
        }
    } else {
        raw
    };
    let (tx, rx) = oneshot::channel();
    let job = Job {
        body,
        input: Input::Http,
        reply: Some(tx),
    };
    if st.jobs.send(job).await.is_err() {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"error\":\"shutting down\"}".into(),
        );
    }
    let answer = match rx.await {
        Ok(rejected) if rejected.is_empty() => plain(StatusCode::OK, "{\"ok\":true}".into()),
        Ok(rejected) => {
            let r = plain(
                StatusCode::BAD_REQUEST,
                rejected_json(&rejected.listed, rejected.total),
            );
            // Counted per event by the pipeline task; logged here, once per request.
            if let Some(suppressed) = REJECT_LOG.allow() {
                tracing::warn!(
                    peer = %peer.map_or_else(|| "?".to_string(), |p| p.to_string()),
                    rejected = rejected.total, size, suppressed,
                    first = %rejected[0].message,
                    "HTTP body with malformed events (the good ones were delivered)."
                );
            }
            r
        }
        Err(_) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"error\":\"shutting down\"}".into(),
        ),
    };
    drop(held);
    answer
}

/// Runs one request through the real handler without sockets, with a pipeline behind it
/// and small caps (body 64 KiB, decompressed 256 KiB, budget 1 MiB) so that every path is
/// reachable: for the fuzz target and tests. `auth` turns Basic auth on (`janus:s3cret`).
/// Returns the status, the answer's body and the events the pipeline read.
pub fn ingest_once(
    method: &str,
    headers: &[(&str, &[u8])],
    body: Vec<u8>,
    auth: bool,
) -> (u16, Vec<u8>, u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let (tx, mut rx) = mpsc::channel::<Job>(4);
        let pipeline = tokio::spawn(async move {
            let mut p = crate::pipeline::Pipeline::new(Default::default(), Default::default());
            while let Some(job) = rx.recv().await {
                let rejected = p.push_body(&job.body, 1_700_000_000_000_000, &mut |_| {});
                if let Some(r) = job.reply {
                    let _ = r.send(rejected);
                }
            }
            p.stats().events
        });
        let st = Arc::new(HttpState {
            jobs: tx,
            metrics: Arc::new(Metrics::default()),
            auth: auth.then(|| b"Basic amFudXM6czNjcmV0".to_vec()),
            max_body: 64 << 10,
            max_decompressed: 256 << 10,
            budget: Arc::new(Semaphore::new(1 << 20)),
            auth_failures: AuthThrottle::new(Duration::ZERO),
            inflate_slots: Arc::new(Semaphore::new(INFLATE_SLOTS)),
        });
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri("/janus-events");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let Ok(req) = req.body(Body::from(body)) else {
            return (0, Vec::new(), 0);
        };
        let resp = http_ingest(State(st), req).await;
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let events = pipeline.await.unwrap_or(0);
        (status, bytes, events)
    })
}

/// The 400 answer: the first [`MAX_LISTED`] rejected events and the total, whatever the
/// request (each message is cut to 200 characters).
pub fn rejected_json(rejected: &[crate::pipeline::Rejected], total: usize) -> String {
    let items: Vec<String> = rejected
        .iter()
        .take(MAX_LISTED)
        .map(|r| {
            let msg: String = r.message.chars().take(200).collect();
            format!(
                "{{\"index\":{},\"reason\":\"{}\",\"error\":\"{}\"}}",
                r.index,
                r.reason,
                json_escape(&msg)
            )
        })
        .collect();
    format!(
        "{{\"rejected_total\":{},\"rejected\":[{}]}}",
        total,
        items.join(",")
    )
}

fn encoding(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_ENCODING)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn json_escape(s: &str) -> String {
    let mut out = String::new();
    crate::janus::event::write_json_str(&mut out, s);
    out[1..out.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"Basic abc", b"Basic abc"));
        assert!(!ct_eq(b"Basic abc", b"Basic abd"));
        assert!(!ct_eq(b"Basic abc", b"Basic ab"));
        assert!(!ct_eq(b"Basic abc", b"Basic abcd"));
        assert!(!ct_eq(b"Basic abc", b""));
    }

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

    #[test]
    fn the_400_answer_lists_ten_and_counts_all() {
        let many: Vec<crate::pipeline::Rejected> = (0..500_000)
            .map(|i| crate::pipeline::Rejected {
                index: i,
                reason: "not_an_event",
                message: "x".repeat(1000),
            })
            .collect();
        let s = rejected_json(&many, many.len());
        assert!(s.len() < 4096, "{} bytes", s.len());
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["rejected_total"], 500_000);
        assert_eq!(v["rejected"].as_array().unwrap().len(), MAX_LISTED);
    }

    #[test]
    fn failed_authentication_waits_longer_each_time() {
        let t = AuthThrottle::default();
        let ip: IpAddr = [127, 0, 0, 9].into();
        let d: Vec<u64> = (0..9).map(|_| t.fail(ip).0.as_millis() as u64).collect();
        assert_eq!(d, [50, 100, 200, 400, 800, 1600, 3200, 3200, 3200]);
        t.succeed(ip);
        assert_eq!(t.fail(ip).0, Duration::from_millis(50));
    }
}
