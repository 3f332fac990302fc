//! The path of one event without I/O: body → events → correlator → mapper → encoded HEP
//! packet. Shared by `convert`, and by the agent and replay tools. It ends at bytes
//! (validated once, by the encoder) and says per body what it took: events per type,
//! rejections, whether any waits for a binding; callers do not encode or diff counters.
//!
//! Why this file is over 500 lines: its code is about 460 lines (the verdicts and names of
//! the diagnosis are handed on here too); the rest are its tests
//! (the one-pass reading checked against splitting first, by property, and the clock of
//! event time), which belong beside the reader they check.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use heplink_proto::PacketBuilder;

use crate::correlate::{self, Correlated, Correlator};
use crate::diagnose::{Diagnoser, Findings, NameChange};
use crate::janus::scan::Scanner;
use crate::janus::split::{split_events_full, split_rest, split_rest_in_array, Piece};
use crate::janus::EventParser;
use crate::map::{MapConfig, Mapper};
use crate::reject::Reject;

/// An encoded HEP packet, with the event it came from.
#[derive(Debug)]
pub struct Output<'a> {
    /// The correlated event.
    pub correlated: &'a Correlated,
    /// The packet (an event's, or a QoS report made of its media stats).
    pub packet: Bytes,
    /// The packet's time stamp, µs since the epoch.
    pub ts_us: u64,
    /// What the packet is.
    pub made: Made,
}

/// What a packet of the pipeline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// The event's own packet.
    Event,
    /// A QoS report made of the event's media stats.
    Qos,
    /// A verdict (a PeerConnection's or a room's) the event's end of a PeerConnection gave.
    Verdict,
}

/// What the pipeline took of one body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taken {
    /// Its events read, per type, indexed as [`crate::janus::event::EventType::LABELS`].
    pub by_type: [u64; 10],
    /// Its pieces that were not events.
    pub rejected: Rejections,
    /// Whether some of its events wait for a binding (held by the correlator).
    pub held: bool,
}

impl Taken {
    /// Its events read.
    pub fn events(&self) -> u64 {
        self.by_type.iter().sum()
    }
}

/// Counters of the pipeline.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PipelineStats {
    /// Events parsed.
    pub events: u64,
    /// Events rejected, per reason.
    pub rejected: BTreeMap<Reject, u64>,
    /// Packets built.
    pub packets: u64,
    /// Events whose packet could not be encoded (logged; never expected: the mapper
    /// builds what the encoder accepts).
    pub unencodable: u64,
    /// Events parsed per type, indexed as [`crate::janus::event::EventType::LABELS`].
    pub by_type: [u64; 10],
    /// Verdict rows (PeerConnections and rooms) sent.
    pub summaries: u64,
}

/// An event of a body that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index of the piece in the body.
    pub index: usize,
    /// Why.
    pub reason: Reject,
    /// The error message.
    pub message: String,
}

/// Rejected events kept with their messages per body; the others are only counted.
pub const MAX_LISTED: usize = 10;

/// The rejected events of one body: the first [`MAX_LISTED`] with their messages (what
/// the slice view shows), and counts of all of them. Bounded whatever the body holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    /// The first [`MAX_LISTED`] rejected events.
    pub listed: Vec<Rejected>,
    /// All rejected events.
    pub total: usize,
    /// All rejected events per reason.
    pub counts: Vec<(Reject, u64)>,
}

impl Rejections {
    fn push(&mut self, r: Rejected) {
        self.total += 1;
        match self.counts.iter_mut().find(|(k, _)| *k == r.reason) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((r.reason, 1)),
        }
        if self.listed.len() < MAX_LISTED {
            self.listed.push(r);
        }
    }
}

impl std::ops::Deref for Rejections {
    type Target = [Rejected];

    /// The listed ones (all of them when there are at most [`MAX_LISTED`]).
    fn deref(&self) -> &[Rejected] {
        &self.listed
    }
}

impl IntoIterator for Rejections {
    type Item = Rejected;
    type IntoIter = std::vec::IntoIter<Rejected>;

    fn into_iter(self) -> Self::IntoIter {
        self.listed.into_iter()
    }
}

/// Parser, correlator and mapper together.
#[derive(Debug)]
pub struct Pipeline {
    parser: EventParser,
    correlator: Correlator,
    mapper: Mapper,
    buf: Vec<Correlated>,
    /// QoS reports of the event being drained.
    qos: Vec<PacketBuilder>,
    /// Where packets are encoded (split off one by one).
    out: BytesMut,
    stats: PipelineStats,
    /// With event time as the clock ([`Pipeline::event_time`]): a body's events, until
    /// its newest timestamp is known.
    pending: Option<Vec<crate::janus::Event>>,
    /// Within [`Pipeline::replay_body`]: the events read are marked replayed.
    replaying: bool,
    /// The newest clock value seen.
    now: u64,
    /// Verdicts and names.
    diag: Diagnoser,
    findings: Findings,
    /// Names for the alias keeper, kept until taken when someone takes them.
    names: Option<Vec<NameChange>>,
}

/// Names kept for the alias keeper at most between two takes.
pub const MAX_NAMES: usize = 4096;

impl Pipeline {
    /// A pipeline.
    pub fn new(corr: correlate::Config, map: MapConfig) -> Self {
        Pipeline {
            parser: EventParser::new(),
            correlator: Correlator::new(corr),
            mapper: Mapper::new(map),
            buf: Vec::new(),
            qos: Vec::new(),
            out: BytesMut::with_capacity(1 << 16),
            stats: PipelineStats::default(),
            pending: None,
            replaying: false,
            now: 0,
            diag: Diagnoser::default(),
            findings: Findings::default(),
            names: None,
        }
    }

    /// Keeps the names the diagnosis gives (for Homer's aliases) until
    /// [`Pipeline::take_names`]; without it they are dropped.
    pub fn with_names(mut self) -> Self {
        self.names = Some(Vec::new());
        self
    }

    /// The names given since the last call (see [`Pipeline::with_names`]).
    pub fn take_names(&mut self, out: &mut Vec<NameChange>) {
        if let Some(n) = self.names.as_mut() {
            out.append(n);
        }
    }

    /// The diagnosis (its counters).
    pub fn diagnoser(&self) -> &Diagnoser {
        &self.diag
    }

    /// Takes the events' own time as the clock (captures, `convert`): each body is
    /// correlated at the newest of its timestamps (or the clock so far, if that is later),
    /// and the `now` given to [`Pipeline::push_body`] only sets a floor.
    pub fn event_time(mut self) -> Self {
        self.pending = Some(Vec::new());
        self
    }

    /// The clock: the newest time seen so far.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The counters.
    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// What the mapper changed (time rewrites).
    pub fn mapper_stats(&self) -> &crate::map::MapStats {
        self.mapper.stats()
    }

    /// The correlator (its gauges and stats).
    pub fn correlator(&self) -> &Correlator {
        &self.correlator
    }

    /// Takes one event-handler body at time `now`; calls `sink` for every packet released
    /// and says what it took of the body.
    ///
    /// The common shapes are read in one pass: a one-line object (Janus with `grouping =
    /// false`) and an array of objects (`grouping = true`). Anything else, and the rest of
    /// a body from its first bad event on, is cut into pieces first
    /// ([`crate::janus::split`]) so that one malformed event never takes down the others.
    pub fn push_body(&mut self, body: &Bytes, now: u64, sink: &mut dyn FnMut(Output<'_>)) -> Taken {
        let by_type = self.stats.by_type;
        let held = self.correlator.stats().held;
        let mut rejected = Rejections::default();
        let b = &body[..];
        let rest = match (b.first(), b.last()) {
            (Some(b'{'), Some(b'}')) => {
                match self.parser.parse(body.clone()) {
                    Ok(ev) => {
                        self.accept(ev, now);
                        None
                    }
                    // E.g. NDJSON, or `{…}{…}` on one line: split it value by value.
                    Err(_) => Some((0, split_events_full(body))),
                }
            }
            (Some(b'['), _) => self.push_array(body, now),
            _ => Some((0, split_events_full(body))),
        };
        if let Some((first_index, pieces)) = rest {
            for (i, piece) in pieces.into_iter().enumerate() {
                let parsed = piece
                    .map_err(|e| (e.reason(), e.to_string()))
                    .and_then(|raw| {
                        self.parser
                            .parse(raw)
                            .map_err(|e| (e.reason(), e.to_string()))
                    });
                match parsed {
                    Ok(ev) => self.accept(ev, now),
                    Err((reason, message)) => {
                        *self.stats.rejected.entry(reason).or_default() += 1;
                        rejected.push(Rejected {
                            index: first_index + i,
                            reason,
                            message,
                        });
                    }
                }
            }
        }
        let now = self.settle(now);
        self.drain(now, sink);
        let mut taken = Taken {
            rejected,
            // None of its events waits for a binding when nothing more is held.
            held: self.correlator.stats().held != held,
            ..Taken::default()
        };
        for (t, (after, before)) in taken
            .by_type
            .iter_mut()
            .zip(self.stats.by_type.iter().zip(by_type))
        {
            *t = after - before;
        }
        taken
    }

    /// Advances the clock to `now` (and with event time, to the body's newest timestamp)
    /// and correlates the events that waited for it; returns the clock.
    fn settle(&mut self, now: u64) -> u64 {
        self.now = self.now.max(now);
        if let Some(mut pending) = self.pending.take() {
            let newest = pending.iter().filter_map(|e| e.timestamp).max();
            self.now = self.now.max(newest.unwrap_or(0));
            for ev in pending.drain(..) {
                self.correlator.push(ev, self.now, &mut self.buf);
            }
            self.pending = Some(pending);
        }
        self.now
    }

    /// Reads a body that opens with `[` element by element; at the first element that
    /// does not read, returns the number of events taken and the pieces of the rest.
    fn push_array(&mut self, body: &Bytes, now: u64) -> Option<(usize, Vec<Piece>)> {
        let Ok(text) = std::str::from_utf8(body) else {
            return Some((0, split_events_full(body)));
        };
        let mut sc = Scanner::new(text);
        if sc.array_open().is_err() {
            return Some((0, split_events_full(body)));
        }
        let mut n = 0;
        let mut first = true;
        loop {
            let at = sc.pos();
            match sc.array_next(first) {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => return Some((n, split_rest_in_array(body, 0, at))),
            }
            first = false;
            let at = sc.pos();
            match self
                .parser
                .read_event(&mut sc, false, |s, e| body.slice(s..e))
            {
                Ok(ev) => {
                    self.accept(ev, now);
                    n += 1;
                }
                Err(_) => return Some((n, split_rest_in_array(body, 0, at))),
            }
        }
        // More after the array (NDJSON of arrays): cut the rest.
        if sc.end().is_err() {
            let mut at = sc.pos();
            if body[at] == b',' {
                at += 1;
            }
            return Some((n, split_rest(body, at)));
        }
        None
    }

    fn accept(&mut self, mut ev: crate::janus::Event, now: u64) {
        ev.replayed = self.replaying;
        self.stats.events += 1;
        self.stats.by_type[ev.kind.index()] += 1;
        match &mut self.pending {
            Some(p) => p.push(ev),
            None => self.correlator.push(ev, now, &mut self.buf),
        }
    }

    /// Takes a body again only to rebuild state (the correlator's, the QoS reports', the
    /// diagnosis's): a journal's delivered bodies after a crash, a partition's log on
    /// takeover. Its events are marked [`crate::janus::Event::replayed`]: what they leave
    /// held stays held, and when a later body (or the end of the hold) releases them they
    /// feed the state as the first time (a subscriber's SDP, held until its join, gives its
    /// QoS reports their SSRCs) but make no packet: their first run sent them. What else
    /// the clock releases meanwhile (other bodies' holds) goes to `sink` as usual. `at`:
    /// when it is taken.
    pub fn replay_body(&mut self, body: &Bytes, at: u64, sink: &mut dyn FnMut(Output<'_>)) {
        self.replaying = true;
        let _ = self.push_body(body, at, sink);
        self.replaying = false;
    }

    /// Advances the clock: releases holds that ran out, forgets old state.
    pub fn tick(&mut self, now: u64, sink: &mut dyn FnMut(Output<'_>)) {
        self.correlator.tick(now, &mut self.buf);
        self.drain(now, sink);
    }

    /// Releases everything held (end of input, shutdown).
    pub fn flush(&mut self, now: u64, sink: &mut dyn FnMut(Output<'_>)) {
        self.correlator.flush(now, &mut self.buf);
        self.drain(now, sink);
    }

    fn drain(&mut self, now: u64, sink: &mut dyn FnMut(Output<'_>)) {
        // By reference, then cleared: a `Correlated` is a few hundred bytes, not worth moving.
        for c in &self.buf {
            // A replayed event feeds the state; its packets went out the first time.
            let live = !c.event.replayed;
            // The media stats and SDPs both read, once.
            let mut reads = crate::map::stats::EventReads::new(&c.event.raw);
            self.diag.event_with(c, &mut reads, &mut self.findings);
            let name = self.diag.short_name(&c.event);
            match self.mapper.encode(c, name, now, &mut self.out) {
                Ok((packet, ts_us)) if live => {
                    self.stats.packets += 1;
                    sink(Output {
                        correlated: c,
                        packet,
                        ts_us,
                        made: Made::Event,
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    self.stats.unencodable += 1;
                    tracing::warn!(cid = %c.cid, error = %e, "Event could not be encoded.");
                }
            }
            self.mapper
                .qos_reports_with(c, &mut reads, now, &mut self.qos);
            for b in self.qos.drain(..) {
                match b.encode(&mut self.out) {
                    Ok(_) if !live => self.out.clear(),
                    Ok(_) => {
                        self.stats.packets += 1;
                        let ts_us = b.ts_sec.map_or(0, |s| {
                            u64::from(s) * 1_000_000 + u64::from(b.ts_usec.unwrap_or(0))
                        });
                        sink(Output {
                            correlated: c,
                            packet: self.out.split().freeze(),
                            ts_us,
                            made: Made::Qos,
                        });
                    }
                    Err(e) => {
                        self.stats.unencodable += 1;
                        tracing::warn!(cid = %c.cid, error = %e, "QoS report could not be encoded.");
                    }
                }
            }
            for sum in self.findings.summaries.drain(..) {
                let verdict = (sum.words.as_str(), sum.json.as_str(), sum.room);
                match self.mapper.summary(c, verdict, now, &mut self.out) {
                    Ok(_) if !live => {}
                    Ok((packet, ts_us)) => {
                        self.stats.packets += 1;
                        self.stats.summaries += 1;
                        sink(Output {
                            correlated: c,
                            packet,
                            ts_us,
                            made: Made::Verdict,
                        });
                    }
                    Err(e) => {
                        self.stats.unencodable += 1;
                        tracing::warn!(cid = %c.cid, error = %e, "Summary could not be encoded.");
                    }
                }
            }
            for w in self.findings.warnings.drain(..) {
                tracing::warn!(emitter = %c.event.emitter, "{w}");
            }
            match self.names.as_mut() {
                Some(n) if n.len() + self.findings.names.len() <= MAX_NAMES => {
                    n.append(&mut self.findings.names)
                }
                _ => self.findings.names.clear(),
            }
        }
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Replaying the first bodies of a capture (to rebuild state), then taking the rest,
    /// sends exactly the packets the first run sent after those bodies for the events of
    /// the rest: their QoS reports and verdicts included, which need what the replayed
    /// bodies left held (a subscriber's SDP before its join). The replayed events
    /// themselves make no packet, even when a later body releases them: their first run
    /// sent them. (Forgetting what a replay left held lost QoS reports; sending it
    /// duplicated events the first run had sent.)
    #[test]
    fn replayed_bodies_leave_the_same_state_as_the_first_run() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/janus/");
        let mut split_with_held = 0;
        for name in [
            "videoroom-2pub-2sub-webrtc",
            "sip-call-simple",
            "1.4.1/videoroom-2pub-2sub-webrtc",
        ] {
            let text = std::fs::read_to_string(format!("{dir}{name}.jsonl")).unwrap();
            let bodies: Vec<Bytes> = text.lines().map(|l| Bytes::from(l.to_owned())).collect();
            let new = || Pipeline::new(correlate::Config::default(), MapConfig::default());
            // The first run, once: each packet with the event it is of, where each body's
            // packets begin, and whether something is held after each body.
            let mut first = new();
            let (mut packets, mut starts, mut held) = (Vec::new(), Vec::new(), Vec::new());
            for b in &bodies {
                starts.push(packets.len());
                first.push_body(b, 0, &mut |o| {
                    packets.push((o.correlated.event.raw.clone(), o.packet.to_vec()))
                });
                held.push(first.correlator.held() > 0);
            }
            first.flush(0, &mut |o| {
                packets.push((o.correlated.event.raw.clone(), o.packet.to_vec()))
            });
            // Every split that leaves something held, and every tenth.
            for k in (1..bodies.len()).filter(|k| held[k - 1] || k % 10 == 0) {
                let mut again = new();
                let mut sent = Vec::new();
                let mut replayed = std::collections::HashSet::new();
                for b in &bodies[..k] {
                    again.replay_body(b, 0, &mut |o| sent.push(o.packet.to_vec()));
                    replayed.extend(
                        crate::janus::split_events(b)
                            .into_iter()
                            .flatten()
                            .map(|e| e.to_vec()),
                    );
                }
                assert!(sent.is_empty(), "{name}: a replay sends nothing of its own");
                if again.correlator.held() > 0 {
                    split_with_held += 1;
                }
                for b in &bodies[k..] {
                    again.push_body(b, 0, &mut |o| sent.push(o.packet.to_vec()));
                }
                again.flush(0, &mut |o| sent.push(o.packet.to_vec()));
                let after_k: Vec<&Vec<u8>> = packets[starts[k]..]
                    .iter()
                    .filter(|(raw, _)| !replayed.contains(&raw[..]))
                    .map(|(_, p)| p)
                    .collect();
                assert_eq!(sent.len(), after_k.len(), "{name}, replayed {k} bodies");
                assert!(
                    sent.iter().zip(&after_k).all(|(a, b)| a == *b),
                    "{name}, replayed {k} bodies: packets differ"
                );
            }
        }
        assert!(split_with_held > 0, "some split leaves events held");
    }

    /// What splitting every body first (the path before the one-pass reading) gives: the
    /// raw bytes of the accepted events (sorted) and (index, reason) of each rejected piece.
    fn reference(body: &Bytes) -> (Vec<Bytes>, Vec<(usize, Reject)>) {
        let mut parser = EventParser::new();
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        for (i, piece) in crate::janus::split_events(body).into_iter().enumerate() {
            let piece = match piece {
                Ok(p) => p,
                Err(_) => {
                    bad.push((i, Reject::NotAnEvent));
                    continue;
                }
            };
            match parser.parse(piece.clone()) {
                Ok(_) => ok.push(piece),
                Err(e) => bad.push((i, e.reason())),
            }
        }
        ok.sort();
        (ok, bad)
    }

    fn run(body: &Bytes) -> (Vec<Bytes>, Vec<(usize, Reject)>) {
        let mut p = Pipeline::new(correlate::Config::default(), MapConfig::default());
        let mut ok = Vec::new();
        let rejected = p
            .push_body(body, 1, &mut |o| ok.push(o.correlated.event.raw.clone()))
            .rejected;
        p.flush(1, &mut |o| ok.push(o.correlated.event.raw.clone()));
        let bad = rejected.iter().map(|r| (r.index, r.reason)).collect();
        // The correlator may hold an event for a while: compare what, not in which order.
        ok.sort();
        (ok, bad)
    }

    const E1: &str =
        r#"{"emitter":"j","type":1,"timestamp":1,"session_id":7,"event":{"name":"created"}}"#;
    const E2: &str = r#"{"emitter":"j","type":256,"subtype":2,"event":{"status":"update"}}"#;

    #[test]
    fn one_pass_arrays_agree_with_splitting_first() {
        let bodies = [
            format!("[{E1},{E2}]"),
            format!("[ {E1} ,\n {E2} ]\n"),
            format!("[{E1},{{\"type\":}},{E2}]"),
            format!("[{E1},42,{E2}]"),
            format!("[{E1},{E2},]"),
            format!("[{E1},{{\"emitter\":\"j\"}},{E2}]"),
            format!("[{E1}]\n[{E2}]"),
            format!("[{E1}],[{E2}]"),
            format!("[{E1}]\n{E2}\n"),
            format!("[{E1},[{E2}]]"),
            "[]".to_string(),
            "[".to_string(),
            format!("[{E1},{{\"type\":1,\"x\":\"\\q\"}},{E2}]"),
        ];
        for b in bodies {
            let body = Bytes::from(b.clone());
            assert_eq!(run(&body), reference(&body), "{b}");
        }
        // A missing comma: splitting first loses both events in one bad piece; the
        // one-pass reading takes the first, then cuts the rest and takes the second.
        let body = Bytes::from(format!("[{E1} {E2}]"));
        assert_eq!(reference(&body).0.len(), 0);
        assert_eq!(run(&body).0.len(), 2);
        // A body cut after a whole event: the cut is reported, the event is not lost.
        let body = Bytes::from(format!("[{E1},{E2}"));
        assert_eq!(reference(&body).0.len(), 1);
        assert_eq!(
            run(&body),
            (
                reference(&Bytes::from(format!("[{E1},{E2}]"))).0,
                vec![(2, Reject::NotAnEvent)]
            )
        );
    }

    /// The one-pass reading loses no event splitting first would deliver, and reports a
    /// rejection whenever splitting does, unless it recovered more events instead.
    fn no_worse(body: &Bytes) -> Result<(), TestCaseError> {
        let (fast, fast_bad) = run(body);
        let (slow, slow_bad) = reference(body);
        let mut rest = fast.clone();
        for e in &slow {
            let Some(i) = rest.iter().position(|x| x == e) else {
                return Err(TestCaseError::fail(format!("lost {e:?} of {body:?}")));
            };
            rest.remove(i);
        }
        prop_assert!(
            !fast_bad.is_empty() || slow_bad.is_empty() || fast.len() > slow.len(),
            "{:?}: no rejection, splitting rejects {:?}",
            body,
            slow_bad
        );
        Ok(())
    }

    #[test]
    fn event_time_clock_follows_the_newest_timestamp_of_each_body() {
        let ev = |ts: &str| format!(r#"{{"emitter":"j","type":256,"subtype":2{ts},"event":{{}}}}"#);
        let mut p = Pipeline::new(correlate::Config::default(), MapConfig::default()).event_time();
        let mut stamps = Vec::new();
        let mut sink = |o: Output<'_>| {
            let d = heplink_proto::decode(&o.packet, heplink_proto::Mode::Strict).unwrap();
            assert_eq!(d.timestamp_micros(), Some(o.ts_us), "ts_us is the packet's");
            stamps.push(o.ts_us / 1_000_000);
        };
        let body = Bytes::from(format!(
            "[{},{},{}]",
            ev(r#","timestamp":5000000"#),
            ev(""),
            ev(r#","timestamp":9000000"#)
        ));
        p.push_body(&body, 0, &mut sink);
        assert_eq!(p.now(), 9_000_000);
        // A later body with an older timestamp does not move the clock back.
        p.push_body(&Bytes::from(ev(r#","timestamp":3000000"#)), 0, &mut sink);
        assert_eq!(p.now(), 9_000_000);
        // The event without a timestamp is stamped with its body's clock.
        assert_eq!(stamps, vec![5, 9, 9, 3]);
    }

    proptest! {
        /// Any byte of a grouped body overwritten: the one-pass reading accepts and
        /// rejects exactly what splitting first does.
        #[test]
        fn one_pass_agrees_after_any_corruption(at in 0usize..200, byte in prop_oneof![
            Just(b'"'), Just(b'{'), Just(b'}'), Just(b','), Just(b']'), Just(b'\\'), Just(b'x'),
            Just(0u8), Just(b' ')]) {
            let mut b = format!("[{E1},{E2},{E1}]").into_bytes();
            let at = at % b.len();
            b[at] = byte;
            let body = Bytes::from(b);
            no_worse(&body)?;
        }
    }
}
