//! Homer's REST API over hyper's HTTP/1.1 client connection: one request per connection
//! (`Connection: close`), a JSON body, the answer read whole (hyper reads Content-Length,
//! chunked or to the end) up to 16 MiB, with a deadline. Plain `http://`, or
//! `https://` through tokio-rustls with the project's TLS settings ([`crate::tls::client`]:
//! custom CA, server name, client certificate).

use std::io::ErrorKind;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, USER_AGENT,
};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Most bytes of an answer's body read (a search answer is a few hundred KB at most).
const MAX_ANSWER: usize = 16 << 20;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL cannot be used.
    #[error("Homer API URL {0:?}: expected http://HOST:PORT or https://HOST:PORT")]
    Url(String),
    /// Connecting, writing or reading failed.
    #[error("Homer API {address}: {source}")]
    Io {
        /// Where.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// No answer within the deadline.
    #[error("Homer API {0}: no answer within {1:?}")]
    Timeout(String, Duration),
    /// The answer is not HTTP, or ends before its end (homer-app 1.4 closes the connection
    /// without an answer when a handler panics on a body it did not expect).
    #[error("Homer API {0}: no HTTP answer (the connection closed without one)")]
    NoAnswer(String),
    /// The request cannot be written (a token or path that is not a header value or a
    /// request target).
    #[error("Homer API {address}: cannot form the request: {source}")]
    Request {
        /// Where.
        address: String,
        /// Why.
        source: hyper::http::Error,
    },
    /// TLS set-up failed.
    #[error("Homer API TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// Where the API is: scheme, `host:port`, host, the URL's authority and path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    tls: bool,
    address: String,
    host: String,
    /// `host[:port]` as the URL writes it: the `Host` header.
    authority: String,
    prefix: String,
}

impl Base {
    /// Parses `http://HOST:PORT[/prefix]` or `https://…` (port 80/443 when absent).
    pub fn parse(url: &str) -> Result<Base, HttpError> {
        let err = || HttpError::Url(url.to_owned());
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(err());
        };
        let (hostport, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if hostport.is_empty() {
            return Err(err());
        }
        let (host, address) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
                p.parse::<u16>().map_err(|_| err())?;
                (h.trim_matches(['[', ']']).to_owned(), hostport.to_owned())
            }
            _ => (
                hostport.to_owned(),
                format!("{hostport}:{}", if tls { 443 } else { 80 }),
            ),
        };
        Ok(Base {
            tls,
            address,
            host,
            authority: hostport.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// An answer: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

/// Sends one request and reads its answer within `deadline`.
pub async fn request(
    base: &Base,
    tls: &crate::tls::TlsClient,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&[u8]>,
    deadline: Duration,
) -> Result<Answer, HttpError> {
    let work = async {
        let req = form(base, method, path, bearer, body).map_err(|source| HttpError::Request {
            address: base.address.clone(),
            source,
        })?;
        let io = |source| HttpError::Io {
            address: base.address.clone(),
            source,
        };
        let tcp = TcpStream::connect(&base.address).await.map_err(io)?;
        let _ = tcp.set_nodelay(true);
        if base.tls {
            let (cfg, name) = crate::tls::client(tls, &base.host)?;
            let s = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .map_err(io)?;
            exchange(
                base,
                TlsEof {
                    inner: s,
                    read: false,
                },
                req,
            )
            .await
        } else {
            exchange(base, tcp, req).await
        }
    };
    tokio::time::timeout(deadline, work)
        .await
        .map_err(|_| HttpError::Timeout(base.address.clone(), deadline))?
}

/// The request: `Host` (the URL's `host[:port]`), `Connection: close`, JSON accepted,
/// the token, the JSON body.
fn form(
    base: &Base,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&[u8]>,
) -> Result<hyper::Request<Full<Bytes>>, hyper::http::Error> {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("{}{path}", base.prefix))
        .header(HOST, &base.authority)
        .header(CONNECTION, "close")
        .header(ACCEPT, "application/json")
        .header(USER_AGENT, concat!("heplink/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = bearer {
        let mut v = HeaderValue::try_from(format!("Bearer {t}"))?;
        v.set_sensitive(true);
        req = req.header(AUTHORIZATION, v);
    }
    let body = match body {
        Some(b) => {
            // hyper writes the Content-Length of a body of known length.
            req = req.header(CONTENT_TYPE, "application/json");
            Bytes::copy_from_slice(b)
        }
        None => Bytes::new(),
    };
    req.body(Full::new(body))
}

/// One request on a fresh connection, its answer read whole: hyper's client connection,
/// driven here (no task is spawned, so the deadline ends everything).
async fn exchange<S>(
    base: &Base,
    stream: S,
    req: hyper::Request<Full<Bytes>>,
) -> Result<Answer, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| failure(&base.address, &*e);
    // Header names as the former hand-written client wrote them (`Host`, `Authorization`).
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.into()))?;
    let mut answer = pin!(async move {
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await?
            .to_bytes();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Answer {
            status,
            body: body.into(),
        })
    });
    let mut conn = pin!(conn);
    tokio::select! {
        biased;
        a = &mut answer => return a.map_err(failed),
        // The connection ends once the answer is read (or the peer closed): what it read
        // is waiting in the answer's channels, or its error is.
        _ = &mut conn => {}
    }
    answer.await.map_err(failed)
}

/// A hyper or body error in the client's words: an answer cut short or not HTTP is
/// [`HttpError::NoAnswer`]; the rest is the I/O error beneath, or the text.
fn failure(address: &str, e: &(dyn std::error::Error + 'static)) -> HttpError {
    let mut at = Some(e);
    let mut io = None;
    let mut cut = false;
    while let Some(e) = at {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            cut |= h.is_incomplete_message() || h.is_parse();
        } else if let Some(i) = e.downcast_ref::<std::io::Error>() {
            cut |= i.kind() == ErrorKind::UnexpectedEof;
            io.get_or_insert_with(|| std::io::Error::new(i.kind(), i.to_string()));
        } else if e.is::<http_body_util::LengthLimitError>() {
            io = Some(std::io::Error::other("answer too large"));
            break;
        }
        at = e.source();
    }
    if cut {
        return HttpError::NoAnswer(address.to_owned());
    }
    HttpError::Io {
        address: address.to_owned(),
        source: io.unwrap_or_else(|| std::io::Error::other(e.to_string())),
    }
}

/// A TLS stream whose peer may close without `close_notify` once it has answered: that
/// end of file, after some bytes, is the end of the answer (as for plain TCP) rather than
/// an error, so that an answer delimited by the close is read whole.
struct TlsEof<S> {
    inner: S,
    /// Whether any byte was read.
    read: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for TlsEof<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if e.kind() == ErrorKind::UnexpectedEof && self.read => {
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(())) => {
                self.read |= buf.filled().len() > before;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TlsEof<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases() {
        let b = Base::parse("http://homer.example:9080").unwrap();
        assert_eq!(
            (b.tls, b.address(), b.host.as_str(), b.prefix.as_str()),
            (false, "homer.example:9080", "homer.example", "")
        );
        assert_eq!(b.authority, "homer.example:9080");
        let b = Base::parse("https://homer.example/prefix/").unwrap();
        assert_eq!(
            (b.tls, b.address(), b.prefix.as_str(), b.authority.as_str()),
            (true, "homer.example:443", "/prefix", "homer.example")
        );
        let b = Base::parse("http://[::1]:9080").unwrap();
        assert_eq!((b.address(), b.host.as_str()), ("[::1]:9080", "::1"));
        for bad in ["homer:9080", "ftp://x:1", "http://", "http://x:notaport"] {
            assert!(Base::parse(bad).is_err(), "{bad}");
        }
    }
}
