//! Properties of the correlator on the real captures: any reordering of events within
//! the hold window gives the same grouping, and once every session has ended (and the
//! grace period passed) no state is left.
//!
//! SIP captures are left out of the reordering property on purpose: a SIP handle's
//! events are split between consecutive calls by their order (a call's teardown comes
//! before the next call's offer), so moving an event across that boundary moves it to
//! the other call by design.

#[path = "../../tests/common/captures.rs"]
mod common;

use std::collections::BTreeSet;

use bytes::Bytes;
use heplink_core::correlate::{self, Correlator};
use heplink_core::janus::EventParser;
use proptest::prelude::*;
use serde_json::Value;

/// The fixture's events, one JSON text each.
fn fixture(scenario: &str) -> Vec<String> {
    common::fixture_events(scenario)
        .iter()
        .map(Value::to_string)
        .collect()
}

fn ts(raw: &str) -> u64 {
    serde_json::from_str::<Value>(raw).unwrap()["timestamp"]
        .as_u64()
        .unwrap()
}

/// Feeds events in the given order (clock = newest timestamp seen); returns the set of
/// correlation ids of each event (by its index in the capture) and the correlator.
fn grouping(events: &[String], order: &[usize]) -> (Vec<BTreeSet<String>>, Correlator) {
    let mut c = Correlator::new(correlate::Config::default());
    let mut p = EventParser::new();
    let mut out = Vec::new();
    let mut raws = vec![Bytes::new(); events.len()];
    let mut now = 0;
    for &i in order {
        let raw = Bytes::from(events[i].clone());
        raws[i] = raw.clone();
        let e = p.parse(raw).unwrap();
        now = now.max(e.timestamp.unwrap_or(0));
        c.push(e, now, &mut out);
    }
    c.flush(now, &mut out);
    let mut per = vec![BTreeSet::new(); events.len()];
    for o in out {
        // The same bytes, or equal ones for an event the correlator kept (it copies those).
        let i = raws
            .iter()
            .position(|r| r.as_ptr() == o.event.raw.as_ptr())
            .or_else(|| raws.iter().position(|r| *r == o.event.raw))
            .unwrap();
        per[i].insert(o.cid.to_string());
    }
    (per, c)
}

const HOLD_US: u64 = 10_000_000;
const ROOM_CAPTURES: &[&str] = &[
    "videoroom-2pub-2sub-webrtc",
    "audiobridge-3users",
    "textroom-datachannel-webrtc",
    "echotest-webrtc",
    "grouping-compressed",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn reordering_within_the_hold_window_keeps_the_grouping(
        which in 0..ROOM_CAPTURES.len(),
        jitter in proptest::collection::vec(0..HOLD_US / 2, 400),
    ) {
        let events = fixture(ROOM_CAPTURES[which]);
        let in_order: Vec<usize> = (0..events.len()).collect();
        let (want, _) = grouping(&events, &in_order);
        // Each event may arrive up to half a hold window late.
        let mut order = in_order.clone();
        order.sort_by_key(|&i| ts(&events[i]) + jitter[i % jitter.len()]);
        let (got, mut c) = grouping(&events, &order);
        for i in 0..events.len() {
            prop_assert_eq!(&got[i], &want[i], "event {} of {}", i, ROOM_CAPTURES[which]);
        }
        // And whatever the order, nothing is left once every session has ended.
        let last = events.iter().map(|e| ts(e)).max().unwrap();
        let mut out = Vec::new();
        c.tick(last + HOLD_US / 2 + HOLD_US, &mut out);
        prop_assert!(out.is_empty());
        prop_assert!(c.is_empty());
    }
}

/// Drops a field of the event (top level or in its body): what a newer or older Janus, or
/// a broken one, might send.
fn mutilate(raw: &str, what: usize) -> String {
    let mut v: Value = serde_json::from_str(raw).unwrap();
    let o = v.as_object_mut().unwrap();
    match what % 6 {
        0 => drop(o.remove("event")),
        1 => drop(o.remove("session_id")),
        2 => drop(o.remove("handle_id")),
        3 => {
            if let Some(Value::Object(e)) = o.get_mut("event") {
                e.clear();
            }
        }
        4 => {
            if let Some(Value::Object(d)) = o.get_mut("event").and_then(|e| e.get_mut("data")) {
                d.remove("room");
            }
        }
        _ => drop(o.insert("event".into(), Value::Null)),
    }
    v.to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Every event that parses gives at least one packet, whatever fields it lacks (a
    /// session event without a body was once dropped silently).
    #[test]
    fn every_event_gives_a_packet_whatever_it_lacks(
        which in 0..common::ALL_CAPTURES.len(),
        cuts in proptest::collection::vec((0usize..400, 0usize..6), 1..40),
    ) {
        let mut events = fixture(common::ALL_CAPTURES[which]);
        for (at, what) in cuts {
            let i = at % events.len();
            events[i] = mutilate(&events[i], what);
        }
        let parses: Vec<bool> = events
            .iter()
            .map(|e| EventParser::new().parse(Bytes::from(e.clone())).is_ok())
            .collect();
        let kept: Vec<String> = events
            .iter()
            .zip(&parses)
            .filter(|(_, ok)| **ok)
            .map(|(e, _)| e.clone())
            .collect();
        let order: Vec<usize> = (0..kept.len()).collect();
        let (per, _) = grouping(&kept, &order);
        for (i, cids) in per.iter().enumerate() {
            prop_assert!(!cids.is_empty(), "event {} gave no packet: {}", i, kept[i]);
        }
    }
}
