//! The path of one event without I/O: body → events → correlator → mapper → HEP packet.
//! Shared by `convert`, and by the agent and replay tools.

use std::collections::BTreeMap;

use bytes::Bytes;
use heplink_proto::{EncodeError, PacketBuilder};

use crate::correlate::{self, Correlated, Correlator};
use crate::janus::{split_events, EventParser};
use crate::mapper::{MapConfig, Mapper};

/// A packet ready to encode, with the event it came from.
#[derive(Debug)]
pub struct Output<'a> {
    /// The correlated event.
    pub correlated: &'a Correlated,
    /// Its packet, or why none could be built.
    pub packet: Result<PacketBuilder, EncodeError>,
}

/// Counters of the pipeline.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PipelineStats {
    /// Events parsed.
    pub events: u64,
    /// Events rejected, per reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Packets built.
    pub packets: u64,
    /// Packets that could not be built (never expected: the mapper validates).
    pub unencodable: u64,
    /// Events parsed per type, indexed as [`crate::metrics::EVENT_TYPES`].
    pub by_type: [u64; 10],
}

/// An event of a body that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index of the piece in the body.
    pub index: usize,
    /// Why.
    pub reason: &'static str,
    /// The error message.
    pub message: String,
}

/// Parser, correlator and mapper together.
#[derive(Debug)]
pub struct Pipeline {
    parser: EventParser,
    correlator: Correlator,
    mapper: Mapper,
    buf: Vec<Correlated>,
    stats: PipelineStats,
}

impl Pipeline {
    /// A pipeline.
    pub fn new(corr: correlate::Config, map: MapConfig) -> Self {
        Pipeline {
            parser: EventParser::new(),
            correlator: Correlator::new(corr),
            mapper: Mapper::new(map),
            buf: Vec::new(),
            stats: PipelineStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// The correlator (for its counters and state size).
    pub fn correlator(&self) -> &Correlator {
        &self.correlator
    }

    /// Takes one event-handler body at time `now`; calls `sink` for every packet released
    /// and returns the events of the body that were rejected.
    pub fn push_body(
        &mut self,
        body: &Bytes,
        now: u64,
        sink: &mut dyn FnMut(Output<'_>),
    ) -> Vec<Rejected> {
        let mut rejected = Vec::new();
        let mut pieces = split_events(body);
        // The fast path hands a one-line object body on whole: if it does not parse (e.g.
        // `{…}{…}` on one line), split it value by value and parse the pieces.
        if let [Ok(whole)] = &pieces[..] {
            if whole.len() == body.len() {
                match self.parser.parse(whole.clone()) {
                    Ok(ev) => {
                        self.stats.events += 1;
                        self.stats.by_type[crate::metrics::type_index(ev.kind)] += 1;
                        self.correlator.push(ev, now, &mut self.buf);
                        self.drain(now, sink);
                        return rejected;
                    }
                    Err(_) => pieces = crate::janus::split::split_events_full(body),
                }
            }
        }
        for (index, piece) in pieces.into_iter().enumerate() {
            let parsed = piece
                .map_err(|e| ("not_an_event", e.to_string()))
                .and_then(|raw| {
                    self.parser
                        .parse(raw)
                        .map_err(|e| (e.reason(), e.to_string()))
                });
            match parsed {
                Ok(ev) => {
                    self.stats.events += 1;
                    self.stats.by_type[crate::metrics::type_index(ev.kind)] += 1;
                    self.correlator.push(ev, now, &mut self.buf);
                }
                Err((reason, message)) => {
                    *self.stats.rejected.entry(reason).or_default() += 1;
                    rejected.push(Rejected {
                        index,
                        reason,
                        message,
                    });
                }
            }
        }
        self.drain(now, sink);
        rejected
    }

    /// Advances the clock: releases holds that ran out, forgets old state.
    pub fn tick(&mut self, now: u64, sink: &mut dyn FnMut(Output<'_>)) {
        self.correlator.tick(now, &mut self.buf);
        self.drain(now, sink);
    }

    /// Releases everything held (end of input, shutdown).
    pub fn flush(&mut self, now: u64, sink: &mut dyn FnMut(Output<'_>)) {
        self.correlator.flush(&mut self.buf);
        self.drain(now, sink);
    }

    fn drain(&mut self, now: u64, sink: &mut dyn FnMut(Output<'_>)) {
        for c in self.buf.drain(..) {
            let packet = self.mapper.map(&c, now);
            match &packet {
                Ok(_) => self.stats.packets += 1,
                Err(e) => {
                    self.stats.unencodable += 1;
                    tracing::warn!(cid = %c.cid, error = %e, "Event could not be encoded.");
                }
            }
            sink(Output {
                correlated: &c,
                packet,
            });
        }
    }
}
