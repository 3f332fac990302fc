//! Homer's API (#13 items 2 and 3): the alias keeper and `heplink homer check`, against a
//! loopback homer-app that enforces the request and answer shapes recorded from a real
//! homer-app 1.4.18 (`reference/homer-app-api.md`): 201 for successes, `Bearer` tokens,
//! the six alias fields with their types and limits, an empty 201 body for a database
//! failure, string search values, `to` truncated to whole seconds. Its "collector" is a
//! UDP socket whose LOG packets become the rows the search finds, as heplify-server would
//! store them. (No homer-app can be installed from the registries; see docs/homer.md.)

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde_json::{json, Value};

#[derive(Default)]
struct Fake {
    tokens: Vec<String>,
    aliases: Vec<Value>,
    /// Every alias name ever created.
    created: Vec<String>,
    deleted: usize,
    /// (sid, HEP time ms) of the LOG rows "stored".
    rows: Vec<(String, u64)>,
    /// Whether the collector stores what it gets.
    storing: bool,
    /// Homer 11: `/api/v3` is not there, `/api/v4` is.
    v4: bool,
    /// Requests that broke the recorded rules (the test fails on any).
    violations: Vec<String>,
}

type S = Arc<Mutex<Fake>>;

fn answer(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// The Bearer check of echo's JWT middleware.
fn authorized(s: &S, h: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(v) = h.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(Box::new(answer(
            400,
            json!({"message":"missing or malformed jwt"}),
        )));
    };
    let Some(t) = v.strip_prefix("Bearer ") else {
        return Err(Box::new(answer(
            400,
            json!({"message":"missing or malformed jwt"}),
        )));
    };
    if !s.lock().unwrap().tokens.iter().any(|x| x == t) {
        return Err(Box::new(answer(
            401,
            json!({"message":"invalid or expired jwt"}),
        )));
    }
    Ok(())
}

async fn auth(State(s): State<S>, body: String) -> Response {
    if s.lock().unwrap().v4 {
        return answer(404, json!({"message":"Not Found"}));
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return answer(
            400,
            json!({"data":{},"message":"request format is not correct"}),
        );
    };
    match (v["username"].as_str(), v["password"].as_str()) {
        (_, None | Some("")) => answer(
            400,
            json!({"data":{},"message":"Key: 'UserloginDetails.Password' Error:Field validation for 'Password' failed on the 'required' tag"}),
        ),
        (Some("admin"), Some("sipcapture")) => {
            let mut f = s.lock().unwrap();
            let t = format!("tok-{}", f.tokens.len());
            f.tokens.push(t.clone());
            answer(
                201,
                json!({"token":t,"scope":"62773fcc","user":{"admin":true}}),
            )
        }
        _ => answer(
            401,
            json!({"statuscode":401,"error":"Unauthorized","message":"incorrect password"}),
        ),
    }
}

async fn list(State(s): State<S>, h: HeaderMap) -> Response {
    if let Err(r) = authorized(&s, &h) {
        return *r;
    }
    let data = s.lock().unwrap().aliases.clone();
    answer(201, json!({"data": data}))
}

async fn create(State(s): State<S>, h: HeaderMap, body: String) -> Response {
    if let Err(r) = authorized(&s, &h) {
        return *r;
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return answer(
            400,
            json!({"data":{},"message":"request format is not correct"}),
        );
    };
    let mut f = s.lock().unwrap();
    if v.get("id").is_some() {
        f.violations.push(format!("an id sent on create: {v}"));
    }
    // Types: captureID a string, port and mask numbers, status a bool.
    if !v["captureID"].is_string() || v.get("port").is_some_and(|p| !p.is_u64()) {
        return answer(
            400,
            json!({"data":{},"message":"request format is not correct"}),
        );
    }
    for k in ["alias", "ip", "port", "mask", "captureID", "status"] {
        if v.get(k).is_none() || v[k] == "" {
            return answer(
                400,
                json!({"data":{},"message":format!("Key: 'TableAlias.{k}' Error:Field validation failed on the 'required' tag")}),
            );
        }
    }
    if v["ip"]
        .as_str()
        .unwrap()
        .parse::<std::net::IpAddr>()
        .is_err()
    {
        return answer(
            400,
            json!({"data":{},"message":"Key: 'TableAlias.IP' Error:Field validation for 'IP' failed on the 'ip' tag"}),
        );
    }
    let name = v["alias"].as_str().unwrap().to_string();
    if name.chars().count() > 40 || v["captureID"].as_str().unwrap().len() > 20 {
        // pq: value too long: 201 with an empty body, nothing stored.
        f.violations
            .push(format!("too long, would be silently dropped: {v}"));
        return (StatusCode::CREATED, "").into_response();
    }
    let guid = format!(
        "{:08x}-0000-4000-8000-{:012x}",
        f.created.len(),
        f.created.len()
    );
    let mut row = v.clone();
    row["guid"] = json!(guid);
    row["id"] = json!(f.created.len() + 1);
    f.aliases.push(row);
    f.created.push(name);
    answer(
        201,
        json!({"data": guid, "message": "successfully created alias"}),
    )
}

async fn remove(State(s): State<S>, h: HeaderMap, Path(guid): Path<String>) -> Response {
    if let Err(r) = authorized(&s, &h) {
        return *r;
    }
    let mut f = s.lock().unwrap();
    let before = f.aliases.len();
    f.aliases.retain(|a| a["guid"] != guid.as_str());
    let found = f.aliases.len() < before;
    f.deleted += usize::from(found);
    answer(
        201,
        json!({"data": if found { guid } else { String::new() }, "message": "successfully deleted alias"}),
    )
}

async fn search(State(s): State<S>, h: HeaderMap, body: String) -> Response {
    if let Err(r) = authorized(&s, &h) {
        return *r;
    }
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    let mut f = s.lock().unwrap();
    let elems = v["param"]["search"]["100_default"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if elems.iter().any(|e| !e["value"].is_string()) {
        // homer-app panics and closes the connection; here: recorded as a violation.
        f.violations.push(format!("a non-string search value: {v}"));
    }
    let sid = elems
        .iter()
        .find(|e| e["name"] == "sid")
        .and_then(|e| e["value"].as_str())
        .unwrap_or("")
        .to_string();
    // Milliseconds, truncated to whole seconds.
    let from = v["timestamp"]["from"].as_u64().unwrap_or(0) / 1000 * 1000;
    let to = v["timestamp"]["to"].as_u64().unwrap_or(0) / 1000 * 1000;
    let data: Vec<Value> = f
        .rows
        .iter()
        .filter(|(s, t)| *s == sid && *t >= from && *t <= to)
        .map(|(s, t)| json!({"sid": s, "correlation_id": s, "create_date": t, "payloadType": 100, "proto": "log"}))
        .collect();
    answer(201, json!({"total": data.len(), "data": data, "keys": []}))
}

/// Homer 11's `POST /api/v4/auth/sessions` (`handlers/auth_v4.go`).
async fn auth_v4(State(s): State<S>, body: String) -> Response {
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    match (v["username"].as_str(), v["password"].as_str()) {
        (Some(""), _) | (_, Some("")) | (None, _) | (_, None) => answer(
            400,
            json!({"errors":[{"title":"Bad Request","detail":"Username and password are required"}]}),
        ),
        (Some("admin"), Some("sipcapture")) => {
            let mut f = s.lock().unwrap();
            let t = format!("tok-{}", f.tokens.len());
            f.tokens.push(t.clone());
            answer(
                201,
                json!({"data":{"token":t,"scope":"admin","user":{"admin":true}},"meta":{}}),
            )
        }
        _ => answer(
            401,
            json!({"errors":[{"title":"Unauthorized","detail":"Invalid credentials"}]}),
        ),
    }
}

/// Homer 11's `POST /api/v4/aliases` (`handlers/aliases_v4.go`).
async fn create_v4(State(s): State<S>, h: HeaderMap, body: String) -> Response {
    if let Err(r) = authorized(&s, &h) {
        return *r;
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return answer(
            400,
            json!({"errors":[{"title":"Bad Request","detail":"Invalid request body"}]}),
        );
    };
    let mut f = s.lock().unwrap();
    if v.get("captureID").is_some() || v.get("guid").is_some() {
        f.violations.push(format!("v3 fields sent to v4: {v}"));
    }
    if v["alias"].as_str().unwrap_or("").is_empty() || v["ip"].as_str().unwrap_or("").is_empty() {
        return answer(
            400,
            json!({"errors":[{"title":"Bad Request","detail":"alias and ip are required"}]}),
        );
    }
    let guid = format!("v4-{}", f.created.len());
    let mut row = v.clone();
    row["guid"] = json!(guid);
    f.aliases.push(row);
    f.created.push(v["alias"].as_str().unwrap().to_string());
    answer(201, json!({"data": guid, "meta": {}}))
}

/// Homer 11's `GET /api/v4/aliases` (`{"data":{"items":[…]},"meta":{…}}`).
async fn list_v4(State(s): State<S>, h: HeaderMap) -> Response {
    if let Err(r) = authorized(&s, &h) {
        return *r;
    }
    let items = s.lock().unwrap().aliases.clone();
    answer(200, json!({"data": {"items": items}, "meta": {}}))
}

/// Homer 11's `DELETE /api/v4/aliases/{id}`: 204, or 404 when not there.
async fn remove_v4(State(s): State<S>, h: HeaderMap, Path(guid): Path<String>) -> Response {
    if let Err(r) = authorized(&s, &h) {
        return *r;
    }
    let mut f = s.lock().unwrap();
    let before = f.aliases.len();
    f.aliases.retain(|a| a["guid"] != guid.as_str());
    if f.aliases.len() == before {
        return answer(
            404,
            json!({"errors":[{"title":"Not Found","detail":"Alias not found"}]}),
        );
    }
    f.deleted += 1;
    StatusCode::NO_CONTENT.into_response()
}

/// Starts the fake homer-app and its UDP collector; returns (API URL, collector URL, state).
async fn fake_homer(storing: bool) -> (String, String, S) {
    fake(storing, false).await
}

async fn fake(storing: bool, v4: bool) -> (String, String, S) {
    let s: S = Arc::new(Mutex::new(Fake {
        storing,
        v4,
        ..Default::default()
    }));
    let app = Router::new()
        .route("/api/v4/auth/sessions", post(auth_v4))
        .route("/api/v4/aliases", post(create_v4).get(list_v4))
        .route("/api/v4/aliases/{guid}", delete(remove_v4))
        .route("/api/v3/auth", post(auth))
        .route("/api/v3/alias", get(list).post(create))
        .route("/api/v3/alias/{guid}", delete(remove))
        .route("/api/v3/search/call/data", post(search))
        .with_state(s.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api: SocketAddr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let collector = udp.local_addr().unwrap();
    let s2 = s.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = udp.recv(&mut buf) {
            let Ok(p) = heplink::proto::decode(&buf[..n], heplink::proto::Mode::Strict) else {
                continue;
            };
            let mut f = s2.lock().unwrap();
            if f.storing && p.proto_type == Some(heplink::proto::ProtoType::LOG) {
                let sid =
                    String::from_utf8_lossy(p.correlation_id.unwrap_or_default()).into_owned();
                let ms = p.timestamp_micros().unwrap_or(0) / 1000;
                f.rows.push((sid, ms));
            }
        }
    });
    (format!("http://{api}"), format!("udp://{collector}"), s)
}

/// `heplink homer check` against `api` and the collector `to`, looking `wait` seconds.
fn homer_check_cmd(api: &str, to: &str, password: &str, wait: &str) -> std::process::Command {
    let mut c = common::bin();
    c.args([
        "homer",
        "check",
        "--homer-api",
        api,
        "--homer-user",
        "admin",
    ])
    .args(["--homer-password", password, "--to", to, "--wait", wait]);
    c
}

fn homer_check(api: &str, to: &str, password: &str) -> std::process::Output {
    homer_check_cmd(api, to, password, "2").output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn homer_check_finds_its_probe_when_homer_stores_it() {
    let (api, to, s) = fake_homer(true).await;
    let out = tokio::task::spawn_blocking(move || homer_check(&api, &to, "sipcapture"))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("ok: the probe went through"), "{text}");
    let f = s.lock().unwrap();
    assert_eq!(f.rows.len(), 1);
    assert!(f.rows[0].0.starts_with("heplink-probe-"));
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn homer_check_says_not_found_when_the_collector_does_not_store() {
    let (api, to, _s) = fake_homer(false).await;
    let out = tokio::task::spawn_blocking(move || homer_check(&api, &to, "sipcapture"))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("did not store it") && text.contains("no partition"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn homer_check_names_refused_credentials_and_an_unreachable_api() {
    let (api, to, _s) = fake_homer(true).await;
    let (a, t) = (api.clone(), to.clone());
    let out = tokio::task::spawn_blocking(move || homer_check(&a, &t, "wrong"))
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("refused the credentials") && err.contains("homer.password"),
        "{err}"
    );
    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let out = tokio::task::spawn_blocking(move || homer_check(&closed, &to, "sipcapture"))
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("is homer-app listening there"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_outlive_the_call_for_the_retention_then_go() {
    names_then_forgets(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_with_homer_11_s_v4_api() {
    names_then_forgets(true).await;
}

/// The aliases Homer holds now, sorted.
fn held(s: &std::sync::Mutex<Fake>) -> Vec<String> {
    let f = s.lock().unwrap();
    let mut v: Vec<String> = f
        .aliases
        .iter()
        .map(|a| {
            a["alias"]
                .as_str()
                .unwrap()
                .trim_end_matches('\u{2060}')
                .to_string()
        })
        .collect();
    v.sort();
    v
}

async fn names_then_forgets(v4: bool) {
    let (api, _, s) = fake(true, v4).await;
    // v3: what a killed earlier run left (its Janus alias and a PeerConnection's) and an
    // operator's own alias, which stays. v4: an empty table, so Janus's alias is made.
    let seeded = !v4;
    if seeded {
        let mut f = s.lock().unwrap();
        let capture = if v4 { "capture_id" } else { "captureID" };
        for (i, (name, ip, port)) in [
            ("janus janus-fixtures", "127.0.0.2", 0),
            ("gone (4242, publisher)", "127.0.0.9", 4000),
            ("Office PBX", "10.0.0.1", 5060),
        ]
        .into_iter()
        .enumerate()
        {
            f.aliases.push(
                json!({"guid": format!("old-{i}"), "alias": name, "ip": ip, "port": port,
                "mask": 32, capture: "0", "status": true}),
            );
        }
    }
    let (col, _got) = common::udp_receiver().await;
    let mut c = common::agent_config(&[format!("udp://{col}")]);
    c.homer.api = api;
    c.homer.password = "sipcapture".into();
    c.homer.alias_rate = 1000;
    c.homer.alias_retention_s = 3;
    let (a, stop) = common::start_agent(c).await;
    for b in common::fixture_bodies("videoroom-2pub-2sub-webrtc") {
        assert_eq!(
            common::post(a.bound.http.unwrap(), &[], b.as_bytes())
                .await
                .0,
            200
        );
    }
    let m = a.metrics.clone();
    // The keeper works apart from the events; wait until it named every PeerConnection.
    let clients = [
        "pubA ▲ · room 4242",
        "pubB◂pubA · room 4242",
        "s1◂pubB · room 4242",
        "s2◂pubA · room 4242",
        "s3◂pubA+pubB · room 4242",
    ];
    for _ in 0..100 {
        let h = held(&s);
        if clients.iter().all(|c| h.iter().any(|x| x == c)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The room ended (every PeerConnection hung up): the names are still there, and so
    // is every column heplink draws: Janus's media and signalling sides, the API client.
    let after_the_call = held(&s);
    for want in clients
        .iter()
        .chain(&["janus janus-fixtures", "janus api", "api 127.0.0.1"])
    {
        assert!(
            after_the_call.iter().any(|x| x == want),
            "{want} after the call: {after_the_call:?}"
        );
    }
    // Names fit homer-ui's header: distinct in their first 14 characters.
    let mut heads: Vec<String> = after_the_call
        .iter()
        .map(|n| n.chars().take(14).collect())
        .collect();
    let n = heads.len();
    heads.sort();
    heads.dedup();
    assert_eq!(heads.len(), n, "{after_the_call:?}");
    // After the retention (3 s) they go; Janus's and the API client's stay.
    let mut left = Vec::new();
    for _ in 0..100 {
        left = held(&s);
        if left
            .iter()
            .all(|n| !n.contains('◂') && !n.contains('▲') && !n.starts_with("gone"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    let f = s.lock().unwrap();
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    let made = |n: &str| {
        f.created
            .iter()
            .filter(|c| c.trim_end_matches('\u{2060}') == n)
            .count()
    };
    assert_eq!(
        made("janus janus-fixtures"),
        usize::from(!seeded),
        "made once, or taken over"
    );
    let mut want = vec!["api 127.0.0.1", "janus api", "janus janus-fixtures"];
    if seeded {
        // The operator's own alias is never touched; the earlier run's client alias went
        // with the retention, like this run's.
        want.insert(0, "Office PBX");
    }
    assert_eq!(left, want, "{left:?}");
    let port_any = f
        .aliases
        .iter()
        .find(|a| a["alias"] == "janus janus-fixtures")
        .unwrap();
    assert_eq!(
        (port_any["port"].as_u64(), port_any["mask"].as_u64()),
        (Some(0), Some(32))
    );
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(m.homer.failures.load(Relaxed), 0);
    assert_eq!(m.homer.held.load(Relaxed), 3);
    assert!(m.homer.expired.load(Relaxed) >= 5);
}

/// `homer check` against a collector that cannot take the probe: it says why, in words.
fn check_to(api: &str, to: &str, extra: &[&str]) -> String {
    let out = homer_check_cmd(api, to, "sipcapture", "1")
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn homer_check_says_nothing_listens_on_a_udp_port_that_refuses() {
    let (api, _, _s) = fake_homer(true).await;
    let to = format!("udp://127.0.0.1:{}", common::free_port());
    let text = tokio::task::spawn_blocking(move || check_to(&api, &to, &[]))
        .await
        .unwrap();
    assert!(
        text.contains("could not be sent to any collector")
            && text.contains("nothing listens on UDP"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn homer_check_names_a_tls_certificate_it_does_not_trust_or_that_names_another_host() {
    let (api, _, _s) = fake_homer(true).await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, issuer) = common::pki::make_ca(dir.path(), "test-ca");
    let (cert, key) = common::pki::leaf(dir.path(), "collector", &["collector.example"], &issuer);
    let port = common::free_port();
    let mut listener = common::bin()
        .args([
            "listen",
            "-q",
            "--no-flows",
            "--tls",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--duration", "20", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let to = format!("tls://127.0.0.1:{port}");
    // No CA given: the issuer is unknown.
    let (a, t) = (api.clone(), to.clone());
    let text = tokio::task::spawn_blocking(move || check_to(&a, &t, &[]))
        .await
        .unwrap();
    assert!(
        text.contains("unknown issuer") && text.contains("output.tls.ca_file"),
        "{text}"
    );
    // The right CA, but the certificate names another host.
    let ca_arg = ca.to_string_lossy().into_owned();
    let text = tokio::task::spawn_blocking(move || check_to(&api, &to, &["--tls-ca", &ca_arg]))
        .await
        .unwrap();
    assert!(
        text.contains("not valid for") && text.contains("output.tls.server_name"),
        "{text}"
    );
    let _ = listener.kill();
    let _ = listener.wait();
}

/// At `homer.max_aliases`, the names of PeerConnections that ended first make room for new
/// ones; with none ended, a new one is skipped and counted. Two rounds of the VideoRoom:
/// the second from another Janus at other addresses, after the first ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_oldest_ended_names_go_first() {
    let (api, _, s) = fake(true, false).await;
    let (col, _got) = common::udp_receiver().await;
    let mut c = common::agent_config(&[format!("udp://{col}")]);
    c.homer.api = api;
    c.homer.password = "sipcapture".into();
    c.homer.alias_rate = 1000;
    c.homer.alias_retention_s = 3600;
    // Janus, its API side, the API client, and the five PeerConnections of one round.
    c.homer.max_aliases = 8;
    let (a, stop) = common::start_agent(c).await;
    let first = common::fixture_bodies("videoroom-2pub-2sub-webrtc");
    let second: Vec<String> = first
        .iter()
        .map(|b| {
            b.replace("\"janus-fixtures\"", "\"janus-r2\"")
                .replace("127.0.0.", "127.0.1.")
        })
        .collect();
    let held_ips = || -> Vec<String> {
        let f = s.lock().unwrap();
        f.aliases
            .iter()
            .map(|a| a["ip"].as_str().unwrap().to_string())
            .collect()
    };
    for (round, bodies) in [first, second].iter().enumerate() {
        for b in bodies {
            let status = common::post(a.bound.http.unwrap(), &[], b.as_bytes())
                .await
                .0;
            assert_eq!(status, 200);
        }
        // Let the keeper catch up with the round.
        let mut last = Vec::new();
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = held_ips();
            if now == last && round == 0 && now.len() == 8 {
                break;
            }
            last = now;
        }
        assert!(held_ips().len() <= 8, "round {round}: over the cap");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = a.metrics.clone();
    stop.send(()).unwrap();
    a.wait().await.unwrap();
    let ips = held_ips();
    assert!(ips.len() <= 8, "{ips:?}");
    // The first round's clients (127.0.0.3-7) ended first: they made room.
    for old in [
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.6",
        "127.0.0.7",
    ] {
        assert!(!ips.iter().any(|i| i == old), "{old} still named: {ips:?}");
    }
    assert!(ips.iter().any(|i| i.starts_with("127.0.1.")), "{ips:?}");
    // Janus's own names stay whatever the cap.
    assert!(ips.iter().any(|i| i == "127.0.0.2"), "{ips:?}");
    use std::sync::atomic::Ordering::Relaxed;
    assert!(m.homer.expired.load(Relaxed) >= 5, "made room by the cap");
    assert!(
        m.homer.dropped.load(Relaxed) >= 1,
        "with none ended, skipped and counted"
    );
    assert_eq!(m.homer.failures.load(Relaxed), 0);
}
