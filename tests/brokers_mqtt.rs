//! The MQTT input with real parts: Debian's `mosquitto` on loopback, the real Janus (1.1.2,
//! then 1.4.1) publishing through its `mqttevh`, and the agent subscribed.
//!
//! - Janus's events through MQTT (per-type topics, then one topic) arrive exactly once,
//!   with the correlation ids the HTTP input gives the same events (sampleevh of the
//!   same Janus, to a second agent).
//! - The agent SIGKILLed mid-stream with QoS 1 and a persistent session: what was
//!   published while it was down, and what it had taken but not acknowledged, arrives
//!   after its restart (duplicates counted, nothing lost).
//! - The broker restarted mid-stream: the agent reconnects, and nothing is lost.
//!
//! Needs `mosquitto`, `janus` and Janus 1.4.1 (set up by `.ci/run`).

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::brokers::Mosquitto;
use common::janus::{on_each_version_async, same_as_http, JanusBin};
use common::*;

fn mosquitto() -> (&'static str, bool, &'static str) {
    (
        "mosquitto",
        on_path("mosquitto"),
        "apt-get install mosquitto",
    )
}

fn have(test: &str) -> bool {
    peers(test, &[mosquitto()])
}

fn mqttevh(port: u16, addevent: bool) -> String {
    format!(
        "general: {{ enabled = true events = \"all\" json = \"compact\" url = \"tcp://127.0.0.1:{port}\" \
         client_id = \"janus-evh\" mqtt_version = \"3.1.1\" qos = 1 topic = \"/janus/events\" \
         addevent = {addevent} keep_alive_interval = 20 cleansession = 0 }}\n"
    )
}

async fn janus_through_mqtt(jb: JanusBin, addevent: bool) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let (collector, via_mqtt) = udp_receiver().await;
    let mut cfg = agent_config(&[format!("udp://{collector}")]);
    cfg.http.enabled = false;
    cfg.ws.enabled = false;
    cfg.mqtt.url = broker.url();
    cfg.mqtt.client_id = format!("heplink-test-{addevent}");
    let (agent, stop) = start_agent(cfg).await;
    let m = agent.metrics.clone();
    same_as_http(
        &jb,
        dir.path(),
        ("mqttevh", mqttevh(broker.port, addevent)),
        (vec![(agent, stop)], via_mqtt),
        heplink::metrics::Input::Mqtt,
    )
    .await;
    let b = &m.brokers[0];
    use std::sync::atomic::Ordering::Relaxed;
    assert!(
        b.acks.load(Relaxed) >= m.events_total(heplink::metrics::Input::Mqtt),
        "every event acknowledged"
    );
    assert_eq!(b.nacks.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_janus_mqttevh_per_type_topics_same_events_and_ids_as_http() {
    on_each_version_async("real_janus_mqttevh_per_type_topics", &[mosquitto()], |jb| {
        janus_through_mqtt(jb, true)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_janus_mqttevh_one_topic_same_events_and_ids_as_http() {
    on_each_version_async("real_janus_mqttevh_one_topic", &[mosquitto()], |jb| {
        janus_through_mqtt(jb, false)
    })
    .await;
}

/// Session-created events with distinct session ids: each gives one packet of its own
/// correlation id (once the hold for a handle's binding ran out: the tests shorten it).
fn event(i: u64) -> String {
    format!(
        r#"{{"emitter":"mq","type":1,"timestamp":{},"session_id":{},"event":{{"name":"created","transport":{{"transport":"janus.transport.http","id":"t{i}"}}}}}}"#,
        1_700_000_000_000_000u64 + i,
        1_000_000 + i
    )
}

/// Publishes events `range` with QoS 1 at `per_s`, from a persistent-session publisher
/// that resends what the broker did not acknowledge after a reconnection.
async fn publish(port: u16, range: std::ops::Range<u64>, per_s: u64, id: &str) {
    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    o.set_clean_session(false)
        .set_keep_alive(Duration::from_secs(5));
    let (client, mut el) = rumqttc::AsyncClient::new(o, 100_000);
    let n = range.end - range.start;
    let pump = tokio::spawn(async move {
        let mut acked = 0;
        while acked < n {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let gap = Duration::from_micros(1_000_000 / per_s);
    for i in range {
        client
            .publish(
                "/janus/events/sessions",
                rumqttc::QoS::AtLeastOnce,
                false,
                event(i),
            )
            .await
            .unwrap();
        tokio::time::sleep(gap).await;
    }
    tokio::time::timeout(Duration::from_secs(60), pump)
        .await
        .expect("the broker acknowledged every publish")
        .unwrap();
}

fn session_ids(got: &Received) -> (BTreeSet<String>, usize) {
    let cids = got.cids();
    let n = cids.len();
    (cids.into_iter().collect(), n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_sigkilled_with_qos1_and_a_persistent_session_loses_nothing() {
    if !have("agent_sigkilled_with_qos1") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let (collector, got) = udp_receiver().await;
    let agent = |log: &str| {
        bin()
            .args(["serve", "--http", "off", "--ws", "off", "--metrics", "off"])
            .args(["--mqtt", &broker.url(), "--mqtt-client-id", "heplink-kill"])
            .args(["--to", &format!("udp://{collector}")])
            .args(["--hold-ms", "200"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(log)).unwrap())
            .spawn()
            .unwrap()
    };
    let mut a = agent("agent1.log");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let port = broker.port;
    let publisher = tokio::spawn(async move { publish(port, 0..3000, 1000, "pub-kill").await });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Mid-stream: SIGKILL, then 1 s away while the publisher goes on.
    let _ = Command::new("kill")
        .args(["-KILL", &a.id().to_string()])
        .status();
    let _ = a.wait();
    let before = got.len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut b = agent("agent2.log");
    publisher.await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while session_ids(&got).0.len() < 3000 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &b.id().to_string()])
        .status();
    wait_or_kill(&mut b, Duration::from_secs(10));
    let (ids, n) = session_ids(&got);
    assert!(
        before > 100 && before < 3000,
        "killed mid-stream: {before} before; log: {}",
        std::fs::read_to_string(dir.path().join("agent1.log")).unwrap_or_default()
    );
    assert_eq!(
        ids.len(),
        3000,
        "every event arrives after the restart; logs: {}",
        std::fs::read_to_string(dir.path().join("agent2.log")).unwrap_or_default()
    );
    eprintln!(
        "SIGKILL mid-stream: 3000 events, {} packets, {} duplicates",
        n,
        n - 3000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarted_mid_stream_the_agent_reconnects_and_nothing_is_lost() {
    if !have("broker_restarted_mid_stream") {
        return;
    }
    use std::sync::atomic::Ordering::Relaxed;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(dir.path());
    let (collector, got) = udp_receiver().await;
    let mut cfg = agent_config(&[format!("udp://{collector}")]);
    cfg.http.enabled = false;
    cfg.ws.enabled = false;
    cfg.mqtt.url = broker.url();
    cfg.mqtt.version = heplink::config::MqttVersion::V5;
    cfg.mqtt.client_id = "heplink-restart".into();
    cfg.correlation.hold_ms = 200;
    let (agent, stop) = start_agent(cfg).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let port = broker.port;
    let publisher = tokio::spawn(async move { publish(port, 0..2000, 1000, "pub-restart").await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    // While the broker is down, /health says so (503, the input down).
    tokio::task::block_in_place(|| broker.stop());
    let metrics = agent.bound.metrics.unwrap();
    let down_deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut down = common::get_with_status(metrics, "/health").await;
    while down.0 != 503 && tokio::time::Instant::now() < down_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        down = common::get_with_status(metrics, "/health").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| broker.up());
    publisher.await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while session_ids(&got).0.len() < 2000 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = agent.metrics.clone();
    let health = get(agent.bound.metrics.unwrap(), "/health").await;
    stop.send(()).unwrap();
    agent.wait().await.unwrap();
    let (ids, n) = session_ids(&got);
    let b = &m.brokers[0];
    assert_eq!(ids.len(), 2000, "nothing lost across the broker's restart");
    assert!(b.connections.load(Relaxed) >= 2, "reconnected");
    assert!(health.contains("mqtt up"), "{health}");
    assert_eq!(down.0, 503, "/health while the broker is down: {}", down.1);
    assert!(down.1.contains("mqtt down"), "{}", down.1);
    eprintln!(
        "broker restart: 2000 events, {n} packets, {} redelivered",
        b.redeliveries.load(Relaxed)
    );
}

/// Figures for docs/performance.md (run with `--release --ignored --nocapture`): the events per
/// second one agent takes from single-event QoS 1 messages the broker kept for its
/// persistent session while it was away, into a TCP collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test --release --test brokers_mqtt -- --ignored --nocapture"]
async fn measure_events_per_second_from_single_event_messages() {
    if !have("measure_mqtt") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let got = Received::default();
    let (collector, _t) = tcp_receiver("127.0.0.1:0", got.clone()).await;
    let mut cfg = agent_config(&[format!("tcp://{collector}")]);
    cfg.http.enabled = false;
    cfg.ws.enabled = false;
    cfg.mqtt.url = broker.url();
    cfg.mqtt.client_id = "heplink-measure".into();
    // The first run makes the persistent session and its subscription.
    let (a, stop) = start_agent(cfg.clone()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    let n = 50_000u64;
    let core = |i: u64| {
        format!(
            r#"{{"emitter":"mq","type":256,"timestamp":{},"event":{{"status":"update","info":{{"n":{i}}}}}}}"#,
            1_700_000_000_000_000u64 + i
        )
    };
    let mut o = rumqttc::MqttOptions::new("pub-measure", "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(5)).set_inflight(1000);
    let (client, mut el) = rumqttc::AsyncClient::new(o, 100_000);
    let pump = tokio::spawn(async move {
        let mut acked = 0;
        while acked < n {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) = el.poll().await {
                acked += 1;
            }
        }
    });
    for i in 0..n {
        client
            .publish(
                "/janus/events/core",
                rumqttc::QoS::AtLeastOnce,
                false,
                core(i),
            )
            .await
            .unwrap();
    }
    pump.await.unwrap();
    let start = std::time::Instant::now();
    let (a, stop) = start_agent(cfg).await;
    got.wait_for(n as usize, 120).await;
    let took = start.elapsed();
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    assert_eq!(got.len(), n as usize);
    eprintln!(
        "MQTT: {n} single-event messages taken in {:.2} s: {:.0} events/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}

/// MQTT scale-out as docs/brokers.md recommends it: each Janus publishes under a topic of its
/// own, each agent subscribes to its Janus instances' topics only (one at QoS 1, one at
/// QoS 0). Every event reaches the one agent assigned to its Janus, and none reaches
/// another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_topic_assignment_gives_each_agent_its_own_janus_instances() {
    if !have("static_topic_assignment") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let mut got = Vec::new();
    let mut agents = Vec::new();
    for n in 1..=2 {
        let (collector, g) = udp_receiver().await;
        let mut cfg = agent_config(&[format!("udp://{collector}")]);
        cfg.http.enabled = false;
        cfg.ws.enabled = false;
        cfg.mqtt.url = broker.url();
        cfg.mqtt.client_id = format!("heplink-{n}");
        cfg.mqtt.topics = vec![format!("/janus/events/janus-{n}/#")];
        // The second at QoS 0 (at most once): nothing to acknowledge.
        cfg.mqtt.qos = if n == 1 { 1 } else { 0 };
        cfg.correlation.hold_ms = 200;
        agents.push(start_agent(cfg).await);
        got.push(g);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut o = rumqttc::MqttOptions::new("pub-static", "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut el) = rumqttc::AsyncClient::new(o, 10_000);
    let pump = tokio::spawn(async move {
        let mut acked = 0;
        while acked < 200 {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) = el.poll().await {
                acked += 1;
            }
        }
    });
    for i in 0..200u64 {
        let n = 1 + i % 2;
        let ev = event(i).replace("\"emitter\":\"mq\"", &format!("\"emitter\":\"janus-{n}\""));
        client
            .publish(
                format!("/janus/events/janus-{n}/sessions"),
                rumqttc::QoS::AtLeastOnce,
                false,
                ev,
            )
            .await
            .unwrap();
    }
    pump.await.unwrap();
    for g in &got {
        g.wait_for(100, 10).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (a, stop) in agents {
        stop.send(()).unwrap();
        a.wait().await.unwrap();
    }
    for (n, g) in got.iter().enumerate() {
        let (ids, count) = session_ids(g);
        assert_eq!(ids.len(), 100, "agent {}: its Janus's events", n + 1);
        assert_eq!(count, 100, "once each");
        let mine = format!("janus-{}:", n + 1);
        assert!(
            ids.iter().all(|c| c.starts_with(&mine)),
            "agent {}: {ids:?}",
            n + 1
        );
    }
}

/// Figures for docs/performance.md (`--release --ignored --nocapture`): end-to-end latency, from
/// the publish to the HEP packet at a TCP collector, at 10,000 single-event QoS 1
/// messages/s, for 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test --release --test brokers_mqtt -- --ignored --nocapture"]
async fn measure_latency_at_10k_events_per_second() {
    if !have("measure_mqtt_latency") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let (collector, lat) = common::brokers::latency_receiver().await;
    let mut cfg = agent_config(&[format!("tcp://{collector}")]);
    cfg.http.enabled = false;
    cfg.ws.enabled = false;
    cfg.mqtt.url = broker.url();
    cfg.mqtt.client_id = "heplink-latency".into();
    let (a, stop) = start_agent(cfg).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut o = rumqttc::MqttOptions::new("pub-latency", "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(5)).set_inflight(5000);
    let (client, mut el) = rumqttc::AsyncClient::new(o, 100_000);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for m in 0..500u64 {
        tick.tick().await;
        let now = heplink::time::now_us();
        for i in 0..100 {
            let ev = format!(
                r#"{{"emitter":"lat","type":256,"timestamp":{now},"event":{{"status":"update","info":{{"n":{}}}}}}}"#,
                m * 100 + i
            );
            client
                .publish("/janus/events/core", rumqttc::QoS::AtLeastOnce, false, ev)
                .await
                .unwrap();
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    let mut v = lat.lock().unwrap().clone();
    assert_eq!(v.len(), 50_000);
    let (p50, p99) = common::brokers::p50_p99(&mut v);
    eprintln!("MQTT at 10,000 events/s: latency p50 {p50} µs, p99 {p99} µs");
}

/// `mqtts://`: the agent verifies the broker's certificate against the CA it is given
/// (`mqtt.tls`, as for collectors) and takes what is published on the plain listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_the_brokers_ca() {
    if !have("mqtts_with_the_brokers_ca") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, issuer) = common::pki::make_ca(dir.path(), "mqtt-ca");
    let (cert, key) = common::pki::leaf(dir.path(), "broker", &["localhost", "127.0.0.1"], &issuer);
    let tls_port = free_port();
    let broker = Mosquitto::start_with(
        dir.path(),
        &format!(
            "listener {tls_port} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
            cert.display(),
            key.display()
        ),
    );
    common::brokers::wait_port(
        tls_port,
        Duration::from_secs(5),
        "mosquitto TLS",
        dir.path(),
    );
    let (collector, got) = udp_receiver().await;
    let mut cfg = agent_config(&[format!("udp://{collector}")]);
    cfg.http.enabled = false;
    cfg.ws.enabled = false;
    cfg.mqtt.url = format!("mqtts://127.0.0.1:{tls_port}");
    cfg.mqtt.client_id = "heplink-tls".into();
    cfg.mqtt.tls.ca_file = Some(ca);
    cfg.correlation.hold_ms = 200;
    let (a, stop) = start_agent(cfg).await;
    for _ in 0..100 {
        if a.metrics.brokers[0]
            .connected
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = get(a.bound.metrics.unwrap(), "/health").await;
    assert!(health.contains("mqtt up"), "connected over TLS: {health}");
    publish(broker.port, 0..50, 500, "pub-tls").await;
    got.wait_for(50, 10).await;
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    assert_eq!(session_ids(&got).0.len(), 50);
}
