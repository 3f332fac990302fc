//! The HTTP input (Janus's sample event handler): POST bodies of one event, an array or
//! NDJSON, optionally gzip and Basic auth.
//!
//! Every request costs bounded memory and time: the body is read in pieces against a
//! budget of body bytes in flight shared by all connections (compressed and decompressed),
//! gzip is inflated off the async workers with the cap enforced as bytes come out, a
//! rejected request's body is read and discarded up to a bound so that a client that
//! sends its whole body before reading still sees the status, and a 4xx answer lists at
//! most [`MAX_LISTED`] rejected events.

use crate::internal_events::InputRejected;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::Semaphore;

use super::auth::{ct_eq, AuthThrottle};
use super::body::{drain, gunzip, read_body, take_budget, GunzipError, ReadError};
use crate::ack::{Job, Taker};
use crate::observe::LogLimit;
use crate::reject::Reject;
use crate::telemetry::{Emit, Ingest, Input};

use crate::pipeline::MAX_LISTED;

/// What the HTTP handler needs.
pub struct HttpState {
    /// Takes each body (the pipeline, at once).
    pub taker: Arc<dyn Taker>,
    /// Counters.
    pub metrics: Arc<dyn Emit<Ingest>>,
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
    /// Bodies that may inflate at once ([`INFLATE_SLOTS`](super::body::INFLATE_SLOTS) permits).
    pub inflate_slots: Arc<Semaphore>,
}

/// The answer to a body taken whole: a static body, no allocation for it.
fn ok() -> Response {
    let mut r = Response::new(Body::from(Bytes::from_static(b"{\"ok\":true}")));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn plain(status: StatusCode, msg: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], msg).into_response()
}

/// The log of bodies with malformed events (counted per event by the pipeline).
static REJECT_LOG: LogLimit = LogLimit::new(Duration::from_secs(1));

/// A rejected request: counted and logged ([`InputRejected`]), its body discarded for at most [`super::body::DRAIN_TIME`], answered with
/// `Connection: close`.
async fn reject(
    st: &HttpState,
    peer: Option<SocketAddr>,
    reason: Reject,
    size: Option<usize>,
    body: Option<Body>,
    mut resp: Response,
) -> Response {
    InputRejected {
        input: Input::Http,
        reason,
        peer,
        what: "HTTP request rejected:",
        detail: format_args!(
            "status={} size={}",
            resp.status().as_u16(),
            size.unwrap_or(0)
        ),
    }
    .emit(&st.metrics);
    if let Some(b) = body {
        drain(b).await;
    }
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

/// The HTTP input's services: one per connection ([`HttpService`]), knowing its peer.
/// There is one handler and no routing, so no router sits in front of it, and the peer is
/// given once per connection instead of through each request's extensions.
#[derive(Clone)]
pub struct MakeHttp(pub Arc<HttpState>);

impl<'a, L> tower_service::Service<axum::serve::IncomingStream<'a, L>> for MakeHttp
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    type Response = HttpService;
    type Error = Infallible;
    type Future = std::future::Ready<Result<HttpService, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, s: axum::serve::IncomingStream<'a, L>) -> Self::Future {
        std::future::ready(Ok(HttpService {
            st: self.0.clone(),
            peer: *s.remote_addr(),
        }))
    }
}

/// The HTTP input's service on one connection: every request goes to [`http_ingest`].
#[derive(Clone)]
pub struct HttpService {
    st: Arc<HttpState>,
    peer: SocketAddr,
}

impl tower_service::Service<Request> for HttpService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let (st, peer) = (self.st.clone(), self.peer);
        Box::pin(async move { Ok(http_ingest(&st, Some(peer), req).await) })
    }
}

/// The handler of every request on the HTTP input: the head is checked (method,
/// credentials, declared size, encoding), the body read within the caps and the budget,
/// inflated if gzipped, and handed to the pipeline (at once, through [`Taker`]), whose
/// answer says which events were rejected.
pub async fn http_ingest(st: &HttpState, peer: Option<SocketAddr>, req: Request) -> Response {
    st.metrics.add(Ingest::HttpRequests, 1);
    let (parts, mut body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let encoding = encoding(&parts.headers);
    if let Err(Refused(reason, size, r)) = check_head(st, peer, &parts, declared, &encoding).await {
        return reject(st, peer, reason, size, Some(body), r).await;
    }
    let mut held = None;
    let raw = match read_body(&mut body, st.max_body, &st.budget, &mut held).await {
        Ok(b) => b,
        Err(ReadError::Broken) => {
            // The client went away mid-body: nobody to answer.
            return plain(
                StatusCode::BAD_REQUEST,
                "{\"error\":\"body cut short\"}".into(),
            );
        }
        Err(e) => {
            drop(held);
            let Refused(reason, size, r) = read_refused(st, e, declared);
            return reject(st, peer, reason, size, Some(body), r).await;
        }
    };
    let size = raw.len();
    let body = if matches!(encoding.as_str(), "gzip" | "x-gzip") {
        crate::internal_events::GzipFromJanus { peer }.emit();
        match inflate(st, raw, &mut held).await {
            Ok(b) => b,
            Err(Refused(reason, _, r)) => {
                return reject(st, peer, reason, Some(size), None, r).await;
            }
        }
    } else {
        raw
    };
    let answer = deliver(st, peer, body, size).await;
    drop(held);
    answer
}

/// A request refused: why, the size to report, the answer.
struct Refused(Reject, Option<usize>, Response);

/// The checks made before reading the body: method, credentials (a failure waits, longer
/// each time from the same address), declared size, encoding.
async fn check_head(
    st: &HttpState,
    peer: Option<SocketAddr>,
    parts: &axum::http::request::Parts,
    declared: Option<usize>,
    encoding: &str,
) -> Result<(), Refused> {
    if parts.method != Method::POST {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "{\"error\":\"POST Janus events here\"}".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return Err(Refused(Reject::MethodNotAllowed, declared, r));
    }
    if let Some(expected) = &st.auth {
        let given = parts
            .headers
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
            return Err(Refused(Reject::Unauthorized, declared, r));
        }
        st.auth_failures.succeed(ip);
    }
    if let Some(n) = declared.filter(|n| *n > st.max_body) {
        return Err(Refused(Reject::BodyTooLarge, Some(n), too_large(st, n)));
    }
    if !matches!(encoding, "" | "identity" | "gzip" | "x-gzip") {
        let r = plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "{{\"error\":\"unsupported Content-Encoding {}; send identity or gzip\"}}",
                json_escape(encoding)
            ),
        );
        return Err(Refused(Reject::UnsupportedEncoding, declared, r));
    }
    Ok(())
}

/// 413 for a body of at least `n` bytes.
fn too_large(st: &HttpState, n: usize) -> Response {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "{{\"error\":\"body of {n} bytes or more, larger than {} bytes\"}}",
            st.max_body
        ),
    )
}

/// The answer to a body that could not be read whole (not a broken one).
fn read_refused(st: &HttpState, e: ReadError, declared: Option<usize>) -> Refused {
    match e {
        ReadError::TooLarge(n) => Refused(Reject::BodyTooLarge, Some(n), too_large(st, n)),
        ReadError::Overloaded | ReadError::Broken => {
            let mut r = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "{\"error\":\"too many request bodies in flight; retry\"}".into(),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            Refused(Reject::Overloaded, declared, r)
        }
    }
}

/// Inflates a gzipped body within `max_decompressed_bytes` and the budget. At most
/// `INFLATE_SLOTS` bodies inflate at once, each on a blocking thread: a flood of bombs
/// takes that many threads (and their allocator heaps), not one each.
async fn inflate(
    st: &HttpState,
    raw: Bytes,
    held: &mut Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<Bytes, Refused> {
    let overloaded = |what: &str| {
        let r = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{{\"error\":\"too many {what} in flight; retry\"}}"),
        );
        Refused(Reject::Overloaded, None, r)
    };
    let (max, budget) = (st.max_decompressed, st.budget.clone());
    let Some(_slot) = take_budget(&st.inflate_slots, 1).await else {
        return Err(overloaded("compressed bodies"));
    };
    match tokio::task::spawn_blocking(move || gunzip(&raw, max, Some(&budget))).await {
        Ok(Ok((b, permit))) => {
            if let (Some(h), Some(p)) = (held.as_mut(), permit) {
                h.merge(p);
            }
            Ok(b)
        }
        Ok(Err(GunzipError::TooLarge)) => {
            let r = plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{{\"error\":\"decompressed body larger than {} bytes\"}}",
                    st.max_decompressed
                ),
            );
            Err(Refused(Reject::DecompressedTooLarge, None, r))
        }
        Ok(Err(GunzipError::Overloaded)) | Err(_) => Err(overloaded("request bodies")),
        Ok(Err(GunzipError::Bad(e))) => {
            let r = plain(
                StatusCode::BAD_REQUEST,
                format!("{{\"error\":\"bad gzip body: {}\"}}", json_escape(&e)),
            );
            Err(Refused(Reject::BadGzip, None, r))
        }
    }
}

/// Hands the body to the pipeline and answers with what it says: 200, or 400 with the
/// rejected events (the good ones were delivered).
async fn deliver(st: &HttpState, peer: Option<SocketAddr>, body: Bytes, size: usize) -> Response {
    let job = Job {
        body,
        input: Input::Http,
        receipt: None,
        warm: false,
    };
    match st.taker.take(job).await {
        Some(rejected) if rejected.is_empty() => ok(),
        Some(rejected) => {
            let r = plain(
                StatusCode::BAD_REQUEST,
                rejected_json(&rejected.listed, rejected.total),
            );
            // Counted per event by the pipeline; logged here, once per request.
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
        None => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"error\":\"shutting down\"}".into(),
        ),
    }
}

/// The pipeline alone behind [`ingest_once`]: the events it read.
#[cfg(feature = "test-support")]
struct Once(std::sync::Mutex<crate::pipeline::Pipeline>);

#[cfg(feature = "test-support")]
impl Taker for Once {
    fn take(
        &self,
        job: Job,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Option<crate::pipeline::Rejections>> + Send + '_>,
    > {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let taken = p.push_body(&job.body, 1_700_000_000_000_000, &mut |_| {});
        Box::pin(std::future::ready(Some(taken.rejected)))
    }
}

/// Runs one request through the real handler without sockets, with a pipeline behind it
/// and small caps (body 64 KiB, decompressed 256 KiB, budget 1 MiB) so that every path is
/// reachable: for the fuzz target and tests. `auth` turns Basic auth on (`janus:s3cret`).
/// Returns the status, the answer's body and the events the pipeline read.
///
/// Test support, not part of the agent: built with the `test-support` feature only (the
/// crate's own tests and benches turn it on, the fuzz crate asks for it), so the shipped
/// binary does not hold it. Its events carry a fixed clock (2023-11-14T22:13:20Z).
#[cfg(feature = "test-support")]
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
        let once = Arc::new(Once(std::sync::Mutex::new(crate::pipeline::Pipeline::new(
            Default::default(),
            Default::default(),
        ))));
        let st = Arc::new(HttpState {
            taker: once.clone(),
            metrics: crate::telemetry::nop(),
            auth: auth.then(|| b"Basic amFudXM6czNjcmV0".to_vec()),
            max_body: 64 << 10,
            max_decompressed: 256 << 10,
            budget: Arc::new(Semaphore::new(1 << 20)),
            auth_failures: AuthThrottle::new(Duration::ZERO),
            inflate_slots: Arc::new(Semaphore::new(super::body::INFLATE_SLOTS)),
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
        let resp = http_ingest(&st, None, req).await;
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let events = once.0.lock().map_or(0, |p| p.stats().events);
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
                r.reason.label(),
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
    crate::json::write_json_str(&mut out, s);
    out[1..out.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_400_answer_lists_ten_and_counts_all() {
        let many: Vec<crate::pipeline::Rejected> = (0..500_000)
            .map(|i| crate::pipeline::Rejected {
                index: i,
                reason: Reject::NotAnEvent,
                message: "x".repeat(1000),
            })
            .collect();
        let s = rejected_json(&many, many.len());
        assert!(s.len() < 4096, "{} bytes", s.len());
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["rejected_total"], 500_000);
        assert_eq!(v["rejected"].as_array().unwrap().len(), MAX_LISTED);
    }
}
