//! Homer's REST API client (`homer::http`) on the wire, against loopback servers that
//! answer raw bytes: the answer shapes it reads (Content-Length, chunked, to the end,
//! empty), the ones that are no answer, the request it writes, its deadline and size cap,
//! and `https://` with the project's TLS settings (a CA file, a server name) and the
//! rustls words of an unknown issuer or a wrong name.

mod common;

use std::time::Duration;

use common::pki::{leaf, make_ca};
use heplink::homer::http::{request, Answer, Base, HttpError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// The client's cap on an answer's body (16 MiB).
const MAX: usize = 16 << 20;

/// Reads one request (head and Content-Length body) from `s`.
async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len || n == 0 {
                return text;
            }
        } else if n == 0 {
            return text;
        }
    }
}

/// A one-connection HTTP server on loopback answering `raw` then closing; returns its
/// URL and the request it read.
async fn serve_raw(raw: Vec<u8>) -> (String, tokio::task::JoinHandle<String>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let req = read_request(&mut s).await;
        let _ = s.write_all(&raw).await;
        let _ = s.shutdown().await;
        req
    });
    (url, task)
}

/// A GET answered with `raw`.
async fn ask(raw: &[u8]) -> Result<Answer, HttpError> {
    let (url, task) = serve_raw(raw.to_vec()).await;
    let base = Base::parse(&url).unwrap();
    let a = request(
        &base,
        &Default::default(),
        "GET",
        "/x",
        None,
        None,
        Duration::from_secs(5),
    )
    .await;
    task.await.unwrap();
    a
}

#[tokio::test]
async fn answers_with_length_chunked_and_to_the_end() {
    let a = ask(b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\n{}\r\nxx")
        .await
        .unwrap();
    assert_eq!((a.status, &a.body[..]), (201, &b"{}\r\n"[..]));
    let a = ask(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(a.body, b"abcde");
    let a = ask(b"HTTP/1.1 201 Created\r\n\r\n").await.unwrap();
    assert!(
        a.status == 201 && a.body.is_empty(),
        "an empty body is an answer (homer-app's DB failures)"
    );
    let a = ask(b"HTTP/1.0 200 OK\r\n\r\n{\"to\":\"the end\"}")
        .await
        .unwrap();
    assert_eq!(a.body, b"{\"to\":\"the end\"}");
    for none in [
        &b""[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
        b"SSH-2.0-OpenSSH_9.6\r\n",
    ] {
        let e = ask(none).await.unwrap_err();
        assert!(matches!(e, HttpError::NoAnswer(_)), "{e}");
    }
}

#[tokio::test]
async fn the_request_as_written() {
    let (url, task) =
        serve_raw(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}".to_vec()).await;
    let base = Base::parse(&format!("{url}/homer/")).unwrap();
    let body = br#"{"username":"admin"}"#;
    let a = request(
        &base,
        &Default::default(),
        "POST",
        "/api/v4/aliases?page%5Blimit%5D=1000",
        Some("tok-0"),
        Some(body),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!((a.status, &a.body[..]), (201, &b"{}"[..]));
    let req = task.await.unwrap();
    let host = url.trim_start_matches("http://");
    for line in [
        "POST /homer/api/v4/aliases?page%5Blimit%5D=1000 HTTP/1.1\r\n".to_string(),
        format!("\r\nHost: {host}\r\n"),
        "\r\nConnection: close\r\n".into(),
        "\r\nAccept: application/json\r\n".into(),
        "\r\nAuthorization: Bearer tok-0\r\n".into(),
        "\r\nContent-Type: application/json\r\n".into(),
        format!("\r\nContent-Length: {}\r\n", body.len()),
        format!("\r\n\r\n{}", std::str::from_utf8(body).unwrap()),
    ] {
        assert!(req.contains(&line), "{line:?} not in {req:?}");
    }
    assert!(req.starts_with("POST "), "{req}");
    // A bodiless request says nothing of a body.
    let (url, task) = serve_raw(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()).await;
    let base = Base::parse(&url).unwrap();
    let a = request(
        &base,
        &Default::default(),
        "DELETE",
        "/api/v4/aliases/g",
        Some("t"),
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(a.status, 204);
    let req = task.await.unwrap().to_ascii_lowercase();
    assert!(
        !req.contains("content-length") && !req.contains("transfer-encoding"),
        "{req}"
    );
    // A token that is not a header value is refused before any connection.
    let e = request(
        &base,
        &Default::default(),
        "GET",
        "/",
        Some("a\r\nX: y"),
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, HttpError::Request { .. }), "{e}");
}

#[tokio::test]
async fn a_deadline_and_a_cap() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Base::parse(&format!("http://{}", l.local_addr().unwrap())).unwrap();
    let silent = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_request(&mut s).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let e = request(
        &base,
        &Default::default(),
        "GET",
        "/",
        None,
        None,
        Duration::from_millis(200),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, HttpError::Timeout(..)), "{e}");
    silent.abort();
    let mut big = format!(
        "HTTP/1.1 201 Created\r\nContent-Length: {}\r\n\r\n",
        MAX + 1
    )
    .into_bytes();
    big.resize(big.len() + MAX + 1, b' ');
    let e = ask(&big).await.unwrap_err();
    assert!(e.to_string().contains("answer too large"), "{e}");
}

#[tokio::test]
async fn https_with_the_tls_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, issuer) = make_ca(dir.path(), "homer-ca");
    let (cert, key) = leaf(dir.path(), "homer", &["localhost", "127.0.0.1"], &issuer);
    let acceptor =
        tokio_rustls::TlsAcceptor::from(heplink::tls::server(&cert, &key, None).unwrap());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                read_request(&mut s).await;
                // Delimited by the close, and no close_notify before it.
                let _ = s
                    .write_all(b"HTTP/1.1 201 Created\r\n\r\n{\"token\":\"t\"}")
                    .await;
                let _ = s.flush().await;
                let (tcp, _) = s.into_inner();
                drop(tcp);
            });
        }
    });
    let trusting = heplink::tls::TlsClient {
        ca_file: Some(ca.clone()),
        ..Default::default()
    };
    let call = |url: String, tls: heplink::tls::TlsClient| async move {
        request(
            &Base::parse(&url).unwrap(),
            &tls,
            "POST",
            "/api/v3/auth",
            None,
            Some(b"{}"),
            Duration::from_secs(5),
        )
        .await
    };
    let a = call(format!("https://localhost:{port}"), trusting.clone())
        .await
        .unwrap();
    assert_eq!((a.status, &a.body[..]), (201, &b"{\"token\":\"t\"}"[..]));
    let a = call(format!("https://127.0.0.1:{port}"), trusting.clone())
        .await
        .unwrap();
    assert_eq!(a.status, 201);
    let e = call(format!("https://localhost:{port}"), Default::default())
        .await
        .unwrap_err();
    // The words `homer check`'s TLS diagnosis looks for (rustls's variant or its text).
    let has = |e: &HttpError, a: &str, b: &str| {
        let t = e.to_string();
        t.contains(a) || t.contains(b)
    };
    assert!(
        matches!(e, HttpError::Io { .. }) && has(&e, "UnknownIssuer", "unknown issuer"),
        "{e}"
    );
    let named = heplink::tls::TlsClient {
        server_name: Some("homer.example".into()),
        ..trusting
    };
    let e = call(format!("https://localhost:{port}"), named)
        .await
        .unwrap_err();
    assert!(has(&e, "NotValidForName", "not valid for name"), "{e}");
}
