//! Interop with a real HEP sender: Debian's Kamailio with `siptrace` mirroring every SIP
//! message as HEP (v3, and v2) to a loopback UDP port, while sipp (`sip-tester`) makes
//! calls through it. Every packet must pass the strict decoder, and every SIP message sipp
//! sent must arrive as a HEP payload byte for byte. Needs `kamailio` and `sipp` (installed
//! by `.ci/run`).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use heplink::proto::{decode, Mode, ProtoType, Version};

const CALLS: usize = 3;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn port_taken(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_err()
}

/// Kamailio in the foreground; stopped through its pid file (SIGTERM stops its children).
struct Kamailio {
    child: Child,
    pid_file: std::path::PathBuf,
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        common::wait_or_kill(&mut self.child, Duration::from_secs(5));
    }
}

fn start_kamailio(
    dir: &Path,
    sip_port: u16,
    uas_port: u16,
    hep_port: u16,
    hep_version: u8,
) -> Kamailio {
    let cfg = format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
listen=udp:127.0.0.1:{sip_port}
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "siptrace.so"
modparam("siptrace", "duplicate_uri", "sip:127.0.0.1:{hep_port}")
modparam("siptrace", "hep_mode_on", 1)
modparam("siptrace", "hep_version", {hep_version})
modparam("siptrace", "hep_capture_id", 4242)
modparam("siptrace", "trace_to_database", 0)
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_mode", 1)
request_route {{
    $du = "sip:127.0.0.1:{uas_port}";
    t_relay();
}}
"#
    );
    let cfg_path = dir.join("kamailio.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let pid_file = dir.join("kamailio.pid");
    let log = std::fs::File::create(dir.join("kamailio.log")).unwrap();
    let child = Command::new("kamailio")
        .args(["-DD", "-E", "-f"])
        .arg(&cfg_path)
        .arg("-Y")
        .arg(dir)
        .arg("-P")
        .arg(&pid_file)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("kamailio is not installed (apt-get install kamailio)");
    let k = Kamailio { child, pid_file };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !port_taken(sip_port) {
        assert!(
            Instant::now() < deadline,
            "kamailio did not start: see {}",
            dir.join("kamailio.log").display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    k
}

fn sipp(dir: &Path, role: &str, port: u16, target: Option<SocketAddr>) -> Command {
    let mut c = Command::new("sipp");
    c.args(["-sn", role, "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", &CALLS.to_string(), "-trace_msg", "-message_file"])
        .arg(dir.join(format!("{role}.messages")))
        .args(["-timeout", "20s", "-timeout_error"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(t) = target {
        c.args(["-d", "50"]).arg(t.to_string());
    }
    c
}

/// The messages sipp logged as sent (`UDP message sent (N bytes):` then a blank line).
fn sent_messages(log: &[u8]) -> Vec<Vec<u8>> {
    let marker = b"UDP message sent (";
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = find(&log[pos..], marker) {
        let start = pos + i + marker.len();
        let end = start + find(&log[start..], b" bytes):\n\n").unwrap();
        let n: usize = std::str::from_utf8(&log[start..end])
            .unwrap()
            .parse()
            .unwrap();
        let body = end + b" bytes):\n\n".len();
        out.push(log[body..body + n].to_vec());
        pos = body + n;
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn run(hep_version: u8) {
    if !common::peers(
        &format!("kamailio_siptrace_hepv{hep_version}"),
        &[
            (
                "kamailio",
                common::on_path("kamailio"),
                "apt-get install kamailio",
            ),
            (
                "sipp",
                common::on_path("sipp"),
                "apt-get install sip-tester",
            ),
        ],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Kamailio's packets wait in the socket until sipp is done: a large buffer keeps them.
    let (hep, _) =
        heplink::cmd::listen::udp_receive_socket("127.0.0.1:0".parse().unwrap()).unwrap();
    hep.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let hep_port = hep.local_addr().unwrap().port();
    let (sip_port, uas_port, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let kamailio = start_kamailio(dir.path(), sip_port, uas_port, hep_port, hep_version);

    let mut uas = sipp(dir.path(), "uas", uas_port, None)
        .spawn()
        .expect("sipp is not installed");
    std::thread::sleep(Duration::from_millis(300));
    let uac = sipp(
        dir.path(),
        "uac",
        uac_port,
        Some(([127, 0, 0, 1], sip_port).into()),
    )
    .status()
    .unwrap();
    assert!(uac.success(), "sipp uac failed: {uac}");
    assert!(uas.wait().unwrap().success());

    let mut packets = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = hep.recv(&mut buf) {
        packets.push(buf[..n].to_vec());
    }
    drop(kamailio);
    if std::env::var_os("HEPLINK_REGEN_FIXTURES").is_some() {
        write_fixture(hep_version, sip_port, hep_port, &packets);
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut received_from = Vec::new();
    assert!(!packets.is_empty(), "kamailio sent no HEP");
    for raw in &packets {
        let p =
            decode(raw, Mode::Strict).unwrap_or_else(|e| panic!("kamailio packet rejected: {e}"));
        let want = if hep_version == 3 {
            Version::V3
        } else {
            Version::V2
        };
        assert_eq!(p.version, want);
        assert_eq!(p.proto_type, Some(ProtoType::SIP));
        assert_eq!(p.ip_proto, Some(17));
        assert_eq!(p.capture_id, Some(4242));
        // Time is read correctly (byte order) when it is within a minute of now.
        let ts = u64::from(p.ts_sec.unwrap());
        assert!(ts.abs_diff(now) < 60, "timestamp {ts} vs now {now}");
        assert!(p.ts_usec.unwrap() < 1_000_000);
        let payload = p.payload.unwrap();
        assert!(
            find(payload, b"Call-ID: ").is_some(),
            "not SIP: {:?}",
            String::from_utf8_lossy(payload)
        );
        received_from.push((p.src_port.unwrap(), p.dst_port.unwrap(), payload.to_vec()));
    }
    // Each message sipp sent reached kamailio and was mirrored with sipp as source.
    for (role, port) in [("uac", uac_port), ("uas", uas_port)] {
        let log = std::fs::read(dir.path().join(format!("{role}.messages"))).unwrap();
        let sent = sent_messages(&log);
        // uac: INVITE, ACK, BYE per call; uas: 180, 200, 200 per call.
        assert_eq!(sent.len(), 3 * CALLS, "{role} sent");
        for m in &sent {
            assert!(
                received_from
                    .iter()
                    .any(|(s, d, pl)| *s == port && *d == sip_port && pl == m),
                "message sipp {role} sent is missing from the HEP mirror:\n{}",
                String::from_utf8_lossy(m)
            );
        }
    }
    // Kamailio also mirrors what it sends: at least as many packets as sipp messages, twice.
    assert!(packets.len() >= 2 * 6 * CALLS, "{} packets", packets.len());
}

/// Regenerates `fixtures/hep/kamailio-siptrace-v<N>.pcap` from this run's packets.
fn write_fixture(hep_version: u8, sip_port: u16, hep_port: u16, packets: &[Vec<u8>]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "fixtures/hep/kamailio-siptrace-v{hep_version}.pcap"
    ));
    let mut w =
        heplink::capture::pcap_writer::PcapWriter::new(std::fs::File::create(&path).unwrap())
            .unwrap();
    let src: SocketAddr = ([127, 0, 0, 1], sip_port).into();
    let dst: SocketAddr = ([127, 0, 0, 1], hep_port).into();
    for (i, p) in packets.iter().enumerate() {
        w.udp(1_000_000 * i as u64, src, dst, p).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn kamailio_siptrace_hepv3_with_sipp_calls() {
    run(3);
}

#[test]
fn kamailio_siptrace_hepv2_with_sipp_calls() {
    run(2);
}
