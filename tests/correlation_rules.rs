//! One test per correlation rule, built from real fixture events (ids edited where a case
//! needs it).

mod common;

use std::collections::BTreeSet;

use bytes::Bytes;
use heplink::correlate::{self, Correlated, Correlator, Fallback};
use heplink::janus::{split_events, EventParser};
use serde_json::{json, Value};

use common::fixture_events as fixture;

fn ts(v: &Value) -> u64 {
    v["timestamp"].as_u64().unwrap()
}

fn plugin_event(v: &Value) -> Option<&str> {
    v["event"]["data"]["event"].as_str()
}

/// Runs events through a correlator (event time as the clock, then a flush); returns for
/// each input event the correlated outputs it gave, and the correlator.
fn run(events: &[Value], cfg: correlate::Config) -> (Vec<Vec<Correlated>>, Correlator) {
    let mut c = Correlator::new(cfg);
    let mut parser = EventParser::new();
    let mut raws: Vec<Bytes> = Vec::new();
    let mut out = Vec::new();
    let mut now = 0;
    for v in events {
        let raw = Bytes::from(v.to_string());
        raws.push(raw.clone());
        let e = parser.parse(raw).unwrap();
        now = now.max(e.timestamp.unwrap_or(0));
        c.push(e, now, &mut out);
    }
    c.flush(now, &mut out);
    // Held times are measured to the flush, never wrapped (a bug found: flushing at
    // u64::MAX made them ~1.8e19 µs).
    let span = now
        - out
            .iter()
            .filter_map(|o| o.event.timestamp)
            .min()
            .unwrap_or(now);
    for o in &out {
        let held = o.facts.held_us;
        assert!(
            held <= span,
            "held_us {held} beyond the capture's span {span}"
        );
    }
    let mut per = vec![Vec::new(); events.len()];
    for o in out {
        let i = index_of(&raws, &o.event.raw);
        per[i].push(o);
    }
    (per, c)
}

/// Which input event `raw` is: the same bytes, or for an event the correlator kept (held,
/// or kept for late groups: it copies those, so as not to keep their body) equal bytes.
fn index_of(raws: &[Bytes], raw: &Bytes) -> usize {
    raws.iter()
        .position(|r| r.as_ptr() == raw.as_ptr())
        .or_else(|| raws.iter().position(|r| r == raw))
        .expect("an input event")
}

fn cids(per: &[Vec<Correlated>]) -> Vec<Vec<String>> {
    per.iter()
        .map(|v| v.iter().map(|c| c.cid.to_string()).collect())
        .collect()
}

const ROOM: &str = "janus-fixtures:videoroom:4242";

#[test]
fn a_handle_managing_two_rooms_belongs_to_both_and_an_event_naming_one_goes_there_only() {
    let vr = fixture("videoroom-2pub-2sub-webrtc");
    let admin = 1575281852846882u64;
    let mine: Vec<Value> = vr
        .iter()
        .filter(|v| v["handle_id"] == admin)
        .cloned()
        .collect();
    let attached = mine[0].clone();
    let created = mine
        .iter()
        .find(|v| plugin_event(v) == Some("created"))
        .unwrap()
        .clone();
    let destroyed = mine
        .iter()
        .find(|v| plugin_event(v) == Some("destroyed"))
        .unwrap()
        .clone();
    let detached = mine.last().unwrap().clone();
    let mut created2 = created.clone();
    created2["event"]["data"]["room"] = json!(4343);
    created2["timestamp"] = json!(ts(&created) + 1000);
    let mut destroyed2 = destroyed.clone();
    destroyed2["event"]["data"]["room"] = json!(4343);
    destroyed2["timestamp"] = json!(ts(&destroyed) - 1000);
    let events = vec![attached, created, created2, destroyed2, destroyed, detached];
    let (per, _) = run(&events, correlate::Config::default());
    let c = cids(&per);
    let other = "janus-fixtures:videoroom:4343";
    assert_eq!(c[0], [ROOM], "attached waits for the first binding");
    assert_eq!(c[1], [ROOM]);
    assert_eq!(c[2], [other], "created naming room 4343 goes to 4343 only");
    assert_eq!(
        c[3],
        [other],
        "destroyed naming room 4343 goes to 4343 only"
    );
    assert_eq!(c[4], [ROOM], "destroyed naming room 4242 goes to 4242 only");
    assert_eq!(
        c[5],
        [ROOM.to_string(), other.to_string()],
        "an event naming no room goes to each room the handle manages"
    );
}

#[test]
fn idless_events_resolve_through_room_and_participant() {
    let vr = fixture("videoroom-2pub-2sub-webrtc");
    let (per, _) = run(&vr, correlate::Config::default());
    let mut seen = 0;
    for (v, outs) in vr.iter().zip(&per) {
        if v.get("session_id").is_none()
            && matches!(plugin_event(v), Some("leaving" | "unpublished"))
        {
            assert_eq!(outs.len(), 1);
            let f = &outs[0].facts;
            assert_eq!(outs[0].cid.as_ref(), ROOM);
            let who = v["event"]["data"]["id"].as_u64().unwrap();
            assert_eq!(
                f.participant
                    .as_ref()
                    .map(|(r, id)| (r.to_string(), id.to_string())),
                Some(("4242".into(), who.to_string()))
            );
            // The participant's handle is known through (room, id): its display name and
            // its PeerConnection's client address come along.
            assert!(f.display.is_some(), "{v}");
            assert!(f.client.is_some(), "{v}");
            seen += 1;
        }
    }
    assert_eq!(seen, 4, "2 unpublished + 2 leaving");
}

#[test]
fn subscriber_updates_stamped_with_the_publisher_handle_stay_in_the_room() {
    let vr = fixture("videoroom-2pub-2sub-webrtc");
    let (per, _) = run(&vr, correlate::Config::default());
    let pub_b = 1592268120054853u64;
    let updated: Vec<_> = vr
        .iter()
        .zip(&per)
        .filter(|(v, _)| v["handle_id"] == pub_b && plugin_event(v) == Some("updated"))
        .collect();
    assert_eq!(updated.len(), 2);
    for (_, outs) in updated {
        assert_eq!(cids(std::slice::from_ref(outs))[0], [ROOM]);
    }
}

#[test]
fn a_participant_who_moves_rooms_moves_with_its_new_handles() {
    let vr = fixture("videoroom-2pub-2sub-webrtc");
    let (sess, h1) = (2622110883396711u64, 664429782379405u64);
    // pubA's session: its publisher handle in room 4242 ...
    let mut events: Vec<Value> = vr
        .iter()
        .filter(|v| {
            v["session_id"] == sess && (v["handle_id"] == h1 || v.get("handle_id").is_none())
        })
        .filter(|v| v["event"]["name"] != "destroyed")
        .cloned()
        .collect();
    let mut destroyed = vr
        .iter()
        .find(|v| v["session_id"] == sess && v["event"]["name"] == "destroyed")
        .unwrap()
        .clone();
    // ... then a new handle in the same session joins room 5555.
    let t0 = ts(events.last().unwrap()) + 1000;
    let h2 = 42u64;
    let later: Vec<Value> = vr
        .iter()
        .filter(|v| v["handle_id"] == h1)
        .take(12)
        .enumerate()
        .map(|(i, v)| {
            let mut v = v.clone();
            v["handle_id"] = json!(h2);
            v["timestamp"] = json!(t0 + i as u64);
            if v["event"]["data"]["room"] == 4242 {
                v["event"]["data"]["room"] = json!(5555);
            }
            v
        })
        .collect();
    let n1 = events.len();
    events.extend(later);
    destroyed["timestamp"] = json!(t0 + 100);
    events.push(destroyed);
    let (per, _) = run(&events, correlate::Config::default());
    let c = cids(&per);
    for (i, cid) in c.iter().enumerate().take(n1) {
        assert_eq!(cid, &[ROOM], "event {i} of the first handle");
    }
    let room2 = "janus-fixtures:videoroom:5555";
    for (i, cid) in c.iter().enumerate().take(events.len() - 1).skip(n1) {
        assert_eq!(cid, &[room2], "event {i} of the new handle");
    }
    // The session's own last event reaches both rooms its handles were in.
    let mut last = c.last().unwrap().clone();
    last.sort();
    assert_eq!(last, [ROOM, room2]);
}

/// Rewrites every id and Call-ID of the SIP fixture's session into a second caller.
fn second_caller(events: &[Value], offset: u64) -> Vec<Value> {
    events
        .iter()
        .filter(|v| v.get("session_id").is_some())
        .map(|v| {
            let text = v
                .to_string()
                .replace("7954482877395951", "1111111111111111")
                .replace("5329593800955659", "2222222222222222")
                .replace("Pd1uWiPpZq7yyN4TZjvDs0i", "SECOND-call-1")
                .replace("E3v9o7TaUn98fjRVB30rjbJ", "SECOND-call-2");
            let mut v: Value = serde_json::from_str(&text).unwrap();
            v["timestamp"] = json!(ts(&v) + offset);
            v
        })
        .collect()
}

#[test]
fn two_sip_handles_with_calls_at_once_and_several_calls_per_handle() {
    let sip = fixture("sip-call-simple");
    let (alone, _) = run(&sip, correlate::Config::default());
    let alone = cids(&alone);
    // The second caller starts 1.5 s later: the two callers' calls overlap.
    let mut both: Vec<(Value, Option<usize>)> = sip
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, v)| (v, Some(i)))
        .collect();
    both.extend(
        second_caller(&sip, 1_500_000)
            .into_iter()
            .map(|v| (v, None)),
    );
    both.sort_by_key(|(v, _)| ts(v));
    let events: Vec<Value> = both.iter().map(|(v, _)| v.clone()).collect();
    let (per, _) = run(&events, correlate::Config::default());
    let got = cids(&per);
    for (i, (v, orig)) in both.iter().enumerate() {
        match orig {
            Some(o) => assert_eq!(got[i], alone[*o], "first caller's event {o}"),
            None => {
                let want: Vec<String> = alone[sip
                    .iter()
                    .position(|s| s["timestamp"].as_u64().unwrap() + 1_500_000 == ts(v))
                    .unwrap()]
                .iter()
                .map(|c| {
                    c.replace("Pd1uWiPpZq7yyN4TZjvDs0i", "SECOND-call-1")
                        .replace("E3v9o7TaUn98fjRVB30rjbJ", "SECOND-call-2")
                })
                .collect();
                assert_eq!(got[i], want, "second caller's event {v}");
            }
        }
    }
    let calls: BTreeSet<&str> = got
        .iter()
        .flatten()
        .map(String::as_str)
        .filter(|c| !c.starts_with("janus-"))
        .collect();
    assert_eq!(calls.len(), 4, "{calls:?}");
}

#[test]
fn events_before_the_binding_are_held_then_released_with_the_room_id() {
    let vr = fixture("videoroom-2pub-2sub-webrtc");
    let h = 664429782379405u64;
    let mine: Vec<Value> = vr
        .iter()
        .filter(|v| v["handle_id"] == h)
        .take(3)
        .cloned()
        .collect();
    assert_eq!(plugin_event(&mine[1]), Some("joined"));
    let mut c = Correlator::new(correlate::Config::default());
    let mut p = EventParser::new();
    let mut out = Vec::new();
    let attached = p.parse(Bytes::from(mine[0].to_string())).unwrap();
    c.push(attached, ts(&mine[0]), &mut out);
    assert!(out.is_empty(), "attached waits");
    assert_eq!(c.held(), 1);
    let joined = p.parse(Bytes::from(mine[1].to_string())).unwrap();
    c.push(joined, ts(&mine[1]), &mut out);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| o.cid.as_ref() == ROOM));
    assert_eq!(out[0].facts.held_us, ts(&mine[1]) - ts(&mine[0]));
    assert_eq!(c.held(), 0);
    assert_eq!(c.stats().held, 1);
}

#[test]
fn a_hold_that_runs_out_releases_with_the_fallback_and_is_counted() {
    let vr = fixture("videoroom-2pub-2sub-webrtc");
    let h = 664429782379405u64;
    let mut mine: Vec<Value> = vr
        .iter()
        .filter(|v| v["handle_id"] == h)
        .take(2)
        .cloned()
        .collect();
    let t0 = ts(&mine[0]);
    mine[1]["timestamp"] = json!(t0 + 15_000_000); // joined 15 s after attach; hold is 10 s
    let mut c = Correlator::new(correlate::Config::default());
    let mut p = EventParser::new();
    let mut out = Vec::new();
    c.push(
        p.parse(Bytes::from(mine[0].to_string())).unwrap(),
        t0,
        &mut out,
    );
    c.tick(t0 + 9_999_999, &mut out);
    assert!(out.is_empty());
    c.tick(t0 + 10_000_000, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].cid.as_ref(),
        "janus-fixtures:session:2622110883396711"
    );
    assert_eq!(c.stats().hold_expired, 1);
    out.clear();
    c.push(
        p.parse(Bytes::from(mine[1].to_string())).unwrap(),
        t0 + 15_000_000,
        &mut out,
    );
    assert_eq!(
        out[0].cid.as_ref(),
        ROOM,
        "a late binding still binds what follows"
    );
}

#[test]
fn fallback_policies() {
    let echo = fixture("echotest-webrtc");
    let (sid, hid) = (echo[2]["session_id"].as_u64().unwrap(), 1970894033042665u64);
    for (policy, handle_cid) in [
        (Fallback::Session, format!("janus-fixtures:session:{sid}")),
        (Fallback::Handle, format!("janus-fixtures:handle:{hid}")),
        (
            Fallback::OpaqueId,
            "janus-fixtures:opaque:echotest-webrtc-1".to_string(),
        ),
    ] {
        let cfg = correlate::Config {
            fallback: policy,
            ..Default::default()
        };
        let (per, _) = run(&echo, cfg);
        for (v, outs) in echo.iter().zip(&per) {
            assert_eq!(outs.len(), 1);
            let cid = outs[0].cid.to_string();
            if v["handle_id"] == hid {
                assert_eq!(cid, handle_cid, "{policy:?}");
            } else if v["type"] == 1 {
                let want = if policy == Fallback::OpaqueId {
                    handle_cid.clone()
                } else {
                    format!("janus-fixtures:session:{sid}")
                };
                assert_eq!(cid, want, "{policy:?} session event");
            }
        }
    }
}

#[test]
fn every_capture_leaves_no_state_once_its_sessions_ended() {
    for scenario in common::ALL_CAPTURES.iter() {
        let events = fixture(scenario);
        let last = events.iter().map(ts).max().unwrap();
        let (_, mut c) = run(&events, correlate::Config::default());
        assert!(
            !c.is_empty(),
            "{scenario}: state is kept through the grace period"
        );
        let mut out = Vec::new();
        c.tick(last + 10_000_000, &mut out);
        assert!(out.is_empty(), "{scenario}: nothing left to release");
        assert!(c.is_empty(), "{scenario}: state left");
        assert_eq!(c.stats().expired, 0);
        assert_eq!(c.stats().evicted, 0);
    }
}

#[test]
fn idle_state_expires_and_the_cap_evicts_the_oldest_counted() {
    let vr = fixture("videoroom-2pub-2sub-webrtc");
    let joined = vr
        .iter()
        .find(|v| plugin_event(v) == Some("joined"))
        .unwrap()
        .clone();
    let cfg = correlate::Config {
        max_handles: 10,
        idle_us: 60_000_000,
        ..Default::default()
    };
    let mut c = Correlator::new(cfg);
    let mut p = EventParser::new();
    let mut out = Vec::new();
    let t0 = ts(&joined);
    for i in 0..25u64 {
        let mut v = joined.clone();
        v["handle_id"] = json!(1000 + i);
        v["session_id"] = json!(5000 + i);
        v["event"]["data"]["id"] = json!(9000 + i);
        c.push(
            p.parse(Bytes::from(v.to_string())).unwrap(),
            t0 + i * 200_000,
            &mut out,
        );
    }
    assert_eq!(out.len(), 25, "every event released");
    assert!(c.handles() <= 10, "{} handles", c.handles());
    assert!(c.stats().evicted >= 15, "{:?}", c.stats());
    c.tick(t0 + 5_000_000 + 60_000_000, &mut out);
    assert_eq!(c.handles(), 0);
    assert!(c.stats().expired > 0);
}

#[test]
fn a_malformed_event_does_not_take_its_neighbours_down() {
    let vr = fixture("videoroom-2pub-2sub-webrtc");
    let body = format!(
        "[{},{{\"type\":\"bad\"}},{{\"type\":64,\"event\":{{\"plugin\":1}}}},{}]",
        vr[0], vr[1]
    );
    let mut p = heplink::pipeline::Pipeline::new(correlate::Config::default(), Default::default());
    let mut got = Vec::new();
    let rejected = p
        .push_body(&Bytes::from(body), ts(&vr[1]), &mut |o| {
            got.push(o.correlated.cid.to_string())
        })
        .rejected;
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0].index, 1);
    assert_eq!(rejected[1].index, 2);
    assert_eq!(
        got,
        [
            "janus-fixtures:core:2026-11-24T03",
            "janus-fixtures:transport:http:2026-11-24T03"
        ]
    );
    assert_eq!(
        p.stats()
            .rejected
            .get(&heplink::reject::Reject::MalformedJson),
        Some(&2)
    );
    // the body splitter alone cuts 4 pieces
    assert_eq!(
        split_events(&Bytes::from(format!("[{},1,{}]", vr[0], vr[1]))).len(),
        3
    );
}

/// Regression (found by the reordering property): a session's `destroyed` that arrives
/// before its handle's binding (events out of order) must not send the session's held
/// events to the fallback; the binding still comes within the hold window.
#[test]
fn teardown_arriving_before_the_binding_still_lands_in_the_room() {
    let tr = fixture("textroom-datachannel-webrtc");
    let sid = 1402252575526045u64;
    let created = tr
        .iter()
        .find(|v| v["session_id"] == sid && v["event"]["name"] == "created")
        .unwrap();
    let attached = tr
        .iter()
        .find(|v| v["session_id"] == sid && v["event"]["name"] == "attached")
        .unwrap();
    let destroyed = tr
        .iter()
        .find(|v| v["session_id"] == sid && v["event"]["name"] == "destroyed")
        .unwrap();
    let join = tr
        .iter()
        .find(|v| v["session_id"] == sid && plugin_event(v) == Some("join"))
        .unwrap();
    let events = vec![
        created.clone(),
        attached.clone(),
        destroyed.clone(),
        join.clone(),
    ];
    let (per, _) = run(&events, correlate::Config::default());
    for (i, c) in cids(&per).iter().enumerate() {
        assert_eq!(c, &["janus-fixtures:textroom:1234"], "event {i}");
    }
}

#[test]
fn two_objects_on_one_line_are_two_events() {
    let vr = fixture("videoroom-2pub-2sub-webrtc");
    let body = format!("{}{}", vr[0], vr[1]);
    let mut p = heplink::pipeline::Pipeline::new(correlate::Config::default(), Default::default());
    let mut got = Vec::new();
    let rejected = p
        .push_body(&Bytes::from(body), ts(&vr[1]), &mut |o| {
            got.push(o.correlated.cid.to_string())
        })
        .rejected;
    assert!(rejected.is_empty());
    assert_eq!(
        got,
        [
            "janus-fixtures:core:2026-11-24T03",
            "janus-fixtures:transport:http:2026-11-24T03"
        ]
    );
}

#[test]
fn session_events_reach_every_flow_of_its_handles_an_echotest_and_a_videoroom() {
    // pubA's session from the VideoRoom capture, plus the echotest capture's handle moved
    // into it (attached right after `session created`, before the VideoRoom handle).
    let sid = 2622110883396711u64;
    let mut events: Vec<Value> = fixture("videoroom-2pub-2sub-webrtc")
        .into_iter()
        .filter(|v| v["session_id"] == sid)
        .collect();
    let shift = 1795489769244000u64 - 1795489748063236;
    for mut e in fixture("echotest-http-only")
        .into_iter()
        .filter(|v| v["handle_id"] == 5646889235627921u64)
    {
        e["session_id"] = json!(sid);
        e["timestamp"] = json!(ts(&e) + shift);
        events.push(e);
    }
    events.sort_by_key(ts);
    let (per, _) = run(&events, correlate::Config::default());
    let c = cids(&per);
    let session = format!("janus-fixtures:session:{sid}");
    let set = |i: usize| c[i].iter().cloned().collect::<BTreeSet<String>>();
    let both: BTreeSet<String> = [ROOM.to_string(), session.clone()].into();
    let named = |n: &str| {
        events
            .iter()
            .position(|v| v["type"] == 1 && v["event"]["name"] == n)
            .unwrap()
    };
    assert_eq!(
        set(named("created")),
        both,
        "session created: the room and the session flow"
    );
    assert_eq!(
        set(named("destroyed")),
        both,
        "session destroyed: the room and the session flow"
    );
    for (i, v) in events.iter().enumerate() {
        if v["handle_id"] == 5646889235627921u64 {
            assert_eq!(
                c[i],
                std::slice::from_ref(&session),
                "the echotest handle's events: {v}"
            );
        }
    }
    // Each event once per flow.
    for (i, v) in events.iter().enumerate() {
        assert_eq!(set(i).len(), c[i].len(), "no flow twice: {v}");
    }
}
