//! Messages that say what happened and what to do, naming the setting or the file.

mod common;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = common::bin().args(args).output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    (out.status.code(), text)
}

#[test]
fn decode_says_a_file_is_not_a_capture_and_an_empty_one_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "# hello world\n").unwrap();
    let (code, msg) = run(&["decode", text.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(msg.contains("not a pcap, pcapng or HEP stream"), "{msg}");
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, "").unwrap();
    let (code, msg) = run(&["decode", empty.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(msg.contains("the file is empty"), "{msg}");
    // Janus JSON given to decode: pointed at the right command.
    let jsonl = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/janus/sip-call-simple.jsonl"
    );
    let (code, msg) = run(&["decode", jsonl]);
    assert_eq!(code, Some(2));
    assert!(
        msg.contains("use `heplink convert` or `heplink replay`"),
        "{msg}"
    );
}

#[test]
fn replay_refuses_a_file_that_is_no_capture_instead_of_sending_it() {
    let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let (code, msg) = run(&["replay", readme, "--to", "udp://127.0.0.1:9"]);
    assert_eq!(code, Some(2));
    assert!(
        msg.contains("README.md: not a pcap, pcapng or HEP stream"),
        "{msg}"
    );
    assert!(!msg.contains("replayed"), "{msg}");
}

#[test]
fn convert_says_a_pcap_is_not_janus_jsonl() {
    let pcap = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/hep/kamailio-siptrace-v3.pcap"
    );
    let (code, msg) = run(&["convert", pcap]);
    assert_eq!(code, Some(2));
    assert!(msg.contains("not Janus JSONL"), "{msg}");
    assert!(msg.contains("heplink decode"), "{msg}");
}

#[test]
fn listen_names_the_address_in_use() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, msg) = run(&["listen", "--udp", &addr, "--duration", "0.2"]);
    assert_eq!(code, Some(2));
    assert!(
        msg.contains(&format!("cannot listen on UDP {addr}")),
        "{msg}"
    );
}

#[test]
fn check_names_the_setting_of_a_missing_file_a_bad_directory_and_a_host_name() {
    let (code, msg) = run(&["check", "--to", "tls://x:1", "--tls-ca", "/nonexistent.pem"]);
    assert_eq!(code, Some(2));
    assert!(msg.contains("output.tls.ca_file (--tls-ca)"), "{msg}");
    assert!(msg.contains("/nonexistent.pem"), "{msg}");
    let (code, msg) = run(&[
        "check",
        "--to",
        "tcp://x:1",
        "--spool-dir",
        "/etc/passwd/spool",
    ]);
    assert_eq!(code, Some(2));
    assert!(msg.contains("spool.dir (--spool-dir)"), "{msg}");
    let (code, msg) = run(&["check", "--http", "localhost:8090"]);
    assert_eq!(code, Some(2));
    assert!(
        msg.contains("give an IP address and a port, e.g. 127.0.0.1:8090"),
        "{msg}"
    );
}

#[test]
fn a_bad_environment_value_is_named_by_its_variable_and_a_bad_file_value_says_what_to_write() {
    let out = common::bin()
        .arg("check")
        .env("HEPLINK_QUEUE_CAPACITY", "lots")
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        msg.contains("environment variable HEPLINK_QUEUE_CAPACITY") && msg.contains("'lots'"),
        "{msg}"
    );
    // The same value on the command line is named by its flag.
    let (code, msg) = run(&["check", "--queue-capacity", "lots"]);
    assert_eq!(code, Some(2));
    assert!(msg.contains("'--queue-capacity"), "{msg}");
    assert!(!msg.contains("environment"), "{msg}");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "[queue]\ncapacity = \"lots\"\n").unwrap();
    let (code, msg) = run(&["check", f.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        msg.contains("capacity = \"lots\"") && msg.contains("expected a whole number"),
        "{msg}"
    );
    assert!(!msg.contains("usize"), "{msg}");
}

#[test]
fn flow_says_when_there_is_nothing_to_draw_and_draws_listen_s_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.html");
    let flow = |file: &std::path::Path| {
        run(&["flow", file.to_str().unwrap(), "-o", out.to_str().unwrap()])
    };
    // `listen --jsonl` output: drawn (it used to be refused).
    let listen = dir.path().join("got.jsonl");
    std::fs::write(
        &listen,
        "{\"index\":0,\"version\":3,\"proto_type\":100,\"src_ip\":\"10.0.0.1\",\"src_port\":5,\
         \"dst_ip\":\"10.0.0.2\",\"dst_port\":6,\"ts_sec\":1,\"ts_usec\":0,\
         \"correlation_id\":\"x\",\"payload\":\"{}\"}\n",
    )
    .unwrap();
    let (code, msg) = flow(&listen);
    assert_eq!(code, Some(0), "{msg}");
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(page.contains(r#"data-cid="x""#) && page.contains("10.0.0.2:6"));
    std::fs::remove_file(&out).unwrap();
    // Only rejected packets in it: nothing to draw.
    std::fs::write(
        &listen,
        "{\"index\":0,\"error\":\"bad magic\",\"offset\":0}\n",
    )
    .unwrap();
    let (code, msg) = flow(&listen);
    assert_eq!(code, Some(2));
    assert!(msg.contains("no flows to draw"), "{msg}");
    let nothing = dir.path().join("nothing.jsonl");
    std::fs::write(&nothing, "{\"not\":\"an event\"}\n").unwrap();
    let (code, msg) = flow(&nothing);
    assert_eq!(code, Some(2));
    assert!(msg.contains("no flows to draw"), "{msg}");
    assert!(!out.exists(), "no empty page written");
}

#[test]
fn replay_to_a_closed_tcp_port_says_why() {
    let port = common::free_port();
    let jsonl = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/janus/sip-call-simple.jsonl"
    );
    let to = format!("tcp://127.0.0.1:{port}");
    let (code, msg) = run(&[
        "replay",
        jsonl,
        "--to",
        &to,
        "--fast",
        "--drain-timeout",
        "1",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        msg.contains("could not be sent") && msg.contains("Connection refused"),
        "{msg}"
    );
}

#[test]
fn serve_says_once_that_a_collector_host_does_not_resolve_and_drops_nothing_it_had_not() {
    use std::io::BufRead;
    let mut child = common::bin()
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--ws",
            "off",
            "--metrics",
            "off",
        ])
        .args([
            "--to",
            "udp://nonexistent.invalid:9060",
            "--shutdown-timeout-ms",
            "300",
        ])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut msg = String::new();
    // The first failure (however slow this machine's resolver is), then a few retries'
    // worth of time (100, 200, 400, 800 ms…).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !msg.contains("does not resolve") && std::time::Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
            msg.push_str(&l);
            msg.push('\n');
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(2000));
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap();
    while let Ok(l) = rx.recv_timeout(std::time::Duration::from_millis(500)) {
        msg.push_str(&l);
        msg.push('\n');
    }
    assert_eq!(
        msg.matches("host name does not resolve").count(),
        1,
        "once, not per retry: {msg}"
    );
    assert!(msg.contains("nonexistent.invalid:9060"), "{msg}");
    assert!(
        !msg.contains("packets dropped"),
        "nothing was queued: {msg}"
    );
}

#[test]
fn an_open_websocket_beside_a_locked_http_input_is_refused_and_check_warns_of_open_inputs() {
    let out = common::bin()
        .args([
            "check",
            "--http",
            "0.0.0.0:8090",
            "--http-username",
            "janus",
        ])
        .args(["--http-password", "s3cret", "--ws", "0.0.0.0:8091"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ws.token") && err.contains("0.0.0.0:8091"),
        "{err}"
    );
    // `serve` refuses the same at start, before it listens.
    let out = common::bin()
        .args(["serve", "--to", "udp://127.0.0.1:9", "--http", "0.0.0.0:0"])
        .args([
            "--http-username",
            "janus",
            "--http-password",
            "s3cret",
            "--ws",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ws.token"));
    // With a token, or on loopback, it starts; beyond loopback without credentials,
    // `check` warns.
    let out = common::bin()
        .args(["check", "--http", "0.0.0.0:8090", "--ws", "127.0.0.1:8091"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: the HTTP input listens on 0.0.0.0:8090 without credentials"),
        "{err}"
    );
    assert!(!err.contains("WebSocket input listens"), "{err}");
}
