//! The AMQP input with real parts: Debian's `rabbitmq-server` on loopback (a node of the
//! test's own), the real Janus (1.1.2, then 1.4.1) publishing through its `rabbitmqevh`, and the agent
//! consuming a durable queue it declares.
//!
//! - Janus's events (grouped arrays through a fanout exchange; single objects straight to
//!   the queue) arrive exactly once, with the correlation ids the HTTP input gives them.
//! - A malformed message is rejected without requeue and counted; the good ones around it
//!   go through, and the queue ends empty.
//! - The broker restarted mid-stream: the agent reconnects and nothing is lost.
//! - Stopping with nothing pending does not wait out the drain time.
//!
//! One RabbitMQ node serves every test of this file (it takes seconds to start), each
//! test on queues and exchanges of its own. Needs `rabbitmq-server`, `janus` and Janus
//! 1.4.1 (set up by `.ci/run`).

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::brokers::{Rabbit, RABBIT_BIN};
use common::janus::{on_each_version_async, same_as_http, JanusBin};
use common::*;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};

fn rabbitmq() -> (&'static str, bool, &'static str) {
    (
        "rabbitmq-server",
        std::path::Path::new(&format!("{RABBIT_BIN}rabbitmq-server")).exists(),
        "apt-get install rabbitmq-server",
    )
}

fn have(test: &str) -> bool {
    peers(test, &[rabbitmq()])
}

/// The shared node, started by the first test that needs it (a static is never dropped:
/// its watchdog stops it when the test process is gone).
fn rabbit() -> &'static Mutex<Rabbit> {
    static R: OnceLock<Mutex<Rabbit>> = OnceLock::new();
    R.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        Mutex::new(Rabbit::start(&dir))
    })
}

/// The tests of this file one at a time: one restarts the shared node.
static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn url() -> String {
    rabbit().lock().unwrap().url()
}

async fn amqp_agent(
    queue: &str,
    exchange: &str,
) -> (
    heplink::agent::Agent,
    tokio::sync::oneshot::Sender<()>,
    Received,
) {
    let (collector, got) = udp_receiver().await;
    let mut cfg = agent_config(&[format!("udp://{collector}")]);
    cfg.http.enabled = false;
    cfg.ws.enabled = false;
    cfg.amqp.url = url();
    cfg.amqp.queue = queue.into();
    cfg.amqp.exchange = exchange.into();
    cfg.correlation.hold_ms = 300;
    let (a, stop) = start_agent(cfg).await;
    (a, stop, got)
}

fn rabbitmqevh(port: u16, grouping: bool, exchange: Option<&str>, route_key: &str) -> String {
    let ex = exchange.map_or(String::new(), |e| {
        format!("exchange = \"{e}\" exchange_type = \"fanout\" ")
    });
    format!(
        "general: {{ enabled = true events = \"all\" grouping = {grouping} json = \"compact\" \
         host = \"127.0.0.1\" port = {port} username = \"guest\" password = \"guest\" vhost = \"/\" \
         {ex}route_key = \"{route_key}\" declare_outgoing_queue = false heartbeat = 0 }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_janus_rabbitmqevh_grouped_through_an_exchange_same_as_http() {
    on_each_version_async("real_janus_rabbitmqevh_grouped", &[rabbitmq()], grouped).await;
}

async fn grouped(jb: JanusBin) {
    let _one = ONE.lock().await;
    let port = rabbit().lock().unwrap().port;
    let dir = tempfile::tempdir().unwrap();
    let (a, stop, got) = amqp_agent("hl-grouped", "janus-exchange").await;
    let m = a.metrics.clone();
    same_as_http(
        &jb,
        dir.path(),
        (
            "rabbitmqevh",
            rabbitmqevh(port, true, Some("janus-exchange"), "janus-events"),
        ),
        (vec![(a, stop)], got),
        heplink::metrics::Input::Amqp,
    )
    .await;
    let b = &m.brokers[1];
    assert!(b.messages.load(Relaxed) > 0);
    assert_eq!(
        b.acks.load(Relaxed),
        b.messages.load(Relaxed),
        "every message acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_janus_rabbitmqevh_single_events_to_the_queue_same_as_http() {
    on_each_version_async("real_janus_rabbitmqevh_single", &[rabbitmq()], single).await;
}

async fn single(jb: JanusBin) {
    let _one = ONE.lock().await;
    let port = rabbit().lock().unwrap().port;
    let dir = tempfile::tempdir().unwrap();
    let (a, stop, got) = amqp_agent("hl-single", "").await;
    same_as_http(
        &jb,
        dir.path(),
        ("rabbitmqevh", rabbitmqevh(port, false, None, "hl-single")),
        (vec![(a, stop)], got),
        heplink::metrics::Input::Amqp,
    )
    .await;
}

/// The real Janus publishing into the consistent-hash exchange the agents declare (the
/// two declarations must agree), two agents on four partitions: its events arrive exactly
/// once between them, with HTTP's ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_janus_rabbitmqevh_into_partitions_two_agents_same_as_http() {
    on_each_version_async(
        "real_janus_rabbitmqevh_partitions",
        &[rabbitmq()],
        partitions,
    )
    .await;
}

async fn partitions(jb: JanusBin) {
    let _one = ONE.lock().await;
    let port = rabbit().lock().unwrap().port;
    let dir = tempfile::tempdir().unwrap();
    let (collector, got) = udp_receiver().await;
    let mut agents = Vec::new();
    for _ in 0..2 {
        let mut cfg = agent_config(&[format!("udp://{collector}")]);
        cfg.http.enabled = false;
        cfg.ws.enabled = false;
        cfg.amqp.url = url();
        cfg.amqp.queue = "hl-parts".into();
        cfg.amqp.exchange = "janus-hx".into();
        cfg.amqp.partitions = 4;
        agents.push(start_agent(cfg).await);
    }
    let evh = rabbitmqevh(port, true, Some("janus-hx"), "janus-e2e").replace(
        "exchange_type = \"fanout\"",
        "exchange_type = \"x-consistent-hash\"",
    );
    let metrics: Vec<_> = agents.iter().map(|(a, _)| a.metrics.clone()).collect();
    same_as_http(
        &jb,
        dir.path(),
        ("rabbitmqevh", evh),
        (agents, got),
        heplink::metrics::Input::Amqp,
    )
    .await;
    let acks: u64 = metrics
        .iter()
        .map(|m| m.brokers[1].acks.load(Relaxed))
        .sum();
    let messages: u64 = metrics
        .iter()
        .map(|m| m.brokers[1].messages.load(Relaxed))
        .sum();
    assert!(messages > 0);
    assert_eq!(
        acks, messages,
        "every message acknowledged once logged and safe"
    );
}

/// `amqps://`: the agent verifies RabbitMQ's certificate against `amqp.ca_file`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_with_the_brokers_ca() {
    if !have("amqps_with_the_brokers_ca") {
        return;
    }
    let _one = ONE.lock().await;
    let (tls_port, ca) = {
        let r = rabbit().lock().unwrap();
        (r.tls_port, r.ca.clone())
    };
    let (collector, got) = udp_receiver().await;
    let mut cfg = agent_config(&[format!("udp://{collector}")]);
    cfg.http.enabled = false;
    cfg.ws.enabled = false;
    cfg.amqp.url = format!("amqps://guest:guest@127.0.0.1:{tls_port}/%2f");
    cfg.amqp.ca_file = ca.display().to_string();
    cfg.amqp.queue = "hl-tls".into();
    cfg.correlation.hold_ms = 300;
    let (a, stop) = start_agent(cfg).await;
    for _ in 0..100 {
        if a.metrics.brokers[1].connected.load(Relaxed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = get(a.bound.metrics.unwrap(), "/health").await;
    assert!(health.contains("amqp up"), "connected over TLS: {health}");
    publish("hl-tls", (0..50).map(event)).await;
    assert_eq!(wait_ids(&got, 50).await, 50);
    stop.send(()).unwrap();
    a.wait().await.unwrap();
}

/// Session-created events with distinct session ids, as one body each.
fn event(i: u64) -> String {
    format!(
        r#"{{"emitter":"rq","type":1,"timestamp":{},"session_id":{},"event":{{"name":"created","transport":{{"transport":"janus.transport.http","id":"t{i}"}}}}}}"#,
        1_700_000_000_000_000u64 + i,
        2_000_000 + i
    )
}

/// Publishes `bodies` persistent to `queue` (default exchange), each confirmed.
async fn publish(queue: &str, bodies: impl IntoIterator<Item = String>) {
    let conn = Connection::connect(&url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    // As the agent declares it (durable), in case it did not yet.
    ch.queue_declare(
        queue.into(),
        lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        lapin::types::FieldTable::default(),
    )
    .await
    .unwrap();
    for b in bodies {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            b.as_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let _ = conn.close(200, "done".into()).await;
}

async fn wait_ids(got: &Received, n: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ids: std::collections::BTreeSet<String> = got.cids().into_iter().collect();
        if ids.len() >= n || tokio::time::Instant::now() > deadline {
            return ids.len();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_rejected_once_and_counted_and_the_good_ones_go_through() {
    if !have("a_malformed_message_is_rejected") {
        return;
    }
    let _one = ONE.lock().await;
    let (a, stop, got) = amqp_agent("hl-malformed", "").await;
    while a.metrics.brokers[1].connected.load(Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut bodies: Vec<String> = (0..50).map(event).collect();
    bodies.insert(10, "this is not JSON".into());
    bodies.insert(20, "[1, 2, 3]".into());
    publish("hl-malformed", bodies).await;
    assert_eq!(wait_ids(&got, 50).await, 50, "every good event arrives");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = a.metrics.clone();
    let text = m.render();
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    let b = &m.brokers[1];
    assert_eq!(b.nacks.load(Relaxed), 2, "both rejected, once each");
    assert_eq!(b.acks.load(Relaxed), 50);
    assert_eq!(
        b.messages.load(Relaxed),
        52,
        "no redelivery of the rejected"
    );
    assert!(
        text.contains("heplink_broker_nacks_total{input=\"amqp\"} 2"),
        "{text}"
    );
    let depth = rabbit()
        .lock()
        .unwrap()
        .ctl(&["list_queues", "name", "messages"]);
    let line = depth
        .lines()
        .find(|l| l.starts_with("hl-malformed"))
        .unwrap_or_default()
        .to_string();
    assert!(line.ends_with('0'), "the queue ends empty: {line:?}");
}

/// Regression: the input kept its pipeline and receipt senders until it returned (a
/// partial move of its state), so stopping waited out the whole drain time although
/// nothing was pending, and the pipeline task with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_with_nothing_pending_does_not_wait_out_the_drain_time() {
    if !have("stopping_with_nothing_pending") {
        return;
    }
    let _one = ONE.lock().await;
    let (collector, got) = udp_receiver().await;
    let mut cfg = agent_config(&[format!("udp://{collector}")]);
    cfg.http.enabled = false;
    cfg.ws.enabled = false;
    cfg.amqp.url = url();
    cfg.amqp.queue = "hl-stop".into();
    cfg.shutdown_timeout_ms = 30_000;
    let (a, stop) = start_agent(cfg).await;
    while a.metrics.brokers[1].connected.load(Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publish("hl-stop", (0..5).map(event)).await;
    assert_eq!(wait_ids(&got, 5).await, 5);
    while a.metrics.brokers[1].acks.load(Relaxed) < 5 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(10), a.wait()).await;
    assert!(
        stopped.is_ok(),
        "the agent still stopping after 10 s with nothing pending (drain time 30 s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarted_mid_stream_the_agent_reconnects_and_nothing_is_lost() {
    if !have("amqp_broker_restarted") {
        return;
    }
    let _one = ONE.lock().await;
    let (a, stop, got) = amqp_agent("hl-restart", "").await;
    while a.metrics.brokers[1].connected.load(Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publish("hl-restart", (0..500).map(event)).await;
    assert_eq!(wait_ids(&got, 500).await, 500);
    // The broker goes down and comes back; what is published then waits in the durable
    // queue for the agent's new connection.
    tokio::task::block_in_place(|| rabbit().lock().unwrap().restart(Duration::from_millis(500)));
    publish("hl-restart", (500..1000).map(event)).await;
    assert_eq!(wait_ids(&got, 1000).await, 1000, "nothing lost");
    let m = a.metrics.clone();
    let health = get(a.bound.metrics.unwrap(), "/health").await;
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    assert!(m.brokers[1].connections.load(Relaxed) >= 2, "reconnected");
    assert!(health.contains("amqp up"), "{health}");
}

/// A Janus core event: released at once (no session to wait for), one packet each.
fn core_event(i: u64) -> String {
    format!(
        r#"{{"emitter":"rq","type":256,"timestamp":{},"event":{{"status":"update","info":{{"n":{i}}}}}}}"#,
        1_700_000_000_000_000u64 + i
    )
}

/// Figures for docs/performance.md (run with `--release --ignored --nocapture`): the events per
/// second one agent takes from a queue holding 500 messages of 100 events (rabbitmqevh's
/// grouping), into a TCP collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test --release --test brokers_amqp -- --ignored --nocapture"]
async fn measure_events_per_second_from_100_event_messages() {
    if !have("measure_amqp") {
        return;
    }
    let _one = ONE.lock().await;
    let (messages, per) = (500u64, 100u64);
    let bodies = (0..messages).map(|m| {
        let evs: Vec<String> = (0..per).map(|i| core_event(m * per + i)).collect();
        format!("[{}]", evs.join(","))
    });
    publish("hl-measure", bodies).await;
    let got = Received::default();
    let (collector, _t) = tcp_receiver("127.0.0.1:0", got.clone()).await;
    let mut cfg = agent_config(&[format!("tcp://{collector}")]);
    cfg.http.enabled = false;
    cfg.ws.enabled = false;
    cfg.amqp.url = url();
    cfg.amqp.queue = "hl-measure".into();
    let start = std::time::Instant::now();
    let (a, stop) = start_agent(cfg).await;
    let n = (messages * per) as usize;
    got.wait_for(n, 60).await;
    let took = start.elapsed();
    let text = a.metrics.render();
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    assert_eq!(
        got.len(),
        n,
        "{}",
        text.lines()
            .filter(|l| l.contains("amqp") || l.contains("packets") || l.contains("rejected"))
            .filter(|l| !l.starts_with('#') && !l.ends_with(" 0"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "AMQP: {n} events in {messages} messages taken in {:.2} s: {:.0} events/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}

/// One emitter's set-up (session, a VideoRoom handle, its join of room `100 + k`) as one
/// grouped body, as rabbitmqevh groups.
fn setup(k: u64, t: u64) -> String {
    let (s, h) = (10_000 + k, 20_000 + k);
    format!(
        r#"[{{"emitter":"jk{k}","type":1,"timestamp":{t},"session_id":{s},"event":{{"name":"created","transport":{{"transport":"janus.transport.http","id":"x"}}}}}},{{"emitter":"jk{k}","type":2,"timestamp":{},"session_id":{s},"handle_id":{h},"opaque_id":"pub{k}","event":{{"name":"attached","plugin":"janus.plugin.videoroom","opaque_id":"pub{k}"}}}},{{"emitter":"jk{k}","type":64,"timestamp":{},"session_id":{s},"handle_id":{h},"opaque_id":"pub{k}","event":{{"plugin":"janus.plugin.videoroom","data":{{"event":"joined","room":{},"id":{},"display":"p{k}"}}}}}}]"#,
        t + 1,
        t + 2,
        100 + k,
        30_000 + k
    )
}

/// A media statistics event of emitter `k`'s handle.
fn media(k: u64, t: u64) -> String {
    format!(
        r#"[{{"emitter":"jk{k}","type":32,"subtype":3,"timestamp":{t},"session_id":{},"handle_id":{},"opaque_id":"pub{k}","event":{{"mid":"0","mindex":0,"media":"audio","codec":"opus","base":48000,"rtt":0,"lost":0,"lost-by-remote":0,"jitter-local":0,"jitter-remote":0,"in-link-quality":100,"in-media-link-quality":100,"out-link-quality":100,"out-media-link-quality":100,"packets-received":{t},"packets-sent":0,"bytes-received":0,"bytes-sent":0,"bytes-received-lastsec":0,"bytes-sent-lastsec":0,"nacks-received":0,"nacks-sent":0,"retransmissions-received":0}}}}]"#,
        10_000 + k,
        20_000 + k
    )
}

/// An agent process that is killed if the test ends early (a failed assertion).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn partitions_held(metrics: std::net::SocketAddr) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let text = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), get(metrics, "/metrics"))
            .await
            .unwrap_or_default()
    });
    metric(&text, "heplink_broker_partitions_held{input=\"amqp\"}")
}

/// Three agents share six partitions; Janus instances (12 emitters, each its own routing
/// key into the consistent-hash exchange) join a room each, then send media statistics.
/// The partitions spread between the agents; the busiest agent is SIGKILLed mid-stream.
/// Every event arrives at least once, duplicates stay within the redeliveries counted,
/// and at least 99% of the media events carry their room's id (which only the state
/// moved with the partition can give: the joins came long before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_one_sigkilled_mid_stream_keep_every_event_and_its_room() {
    if !have("three_agents_one_sigkilled") {
        return;
    }
    let _one = ONE.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let got = Received::default();
    let (collector, _rx) = tcp_receiver("127.0.0.1:0", got.clone()).await;
    let url = url();
    let mut agents = Vec::new();
    for n in 0..3 {
        let mport = free_port();
        let child = bin()
            .args(["serve", "--http", "off", "--ws", "off"])
            .args(["--metrics", &format!("127.0.0.1:{mport}")])
            .args([
                "--amqp",
                &url,
                "--amqp-exchange",
                "hx",
                "--amqp-queue",
                "hp",
            ])
            .args(["--amqp-partitions", "6", "--hold-ms", "500"])
            .args(["--to", &format!("tcp://{collector}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(format!("agent{n}.log"))).unwrap())
            .spawn()
            .unwrap();
        agents.push((KillOnDrop(child), ([127, 0, 0, 1], mport).into()));
        // One after the other: the first is active on every partition to begin with.
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let send = |k: u64, body: String| {
        let ch = ch.clone();
        async move {
            ch.basic_publish(
                "hx".into(),
                format!("janus-{k}").as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    };
    let emitters = 12u64;
    let t0 = 1_790_000_000_000_000u64;
    for k in 0..emitters {
        send(k, setup(k, t0 + k * 10)).await;
    }
    let (rounds, kill_at) = (400u64, 200u64);
    let mut killed = None;
    let mut killed_when: Option<std::time::Instant> = None;
    let mut failover = None;
    let stamp = |r: u64, k: u64| t0 + 1_000_000 + r * 1000 + k;
    for r in 0..rounds {
        for k in 0..emitters {
            send(k, media(k, stamp(r, k))).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Failover time: from the kill until every event of the round after it arrived.
        if let (Some(w), None, true) = (killed_when, failover, r % 5 == 0) {
            let seen: std::collections::BTreeSet<u64> = got
                .payloads()
                .iter()
                .filter_map(|p| {
                    serde_json::from_slice::<serde_json::Value>(heplink::map::log_json(p)).ok()
                })
                .filter_map(|v| v["event"]["timestamp"].as_u64())
                .collect();
            if (0..emitters).all(|k| seen.contains(&stamp(kill_at + 1, k))) {
                failover = Some(w.elapsed());
            }
        }
        if r == kill_at {
            // The busiest agent, SIGKILLed.
            let held: Vec<u64> = tokio::task::block_in_place(|| {
                agents.iter().map(|(_, m)| partitions_held(*m)).collect()
            });
            let (busiest, _) = held.iter().enumerate().max_by_key(|(_, h)| **h).unwrap();
            eprintln!("partitions held before the kill: {held:?}");
            assert!(
                held.iter().filter(|h| **h > 0).count() >= 2,
                "the partitions spread between the agents: {held:?}"
            );
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &agents[busiest].0 .0.id().to_string()])
                .status();
            let _ = agents[busiest].0 .0.wait();
            killed = Some(busiest);
            killed_when = Some(std::time::Instant::now());
        }
    }
    let want = (rounds * emitters) as usize;
    let media_of = |got: &Received| -> Vec<(String, u64)> {
        got.payloads()
            .iter()
            .zip(got.cids())
            .filter_map(|(p, cid)| {
                let v: serde_json::Value =
                    serde_json::from_slice(heplink::map::log_json(p)).ok()?;
                (v["event"]["type"] == 32)
                    .then(|| (cid, v["event"]["timestamp"].as_u64().unwrap_or(0)))
            })
            .collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let uniq: std::collections::BTreeSet<u64> =
            media_of(&got).iter().map(|(_, t)| *t).collect();
        if uniq.len() >= want || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let survivors: Vec<_> = agents
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != killed)
        .map(|(_, (_, m))| *m)
        .collect();
    let mut redelivered = 0;
    let mut replayed = 0;
    for m in &survivors {
        let text = get(*m, "/metrics").await;
        redelivered += metric(&text, "heplink_broker_redeliveries_total{input=\"amqp\"}");
        replayed += metric(&text, "heplink_broker_state_replayed_total{input=\"amqp\"}");
    }
    for (mut c, _) in agents {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &c.0.id().to_string()])
            .status();
        wait_or_kill(&mut c.0, Duration::from_secs(10));
    }
    let all = media_of(&got);
    let uniq: std::collections::BTreeSet<u64> = all.iter().map(|(_, t)| *t).collect();
    let right = all
        .iter()
        .filter(|(cid, t)| {
            let k = (t - t0) % 1000;
            cid == &format!("jk{k}:videoroom:{}", 100 + k)
        })
        .count();
    let dups = all.len() - uniq.len();
    eprintln!(
        "failover: {want} media events, {} packets, {dups} duplicates ({redelivered} redelivered), {right} with their room's id, {replayed} log bodies replayed; events flowed again {:?} after the kill (measured every 5 rounds)",
        all.len(),
        failover
    );
    let logs = (0..3)
        .map(|n| {
            std::fs::read_to_string(dir.path().join(format!("agent{n}.log"))).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\n---\n");
    assert_eq!(uniq.len(), want, "every event arrives; logs:\n{logs}");
    assert!(
        dups as u64 <= redelivered,
        "duplicates within the redeliveries counted"
    );
    assert!(
        right * 100 >= all.len() * 99,
        "{right} of {} carry their room's id; logs:\n{logs}",
        all.len()
    );
    assert!(replayed > 0, "a partition's state came from its log");
}

/// Figures for docs/performance.md (`--release --ignored --nocapture`): end-to-end latency, from
/// the publish to the HEP packet at a TCP collector, at 10,000 events/s in messages of
/// 100 events (100 messages/s), for 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test --release --test brokers_amqp -- --ignored --nocapture"]
async fn measure_latency_at_10k_events_per_second() {
    if !have("measure_amqp_latency") {
        return;
    }
    let _one = ONE.lock().await;
    let (collector, lat) = common::brokers::latency_receiver().await;
    let mut cfg = agent_config(&[format!("tcp://{collector}")]);
    cfg.http.enabled = false;
    cfg.ws.enabled = false;
    cfg.amqp.url = url();
    cfg.amqp.queue = "hl-latency".into();
    let (a, stop) = start_agent(cfg).await;
    while a.metrics.brokers[1].connected.load(Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let conn = Connection::connect(&url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for m in 0..500u64 {
        tick.tick().await;
        let now = heplink::time::now_us();
        let evs: Vec<String> = (0..100)
            .map(|i| {
                format!(
                    r#"{{"emitter":"lat","type":256,"timestamp":{now},"event":{{"status":"update","info":{{"n":{}}}}}}}"#,
                    m * 100 + i
                )
            })
            .collect();
        ch.basic_publish(
            "".into(),
            "hl-latency".into(),
            BasicPublishOptions::default(),
            format!("[{}]", evs.join(",")).as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    let mut v = lat.lock().unwrap().clone();
    assert_eq!(v.len(), 50_000);
    let (p50, p99) = common::brokers::p50_p99(&mut v);
    eprintln!("AMQP at 10,000 events/s: latency p50 {p50} µs, p99 {p99} µs");
}
