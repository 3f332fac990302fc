//! The flow page and its drawings.
//!
//! The page opens on a summary (how many flows and arrows, the time span, one row per
//! flow with its kind, size, span and participants), then the rooms and calls, then other
//! sessions; core and transport flows (Janus starting, one arrow per HTTP request) are
//! folded away at the end. Each flow is drawn in a box as high as the window, with its
//! column headers held at the top while it scrolls; by default the drawing is scaled to
//! the window's width ("fit"), and "100%" shows it at its own size.
//!
//! A column's header says what it is: **Janus** (its signalling side, or the media address
//! of one PeerConnection, with whose it is), a **participant** by display name, or a
//! **client** whose name is not known; then the address. Columns are ordered signalling
//! first, then per participant: their address, then Janus's media address for them.
//!
//! Why this file is over 500 lines: the page's summary, sections and SVG drawing are one
//! layout (the header and body drawings share their column geometry); the style sheet and
//! script are already apart (`page.css`, `page.js`), the columns in `columns.rs`; about
//! 90 lines are its tests.

use std::fmt::Write as _;

use super::columns::{columns, Column, Role};
use super::{Flows, Step};
use crate::capture::render::format_utc;
use crate::json::write_json_str;

const COL_W: usize = 130;
const ROW_H: usize = 22;
const HEAD_H: usize = 52;
const LEFT: usize = 64;
const TITLE_H: usize = 26;

/// What a flow is about: it orders the page (rooms and calls first) and names the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A VideoRoom, AudioBridge or TextRoom: every participant of one room.
    Room,
    /// A SIP call (its Call-ID).
    Call,
    /// A session or handle that joined no room or call, or anything else.
    Session,
    /// Janus's core events and transport requests, per hour.
    Core,
}

impl Kind {
    /// The kind of a flow, from the agent's facts in its packets, else its id's shape.
    pub fn of(cid: &str, steps: &[Step]) -> Kind {
        if steps.iter().any(|s| s.group.as_deref() == Some("sip")) {
            return Kind::Call;
        }
        if steps.iter().any(|s| s.group.is_some()) {
            return Kind::Room;
        }
        match cid.split(':').nth(1) {
            Some("core" | "transport") => Kind::Core,
            _ => Kind::Session,
        }
    }

    /// The word the page shows.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Room => "room",
            Kind::Call => "call",
            Kind::Session => "session",
            Kind::Core => "core",
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// At most `max` characters, with an ellipsis when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

fn width(cols: &[Column]) -> usize {
    LEFT + COL_W * cols.len().max(1) + 10
}

fn x_of(cols: &[Column], addr: &str) -> usize {
    LEFT + COL_W / 2 + COL_W * cols.iter().position(|c| c.addr == addr).unwrap_or(0)
}

/// The column headers, as SVG elements from y = 0 to `HEAD_H`.
fn head_elements(o: &mut String, cols: &[Column]) {
    for c in cols {
        let cx = x_of(cols, &c.addr);
        let (fill, ink) = match c.role {
            Role::Janus => ("#fff3e0", "#e65100"),
            Role::Participant => ("#e3f2fd", "#0d47a1"),
            Role::Client | Role::Other => ("#f0f0f0", "#424242"),
        };
        let (title, detail) = c.title_and_detail();
        let _ = write!(
            o,
            r##"<g class="column" data-role="{}"><title>{}</title><rect x="{}" y="3" width="{}" height="{}" rx="4" fill="{fill}"/>"##,
            match c.role {
                Role::Janus => "janus",
                Role::Participant => "participant",
                Role::Client => "client",
                Role::Other => "other",
            },
            esc(&c.addr),
            cx - COL_W / 2 + 3,
            COL_W - 6,
            HEAD_H - 6,
        );
        let _ = write!(
            o,
            r##"<text class="title" x="{cx}" y="18" text-anchor="middle" font-size="12" font-weight="bold" fill="{ink}">{}</text><text x="{cx}" y="32" text-anchor="middle" fill="{ink}">{}</text><text x="{cx}" y="45" text-anchor="middle" font-size="10" fill="#666">{}</text></g>"##,
            esc(&cut(&title, 20)),
            esc(&cut(&detail, 24)),
            esc(&cut(&c.addr, 24)),
        );
    }
}

/// The arrows, as SVG elements from y = 0; arrows carry `data-step="<flow>-<n>"`.
fn body_elements(o: &mut String, flow_no: usize, steps: &[Step], cols: &[Column]) -> usize {
    let height = ROW_H * (steps.len() + 1);
    for c in cols {
        let cx = x_of(cols, &c.addr);
        let _ = write!(
            o,
            r##"<line x1="{cx}" y1="0" x2="{cx}" y2="{height}" stroke="#bbb" stroke-dasharray="4 3"/>"##
        );
    }
    let t0 = steps.first().map_or(0, |s| s.ts);
    for (i, s) in steps.iter().enumerate() {
        let y = ROW_H * (i + 1);
        let (x1, x2) = (x_of(cols, &s.src), x_of(cols, &s.dst));
        let _ = write!(
            o,
            r##"<g class="arrow" data-step="{flow_no}-{i}" style="cursor:pointer"><text x="6" y="{}" fill="#777">+{:.3}s</text>"##,
            y + 4,
            s.ts.saturating_sub(t0) as f64 / 1e6
        );
        if x1 == x2 {
            let _ = write!(
                o,
                r##"<path d="M{x1} {} h30 v12 h-30" fill="none" stroke="#333" marker-end="url(#head)"/><text x="{}" y="{}">{}</text>"##,
                y - 6,
                x1 + 34,
                y + 2,
                esc(&s.label)
            );
        } else {
            let _ = write!(
                o,
                r##"<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#333" stroke-width="1.5" marker-end="url(#head)"/><text x="{}" y="{}" text-anchor="middle">{}</text>"##,
                (x1 + x2) / 2,
                y - 4,
                esc(&s.label)
            );
        }
        o.push_str("</g>");
    }
    height + 10
}

const MARKER: &str = r##"<defs><marker id="head" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#333"/></marker></defs>"##;

fn svg_open(o: &mut String, class: &str, w: usize, h: usize) {
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="{class}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"##
    );
}

/// One flow drawn alone: its id, the column headers, the arrows.
pub fn svg(flow_no: usize, cid: &str, steps: &[Step]) -> String {
    let cols = columns(steps);
    let w = width(&cols);
    let mut body = String::new();
    let body_h = body_elements(&mut body, flow_no, steps, &cols);
    let mut o = String::new();
    svg_open(&mut o, "flow", w, TITLE_H + HEAD_H + body_h);
    let _ = write!(
        o,
        r##"<text x="8" y="18" font-size="14" font-weight="bold">{}</text><g transform="translate(0,{TITLE_H})">"##,
        esc(cid)
    );
    head_elements(&mut o, &cols);
    let _ = write!(
        o,
        r##"</g><g transform="translate(0,{})">{body}</g>{MARKER}</svg>"##,
        TITLE_H + HEAD_H
    );
    o
}

/// Every flow drawn alone, stacked in one SVG document (`flow --svg`), in page order.
pub fn svg_document(flows: &Flows) -> String {
    let order = page_order(flows);
    if let [one] = order.as_slice() {
        let (cid, steps) = &flows[*one];
        return svg(*one, cid, steps);
    }
    let (mut out, mut y, mut w) = (String::new(), 0, 0);
    for f in order {
        let (cid, steps) = &flows[f];
        let one = svg(f, cid, steps);
        let _ = write!(out, r##"<g transform="translate(0,{y})">{one}</g>"##);
        let cols = columns(steps).len();
        y += TITLE_H + HEAD_H + ROW_H * (steps.len() + 1) + 10;
        w = w.max(LEFT + COL_W * cols.max(1) + 10);
    }
    format!(r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{y}">{out}</svg>"##)
}

/// Flow indices in the page's order: by kind, then by first appearance.
fn page_order(flows: &Flows) -> Vec<usize> {
    let mut order: Vec<usize> = (0..flows.len()).collect();
    order.sort_by_key(|&f| Kind::of(&flows[f].0, &flows[f].1));
    order
}

/// `2026-11-30 07:31:49.096` (UTC).
fn when(us: u64) -> String {
    let t = format_utc((us / 1_000_000) as u32, (us % 1_000_000) as u32);
    t[..23].replacen('T', " ", 1)
}

fn span(first: u64, last: u64) -> String {
    let s = last.saturating_sub(first) as f64 / 1e6;
    if s < 120.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

/// Who a flow is about: the participants' names in order of appearance, or for a call
/// the From and To of its first INVITE.
fn who(steps: &[Step]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (n, _) in steps.iter().filter_map(|s| s.display.as_ref()) {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    if names.is_empty() {
        if let Some(invite) = steps
            .iter()
            .find(|s| s.janus.is_none() && s.label == "INVITE")
        {
            let header = |name, compact| {
                crate::janus::sip::sip_header(&invite.payload, name, Some(compact)).map(sip_uri)
            };
            if let (Some(from), Some(to)) = (header("from", "f"), header("to", "t")) {
                names.push(format!("{from} → {to}"));
            }
        }
    }
    names
}

/// The `user@host` of a From or To header's value.
fn sip_uri(value: &str) -> String {
    let v = value.trim();
    let v = match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v.split(';').next().unwrap_or(v),
    };
    let v = v.trim();
    v.strip_prefix("sip:")
        .or_else(|| v.strip_prefix("sips:"))
        .unwrap_or(v)
        .split(';')
        .next()
        .unwrap_or(v)
        .to_string()
}

fn section(o: &mut String, f: usize, cid: &str, steps: &[Step]) {
    let kind = Kind::of(cid, steps);
    let cols = columns(steps);
    let w = width(&cols);
    let (first, last) = (
        steps.first().map_or(0, |s| s.ts),
        steps.last().map_or(0, |s| s.ts),
    );
    let names = who(steps);
    let _ = write!(
        o,
        r##"<section class="flow" id="flow-{f}" data-kind="{}" data-cid="{}"><h2><span class="kind {}">{}</span>{}</h2><p class="meta">{} arrows · {} – {} UTC ({}) · {} columns{}</p>"##,
        kind.name(),
        esc(cid),
        kind.name(),
        kind.name(),
        esc(cid),
        steps.len(),
        when(first),
        &when(last)[11..],
        span(first, last),
        cols.len(),
        if names.is_empty() {
            String::new()
        } else {
            format!(" · {}", esc(&names.join(", ")))
        },
    );
    let verdicts = super::verdicts(steps);
    if !verdicts.is_empty() {
        o.push_str(r##"<ul class="verdicts">"##);
        for v in verdicts {
            let class = match v.chars().next() {
                Some('✔') => "ok",
                Some('⚠') => "degraded",
                _ => "failed",
            };
            let _ = write!(o, r##"<li class="{class}">{}</li>"##, esc(v));
        }
        o.push_str("</ul>");
    }
    o.push_str(r##"<div class="box"><div class="head">"##);
    svg_open(o, "draw", w, HEAD_H);
    head_elements(o, &cols);
    o.push_str("</svg></div>");
    let mut body = String::new();
    let body_h = body_elements(&mut body, f, steps, &cols);
    svg_open(o, "draw", w, body_h);
    o.push_str(&body);
    o.push_str(MARKER);
    o.push_str("</svg></div></section>");
}

/// The page's style sheet.
const STYLE: &str = include_str!("page.css");

/// The page's script (after `const payloads = [...]`).
const SCRIPT: &str = include_str!("page.js");

/// The self-contained HTML page of all flows.
///
/// Over 80 lines because it is the page's template: its parts in the order they appear,
/// each a few `push_str`s; cut into functions it would read worse.
pub fn html(flows: &Flows) -> String {
    let order = page_order(flows);
    let arrows: usize = flows.iter().map(|(_, s)| s.len()).sum();
    let first = flows
        .iter()
        .filter_map(|(_, s)| s.first())
        .map(|s| s.ts)
        .min();
    let last = flows
        .iter()
        .filter_map(|(_, s)| s.last())
        .map(|s| s.ts)
        .max();
    let mut o = format!(
        r##"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>heplink flows</title><style>{STYLE}</style></head><body class="fit"><header id="summary"><h1>heplink flows</h1><p class="totals">{} flows · {arrows} arrows · {} – {} UTC ({})</p>"##,
        flows.len(),
        first.map_or_else(String::new, when),
        last.map_or_else(String::new, when),
        span(first.unwrap_or(0), last.unwrap_or(0)),
    );
    o.push_str(r##"<div class="list"><table><tr><th>Kind</th><th>Flow (correlation id)</th><th>Arrows</th><th>When (UTC)</th><th>Who</th></tr>"##);
    for &f in &order {
        let (cid, steps) = &flows[f];
        let kind = Kind::of(cid, steps);
        let (a, b) = (
            steps.first().map_or(0, |s| s.ts),
            steps.last().map_or(0, |s| s.ts),
        );
        let _ = write!(
            o,
            r##"<tr><td><span class="kind {k}">{k}</span></td><td><a href="#flow-{f}">{}</a></td><td class="n">{}</td><td>{} ({})</td><td>{}</td></tr>"##,
            esc(cid),
            steps.len(),
            when(a),
            span(a, b),
            esc(&who(steps).join(", ")),
            k = kind.name(),
        );
    }
    o.push_str(r##"</table></div><p class="legend">Columns: <span class="k janus">Janus</span> its signalling side, and its media address for each PeerConnection · <span class="k peer">participant</span> by display name · <span class="k client">subscriber</span> by the publishers it receives · <span class="k client">client</span> no name known. Rows: one arrow per event, in time order, at seconds since the flow's first. Click an arrow for its payload.</p><p class="tools">View: <button type="button" id="zoom-fit">fit to window</button> <button type="button" id="zoom-full">100%</button></p></header><main>"##);
    let noise: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&f| Kind::of(&flows[f].0, &flows[f].1) == Kind::Core)
        .collect();
    for &f in order.iter().filter(|f| !noise.contains(f)) {
        section(&mut o, f, &flows[f].0, &flows[f].1);
    }
    if !noise.is_empty() {
        let n: usize = noise.iter().map(|&f| flows[f].1.len()).sum();
        let _ = write!(
            o,
            r##"<details id="noise"{}><summary>Core and transport: {} flows, {n} arrows (Janus starting, API requests; click to show)</summary>"##,
            // Nothing else to show: open.
            if noise.len() == order.len() {
                " open"
            } else {
                ""
            },
            noise.len()
        );
        for &f in &noise {
            section(&mut o, f, &flows[f].0, &flows[f].1);
        }
        o.push_str("</details>");
    }
    let mut data = String::from("[");
    for (f, (_, steps)) in flows.iter().enumerate() {
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
        r##"</main><aside id="payload-pane" hidden><button type="button" id="close">close (Esc)</button><pre id="payload">Click an arrow to see its payload.</pre></aside><script>
const payloads = {data};{SCRIPT}</script></body></html>"##
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(src: &str, dst: &str, janus: Option<&str>, display: Option<(&str, &str)>) -> Step {
        Step {
            src: src.into(),
            dst: dst.into(),
            janus: janus.map(Into::into),
            display: display.map(|(n, a)| (n.into(), a.into())),
            group: Some("videoroom".into()),
            ..Default::default()
        }
    }

    #[test]
    fn kinds_from_facts_then_from_the_id() {
        let room = [step("a:1", "b:2", Some("b:2"), None)];
        assert_eq!(Kind::of("j:videoroom:1", &room), Kind::Room);
        let mut call = room.clone();
        call[0].group = Some("sip".into());
        assert_eq!(Kind::of("abc@host", &call), Kind::Call);
        let plain = [Step::default()];
        assert_eq!(Kind::of("j:core:2026-11-30T07", &plain), Kind::Core);
        assert_eq!(
            Kind::of("j:transport:http:2026-11-30T07", &plain),
            Kind::Core
        );
        assert_eq!(Kind::of("j:session:5", &plain), Kind::Session);
        assert!(
            Kind::Room < Kind::Call && Kind::Call < Kind::Session && Kind::Session < Kind::Core
        );
    }

    #[test]
    fn columns_put_signalling_first_then_each_client_beside_janus_media_for_it() {
        let steps = [
            step(
                "api:0",
                "janus:0",
                Some("janus:0"),
                Some(("alice", "api:0")),
            ),
            // Janus's media address for bob appears before bob's own.
            step(
                "jm-bob:2",
                "bob:1",
                Some("jm-bob:2"),
                Some(("bob", "bob:1")),
            ),
            step(
                "alice:1",
                "jm-alice:2",
                Some("jm-alice:2"),
                Some(("alice", "alice:1")),
            ),
            step("jm-sub:2", "sub:1", Some("jm-sub:2"), None),
        ];
        let mut steps = steps.to_vec();
        steps[0].participant = Some(7);
        steps[3].feeds = vec![7];
        let cols = columns(&steps);
        let order: Vec<&str> = cols.iter().map(|c| c.addr.as_str()).collect();
        assert_eq!(
            order,
            [
                "api:0",
                "janus:0",
                "bob:1",
                "jm-bob:2",
                "alice:1",
                "jm-alice:2",
                "sub:1",
                "jm-sub:2"
            ]
        );
        let told: Vec<(String, String)> = cols.iter().map(Column::title_and_detail).collect();
        assert_eq!(told[1], ("Janus".into(), "signalling".into()));
        assert_eq!(told[2], ("bob".into(), "participant".into()));
        assert_eq!(told[3], ("Janus".into(), "media · bob".into()));
        assert_eq!(told[6], ("subscriber".into(), "to alice".into()));
        assert_eq!(told[7], ("Janus".into(), "media · to alice".into()));
    }

    #[test]
    fn who_of_a_call_is_its_invite_s_from_and_to() {
        let invite = Step {
            label: "INVITE".into(),
            payload:
                "INVITE sip:bob@b SIP/2.0\r\nf: \"Al\" <sip:al@a;x=1>;tag=9\r\nTo: sip:bob@b\r\n"
                    .into(),
            group: Some("sip".into()),
            ..Default::default()
        };
        assert_eq!(who(&[invite]), ["al@a → bob@b"]);
        assert_eq!(sip_uri(" <sips:x@y:5061;transport=tls>"), "x@y:5061");
    }

    #[test]
    fn a_page_of_core_flows_only_is_not_folded_away() {
        let core = vec![("j:core:2026-11-30T07".to_string(), vec![Step::default()])];
        assert!(html(&core).contains(r#"<details id="noise" open>"#));
        let mut both = core.clone();
        both.push((
            "j:videoroom:1".into(),
            vec![step("a:1", "b:2", Some("b:2"), None)],
        ));
        let page = html(&both);
        assert!(page.contains(r#"<details id="noise">"#));
        assert!(page.find("j:videoroom:1").unwrap() < page.find("j:core:").unwrap());
    }
}
