//! Reading the events QoS learns from, with the validating scanner the event reader uses
//! (one pass, no generic visitor):
//!
//! - a media stats event (type 32, subtype 3) for its reports: the fields of [`Stats`]
//!   from the event's `event` object (one medium), or from its array (every medium, with
//!   Janus's `combine_media_stats = true`);
//! - a JSEP event (type 8) for its SDP ([`Jsep`]), where the SSRCs and payload types are.
//!
//! A field of the wrong type, or the same field twice, gives nothing for the event, as
//! with serde's derive used here before; the tests compare the two. The one difference:
//! serde also read an array as an object's fields in order, which Janus never writes and
//! which this refuses.

use std::borrow::Cow;

use crate::janus::scan::{Num, Scalar, ScanError, Scanner, R};

/// The fields of one medium's stats that the reports use (its strings borrowed from the
/// event unless they hold escapes).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Stats<'a> {
    pub(crate) mid: Option<Cow<'a, str>>,
    pub(crate) media: Option<Cow<'a, str>>,
    pub(crate) codec: Option<Cow<'a, str>>,
    pub(crate) base: u32,
    pub(crate) rtt: u32,
    pub(crate) lost: i64,
    pub(crate) lost_by_remote: i64,
    pub(crate) jitter_local: u32,
    pub(crate) jitter_remote: u32,
    pub(crate) packets_received: u64,
    pub(crate) packets_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) rtt_values: Option<RttValues>,
}

/// `rtt-values` (Janus ≥ 1.1.4).
#[derive(Debug, Default, PartialEq, Clone, Copy)]
pub(crate) struct RttValues {
    pub(crate) lsr: u32,
    pub(crate) dlsr: u32,
}

/// What the diagnosis and the QoS reports read of one event's JSON (its media stats, its
/// JSEP's SDP): each read at most once, however many of them ask.
#[derive(Debug)]
pub(crate) struct EventReads<'a> {
    raw: &'a [u8],
    media: Option<Option<Vec<Stats<'a>>>>,
    jsep: Option<Option<Jsep<'a>>>,
}

impl<'a> EventReads<'a> {
    /// Nothing read yet of the event `raw`.
    pub(crate) fn new(raw: &'a [u8]) -> Self {
        EventReads {
            raw,
            media: None,
            jsep: None,
        }
    }

    /// [`media_stats`] of the event, read the first time it is asked for.
    pub(crate) fn media_stats(&mut self) -> Option<&[Stats<'a>]> {
        let raw = self.raw;
        self.media
            .get_or_insert_with(|| media_stats(raw))
            .as_deref()
    }

    /// [`jsep_sdp`] of the event, read the first time it is asked for.
    pub(crate) fn jsep(&mut self) -> Option<&Jsep<'a>> {
        let raw = self.raw;
        self.jsep.get_or_insert_with(|| jsep_sdp(raw)).as_ref()
    }
}

/// The stats of every medium in a media stats event, or `None` when the event is not
/// valid JSON, has no `event`, or a field of the wrong type.
pub(crate) fn media_stats(raw: &[u8]) -> Option<Vec<Stats<'_>>> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut sc = Scanner::new(text);
    let (mut all, mut seen) = (None, 0);
    sc.object(|sc, key| {
        if key != "event" {
            return sc.skip();
        }
        first_time(&mut seen, 0, sc)?;
        all = Some(if sc.peek()? == b'[' {
            let mut v = Vec::new();
            sc.array(|sc| stats(sc).map(|s| v.push(s)))?;
            v
        } else {
            vec![stats(sc)?]
        });
        Ok(())
    })
    .ok()?;
    sc.end().ok()?;
    all
}

/// What QoS reads of a JSEP event: whose SDP it is and the SDP (borrowed unless it holds
/// escapes, which a JSON SDP's `\r\n` always are).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Jsep<'a> {
    /// `owner`: `local` is Janus's own SDP, `remote` the peer's.
    pub(crate) owner: Cow<'a, str>,
    /// `jsep.sdp`.
    pub(crate) sdp: Cow<'a, str>,
}

/// The `owner` and `jsep.sdp` of a JSEP event (each empty when absent), or `None` when the
/// event is not valid JSON, has no `event` object, or one of them is not a string.
pub(crate) fn jsep_sdp(raw: &[u8]) -> Option<Jsep<'_>> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut sc = Scanner::new(text);
    let (mut out, mut seen) = (None, 0);
    sc.object(|sc, key| {
        if key != "event" {
            return sc.skip();
        }
        first_time(&mut seen, 0, sc)?;
        let (mut j, mut seen) = (Jsep::default(), 0);
        sc.object(|sc, key| match &*key {
            "owner" => {
                first_time(&mut seen, 0, sc)?;
                j.owner = str_of(sc)?;
                Ok(())
            }
            "jsep" => {
                first_time(&mut seen, 1, sc)?;
                let mut seen = 0;
                sc.object(|sc, key| {
                    if key != "sdp" {
                        return sc.skip();
                    }
                    first_time(&mut seen, 0, sc)?;
                    j.sdp = str_of(sc)?;
                    Ok(())
                })
            }
            _ => sc.skip(),
        })?;
        out = Some(j);
        Ok(())
    })
    .ok()?;
    sc.end().ok()?;
    out
}

/// A string (not `null`: serde's derive refused `null` for a `String`).
fn str_of<'a>(sc: &mut Scanner<'a>) -> R<Cow<'a, str>> {
    match sc.opt_str()? {
        Some(s) => Ok(s),
        None => Err(ScanError::new("expected a string", sc.pos())),
    }
}

/// One medium's stats object.
fn stats<'a>(sc: &mut Scanner<'a>) -> R<Stats<'a>> {
    let mut s = Stats::default();
    let mut seen = 0u16;
    sc.object(|sc, key| {
        let field = match &*key {
            "mid" => 0,
            "media" => 1,
            "codec" => 2,
            "base" => 3,
            "rtt" => 4,
            "lost" => 5,
            "lost-by-remote" => 6,
            "jitter-local" => 7,
            "jitter-remote" => 8,
            "packets-received" => 9,
            "packets-sent" => 10,
            "bytes-received" => 11,
            "bytes-sent" => 12,
            "rtt-values" => 13,
            _ => return sc.skip(),
        };
        first_time(&mut seen, field, sc)?;
        match field {
            0 => s.mid = sc.opt_str()?,
            1 => s.media = sc.opt_str()?,
            2 => s.codec = sc.opt_str()?,
            3 => s.base = u32_of(sc)?,
            4 => s.rtt = u32_of(sc)?,
            5 => s.lost = i64_of(sc)?,
            6 => s.lost_by_remote = i64_of(sc)?,
            7 => s.jitter_local = u32_of(sc)?,
            8 => s.jitter_remote = u32_of(sc)?,
            9 => s.packets_received = u64_of(sc)?,
            10 => s.packets_sent = u64_of(sc)?,
            11 => s.bytes_received = u64_of(sc)?,
            12 => s.bytes_sent = u64_of(sc)?,
            _ => s.rtt_values = rtt_values(sc)?,
        }
        Ok(())
    })?;
    Ok(s)
}

/// Marks `field` (a bit of `seen`) as read; an error if it was already (serde's derive
/// refused a field given twice).
fn first_time(seen: &mut u16, field: u8, sc: &Scanner<'_>) -> R<()> {
    if *seen & (1 << field) != 0 {
        return Err(ScanError::new("duplicate field", sc.pos()));
    }
    *seen |= 1 << field;
    Ok(())
}

/// `rtt-values`: an object or `null`.
fn rtt_values(sc: &mut Scanner<'_>) -> R<Option<RttValues>> {
    let mut v = RttValues::default();
    let mut seen = 0u16;
    let present = sc.opt_object(|sc, key| {
        let field = match &*key {
            "lsr" => 0,
            "dlsr" => 1,
            _ => return sc.skip(),
        };
        first_time(&mut seen, field, sc)?;
        let n = u32_of(sc)?;
        if field == 0 {
            v.lsr = n;
        } else {
            v.dlsr = n;
        }
        Ok(())
    })?;
    Ok(present.then_some(v))
}

/// A number read as serde_json reads it into an integer field: only an integer written
/// without fraction or exponent.
fn int(sc: &mut Scanner<'_>) -> R<Num> {
    let at = sc.pos();
    match sc.opt_scalar()? {
        Some(Scalar::Num(n @ (Num::U(_) | Num::I(_)))) => Ok(n),
        _ => Err(ScanError::new("expected an integer", at)),
    }
}

fn u64_of(sc: &mut Scanner<'_>) -> R<u64> {
    let at = sc.pos();
    match int(sc)? {
        Num::U(v) => Ok(v),
        _ => Err(ScanError::new("expected an unsigned integer", at)),
    }
}

fn u32_of(sc: &mut Scanner<'_>) -> R<u32> {
    let at = sc.pos();
    u32::try_from(u64_of(sc)?).map_err(|_| ScanError::new("out of range", at))
}

fn i64_of(sc: &mut Scanner<'_>) -> R<i64> {
    let at = sc.pos();
    match int(sc)? {
        Num::U(v) => i64::try_from(v).map_err(|_| ScanError::new("out of range", at)),
        Num::I(v) => Ok(v),
        Num::F(_) => Err(ScanError::new("expected an integer", at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// What the reports read before: serde's derive over the same fields.
    #[derive(Debug, Deserialize, Default, PartialEq)]
    #[serde(default, rename_all = "kebab-case")]
    struct Reference {
        mid: Option<String>,
        media: Option<String>,
        codec: Option<String>,
        base: u32,
        rtt: u32,
        lost: i64,
        lost_by_remote: i64,
        jitter_local: u32,
        jitter_remote: u32,
        packets_received: u64,
        packets_sent: u64,
        bytes_received: u64,
        bytes_sent: u64,
        rtt_values: Option<RttReference>,
    }

    #[derive(Debug, Deserialize, Default, PartialEq)]
    #[serde(default)]
    struct RttReference {
        lsr: u32,
        dlsr: u32,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrAll {
        One(Box<Reference>),
        All(Vec<Reference>),
    }

    #[derive(Deserialize)]
    struct Outer {
        event: OneOrAll,
    }

    /// The media that get reports (audio and video): serde also read an array as one
    /// medium's fields in order (`["0","audio"]`), which Janus never sends and which
    /// gives no medium here; either way such an entry has no reports.
    fn reported(v: Vec<Reference>) -> Vec<Reference> {
        v.into_iter()
            .filter(|s| {
                let m = s.media.as_deref().unwrap_or("");
                m.starts_with("audio") || m.starts_with("video")
            })
            .collect()
    }

    fn reference(raw: &str) -> Option<Vec<Reference>> {
        let o = serde_json::from_str::<Outer>(raw).ok()?;
        Some(reported(match o.event {
            OneOrAll::One(s) => vec![*s],
            OneOrAll::All(v) => v,
        }))
    }

    fn ours(raw: &str) -> Option<Vec<Reference>> {
        let own = |c: &Option<Cow<'_, str>>| c.as_deref().map(String::from);
        media_stats(raw.as_bytes())
            .map(|v| {
                v.iter()
                    .map(|s| Reference {
                        mid: own(&s.mid),
                        media: own(&s.media),
                        codec: own(&s.codec),
                        base: s.base,
                        rtt: s.rtt,
                        lost: s.lost,
                        lost_by_remote: s.lost_by_remote,
                        jitter_local: s.jitter_local,
                        jitter_remote: s.jitter_remote,
                        packets_received: s.packets_received,
                        packets_sent: s.packets_sent,
                        bytes_received: s.bytes_received,
                        bytes_sent: s.bytes_sent,
                        rtt_values: s.rtt_values.map(|r| RttReference {
                            lsr: r.lsr,
                            dlsr: r.dlsr,
                        }),
                    })
                    .collect()
            })
            .map(reported)
    }

    /// Every event of every capture (`fixtures/janus/*.jsonl`) that `keep` keeps.
    fn fixture_events(keep: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/janus");
        let mut out = Vec::new();
        for f in std::fs::read_dir(dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                match serde_json::from_str::<serde_json::Value>(line) {
                    Ok(serde_json::Value::Array(a)) => out.extend(a.into_iter().filter(&keep)),
                    Ok(v) if keep(&v) => out.push(v),
                    _ => {}
                }
            }
        }
        out
    }

    #[test]
    fn reads_every_media_stats_event_of_the_fixtures_as_serde_did() {
        let events = fixture_events(|e| e["type"] == 32 && e["subtype"] == 3);
        for e in &events {
            let raw = e.to_string();
            let want = reference(&raw);
            assert!(want.is_some(), "{raw}");
            assert_eq!(ours(&raw), want, "{raw}");
        }
        let seen = events.len();
        assert!(seen > 50, "only {seen} media stats events in the fixtures");
    }

    #[test]
    fn refuses_and_accepts_what_serde_did() {
        let cases = [
            r#"{"type":32,"event":{"media":"audio","base":48000,"lost":-3,"rtt-values":{"lsr":1,"dlsr":2}}}"#,
            r#"{"type":32,"event":[{"mid":"0","media":"audio"},{"mid":"1","media":"video","codec":"v\u0070 8"}]}"#,
            r#"{"type":32,"event":[]}"#,
            r#"{"type":32,"event":{"media":null,"rtt-values":null}}"#,
            r#"{"type":32,"event":{"base":1.0}}"#,
            r#"{"type":32,"event":{"base":1e3}}"#,
            r#"{"type":32,"event":{"base":-1}}"#,
            r#"{"type":32,"event":{"base":4294967296}}"#,
            r#"{"type":32,"event":{"lost":9223372036854775808}}"#,
            r#"{"type":32,"event":{"lost":-9223372036854775808}}"#,
            r#"{"type":32,"event":{"packets-sent":null}}"#,
            r#"{"type":32,"event":{"media":3}}"#,
            r#"{"type":32,"event":{"media":"audio","media":"video"}}"#,
            r#"{"type":32,"event":{"rtt-values":{"lsr":1,"lsr":2}}}"#,
            r#"{"type":32,"event":"stats"}"#,
            r#"{"type":32,"event":{}, "event":{}}"#,
            r#"{"type":32}"#,
            r#"{"type":32,"event":{"media":"audio"}} x"#,
            r#"{"type":32,"event":{"media":"audio","extra":{"deep":[1,2,{"x":null}]}}}"#,
        ];
        for raw in cases {
            assert_eq!(ours(raw), reference(raw), "{raw}");
        }
        // Where serde read an array as a struct's fields in order, this reader refuses it
        // (Janus writes objects there).
        let raw = r#"{"type":32,"event":{"media":"audio","rtt-values":[1,2]}}"#;
        assert!(reference(raw).is_some_and(|v| v[0].rtt_values.is_some()));
        assert_eq!(ours(raw), None);
    }

    /// What QoS read of a JSEP event before: serde's derive.
    #[derive(Deserialize)]
    struct JsepOuter {
        event: JsepReference,
    }

    #[derive(Debug, Deserialize, Default, PartialEq)]
    #[serde(default)]
    struct JsepReference {
        owner: String,
        jsep: SdpReference,
    }

    #[derive(Debug, Deserialize, Default, PartialEq)]
    #[serde(default)]
    struct SdpReference {
        sdp: String,
    }

    fn jsep_reference(raw: &str) -> Option<(String, String)> {
        let o = serde_json::from_str::<JsepOuter>(raw).ok()?;
        Some((o.event.owner, o.event.jsep.sdp))
    }

    fn jsep_ours(raw: &str) -> Option<(String, String)> {
        jsep_sdp(raw.as_bytes()).map(|j| (j.owner.into_owned(), j.sdp.into_owned()))
    }

    #[test]
    fn reads_every_jsep_event_of_the_fixtures_as_serde_did() {
        let events = fixture_events(|e| e["type"] == 8);
        for e in &events {
            // Compact and indented, as Janus writes either.
            for raw in [e.to_string(), serde_json::to_string_pretty(e).unwrap()] {
                let want = jsep_reference(&raw);
                assert!(want.as_ref().is_some_and(|w| w.1.contains("m=")), "{raw}");
                assert_eq!(jsep_ours(&raw), want, "{raw}");
            }
        }
        let seen = events.len();
        assert!(seen > 10, "only {seen} JSEP events in the fixtures");
    }

    #[test]
    fn jsep_refuses_and_accepts_what_serde_did() {
        let cases = [
            r#"{"type":8,"event":{"owner":"local","jsep":{"type":"offer","sdp":"v=0\r\nm=audio 9 X 111\r\n"}}}"#,
            r#"{"type":8,"event":{"owner":"remote"}}"#,
            r#"{"type":8,"event":{"jsep":{}}}"#,
            r#"{"type":8,"event":{}}"#,
            r#"{"type":8,"event":{"owner":null,"jsep":{"sdp":"v=0"}}}"#,
            r#"{"type":8,"event":{"owner":"local","jsep":null}}"#,
            r#"{"type":8,"event":{"owner":"local","jsep":{"sdp":null}}}"#,
            r#"{"type":8,"event":{"owner":"local","jsep":{"sdp":7}}}"#,
            r#"{"type":8,"event":{"owner":"local","owner":"remote"}}"#,
            r#"{"type":8,"event":{"jsep":{"sdp":"a","sdp":"b"}}}"#,
            r#"{"type":8,"event":{"jsep":{}, "jsep":{}}}"#,
            r#"{"type":8,"event":{},"event":{}}"#,
            r#"{"type":8,"event":"jsep"}"#,
            r#"{"type":8,"event":null}"#,
            r#"{"type":8}"#,
            r#"{"type":8,"event":{"owner":"local"}} x"#,
            r#"{"type":8,"event":{"own\u0065r":"local","jsep":{"sdp":"v=\u0030","x":[1,{"y":null}]}}}"#,
        ];
        for raw in cases {
            assert_eq!(jsep_ours(raw), jsep_reference(raw), "{raw}");
        }
    }
}
