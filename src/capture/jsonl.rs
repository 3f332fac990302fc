//! Janus event captures (one event-handler body per line, as `heplink convert`, `replay`
//! and `flow` read them) through the pipeline, with the events' own time as the clock:
//! the HEP packets `serve` would send, their correlation ids and a summary per flow.

use std::collections::BTreeSet;
use std::io;

use bytes::Bytes;

use crate::correlate::{self, GroupKey};
use crate::map::MapConfig;
use crate::pipeline::{Output, Pipeline};

/// Per correlation id: what the summary prints.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlowSummary {
    /// The correlation id.
    pub cid: String,
    /// Packets.
    pub packets: u64,
    /// Rooms.
    pub rooms: BTreeSet<String>,
    /// Participants (id, and display name when known).
    pub participants: BTreeSet<String>,
    /// Handles.
    pub handles: BTreeSet<u64>,
    /// Sessions.
    pub sessions: BTreeSet<u64>,
}

/// What a conversion produced.
#[derive(Debug, Default)]
pub struct Converted {
    /// The encoded packets with their timestamps, in order.
    pub packets: Vec<(u64, Bytes)>,
    /// The correlation id of each packet, in order.
    pub cids: Vec<String>,
    /// Per correlation id, in order of first appearance.
    pub flows: Vec<FlowSummary>,
    /// Events rejected (line, message).
    pub rejected: Vec<(usize, String)>,
    /// Events read.
    pub events: u64,
}

/// Converts bodies (one per line) read from `inputs`, using event time as the clock.
pub fn convert(
    inputs: &mut dyn Iterator<Item = io::Result<String>>,
    corr: correlate::Config,
    map: MapConfig,
) -> io::Result<Converted> {
    // Event time is the clock: each body is correlated at its newest timestamp.
    let mut p = Pipeline::new(corr, map).event_time();
    let mut res = Converted::default();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut sink = |o: Output| {
        let c = o.correlated;
        res.packets.push((o.ts_us, o.packet));
        let cid = c.cid.to_string();
        res.cids.push(cid.clone());
        let i = *index.entry(cid.clone()).or_insert_with(|| {
            res.flows.push(FlowSummary {
                cid,
                ..Default::default()
            });
            res.flows.len() - 1
        });
        let f = &mut res.flows[i];
        f.packets += 1;
        if let Some(GroupKey::Room(p, r)) = &c.facts.group {
            f.rooms.insert(format!("{}:{r}", p.short()));
        }
        if let Some((_, id)) = &c.facts.participant {
            f.participants.insert(match &c.facts.display {
                Some(d) => format!("{id} ({d})"),
                None => id.to_string(),
            });
        }
        f.handles.extend(c.event.handle_id);
        f.sessions.extend(c.event.session_id);
    };
    for (lineno, line) in inputs.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let body = Bytes::from(line);
        for r in p.push_body(&body, 0, &mut sink).rejected {
            res.rejected
                .push((lineno + 1, format!("event {}: {}", r.index, r.message)));
        }
    }
    let now = p.now();
    p.flush(now, &mut sink);
    res.events = p.stats().events;
    Ok(res)
}
