//! Load run of the real agent: `heplink serve` (release build) pinned to core 0 with
//! `taskset`, fed real fixture events over HTTP from this process, with a HEP receiver
//! counting what arrives. Reports events/s end to end, ingest→receive latency
//! percentiles, and the agent's CPU and peak RSS. Run:
//!
//!     cargo build --release && taskset -c 1 cargo bench --bench load
//!
//! Modes: 100-event arrays on keep-alive connections (Janus with grouping), 1-event POSTs
//! on a new connection each (Janus's default), a fixed 10,000 events/s for latency, and
//! the same 10,000 events/s with the collector absent (a TCP port nobody listens on), where
//! what matters is the HTTP input's answer time. Every mode reports the POSTs' answer time.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Agent {
    child: Child,
    http: SocketAddr,
}

impl Agent {
    fn start(to: &str) -> Agent {
        let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/heplink");
        assert!(
            std::path::Path::new(bin).exists(),
            "build the release binary first: cargo build --release"
        );
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let child = Command::new("taskset")
            .args(["-c", "0", bin, "serve", "--ws", "off", "--metrics", "off"])
            .args([
                "--http",
                &http.to_string(),
                "--to",
                to,
                "--queue-capacity",
                "1000000",
            ])
            .env("HEPLINK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("taskset (util-linux) and the agent");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(http).is_err() {
            assert!(Instant::now() < deadline, "agent did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent { child, http }
    }

    /// (user+system CPU seconds, peak RSS in KiB) from /proc.
    fn usage(&self) -> (f64, u64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let cpu = (ticks(11) + ticks(12)) / 100.0;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let hwm = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        (cpu, hwm)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counts packets and records the latency of each (receive time − event timestamp, which
/// the load sets to the send time).
struct Receiver {
    count: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
}

fn receiver() -> (SocketAddr, Receiver) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = s.local_addr().unwrap();
    let r = Receiver {
        count: Arc::new(AtomicU64::new(0)),
        latencies: Arc::new(Mutex::new(Vec::new())),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let (count, lat, stop) = (r.count.clone(), r.latencies.clone(), r.stop.clone());
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Relaxed) {
            if let Ok(n) = s.recv(&mut buf) {
                count.fetch_add(1, Relaxed);
                if let Ok(p) = heplink::proto::decode(&buf[..n], heplink::proto::Mode::Lenient) {
                    if let Some(ts) = p.timestamp_micros() {
                        lat.lock().unwrap().push(now_us().saturating_sub(ts));
                    }
                }
            }
        }
    });
    (addr, r)
}

/// The fixture mix as single events, each re-stamped at send time.
fn events() -> Vec<Value> {
    let mut out = Vec::new();
    for line in common::replicated(160) {
        match serde_json::from_str::<Value>(&line).unwrap() {
            Value::Array(a) => out.extend(a),
            v => out.push(v),
        }
    }
    out
}

fn http_post(s: &mut TcpStream, addr: SocketAddr, body: &[u8], keep_alive: bool) -> u16 {
    let head = format!(
        "POST /janus-events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if keep_alive { "" } else { "Connection: close\r\n" }
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    // Read the response head and its body (Content-Length).
    let mut buf = Vec::with_capacity(256);
    let mut b = [0u8; 512];
    loop {
        let n = s.read(&mut b).unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&b[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A 16-digit timestamp stand-in, overwritten in place by [`stamp`].
const PLACEHOLDER: u64 = 1_000_000_000_000_000;

/// Writes `t` (16 digits) over every placeholder in the body.
fn stamp(body: &mut [u8], t: u64) {
    let (from, to) = (PLACEHOLDER.to_string(), format!("{t:016}"));
    let mut i = 0;
    while let Some(p) = body[i..].windows(16).position(|w| w == from.as_bytes()) {
        body[i + p..i + p + 16].copy_from_slice(to.as_bytes());
        i += p + 16;
    }
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p) as usize]
}

#[allow(clippy::too_many_arguments)]
fn report(
    name: &str,
    sent: u64,
    got: u64,
    secs: f64,
    lat: &mut [u64],
    answer: &mut [u64],
    cpu: f64,
    rss_kib: u64,
) {
    println!(
        "{name}: {sent} events posted, {got} HEP packets received ({:.1}%) in {secs:.2} s = {:.0} packets/s; agent CPU {cpu:.2} s ({:.0}% of one core), peak RSS {:.1} MiB; latency p50 {} µs, p99 {} µs, max {} µs; HTTP answer p50 {} µs, p99 {} µs, max {} µs",
        100.0 * got as f64 / sent.max(1) as f64,
        got as f64 / secs,
        100.0 * cpu / secs,
        rss_kib as f64 / 1024.0,
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        lat.iter().max().copied().unwrap_or(0),
        percentile(answer, 0.5),
        percentile(answer, 0.99),
        answer.iter().max().copied().unwrap_or(0)
    );
}

/// Posts `events` in bodies of `per_post` from `conns` parallel connections; with
/// `rate`, paced to that many events/s in total. With `absent`, the agent's collector
/// is a closed TCP port and nothing is expected to arrive.
#[allow(clippy::too_many_arguments)]
fn run(
    name: &str,
    events: &[Value],
    per_post: usize,
    conns: usize,
    keep_alive: bool,
    rate: Option<f64>,
    absent: bool,
) {
    let (collector, rx) = receiver();
    let to = if absent {
        format!("tcp://127.0.0.1:{}", free_port())
    } else {
        format!("udp://{collector}")
    };
    let agent = Agent::start(&to);
    let answers = Arc::new(Mutex::new(Vec::new()));
    let (cpu0, _) = agent.usage();
    let start = Instant::now();
    // Bodies are serialised once, every timestamp a fixed-width placeholder that is
    // overwritten with the send time (same width) just before each POST.
    let chunks: Vec<Vec<u8>> = events
        .chunks(per_post)
        .map(|c| {
            let mut batch = c.to_vec();
            for e in &mut batch {
                e["timestamp"] = PLACEHOLDER.into();
            }
            if per_post == 1 {
                batch[0].to_string()
            } else {
                Value::Array(batch).to_string()
            }
            .into_bytes()
        })
        .collect();
    let next = Arc::new(AtomicU64::new(0));
    let chunks = Arc::new(chunks);
    let mut threads = Vec::new();
    for _ in 0..conns {
        let (next, chunks, addr) = (next.clone(), chunks.clone(), agent.http);
        let answers = answers.clone();
        threads.push(std::thread::spawn(move || {
            let mut conn: Option<TcpStream> = None;
            loop {
                let i = next.fetch_add(1, Relaxed) as usize;
                if i >= chunks.len() {
                    return;
                }
                if let Some(r) = rate {
                    let due = Duration::from_secs_f64((i * per_post) as f64 / r);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                let mut body = chunks[i].clone();
                let t0 = Instant::now();
                stamp(&mut body, now_us());
                let mut s = match conn.take() {
                    Some(s) if keep_alive => s,
                    _ => TcpStream::connect(addr).unwrap(),
                };
                let _ = s.set_nodelay(true);
                assert_eq!(http_post(&mut s, addr, &body, keep_alive), 200);
                answers
                    .lock()
                    .unwrap()
                    .push(t0.elapsed().as_micros() as u64);
                if keep_alive {
                    conn = Some(s);
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let sent = events.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = 0;
    while !absent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        let c = rx.count.load(Relaxed);
        if c >= sent || (c == last && c > 0) {
            break;
        }
        last = c;
    }
    let secs = start.elapsed().as_secs_f64();
    let (cpu1, rss) = agent.usage();
    rx.stop.store(true, Relaxed);
    let got = rx.count.load(Relaxed);
    let mut lat = rx.latencies.lock().unwrap().clone();
    let mut answer = answers.lock().unwrap().clone();
    report(
        name,
        sent,
        got,
        secs,
        &mut lat,
        &mut answer,
        cpu1 - cpu0,
        rss,
    );
}

fn main() {
    // `cargo bench` passes --bench; any argument naming a mode runs only that mode.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |m: &str| only.is_empty() || only.iter().any(|o| o == m);
    let ev = events();
    println!(
        "{} fixture events (the real mix, replicated with distinct ids)",
        ev.len()
    );
    if want("batch") {
        run(
            "batch: 100-event POSTs, 4 keep-alive connections",
            &ev,
            100,
            4,
            true,
            None,
            false,
        );
    }
    if want("single") {
        let n = ev.len().min(40_000);
        run(
            "single: 1-event POSTs, new connection each, 32 senders",
            &ev[..n],
            1,
            32,
            false,
            None,
            false,
        );
    }
    if want("latency") {
        let n = ev.len().min(50_000);
        run(
            "latency: 10,000 events/s in 1-event POSTs, 4 senders",
            &ev[..n],
            1,
            4,
            false,
            Some(10_000.0),
            false,
        );
    }
    if want("absent") {
        let n = ev.len().min(50_000);
        run(
            "absent: 10,000 events/s in 1-event POSTs, 4 senders, collector absent",
            &ev[..n],
            1,
            4,
            false,
            Some(10_000.0),
            true,
        );
    }
}
