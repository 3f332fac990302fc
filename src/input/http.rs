//! The HTTP input (Janus's sample event handler): POST bodies of one event, an array or
//! NDJSON, optionally gzip and Basic auth.

use std::io::Read;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::Job;
use crate::metrics::{Input, Metrics, Reject};

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
}

/// Compares in time that depends only on the expected value's length.
fn ct_eq(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != given.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

fn plain(status: StatusCode, msg: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], msg).into_response()
}

/// The handler of every request on the HTTP input.
pub async fn http_ingest(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    st.metrics.http_requests.fetch_add(1, Relaxed);
    if let Some(expected) = &st.auth {
        let given = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        if !ct_eq(expected, given) {
            st.metrics.reject(Input::Http, Reject::Unauthorized);
            let mut r = plain(
                StatusCode::UNAUTHORIZED,
                "{\"error\":\"wrong or missing credentials\"}".into(),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"heplink\""),
            );
            return r;
        }
    }
    let raw = match axum::body::to_bytes(body, st.max_body).await {
        Ok(b) => b,
        Err(_) => {
            st.metrics.reject(Input::Http, Reject::BodyTooLarge);
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("{{\"error\":\"body larger than {} bytes\"}}", st.max_body),
            );
        }
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let body = match encoding.as_str() {
        "" | "identity" => raw,
        "gzip" | "x-gzip" => match gunzip(&raw, st.max_decompressed) {
            Ok(b) => b,
            Err(GunzipError::TooLarge) => {
                st.metrics.reject(Input::Http, Reject::DecompressedTooLarge);
                return plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "{{\"error\":\"decompressed body larger than {} bytes\"}}",
                        st.max_decompressed
                    ),
                );
            }
            Err(GunzipError::Bad(e)) => {
                st.metrics.reject(Input::Http, Reject::BadGzip);
                return plain(
                    StatusCode::BAD_REQUEST,
                    format!("{{\"error\":\"bad gzip body: {}\"}}", json_escape(&e)),
                );
            }
        },
        other => {
            st.metrics.reject(Input::Http, Reject::UnsupportedEncoding);
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "{{\"error\":\"unsupported Content-Encoding {}\"}}",
                    json_escape(other)
                ),
            );
        }
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
    match rx.await {
        Ok(rejected) if rejected.is_empty() => plain(StatusCode::OK, "{\"ok\":true}".into()),
        Ok(rejected) => {
            let items: Vec<String> = rejected
                .iter()
                .map(|r| {
                    format!(
                        "{{\"index\":{},\"reason\":\"{}\",\"error\":\"{}\"}}",
                        r.index,
                        r.reason,
                        json_escape(&r.message)
                    )
                })
                .collect();
            plain(
                StatusCode::BAD_REQUEST,
                format!("{{\"rejected\":[{}]}}", items.join(",")),
            )
        }
        Err(_) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"error\":\"shutting down\"}".into(),
        ),
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::new();
    crate::janus::event::write_json_str(&mut out, s);
    out[1..out.len() - 1].to_string()
}

enum GunzipError {
    TooLarge,
    Bad(String),
}

/// Gunzips with a cap: reading stops one byte past `max`, so a bomb costs at most `max`.
fn gunzip(data: &[u8], max: usize) -> Result<Bytes, GunzipError> {
    let mut out = Vec::new();
    let mut d = flate2::read::MultiGzDecoder::new(data).take(max as u64 + 1);
    d.read_to_end(&mut out)
        .map_err(|e| GunzipError::Bad(e.to_string()))?;
    if out.len() > max {
        return Err(GunzipError::TooLarge);
    }
    Ok(Bytes::from(out))
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
        assert!(matches!(gunzip(&bomb, 1 << 20), Err(GunzipError::TooLarge)));
        assert_eq!(
            gunzip(&bomb, 10 << 20).ok().map(|b| b.len()),
            Some(10 << 20)
        );
        assert!(matches!(gunzip(b"not gzip", 100), Err(GunzipError::Bad(_))));
    }
}
