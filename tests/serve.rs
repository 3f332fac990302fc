//! `heplink serve` on loopback: HTTP and WebSocket inputs, UDP and TCP collectors, bad
//! input, a collector that goes away, graceful shutdown, metrics.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use heplink::config::WhenFull;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_posted_arrives_once_with_its_correlation_id() {
    let (collector, got) = udp_receiver().await;
    let (a, stop) = start_agent(agent_config(&[format!("udp://{collector}")])).await;
    let http = a.bound.http.unwrap();
    for body in fixture_bodies("videoroom-2pub-2sub-webrtc") {
        let (status, _) = post(http, &[], body.as_bytes()).await;
        assert_eq!(status, 200);
    }
    // The fleet counters: five PeerConnections ended ok, each came up once (the tick
    // copies them within 100 ms).
    let mut m = String::new();
    for _ in 0..50 {
        m = get(a.bound.metrics.unwrap(), "/metrics").await;
        if m.contains(r#"heplink_peerconnections_ended_total{plugin="videoroom",outcome="ok"} 5"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        m.contains(r#"heplink_peerconnections_ended_total{plugin="videoroom",outcome="ok"} 5"#),
        "{m}"
    );
    assert!(
        m.contains(
            r#"heplink_peerconnections_ended_total{plugin="videoroom",outcome="ice-failed"} 0"#
        ),
        "{m}"
    );
    assert!(m.contains("heplink_webrtcup_seconds_count 5"), "{m}");
    assert!(
        m.contains(r#"heplink_webrtcup_seconds_bucket{le="+Inf"} 5"#),
        "{m}"
    );
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    got.assert_scenario("videoroom-2pub-2sub-webrtc", 300, 5)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_gzip_and_ndjson_bodies_and_basic_auth() {
    let (collector, got) = udp_receiver().await;
    let mut c = agent_config(&[format!("udp://{collector}")]);
    c.http.username = "janus".into();
    c.http.password = "s3cret".into();
    let (a, stop) = start_agent(c).await;
    let http = a.bound.http.unwrap();
    let auth = ("Authorization", "Basic amFudXM6czNjcmV0"); // janus:s3cret
                                                            // The real grouped + gzip capture, as Janus sent it.
    let mut n = 0;
    for body in fixture_bodies("grouping-compressed") {
        let events = serde_json::from_str::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .len();
        n += events;
        let (status, resp) = post(
            http,
            &[auth, ("Content-Encoding", "gzip")],
            &gzip(body.as_bytes()),
        )
        .await;
        assert_eq!(status, 200, "{resp}");
    }
    assert_eq!(n, 51);
    // NDJSON
    let nd: Vec<String> = fixture_bodies("echotest-http-only");
    let (status, _) = post(http, &[auth], nd.join("\n").as_bytes()).await;
    assert_eq!(status, 200);
    // Wrong and missing credentials.
    let (status, _) = post(
        http,
        &[("Authorization", "Basic amFudXM6d3Jvbmc=")],
        nd[0].as_bytes(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post(http, &[], nd[0].as_bytes()).await;
    assert_eq!(status, 401);
    let m = get(a.bound.metrics.unwrap(), "/metrics").await;
    assert_eq!(
        metric(
            &m,
            "heplink_rejected_total{input=\"http\",reason=\"unauthorized\"}"
        ),
        2
    );
    assert!(
        metric(
            &m,
            "heplink_events_received_total{input=\"http\",type=\"32\"}"
        ) > 0
    );
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    assert_eq!(got.wait_for(51 + 31, 5).await, 51 + 31);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_status_and_a_counter_and_good_events_still_go() {
    let (collector, got) = udp_receiver().await;
    let mut c = agent_config(&[format!("udp://{collector}")]);
    c.http.max_body_bytes = 64 * 1024;
    c.http.max_decompressed_bytes = 256 * 1024;
    let (a, stop) = start_agent(c).await;
    let http = a.bound.http.unwrap();
    let good = fixture_bodies("echotest-http-only");
    // Invalid JSON between good events: 400 naming it, the good ones delivered.
    let body = format!(
        "[{},{{\"type\":1,\"session_id\":\"abc\"}},{{oops}},{}]",
        good[0], good[1]
    );
    let (status, resp) = post(http, &[], body.as_bytes()).await;
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
    let rej = v["rejected"].as_array().unwrap();
    assert_eq!(rej.len(), 2);
    assert_eq!(rej[0]["index"], 1);
    assert_eq!(rej[1]["index"], 2);
    // Oversize body: 413.
    let big = vec![b' '; 100 * 1024];
    assert_eq!(post(http, &[], &big).await.0, 413);
    // A gzip bomb: 413, decompression stopped at the cap.
    let bomb = gzip(&vec![b' '; 50 << 20]);
    assert!(bomb.len() < 64 * 1024);
    assert_eq!(
        post(http, &[("Content-Encoding", "gzip")], &bomb).await.0,
        413
    );
    // Not gzip although it says so: 400. Unknown encoding: 415.
    assert_eq!(
        post(http, &[("Content-Encoding", "gzip")], b"{}").await.0,
        400
    );
    assert_eq!(
        post(http, &[("Content-Encoding", "br")], b"{}").await.0,
        415
    );
    // Wrong types and a body that is no event at all.
    assert_eq!(post(http, &[], br#"{"type":"sixteen"}"#).await.0, 400);
    assert_eq!(post(http, &[], b"42").await.0, 400);
    // The agent is still fine.
    assert_eq!(post(http, &[], good[2].as_bytes()).await.0, 200);
    let m = get(a.bound.metrics.unwrap(), "/metrics").await;
    let r = |reason: &str| {
        metric(
            &m,
            &format!("heplink_rejected_total{{input=\"http\",reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(r("malformed_json"), 3);
    assert_eq!(r("not_an_event"), 1);
    assert_eq!(r("body_too_large"), 1);
    assert_eq!(r("decompressed_too_large"), 1);
    assert_eq!(r("bad_gzip"), 1);
    assert_eq!(r("unsupported_encoding"), 1);
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    assert_eq!(got.wait_for(3, 5).await, 3, "the 3 good events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_input_with_two_janus_instances_at_once() {
    let (collector, got) = udp_receiver().await;
    let (a, stop) = start_agent(agent_config(&[format!("udp://{collector}")])).await;
    let url = format!("ws://{}/janus-ws-events", a.bound.ws.unwrap());
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                url.as_str(),
            )
            .unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "janus-event-handlers".parse().unwrap(),
        );
        let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(
            resp.headers()["sec-websocket-protocol"],
            "janus-event-handlers"
        );
        clients.push(ws);
    }
    let frames = fixture_bodies("textroom-datachannel-webrtc.wsevh");
    // Interleave the same capture over both connections: the second as another emitter.
    for f in &frames {
        clients[0]
            .send(tokio_tungstenite::tungstenite::Message::text(f.clone()))
            .await
            .unwrap();
        let other = f.replace("\"emitter\":\"janus-fixtures\"", "\"emitter\":\"janus-b\"");
        clients[1]
            .send(tokio_tungstenite::tungstenite::Message::text(other))
            .await
            .unwrap();
    }
    let n = frames.len();
    assert_eq!(got.wait_for(2 * n, 10).await, 2 * n);
    let m = get(a.bound.metrics.unwrap(), "/metrics").await;
    assert_eq!(metric(&m, "heplink_ws_connections"), 2);
    for c in &mut clients {
        c.close(None).await.unwrap();
    }
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    let cids = got.cids();
    assert_eq!(
        cids.iter()
            .filter(|c| *c == "janus-fixtures:textroom:1234")
            .count(),
        cids.iter()
            .filter(|c| *c == "janus-b:textroom:1234")
            .count()
    );
    assert!(cids.iter().any(|c| c == "janus-b:textroom:1234"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_collector_restarted_loses_nothing_queued_and_keeps_order() {
    let got = Received::default();
    let (addr, task) = tcp_receiver("127.0.0.1:0", got.clone()).await;
    let (a, stop) = start_agent(agent_config(&[format!("tcp://{addr}")])).await;
    let http = a.bound.http.unwrap();
    let bodies = fixture_bodies("videoroom-2pub-2sub-webrtc");
    let (first, rest) = bodies.split_at(100);
    for b in first {
        assert_eq!(post(http, &[], b.as_bytes()).await.0, 200);
    }
    // (a few of them wait for their handle's binding)
    assert!(got.wait_for(95, 5).await >= 95);
    // Stop the collector at a quiet moment: everything written so far has been read.
    // (A packet written in the very instant a collector dies sits in a socket buffer no
    // one reads: TCP has no application acknowledgement; see docs/delivery.md.)
    let sent = || {
        a.metrics.collectors[0]
            .packets
            .load(std::sync::atomic::Ordering::Relaxed) as usize
    };
    // Everything the collector got, QoS reports included (`sent` counts every packet).
    let received = || got.len() + got.qos().len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sent() != received() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sent(), received());
    // The collector goes away; Janus keeps posting and gets its 200s.
    task.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for b in &rest[..100] {
        assert_eq!(
            post(http, &[], b.as_bytes()).await.0,
            200,
            "the input answers while the collector is down"
        );
    }
    // The collector comes back on the same port.
    let (_, _task2) = tcp_receiver(&addr.to_string(), got.clone()).await;
    for b in &rest[100..] {
        assert_eq!(post(http, &[], b.as_bytes()).await.0, 200);
    }
    stop.send(()).unwrap();
    let metrics = a.metrics.clone();
    a.wait().await.unwrap();
    let n = got.wait_for(300, 10).await;
    let sent = metrics.collectors[0]
        .packets
        .load(std::sync::atomic::Ordering::Relaxed);
    // At least once: a batch in flight when the connection broke may arrive twice.
    assert!(n >= 300, "{n} packets, {sent} counted sent");
    assert!(
        metrics.collectors[0]
            .reconnects
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    // Order within the room's flow: the room's packets (first arrivals, since a batch
    // in flight at the outage may come twice) in the order convert emits them.
    let room_ts = |pairs: Vec<(String, Vec<u8>)>| -> Vec<u64> {
        let mut seen = std::collections::HashSet::new();
        pairs
            .into_iter()
            .filter(|(c, _)| c.ends_with(":videoroom:4242"))
            .map(|(_, p)| {
                serde_json::from_slice::<serde_json::Value>(heplink::map::log_json(&p)).unwrap()
                    ["event"]["timestamp"]
                    .as_u64()
                    .unwrap()
            })
            .filter(|t| seen.insert(*t))
            .collect()
    };
    let got_order = room_ts(got.0.lock().unwrap().clone());
    let mut lines = bodies.iter().map(|b| Ok(b.clone()));
    let c = heplink::capture::jsonl::convert(&mut lines, Default::default(), Default::default())
        .unwrap();
    let want: Vec<(String, Vec<u8>)> = c
        .packets
        .iter()
        .zip(&c.cids)
        .filter(|((_, b), _)| {
            let p = heplink::proto::decode(b, heplink::proto::Mode::Strict).unwrap();
            !is_derived(p.proto_type, p.payload.unwrap())
        })
        .map(|((_, b), cid)| {
            (
                cid.clone(),
                heplink::proto::decode(b, heplink::proto::Mode::Strict)
                    .unwrap()
                    .payload
                    .unwrap()
                    .to_vec(),
            )
        })
        .collect();
    let want_order = room_ts(want);
    assert_eq!(want_order.len(), 200);
    assert_eq!(got_order, want_order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_drops_are_counted_exactly() {
    // A TCP collector that never exists, and a queue of 10: of 31 events, the sender
    // holds at most one batch, the queue 10; the rest is dropped and counted.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut c = agent_config(&[format!("tcp://{free}")]);
    c.queue.capacity = 10;
    c.queue.when_full = WhenFull::DropNewest;
    c.shutdown_timeout_ms = 300;
    let (a, stop) = start_agent(c).await;
    for b in fixture_bodies("echotest-http-only") {
        assert_eq!(post(a.bound.http.unwrap(), &[], b.as_bytes()).await.0, 200);
    }
    let m = a.metrics.clone();
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    let col = &m.collectors[0];
    let dropped = col
        .dropped_queue_full
        .load(std::sync::atomic::Ordering::Relaxed);
    let at_shutdown = col
        .dropped_shutdown
        .load(std::sync::atomic::Ordering::Relaxed);
    let sent = col.packets.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(sent, 0);
    assert!(dropped >= 20, "{dropped}");
    // Every packet is accounted for: dropped when queued, or dropped at shutdown.
    assert_eq!(m.packets.load(std::sync::atomic::Ordering::Relaxed), 31);
    assert!(dropped + at_shutdown >= 30, "{dropped} + {at_shutdown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_to_two_collectors() {
    let (c1, got1) = udp_receiver().await;
    let got2 = Received::default();
    let (c2, _t) = tcp_receiver("127.0.0.1:0", got2.clone()).await;
    let (a, stop) = start_agent(agent_config(&[
        format!("udp://{c1}"),
        format!("tcp://{c2}"),
    ]))
    .await;
    for b in fixture_bodies("sip-call-simple") {
        assert_eq!(post(a.bound.http.unwrap(), &[], b.as_bytes()).await.0, 200);
    }
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    assert_eq!(got1.wait_for(87, 5).await, 87);
    assert_eq!(got2.wait_for(87, 5).await, 87);
    let (mut x, mut y) = (got1.cids(), got2.cids());
    x.sort();
    y.sort();
    assert_eq!(x, y);
    assert_eq!(x, expected_cids("sip-call-simple"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_collector_killed_and_restarted_20_times_loses_nothing_and_keeps_order() {
    let got = Received::default();
    let (addr, mut task) = tcp_receiver("127.0.0.1:0", got.clone()).await;
    let mut c = agent_config(&[format!("tcp://{addr}")]);
    c.shutdown_timeout_ms = 10_000;
    let (a, stop) = start_agent(c).await;
    let http = a.bound.http.unwrap();
    let bodies = fixture_bodies("videoroom-2pub-2sub-webrtc");
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(post(http, &[], b.as_bytes()).await.0, 200);
        if i % 15 == 14 {
            // Killed at whatever moment it is, then back.
            restart_tcp_receiver(&mut task, addr, &got).await;
        }
    }
    let metrics = a.metrics.clone();
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    got.wait_for(300, 10).await;
    assert!(
        metrics.collectors[0]
            .reconnects
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 10
    );
    // Zero loss: every packet convert makes arrived at least once, first arrivals in
    // order (events identified by `common::key`).
    let want = converted(&bodies);
    let firsts = firsts(&got);
    assert_eq!(
        firsts.len(),
        want.len(),
        "{} distinct of {}",
        firsts.len(),
        want.len()
    );
    for cid in [
        "janus-fixtures:videoroom:4242",
        "janus-fixtures:transport:http:2026-11-24T03",
    ] {
        let w: Vec<_> = want.iter().filter(|k| k.0 == cid).collect();
        let g: Vec<_> = firsts.iter().filter(|k| k.0 == cid).collect();
        assert_eq!(g, w, "order of {cid}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_a_backup_and_back_to_the_preferred_collector() {
    let primary_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (got_b, got_a) = (Received::default(), Received::default());
    let (backup, _tb) = tcp_receiver("127.0.0.1:0", got_b.clone()).await;
    let mut c = agent_config(&[format!("tcp://127.0.0.1:{primary_port}|tcp://{backup}")]);
    c.output[0].failback_s = 1;
    let (a, stop) = start_agent(c).await;
    let bodies = fixture_bodies("videoroom-2pub-2sub-webrtc");
    // The preferred collector is down: the backup gets the traffic.
    for b in &bodies[..150] {
        assert_eq!(post(a.bound.http.unwrap(), &[], b.as_bytes()).await.0, 200);
    }
    assert!(got_b.wait_for(140, 5).await >= 140);
    // The preferred one comes up: within the failback period the agent moves back to it.
    let (_, _ta) = tcp_receiver(&format!("127.0.0.1:{primary_port}"), got_a.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for b in &bodies[150..] {
        assert_eq!(post(a.bound.http.unwrap(), &[], b.as_bytes()).await.0, 200);
    }
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    got_a.wait_for(100, 5).await;
    assert!(got_a.len() > 0, "the preferred collector got traffic again");
    // Nothing lost across the two (duplicates possible: at least once).
    let distinct: std::collections::HashSet<Vec<u8>> = got_a
        .payloads()
        .into_iter()
        .chain(got_b.payloads())
        .collect();
    assert!(distinct.len() >= 300, "{} distinct packets", distinct.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_collector_down_counts_errors_then_a_whole_capture_in_one_body_arrives() {
    // A UDP port nobody listens on: loopback answers ICMP port unreachable, which the
    // connected socket reports on the next send (of the next `sendmmsg`).
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let (a, stop) = start_agent(agent_config(&[format!("udp://127.0.0.1:{port}")])).await;
    let http = a.bound.http.unwrap();
    for b in fixture_bodies("echotest-http-only") {
        assert_eq!(post(http, &[], b.as_bytes()).await.0, 200);
    }
    let m = a.metrics.clone();
    let errors = || {
        m.collectors[0]
            .send_errors
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let queued = || {
        m.collectors[0]
            .queue_depth
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // Until every packet of the first capture has been tried (the sender is paced).
    for _ in 0..250 {
        if errors() > 0 && queued() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(errors() > 0, "refused sends are counted");
    assert_eq!(queued(), 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The collector comes up on that port: every event of a capture posted as one array
    // (300 events, sent in batches) arrives once.
    let (_, got) = udp_receiver_at(&format!("127.0.0.1:{port}")).await;
    let events: Vec<serde_json::Value> = fixture_bodies("videoroom-2pub-2sub-webrtc")
        .iter()
        .flat_map(|b| match serde_json::from_str(b).unwrap() {
            serde_json::Value::Array(a) => a,
            v => vec![v],
        })
        .collect();
    let body = serde_json::Value::Array(events).to_string();
    assert_eq!(post(http, &[], body.as_bytes()).await.0, 200);
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    got.assert_scenario("videoroom-2pub-2sub-webrtc", 300, 5)
        .await;
}
