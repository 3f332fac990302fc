//! The disk spool: a collector outage longer than the queue, the agent killed with
//! SIGKILL and restarted, and 20 collector restarts, all without losing an event.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::*;
use heplink::config::Config;

fn assert_same_per_cid(got: &[Key], want: &[Key]) {
    if got.len() != want.len() {
        let g: std::collections::HashSet<&Key> = got.iter().collect();
        let missing: Vec<usize> = want
            .iter()
            .enumerate()
            .filter(|(_, k)| !g.contains(k))
            .map(|(i, _)| i)
            .collect();
        eprintln!("missing positions (of {}): {missing:?}", want.len());
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{} distinct packets of {}",
        got.len(),
        want.len()
    );
    let cids: std::collections::BTreeSet<&String> = want.iter().map(|k| &k.0).collect();
    for cid in cids {
        let g: Vec<_> = got.iter().filter(|k| &k.0 == cid).collect();
        let w: Vec<_> = want.iter().filter(|k| &k.0 == cid).collect();
        assert_eq!(g, w, "order within {cid}");
    }
}

fn config(port: u16, spool: &std::path::Path) -> Config {
    let mut c = agent_config(&[format!("tcp://127.0.0.1:{port}")]);
    c.spool.dir = spool.display().to_string();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_queue_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut c = config(port, dir.path());
    c.queue.capacity = 10;
    c.shutdown_timeout_ms = 10_000;
    let (a, tx) = start_agent(c).await;
    let bodies = fixture_bodies("videoroom-2pub-2sub-webrtc");
    for b in &bodies {
        assert_eq!(post(a.bound.http.unwrap(), &[], b.as_bytes()).await.0, 200);
    }
    let m = a.metrics.collectors[0].clone();
    assert_eq!(
        m.dropped_queue_full.load(Relaxed),
        0,
        "the queue never overflowed: it drains to disk"
    );
    assert!(m.spool_bytes.load(Relaxed) > 0);
    // The collector comes up.
    let got = Received::default();
    let (_, _task) = tcp_receiver(&format!("127.0.0.1:{port}"), got.clone()).await;
    assert!(got.wait_for(300, 15).await >= 300);
    tx.send(()).unwrap();
    a.wait().await.unwrap();
    assert_same_per_cid(&firsts(&got), &converted(&bodies));
    assert_eq!(m.spool_bytes.load(Relaxed), 0, "everything confirmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_killed_with_sigkill_sends_its_spool_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (http, metrics) = (free_port(), free_port());
    let start = || {
        bin()
            .args([
                "serve",
                "--ws",
                "off",
                "--http",
                &format!("127.0.0.1:{http}"),
                "--metrics",
                &format!("127.0.0.1:{metrics}"),
            ])
            .args(["--to", &format!("tcp://127.0.0.1:{port}"), "--spool-dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut agent = start();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], http).into();
    let m_addr: std::net::SocketAddr = ([127, 0, 0, 1], metrics).into();
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bodies = fixture_bodies("sip-call-simple");
    for b in &bodies {
        assert_eq!(post(addr, &[], b.as_bytes()).await.0, 200);
    }
    // Wait until every packet built is on disk (none left in the queue).
    let mut ok = false;
    for _ in 0..100 {
        let text = get(m_addr, "/metrics").await;
        let collector = format!("{{collector=\"tcp://127.0.0.1:{port}\"}}");
        // 87 events, 12 QoS reports of the call's media stats, its two calls' verdicts.
        if metric(&text, "heplink_packets_built_total") == 101
            && metric(&text, &format!("heplink_queue_depth{collector}")) == 0
            && metric(&text, &format!("heplink_spool_bytes{collector}")) > 0
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the packets reached the spool");
    agent.kill().unwrap(); // SIGKILL
    agent.wait().unwrap();
    // The collector comes up, and the agent restarts on the same spool.
    let got = Received::default();
    let (_, _task) = tcp_receiver(&format!("127.0.0.1:{port}"), got.clone()).await;
    let mut agent = start();
    let n = got.wait_for(87, 15).await;
    let _ = Command::new("kill").arg(agent.id().to_string()).status();
    agent.wait().unwrap();
    assert!(n >= 87, "{n} packets after the restart");
    assert_same_per_cid(&firsts(&got), &converted(&bodies));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_collector_restarts_with_the_spool_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let got = Received::default();
    let (addr, mut task) = tcp_receiver("127.0.0.1:0", got.clone()).await;
    let mut c = config(addr.port(), dir.path());
    c.queue.capacity = 50;
    c.shutdown_timeout_ms = 10_000;
    let (a, tx) = start_agent(c).await;
    let bodies = fixture_bodies("videoroom-2pub-2sub-webrtc");
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(post(a.bound.http.unwrap(), &[], b.as_bytes()).await.0, 200);
        if i % 15 == 14 {
            // Killed at whatever moment it is, then back.
            restart_tcp_receiver(&mut task, addr, &got).await;
        }
    }
    let m = a.metrics.collectors[0].clone();
    tx.send(()).unwrap();
    a.wait().await.unwrap();
    got.wait_for(300, 10).await;
    assert_eq!(m.dropped_queue_full.load(Relaxed), 0);
    let r = m.reconnects.load(Relaxed);
    assert!(r >= 10, "{r} reconnections");
    assert_same_per_cid(&firsts(&got), &converted(&bodies));
}

/// #9 item 6: with the spool on, an event answered 2xx survives a SIGKILL of the agent,
/// whatever it was doing: held by the correlator, in a queue, or on its way to the spool.
/// Bodies are posted back to back and the agent is killed mid-stream; after a restart on
/// the same spool directory, every event of every body answered 200 arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_answered_200_survives_a_sigkill_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let http = free_port();
    let start = || {
        bin()
            .args(["serve", "--ws", "off", "--metrics", "off", "--http"])
            .arg(format!("127.0.0.1:{http}"))
            .args(["--to", &format!("tcp://127.0.0.1:{port}"), "--spool-dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], http).into();
    let wait_up = || async {
        for _ in 0..100 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the agent did not start");
    };
    let mut agent = start();
    wait_up().await;
    // A collector that comes and goes, so packets are everywhere at the kill: spooled,
    // queued, written.
    let got = Received::default();
    let (_, collector) = tcp_receiver(&format!("127.0.0.1:{port}"), got.clone()).await;
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let poster = {
        let answered = answered.clone();
        tokio::spawn(async move {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros() as u64;
            for b in 0u64.. {
                // Handle events (held until their session is known) and plain ones.
                let events: Vec<serde_json::Value> = (b * 10..b * 10 + 10)
                    .map(|n| {
                        if n % 2 == 0 {
                            serde_json::json!({"emitter":"kill-test","type":4,"timestamp":now,
                                "event":{"schema":"test","data":{"n":n}}})
                        } else {
                            // A VideoRoom handle that joined no room yet: the correlator
                            // holds its events until it does (or the hold runs out).
                            serde_json::json!({"emitter":"kill-test","type":2,"timestamp":now,
                                "session_id":n,"handle_id":n,
                                "event":{"name":"attached","plugin":"janus.plugin.videoroom",
                                    "opaque_id":format!("n{n}")}})
                        }
                    })
                    .collect();
                let body = serde_json::Value::Array(events).to_string();
                match post_result(addr, body.as_bytes()).await {
                    Some(200) => answered.lock().unwrap().extend(b * 10..b * 10 + 10),
                    _ => return,
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    collector.abort();
    tokio::time::sleep(Duration::from_millis(400)).await;
    agent.kill().unwrap(); // SIGKILL mid-stream
    agent.wait().unwrap();
    poster.await.unwrap();
    let want: std::collections::BTreeSet<u64> = answered.lock().unwrap().iter().copied().collect();
    assert!(want.len() >= 100, "only {} events answered", want.len());
    // Back up: the collector, then the agent on the same spool.
    let (_, _collector) = tcp_receiver(&format!("127.0.0.1:{port}"), got.clone()).await;
    let mut agent = start();
    wait_up().await;
    let marks = |got: &Received| -> std::collections::BTreeSet<u64> {
        got.payloads()
            .iter()
            .filter_map(|p| {
                let v: serde_json::Value =
                    serde_json::from_slice(heplink::map::log_json(p)).ok()?;
                let e = &v["event"]["event"];
                e["data"]["n"]
                    .as_u64()
                    .or_else(|| e["opaque_id"].as_str()?.strip_prefix('n')?.parse().ok())
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !want.is_subset(&marks(&got)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill").arg(agent.id().to_string()).status();
    agent.wait().unwrap();
    let have = marks(&got);
    let lost: Vec<_> = want.difference(&have).collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered events lost: {lost:?}",
        lost.len(),
        want.len()
    );
}

/// One POST on a new connection; its status, or `None` when the connection failed.
async fn post_result(addr: std::net::SocketAddr, body: &[u8]) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    s.write_all(req.as_bytes()).await.ok()?;
    s.write_all(body).await.ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.ok()?;
    std::str::from_utf8(resp.get(9..12)?).ok()?.parse().ok()
}

/// The fault suite's full spool (#9): a spool capped at 64 KiB (the cap standing in for a
/// full disk) while the collector is away. The oldest packets make room and are counted;
/// when the collector comes back, every event is either stored or counted as dropped,
/// exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_counts_exactly_what_it_could_not_keep() {
    let dir = tempfile::tempdir().unwrap();
    // Held, so that no other test's listener takes it while the collector is away.
    let (port, reserved) = reserved_port();
    let mut c = config(port, dir.path());
    c.spool.max_bytes = 64 * 1024;
    c.shutdown_timeout_ms = 10_000;
    let (a, tx) = start_agent(c).await;
    let http = a.bound.http.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let n = 2000u64;
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let events: Vec<serde_json::Value> = chunk
            .iter()
            .map(|i| {
                serde_json::json!({"emitter":"full-test","type":4,"timestamp":now,
                    "event":{"schema":"test","data":{"n":i,"pad":"x".repeat(200)}}})
            })
            .collect();
        let body = serde_json::Value::Array(events).to_string();
        assert_eq!(post(http, &[], body.as_bytes()).await.0, 200);
    }
    let m = a.metrics.collectors[0].clone();
    // Everything reached the spool (nothing left in the queue).
    let progress = a.progress[0].clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while progress.spooled() < n && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(progress.spooled(), n);
    let dropped = m.dropped_spool.load(Relaxed);
    assert!(dropped > 0, "the cap made room");
    let on_disk: u64 = segment_bytes(dir.path());
    assert!(
        on_disk > 0 && on_disk <= 64 * 1024,
        "the cap is the cap: {on_disk} bytes"
    );
    let got = Received::default();
    drop(reserved);
    let (_, _task) = tcp_receiver(&format!("127.0.0.1:{port}"), got.clone()).await;
    let want = (n - dropped) as usize;
    got.wait_for(want, 15).await;
    tx.send(()).unwrap();
    a.wait().await.unwrap();
    let stored: std::collections::BTreeSet<u64> = got
        .payloads()
        .iter()
        .filter_map(|p| {
            let v: serde_json::Value = serde_json::from_slice(heplink::map::log_json(p)).ok()?;
            v["event"]["event"]["data"]["n"].as_u64()
        })
        .collect();
    assert_eq!(
        stored.len() as u64 + dropped,
        n,
        "events in = stored + counted as dropped"
    );
    // The oldest were dropped: what is stored is the newest, contiguous.
    assert_eq!(stored.first().copied(), Some(dropped), "{stored:?}");
    assert_eq!(m.dropped_spool_error.load(Relaxed), 0);
}

/// Bytes of the spool's segment files (`*.hep`) under `dir`.
fn segment_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            total += segment_bytes(&p);
        } else if p.extension().is_some_and(|x| x == "hep") {
            total += e.metadata().unwrap().len();
        }
    }
    total
}

/// A packet's identity for the per-event comparison: an event row by (cid, type, subtype,
/// timestamp) as [`key`] gives it; a QoS report (HEP type 5 or 34) by its cid and payload
/// (its figures: SSRCs, fraction lost, MOS, what the state before it gives); a verdict row
/// by its cid and words.
fn made_key(cid: &str, qos: bool, payload: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    // The receiver keeps verdict rows with the QoS reports (both derived from events).
    if qos && !is_verdict(payload) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        payload.hash(&mut h);
        return format!("qos {cid} {:016x}", h.finish());
    }
    let json = heplink::map::log_json(payload);
    match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(v) if v.get("event").is_none() => {
            let words = payload.split(|b| *b == b'\n').next().unwrap_or_default();
            format!("verdict {cid} {}", String::from_utf8_lossy(words))
        }
        _ => format!("event {:?}", key(cid, payload)),
    }
}

/// What the pipeline (`heplink convert`) makes of each round of bodies: every packet, each
/// event's own and what it derives (QoS reports, verdict rows).
fn made_of_rounds(rounds: &[Vec<String>]) -> std::collections::BTreeSet<String> {
    let mut want = std::collections::BTreeSet::new();
    for bodies in rounds {
        let mut lines = bodies.iter().map(|b| Ok(b.clone()));
        let c =
            heplink::capture::jsonl::convert(&mut lines, Default::default(), Default::default())
                .unwrap();
        for (_, b) in &c.packets {
            let p = heplink::proto::decode(b, heplink::proto::Mode::Strict).unwrap();
            let cid = String::from_utf8(p.correlation_id.unwrap_or_default().to_vec()).unwrap();
            want.insert(made_key(&cid, is_qos(p.proto_type), p.payload.unwrap()));
        }
    }
    want
}

/// Issue 24 item 4: with the spool on, an event answered 2xx survives a SIGKILL with every
/// packet it makes, its QoS reports and verdict rows included, not only its own row. A
/// VideoRoom call (JSEP, media stats, hangups) is posted round after round (each round its
/// own emitter), the agent is killed mid-stream with the collector away, restarted on the
/// same spool, and the interrupted round is posted on from its first unanswered body. What
/// the collector got must hold every packet `convert` makes of the rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_packet_of_the_events_answered_200_survives_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let http = free_port();
    let start = || {
        bin()
            .args(["serve", "--ws", "off", "--metrics", "off", "--http"])
            .arg(format!("127.0.0.1:{http}"))
            .args(["--to", &format!("tcp://127.0.0.1:{port}"), "--spool-dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], http).into();
    let wait_up = || async {
        for _ in 0..200 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the agent did not start");
    };
    // Each round its own Janus (emitter): its handles, rooms and QoS state its own.
    fn round(r: usize) -> Vec<String> {
        fixture_bodies("videoroom-2pub-2sub-webrtc")
            .iter()
            .map(|b| {
                b.replace(
                    "\"emitter\":\"janus-fixtures\"",
                    &format!("\"emitter\":\"kill-{r}\""),
                )
            })
            .collect()
    }
    let got = Received::default();
    // Where posting goes on: (round, body).
    let mut at = (0usize, 0usize);
    for kill in 0..3usize {
        let mut agent = start();
        wait_up().await;
        // The collector comes and goes: at the kill, packets are spooled, queued, written.
        let (_, collector) = tcp_receiver(&format!("127.0.0.1:{port}"), got.clone()).await;
        // The last body answered, as round * 1000 + body.
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // The poster waits at body 140 of round `kill` until told to go on.
        let go = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let poster = {
            let (mut r, mut i) = at;
            let (answered, go) = (answered.clone(), go.clone());
            tokio::spawn(async move {
                let mut bodies = round(r);
                loop {
                    while (r, i) == (kill, 140) && !go.load(Relaxed) {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    if post_result(addr, bodies[i].as_bytes()).await != Some(200) {
                        return (r, i);
                    }
                    answered.store(r * 1000 + i, Relaxed);
                    i += 1;
                    if i == bodies.len() {
                        (r, i) = (r + 1, 0);
                        bodies = round(r);
                    }
                }
            })
        };
        // Round `kill` is cut in the middle of its calls: after the subscribers' JSEP
        // offers (bodies 79, 104, 127, each before the subscriber's handle joins) and their
        // checkpoint, before most of their media stats.
        let reached = |n: usize| {
            let answered = answered.clone();
            async move {
                while answered.load(Relaxed) < kill * 1000 + n {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        };
        // The checkpoint passes the offers (the pipeline task's tick, every 100 ms, once
        // their packets are spooled): on restart they warm the pipeline up.
        reached(139).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        collector.abort();
        go.store(true, Relaxed);
        reached(190).await;
        agent.kill().unwrap(); // SIGKILL mid-stream
        agent.wait().unwrap();
        at = poster.await.unwrap();
    }
    // Back up: the collector, then the agent on the same spool; the interrupted round is
    // posted on (its unanswered body again: it may have been journaled, then it is taken
    // twice, and a duplicate only adds packets).
    let (_, _collector) = tcp_receiver(&format!("127.0.0.1:{port}"), got.clone()).await;
    let mut agent = start();
    wait_up().await;
    let last = round(at.0);
    for b in &last[at.1..] {
        assert_eq!(post_result(addr, b.as_bytes()).await, Some(200));
    }
    let rounds: Vec<Vec<String>> = (0..=at.0).map(round).collect();
    let want = made_of_rounds(&rounds);
    let have = |got: &Received| -> std::collections::BTreeSet<String> {
        let mut s = std::collections::BTreeSet::new();
        for (cid, p) in got.0.lock().unwrap().iter() {
            s.insert(made_key(cid, false, p));
        }
        for (cid, p) in got.1.lock().unwrap().iter() {
            s.insert(made_key(cid, true, p));
        }
        s
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !want.is_subset(&have(&got)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill").arg(agent.id().to_string()).status();
    agent.wait().unwrap();
    let have = have(&got);
    let lost: Vec<&String> = want.difference(&have).collect();
    let count = |kind: &str| lost.iter().filter(|k| k.starts_with(kind)).count();
    assert!(
        lost.is_empty(),
        "{} of {} packets of {} rounds lost: {} event rows, {} QoS reports, {} verdict rows: {:#?}",
        lost.len(),
        want.len(),
        rounds.len(),
        count("event"),
        count("qos"),
        count("verdict"),
        lost.iter().take(20).collect::<Vec<_>>()
    );
}
