//! Logs for services: no colour codes into pipes and files, JSON on request, and an
//! invalid log filter is an error that names the variable.

mod common;

fn listen_briefly(envs: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut c = common::bin();
    c.args(["listen", "-q", "--udp", "127.0.0.1:0", "--duration", "0.3"])
        .args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.env_remove("NO_COLOR");
    c.output().unwrap()
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let out = listen_briefly(&[("HEPLINK_LOG", "info")], &[]);
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("Listening for HEP over UDP"), "{err}");
    assert!(!err.contains('\u{1b}'), "ANSI codes in a pipe: {err:?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let out = listen_briefly(&[("HEPLINK_LOG", "info")], &["--log-format", "json"]);
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty());
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
}

#[test]
fn an_invalid_log_filter_is_an_error_naming_the_variable() {
    let out = listen_briefly(&[("HEPLINK_LOG", "heplink=loud")], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("HEPLINK_LOG=\"heplink=loud\" is not a valid log filter"),
        "{err}"
    );
}

/// sampleevh's `compress = true` loses batches in Janus (a fixed 8 KiB buffer): the agent
/// says so once, the first time a gzip body arrives, not per body.
#[test]
fn gzip_bodies_from_janus_are_warned_of_once() {
    use std::io::{Read, Write};
    let port = common::free_port();
    let serve = common::bin()
        .args(["serve", "--to", "udp://127.0.0.1:9", "--metrics", "off"])
        .args(["--http", &format!("127.0.0.1:{port}")])
        .env("HEPLINK_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let body = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(br#"{"emitter":"j","type":256,"subtype":1,"event":{}}"#)
            .unwrap();
        e.finish().unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut answered = 0;
    while answered < 2 {
        assert!(std::time::Instant::now() < deadline, "serve did not answer");
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            std::thread::sleep(std::time::Duration::from_millis(50));
            continue;
        };
        let head = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        answered += 1;
    }
    let st = std::process::Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = serve.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("fixed 8 KiB buffer").count(), 1, "{err}");
}
