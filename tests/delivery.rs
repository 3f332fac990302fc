//! Delivery faults: what a real collector keeps up with, and what the agent counts when it
//! cannot deliver. Each test asserts exact counts.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

/// The captures posted in these tests: every real Janus capture, the fixture mix.
const MIX: &[&str] = CAPTURES;

/// A UDP collector like a stock heplify-server: the kernel's default receive buffer
/// (asked for explicitly, 208 KiB once the kernel doubles it, so the host's
/// `rmem_default` does not matter) and a reader that takes at most 20,000 packets/s.
/// Returns its address, what it got and the socket's address for its drop counter.
fn default_buffer_receiver_at_20k() -> (SocketAddr, Received) {
    use nix::sys::socket::{setsockopt, sockopt};
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    setsockopt(&s, sockopt::RcvBuf, &(212_992 / 2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let addr = s.local_addr().unwrap();
    let r = Received::default();
    let r2 = r.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        let mut start = None;
        let mut n = 0u32;
        while let Ok(len) = s.recv(&mut buf) {
            let t0 = *start.get_or_insert_with(Instant::now);
            r2.push_raw(&buf[..len]);
            n += 1;
            // 20,000 packets/s at most: 20 packets per millisecond.
            let due = t0 + Duration::from_micros(u64::from(n) * 50);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    });
    (addr, r)
}

/// The mix's events as Janus's sample handler groups them: bodies of up to 100 events.
fn mix_bodies() -> (Vec<String>, Vec<String>) {
    let mut bodies = Vec::new();
    let mut cids = Vec::new();
    for scenario in MIX {
        let events = fixture_events(scenario);
        for chunk in events.chunks(100) {
            bodies.push(serde_json::Value::Array(chunk.to_vec()).to_string());
        }
        cids.extend(expected_cids(scenario));
    }
    cids.sort();
    (bodies, cids)
}

/// The timing-sensitive tests (UDP at 20k/s, the stalled collector, the flapping
/// collector) run one at a time: a burst of one would take the CPU another's reader needs.
static UDP_ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn post_mix_to_udp(rate: u32) -> (usize, Received, Vec<String>) {
    let (collector, got) = default_buffer_receiver_at_20k();
    let mut c = agent_config(&[format!("udp://{collector}")]);
    c.output[0].udp_rate = rate;
    let (a, stop) = start_agent(c).await;
    let http = a.bound.http.unwrap();
    let (bodies, cids) = mix_bodies();
    // Back to back: every body posted at once, on its own connection.
    let posts: Vec<_> = bodies
        .into_iter()
        .map(|b| tokio::spawn(async move { post(http, &[], b.as_bytes()).await.0 }))
        .collect();
    for p in posts {
        assert_eq!(p.await.unwrap(), 200);
    }
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    (cids.len(), got, cids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_paced_by_default_a_collector_with_the_default_buffer_at_20k_per_s_loses_nothing() {
    let _one = UDP_ONE_AT_A_TIME.lock().await;
    let (n, got, cids) = post_mix_to_udp(heplink::config::DEFAULT_UDP_RATE).await;
    assert!(n > 700, "{n} events");
    assert_eq!(got.wait_for(n, 20).await, n, "every event arrives");
    // Nothing more either (each once), with the ids convert gives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut have = got.cids();
    have.sort();
    assert_eq!(have, cids);
    // And every QoS report made of the mix's media stats. (Verdicts are left out here:
    // bodies posted all at once reach the agent in any order, not Janus's, so a
    // PeerConnection may seem to end before it began.)
    let qos: usize = MIX
        .iter()
        .map(|s| expected_qos(s) - expected_verdicts(s))
        .sum();
    assert!(qos > 0);
    let reports = got.qos().iter().filter(|(_, p)| !is_verdict(p)).count();
    assert_eq!(reports, qos, "every QoS report arrives");
}

/// A measurement, not part of the suite (how much is lost depends on how fast this
/// machine bursts): the same traffic unpaced, at the same receiver.
/// `cargo test --test delivery -- --ignored --nocapture unpaced`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: prints how much of the mix an unpaced sender loses"]
async fn measure_unpaced_loss_at_such_a_collector() {
    let _one = UDP_ONE_AT_A_TIME.lock().await;
    let (n, got, _) = post_mix_to_udp(0).await;
    let arrived = got.wait_for(n, 3).await;
    println!("unpaced: {arrived} of {n} events arrived");
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// A UDP receiver that keeps each packet's HEP time and payload.
fn timed_receiver() -> (SocketAddr, std::sync::mpsc::Receiver<(u64, Vec<u8>)>) {
    let (s, _) = heplink::cmd::listen::udp_receive_socket("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = s.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = s.recv(&mut buf) {
            let p = heplink::proto::decode(&buf[..n], heplink::proto::Mode::Strict).unwrap();
            let t = p.timestamp_micros().unwrap();
            if tx.send((t, p.payload.unwrap().to_vec())).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_six_days_old_or_a_day_ahead_are_sent_with_the_receive_time_and_counted() {
    let _one = UDP_ONE_AT_A_TIME.lock().await;
    let (collector, rx) = timed_receiver();
    let (a, stop) = start_agent(agent_config(&[format!("udp://{collector}")])).await;
    let http = a.bound.http.unwrap();
    let day = 86_400_000_000u64;
    let now = now_us();
    // The echotest capture, its times moved: 6 days old, a day ahead, and current.
    let mut events = fixture_events("echotest-http-only");
    let n = events.len();
    assert!(n >= 30);
    let mut want = Vec::new();
    for (i, e) in events.iter_mut().enumerate() {
        let ts = match i % 3 {
            0 => now - 6 * day,
            1 => now + day,
            _ => now - 1_000_000,
        };
        e["timestamp"] = ts.into();
        want.push(ts);
    }
    let body = serde_json::Value::Array(events).to_string();
    assert_eq!(post(http, &[], body.as_bytes()).await.0, 200);
    let mut got = Vec::new();
    while got.len() < n {
        got.push(
            rx.recv_timeout(Duration::from_secs(10))
                .expect("every event arrives"),
        );
    }
    let after = now_us();
    let (mut old, mut ahead) = (0, 0);
    for (t, payload) in &got {
        let v: serde_json::Value = serde_json::from_slice(heplink::map::log_json(payload)).unwrap();
        let own = v["event"]["timestamp"].as_u64().unwrap();
        assert!(
            want.contains(&own),
            "the event's own time stays in the payload"
        );
        if own == now - 1_000_000 {
            assert_eq!(*t, own, "a current event keeps its time");
        } else {
            assert!(
                (now..=after).contains(t),
                "an event at {own} is sent with the receive time, not {t}"
            );
            if own < now {
                old += 1;
            } else {
                ahead += 1;
            }
        }
    }
    assert_eq!((old, ahead), (n.div_ceil(3), (n + 1) / 3));
    stop.send(()).unwrap();
    let metrics = a.metrics.clone();
    a.wait().await.unwrap();
    let text = metrics.render();
    assert!(
        text.contains(&format!(
            "heplink_time_rewritten_total{{reason=\"too_old\"}} {old}"
        )),
        "{text}"
    );
    assert!(text.contains(&format!(
        "heplink_time_rewritten_total{{reason=\"in_future\"}} {ahead}"
    )));
}

/// A collector that accepts and never reads, with a small receive buffer; `stop` closes
/// everything it accepted.
fn staller(port: u16) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    s.listen(16).unwrap();
    s.set_nonblocking(true).unwrap();
    let l: std::net::TcpListener = s.into();
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while !stop2.load(Ordering::Relaxed) {
            if let Ok((c, _)) = l.accept() {
                held.push(c);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Dies: everything it held unread is lost with it.
    });
    stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_collector_is_replaced_while_the_spool_absorbs_and_nothing_is_lost() {
    let _one = UDP_ONE_AT_A_TIME.lock().await;
    let port = free_port();
    let stop = staller(port);
    let spool = tempfile::tempdir().unwrap();
    let mut c = agent_config(&[format!("tcp://127.0.0.1:{port}")]);
    c.spool.dir = spool.path().to_string_lossy().into_owned();
    // 64 packets of 40 KB (2.5 MB) against 12 MB posted: without the spool absorbing while
    // the write waits, the queue overflows many times over.
    c.queue.capacity = 64;
    c.output[0].stall_s = 1;
    let (a, stop_agent) = start_agent(c).await;
    let http = a.bound.http.unwrap();
    // 300 events of ~40 KB (12 MB): more than the kernel's buffers hold.
    let n = 300;
    let pad = "p".repeat(40_000);
    let now = now_us();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
        let events: Vec<serde_json::Value> = chunk
            .iter()
            .map(|i| {
                serde_json::json!({"emitter":"stall-test","type":4,"timestamp":now,
                    "event":{"schema":"test","data":{"n":i,"pad":pad}}})
            })
            .collect();
        let body = serde_json::Value::Array(events).to_string();
        assert_eq!(post(http, &[], body.as_bytes()).await.0, 200);
    }
    let m = a.metrics.clone();
    let col = &m.collectors[0];
    use std::sync::atomic::Ordering::Relaxed;
    let deadline = Instant::now() + Duration::from_secs(15);
    while col.stalls.load(Relaxed) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(col.stalls.load(Relaxed) >= 1, "the stall was detected");
    assert_eq!(
        col.dropped_queue_full.load(Relaxed),
        0,
        "the spool absorbed meanwhile"
    );
    assert!(col.spool_bytes.load(Relaxed) > 0);
    // The collector dies and a working one takes its port: every event arrives.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = Received::default();
    let (_, task) = tcp_receiver(&format!("127.0.0.1:{port}"), got.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let marks = |got: &Received| {
        got.payloads()
            .iter()
            .filter_map(|p| {
                let v: serde_json::Value =
                    serde_json::from_slice(heplink::map::log_json(p)).ok()?;
                v["event"]["event"]["data"]["n"].as_u64()
            })
            .collect::<std::collections::BTreeSet<u64>>()
    };
    while marks(&got).len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(marks(&got).len(), n, "every event arrives (at least once)");
    assert_eq!(col.dropped_spool.load(Relaxed), 0);
    stop_agent.send(()).unwrap();
    a.wait().await.unwrap();
    task.abort();
}

/// A collector process that reads continuously: `heplink listen`, writing one JSON line per
/// packet (line-buffered, so what it read survives its SIGKILL). An ordinary process, at
/// the machine's ordinary priority: on a loaded machine it may wait for a core, and what
/// it has not read when it dies comes again (counted as resent).
fn listen_process(port: u16, jsonl: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_heplink"))
        .args(["listen", "-q", "--no-flows", "--tcp"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--jsonl")
        .arg(jsonl)
        .env("HEPLINK_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("heplink listen starts")
}

/// The `data.n` marks of every packet in the JSONL files, duplicates included.
fn marks_in(files: &[std::path::PathBuf]) -> Vec<u64> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for line in text.lines() {
            // A line cut by the SIGKILL is not a stored packet.
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(p) = v["payload"].as_str() else {
                continue;
            };
            if let Ok(p) =
                serde_json::from_slice::<serde_json::Value>(heplink::map::log_json(p.as_bytes()))
            {
                if let Some(n) = p["event"]["event"]["data"]["n"].as_u64() {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// What a flapping collector got: events posted, distinct events stored, duplicates, and
/// the agent's resent count.
struct Flap {
    events: u64,
    stored: u64,
    duplicates: u64,
    resent: u64,
}

/// A collector process that reads continuously is SIGKILLed and restarted `restarts`
/// times, every `every`, during a stream of 500 events/s into the agent. Asserts that
/// nothing is lost, that every event counts as sent once, that no drop counter moved and
/// that every duplicate the collector got was counted as resent.
async fn flapping_collector(restarts: u32, every: Duration) -> Flap {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let _one = UDP_ONE_AT_A_TIME.lock().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![dir.path().join("run-0.jsonl")];
    let mut child = listen_process(port, &files[0]);
    let c = agent_config(&[format!("tcp://127.0.0.1:{port}")]);
    let (a, stop_agent) = start_agent(c).await;
    let http = a.bound.http.unwrap();
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let posted = std::sync::Arc::new(AtomicU64::new(0));
    let driver = {
        let (done, posted) = (done.clone(), posted.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while !done.load(Relaxed) {
                tick.tick().await;
                let now = now_us();
                let events: Vec<serde_json::Value> = (n..n + 10)
                    .map(|i| {
                        serde_json::json!({"emitter":"flap-test","type":4,"timestamp":now,
                            "event":{"schema":"test","data":{"n":i}}})
                    })
                    .collect();
                let body = serde_json::Value::Array(events).to_string();
                assert_eq!(post(http, &[], body.as_bytes()).await.0, 200);
                n += 10;
                posted.store(n, Relaxed);
            }
        })
    };
    for i in 1..=restarts {
        // `every` of reading: from the moment the new process has stored a packet (a
        // process that has not started reading yet is not a collector that reads
        // continuously; on a busy machine its start alone can take longer than `every`).
        let file = files.last().unwrap().clone();
        let started = Instant::now();
        while std::fs::metadata(&file).map_or(0, |m| m.len()) == 0
            && started.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(every).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        files.push(dir.path().join(format!("run-{i}.jsonl")));
        child = listen_process(port, files.last().unwrap());
    }
    tokio::time::sleep(every).await;
    done.store(true, Relaxed);
    driver.await.unwrap();
    let m = a.metrics.clone();
    stop_agent.send(()).unwrap();
    a.wait().await.unwrap();
    let events = posted.load(Relaxed);
    let col = &m.collectors[0];
    // The agent ended its connection cleanly; give the listener a moment to write.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = marks_in(&files);
    while (got.iter().collect::<std::collections::HashSet<_>>().len() as u64) < events
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = marks_in(&files);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let distinct: std::collections::BTreeSet<u64> = got.iter().copied().collect();
    let missing: Vec<u64> = (0..events).filter(|n| !distinct.contains(n)).collect();
    let f = Flap {
        events,
        stored: distinct.len() as u64,
        duplicates: got.len() as u64 - distinct.len() as u64,
        resent: col.resent.load(Relaxed),
    };
    eprintln!(
        "flapping collector, {restarts} restarts every {every:?}: {} events, {} stored, {} duplicates ({:.2}%), {} resent, {} reconnects",
        f.events,
        f.stored,
        f.duplicates,
        f.duplicates as f64 * 100.0 / f.events as f64,
        f.resent,
        col.reconnects.load(Relaxed)
    );
    // The runs of missing events, as (first, count).
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &n in &missing {
        match runs.last_mut() {
            Some((first, count)) if *first + *count == n => *count += 1,
            _ => runs.push((n, 1)),
        }
    }
    assert!(
        missing.is_empty(),
        "lost {} of {events}, in {} runs (first, count): {:?}",
        missing.len(),
        runs.len(),
        &runs[..runs.len().min(40)]
    );
    assert_eq!(f.stored, events, "nothing but the posted events");
    assert!(
        col.reconnects.load(Relaxed) >= u64::from(restarts) * 9 / 10,
        "the collector was really killed"
    );
    assert_eq!(
        col.packets.load(Relaxed),
        events,
        "each event counted as sent once"
    );
    assert!(
        f.duplicates <= f.resent,
        "every duplicate was counted as resent"
    );
    for dropped in [
        &col.dropped_queue_full,
        &col.dropped_shutdown,
        &col.dropped_spool,
    ] {
        assert_eq!(dropped.load(Relaxed), 0);
    }
    f
}

/// The fault suite's flapping collector (#9): killed and restarted 100 times, every 0.8 s,
/// an ordinary process (no real-time priority) on whatever load the test run puts on the
/// machine. Nothing lost; every duplicate counted as resent; and duplicates within what
/// the agent had not seen the collector read: what its TCP acknowledged within the read
/// grace (250 ms) before each kill, plus 100 ms for what was in flight (at 500 events/s,
/// 175 events per restart; measured 131, docs/delivery.md). At the old 25 ms grace the
/// collector lost 5% of the events on a busy machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_killed_100_times_every_0_8_s_loses_nothing_and_duplicates_stay_within_the_read_grace(
) {
    let restarts = 100;
    let f = flapping_collector(restarts, Duration::from_millis(800)).await;
    let grace = heplink::config::Output::new("tcp://127.0.0.1:9060".parse().unwrap()).read_grace_ms;
    let per_restart = 500 * (grace + 100) / 1000;
    assert!(
        f.duplicates <= u64::from(restarts) * per_restart,
        "duplicates {} above {per_restart} per restart ({restarts} restarts)",
        f.duplicates,
    );
    assert!(
        f.duplicates <= f.resent,
        "every duplicate is counted as resent"
    );
}

/// The slower flap, measured (100 s): killed every 10 s, duplicates within the read grace
/// per restart. Run with `cargo test --test delivery -- --ignored --nocapture every_10_s`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 100 s measurement"]
async fn measure_a_collector_killed_every_10_s() {
    let f = flapping_collector(10, Duration::from_secs(10)).await;
    assert!(f.duplicates <= 10 * 175, "duplicates above 175 per restart");
}

/// A collector that reads, stops reading (its small buffer fills and its window closes),
/// then resets every connection it holds (`SO_LINGER` 0) and reads again: heplify-server
/// blocking its reader on a slow database, then dying. Returns the collector's controls
/// and the `data.n` marks it read, duplicates included.
struct Pauser {
    reading: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reset: std::sync::Arc<std::sync::atomic::AtomicBool>,
    marks: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}

fn pauser(port: u16) -> Pauser {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let p = Pauser {
        reading: std::sync::Arc::new(AtomicBool::new(true)),
        reset: std::sync::Arc::new(AtomicBool::new(false)),
        marks: Default::default(),
    };
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    // Inherited by what it accepts: 8 KiB once the kernel doubles it.
    s.set_recv_buffer_size(4096).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    s.listen(16).unwrap();
    s.set_nonblocking(true).unwrap();
    let l: std::net::TcpListener = s.into();
    let (reading, reset, marks) = (p.reading.clone(), p.reset.clone(), p.marks.clone());
    std::thread::spawn(move || {
        let mut conns: Vec<(std::net::TcpStream, Vec<u8>)> = Vec::new();
        let mut chunk = vec![0u8; 65_536];
        loop {
            if let Ok((c, _)) = l.accept() {
                c.set_nonblocking(true).unwrap();
                conns.push((c, Vec::new()));
            }
            if reset.swap(false, Relaxed) {
                for (c, _) in conns.drain(..) {
                    socket2::SockRef::from(&c)
                        .set_linger(Some(Duration::ZERO))
                        .unwrap();
                }
            }
            if reading.load(Relaxed) {
                for (c, buf) in &mut conns {
                    while let Ok(n) = c.read(&mut chunk) {
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    // Whole HEP packets: "HEP3", then the total length.
                    while buf.len() >= 6 {
                        let len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
                        if buf.len() < len {
                            break;
                        }
                        let f: Vec<u8> = buf.drain(..len).collect();
                        let p = heplink::proto::decode(&f, heplink::proto::Mode::Strict).unwrap();
                        let v: serde_json::Value =
                            serde_json::from_slice(heplink::map::log_json(p.payload.unwrap()))
                                .unwrap();
                        if let Some(n) = v["event"]["event"]["data"]["n"].as_u64() {
                            marks.lock().unwrap().push(n);
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    p
}

/// Issue 24 (3): the collector reads 20 events, stops reading while 60 more come (60 KB
/// against its 8 KiB buffer: its window closes, the agent's send buffer holds the rest),
/// then resets and reads again. Every event arrives (with the spool, or resent from memory
/// without it): received + counted as dropped = posted. Returns the duplicates and the
/// resent count. Fails with a rule that takes bytes acknowledged into the collector's
/// buffer (behind a window still open, or within a rounding margin) as read.
async fn stop_reading_then_reset(spool: bool) -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let _one = UDP_ONE_AT_A_TIME.lock().await;
    let port = free_port();
    let col = pauser(port);
    let dir = tempfile::tempdir().unwrap();
    let mut c = agent_config(&[format!("tcp://127.0.0.1:{port}")]);
    if spool {
        c.spool.dir = dir.path().to_string_lossy().into_owned();
    }
    c.output[0].stall_s = 30;
    let (a, stop_agent) = start_agent(c).await;
    let http = a.bound.http.unwrap();
    let pad = "p".repeat(1000);
    let now = now_us();
    let post_range = |r: std::ops::Range<u64>| {
        let pad = pad.clone();
        async move {
            for i in r {
                let e = serde_json::json!([{"emitter":"pause-test","type":4,"timestamp":now,
                    "event":{"schema":"test","data":{"n":i,"pad":pad}}}]);
                assert_eq!(post(http, &[], e.to_string().as_bytes()).await.0, 200);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let distinct = |c: &Pauser| {
        c.marks
            .lock()
            .unwrap()
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<u64>>()
    };
    post_range(0..20).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while distinct(&col).len() < 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(distinct(&col).len(), 20, "read while reading");
    col.reading.store(false, Relaxed);
    post_range(20..80).await;
    // Long enough for everything acknowledged to pass the read grace and more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    col.reset.store(true, Relaxed);
    tokio::time::sleep(Duration::from_millis(50)).await;
    col.reading.store(true, Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while distinct(&col).len() < 80 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = a.metrics.clone();
    let out = &m.collectors[0];
    // The quiet connection confirms its last bytes within seconds.
    let deadline = Instant::now() + Duration::from_secs(8);
    while out.packets.load(Relaxed) < 80 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent_idle = out.packets.load(Relaxed);
    stop_agent.send(()).unwrap();
    a.wait().await.unwrap();
    let got = distinct(&col);
    let all = col.marks.lock().unwrap().len() as u64;
    let dropped = out.dropped_queue_full.load(Relaxed)
        + out.dropped_shutdown.load(Relaxed)
        + out.dropped_spool.load(Relaxed);
    let missing: Vec<u64> = (0..80).filter(|n| !got.contains(n)).collect();
    let dups = all - got.len() as u64;
    let resent = out.resent.load(Relaxed);
    eprintln!(
        "stop reading then reset (spool {spool}): {} of 80 read, {dups} duplicates, {resent} resent, {dropped} dropped, sent {sent_idle} while idle, missing {missing:?}",
        got.len()
    );
    assert_eq!(
        got.len() as u64 + dropped,
        80,
        "read + dropped = posted; missing {missing:?}"
    );
    if spool {
        assert!(
            missing.is_empty(),
            "with the spool nothing is lost: {missing:?}"
        );
    }
    assert_eq!(sent_idle, 80, "sent catches up on the quiet connection");
    assert!(dups <= resent, "every duplicate was counted as resent");
    (dups, resent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_stops_reading_then_resets_loses_nothing_with_the_spool() {
    stop_reading_then_reset(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_stops_reading_then_resets_loses_nothing_uncounted_without_the_spool() {
    stop_reading_then_reset(false).await;
}
