//! End to end with the real Janus (Debian's `janus` 1.1.2, started here on loopback):
//! its sample HTTP event handler and its WebSocket event handler each deliver to a
//! `heplink serve` agent, while sessions are driven through Janus's HTTP API (echotest,
//! and a VideoRoom created, joined and left). Two independent delivery paths of the same
//! Janus must give the same events, each exactly once, with valid HEP and the correlation
//! ids of the rules. Run once with grouping off, once with grouping, gzip and Basic auth.
//!
//! Needs the `janus` package (installed by `.ci/run`).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const PLUGINS: &str = "/usr/lib/x86_64-linux-gnu/janus";

struct Janus {
    child: Child,
    api: SocketAddr,
    log: std::path::PathBuf,
}

impl Janus {
    fn start(dir: &Path, sampleevh: &str, wsevh: &str) -> Janus {
        let cfg = dir.join("cfg");
        std::fs::create_dir_all(&cfg).unwrap();
        let port = free_port();
        let w = |name: &str, text: String| std::fs::write(cfg.join(name), text).unwrap();
        w(
            "janus.jcfg",
            format!(
                r#"general: {{
    configs_folder = "{cfg}"
    plugins_folder = "{PLUGINS}/plugins"
    transports_folder = "{PLUGINS}/transports"
    events_folder = "{PLUGINS}/events"
    loggers_folder = "{PLUGINS}/loggers"
    debug_level = 4
    server_name = "heplink-e2e"
    session_timeout = 60
}}
media: {{ rtp_port_range = "40000-40999" }}
nat: {{ ignore_mdns = true }}
plugins: {{ disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_videocall.so,libjanus_voicemail.so,libjanus_textroom.so" }}
transports: {{ disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so" }}
loggers: {{ disable = "libjanus_jsonlog.so" }}
events: {{
    broadcast = true
    stats_period = 1
    disable = "libjanus_gelfevh.so,libjanus_mqttevh.so,libjanus_nanomsgevh.so,libjanus_rabbitmqevh.so"
}}
"#,
                cfg = cfg.display()
            ),
        );
        w("janus.transport.http.jcfg", format!("general: {{ json = \"compact\" base_path = \"/janus\" http = true port = {port} ip = \"127.0.0.1\" https = false }}\nadmin: {{ admin_http = false }}\ncors: {{ }}\n"));
        w("janus.eventhandler.sampleevh.jcfg", sampleevh.to_string());
        w("janus.eventhandler.wsevh.jcfg", wsevh.to_string());
        w(
            "janus.plugin.echotest.jcfg",
            "general: { events = true }\n".into(),
        );
        w(
            "janus.plugin.videoroom.jcfg",
            "general: { events = true }\n".into(),
        );
        let log = dir.join("janus.log");
        let child = Command::new("janus")
            .arg("-F")
            .arg(&cfg)
            .arg("-L")
            .arg(&log)
            .args(["-N", "-o"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("janus is not installed (apt-get install janus)");
        let j = Janus {
            child,
            api: ([127, 0, 0, 1], port).into(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while request(j.api, "GET", "/janus/info", None).is_none() {
            assert!(
                Instant::now() < deadline,
                "Janus did not start: {}",
                std::fs::read_to_string(&j.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        j
    }

    fn call(&self, path: &str, body: Value) -> Value {
        let mut body = body;
        body["transaction"] = json!(format!("t{}", rand_u32()));
        request(self.api, "POST", path, Some(&body)).expect("Janus API answers")
    }

    /// Stops Janus with SIGINT, as an operator would (Janus sends its shutdown event).
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        wait_or_kill(&mut self.child, Duration::from_secs(15));
    }
}

/// The hour (UTC) of an event's time, as core and transport ids carry it.
fn hour_of(ev: &Value) -> String {
    heplink::correlate::hour_label(ev["timestamp"].as_u64().unwrap() / 3_600_000_000)
}

fn rand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// A blocking HTTP/1.1 request to Janus's API; the JSON answer.
fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Option<Value> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (_, b) = resp.split_once("\r\n\r\n")?;
    serde_json::from_str(b.trim()).ok()
}

/// Drives Janus: an echotest session, and a VideoRoom session that creates room 777,
/// joins it as a publisher, leaves and destroys it.
fn drive(j: &Janus) -> (u64, u64, u64, u64) {
    let s1 = j.call("/janus", json!({"janus": "create"}))["data"]["id"]
        .as_u64()
        .unwrap();
    let p1 = format!("/janus/{s1}");
    let h1 = j.call(
        &p1,
        json!({"janus": "attach", "plugin": "janus.plugin.echotest", "opaque_id": "e2e-echo"}),
    )["data"]["id"]
        .as_u64()
        .unwrap();
    let r = j.call(
        &format!("{p1}/{h1}"),
        json!({"janus": "message", "body": {"audio": true, "bitrate": 64000}}),
    );
    assert_eq!(r["janus"], "ack", "{r}");
    std::thread::sleep(Duration::from_millis(200));
    j.call(&format!("{p1}/{h1}"), json!({"janus": "detach"}));
    j.call(&p1, json!({"janus": "destroy"}));

    let s2 = j.call("/janus", json!({"janus": "create"}))["data"]["id"]
        .as_u64()
        .unwrap();
    let p2 = format!("/janus/{s2}");
    let h2 = j.call(
        &p2,
        json!({"janus": "attach", "plugin": "janus.plugin.videoroom", "opaque_id": "e2e-room"}),
    )["data"]["id"]
        .as_u64()
        .unwrap();
    let hp = format!("{p2}/{h2}");
    let r = j.call(
        &hp,
        json!({"janus": "message", "body": {"request": "create", "room": 777, "publishers": 4}}),
    );
    assert_eq!(r["plugindata"]["data"]["videoroom"], "created", "{r}");
    let r = j.call(&hp, json!({"janus": "message", "body": {"request": "join", "ptype": "publisher", "room": 777, "display": "alice"}}));
    assert_eq!(r["janus"], "ack", "{r}");
    std::thread::sleep(Duration::from_millis(300));
    let r = j.call(
        &hp,
        json!({"janus": "message", "body": {"request": "leave"}}),
    );
    assert_eq!(r["janus"], "ack", "{r}");
    std::thread::sleep(Duration::from_millis(300));
    j.call(
        &hp,
        json!({"janus": "message", "body": {"request": "destroy", "room": 777}}),
    );
    j.call(&hp, json!({"janus": "detach"}));
    j.call(&p2, json!({"janus": "destroy"}));
    (s1, h1, s2, h2)
}

/// How many times each (type, subtype, session, handle, timestamp) arrived.
type EventCounts = BTreeMap<(u64, u64, u64, u64, u64), usize>;

/// The (type, subtype, session, handle, timestamp) of each event in a received payload.
fn events_of(got: &Received) -> (EventCounts, Vec<(String, Value)>) {
    let mut keys = BTreeMap::new();
    let mut all = Vec::new();
    for (cid, p) in got.0.lock().unwrap().iter() {
        let v: Value = serde_json::from_slice(p).unwrap_or(Value::Null);
        let ev = v["event"].clone();
        if ev.is_null() {
            continue; // SIP packets carry the SIP message: none in this scenario
        }
        let k = |f: &str| ev[f].as_u64().unwrap_or(0);
        *keys
            .entry((
                k("type"),
                k("subtype"),
                k("session_id"),
                k("handle_id"),
                k("timestamp"),
            ))
            .or_default() += 1;
        all.push((cid.clone(), ev));
    }
    (keys, all)
}

async fn scenario(
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
    let ids = tokio::task::spawn_blocking(move || {
        let j = Janus::start(dir.path(), &sample_cfg, &ws_cfg);
        // wsevh connects at start-up: give it a moment.
        std::thread::sleep(Duration::from_millis(500));
        let ids = drive(&j);
        std::thread::sleep(Duration::from_millis(1500));
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
    if !common::peers(
        "real_janus_grouping_off",
        &[("janus", common::on_path("janus"), "apt-get install janus")],
    ) {
        return;
    }
    scenario(
        |http| format!("general: {{ enabled = true events = \"all\" grouping = false json = \"compact\" backend = \"http://{http}/janus-events\" }}\n"),
        |ws| format!("general: {{ enabled = true events = \"all\" grouping = false json = \"compact\" backend = \"ws://{ws}/janus-ws-events\" }}\n"),
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_janus_grouping_gzip_and_basic_auth() {
    if !common::peers(
        "real_janus_grouping_gzip_and_basic_auth",
        &[("janus", common::on_path("janus"), "apt-get install janus")],
    ) {
        return;
    }
    scenario(
        |http| format!("general: {{ enabled = true events = \"all\" grouping = true json = \"compact\" compress = true compression = 6 backend = \"http://{http}/janus-events\" backend_user = \"janus\" backend_pwd = \"s3cret\" }}\n"),
        // wsevh cannot send Basic auth (userinfo in its backend URL is not sent): it
        // authenticates with the token in the URL's query.
        |ws| format!("general: {{ enabled = true events = \"all\" grouping = true json = \"compact\" backend = \"ws://{ws}/?token=t0ken\" }}\n"),
        Some(("janus", "s3cret")),
    )
    .await;
}
