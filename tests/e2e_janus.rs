//! End to end with the real Janus (started here on loopback, once per version: Debian's
//! `janus` 1.1.2 and 1.4.1 built by `.ci/build-janus`):
//! its sample HTTP event handler and its WebSocket event handler each deliver to a
//! `heplink serve` agent, while sessions are driven through Janus's HTTP API (echotest,
//! and a VideoRoom created, joined and left). Two independent delivery paths of the same
//! Janus must give the same events, each exactly once, with valid HEP and the correlation
//! ids of the rules. Run once with grouping off, once with grouping, gzip and Basic auth
//! (and sampleevh's `json` left to its default: indented in 1.1.2, compact in 1.4.1).
//!
//! Needs the `janus` package and Janus 1.4.1 (both set up by `.ci/run`).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::janus::{drive, events_of, hour_of, on_each_version_async, Janus, JanusBin};
use common::*;
use serde_json::Value;

async fn scenario(
    jb: JanusBin,
    sampleevh: impl Fn(SocketAddr) -> String,
    wsevh: impl Fn(SocketAddr) -> String,
    auth: Option<(&str, &str)>,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut agents = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..2 {
        let (collector, got) = udp_receiver().await;
        let mut c = agent_config(&[format!("udp://{collector}")]);
        if let Some((u, p)) = auth {
            c.http.username = u.into();
            c.http.password = p.into();
            c.ws.token = "t0ken".into();
        }
        agents.push(start_agent(c).await);
        receivers.push(got);
    }
    let http = agents[0].0.bound.http.unwrap();
    let ws = agents[1].0.bound.ws.unwrap();
    let (sample_cfg, ws_cfg) = (sampleevh(http), wsevh(ws));
    // Janus 1.4.1's core reports its status every 15 s (type 256, subtype 1 like
    // `started`, `"status": "update"`): its run lasts long enough for one.
    let update = jb.version == "1.4.1";
    let ids = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let j = Janus::start(
            &jb,
            dir.path(),
            &[
                ("sampleevh", sample_cfg.as_str()),
                ("wsevh", ws_cfg.as_str()),
            ],
        );
        // wsevh connects at start-up: give it a moment.
        std::thread::sleep(Duration::from_millis(500));
        let ids = drive(&j);
        std::thread::sleep(Duration::from_millis(1500));
        if update {
            std::thread::sleep(Duration::from_secs(17).saturating_sub(started.elapsed()));
        }
        j.stop();
        ids
    })
    .await
    .unwrap();
    let (s1, h1, s2, h2) = ids;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut metrics = Vec::new();
    for (a, tx) in agents {
        metrics.push(a.metrics.clone());
        tx.send(()).unwrap();
        a.wait().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (http_keys, http_events) = events_of(&receivers[0]);
    let (ws_keys, ws_events) = events_of(&receivers[1]);
    assert!(
        http_events.len() > 20,
        "{} events over HTTP",
        http_events.len()
    );
    // Exactly once: no event twice on either path, and both paths carry the same events.
    assert!(
        http_keys.values().all(|n| *n == 1),
        "duplicates over HTTP: {http_keys:?}"
    );
    assert!(
        ws_keys.values().all(|n| *n == 1),
        "duplicates over WebSocket"
    );
    assert_eq!(
        http_keys, ws_keys,
        "the two event handlers delivered different events"
    );
    assert_eq!(
        metrics[0].events_total(heplink::metrics::Input::Http) as usize,
        http_events.len()
    );
    assert_eq!(
        metrics[1].events_total(heplink::metrics::Input::Ws) as usize,
        ws_events.len()
    );

    for (cid, ev) in &http_events {
        let (sid, hid) = (ev["session_id"].as_u64(), ev["handle_id"].as_u64());
        let room_event = ev["event"]["data"]["room"] == 777;
        let want = if hid == Some(h2) || sid == Some(s2) || room_event {
            "heplink-e2e:videoroom:777".to_string()
        } else if hid == Some(h1) || sid == Some(s1) {
            format!("heplink-e2e:session:{s1}")
        } else if ev["type"] == 256 {
            format!("heplink-e2e:core:{}", hour_of(ev))
        } else if ev["type"] == 128 {
            format!("heplink-e2e:transport:http:{}", hour_of(ev))
        } else {
            panic!("unexpected event {ev}")
        };
        assert_eq!(cid, &want, "{ev}");
    }
    // The expected happenings are there.
    let has = |f: &dyn Fn(&Value) -> bool| http_events.iter().any(|(_, e)| f(e));
    assert!(has(
        &|e| e["type"] == 256 && e["event"]["status"] == "started"
    ));
    assert!(has(
        &|e| e["type"] == 256 && e["event"]["status"] == "shutdown"
    ));
    if update {
        // under the core's id (checked above), as `started` is
        assert!(
            has(&|e| e["type"] == 256
                && e["subtype"] == 1
                && e["event"]["status"] == "update"
                && e["event"]["info"]["sessions"].is_u64()),
            "a core status update"
        );
    }
    assert!(has(&|e| e["type"] == 2
        && e["handle_id"] == h1
        && e["event"]["name"] == "detached"));
    for name in ["created", "joined", "destroyed"] {
        assert!(
            has(&|e| e["type"] == 64 && e["event"]["data"]["event"] == name),
            "videoroom {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_janus_grouping_off() {
    on_each_version_async("real_janus_grouping_off", &[], |jb| {
        scenario(
            jb,
            |http| format!("general: {{ enabled = true events = \"all\" grouping = false json = \"compact\" backend = \"http://{http}/janus-events\" }}\n"),
            |ws| format!("general: {{ enabled = true events = \"all\" grouping = false json = \"compact\" backend = \"ws://{ws}/janus-ws-events\" }}\n"),
            None,
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_janus_grouping_gzip_and_basic_auth() {
    on_each_version_async("real_janus_grouping_gzip_and_basic_auth", &[], |jb| {
        scenario(
            jb,
            // `json` unset: Janus's default (1.1.2 indents, 1.4.1 is compact).
            |http| format!("general: {{ enabled = true events = \"all\" grouping = true compress = true compression = 6 backend = \"http://{http}/janus-events\" backend_user = \"janus\" backend_pwd = \"s3cret\" }}\n"),
            // wsevh cannot send Basic auth (userinfo in its backend URL is not sent): it
            // authenticates with the token in the URL's query.
            |ws| format!("general: {{ enabled = true events = \"all\" grouping = true json = \"compact\" backend = \"ws://{ws}/?token=t0ken\" }}\n"),
            Some(("janus", "s3cret")),
        )
    })
    .await;
}
