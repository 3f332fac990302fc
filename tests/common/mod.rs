//! Helpers of the agent's integration tests: a HEP receiver (UDP or TCP) on loopback and
//! a minimal HTTP/1.1 client.

#![allow(dead_code)]

mod captures;
pub use captures::*;
pub mod brokers;
pub mod janus;
pub mod pki;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use heplink::proto::{decode, next_frame, Mode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a receiver got: each packet's correlation id and payload, in arrival order.
#[derive(Clone, Default)]
pub struct Received(pub Arc<Mutex<Vec<Packet>>>, pub Arc<Mutex<Vec<Packet>>>);

/// A received packet: correlation id and payload.
pub type Packet = (String, Vec<u8>);

impl Received {
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn cids(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(c, _)| c.clone())
            .collect()
    }

    pub fn payloads(&self) -> Vec<Vec<u8>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Records a packet as received (it must pass the strict decoder).
    pub fn push_raw(&self, packet: &[u8]) {
        self.push(packet)
    }

    fn push(&self, packet: &[u8]) {
        let p =
            decode(packet, Mode::Strict).expect("the agent sent a packet heplify-server rejects");
        let cid = String::from_utf8(p.correlation_id.unwrap_or_default().to_vec()).unwrap();
        let to = if is_derived(p.proto_type, p.payload.unwrap_or_default()) {
            &self.1
        } else {
            &self.0
        };
        to.lock()
            .unwrap()
            .push((cid, p.payload.unwrap_or_default().to_vec()));
    }

    /// The packets derived from events (QoS reports, HEP type 5 and 34, and verdict rows)
    /// received, kept apart from the event rows.
    pub fn qos(&self) -> Vec<Packet> {
        self.1.lock().unwrap().clone()
    }

    /// Waits until at least `n` packets arrived (or the deadline passes).
    pub async fn wait_for(&self, n: usize, secs: u64) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while self.len() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.len()
    }
}

/// A UDP HEP receiver on 127.0.0.1:0.
pub async fn udp_receiver() -> (SocketAddr, Received) {
    udp_receiver_at("127.0.0.1:0").await
}

/// A UDP HEP receiver bound to `addr`. It reads on a thread of its own (not a task of the
/// test's runtime, which the in-process agent may keep busy while it bursts) from a socket
/// with a large receive buffer ([`heplink::cmd::listen::udp_receive_socket`]), so the tests do
/// not depend on the host's `net.core.rmem_default`.
pub async fn udp_receiver_at(addr: &str) -> (SocketAddr, Received) {
    let (s, _) = heplink::cmd::listen::udp_receive_socket(addr.parse().unwrap()).unwrap();
    let addr = s.local_addr().unwrap();
    let r = Received::default();
    let r2 = r.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = s.recv(&mut buf) {
            r2.push(&buf[..n]);
        }
    });
    (addr, r)
}

/// A TCP HEP receiver on `addr` (127.0.0.1:0 for any port); returns its address, what it
/// got and its task (abort it to take the collector down).
pub async fn tcp_receiver(addr: &str, into: Received) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind(addr).await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        // Connections live in the set: aborting the receiver closes them all.
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let r = into.clone();
            conns.spawn(async move {
                let mut buf = BytesMut::with_capacity(1 << 16);
                loop {
                    match s.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            while let Some(f) = next_frame(&mut buf).expect("bad HEP framing") {
                                r.push(&f);
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, task)
}

/// One HTTP/1.1 POST on a new connection, as Janus's sample event handler does it.
/// Returns the status code and the body.
pub async fn post(addr: SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("POST /janus-events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    // The agent may answer (413) before reading the whole body: ignore write errors.
    let _ = s.write_all(body).await;
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp).await;
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// GET a path (metrics).
pub async fn get(addr: SocketAddr, path: &str) -> String {
    get_with_status(addr, path).await.1
}

/// `GET path`: the status code and the body.
pub async fn get_with_status(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (code, body.unwrap_or_default())
}

/// A metric's value from the Prometheus text (`name{labels}` exactly as rendered).
pub fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no series {series}"))
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback TCP port bound but not listening, held until the guard drops: connecting to
/// it is refused (a collector that is away), and no other test's listener can take it
/// meanwhile, as could happen to a [`free_port`].
pub fn reserved_port() -> (u16, std::os::fd::OwnedFd) {
    use nix::sys::socket::{
        bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(127, 0, 0, 1, 0),
    )
    .unwrap();
    let port = getsockname::<SockaddrIn>(std::os::fd::AsRawFd::as_raw_fd(&fd))
        .unwrap()
        .port();
    (port, fd)
}

/// The correlation ids `convert` gives the fixture (the reference for what `serve` sends).
pub fn expected_cids(scenario: &str) -> Vec<String> {
    let mut lines = fixture_bodies(scenario).into_iter().map(Ok);
    let c = heplink::capture::jsonl::convert(&mut lines, Default::default(), Default::default())
        .unwrap();
    let mut v: Vec<String> = c
        .packets
        .iter()
        .zip(c.cids)
        .filter(|((_, b), _)| {
            let p = heplink::proto::decode(b, Mode::Lenient).unwrap();
            !is_derived(p.proto_type, p.payload.unwrap_or_default())
        })
        .map(|(_, cid)| cid)
        .collect();
    v.sort();
    v
}

/// How many derived packets (QoS reports of its media stats, verdicts of its
/// PeerConnections and rooms) `convert` (and so `serve`) makes of a scenario.
pub fn expected_qos(scenario: &str) -> usize {
    count_converted(scenario, is_derived)
}

/// How many of the packets `convert` makes of a scenario pass `keep` (proto type, payload).
fn count_converted(
    scenario: &str,
    keep: fn(Option<heplink::proto::ProtoType>, &[u8]) -> bool,
) -> usize {
    let mut lines = fixture_bodies(scenario).into_iter().map(Ok);
    let c = heplink::capture::jsonl::convert(&mut lines, Default::default(), Default::default())
        .unwrap();
    c.packets
        .iter()
        .filter(|(_, b)| {
            let p = heplink::proto::decode(b, Mode::Lenient).unwrap();
            keep(p.proto_type, p.payload.unwrap_or_default())
        })
        .count()
}

impl Received {
    /// Waits for `n` packets (up to `secs`) and checks that they are exactly the fixture's
    /// events with the ids `convert` gives them (in any order).
    pub async fn assert_scenario(&self, scenario: &str, n: usize, secs: u64) {
        assert_eq!(self.wait_for(n, secs).await, n);
        let mut cids = self.cids();
        cids.sort();
        assert_eq!(cids, expected_cids(scenario));
    }
}

/// (cid, type, subtype, timestamp) of each first arrival, and of what convert makes.
pub type Key = (String, Option<u64>, Option<u64>, Option<u64>);

/// An event's key: its correlation id, type, subtype and timestamp (payloads differ in
/// `held_us`), or for SIP a hash of its bytes.
pub fn key(cid: &str, p: &[u8]) -> Key {
    match serde_json::from_slice::<serde_json::Value>(heplink::map::log_json(p)) {
        Ok(v) => {
            let e = &v["event"];
            (
                cid.to_string(),
                e["type"].as_u64(),
                e["subtype"].as_u64(),
                e["timestamp"].as_u64(),
            )
        }
        // A SIP message: identified by its bytes.
        Err(_) => {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            p.hash(&mut h);
            (cid.to_string(), Some(1), None, Some(h.finish()))
        }
    }
}

/// The keys of the packets received, each at its first arrival.
pub fn firsts(got: &Received) -> Vec<Key> {
    let mut seen = std::collections::HashSet::new();
    got.0
        .lock()
        .unwrap()
        .iter()
        .map(|(c, p)| key(c, p))
        .filter(|k| seen.insert(k.clone()))
        .collect()
}

/// The keys of what `convert` makes of the bodies: what `serve` must send.
pub fn converted(bodies: &[String]) -> Vec<Key> {
    let mut lines = bodies.iter().map(|b| Ok(b.clone()));
    let c = heplink::capture::jsonl::convert(&mut lines, Default::default(), Default::default())
        .unwrap();
    c.packets
        .iter()
        .zip(&c.cids)
        .filter_map(|((_, b), cid)| {
            let p = heplink::proto::decode(b, heplink::proto::Mode::Strict).unwrap();
            (!is_derived(p.proto_type, p.payload.unwrap())).then(|| key(cid, p.payload.unwrap()))
        })
        .collect()
}

/// Whether a packet is a QoS report (RTCP JSON, type 5, or rtpagent, type 34) rather than
/// an event row.
pub fn is_qos(t: Option<heplink::proto::ProtoType>) -> bool {
    matches!(t.map(|t| t.0), Some(5 | 34))
}

/// How many verdicts (PeerConnections and rooms) `convert` makes of a scenario.
pub fn expected_verdicts(scenario: &str) -> usize {
    count_converted(scenario, |t, payload| {
        t.map(|t| t.0) == Some(100) && is_verdict(payload)
    })
}

/// Whether a LOG payload is a verdict (a PeerConnection's or a room's summary).
pub fn is_verdict(payload: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(heplink::map::log_json(payload))
        .is_ok_and(|v| v.get("summary").is_some() || v.get("room_summary").is_some())
}

/// Whether a packet is derived from an event (a QoS report or a verdict) rather than the
/// event's own row.
pub fn is_derived(t: Option<heplink::proto::ProtoType>, payload: &[u8]) -> bool {
    is_qos(t) || (t.map(|t| t.0) == Some(100) && is_verdict(payload))
}

/// The `heplink` binary under test.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_heplink"))
}

/// The packets of a pcap or pcapng file (none if it does not exist or does not read).
pub fn pcap_packets(path: &std::path::Path) -> Vec<Vec<u8>> {
    use heplink::capture::{read_capture, CaptureEvent};
    let mut v = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = read_capture(f, &mut |ev| {
            if let CaptureEvent::Packet { bytes, .. } = ev {
                v.push(bytes.to_vec());
            }
        });
    }
    v
}

/// `heplink convert JSONL -o OUT`; returns the packets written.
pub fn convert_to_pcap(jsonl: &std::path::Path, out: &std::path::Path) -> Vec<Vec<u8>> {
    assert!(bin()
        .arg("convert")
        .arg(jsonl)
        .arg("-o")
        .arg(out)
        .status()
        .unwrap()
        .success());
    pcap_packets(out)
}

/// An agent configuration on loopback (HTTP, WebSocket and metrics on ephemeral ports)
/// sending to `outputs`.
pub fn agent_config(outputs: &[String]) -> heplink::config::Config {
    let mut c = heplink::config::Config::default();
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    c.ws.listen = "127.0.0.1:0".parse().unwrap();
    c.metrics.listen = "127.0.0.1:0".parse().unwrap();
    c.output = outputs
        .iter()
        .map(|u| heplink::config::Output::new(u.parse().expect("a collector URL")))
        .collect();
    c
}

/// Starts an agent in this runtime; dropping or sending on the sender stops it.
pub async fn start_agent(
    c: heplink::config::Config,
) -> (heplink::agent::Agent, tokio::sync::oneshot::Sender<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let a = heplink::agent::start(c, async move {
        let _ = rx.await;
    })
    .await
    .unwrap();
    (a, tx)
}

/// Waits up to `within` for a child that was asked to stop, then kills it.
pub fn wait_or_kill(child: &mut std::process::Child, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Takes a TCP receiver down (whatever it has unread is answered with a reset) and
/// brings it back on the same address, leaving the sender time to notice.
pub async fn restart_tcp_receiver(
    task: &mut tokio::task::JoinHandle<()>,
    addr: SocketAddr,
    got: &Received,
) {
    task.abort();
    let _ = (&mut *task).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    *task = tcp_receiver(&addr.to_string(), got.clone()).await.1;
    // The sender waits up to 200 ms for a reset before it counts a write as read.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Whether `cmd` is an executable on `PATH`.
pub fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            std::fs::metadata(d.join(cmd)).is_ok_and(|m| {
                m.is_file() && {
                    use std::os::unix::fs::PermissionsExt;
                    m.permissions().mode() & 0o111 != 0
                }
            })
        })
    })
}

/// Whether the real peers a test needs are here. Each of `needs` is (what, present, how
/// to install it). When one is missing the test is skipped with a printed reason, so plain
/// `cargo test` passes on a machine without them; with `HEPLINK_REQUIRE_PEERS` set (as
/// `.ci/run` does) a missing peer fails the test instead, so CI proves them.
pub fn peers(test: &str, needs: &[(&str, bool, &str)]) -> bool {
    let missing: Vec<String> = needs
        .iter()
        .filter(|(_, present, _)| !present)
        .map(|(what, _, how)| format!("{what} ({how})"))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: needs {}", missing.join(", "));
    if std::env::var_os("HEPLINK_REQUIRE_PEERS").is_some() {
        panic!("{msg}; HEPLINK_REQUIRE_PEERS is set, so this is a failure");
    }
    eprintln!("SKIPPED {msg}");
    false
}
