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
