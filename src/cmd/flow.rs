//! `heplink flow`: a picture of each correlated flow, like Homer's call flow, without
//! Homer. One column per IP:port (named after the participant where known), one arrow per
//! packet labelled with the event (`joined`, `remote offer`, `ice connected`, `webrtcup`,
//! `INVITE`, …); QoS reports (HEP type 5 and 34) are left out, as Homer keeps them for
//! its QoS tab. The HTML page is self-contained (inline SVG, CSS and a little script:
//! click an arrow to see its payload); `--svg` writes the same drawing alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use heplink_proto::{decode, Mode, ProtoType};
use serde_json::Value;

use crate::janus::event::write_json_str;

/// Arguments of `heplink flow`.
#[derive(Debug, clap::Args)]
pub struct FlowArgs {
    /// A Janus JSONL capture (converted as `serve` would send it) or a HEP capture.
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
#[derive(Debug, Clone)]
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
}

/// Steps per correlation id, in order of first appearance.
pub type Flows = Vec<(String, Vec<Step>)>;

/// The label of a Janus event (as in the LOG payload's `event`) or of a SIP message.
pub fn label(proto: Option<ProtoType>, payload: &[u8]) -> String {
    if proto == Some(ProtoType::SIP) {
        let first = String::from_utf8_lossy(payload)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        return match first.strip_prefix("SIP/2.0 ") {
            Some(status) => status.to_string(),
            None => first.split_whitespace().next().unwrap_or("SIP").to_string(),
        };
    }
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return "LOG".into();
    };
    // What the agent wrote first, for Homer's preview.
    if let Some(l) = v.get("label").and_then(Value::as_str) {
        return l.to_string();
    }
    // A payload without one (an older capture): the mapper's labeller on the Janus event
    // it holds (nested under `event` with the agent's facts, or the event itself).
    let (event, display) = if v.get("event").is_some() && v.get("heplink").is_some() {
        (&v["event"], v["heplink"]["display"].as_str())
    } else {
        (&v, None)
    };
    let raw = bytes::Bytes::from(event.to_string());
    let Ok(event) = crate::janus::EventParser::new().parse(raw) else {
        return "event".into();
    };
    let c = crate::correlate::Correlated {
        event,
        cid: "".into(),
        facts: crate::correlate::Facts {
            display: display.map(Into::into),
            ..Default::default()
        },
    };
    let mut out = String::new();
    crate::map::label::label(&c, &mut out);
    out
}

/// Reads a capture into flows: Janus JSONL through the pipeline, or HEP as it is.
pub fn load(path: &Path) -> anyhow::Result<Flows> {
    let packets = crate::cmd::replay::load(path)?;
    Ok(from_packets(packets.iter().map(|p| &p.bytes[..])))
}

/// Groups HEP packets into flows by correlation id, each in time order.
pub fn from_packets<'a>(packets: impl Iterator<Item = &'a [u8]>) -> Flows {
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut flows: Flows = Vec::new();
    for p in packets {
        let Ok(d) = decode(p, Mode::Lenient) else {
            continue;
        };
        // QoS reports (RTCP JSON, rtpagent) every few seconds per PeerConnection would bury
        // the signalling: Homer shows them in its QoS tab, not as call-flow rows.
        if matches!(
            d.proto_type,
            Some(ProtoType::RTCP_JSON | ProtoType::MOS_FULL)
        ) {
            continue;
        }
        let cid = String::from_utf8_lossy(d.correlation_id.unwrap_or(b"")).into_owned();
        let ep = |ip: Option<std::net::IpAddr>, port: Option<u16>| match (ip, port) {
            (Some(ip), Some(port)) => std::net::SocketAddr::new(ip, port).to_string(),
            _ => "?".into(),
        };
        let payload = d.payload.unwrap_or(b"");
        let (src, dst) = (ep(d.src_ip, d.src_port), ep(d.dst_ip, d.dst_port));
        let facts = serde_json::from_slice::<Value>(payload).ok();
        // The client side of a participant's packet carries their name.
        let display = facts
            .as_ref()
            .and_then(|v| v["heplink"]["display"].as_str().map(String::from))
            .map(|name| {
                let from_client = matches!(
                    facts.as_ref().map(|v| (
                        v["event"]["type"].as_u64(),
                        v["event"]["event"]["owner"].as_str(),
                        v["event"]["subtype"].as_u64()
                    )),
                    Some((Some(8), Some("remote"), _)) | Some((Some(16), _, Some(3)))
                );
                (
                    name,
                    if from_client {
                        src.clone()
                    } else {
                        dst.clone()
                    },
                )
            });
        let i = *index.entry(cid.clone()).or_insert_with(|| {
            flows.push((cid.clone(), Vec::new()));
            flows.len() - 1
        });
        flows[i].1.push(Step {
            ts: d.timestamp_micros().unwrap_or(0),
            src,
            dst,
            label: label(d.proto_type, payload),
            payload: pretty(payload),
            display,
        });
    }
    // As Homer does: each flow in time order (held events were sent after later ones).
    for (_, steps) in &mut flows {
        steps.sort_by_key(|s| s.ts);
    }
    flows
}

fn pretty(payload: &[u8]) -> String {
    match serde_json::from_slice::<Value>(payload) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(payload).into_owned(),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COL_W: usize = 190;
const ROW_H: usize = 26;
const TOP: usize = 64;
const LEFT: usize = 90;

/// The SVG drawing of one flow; arrows carry `data-step="<flow>-<n>"`.
pub fn svg(flow_no: usize, cid: &str, steps: &[Step]) -> String {
    let mut cols: Vec<String> = Vec::new();
    for s in steps {
        for a in [&s.src, &s.dst] {
            if !cols.contains(a) {
                cols.push(a.clone());
            }
        }
    }
    // Every name seen on a column (a shared API client may stand for several people).
    let mut names: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (n, a) in steps.iter().filter_map(|s| s.display.as_ref()) {
        let v = names.entry(a.as_str()).or_default();
        if !v.contains(&n.as_str()) {
            v.push(n.as_str());
        }
    }
    let x = |a: &str| LEFT + COL_W / 2 + COL_W * cols.iter().position(|c| c == a).unwrap_or(0);
    let width = LEFT + COL_W * cols.len().max(1) + 20;
    let height = TOP + ROW_H * (steps.len() + 1) + 20;
    let t0 = steps.first().map_or(0, |s| s.ts);
    let mut o = String::new();
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="flow" data-cid="{}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"##,
        esc(cid)
    );
    let _ = write!(
        o,
        r##"<text x="8" y="18" font-size="14" font-weight="bold">{}</text>"##,
        esc(cid)
    );
    for c in &cols {
        let cx = x(c);
        let _ = write!(
            o,
            r##"<g class="column"><line x1="{cx}" y1="{}" x2="{cx}" y2="{}" stroke="#999" stroke-dasharray="4 3"/>"##,
            TOP - 8,
            height - 10
        );
        let _ = write!(
            o,
            r##"<text x="{cx}" y="{}" text-anchor="middle" font-weight="bold">{}</text>"##,
            TOP - 26,
            esc(c)
        );
        if let Some(n) = names.get(c.as_str()) {
            let _ = write!(
                o,
                r##"<text x="{cx}" y="{}" text-anchor="middle" fill="#1565c0">{}</text>"##,
                TOP - 13,
                esc(&n.join(", "))
            );
        }
        o.push_str("</g>");
    }
    for (i, s) in steps.iter().enumerate() {
        let y = TOP + ROW_H * (i + 1);
        let (x1, x2) = (x(&s.src), x(&s.dst));
        let _ = write!(
            o,
            r##"<g class="arrow" data-step="{flow_no}-{i}" style="cursor:pointer">"##
        );
        let _ = write!(
            o,
            r##"<text x="6" y="{}" fill="#777">+{:.3}s</text>"##,
            y + 4,
            s.ts.saturating_sub(t0) as f64 / 1e6
        );
        if x1 == x2 {
            let _ = write!(
                o,
                r##"<path d="M{x1} {} h30 v12 h-30" fill="none" stroke="#333" marker-end="url(#head)"/>"##,
                y - 6
            );
            let _ = write!(
                o,
                r##"<text x="{}" y="{}">{}</text>"##,
                x1 + 34,
                y + 2,
                esc(&s.label)
            );
        } else {
            let _ = write!(
                o,
                r##"<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#333" stroke-width="1.5" marker-end="url(#head)"/>"##
            );
            let _ = write!(
                o,
                r##"<text x="{}" y="{}" text-anchor="middle">{}</text>"##,
                (x1 + x2) / 2,
                y - 4,
                esc(&s.label)
            );
        }
        o.push_str("</g>");
    }
    o.push_str(r##"<defs><marker id="head" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#333"/></marker></defs></svg>"##);
    o
}

/// The self-contained HTML page of all flows.
pub fn html(flows: &Flows) -> String {
    let mut o = String::from(
        r##"<!DOCTYPE html><html><head><meta charset="utf-8"><title>heplink flows</title><style>
body{font-family:sans-serif;margin:0;display:flex}#flows{flex:1;overflow:auto;padding:8px}
#payload{width:38%;height:100vh;overflow:auto;background:#f6f6f6;border-left:1px solid #ccc;padding:8px;white-space:pre-wrap;font-family:monospace;font-size:12px;position:sticky;top:0}
.arrow:hover text{fill:#c62828}.arrow.selected text{fill:#c62828;font-weight:bold}section{margin-bottom:24px}
</style></head><body><div id="flows">"##,
    );
    let mut data = String::from("[");
    for (f, (cid, steps)) in flows.iter().enumerate() {
        let _ = write!(o, "<section>{}</section>", svg(f, cid, steps));
        if f > 0 {
            data.push(',');
        }
        data.push('[');
        for (i, s) in steps.iter().enumerate() {
            if i > 0 {
                data.push(',');
            }
            write_json_str(&mut data, &s.payload);
        }
        data.push(']');
    }
    data.push(']');
    // `</` cannot end the script early: JSON strings escape it.
    let data = data.replace("</", "<\\/");
    let _ = write!(
        o,
        r##"</div><div id="payload">Click an arrow to see its payload.</div><script>
const payloads = {data};
window.addEventListener('error', e => {{ const d = document.createElement('div'); d.id = 'script-error'; d.textContent = String(e.message); document.body.appendChild(d); }});
document.querySelectorAll('.arrow').forEach(a => a.addEventListener('click', () => {{
  document.querySelectorAll('.arrow.selected').forEach(s => s.classList.remove('selected'));
  a.classList.add('selected');
  const [f, i] = a.dataset.step.split('-').map(Number);
  document.getElementById('payload').textContent = payloads[f][i];
}}));
document.body.dataset.ready = 'yes';
// `#selftest`: click the first arrow and record whether its payload showed (for tests).
if (location.hash === '#selftest') {{
  const first = document.querySelector('.arrow');
  if (first) first.dispatchEvent(new MouseEvent('click', {{bubbles: true}}));
  const shown = document.getElementById('payload').textContent;
  document.body.dataset.selftest = first && shown === payloads[0][0] && shown.length > 0 ? 'ok' : 'failed';
}}
</script></body></html>"##
    );
    o
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
        let body: String = flows
            .iter()
            .enumerate()
            .map(|(i, (c, s))| svg(i, c, s))
            .collect();
        let text = if flows.len() == 1 {
            body
        } else {
            // Several flows: stacked in one SVG document.
            let mut y = 0;
            let mut out = String::new();
            let mut w = 0;
            for (i, (c, s)) in flows.iter().enumerate() {
                let one = svg(i, c, s);
                let h = TOP + ROW_H * (s.len() + 1) + 20;
                let _ = write!(out, r##"<g transform="translate(0,{y})">{one}</g>"##);
                y += h;
                w = w.max(LEFT + COL_W * 40);
            }
            format!(
                r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{y}">{out}</svg>"##
            )
        };
        std::fs::write(p, text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    }
    let arrows: usize = flows.iter().map(|(_, s)| s.len()).sum();
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
