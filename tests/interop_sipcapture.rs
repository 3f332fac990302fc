//! Interop with a real HEP collector and a real SIP parser: Debian's Kamailio with the
//! `sipcapture` module (Homer 5's collector) takes the SIP packets heplink makes of the
//! Janus SIP captures, parses each as SIP and stores it with `sip_capture()` into a
//! `db_text` table. Every message must be parsed (method or status, Call-ID), pass
//! Kamailio's own Content-Length check (the `sanity` module, flag 128) and be stored byte
//! for byte.
//!
//! Janus ≥ 1.3 (sofia-sip ≥ 1.13) reports the SIP it sends with bare LF line ends, and
//! its Content-Length counts the CRLF body that went on the wire. heplify-server refuses
//! such a payload ("no SIP eof found"); heplink sends it as SIP is written
//! (`heplink::janus::sip::sip_crlf`). Kamailio's parser is more lenient than heplify-server:
//! it accepts bare LF line ends and parses and stores the message as Janus reported it.
//! What it does see is the Content-Length that no longer matches: the copy of the
//! INVITE without heplink's normalisation is read with a body 11 bytes shorter than
//! declared and fails Kamailio's Content-Length check, where heplink's copy passes it.
//!
//! Needs `kamailio` with its `sipcapture`, `db_text`, `sanity` and `sl` modules (Debian's
//! `kamailio` package; installed by `.ci/run`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use heplink::proto::{decode, Mode, PacketBuilder, ProtoType};

/// Where distributions put Kamailio's modules.
const MODULE_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib/aarch64-linux-gnu/kamailio/modules",
    "/usr/lib64/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/local/lib64/kamailio/modules",
    "/usr/local/lib/kamailio/modules",
];

const MODULES: &[&str] = &[
    "sipcapture.so",
    "db_text.so",
    "sanity.so",
    "sl.so",
    "xlog.so",
];

fn module_dir() -> Option<&'static str> {
    MODULE_DIRS
        .iter()
        .copied()
        .find(|d| MODULES.iter().all(|m| Path::new(d).join(m).is_file()))
}

fn peers_here(test: &str) -> Option<&'static str> {
    let dir = module_dir();
    common::peers(
        test,
        &[
            (
                "kamailio",
                common::on_path("kamailio"),
                "apt-get install kamailio",
            ),
            (
                "kamailio's sipcapture, db_text, sanity, sl and xlog modules",
                dir.is_some(),
                "apt-get install kamailio",
            ),
        ],
    )
    .then(|| dir.unwrap())
}

/// The columns `sip_capture()` inserts (Kamailio 5.6 `sipcapture.c`), as a `db_text`
/// table definition. `db_text` has no 64-bit integer: `micro_ts` stays empty (Kamailio
/// logs "BIGINT not supported" for it and stores the row).
const SIP_CAPTURE_TABLE: &str = "date(int) micro_ts(int,null) method(str,null) \
reply_reason(str,null) ruri(str,null) ruri_user(str,null) ruri_domain(str,null) \
from_user(str,null) from_domain(str,null) from_tag(str,null) to_user(str,null) \
to_domain(str,null) to_tag(str,null) pid_user(str,null) contact_user(str,null) \
auth_user(str,null) callid(str,null) callid_aleg(str,null) via_1(str,null) \
via_1_branch(str,null) cseq(str,null) diversion(str,null) reason(str,null) \
content_type(str,null) auth(str,null) user_agent(str,null) source_ip(str,null) \
source_port(int) destination_ip(str,null) destination_port(int) contact_ip(str,null) \
contact_port(int,null) originator_ip(str,null) originator_port(int,null) \
correlation_id(str,null) custom_field1(str,null) custom_field2(str,null) \
custom_field3(str,null) proto(int) family(int) rtp_stat(str,null) type(int) \
node(str,null) msg(blob,null)";

/// Kamailio as a HEP collector in the foreground; stopped through its pid file (SIGTERM
/// stops its children, and `db_text` writes its tables to disk then).
struct Collector {
    child: Option<Child>,
    pid_file: PathBuf,
    log: PathBuf,
    db: PathBuf,
    port: u16,
}

impl Collector {
    fn start(dir: &Path, mpath: &str) -> Collector {
        let db = dir.join("db");
        std::fs::create_dir_all(&db).unwrap();
        std::fs::write(db.join("sip_capture"), format!("{SIP_CAPTURE_TABLE}\n")).unwrap();
        std::fs::write(
            db.join("version"),
            "table_name(str) table_version(int)\nsip_capture:1\n",
        )
        .unwrap();
        // Picked free a moment ago; Kamailio binds it below, and a start that failed to
        // bind is retried on another.
        let mut last = String::new();
        for _ in 0..3 {
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            match Collector::spawn(dir, mpath, &db, port) {
                Ok(c) => return c,
                Err(e) => last = e,
            }
        }
        panic!("kamailio did not start: {last}");
    }

    fn spawn(dir: &Path, mpath: &str, db: &Path, port: u16) -> Result<Collector, String> {
        // One receiving process (children=1): packets are handled in the order sent.
        // Every SIP message the HEP listener parses runs request_route or onreply_route,
        // which logs what Kamailio read of it and stores it with sip_capture(). The
        // sanity module only judges (autodrop 0, noreply 1): it neither stops the route
        // nor answers.
        let cfg = format!(
            r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
disable_tcp=yes
listen=udp:127.0.0.1:{port}
mpath="{mpath}/"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "sl.so"
loadmodule "sanity.so"
loadmodule "db_text.so"
loadmodule "sipcapture.so"
modparam("sanity", "autodrop", 0)
modparam("sanity", "noreply", 1)
modparam("db_text", "emptystring", 1)
modparam("sipcapture", "db_url", "text://{db}")
modparam("sipcapture", "hep_capture_on", 1)
modparam("sipcapture", "capture_on", 1)
modparam("sipcapture", "capture_node", "heplink-interop")
route[SANE] {{
    $var(sane) = "ok";
    if (!sanity_check("128")) {{
        $var(sane) = "bad";
    }}
}}
request_route {{
    route(SANE);
    xlog("L_ALERT", "SIPCAP|request|$rm|$ci|$cl|$bs|$var(sane)|\n");
    sip_capture();
    drop;
}}
onreply_route {{
    route(SANE);
    xlog("L_ALERT", "SIPCAP|reply|$rs|$ci|$cl|$bs|$var(sane)|\n");
    sip_capture();
    drop;
}}
"#,
            db = db.display()
        );
        let cfg_path = dir.join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let pid_file = dir.join("kamailio.pid");
        let log = dir.join("kamailio.log");
        let child = Command::new("kamailio")
            .args(["-DD", "-E", "-f"])
            .arg(&cfg_path)
            .arg("-Y")
            .arg(dir)
            .arg("-P")
            .arg(&pid_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("kamailio is not installed (apt-get install kamailio)");
        let mut c = Collector {
            child: Some(child),
            pid_file,
            log,
            db: db.to_path_buf(),
            port,
        };
        // Bound when /proc/net/udp lists the port (probing by binding it could steal
        // it from Kamailio).
        let deadline = Instant::now() + Duration::from_secs(20);
        while !udp_bound(port) {
            let exited = c.child.as_mut().unwrap().try_wait().unwrap().is_some();
            if exited || Instant::now() > deadline {
                let log = std::fs::read_to_string(&c.log).unwrap_or_default();
                return Err(format!("port {port}; its log:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(c)
    }

    /// The lines the routes logged so far.
    fn parsed(&self) -> Vec<Parsed> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(Parsed::from_log)
            .collect()
    }

    /// Sends one HEP packet and waits until Kamailio logged it as parsed SIP; `None` if
    /// it did not within `within`.
    fn send(&self, hep: &[u8], within: Duration) -> Option<Parsed> {
        let before = self.parsed().len();
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(hep, ("127.0.0.1", self.port)).unwrap();
        let deadline = Instant::now() + within;
        loop {
            let now = self.parsed();
            if now.len() > before {
                assert_eq!(now.len(), before + 1, "one packet, one message");
                return now.into_iter().next_back();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops Kamailio and returns the rows `sip_capture()` stored.
    fn stop(&mut self) -> Vec<Row> {
        self.shutdown();
        let table = std::fs::read_to_string(self.db.join("sip_capture")).unwrap();
        let mut lines = table.lines();
        let names: Vec<&str> = lines
            .next()
            .unwrap()
            .split(' ')
            .map(|c| c.split('(').next().unwrap())
            .collect();
        let col = |n: &str| names.iter().position(|c| *c == n).unwrap();
        let (method, callid, msg) = (col("method"), col("callid"), col("msg"));
        lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f = db_text_fields(l);
                assert_eq!(f.len(), names.len(), "a row of every column: {l}");
                Row {
                    method: String::from_utf8(f[method].clone()).unwrap(),
                    callid: String::from_utf8(f[callid].clone()).unwrap(),
                    msg: f[msg].clone(),
                }
            })
            .collect()
    }

    fn shutdown(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        } else {
            let _ = child.kill();
        }
        common::wait_or_kill(&mut child, Duration::from_secs(10));
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Whether a UDP socket is bound to 127.0.0.1:`port` (from /proc/net/udp).
fn udp_bound(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp").is_ok_and(|t| {
        t.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
    })
}

/// A row's fields: `db_text` separates them with `:` and escapes `\n`, `\r`, `\t`, `:`,
/// `\` and NUL with a backslash.
fn db_text_fields(line: &str) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    let mut it = line.bytes();
    while let Some(b) = it.next() {
        match b {
            b'\\' => {
                let e = it.next().expect("an escape at the end of a row");
                out.last_mut().unwrap().push(match e {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'0' => 0,
                    other => other,
                });
            }
            b':' => out.push(Vec::new()),
            _ => out.last_mut().unwrap().push(b),
        }
    }
    out
}

/// What Kamailio's routes logged of one message: `request` and its method, or `reply`
/// and its status; the Call-ID; Content-Length; the length of the body it read; the
/// sanity module's Content-Length verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    kind: String,
    first: String,
    call_id: String,
    content_length: String,
    body_len: String,
    sane: String,
}

impl Parsed {
    fn from_log(line: &str) -> Option<Parsed> {
        let rest = &line[line.find("SIPCAP|")? + "SIPCAP|".len()..];
        let f: Vec<&str> = rest.split('|').collect();
        // A line being written is read once it is whole (it ends with `|`).
        if f.len() < 7 {
            return None;
        }
        Some(Parsed {
            kind: f[0].into(),
            first: f[1].into(),
            call_id: f[2].into(),
            content_length: f[3].into(),
            body_len: f[4].into(),
            sane: f[5].into(),
        })
    }
}

/// A stored row: its method (or status), Call-ID and message.
#[derive(Debug)]
struct Row {
    method: String,
    callid: String,
    msg: Vec<u8>,
}

/// What a SIP message says of itself, read here without Kamailio: (`request` and its
/// method, or `reply` and its status; Call-ID).
fn expected(payload: &[u8]) -> (String, String, String) {
    let text = std::str::from_utf8(payload).unwrap();
    let first = text.lines().next().unwrap();
    let (kind, what) = match first.strip_prefix("SIP/2.0 ") {
        Some(rest) => ("reply", rest.split(' ').next().unwrap()),
        None => ("request", first.split(' ').next().unwrap()),
    };
    let call_id = text
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.eq_ignore_ascii_case("call-id") || n == "i").then(|| v.trim().to_string())
        })
        .expect("a Call-ID");
    (kind.into(), what.into(), call_id)
}

/// The SIP packets (HEP type 1) heplink makes of a Janus capture.
fn sip_packets(scenario: &str) -> Vec<Vec<u8>> {
    let mut lines = common::fixture_bodies(scenario).into_iter().map(Ok);
    let c = heplink::capture::jsonl::convert(&mut lines, Default::default(), Default::default())
        .unwrap();
    c.packets
        .into_iter()
        .map(|(_, b)| b.to_vec())
        .filter(|b| decode(b, Mode::Strict).unwrap().proto_type == Some(ProtoType::SIP))
        .collect()
}

fn payload(hep: &[u8]) -> Vec<u8> {
    decode(hep, Mode::Strict).unwrap().payload.unwrap().to_vec()
}

/// Sends each packet and checks Kamailio parsed it as the SIP it is, that the body it
/// read is as long as the Content-Length says (and its sanity check agrees); returns the
/// payloads sent.
fn all_parsed(k: &Collector, packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    for hep in packets {
        let p = payload(hep);
        let (kind, first, call_id) = expected(&p);
        let got = k.send(hep, Duration::from_secs(10)).unwrap_or_else(|| {
            panic!(
                "kamailio did not parse as SIP:\n{}\nits log:\n{}",
                String::from_utf8_lossy(&p),
                std::fs::read_to_string(&k.log).unwrap_or_default()
            )
        });
        assert_eq!(
            (got.kind.as_str(), got.first.as_str(), got.call_id.as_str()),
            (kind.as_str(), first.as_str(), call_id.as_str()),
            "what kamailio read of\n{}",
            String::from_utf8_lossy(&p)
        );
        let cl = if got.content_length == "<null>" {
            "0"
        } else {
            got.content_length.as_str()
        };
        assert_eq!(cl, got.body_len, "Content-Length vs body: {got:?}");
        assert_eq!(got.sane, "ok", "kamailio's Content-Length check: {got:?}");
        sent.push(p);
    }
    sent
}

/// Every payload sent is stored once, with its method (or status) and Call-ID, byte for
/// byte.
fn all_stored(rows: &[Row], sent: &[Vec<u8>]) {
    assert_eq!(rows.len(), sent.len(), "one row per message");
    for p in sent {
        let (_, first, call_id) = expected(p);
        let n = rows
            .iter()
            .filter(|r| &r.msg == p && r.method == first && r.callid == call_id)
            .count();
        assert_eq!(
            n,
            sent.iter().filter(|q| *q == p).count(),
            "stored rows of\n{}",
            String::from_utf8_lossy(p)
        );
    }
}

/// The `sip` of the first `sip-out` event of the capture whose message starts with
/// `method`: the message as Janus reported it.
fn janus_sip_out(scenario: &str, method: &str) -> String {
    common::fixture_events(scenario)
        .iter()
        .filter_map(|e| {
            let d = &e["event"]["data"];
            (d["event"] == "sip-out").then(|| d["sip"].as_str().unwrap().to_string())
        })
        .find(|s| s.starts_with(&format!("{method} ")))
        .expect("a sip-out of that method")
}

/// Janus 1.4.1's two calls: the 6 messages it sent (reported with bare LF) and the 6 it
/// received are each parsed and stored as the SIP they are. The INVITE as Janus reported
/// it, without heplink's normalisation, is a message whose body Kamailio reads 11 bytes
/// short of its Content-Length.
#[test]
fn kamailio_sipcapture_stores_janus_1_4_sip() {
    let Some(mpath) = peers_here("kamailio_sipcapture_janus_1_4") else {
        return;
    };
    let started = Instant::now();
    let scenario = "1.4.1/sip-call-simple";
    let packets = sip_packets(scenario);
    assert_eq!(packets.len(), 12, "6 sip-out and 6 sip-in");
    let dir = tempfile::tempdir().unwrap();
    let mut k = Collector::start(dir.path(), mpath);
    let mut sent = all_parsed(&k, &packets);

    // The INVITE with SDP as Janus reported it (bare LF; Content-Length 260 counts the
    // CRLF body sent on the wire), in a packet otherwise like heplink's.
    let raw = janus_sip_out(scenario, "INVITE");
    assert!(!raw.contains('\r') && raw.contains("\nContent-Length: 260\n"));
    let (_, _, call_id) = expected(raw.as_bytes());
    let normalised = packets
        .iter()
        .find(|p| {
            let e = expected(&payload(p));
            e.1 == "INVITE" && e.2 == call_id
        })
        .unwrap();
    let d = decode(normalised, Mode::Strict).unwrap();
    assert_ne!(d.payload.unwrap(), raw.as_bytes(), "heplink rewrote it");
    let mut b = PacketBuilder::new(ProtoType::SIP, raw.clone().into_bytes())
        .udp(
            (d.src_ip.unwrap(), d.src_port.unwrap()),
            (d.dst_ip.unwrap(), d.dst_port.unwrap()),
        )
        .timestamp_micros(d.timestamp_micros().unwrap());
    if let Some(id) = d.capture_id {
        b = b.capture_id(id);
    }
    let bare = b.to_bytes().unwrap();
    let got = k
        .send(&bare, Duration::from_secs(5))
        .expect("kamailio parses bare LF too");
    // Unlike heplify-server, Kamailio's parser takes bare LF line ends: the message is
    // parsed (and stored below) as an INVITE of its call. Its body, though, is the 249
    // bytes Janus reported against the 260 it declares, and Kamailio's own
    // Content-Length check (sanity, 128) refuses it.
    assert_eq!(
        got,
        Parsed {
            kind: "request".into(),
            first: "INVITE".into(),
            call_id: call_id.clone(),
            content_length: "260".into(),
            body_len: "249".into(),
            sane: "bad".into(),
        }
    );
    sent.push(raw.into_bytes());

    all_stored(&k.stop(), &sent);
    eprintln!(
        "kamailio sipcapture: 12/12 of heplink's SIP parsed and stored; the bare-LF INVITE \
         parsed with Content-Length 260 against a 249-byte body ({:.1?})",
        started.elapsed()
    );
}

/// Janus 1.1.2's call (CRLF already): every SIP message is parsed and stored as sent.
#[test]
fn kamailio_sipcapture_stores_janus_1_1_sip() {
    let Some(mpath) = peers_here("kamailio_sipcapture_janus_1_1") else {
        return;
    };
    let started = Instant::now();
    let packets = sip_packets("sip-call-simple");
    assert_eq!(packets.len(), 12, "6 sip-out and 6 sip-in");
    let dir = tempfile::tempdir().unwrap();
    let mut k = Collector::start(dir.path(), mpath);
    let sent = all_parsed(&k, &packets);
    all_stored(&k.stop(), &sent);
    eprintln!(
        "kamailio sipcapture: {}/{} of heplink's SIP parsed and stored ({:.1?})",
        sent.len(),
        packets.len(),
        started.elapsed()
    );
}
