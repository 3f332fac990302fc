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
