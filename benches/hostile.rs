//! Hostile-input load run: the real agent (perf profile) pinned to core 0, attacked from
//! core 1 while a "Janus" client posts good events. Measures, from /proc and the client:
//!
//! - `slowloris`: 2,000 connections sending one header byte a second (from 127.0.0.2–9),
//!   meanwhile 1-event POSTs from 127.0.0.1 at 1,000/s: their answer p50/p99;
//! - `pingflood`: a WebSocket peer sending a million pings and never reading the pongs:
//!   the agent's peak RSS;
//! - `memory`: 16 gzip bombs (1 GiB each inflated), 100 MB bodies on 8 connections and
//!   10,000 idle connections at once, meanwhile the same good POSTs: the agent's peak RSS
//!   and that every good event arrived.
//!
//!     cargo build --profile perf && taskset -c 1 cargo bench --bench hostile [slowloris|memory|pingflood]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_agent(to: SocketAddr, extra: &[&str]) -> (Child, SocketAddr) {
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/target/perf/heplink");
    assert!(
        std::path::Path::new(bin).exists(),
        "build the benchmark binary first: cargo build --profile perf"
    );
    let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let child = Command::new("taskset")
        .args(["-c", "0", bin, "serve", "--metrics", "off"])
        .args(if extra.contains(&"--ws") {
            &[][..]
        } else {
            &["--ws", "off"][..]
        })
        .args(["--http", &http.to_string(), "--to", &format!("udp://{to}")])
        .args(["--udp-rate", "0"])
        // The good events are session events of sessions without handles: they wait for
        // a binding for the hold time before going out; short here so a run waits less.
        .args(["--hold-ms", "300"])
        .args(extra)
        .env("HEPLINK_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("taskset and the agent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(http).is_err() {
        assert!(Instant::now() < deadline, "agent did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, http)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Counts HEP packets arriving at a UDP socket.
fn receiver() -> (SocketAddr, Arc<AtomicU64>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let _ = nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBufForce, &(64 << 20));
    let addr = s.local_addr().unwrap();
    let n = Arc::new(AtomicU64::new(0));
    let n2 = n.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while s.recv(&mut buf).is_ok() {
            n2.fetch_add(1, Relaxed);
        }
    });
    (addr, n)
}

/// POSTs one event `count` times at `rate`/s on keep-alive connections; returns the
/// answer times in µs (all must be 200).
fn janus(http: SocketAddr, count: usize, rate: u64) -> Vec<u64> {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_nodelay(true).unwrap();
    let start = Instant::now();
    let mut times = Vec::with_capacity(count);
    let mut buf = [0u8; 1024];
    for i in 0..count {
        let due = start + Duration::from_micros(i as u64 * 1_000_000 / rate);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        let body = format!(
            "{{\"emitter\":\"bench\",\"type\":1,\"timestamp\":{},\"session_id\":{},\"event\":{{\"name\":\"created\"}}}}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros(),
            i + 1
        );
        let req = format!(
            "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let t = Instant::now();
        if s.write_all(req.as_bytes()).is_err() {
            s = TcpStream::connect(http).unwrap();
            s.write_all(req.as_bytes()).unwrap();
        }
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        times.push(t.elapsed().as_micros() as u64);
    }
    times
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p) as usize]
}

fn connect_from(ip: [u8; 4], to: SocketAddr) -> Option<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    s.bind(&SocketAddr::from((ip, 0)).into()).ok()?;
    s.connect(&to.into()).ok()?;
    Some(s.into())
}

fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn slowloris() {
    let (to, _) = receiver();
    let (mut agent, http) = start_agent(to, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let mut conns: Vec<TcpStream> = (0..2000)
        .filter_map(|i| connect_from([127, 0, 0, 2 + (i % 8) as u8], http))
        .collect();
    let opened = conns.len();
    let st = stop.clone();
    let trickle = std::thread::spawn(move || {
        for c in &mut conns {
            let _ = c.write_all(b"POST / HTTP/1.1\r\n");
        }
        while !st.load(Relaxed) {
            for c in &mut conns {
                let _ = c.write_all(b"X");
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut t = janus(http, 8000, 1000);
    stop.store(true, Relaxed);
    trickle.join().unwrap();
    println!(
        "slowloris: {opened} slow connections open; 8,000 good 1-event POSTs at 1,000/s: answer p50 {} µs, p99 {} µs, max {} µs",
        pct(&mut t, 0.5),
        pct(&mut t, 0.99),
        pct(&mut t, 1.0)
    );
    let _ = agent.kill();
}

fn bomb() -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..1024 {
        e.write_all(&chunk).unwrap();
    }
    e.finish().unwrap()
}

fn memory() {
    raise_fd_limit();
    let (to, got) = receiver();
    // The default cap (4,096 connections per input) would refuse most of the 10,000 idle
    // connections; raised here so that the agent holds them all.
    let budget = std::env::var("BODY_BUDGET").unwrap_or_else(|_| "33554432".into());
    let (mut agent, http) = start_agent(
        to,
        &["--max-connections", "16384", "--body-budget-bytes", &budget],
    );
    let pid = agent.id();
    let base = rss_kib(pid, "VmRSS:");
    let peak = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (p2, s2) = (peak.clone(), stop.clone());
    let sampler = std::thread::spawn(move || {
        while !s2.load(Relaxed) {
            p2.fetch_max(rss_kib(pid, "VmRSS:"), Relaxed);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    // 10,000 idle connections from 127.0.0.10–29 (500 each, under the per-address cap).
    let idle: Vec<TcpStream> = (0..10_000)
        .filter_map(|i| connect_from([127, 0, 0, 10 + (i % 20) as u8], http))
        .collect();
    let bomb = Arc::new(bomb());
    let mut attackers = Vec::new();
    for i in 0..16 {
        let b = bomb.clone();
        attackers.push(std::thread::spawn(move || {
            let Some(mut s) = connect_from([127, 0, 1, 1 + i], http) else { return 0 };
            let head = format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                b.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&b);
            let mut r = [0u8; 64];
            let n = s.read(&mut r).unwrap_or(0);
            String::from_utf8_lossy(&r[..n]).split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0u16)
        }));
    }
    for i in 0..8 {
        attackers.push(std::thread::spawn(move || {
            let Some(mut s) = connect_from([127, 0, 2, 1 + i], http) else {
                return 0;
            };
            let _ = s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n");
            let chunk = vec![b'['; 1 << 20];
            for _ in 0..100 {
                if s.write_all(&chunk).is_err() {
                    break;
                }
            }
            let mut r = [0u8; 64];
            let n = s.read(&mut r).unwrap_or(0);
            String::from_utf8_lossy(&r[..n])
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0u16)
        }));
    }
    let mut t = janus(http, 5000, 1000);
    let statuses: Vec<u16> = attackers.into_iter().map(|a| a.join().unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.load(Relaxed) < 5000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Relaxed);
    sampler.join().unwrap();
    let hwm = rss_kib(pid, "VmHWM:");
    println!(
        "memory: {} idle connections, 16 gzip bombs and 8 × 100 MB bodies (answers {:?}); 5,000 good POSTs: {} arrived, answer p99 {} µs; agent RSS {} MiB at start, peak {} MiB (VmHWM {} MiB)",
        idle.len(),
        statuses,
        got.load(Relaxed),
        pct(&mut t, 0.99),
        base / 1024,
        peak.load(Relaxed) / 1024,
        hwm / 1024
    );
    drop(idle);
    let _ = agent.kill();
}

/// A WebSocket peer that sends 1,000,000 pings (126 MB) and never reads the pongs; the
/// agent's RSS is sampled meanwhile.
fn pingflood() {
    let (to, _) = receiver();
    let ws_port = free_port();
    let ws = format!("127.0.0.1:{ws_port}");
    let (mut agent, _) = start_agent(to, &["--ws", &ws]);
    let pid = agent.id();
    let base = rss_kib(pid, "VmRSS:");
    let mut s = TcpStream::connect(&ws).unwrap();
    s.write_all(
        format!(
            "GET / HTTP/1.1\r\nHost: {ws}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: janus-event-handlers\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut b = [0u8; 1024];
    let n = s.read(&mut b).unwrap();
    assert!(
        b[..n].starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&b[..n])
    );
    // A masked ping of 120 bytes (mask 0: the payload goes as it is).
    let mut frame = vec![0x89u8, 0x80 | 120, 0, 0, 0, 0];
    frame.extend_from_slice(&[7u8; 120]);
    let batch: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 1000)
        .collect();
    let mut peak = base;
    let started = Instant::now();
    let mut sent = 0;
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 0..1000 {
        if s.write_all(&batch).is_err() {
            break;
        }
        sent += 1000;
        if i % 20 == 0 {
            peak = peak.max(rss_kib(pid, "VmRSS:"));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    peak = peak.max(rss_kib(pid, "VmRSS:"));
    println!(
        "pingflood: {sent} pings ({} MB) in {:.1} s, pongs never read: agent RSS {} MiB at start, peak {} MiB (VmHWM {} MiB)",
        sent * frame.len() / 1_000_000,
        started.elapsed().as_secs_f64(),
        base / 1024,
        peak / 1024,
        rss_kib(pid, "VmHWM:") / 1024
    );
    let _ = agent.kill();
}

fn main() {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |m: &str| only.is_empty() || only.iter().any(|o| o == m);
    if want("slowloris") {
        slowloris();
    }
    if want("memory") {
        memory();
    }
    if want("pingflood") {
        pingflood();
    }
}
