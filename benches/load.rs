//! Load run of the real agent: `heplink serve` (release build) pinned to core 0 with
//! `taskset`, fed real fixture events over HTTP from this process, with a HEP receiver
//! counting what arrives. Reports events/s end to end, ingest→receive latency
//! percentiles, and the agent's CPU and peak RSS. Run:
//!
//!     cargo build --profile perf && taskset -c 1 cargo bench --bench load
//!
//! Modes: 100-event arrays on keep-alive connections (Janus with grouping), 1-event POSTs
//! on a new connection each (Janus's default), a fixed 10,000 events/s for latency, and
//! the same 10,000 events/s with the collector absent (a TCP port nobody listens on), where
//! what matters is the HTTP input's answer time. Every mode reports the POSTs' answer time.
//!
//! `LOAD_AGENT_ARGS` adds flags to the agent's command line (`"--qos off"`: one packet per
//! event, as the bare pipeline sends).
//!
//! `strong-<mode>` runs a mode against the strong reference of `benches/strong/` instead of
//! the agent (borrowed events, one packet each, one `sendmmsg` per POST: what
//! `benches/compare-runs` measures the agent against); `bare-<mode>` against the older,
//! weaker bare axum + serde pipeline of `benches/bare/`. `compare` runs the agent and the
//! strong reference one after the other with 1-event POSTs on 4 keep-alive connections and
//! with grouped 100-event POSTs.
//!
//! Every load line gives the throughput and, next to it, the peak RSS (VmHWM) of the
//! server under load (the agent or a reference), read from `/proc` once everything came.
//!
//! The agent is `$CARGO_TARGET_DIR/perf/heplink` (`target/perf/heplink` without it), or
//! `LOAD_AGENT_BIN` if set (to compare two builds).

mod bare;
mod common;
mod strong;

/// The agent's allocator, so that the bare pipeline (`serve-bare`) runs on the same one.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The agent's binary: `LOAD_AGENT_BIN`, else the `perf` build in the target directory.
fn agent_bin() -> std::path::PathBuf {
    if let Some(b) = std::env::var_os("LOAD_AGENT_BIN") {
        return b.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("perf/heplink")
}

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
    /// The agent, with a deep queue and a short hold unless `defaults`.
    fn start(to: &str, spool: Option<&std::path::Path>, defaults: bool) -> Agent {
        let bin = agent_bin();
        assert!(
            bin.exists(),
            "build the benchmark binary first: cargo build --profile perf ({} is missing)",
            bin.display()
        );
        let bin = bin.as_os_str();
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let child = Command::new("taskset")
            .args(["-c", "0"])
            .arg(bin)
            .args(["serve", "--ws", "off", "--metrics", "off"])
            .args(["--http", &http.to_string(), "--to", to])
            .args(
                [
                    "--queue-capacity",
                    "1000000",
                    // …and bytes to match (the default bound is 16 MiB).
                    "--queue-max-bytes",
                    "1073741824",
                    "--hold-ms",
                    &HOLD_MS.to_string(),
                ]
                .iter()
                .filter(|_| !defaults),
            )
            .args([
                // Unpaced unless LOAD_UDP_RATE says otherwise: the receiver here reads
                // as fast as it can from a 256 MiB buffer.
                "--udp-rate",
                &std::env::var("LOAD_UDP_RATE").unwrap_or_else(|_| "0".into()),
            ])
            .args(
                spool
                    .iter()
                    .flat_map(|d| [std::ffi::OsStr::new("--spool-dir"), d.as_os_str()]),
            )
            // More flags for the agent, e.g. `LOAD_AGENT_ARGS="--qos off"`.
            .args(
                std::env::var("LOAD_AGENT_ARGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .env("HEPLINK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("taskset (util-linux) and the agent");
        Agent::up(child, http)
    }

    /// A reference pipeline ([`bare`] with `serve-bare`, [`strong`] with `serve-strong`)
    /// in place of the agent, pinned the same way.
    fn start_reference(command: &str, to: &str) -> Agent {
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let child = Command::new("taskset")
            .args(["-c", "0"])
            .arg(std::env::current_exe().unwrap())
            .args([command, &http.to_string(), to])
            .stdout(Stdio::null())
            .spawn()
            .expect("taskset (util-linux)");
        Agent::up(child, http)
    }

    /// Waits (10 s at most) until `http` accepts connections.
    fn up(child: Child, http: SocketAddr) -> Agent {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(http).is_err() {
            assert!(
                Instant::now() < deadline,
                "the server under load did not start"
            );
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

/// (busy, total) jiffies of CPU `cpu` from /proc/stat: whether the agent's core is
/// saturated, softirq work charged to `ksoftirqd` included.
fn core_jiffies(cpu: usize) -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{cpu} ");
    let Some(line) = stat.lines().find(|l| l.starts_with(&name)) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    // user nice system idle iowait irq softirq steal …
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counts packets and records the latency of each (receive time − event timestamp, which
/// the load sets to the send time). The receiving thread keeps its latencies to itself
/// until it stops: no lock per packet on the load's core.
struct Receiver {
    count: Arc<AtomicU64>,
    /// When the last packet not released from a hold came, µs since the Unix epoch.
    last_us: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(u64, bool)>>,
}

impl Receiver {
    /// Packets received and their latencies (and whether each was held for a binding).
    fn finish(self) -> (u64, Vec<(u64, bool)>) {
        self.stop.store(true, Relaxed);
        let lat = self.thread.join().unwrap();
        (self.count.load(Relaxed), lat)
    }
}

fn receiver() -> (SocketAddr, Receiver) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    // A deep socket buffer (forced past rmem_max when run as root) and no blocking read:
    // a reader asleep on its socket is woken by every datagram, and on loopback that
    // wake-up is paid by the sender's softirq, i.e. charged to the agent's core. A
    // collector under load is busy reading, not asleep; polling models that.
    let sock = socket2::SockRef::from(&s);
    let _ = nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBufForce, &(256 << 20));
    if sock.recv_buffer_size().unwrap_or(0) < (64 << 20) {
        let _ = sock.set_recv_buffer_size(64 << 20);
    }
    s.set_nonblocking(true).unwrap();
    let addr = s.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let last_us = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (c, st, lu) = (count.clone(), stop.clone(), last_us.clone());
    let thread = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        let mut lat = Vec::with_capacity(1 << 20);
        while !st.load(Relaxed) {
            match s.recv(&mut buf) {
                Ok(n) => {
                    c.fetch_add(1, Relaxed);
                    // Events released from a hold (marked `held_us`) come when their hold
                    // ends, not with the stream: they do not extend its time.
                    let held = memchr::memmem::find(&buf[..n], b"\"held_us\":").is_some();
                    if !held {
                        lu.store(now_us(), Relaxed);
                    }
                    if let Ok(p) = heplink::proto::decode(&buf[..n], heplink::proto::Mode::Lenient)
                    {
                        if let Some(ts) = p.timestamp_micros() {
                            lat.push((now_us().saturating_sub(ts), held));
                        }
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
        lat
    });
    (
        addr,
        Receiver {
            count,
            last_us,
            stop,
            thread,
        },
    )
}

/// The fixture mix (`copies` times, with distinct ids), at most `limit` events, as
/// requests of `per_post` events each, every timestamp a placeholder re-stamped at send
/// time. Returns the requests and the number of events in them.
fn requests(copies: usize, limit: usize, per_post: usize, keep_alive: bool) -> (Vec<Request>, u64) {
    let mut out = Vec::new();
    let mut batch: Vec<Value> = Vec::with_capacity(per_post);
    let mut n = 0u64;
    let flush = |batch: &mut Vec<Value>, out: &mut Vec<Request>| {
        if batch.is_empty() {
            return;
        }
        let batch_len = batch.len() as u64;
        let body = if per_post == 1 {
            batch[0].to_string()
        } else {
            Value::Array(std::mem::take(batch)).to_string()
        };
        batch.clear();
        out.push(request(body.as_bytes(), keep_alive, batch_len));
    };
    'lines: for line in common::replicated(copies) {
        let events = match serde_json::from_str::<Value>(&line).unwrap() {
            Value::Array(a) => a,
            v => vec![v],
        };
        for mut e in events {
            if n as usize == limit {
                break 'lines;
            }
            e["timestamp"] = PLACEHOLDER.into();
            batch.push(e);
            n += 1;
            if batch.len() == per_post {
                flush(&mut batch, &mut out);
            }
        }
    }
    flush(&mut batch, &mut out);
    (out, n)
}

/// A whole HTTP request (head and body) with the offsets of its timestamp placeholders.
struct Request {
    bytes: Vec<u8>,
    stamps: Vec<usize>,
    /// Events in its body.
    events: u64,
}

/// A 16-digit timestamp stand-in, overwritten in place just before each POST.
const PLACEHOLDER: u64 = 1_000_000_000_000_000;

/// The agent's hold for events waiting for a binding, shorter than its default (10 s) so
/// that a run waits less for the stragglers.
const HOLD_MS: u64 = 2_000;

fn request(body: &[u8], keep_alive: bool, events: u64) -> Request {
    let mut bytes = format!(
        "POST /janus-events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if keep_alive { "" } else { "Connection: close\r\n" }
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    let ph = PLACEHOLDER.to_string();
    let stamps = memchr::memmem::find_iter(&bytes, ph.as_bytes()).collect();
    Request {
        bytes,
        stamps,
        events,
    }
}

/// The length of the HTTP message that `buf` starts with (head, then `Content-Length`
/// bytes of body), once its head is complete.
fn message_len(buf: &[u8]) -> Option<usize> {
    let end = memchr::memmem::find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Some(end + 4 + len)
}

/// Sends `req` stamped with `t` (one write) and reads the answer; returns its status.
fn http_post(s: &mut TcpStream, req: &Request, buf: &mut Vec<u8>, t: u64) -> u16 {
    buf.clear();
    buf.extend_from_slice(&req.bytes);
    let ts = format!("{t:016}");
    for &o in &req.stamps {
        buf[o..o + 16].copy_from_slice(ts.as_bytes());
    }
    s.write_all(buf).unwrap();
    // Read the response head and its body (Content-Length).
    buf.clear();
    let mut b = [0u8; 512];
    loop {
        let n = s.read(&mut b).unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&b[..n]);
        if message_len(buf).is_some_and(|len| buf.len() >= len) {
            break;
        }
    }
    String::from_utf8_lossy(buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
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
    (stream, got): (u64, u64),
    secs: f64,
    lat: &mut [u64],
    answer: &mut [u64],
    (cpu, cpu_window): (f64, f64),
    rss_kib: u64,
) {
    println!(
        "{name}: {sent} events posted, {got} HEP packets received ({:.1}%), {stream} in the stream's {secs:.2} s = {:.0} packets/s, {:.0} events/s, peak RSS {:.1} MiB; CPU {cpu:.2} s in {cpu_window:.2} s ({:.0}% of one core); latency p50 {} µs, p99 {} µs, max {} µs; HTTP answer p50 {} µs, p99 {} µs, max {} µs",
        100.0 * got as f64 / sent.max(1) as f64,
        stream as f64 / secs,
        sent as f64 / secs,
        rss_kib as f64 / 1024.0,
        100.0 * cpu / cpu_window,
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        lat.iter().max().copied().unwrap_or(0),
        percentile(answer, 0.5),
        percentile(answer, 0.99),
        answer.iter().max().copied().unwrap_or(0)
    );
}

/// Posts `posts` requests (the requests of `chunks` in turn, cycled) from `conns` threads
/// (paced to `rate` events/s if given); returns each POST's answer time, µs.
#[allow(clippy::too_many_arguments)]
fn post_all(
    chunks: Vec<Request>,
    posts: usize,
    addr: SocketAddr,
    per_post: usize,
    conns: usize,
    keep_alive: bool,
    rate: Option<f64>,
    start: Instant,
) -> Vec<u64> {
    let answers = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicU64::new(0));
    let chunks = Arc::new(chunks);
    let mut threads = Vec::new();
    for _ in 0..conns {
        let (next, chunks) = (next.clone(), chunks.clone());
        let answers = answers.clone();
        threads.push(std::thread::spawn(move || {
            let mut conn: Option<TcpStream> = None;
            let mut buf = Vec::new();
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Relaxed) as usize;
                if i >= posts {
                    answers.lock().unwrap().extend(mine);
                    return;
                }
                if let Some(r) = rate {
                    let due = Duration::from_secs_f64((i * per_post) as f64 / r);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                let t0 = Instant::now();
                let mut s = match conn.take() {
                    Some(s) if keep_alive => s,
                    _ => TcpStream::connect(addr).unwrap(),
                };
                let _ = s.set_nodelay(true);
                let req = &chunks[i % chunks.len()];
                assert_eq!(http_post(&mut s, req, &mut buf, now_us()), 200);
                mine.push(t0.elapsed().as_micros() as u64);
                if keep_alive {
                    conn = Some(s);
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let v = answers.lock().unwrap().clone();
    v
}

/// The floor of the 1-event mode on this machine: a minimal blocking HTTP server (accept,
/// read one request, answer 200, close; no runtime, no parsing) in place of the agent,
/// pinned the same way, fed by the same load. What it manages bounds what any agent can.
fn baseline_server(port: u16) {
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    for s in l.incoming() {
        let Ok(mut s) = s else { continue };
        let mut got = 0;
        // Read up to the end of the head, then Content-Length bytes of body.
        let need = loop {
            match s.read(&mut buf[got..]) {
                Ok(0) | Err(_) => break None,
                Ok(n) => got += n,
            }
            if let Some(len) = message_len(&buf[..got]) {
                break Some(len);
            }
        };
        let Some(need) = need else { continue };
        while got < need {
            match s.read(&mut buf[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    }
}

fn run_baseline(name: &str, (chunks, sent): (Vec<Request>, u64), conns: usize) {
    let port = free_port();
    let mut child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(std::env::current_exe().unwrap())
        .args(["serve-baseline", &port.to_string()])
        .spawn()
        .unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    while TcpStream::connect(addr).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (core0, load0) = (core_jiffies(0), core_jiffies(1));
    let start = Instant::now();
    let posts = chunks.len();
    let mut answers = post_all(chunks, posts, addr, 1, conns, false, None, start);
    let secs = start.elapsed().as_secs_f64();
    let (core1, load1) = (core_jiffies(0), core_jiffies(1));
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "{name}: {sent} POSTs in {secs:.2} s = {:.0} connections/s; core 0 (server) busy {:.0}%, core 1 (load) busy {:.0}%; answer p50 {} µs, p99 {} µs",
        sent as f64 / secs,
        busy(core0, core1),
        busy(load0, load1),
        percentile(&mut answers, 0.5),
        percentile(&mut answers, 0.99)
    );
}

fn busy(a: (u64, u64), b: (u64, u64)) -> f64 {
    100.0 * (b.0 - a.0) as f64 / (b.1 - a.1).max(1) as f64
}

/// A load mode: `per_post` events per POST from `conns` parallel connections, the fixture
/// mix `copies` times (at most `limit` events); with `rate`, paced to that many events/s
/// in total. With `absent`, the agent's collector is a closed TCP port and nothing is
/// expected to arrive. With `posts`, that many POSTs, the bodies cycled (Janus posting the
/// same calls again and again: the correlator's state stays that of the distinct bodies).
struct Mode {
    key: &'static str,
    label: &'static str,
    copies: usize,
    limit: usize,
    per_post: usize,
    conns: usize,
    keep_alive: bool,
    rate: Option<f64>,
    absent: bool,
    /// With `--spool-dir` (the spool and the intake journal on).
    spool: bool,
    /// POSTs in all, the bodies cycled; 0: each body once.
    posts: usize,
    /// The agent at its defaults (its queue bounds, its hold) but for unpaced UDP: the
    /// modes whose peak RSS is a target. Otherwise with a 1,000,000-packet queue and a
    /// 2 s hold.
    defaults: bool,
}

/// The agent's modes (`baseline` runs without the agent).
const MODES: &[Mode] = &[
    Mode {
        key: "grouped4",
        label: "100-event POSTs, 64 distinct bodies cycled, 4 keep-alive connections",
        copies: 9,
        limit: 6_400,
        per_post: 100,
        conns: 4,
        keep_alive: true,
        rate: None,
        absent: false,
        spool: false,
        posts: 4_000,
        defaults: true,
    },
    Mode {
        key: "batch",
        label: "100-event POSTs, 16 keep-alive connections",
        copies: 800,
        limit: usize::MAX,
        per_post: 100,
        conns: 16,
        keep_alive: true,
        rate: None,
        absent: false,
        spool: false,
        posts: 0,
        defaults: false,
    },
    Mode {
        key: "single",
        label: "1-event POSTs, new connection each, 32 senders",
        copies: 160,
        limit: 40_000,
        per_post: 1,
        conns: 32,
        keep_alive: false,
        rate: None,
        absent: false,
        spool: false,
        posts: 0,
        defaults: false,
    },
    Mode {
        key: "single-keepalive",
        label: "1-event POSTs, 32 keep-alive connections",
        copies: 160,
        limit: 116_800,
        per_post: 1,
        conns: 32,
        keep_alive: true,
        rate: None,
        absent: false,
        spool: false,
        posts: 0,
        defaults: false,
    },
    Mode {
        key: "keepalive4",
        label: "1-event POSTs, 4 keep-alive connections",
        copies: 160,
        limit: 116_800,
        per_post: 1,
        conns: 4,
        keep_alive: true,
        rate: None,
        absent: false,
        spool: false,
        posts: 0,
        defaults: true,
    },
    Mode {
        key: "latency",
        label: "10,000 events/s in 1-event POSTs, 4 senders",
        copies: 160,
        limit: 50_000,
        per_post: 1,
        conns: 4,
        keep_alive: false,
        rate: Some(10_000.0),
        absent: false,
        spool: false,
        posts: 0,
        defaults: false,
    },
    Mode {
        key: "absent",
        label: "10,000 events/s in 1-event POSTs, 4 senders, collector absent",
        copies: 160,
        limit: 50_000,
        per_post: 1,
        conns: 4,
        keep_alive: false,
        rate: Some(10_000.0),
        absent: true,
        spool: false,
        posts: 0,
        defaults: false,
    },
    Mode {
        key: "spool",
        label:
            "10,000 events/s in 1-event POSTs, 4 senders, collector absent, spool and journal on",
        copies: 160,
        limit: 50_000,
        per_post: 1,
        conns: 4,
        keep_alive: false,
        rate: Some(10_000.0),
        absent: true,
        spool: true,
        posts: 0,
        defaults: false,
    },
];

/// What serves a load run.
#[derive(Clone, Copy)]
enum Server {
    /// The agent (`heplink serve`).
    Agent,
    /// The bare axum + serde pipeline ([`bare`]).
    Bare,
    /// The strong reference ([`strong`]).
    Strong,
}

/// Runs mode `m` against `server`.
fn run(m: &Mode, server: Server) {
    let name = match server {
        Server::Bare => format!("bare-{}: {}, bare axum + serde pipeline", m.key, m.label),
        Server::Strong => format!(
            "strong-{}: {}, strong reference (borrowed events, one sendmmsg per POST)",
            m.key, m.label
        ),
        Server::Agent => format!("{}: {}", m.key, m.label),
    };
    let (chunks, mut sent) = requests(m.copies, m.limit, m.per_post, m.keep_alive);
    let posts = match m.posts {
        0 => chunks.len(),
        n => {
            sent = (0..n).map(|i| chunks[i % chunks.len()].events).sum();
            n
        }
    };
    let Mode {
        per_post,
        conns,
        keep_alive,
        rate,
        absent,
        spool,
        ..
    } = *m;
    let (collector, rx) = receiver();
    let to = if absent {
        format!("tcp://127.0.0.1:{}", free_port())
    } else {
        format!("udp://{collector}")
    };
    let spool_dir = spool.then(|| tempfile::tempdir().expect("a temporary directory"));
    let agent = match server {
        Server::Bare => Agent::start_reference("serve-bare", &collector.to_string()),
        Server::Strong => Agent::start_reference("serve-strong", &collector.to_string()),
        Server::Agent => Agent::start(&to, spool_dir.as_ref().map(|d| d.path()), m.defaults),
    };
    let (cpu0, _) = agent.usage();
    let (core0, load0) = (core_jiffies(0), core_jiffies(1));
    let start = Instant::now();
    let start_us = now_us();
    let answers = post_all(
        chunks, posts, agent.http, per_post, conns, keep_alive, rate, start,
    );
    // The stream ends when nothing more comes for 300 ms; its rate is measured up to the
    // last packet of it. Events still held for a binding (bodies processed out of order
    // across connections) come when their hold runs out: waited for, reported apart.
    let wait_stable = |quiet: Duration, limit: Duration| {
        let deadline = Instant::now() + limit;
        let mut last = u64::MAX;
        while Instant::now() < deadline {
            // Until nothing more comes: the agent may send more packets than events (its
            // QoS reports) and still be sending from its queue when the count passes them.
            let c = rx.count.load(Relaxed);
            if c == last {
                break;
            }
            last = c;
            std::thread::sleep(quiet);
        }
    };
    if !absent {
        wait_stable(Duration::from_millis(300), Duration::from_secs(20));
    }
    let main_got = rx.count.load(Relaxed);
    let main_secs = rx.last_us.load(Relaxed).saturating_sub(start_us) as f64 / 1e6;
    let (cpu1, _) = agent.usage();
    // CPU is read here, so its share is of the time up to here (the stream and its quiet
    // tail), not of the stream's time alone.
    let cpu_window = start.elapsed().as_secs_f64();
    let (core1, load1) = (core_jiffies(0), core_jiffies(1));
    let busy =
        |a: (u64, u64), b: (u64, u64)| 100.0 * (b.0 - a.0) as f64 / (b.1 - a.1).max(1) as f64;
    println!(
        "  core 0 (the agent's) busy {:.0}% (softirq and ksoftirqd included), core 1 (the load's) busy {:.0}%",
        busy(core0, core1),
        busy(load0, load1)
    );
    if !absent && main_got < sent {
        wait_stable(
            Duration::from_millis(HOLD_MS + 1000),
            Duration::from_secs(30),
        );
    }
    let (got, lat) = rx.finish();
    // The high-water mark once everything came (held events included).
    let (_, rss) = agent.usage();
    let mut direct: Vec<u64> = lat.iter().filter(|l| !l.1).map(|l| l.0).collect();
    let mut lat: Vec<u64> = lat.iter().map(|l| l.0).collect();
    if direct.len() < lat.len() {
        println!(
            "  latency of the {} events not held for a binding: p50 {} µs, p99 {} µs, max {} µs",
            direct.len(),
            percentile(&mut direct, 0.5),
            percentile(&mut direct, 0.99),
            direct.iter().max().copied().unwrap_or(0)
        );
    }
    if got > main_got {
        println!(
            "  {} events came after the stream, released when their hold ran out",
            got - main_got
        );
    }
    // From the first POST to the last packet of the stream.
    let secs = if absent {
        start.elapsed().as_secs_f64()
    } else {
        main_secs
    };
    let mut answer = answers;
    report(
        &name,
        sent,
        (main_got, got),
        secs,
        &mut lat,
        &mut answer,
        (cpu1 - cpu0, cpu_window),
        rss,
    );
}

fn main() {
    // `cargo bench` passes --bench; any argument naming a mode runs only that mode.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if only.first().map(String::as_str) == Some("serve-baseline") {
        return baseline_server(only[1].parse().unwrap());
    }
    if only.first().map(String::as_str) == Some("serve-bare") {
        return bare::serve(only[1].parse().unwrap(), only[2].parse().unwrap());
    }
    if only.first().map(String::as_str) == Some("serve-strong") {
        return strong::serve(only[1].parse().unwrap(), only[2].parse().unwrap());
    }
    let want = |m: &str| only.is_empty() || only.iter().any(|o| o == m);
    // `compare`: the agent and the strong reference, one after the other, in the two
    // modes the targets name (1-event and grouped 100-event POSTs on keep-alive
    // connections).
    let compare = only.iter().any(|o| o == "compare");
    for m in MODES {
        let in_compare = compare && matches!(m.key, "keepalive4" | "grouped4");
        if want(m.key) && !compare || in_compare {
            run(m, Server::Agent);
        }
        // The references only where the collector is there (they have no spool).
        let asked = |prefix: &str| only.iter().any(|o| *o == format!("{prefix}-{}", m.key));
        if !m.absent && asked("bare") {
            run(m, Server::Bare);
        }
        if !m.absent && asked("strong") || in_compare {
            run(m, Server::Strong);
        }
    }
    if want("baseline") {
        run_baseline(
            "baseline: 1-event POSTs to a minimal blocking server, new connection each, 32 senders",
            requests(160, 40_000, 1, false),
            32,
        );
    }
}
