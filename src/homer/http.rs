//! A small HTTP/1.1 client for Homer's REST API: one request per connection
//! (`Connection: close`), a JSON body, the answer read whole (Content-Length, chunked, or
//! to the end), with a deadline. Plain `http://` or `https://` (rustls).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most bytes of an answer read (a search answer is a few hundred KB at most).
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
    /// The answer is not HTTP (homer-app 1.4 closes the connection without an answer when a
    /// handler panics on a body it did not expect).
    #[error("Homer API {0}: no HTTP answer (the connection closed without one)")]
    NoAnswer(String),
    /// TLS set-up failed.
    #[error("Homer API TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// Where the API is: scheme, `host:port`, host and path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    tls: bool,
    address: String,
    host: String,
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
        let io = |source| HttpError::Io {
            address: base.address.clone(),
            source,
        };
        let tcp = TcpStream::connect(&base.address).await.map_err(io)?;
        let _ = tcp.set_nodelay(true);
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\nUser-Agent: heplink/{}\r\n",
            base.prefix,
            base.host,
            env!("CARGO_PKG_VERSION")
        );
        if let Some(t) = bearer {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        let mut req = head.into_bytes();
        req.extend_from_slice(body.unwrap_or_default());
        let raw = if base.tls {
            let (cfg, name) = crate::tls::client(tls, &base.host)?;
            let mut s = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .map_err(io)?;
            exchange(&mut s, &req).await.map_err(io)?
        } else {
            let mut s = tcp;
            exchange(&mut s, &req).await.map_err(io)?
        };
        parse_answer(&raw).ok_or_else(|| HttpError::NoAnswer(base.address.clone()))
    };
    tokio::time::timeout(deadline, work)
        .await
        .map_err(|_| HttpError::Timeout(base.address.clone(), deadline))?
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    req: &[u8],
) -> std::io::Result<Vec<u8>> {
    s.write_all(req).await?;
    s.flush().await?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() > MAX_ANSWER {
                    return Err(std::io::Error::other("answer too large"));
                }
            }
            // A TLS peer that closes without close_notify: what came is the answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    Ok(raw)
}

/// Status and de-chunked body of a whole HTTP/1.1 answer.
fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(n) = r.parse(raw).ok()? else {
        return None;
    };
    let status = r.code?;
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let rest = &raw[n..];
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut out = Vec::new();
        let mut at = rest;
        loop {
            let line_end = at.windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&at[..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = &at[line_end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(at.get(..size)?);
            at = at.get(size + 2..)?;
        }
        out
    } else if let Some(len) = header("content-length").and_then(|v| v.trim().parse().ok()) {
        rest.get(..len)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some(Answer { status, body })
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
        let b = Base::parse("https://homer.example/prefix/").unwrap();
        assert_eq!(
            (b.tls, b.address(), b.prefix.as_str()),
            (true, "homer.example:443", "/prefix")
        );
        let b = Base::parse("http://[::1]:9080").unwrap();
        assert_eq!((b.address(), b.host.as_str()), ("[::1]:9080", "::1"));
        for bad in ["homer:9080", "ftp://x:1", "http://", "http://x:notaport"] {
            assert!(Base::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_with_length_chunked_and_to_the_end() {
        let a = parse_answer(b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\n{}\r\nxx").unwrap();
        assert_eq!((a.status, &a.body[..]), (201, &b"{}\r\n"[..]));
        let a = parse_answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(a.body, b"abcde");
        let a = parse_answer(b"HTTP/1.1 201 Created\r\n\r\n").unwrap();
        assert!(
            a.body.is_empty(),
            "an empty body is an answer (homer-app's DB failures)"
        );
        assert!(parse_answer(b"").is_none());
    }
}
