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
    let (n, got, cids) = post_mix_to_udp(heplink::config::DEFAULT_UDP_RATE).await;
    assert!(n > 700, "{n} events");
    assert_eq!(got.wait_for(n, 20).await, n, "every event arrives");
    // Nothing more either (each once), with the ids convert gives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut have = got.cids();
    have.sort();
    assert_eq!(have, cids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_unpaced_overflows_such_a_collector() {
    // The reason for the default: the same traffic unpaced bursts past the receiver's
    // buffer, and its kernel drops what does not fit.
    let (n, got, _) = post_mix_to_udp(0).await;
    let arrived = got.wait_for(n, 3).await;
    assert!(arrived < n, "unpaced, {arrived} of {n} arrived");
}
