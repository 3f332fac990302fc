//! HEP over TLS: `replay` → `listen --tls` byte for byte, `serve` to a TLS collector, a
//! wrong CA refused, the insecure mode, client certificates. Certificates are made here
//! with rcgen.

mod common;

use common::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::pki::{leaf, make_ca};

struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let (ca, issuer) = make_ca(dir, "test-ca");
    let (cert, key) = leaf(dir, "collector", &["localhost", "127.0.0.1"], &issuer);
    let (client_cert, client_key) = leaf(dir, "agent", &["agent.heplink"], &issuer);
    Pki {
        ca,
        cert,
        key,
        client_cert,
        client_key,
    }
}

fn listen_tls(p: &Pki, port: u16, count: usize, out: &Path, client_ca: bool, secs: u32) -> Child {
    let mut c = common::bin();
    c.args([
        "listen",
        "-q",
        "--no-flows",
        "--tls",
        &format!("127.0.0.1:{port}"),
        "--count",
        &count.to_string(),
    ])
    .args(["--duration", &secs.to_string()])
    .arg("--tls-cert")
    .arg(&p.cert)
    .arg("--tls-key")
    .arg(&p.key)
    .arg("-w")
    .arg(out);
    if client_ca {
        c.arg("--tls-client-ca").arg(&p.ca);
    }
    let child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    child
}

fn kamailio() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hep/kamailio-siptrace-v3.pcap")
}

/// `heplink replay` of the Kamailio capture, as fast as it goes, to `to`.
fn replay_kamailio(to: &str) -> Command {
    let mut c = common::bin();
    c.arg("replay").arg(kamailio()).args(["--to", to, "--fast"]);
    c
}

#[test]
fn replay_over_tls_is_byte_identical_with_the_right_ca() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let want = common::pcap_packets(&kamailio());
    let port = free_port();
    let out = dir.path().join("got.pcap");
    let mut l = listen_tls(&p, port, want.len(), &out, false, 20);
    let st = replay_kamailio(&format!("tls://localhost:{port}"))
        .args(["--keep-time", "--tls-ca"])
        .arg(&p.ca)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(l.wait().unwrap().success());
    assert_eq!(common::pcap_packets(&out), want);
}

#[test]
fn a_wrong_ca_is_refused_and_the_insecure_mode_is_explicit() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let (other_ca, _) = make_ca(dir.path(), "other-ca");
    let want = common::pcap_packets(&kamailio());
    let port = free_port();
    let out = dir.path().join("got.pcap");
    let mut l = listen_tls(&p, port, want.len(), &out, false, 20);
    let refused = replay_kamailio(&format!("tls://127.0.0.1:{port}"))
        .args(["--drain-timeout", "1", "--tls-ca"])
        .arg(&other_ca)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("could not be sent"), "{err}");
    // The reason shows at the default log level, once (not a line per retry).
    assert_eq!(
        err.matches("Cannot connect to the collector").count(),
        1,
        "{err}"
    );
    assert!(err.contains("UnknownIssuer"), "{err}");
    let ok = replay_kamailio(&format!("tls://127.0.0.1:{port}"))
        .args(["--keep-time", "--tls-insecure-skip-verify"])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(l.wait().unwrap().success());
    assert_eq!(
        common::pcap_packets(&out),
        want,
        "only the insecure run got through"
    );
}

#[test]
fn client_certificates_when_the_collector_asks() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let want = common::pcap_packets(&kamailio());
    let port = free_port();
    let out = dir.path().join("got.pcap");
    let mut l = listen_tls(&p, port, want.len(), &out, true, 20);
    let without = replay_kamailio(&format!("tls://localhost:{port}"))
        .args(["--drain-timeout", "1", "--tls-ca"])
        .arg(&p.ca)
        .output()
        .unwrap();
    assert_eq!(without.status.code(), Some(2));
    let with = replay_kamailio(&format!("tls://localhost:{port}"))
        .args(["--keep-time", "--tls-ca"])
        .arg(&p.ca)
        .arg("--tls-cert")
        .arg(&p.client_cert)
        .arg("--tls-key")
        .arg(&p.client_key)
        .status()
        .unwrap();
    assert!(with.success());
    assert!(l.wait().unwrap().success());
    assert_eq!(common::pcap_packets(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_sends_every_event_to_a_tls_collector() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let server = heplink::tls::server(&p.cert, &p.key, None).unwrap();
    let (mut rx, _, _, tls, _) = heplink::cmd::listen::bind(
        &[],
        &[],
        &["127.0.0.1:0".parse().unwrap()],
        Some(server),
        1 << 20,
    )
    .await
    .unwrap();
    let mut c = common::agent_config(&[format!("tls://localhost:{}", tls[0].port())]);
    c.output[0].tls.ca_file = Some(p.ca.clone());
    let (a, tx) = common::start_agent(c).await;
    for b in common::fixture_bodies("audiobridge-3users") {
        assert_eq!(
            common::post(a.bound.http.unwrap(), &[], b.as_bytes())
                .await
                .0,
            200
        );
    }
    tx.send(()).unwrap();
    a.wait().await.unwrap();
    let mut cids = Vec::new();
    let mut qos = 0;
    while let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        let p = heplink::proto::decode(&r.bytes, heplink::proto::Mode::Strict).unwrap();
        if common::is_derived(p.proto_type, p.payload.unwrap_or_default()) {
            qos += 1;
            continue;
        }
        cids.push(String::from_utf8(p.correlation_id.unwrap().to_vec()).unwrap());
    }
    cids.sort();
    assert_eq!(cids, common::expected_cids("audiobridge-3users"));
    assert_eq!(qos, common::expected_qos("audiobridge-3users"));
}

#[test]
fn janus_jsonl_replayed_over_tls_equals_convert_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let jsonl =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/janus/audiobridge-3users.jsonl");
    let want = common::convert_to_pcap(&jsonl, &dir.path().join("converted.pcap"));
    let port = free_port();
    let out = dir.path().join("got.pcap");
    let mut l = listen_tls(&p, port, want.len(), &out, false, 20);
    let st = common::bin()
        .arg("replay")
        .arg(&jsonl)
        .args([
            "--to",
            &format!("tls://localhost:{port}"),
            "--fast",
            "--keep-time",
            "--tls-ca",
        ])
        .arg(&p.ca)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(l.wait().unwrap().success());
    assert_eq!(common::pcap_packets(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_input_takes_janus_posts() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let (collector, got) = common::udp_receiver().await;
    let mut c = common::agent_config(&[format!("udp://{collector}")]);
    c.http.tls_cert = p.cert.display().to_string();
    c.http.tls_key = p.key.display().to_string();
    let (a, tx) = common::start_agent(c).await;
    let addr = a.bound.http.unwrap();
    let (cfg, name) = heplink::tls::client(
        &heplink::tls::TlsClient {
            ca_file: Some(p.ca.clone()),
            ..Default::default()
        },
        "localhost",
    )
    .unwrap();
    let bodies = common::fixture_bodies("echotest-http-only");
    for b in &bodies[..3] {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut s = tokio_rustls::TlsConnector::from(cfg.clone())
            .connect(name.clone(), tcp)
            .await
            .unwrap();
        let req = format!("POST /janus-events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len());
        s.write_all(req.as_bytes()).await.unwrap();
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp).await;
        assert!(
            String::from_utf8_lossy(&resp).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&resp)
        );
    }
    // Plain HTTP on the HTTPS port gets no answer.
    let (status, _) = tokio::time::timeout(
        Duration::from_secs(5),
        common::post(addr, &[], bodies[3].as_bytes()),
    )
    .await
    .unwrap_or((0, String::new()));
    assert_ne!(status, 200);
    tx.send(()).unwrap();
    a.wait().await.unwrap();
    assert_eq!(got.wait_for(3, 5).await, 3);
}
