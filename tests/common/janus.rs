//! The real Janus started on loopback with the event handlers a test configures, and a
//! scenario driven through its HTTP API. Each end-to-end test runs on every Janus version
//! here ([`versions`]): Debian's `janus` 1.1.2, and 1.4.1 built by `.ci/build-janus`
//! (found through `HEPLINK_JANUS14`, else in the build cache).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{free_port, on_path, peers, wait_or_kill, Received};

/// Where Debian's `janus` package keeps its plugins, transports and event handlers.
pub const DEBIAN_LIBDIR: &str = "/usr/lib/x86_64-linux-gnu/janus";

/// One Janus build: its binary and the folder of its `plugins/`, `transports/`,
/// `events/` (and `loggers/`, when built) folders.
#[derive(Clone, Debug)]
pub struct JanusBin {
    /// As `janus --version` says it ("1.1.2", "1.4.1"): named in assertion messages.
    pub version: String,
    pub bin: PathBuf,
    pub libdir: PathBuf,
}

impl JanusBin {
    fn new(bin: PathBuf, libdir: PathBuf) -> Option<JanusBin> {
        let out = Command::new(&bin).arg("--version").output().ok()?;
        // "Janus version: 1401 (1.4.1)"
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("Janus version: "))
            .and_then(|v| v.split_once('(')?.1.split_once(')'))
            .map(|(v, _)| v.to_string())?;
        Some(JanusBin {
            version,
            bin,
            libdir,
        })
    }

    /// Debian's `janus` (1.1.2), when installed.
    pub fn debian() -> Option<JanusBin> {
        if !on_path("janus") {
            return None;
        }
        JanusBin::new("janus".into(), DEBIAN_LIBDIR.into())
    }

    /// Janus 1.4.1 as `.ci/build-janus` installs it: the prefix in `HEPLINK_JANUS14`
    /// (`.ci/run` exports it), else a complete build in the cache
    /// (`${HEPLINK_PEER_CACHE:-/var/cache/heplink-peers}/janus-1.4.1-*`).
    pub fn janus14() -> Option<JanusBin> {
        let prefix = match std::env::var_os("HEPLINK_JANUS14") {
            Some(p) => PathBuf::from(p),
            None => {
                let cache = std::env::var_os("HEPLINK_PEER_CACHE")
                    .map_or_else(|| "/var/cache/heplink-peers".into(), PathBuf::from);
                let mut built: Vec<PathBuf> = std::fs::read_dir(cache)
                    .ok()?
                    .filter_map(|e| Some(e.ok()?.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("janus-1.4.1-"))
                            && p.join(".heplink-build-stamp").is_file()
                    })
                    .collect();
                built.sort();
                built.pop()?
            }
        };
        JanusBin::new(prefix.join("bin/janus"), prefix.join("lib/janus"))
            .filter(|j| j.version == "1.4.1")
    }
}

/// The Janus versions a test runs on: 1.1.2 and 1.4.1, each when it is here, after the
/// test's other `needs` ([`peers`]). A missing version is skipped with a printed reason,
/// or, with `HEPLINK_REQUIRE_PEERS` set, fails the test.
pub fn versions(test: &str, needs: &[(&str, bool, &str)]) -> Vec<JanusBin> {
    if !peers(test, needs) {
        return Vec::new();
    }
    let mut here = Vec::new();
    for (want, found, how) in [
        ("1.1.2", JanusBin::debian(), "apt-get install janus"),
        (
            "1.4.1",
            JanusBin::janus14(),
            "HEPLINK_JANUS14=$(.ci/build-janus | tail -1), as .ci/run does",
        ),
    ] {
        let found = found.filter(|j| j.version == want);
        let what = format!("janus {want}");
        if peers(
            &format!("{test} on Janus {want}"),
            &[(what.as_str(), found.is_some(), how)],
        ) {
            here.extend(found);
        }
    }
    here
}

/// A panic's message.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

/// Runs `body` once per Janus version of [`versions`]; a failure names the version.
pub fn on_each_version(test: &str, needs: &[(&str, bool, &str)], body: impl Fn(&JanusBin)) {
    for j in versions(test, needs) {
        eprintln!("{test}: Janus {}", j.version);
        if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&j))) {
            panic!("on Janus {}: {}", j.version, panic_text(&*p));
        }
    }
}

/// [`on_each_version`] for async bodies (each runs as a task of the test's runtime).
pub async fn on_each_version_async<F, Fut>(test: &str, needs: &[(&str, bool, &str)], body: F)
where
    F: Fn(JanusBin) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    for j in versions(test, needs) {
        eprintln!("{test}: Janus {}", j.version);
        let v = j.version.clone();
        if let Err(e) = tokio::spawn(body(j)).await {
            match e.try_into_panic() {
                Ok(p) => panic!("on Janus {v}: {}", panic_text(&*p)),
                Err(e) => panic!("on Janus {v}: {e}"),
            }
        }
    }
}

pub struct Janus {
    child: Child,
    api: SocketAddr,
    log: std::path::PathBuf,
}

impl Janus {
    /// Starts Janus with these event handlers configured (name without `libjanus_` and
    /// `.so`, and its jcfg text); the other handlers are disabled.
    pub fn start(jb: &JanusBin, dir: &Path, handlers: &[(&str, &str)]) -> Janus {
        let disable = [
            "gelfevh",
            "mqttevh",
            "nanomsgevh",
            "rabbitmqevh",
            "sampleevh",
            "wsevh",
        ]
        .iter()
        .filter(|h| !handlers.iter().any(|(n, _)| n == *h))
        .map(|h| format!("libjanus_{h}.so"))
        .collect::<Vec<_>>()
        .join(",");
        let cfg = dir.join("cfg");
        std::fs::create_dir_all(&cfg).unwrap();
        let port = free_port();
        let w = |name: &str, text: String| std::fs::write(cfg.join(name), text).unwrap();
        w(
            "janus.jcfg",
            format!(
                r#"general: {{
    configs_folder = "{cfg}"
    plugins_folder = "{lib}/plugins"
    transports_folder = "{lib}/transports"
    events_folder = "{lib}/events"
    loggers_folder = "{lib}/loggers"
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
    disable = "{disable}"
}}
"#,
                cfg = cfg.display(),
                lib = jb.libdir.display(),
                disable = disable
            ),
        );
        w("janus.transport.http.jcfg", format!("general: {{ json = \"compact\" base_path = \"/janus\" http = true port = {port} ip = \"127.0.0.1\" https = false }}\nadmin: {{ admin_http = false }}\ncors: {{ }}\n"));
        for (name, text) in handlers {
            w(&format!("janus.eventhandler.{name}.jcfg"), text.to_string());
        }
        w(
            "janus.plugin.echotest.jcfg",
            "general: { events = true }\n".into(),
        );
        w(
            "janus.plugin.videoroom.jcfg",
            "general: { events = true }\n".into(),
        );
        let log = dir.join("janus.log");
        let child = Command::new(&jb.bin)
            .arg("-F")
            .arg(&cfg)
            .arg("-L")
            .arg(&log)
            .args(["-N", "-o"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", jb.bin.display()));
        let j = Janus {
            child,
            api: ([127, 0, 0, 1], port).into(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while request(j.api, "GET", "/janus/info", None).is_none() {
            assert!(
                Instant::now() < deadline,
                "Janus {} did not start: {}",
                jb.version,
                std::fs::read_to_string(&j.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        j
    }

    pub fn call(&self, path: &str, body: Value) -> Value {
        let mut body = body;
        body["transaction"] = json!(format!("t{}", rand_u32()));
        request(self.api, "POST", path, Some(&body)).expect("Janus API answers")
    }

    /// Stops Janus with SIGINT, as an operator would (Janus sends its shutdown event).
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        wait_or_kill(&mut self.child, Duration::from_secs(15));
    }
}

/// The hour (UTC) of an event's time, as core and transport ids carry it.
pub fn hour_of(ev: &Value) -> String {
    heplink::correlate::hour_label(ev["timestamp"].as_u64().unwrap() / 3_600_000_000)
}

pub fn rand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// A blocking HTTP/1.1 request to Janus's API; the JSON answer.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Option<Value> {
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
pub fn drive(j: &Janus) -> (u64, u64, u64, u64) {
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
pub type EventCounts = BTreeMap<(u64, u64, u64, u64, u64), usize>;

/// The (type, subtype, session, handle, timestamp) of each event in a received payload.
pub fn events_of(got: &Received) -> (EventCounts, Vec<(String, Value)>) {
    let mut keys = BTreeMap::new();
    let mut all = Vec::new();
    for (cid, p) in got.0.lock().unwrap().iter() {
        let v: Value = serde_json::from_slice(heplink::map::log_json(p)).unwrap_or(Value::Null);
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

/// Runs [`drive`] on a real Janus whose event handler `evh` (name, jcfg) feeds the agents
/// under test (each with its stop; what their one collector got) through `input`, while
/// sampleevh feeds the same events to a second agent over HTTP: every event must arrive
/// exactly once, the same events both ways, each with the correlation id HTTP gave it.
pub async fn same_as_http(
    jb: &JanusBin,
    dir: &Path,
    evh: (&str, String),
    agents: (
        Vec<(heplink::agent::Agent, tokio::sync::oneshot::Sender<()>)>,
        Received,
    ),
    input: heplink::metrics::Input,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let (agents, got) = agents;
    let (c2, via_http) = super::udp_receiver().await;
    let (http_agent, stop2) =
        super::start_agent(super::agent_config(&[format!("udp://{c2}")])).await;
    let http = http_agent.bound.http.unwrap();
    let which = if input == heplink::metrics::Input::Mqtt {
        0
    } else {
        1
    };
    for (a, _) in &agents {
        for _ in 0..200 {
            if a.metrics.brokers[which].connected.load(Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let scfg = format!("general: {{ enabled = true events = \"all\" grouping = false json = \"compact\" backend = \"http://{http}/janus-events\" }}\n");
    let jdir = dir.join("janus");
    let (name, text) = (evh.0.to_string(), evh.1);
    let jb2 = jb.clone();
    tokio::task::spawn_blocking(move || {
        let j = Janus::start(
            &jb2,
            &jdir,
            &[(name.as_str(), text.as_str()), ("sampleevh", scfg.as_str())],
        );
        std::thread::sleep(Duration::from_millis(500));
        drive(&j);
        std::thread::sleep(Duration::from_millis(1500));
        j.stop();
    })
    .await
    .unwrap();
    // Janus's last events (its core "shutdown") go out as it exits; under load the broker's
    // consumers take longer to get them than HTTP does. Wait (10 s at most) until both
    // sides hold as many events, then compare what they hold.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (broker, http) = (events_of(&got).1.len(), events_of(&via_http).1.len());
        if (broker >= http && http > 0) || std::time::Instant::now() > deadline {
            break;
        }
    }
    let mut taken = 0;
    for (a, stop) in agents {
        let m = a.metrics.clone();
        stop.send(()).unwrap();
        a.wait().await.unwrap();
        taken += m.events_total(input) as usize;
    }
    stop2.send(()).unwrap();
    http_agent.wait().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (keys, events) = events_of(&got);
    let (http_keys, http_events) = events_of(&via_http);
    assert!(http_events.len() > 20, "{} events", http_events.len());
    assert!(keys.values().all(|n| *n == 1), "duplicates: {keys:?}");
    assert_eq!(
        keys, http_keys,
        "the broker and HTTP carried different events"
    );
    let ids = |evs: &[(String, Value)]| -> std::collections::BTreeSet<(String, String)> {
        evs.iter()
            .map(|(cid, e)| {
                let k = format!(
                    "{}/{}/{}/{}/{}",
                    e["type"], e["subtype"], e["session_id"], e["handle_id"], e["timestamp"]
                );
                (k, cid.clone())
            })
            .collect()
    };
    assert_eq!(
        ids(&events),
        ids(&http_events),
        "correlation ids differ from HTTP's"
    );
    assert_eq!(taken, events.len());
}
