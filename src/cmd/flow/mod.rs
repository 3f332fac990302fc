//! `heplink flow`: a picture of each correlated flow, like Homer's call flow, without
//! Homer. One column per IP:port, named by its role (Janus, a participant's display name, a
//! client), one arrow per packet labelled with the event (`joined`, `remote offer`,
//! `ice connected`, `webrtcup`, `INVITE`, …). QoS reports (HEP type 5 and 34) are left
//! out, as Homer keeps them for its QoS tab. The page (`page.rs`) opens on a summary of the
//! flows, then rooms and calls, with core and transport flows folded away at the end; it is
//! self-contained (inline SVG, CSS and a little script: click an arrow to see its payload).
//! `--svg` writes the same drawings alone.
//!
//! Input: a Janus JSONL capture (converted as `serve` would send it), a HEP capture (pcap,
//! pcapng, raw stream) or what `heplink listen --jsonl` wrote.

mod columns;
mod page;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use heplink_proto::{decode, Mode, ProtoType};
use serde_json::Value;

pub use page::{html, svg, svg_document, Kind};

/// Arguments of `heplink flow`.
#[derive(Debug, clap::Args)]
pub struct FlowArgs {
    /// A Janus JSONL capture (converted as `serve` would send it), a HEP capture (pcap,
    /// pcapng, raw HEP) or `heplink listen --jsonl` output.
    pub capture: PathBuf,
    /// The HTML page to write.
    #[arg(short, long, default_value = "flow.html")]
    pub output: PathBuf,
    /// Also write the drawing as an SVG file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Only this correlation id (default: every flow).
    #[arg(long)]
    pub cid: Option<String>,
}

/// One packet of a flow.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// µs since the epoch.
    pub ts: u64,
    /// Source `IP:port`.
    pub src: String,
    /// Destination `IP:port`.
    pub dst: String,
    /// The arrow's label.
    pub label: String,
    /// The payload as text.
    pub payload: String,
    /// A participant's display name and the address that stands for them, when known.
    pub display: Option<(String, String)>,
    /// Which end (`src` or `dst`) is Janus, when the packet is a Janus event.
    pub janus: Option<String>,
    /// The correlation group the agent named (`videoroom`, `sip`, …); `sip` for SIP
    /// messages.
    pub group: Option<String>,
    /// The room participant id the agent named (a publisher's).
    pub participant: Option<u64>,
    /// The publishers a subscriber receives, by participant id.
    pub feeds: Vec<u64>,
    /// A verdict row's words (a PeerConnection's or a room's summary).
    pub verdict: Option<String>,
}

/// Steps per correlation id, in order of first appearance.
pub type Flows = Vec<(String, Vec<Step>)>;

/// One decoded packet, whatever it was read from.
struct Seen<'a> {
    cid: String,
    proto: Option<ProtoType>,
    ts: u64,
    src: String,
    dst: String,
    payload: &'a [u8],
}

/// The label of a Janus event (as in the LOG payload's `event`) or of a SIP message.
pub fn label(proto: Option<ProtoType>, payload: &[u8]) -> String {
    if proto == Some(ProtoType::SIP) {
        return sip_label(payload);
    }
    match serde_json::from_slice::<Value>(crate::map::log_json(payload)) {
        Ok(v) => json_label(&v, janus_event(&v).as_ref()),
        Err(_) => "LOG".into(),
    }
}

/// A SIP message's label: its status, or its method.
fn sip_label(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let first = text.lines().next().unwrap_or("");
    match first.strip_prefix("SIP/2.0 ") {
        Some(status) => status.to_string(),
        None => first.split_whitespace().next().unwrap_or("SIP").to_string(),
    }
}

/// The agent's facts (`heplink`) and the Janus event of a LOG payload: nested under
/// `event`, or the payload itself (an older capture, a raw event).
fn parts(v: &Value) -> (&Value, &Value) {
    if v.get("event").is_some() && v.get("heplink").is_some() {
        (&v["event"], &v["heplink"])
    } else {
        (v, &Value::Null)
    }
}

/// The Janus event of a LOG payload, read as the agent reads it.
fn janus_event(v: &Value) -> Option<crate::janus::Event> {
    let raw = bytes::Bytes::from(parts(v).0.to_string());
    crate::janus::EventParser::new().parse(raw).ok()
}

/// A LOG payload's label: what the agent wrote first (for Homer's preview), else the
/// mapper's labeller on the event it holds.
fn json_label(v: &Value, event: Option<&crate::janus::Event>) -> String {
    if let Some(l) = v.get("label").and_then(Value::as_str) {
        return l.to_string();
    }
    let Some(event) = event else {
        return "event".into();
    };
    let c = crate::correlate::Correlated {
        event: event.clone(),
        cid: "".into(),
        facts: crate::correlate::Facts {
            display: parts(v).1["display"].as_str().map(Into::into),
            ..Default::default()
        },
    };
    let mut out = String::new();
    crate::map::label::label(&c, None, &mut out);
    out
}

/// Reads a capture into flows: Janus JSONL through the pipeline, `listen --jsonl` output
/// as it decoded the packets, or HEP as it is.
pub fn load(path: &Path) -> anyhow::Result<Flows> {
    let data = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let text = std::str::from_utf8(&data).ok();
    if let Some(text) = text.filter(|t| crate::capture::load::is_listen_jsonl(t)) {
        return from_listen_jsonl(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let packets = crate::capture::load::load(path)?;
    Ok(from_packets(packets.iter().map(|p| &p.bytes[..])))
}

/// Groups HEP packets into flows by correlation id, each in time order.
pub fn from_packets<'a>(packets: impl Iterator<Item = &'a [u8]>) -> Flows {
    let mut flows = Grouper::default();
    for p in packets {
        let Ok(d) = decode(p, Mode::Lenient) else {
            continue;
        };
        let ep = |ip: Option<std::net::IpAddr>, port: Option<u16>| match (ip, port) {
            (Some(ip), Some(port)) => SocketAddr::new(ip, port).to_string(),
            _ => "?".into(),
        };
        flows.push(Seen {
            cid: String::from_utf8_lossy(d.correlation_id.unwrap_or(b"")).into_owned(),
            proto: d.proto_type,
            ts: d.timestamp_micros().unwrap_or(0),
            src: ep(d.src_ip, d.src_port),
            dst: ep(d.dst_ip, d.dst_port),
            payload: d.payload.unwrap_or(b""),
        });
    }
    flows.finish()
}

/// Flows from what `heplink listen --jsonl` wrote: one decoded packet per line (rejected
/// packets, `{"error":…}`, are skipped as `listen` counted them).
pub fn from_listen_jsonl(text: &str) -> anyhow::Result<Flows> {
    let mut flows = Grouper::default();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("line {}: not JSON ({e})", n + 1))?;
        if v.get("error").is_some() {
            continue;
        }
        let addr = |ip: &str, port: &str| match (v[ip].as_str(), v[port].as_u64()) {
            (Some(ip), Some(port)) => ip.parse::<std::net::IpAddr>().map_or_else(
                |_| format!("{ip}:{port}"),
                |ip| SocketAddr::new(ip, port as u16).to_string(),
            ),
            _ => "?".into(),
        };
        let payload = v["payload"].as_str().unwrap_or("");
        flows.push(Seen {
            cid: v["correlation_id"].as_str().unwrap_or("").to_string(),
            proto: v["proto_type"].as_u64().map(|t| ProtoType(t as u8)),
            ts: v["ts_sec"].as_u64().unwrap_or(0) * 1_000_000 + v["ts_usec"].as_u64().unwrap_or(0),
            src: addr("src_ip", "src_port"),
            dst: addr("dst_ip", "dst_port"),
            payload: payload.as_bytes(),
        });
    }
    Ok(flows.finish())
}

/// Builds flows packet by packet.
#[derive(Default)]
struct Grouper {
    index: BTreeMap<String, usize>,
    flows: Flows,
}

impl Grouper {
    fn push(&mut self, p: Seen<'_>) {
        // QoS reports (RTCP JSON, rtpagent) every few seconds per PeerConnection would bury
        // the signalling: Homer shows them in its QoS tab, not as call-flow rows.
        if matches!(p.proto, Some(ProtoType::RTCP_JSON | ProtoType::MOS_FULL)) {
            return;
        }
        // The payload is read once for the label, the facts and the text shown.
        let text = || String::from_utf8_lossy(p.payload).into_owned();
        let (label, payload, facts) = match p.proto {
            Some(ProtoType::SIP) => {
                let sip = Facts {
                    group: Some("sip".into()),
                    ..Default::default()
                };
                (sip_label(p.payload), text(), sip)
            }
            _ => match serde_json::from_slice::<Value>(crate::map::log_json(p.payload)) {
                Ok(v) => {
                    let ev = janus_event(&v);
                    let pretty = serde_json::to_string_pretty(&v).unwrap_or_default();
                    let mut facts = facts(&v, ev.as_ref(), &p.src, &p.dst);
                    if v.get("summary").is_some() || v.get("room_summary").is_some() {
                        facts.verdict = v["label"].as_str().map(String::from);
                    }
                    (json_label(&v, ev.as_ref()), pretty, facts)
                }
                Err(_) => ("LOG".into(), text(), Facts::default()),
            },
        };
        let i = match self.index.get(&p.cid) {
            Some(i) => *i,
            None => {
                self.index.insert(p.cid.clone(), self.flows.len());
                self.flows.push((p.cid.clone(), Vec::new()));
                self.flows.len() - 1
            }
        };
        self.flows[i].1.push(Step {
            ts: p.ts,
            label,
            payload,
            src: p.src,
            dst: p.dst,
            display: facts.display,
            janus: facts.janus,
            group: facts.group,
            participant: facts.participant,
            feeds: facts.feeds,
            verdict: facts.verdict,
        });
    }

    fn finish(mut self) -> Flows {
        // As Homer does: each flow in time order (held events were sent after later ones).
        for (_, steps) in &mut self.flows {
            steps.sort_by_key(|s| s.ts);
        }
        self.flows
    }
}

/// What the agent's facts say of a Janus event packet.
#[derive(Default)]
struct Facts {
    display: Option<(String, String)>,
    janus: Option<String>,
    group: Option<String>,
    participant: Option<u64>,
    feeds: Vec<u64>,
    verdict: Option<String>,
}

/// The verdicts of a flow, in time order (rooms' last).
pub fn verdicts(steps: &[Step]) -> Vec<&str> {
    let mut v: Vec<&str> = steps.iter().filter_map(|s| s.verdict.as_deref()).collect();
    v.sort_by_key(|w| w.contains(" room "));
    v
}

/// Reads the agent's facts of a Janus event packet: the participant's name and their
/// address, Janus's end, the correlation group, participant and feed ids.
fn facts(v: &Value, ev: Option<&crate::janus::Event>, src: &str, dst: &str) -> Facts {
    let Some(ev) = ev else {
        return Facts::default();
    };
    let facts = parts(v).1;
    // Which side caused the event, by the mapper's own rule.
    let (client, janus) = if crate::map::from_client(ev) {
        (src, dst)
    } else {
        (dst, src)
    };
    Facts {
        display: facts["display"]
            .as_str()
            .map(|name| (name.to_string(), client.to_string())),
        janus: Some(janus.to_string()),
        group: facts["group"].as_str().map(String::from),
        participant: facts["participant"].as_u64(),
        feeds: facts["feeds"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
        verdict: None,
    }
}

/// Runs `heplink flow`.
pub fn main(args: &FlowArgs) -> anyhow::Result<Flows> {
    let mut flows = load(&args.capture)?;
    if flows.is_empty() {
        anyhow::bail!(
            "{}: no flows to draw: no HEP packet with a correlation id, and no Janus event, in it",
            args.capture.display()
        );
    }
    if let Some(c) = &args.cid {
        flows.retain(|(cid, _)| cid == c);
        if flows.is_empty() {
            anyhow::bail!("no flow with correlation id {c:?}");
        }
    }
    std::fs::write(&args.output, html(&flows))
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.output.display()))?;
    if let Some(p) = &args.svg {
        std::fs::write(p, svg_document(&flows))
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    }
    let arrows: usize = flows.iter().map(|(_, s)| s.len()).sum();
    for (cid, steps) in &flows {
        let v = verdicts(steps);
        if !v.is_empty() {
            eprintln!("{cid}:");
            for w in v {
                eprintln!("    {w}");
            }
        }
    }
    eprintln!(
        "{} flows, {arrows} arrows -> {}",
        flows.len(),
        args.output.display()
    );
    Ok(flows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let sip = label(Some(ProtoType::SIP), b"INVITE sip:a@b SIP/2.0\r\n");
        assert_eq!(sip, "INVITE");
        assert_eq!(
            label(Some(ProtoType::SIP), b"SIP/2.0 180 Ringing\r\n"),
            "180 Ringing"
        );
        let ev = |e: &str| format!(r##"{{"heplink":{{}},"event":{e}}}"##).into_bytes();
        assert_eq!(
            label(
                Some(ProtoType::LOG),
                &ev(r##"{"type":64,"event":{"data":{"event":"joined"}}}"##)
            ),
            "joined"
        );
        assert_eq!(
            label(
                Some(ProtoType::LOG),
                &ev(r##"{"type":8,"event":{"owner":"remote","jsep":{"type":"offer"}}}"##)
            ),
            "remote offer"
        );
        assert_eq!(
            label(
                Some(ProtoType::LOG),
                &ev(r##"{"type":16,"subtype":1,"event":{"ice":"connected"}}"##)
            ),
            "ice connected"
        );
        assert_eq!(
            label(
                Some(ProtoType::LOG),
                &ev(r##"{"type":16,"subtype":6,"event":{"connection":"webrtcup"}}"##)
            ),
            "webrtcup"
        );
        assert_eq!(label(Some(ProtoType::LOG), b"not json"), "LOG");
    }

    #[test]
    fn markup_is_escaped() {
        let s = Step {
            ts: 0,
            src: "a".into(),
            dst: "b".into(),
            label: "<script>".into(),
            payload: "</script><b>".into(),
            display: Some(("<i>".into(), "a".into())),
            ..Default::default()
        };
        let page = html(&vec![("x\"<".into(), vec![s])]);
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("&lt;i&gt;"));
        assert!(
            !page.contains("</script><b>"),
            "payload text cannot close the script"
        );
    }
}
