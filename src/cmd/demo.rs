//! `heplink demo`: the agent's main job on an embedded default. A real `serve` agent (HTTP
//! input on loopback) receives a bundled real Janus VideoRoom capture, posted one event per
//! request as Janus's sample event handler does, and sends HEP to an embedded `listen`,
//! which prints the correlated flows: one per room, with every PeerConnection in it.
//! `--to udp://HOMER:9060` also sends the packets to a real Homer.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cmd::listen::{bind, Summary};
use crate::config::{Config, Output};

/// The bundled capture: a real Janus 1.1.2 VideoRoom with 2 publishers and 3 subscribers.
pub const BUNDLED: &str = include_str!("../../fixtures/janus/videoroom-2pub-2sub-webrtc.jsonl");

/// Arguments of `heplink demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Also send to this collector, e.g. `udp://homer.example:9060` (repeatable).
    #[arg(long = "to", value_name = "URL")]
    pub to: Vec<crate::output::CollectorUrl>,
    /// A Janus capture (one event-handler body per line) instead of the bundled one.
    #[arg(long)]
    pub capture: Option<PathBuf>,
    /// Keep the capture's timestamps (default: shifted so it ends now, as Homer needs).
    #[arg(long)]
    pub keep_time: bool,
    /// Where to write the HTML picture of the flows.
    #[arg(long, default_value = "heplink-demo.html")]
    pub html: PathBuf,
    /// Print every packet received, not only the flows.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Shifts every event's `timestamp` so the capture ends now (heplify-server keeps
/// partitions only around the current day).
pub fn restamp(lines: &[String], now_us: u64) -> Vec<String> {
    let ts = |v: &serde_json::Value| v["timestamp"].as_u64();
    let mut last = 0;
    let parsed: Vec<Option<serde_json::Value>> =
        lines.iter().map(|l| serde_json::from_str(l).ok()).collect();
    for v in parsed.iter().flatten() {
        match v {
            serde_json::Value::Array(a) => a.iter().filter_map(ts).for_each(|t| last = last.max(t)),
            v => last = last.max(ts(v).unwrap_or(0)),
        }
    }
    let shift = now_us.saturating_sub(last);
    let fix = |v: &mut serde_json::Value| {
        if let Some(t) = v["timestamp"].as_u64() {
            v["timestamp"] = (t + shift).into();
        }
    };
    parsed
        .into_iter()
        .zip(lines)
        .map(|(v, line)| match v {
            Some(serde_json::Value::Array(mut a)) => {
                a.iter_mut().for_each(fix);
                serde_json::Value::Array(a).to_string()
            }
            Some(mut v) => {
                fix(&mut v);
                v.to_string()
            }
            None => line.clone(),
        })
        .collect()
}

/// One POST on a new connection, as Janus does; the status code.
pub async fn post(addr: std::net::SocketAddr, body: &[u8]) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(addr).await?;
    let head = format!("POST /janus-events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await?;
    let text = String::from_utf8_lossy(&resp);
    Ok(text
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}

/// Runs the demo; returns what the embedded listener saw.
pub fn main(args: &DemoArgs) -> anyhow::Result<Summary> {
    let text = match &args.capture {
        Some(p) => {
            std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => BUNDLED.to_string(),
    };
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    if !args.keep_time {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_micros() as u64;
        lines = restamp(&lines, now);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (mut rx, udp, _, _, _) = bind(&["127.0.0.1:0".parse()?], &[], &[], None, super::listen::UDP_RECEIVE_BUFFER).await?;
        let mut cfg = Config::default();
        cfg.http.listen = "127.0.0.1:0".parse()?;
        cfg.ws.enabled = false;
        cfg.metrics.enabled = false;
        cfg.output = std::iter::once(format!("udp://{}", udp[0]).parse()?)
            .chain(args.to.iter().cloned())
            .map(|url| Output {
                mtu: 65_507,
                ..Output::new(url)
            })
            .collect();
        cfg.validate()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let agent = crate::agent::start(cfg, async move {
            let _ = stop_rx.await;
        })
        .await?;
        let http = agent.bound.http.ok_or_else(|| anyhow::anyhow!("no HTTP input"))?;
        eprintln!("heplink demo: posting {} Janus event bodies to the agent at http://{http}/ (sending HEP to udp://{}{})", lines.len(), udp[0], args.to.iter().map(|t| format!(" and {t}")).collect::<String>());
        let mut failed = 0;
        for l in &lines {
            if post(http, l.as_bytes()).await? != 200 {
                failed += 1;
            }
        }
        let _ = stop_tx.send(());
        agent.wait().await?;
        let mut summary = Summary::default();
        let stdout = std::io::stdout();
        let mut index = 0u64;
        let mut received = Vec::new();
        // Everything has been sent when the agent stopped; collect until quiet.
        while let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            received.push(r.bytes.clone());
            if let Ok(p) = heplink_proto::decode(&r.bytes, heplink_proto::Mode::Strict) {
                if args.verbose {
                    writeln!(stdout.lock(), "{}", crate::capture::render::packet_line(index, &p))?;
                }
                summary.add(&p);
            } else {
                summary.rejected += 1;
            }
            index += 1;
        }
        summary.print(&mut stdout.lock())?;
        let flows = crate::cmd::flow::from_packets(received.iter().map(|b| &b[..]));
        std::fs::write(&args.html, crate::cmd::flow::html(&flows)).map_err(|e| anyhow::anyhow!("{}: {e}", args.html.display()))?;
        eprintln!("heplink demo: the flows as Homer would draw them: {}", args.html.display());
        if failed > 0 {
            anyhow::bail!("{failed} bodies were not accepted");
        }
        Ok(summary)
    })
}
