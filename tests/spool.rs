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
        if metric(&text, "heplink_packets_built_total") == 87
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
