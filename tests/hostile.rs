//! Hostile input on loopback: each test asserts the status, the bound (answer size,
//! connections, time) and that good events sent around the bad input still arrive.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// One good event (the echotest capture's first).
fn good_event() -> serde_json::Value {
    fixture_events("echotest-http-only").remove(0)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Sends a whole request (head and body) before reading anything, as libcurl and
/// Python's http.client do; returns the status and the whole answer.
fn send_all_then_read(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut s = StdStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body)
        .expect("the agent reads what it rejects, up to a bound");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn post_head(addr: SocketAddr, len: usize, extra: &str) -> String {
    format!("POST /e HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {len}\r\n{extra}\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_half_a_million_non_events_gets_a_small_answer_and_its_good_event_arrives() {
    let (collector, got) = udp_receiver().await;
    let (a, stop) = start_agent(agent_config(&[format!("udp://{collector}")])).await;
    let http = a.bound.http.unwrap();
    // [good, 1, 1, …]: 500,000 elements, ~1 KB gzipped.
    let mut body = format!("[{}", good_event());
    body.push_str(&",1".repeat(500_000));
    body.push(']');
    let gz = gzip(body.as_bytes());
    assert!(gz.len() < 4096, "{} bytes", gz.len());
    let (status, answer) = post(http, &[("Content-Encoding", "gzip")], &gz).await;
    assert_eq!(status, 400);
    assert!(
        answer.len() < 4096,
        "a bounded answer: {} bytes",
        answer.len()
    );
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["rejected"].as_array().unwrap().len(), 10);
    assert!(v["rejected_total"].as_u64().unwrap() >= 10_000);
    assert_eq!(got.wait_for(1, 5).await, 1, "the good event arrives");
    let m = get(a.bound.metrics.unwrap(), "/metrics").await;
    assert_eq!(
        metric(
            &m,
            "heplink_rejected_total{input=\"http\",reason=\"too_many_events\"}"
        ),
        1
    );
    stop.send(()).unwrap();
    a.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_post_is_ingested_other_methods_get_405_with_allow() {
    let (collector, got) = udp_receiver().await;
    let (a, stop) = start_agent(agent_config(&[format!("udp://{collector}")])).await;
    let http = a.bound.http.unwrap();
    let ev = good_event().to_string();
    for method in ["GET", "DELETE", "OPTIONS", "PUT", "HEAD"] {
        let body = ev.clone();
        let head = format!(
            "{method} /e HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let (status, text) =
            tokio::task::spawn_blocking(move || send_all_then_read(http, &head, body.as_bytes()))
                .await
                .unwrap();
        assert_eq!(status, 405, "{method}: {text}");
        assert!(text.to_ascii_lowercase().contains("allow: post"), "{text}");
    }
    assert_eq!(post(http, &[], ev.as_bytes()).await.0, 200);
    assert_eq!(got.wait_for(1, 5).await, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(got.len(), 1, "nothing else was ingested");
    let m = get(a.bound.metrics.unwrap(), "/metrics").await;
    assert_eq!(
        metric(
            &m,
            "heplink_rejected_total{input=\"http\",reason=\"method_not_allowed\"}"
        ),
        5
    );
    stop.send(()).unwrap();
    a.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_its_whole_body_first_reads_413_and_401() {
    let (collector, _got) = udp_receiver().await;
    let mut c = agent_config(&[format!("udp://{collector}")]);
    c.http.max_body_bytes = 64 << 10;
    c.http.username = "janus".into();
    c.http.password = "s3cret".into();
    let (a, stop) = start_agent(c).await;
    let http = a.bound.http.unwrap();
    // 80 MiB sent whole before reading: discarded for a time, not up to a byte count.
    let big = vec![b' '; 80 << 20];
    let auth = "Authorization: Basic amFudXM6czNjcmV0\r\n";
    let (status, text) = tokio::task::spawn_blocking(move || {
        send_all_then_read(http, &post_head(http, big.len(), auth), &big)
    })
    .await
    .unwrap();
    assert_eq!(status, 413, "{text}");
    // Without a Content-Length (chunked), the cap is found while reading.
    let (status, text) = tokio::task::spawn_blocking(move || {
        let chunk = vec![b'x'; 32 << 10];
        let mut body = Vec::new();
        for _ in 0..16 {
            body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            body.extend_from_slice(&chunk);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        let head =
            format!("POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n{auth}\r\n");
        send_all_then_read(http, &head, &body)
    })
    .await
    .unwrap();
    assert_eq!(status, 413, "{text}");
    // Wrong credentials with a body: 401, readable; each further try waits longer.
    let mut waits = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let (status, text) = tokio::task::spawn_blocking(move || {
            let body = vec![b'{'; 300 << 10];
            send_all_then_read(
                http,
                &post_head(http, body.len(), "Authorization: Basic eDp5\r\n"),
                &body,
            )
        })
        .await
        .unwrap();
        assert_eq!(status, 401, "{text}");
        waits.push(t.elapsed());
    }
    assert!(waits[0] >= Duration::from_millis(50), "{waits:?}");
    assert!(
        waits[2] >= Duration::from_millis(200),
        "a growing delay: {waits:?}"
    );
    // The delay is per peer address: another address's first failure waits the first
    // delay, not the fourth (the handler knows each connection's peer).
    let t = Instant::now();
    let mut other = connect_from([127, 0, 0, 2], http).await;
    other
        .write_all(post_head(http, 2, "Authorization: Basic eDp5\r\n").as_bytes())
        .await
        .unwrap();
    other.write_all(b"{}").await.unwrap();
    let mut answer = vec![0u8; 12];
    other.read_exact(&mut answer).await.unwrap();
    let waited = t.elapsed();
    assert!(answer.starts_with(b"HTTP/1.1 401"), "{answer:?}");
    assert!(
        waited >= Duration::from_millis(50) && waited < Duration::from_millis(350),
        "another address waits the first delay (50 ms), not the fourth (400 ms): {waited:?}"
    );
    let m = get(a.bound.metrics.unwrap(), "/metrics").await;
    assert_eq!(
        metric(
            &m,
            "heplink_rejected_total{input=\"http\",reason=\"body_too_large\"}"
        ),
        2
    );
    assert_eq!(
        metric(
            &m,
            "heplink_rejected_total{input=\"http\",reason=\"unauthorized\"}"
        ),
        4
    );
    stop.send(()).unwrap();
    a.wait().await.unwrap();
}

/// Connects from `local` (an address of 127.0.0.0/8) to `to`.
async fn connect_from(local: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind((local, 0).into()).unwrap();
    s.connect(to).await.unwrap()
}

/// Whether the agent closes `s` within `within` (EOF or reset).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut b)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// POSTs `ev` on a kept-alive connection and returns the start of the answer.
async fn post_kept_alive(conn: &mut TcpStream, ev: &str) -> String {
    let req = format!(
        "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{ev}",
        ev.len()
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut b = [0u8; 512];
    let n = conn.read(&mut b).await.unwrap();
    String::from_utf8_lossy(&b[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_connections_are_cut_and_janus_still_gets_answers() {
    let (collector, got) = udp_receiver().await;
    let mut c = agent_config(&[format!("udp://{collector}")]);
    c.limits.header_timeout_ms = 600;
    c.limits.idle_timeout_s = 1;
    c.limits.min_rate_bytes = 1000;
    let (a, stop) = start_agent(c).await;
    let http = a.bound.http.unwrap();
    // 200 slowloris connections from 127.0.0.2, one header byte every 100 ms.
    let mut loris = Vec::new();
    for _ in 0..200 {
        let mut s = connect_from([127, 0, 0, 2], http).await;
        s.write_all(b"POST / HTTP/1.1\r\n").await.unwrap();
        loris.push(s);
    }
    let trickle = tokio::spawn(async move {
        let started = Instant::now();
        let mut open = loris.len();
        while open > 0 && started.elapsed() < Duration::from_secs(5) {
            open = 0;
            for s in &mut loris {
                if s.write_all(b"X").await.is_ok() {
                    open += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (open, started.elapsed())
    });
    // Janus's POSTs meanwhile: answered, delivered.
    let ev = good_event().to_string();
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(post(http, &[], ev.as_bytes()).await.0, 200);
        assert!(t.elapsed() < Duration::from_millis(500));
    }
    let (open, took) = trickle.await.unwrap();
    assert_eq!(open, 0, "every slowloris connection was cut");
    assert!(
        took < Duration::from_secs(3),
        "within the header timeout and the rate: {took:?}"
    );
    assert_eq!(got.wait_for(20, 5).await, 20);
    // An idle keep-alive connection is closed after idle_timeout_s.
    let mut idle = connect_from([127, 0, 0, 3], http).await;
    let answer = post_kept_alive(&mut idle, &ev).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let t = Instant::now();
    assert!(closed_within(&mut idle, Duration::from_secs(3)).await);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    let m = get(a.bound.metrics.unwrap(), "/metrics").await;
    assert!(
        metric(
            &m,
            "heplink_rejected_total{input=\"http\",reason=\"timeout\"}"
        ) >= 200
    );
    stop.send(()).unwrap();
    a.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_that_keeps_posting_is_never_cut_as_idle() {
    // The idle watchdog looks at a connection only when its own timer fires: each look
    // must measure from the latest answer, so that a connection posting every 400 ms
    // lives on through three idle timeouts of 1 s, and is cut 1 s after its last answer.
    let (collector, got) = udp_receiver().await;
    let mut c = agent_config(&[format!("udp://{collector}")]);
    c.limits.idle_timeout_s = 1;
    let (a, stop) = start_agent(c).await;
    let http = a.bound.http.unwrap();
    let ev = good_event().to_string();
    let mut conn = connect_from([127, 0, 0, 4], http).await;
    for i in 0..8 {
        let answer = post_kept_alive(&mut conn, &ev).await;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "request {i} on the same connection: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(got.wait_for(8, 5).await, 8);
    // 400 ms of the idle second are gone already.
    let t = Instant::now();
    assert!(closed_within(&mut conn, Duration::from_secs(3)).await);
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    stop.send(()).unwrap();
    a.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_per_address_cap_new_connections_are_refused_and_others_still_served() {
    let (collector, got) = udp_receiver().await;
    let mut c = agent_config(&[format!("udp://{collector}")]);
    c.limits.max_connections_per_peer = 5;
    let (a, stop) = start_agent(c).await;
    let http = a.bound.http.unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from([127, 0, 0, 4], http).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut sixth = connect_from([127, 0, 0, 4], http).await;
    assert!(
        closed_within(&mut sixth, Duration::from_secs(1)).await,
        "refused"
    );
    // Another address is served.
    let ev = good_event().to_string();
    assert_eq!(post(http, &[], ev.as_bytes()).await.0, 200);
    assert_eq!(got.wait_for(1, 5).await, 1);
    // A slot comes back when a connection ends.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = connect_from([127, 0, 0, 4], http).await;
    assert!(!closed_within(&mut again, Duration::from_millis(300)).await);
    let m = get(a.bound.metrics.unwrap(), "/metrics").await;
    assert_eq!(
        metric(
            &m,
            "heplink_rejected_total{input=\"http\",reason=\"too_many_connections\"}"
        ),
        1
    );
    stop.send(()).unwrap();
    a.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_needs_the_credentials_and_a_too_large_message_gets_1009() {
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message};
    let (collector, got) = udp_receiver().await;
    let mut c = agent_config(&[format!("udp://{collector}")]);
    c.ws.token = "t0ken".into();
    c.ws.max_message_bytes = 64 << 10;
    c.http.username = "janus".into();
    c.http.password = "s3cret".into();
    let (a, stop) = start_agent(c).await;
    let ws = a.bound.ws.unwrap();
    let request = |url: String, basic: Option<&str>| {
        let mut r = url.into_client_request().unwrap();
        r.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "janus-event-handlers".parse().unwrap(),
        );
        if let Some(b) = basic {
            r.headers_mut()
                .insert("Authorization", format!("Basic {b}").parse().unwrap());
        }
        r
    };
    // No credentials, a wrong token: 401 at the upgrade.
    for url in [format!("ws://{ws}/"), format!("ws://{ws}/?token=nope")] {
        match tokio_tungstenite::connect_async(request(url, None)).await {
            Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
            other => panic!("expected 401, got {other:?}"),
        }
    }
    // The token, or the HTTP input's Basic auth: in.
    let (mut by_token, _) =
        tokio_tungstenite::connect_async(request(format!("ws://{ws}/?token=t0ken"), None))
            .await
            .unwrap();
    let (mut by_basic, _) =
        tokio_tungstenite::connect_async(request(format!("ws://{ws}/"), Some("amFudXM6czNjcmV0")))
            .await
            .unwrap();
    by_token
        .send(Message::text(good_event().to_string()))
        .await
        .unwrap();
    by_basic
        .send(Message::text(good_event().to_string()))
        .await
        .unwrap();
    assert_eq!(got.wait_for(2, 5).await, 2);
    // A message over the cap: closed with 1009.
    by_token
        .send(Message::text(format!("[{}]", " ".repeat(100 << 10))))
        .await
        .unwrap();
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(5), by_token.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => break u16::from(f.code),
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, 1009);
    let m = get(a.bound.metrics.unwrap(), "/metrics").await;
    assert_eq!(
        metric(
            &m,
            "heplink_rejected_total{input=\"ws\",reason=\"unauthorized\"}"
        ),
        2
    );
    assert_eq!(
        metric(
            &m,
            "heplink_rejected_total{input=\"ws\",reason=\"ws_message_too_large\"}"
        ),
        1
    );
    stop.send(()).unwrap();
    a.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_that_never_reads_pongs_does_not_stop_the_input_and_the_subprotocol_can_be_required(
) {
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message};
    let (collector, got) = udp_receiver().await;
    let mut c = agent_config(&[format!("udp://{collector}")]);
    c.ws.require_subprotocol = true;
    let (a, stop) = start_agent(c).await;
    let ws = a.bound.ws.unwrap();
    // Without the subprotocol: refused at the upgrade.
    match tokio_tungstenite::connect_async(format!("ws://{ws}/")).await {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 400),
        other => panic!("expected 400, got {other:?}"),
    }
    let request = || {
        let mut r = format!("ws://{ws}/").into_client_request().unwrap();
        r.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "janus-event-handlers".parse().unwrap(),
        );
        r
    };
    // A peer that floods pings and never reads their pongs (~25 MB of pings): the agent
    // keeps one pending pong and at most 1 MiB of output for it (tungstenite's pending
    // pong is replaced, not queued), keeps reading, and serves Janus meanwhile.
    let (flood, _) = tokio_tungstenite::connect_async(request()).await.unwrap();
    let (mut tx, _rx_never_read) = futures_util::StreamExt::split(flood);
    let payload = vec![7u8; 120];
    let flooding = tokio::spawn(async move {
        for _ in 0..200_000 {
            if tx
                .send(Message::Ping(payload.clone().into()))
                .await
                .is_err()
            {
                return false;
            }
        }
        true
    });
    // Janus on another connection is served meanwhile.
    let (mut janus, _) = tokio_tungstenite::connect_async(request()).await.unwrap();
    janus
        .send(Message::text(good_event().to_string()))
        .await
        .unwrap();
    assert_eq!(got.wait_for(1, 5).await, 1);
    // The flood went through: the agent read all of it rather than stalling on it.
    assert!(tokio::time::timeout(Duration::from_secs(30), flooding)
        .await
        .expect("the agent kept reading the flood")
        .unwrap());
    let m = get(a.bound.metrics.unwrap(), "/metrics").await;
    assert_eq!(
        metric(
            &m,
            "heplink_rejected_total{input=\"ws\",reason=\"bad_ws_message\"}"
        ),
        1,
        "the upgrade without the subprotocol"
    );
    stop.send(()).unwrap();
    a.wait().await.unwrap();
}
