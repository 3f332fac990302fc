//! The words and JSON of verdicts: a PeerConnection's (`✔ pubA ▲ ok 12 min MOS 4.3`) and
//! a room's (`✔ room 4242 ended: 5 PCs, 5 ok`).

use std::fmt::Write as _;
use std::sync::Arc;

use super::pc::{self, Pc};
use super::{Outcome, Room, Summary};
use crate::janus::event::{Plugin, RoomId};
use crate::json::{write_json_str, write_u64};

/// The words of a PeerConnection's verdict (the first 50 characters are its preview).
pub(super) fn pc_words(short: &str, v: &pc::Verdict, p: &Pc) -> String {
    let mut w = String::new();
    let mark = match v.outcome {
        Outcome::Ok => '✔',
        Outcome::Degraded => '⚠',
        _ => '✖',
    };
    let _ = write!(w, "{mark} {short} ");
    let d = pc::duration(v.duration_us);
    match v.outcome {
        Outcome::Ok => {
            let _ = write!(w, "ok {d}");
        }
        Outcome::Degraded => {
            let _ = write!(w, "degraded {} {d}", v.reasons.join(", "));
        }
        Outcome::NoMedia => {
            let _ = write!(w, "no media {d}");
            if let Some(r) = v.reasons.first() {
                let _ = write!(w, " ({r})");
            }
        }
        Outcome::IceFailed => {
            let _ = write!(w, "ICE failed after {d}");
        }
        Outcome::DtlsFailed => {
            let _ = write!(w, "DTLS failed after {d}");
            if let Some(r) = p.hangup.as_deref() {
                let _ = write!(w, " ({r})");
            }
        }
    }
    if let (Some(m), false) = (v.mos, v.reasons.iter().any(|r| r.starts_with("MOS"))) {
        let _ = write!(w, " MOS {m:.1}");
    }
    w
}

pub(super) fn room_summary(rk: &(Arc<str>, Plugin, RoomId), room: &Room) -> Summary {
    let total: u64 = room.counts.iter().sum();
    let worst = room
        .ended
        .iter()
        .max_by(|a, b| {
            a.3.cmp(&b.3).then(
                b.5.unwrap_or(5.0)
                    .partial_cmp(&a.5.unwrap_or(5.0))
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
        })
        .cloned();
    let worst_outcome = worst.as_ref().map_or(Outcome::Ok, |w| w.3);
    let mut words = format!(
        "{} room {} ended: {total} PC",
        match worst_outcome {
            Outcome::Ok => '✔',
            Outcome::Degraded => '⚠',
            _ => '✖',
        },
        rk.2
    );
    if total != 1 {
        words.push('s');
    }
    for o in Outcome::ALL {
        let n = room.counts[o.index()];
        if n > 0 {
            let _ = write!(words, ", {n} {}", o.as_str());
        }
    }
    if let Some(w) = &worst {
        if w.3 != Outcome::Ok {
            let _ = write!(words, "; worst {} {}", w.0, w.3.as_str());
        }
    }
    let mut json = String::with_capacity(256 + 96 * room.ended.len());
    json.push_str("\"room_summary\":{\"emitter\":");
    write_json_str(&mut json, &rk.0);
    json.push_str(",\"plugin\":");
    write_json_str(&mut json, rk.1.short());
    json.push_str(",\"room\":");
    rk.2.write_json(&mut json);
    json.push_str(",\"peerconnections\":");
    write_u64(&mut json, total);
    json.push_str(",\"outcomes\":{");
    for (i, o) in Outcome::ALL.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        let _ = write!(json, "\"{}\":{}", o.as_str(), room.counts[o.index()]);
    }
    json.push_str("},\"duration_ms\":");
    write_u64(
        &mut json,
        room.last_us
            .saturating_sub(room.first_us.unwrap_or(room.last_us))
            / 1000,
    );
    json.push_str(",\"participants\":[");
    for (i, (name, hid, role, o, d, mos)) in room.ended.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str("{\"name\":");
        write_json_str(&mut json, name);
        let _ = write!(
            json,
            ",\"handle_id\":{hid},\"role\":\"{}\",\"outcome\":\"{}\",\"duration_ms\":{}",
            role.as_str(),
            o.as_str(),
            d / 1000
        );
        if let Some(m) = mos {
            json.push_str(",\"mos\":");
            crate::json::write_hundredths(&mut json, *m);
        }
        json.push('}');
    }
    let _ = write!(json, "],\"not_listed\":{},\"worst\":", room.more);
    match &worst {
        Some((name, hid, _, o, _, _)) => {
            json.push_str("{\"name\":");
            write_json_str(&mut json, name);
            let _ = write!(
                json,
                ",\"handle_id\":{hid},\"outcome\":\"{}\"}}",
                o.as_str()
            );
        }
        None => json.push_str("null"),
    }
    json.push('}');
    Summary {
        words,
        json,
        outcome: worst_outcome,
        room: true,
    }
}
