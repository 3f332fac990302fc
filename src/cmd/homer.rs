//! `heplink homer check`: sends a probe event through the configured collectors, reads it
//! back through homer-app's API, and says what is wrong when it is not there.
//!
//! The probe is one LOG packet (HEP type 100) with a fresh correlation id
//! `heplink-probe-<hex>`, stamped now, sent exactly as `serve` sends events. It is looked
//! for by that id for 5 s (homer-app's writer flushes every second; the reference found
//! probes after 0.22–0.66 s). Exit status 0 only when it is stored and found.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::homer::{Api, ApiError};
use crate::output::{spawn, SendOptions};

/// Arguments of `heplink homer`.
#[derive(Debug, clap::Args)]
pub struct HomerArgs {
    /// What to do.
    #[command(subcommand)]
    pub what: HomerCommand,
}

/// `heplink homer` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum HomerCommand {
    /// Send a probe event through the collectors and find it through Homer's API.
    ///
    /// Exit status: 0 when the probe is stored and found, 1 when it is not, 2 when the
    /// check cannot run (no API configured, credentials refused, API unreachable).
    Check {
        /// TOML configuration file (`[homer]`, `[[output]]`).
        #[arg(long, short, env = "HEPLINK_CONFIG")]
        config: Option<std::path::PathBuf>,
        /// Settings that override the file.
        #[command(flatten)]
        overrides: crate::config::Overrides,
        /// How long to look for the probe, seconds.
        #[arg(long, default_value_t = 5.0)]
        wait: f64,
    },
}

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored and found, after this long.
    Found(Duration),
    /// Not found: why it may be.
    Missing(String),
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Runs the check with `cfg`'s collectors and API, looking for `wait`.
pub async fn check(cfg: &Config, wait: Duration) -> anyhow::Result<Outcome> {
    if cfg.homer.api.is_empty() {
        anyhow::bail!("no Homer API configured: set homer.api (--homer-api http://HOST:9080) and its user and password");
    }
    let mut api = Api::new(
        &cfg.homer.api,
        &cfg.homer.user,
        &cfg.homer.password,
        Default::default(),
    )?;
    // Credentials first: a probe is pointless if it cannot be looked for.
    api.login().await?;
    let ts = now_us();
    let sid = format!(
        "heplink-probe-{:012x}",
        ts ^ u64::from(std::process::id()) << 20
    );
    let packet = probe(cfg, &sid, ts)?;
    let failed = send_probe(cfg, &packet).await?;
    let unsent: Vec<String> = failed.iter().map(|(u, _)| u.clone()).collect();
    if unsent.len() == cfg.output.len() {
        return Ok(Outcome::Missing(format!(
            "the probe could not be sent to any collector: {}",
            failed
                .iter()
                .map(|(u, why)| format!("{u}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let started = Instant::now();
    let from_ms = ts / 1000 - 60_000;
    loop {
        let n = api
            .count_log_rows(&sid, from_ms, ts / 1000 + 60_000)
            .await?;
        if n > 0 {
            return Ok(Outcome::Found(started.elapsed()));
        }
        if started.elapsed() >= wait {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut why = format!(
        "the probe {sid} was sent to {} but Homer did not store it within {:.1} s. Likely: \
         the collector is not the heplify-server behind this homer-app (or its LOG table \
         is off); its clock or this one is off by more than a day (no partition for the \
         probe's time: heplify-server logs \"no partition of relation\"); or its database \
         writes fail (see its log).",
        cfg.output
            .iter()
            .map(|o| o.url.to_string())
            .filter(|u| !unsent.contains(u))
            .collect::<Vec<_>>()
            .join(", "),
        wait.as_secs_f64()
    );
    for (u, reason) in &failed {
        why.push_str(&format!(" Not sent to {u}: {reason}."));
    }
    Ok(Outcome::Missing(why))
}

/// The probe: a LOG packet with correlation id `sid`, stamped `ts`.
fn probe(cfg: &Config, sid: &str, ts: u64) -> anyhow::Result<bytes::Bytes> {
    let payload = serde_json::json!({
        "label": "heplink probe",
        "heplink": {"cid": sid, "probe": true},
        "event": {"emitter": "heplink-probe", "type": 4, "timestamp": ts,
                  "event": {"schema": "heplink.probe", "data": {}}}
    })
    .to_string();
    let mut b = heplink_proto::PacketBuilder::new(heplink_proto::ProtoType::LOG, payload)
        .correlation_id(sid.to_string());
    b.ip_proto = Some(heplink_proto::registry::ip_proto::TCP);
    (b.src_ip, b.src_port) = (Some([127, 0, 0, 1].into()), Some(0));
    (b.dst_ip, b.dst_port) = (Some([127, 0, 0, 1].into()), Some(0));
    b.set_timestamp_micros(ts);
    b.capture_id = Some(cfg.hep.capture_id);
    b.node_name = Some(bytes::Bytes::from("heplink-probe"));
    Ok(b.to_bytes()?)
}

/// Sends `packet` to every collector, as `serve` sends: each TCP/TLS collector's own
/// sender, ended cleanly; over UDP from a connected socket, which hears the refusal of a
/// port where nothing listens (ICMP port unreachable). Returns the collectors it could not
/// be sent to, each with why in words.
async fn send_probe(cfg: &Config, packet: &bytes::Bytes) -> anyhow::Result<Vec<(String, String)>> {
    let mut unsent = Vec::new();
    for o in &cfg.output {
        if o.url.is_udp() {
            if let Err(why) = udp_probe(&o.url.address, packet).await {
                unsent.push((o.url.to_string(), why));
            }
            continue;
        }
        let url = o.url.clone();
        let m = Arc::new(crate::metrics::CollectorMetrics {
            url: o.url.to_string(),
            ..Default::default()
        });
        let (q, task) = spawn(
            url,
            SendOptions {
                capacity: 4,
                max_bytes: crate::output::DEFAULT_QUEUE_BYTES,
                policy: crate::output::WhenFull::Block,
                mtu: o.mtu,
                fin_confirms: true,
                failback: Duration::from_secs(o.failback_s),
                stall: Duration::from_secs(o.stall_s.max(1)),
                read_grace: Duration::from_millis(o.read_grace_ms),
                udp_rate: 0,
                udp_burst: 1,
            },
            &o.tls,
            None,
            m.clone(),
        )?;
        let progress = q.progress().clone();
        q.push(packet.clone()).await;
        drop(q);
        // Whether the probe went out: the sender's progress (control state), not a counter.
        if tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_err()
            || progress.sent() == 0
        {
            unsent.push((o.url.to_string(), why_not_connected(o).await));
        }
    }
    Ok(unsent)
}

/// Sends the probe over a connected UDP socket and listens 0.5 s for a refusal.
async fn udp_probe(address: &str, packet: &[u8]) -> Result<(), String> {
    let addr = tokio::net::lookup_host(address)
        .await
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address} resolves to no address"))?;
    let local = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = tokio::net::UdpSocket::bind(local)
        .await
        .map_err(|e| e.to_string())?;
    sock.connect(addr).await.map_err(|e| e.to_string())?;
    let refused = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            format!("nothing listens on UDP {addr}: the host refused the datagram (ICMP port unreachable); is the collector running, on this port?")
        } else {
            e.to_string()
        }
    };
    sock.send(packet).await.map_err(refused)?;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_millis(500), sock.recv(&mut buf)).await {
        Ok(Err(e)) => Err(refused(e)),
        _ => Ok(()),
    }
}

/// Why a TCP/TLS collector took nothing: a connection and, for TLS, a handshake of its
/// own, the failure in words (an untrusted certificate, a wrong name, a refusal).
async fn why_not_connected(o: &crate::config::Output) -> String {
    let address = &o.url.address;
    let tcp = match tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(address.as_str()),
    )
    .await
    {
        Err(_) => return format!("no answer from {address} within 3 s (a firewall dropping, or the wrong host?)"),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return format!("{address} refused the connection: is the collector up and listening there (Homer 11 has TCP off by default)?")
        }
        Ok(Err(e)) => return format!("cannot connect to {address}: {e}"),
        Ok(Ok(s)) => s,
    };
    if o.url.transport != crate::output::Transport::Tls {
        return "it accepted the connection but the probe was not confirmed read within 5 s".into();
    }
    let (cfg, name) = match crate::tls::client(&o.tls, o.url.host()) {
        Ok(c) => c,
        Err(e) => return format!("TLS settings: {e}"),
    };
    let shown = format!("{name:?}");
    match tokio::time::timeout(
        Duration::from_secs(3),
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    {
        Err(_) => "the TLS handshake did not finish within 3 s (is it a TLS port?)".into(),
        Ok(Ok(_)) => "TLS works, but the probe was not confirmed read within 5 s".into(),
        Ok(Err(e)) => tls_words(&e, &shown),
    }
}

/// A TLS failure in words, with the setting that mends it.
fn tls_words(e: &std::io::Error, name: &str) -> String {
    // rustls's own error, by its variant's name and its text alike.
    let text = e.to_string();
    let inner = e.get_ref().map(|i| format!("{i:?}")).unwrap_or_default();
    let has = |a: &str, b: &str| inner.contains(a) || text.contains(a) || text.contains(b);
    if has("UnknownIssuer", "unknown issuer") {
        format!("TLS: the collector's certificate is signed by an unknown issuer ({text}); give its CA with output.tls.ca_file (--tls-ca)")
    } else if has("NotValidForName", "not valid for name") {
        format!("TLS: the collector's certificate is not valid for {name} ({text}); connect by a name it holds, or set output.tls.server_name (--tls-server-name)")
    } else if has("Expired", "expired") {
        format!("TLS: the collector's certificate has expired ({text})")
    } else if has("CertificateRequired", "certificate required") {
        format!("TLS: the collector requires a client certificate ({text}); set output.tls.cert_file and key_file")
    } else {
        format!("TLS handshake failed: {text}")
    }
}

/// `heplink homer …`: the exit status.
pub fn main(args: &HomerArgs) -> u8 {
    let HomerCommand::Check {
        config,
        overrides,
        wait,
    } = &args.what;
    let cfg = match Config::load(config.as_deref(), overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("heplink homer check: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("heplink homer check: {e}");
            return 2;
        }
    };
    match rt.block_on(check(&cfg, Duration::from_secs_f64(wait.max(0.5)))) {
        Ok(Outcome::Found(after)) => {
            println!(
                "ok: the probe went through {} and Homer ({}) stored it; found after {:.2} s",
                cfg.output
                    .iter()
                    .map(|o| o.url.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                cfg.homer.api,
                after.as_secs_f64()
            );
            0
        }
        Ok(Outcome::Missing(why)) => {
            println!("not found: {why}");
            1
        }
        Err(e) => {
            let hint = match e.downcast_ref::<ApiError>() {
                Some(ApiError::Credentials { .. }) => " (homer.user / homer.password)",
                Some(ApiError::Http(_)) => " (homer.api: is homer-app listening there?)",
                _ => "",
            };
            eprintln!("heplink homer check: {e}{hint}");
            2
        }
    }
}
