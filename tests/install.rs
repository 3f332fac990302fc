//! The install story: man pages and completions from the command-line definitions, and a
//! hardened systemd unit that `systemd-analyze verify` accepts.

mod common;

#[test]
fn man_pages_and_completions_come_from_the_command_line() {
    let out = common::bin().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH heplink 1"), "{page}");
    assert!(page.contains("serve"), "every command is listed");
    let dir = tempfile::tempdir().unwrap();
    let st = common::bin()
        .args(["man", "--out"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    for cmd in ["serve", "decode", "listen", "replay", "check"] {
        let p = std::fs::read_to_string(dir.path().join(format!("heplink-{cmd}.1"))).unwrap();
        assert!(p.contains(&format!(".TH heplink-{cmd} 1")), "{cmd}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = common::bin().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains("heplink") && script.contains("serve"),
            "{shell}"
        );
    }
}

#[test]
fn the_systemd_unit_verifies() {
    if !common::peers(
        "the_systemd_unit_verifies",
        &[(
            "systemd-analyze",
            common::on_path("systemd-analyze"),
            "apt-get install systemd",
        )],
    ) {
        return;
    }
    // The unit as shipped, with the binary and configuration paths of this build.
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("dist/heplink.service")).unwrap();
    let cfg = root.join("heplink.example.toml");
    let unit = unit.replace(
        "ExecStart=/usr/bin/heplink serve --config /etc/heplink/heplink.toml",
        &format!(
            "ExecStart={} serve --config {}",
            env!("CARGO_BIN_EXE_heplink"),
            cfg.display()
        ),
    );
    assert!(unit.contains("DynamicUser=yes") && unit.contains("ProtectSystem=strict"));
    let path = dir.path().join("heplink.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Lines about the host's own units are not ours; any line naming this unit is.
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("heplink")).collect();
    assert!(out.status.success() && ours.is_empty(), "{err}");
    // The configuration the unit points at is valid.
    let st = common::bin().arg("check").arg(&cfg).output().unwrap();
    assert!(st.status.success());
}
