//! The AMQP input with real parts: Debian's `rabbitmq-server` on loopback (a node of the
//! test's own), the real Janus 1.1.2 publishing through its `rabbitmqevh`, and the agent
//! consuming a durable queue it declares.
//!
//! - Janus's events (grouped arrays through a fanout exchange; single objects straight to
//!   the queue) arrive exactly once, with the correlation ids the HTTP input gives them.
//! - A malformed message is rejected without requeue and counted; the good ones around it
//!   go through, and the queue ends empty.
//! - The broker restarted mid-stream: the agent reconnects and nothing is lost.
//!
//! One RabbitMQ node serves every test of this file (it takes seconds to start), each
//! test on queues and exchanges of its own. Needs `rabbitmq-server` and `janus`
//! (installed by `.ci/run`).

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::brokers::{Rabbit, RABBIT_BIN};
use common::janus::same_as_http;
use common::*;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};

fn have(test: &str) -> bool {
    peers(
        test,
        &[
            (
                "rabbitmq-server",
                std::path::Path::new(&format!("{RABBIT_BIN}rabbitmq-server")).exists(),
                "apt-get install rabbitmq-server",
            ),
            ("janus", on_path("janus"), "apt-get install janus"),
        ],
    )
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
    if !have("real_janus_rabbitmqevh_grouped") {
        return;
    }
    let _one = ONE.lock().await;
    let port = rabbit().lock().unwrap().port;
    let dir = tempfile::tempdir().unwrap();
    let (a, stop, got) = amqp_agent("hl-grouped", "janus-exchange").await;
    let m = a.metrics.clone();
    same_as_http(
        dir.path(),
        (
            "rabbitmqevh",
            rabbitmqevh(port, true, Some("janus-exchange"), "janus-events"),
        ),
        (a, stop, got),
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
    if !have("real_janus_rabbitmqevh_single") {
        return;
    }
    let _one = ONE.lock().await;
    let port = rabbit().lock().unwrap().port;
    let dir = tempfile::tempdir().unwrap();
    let (a, stop, got) = amqp_agent("hl-single", "").await;
    same_as_http(
        dir.path(),
        ("rabbitmqevh", rabbitmqevh(port, false, None, "hl-single")),
        (a, stop, got),
        heplink::metrics::Input::Amqp,
    )
    .await;
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

/// Figures for the README (run with `--release --ignored --nocapture`): the events per
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
