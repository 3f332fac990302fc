//! TCP reassembly for the capture reader: each direction of each connection is put back
//! in order (out-of-order segments held, bounded; retransmitted bytes dropped; sequence
//! numbers wrap), and HEP packets are framed out of the stream.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use bytes::BytesMut;
use heplink_proto::next_frame;

use super::{looks_like_hep, CaptureEvent, Origin, StreamError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlowState {
    /// Nothing seen yet.
    Unknown,
    /// Started with a HEP magic.
    Hep,
    /// Not HEP, or broken: ignore the rest.
    Ignored,
}

#[derive(Debug)]
struct Flow {
    next_seq: Option<u32>,
    buf: BytesMut,
    out_of_order: BTreeMap<u32, Vec<u8>>,
    state: FlowState,
    last_frame: u64,
}

/// Most out-of-order segments held per flow before the gap is given up.
const MAX_OOO_SEGMENTS: usize = 1024;

/// Reassembles TCP streams (both directions separately) and frames HEP in them.
#[derive(Debug, Default)]
pub(super) struct TcpStreams {
    flows: HashMap<(SocketAddr, SocketAddr), Flow>,
    /// TCP streams that did not start like HEP.
    pub(super) non_hep: u64,
}

impl TcpStreams {
    /// Takes one TCP segment of the stream `key` (from, to) in frame `frame`.
    pub(super) fn segment(
        &mut self,
        key: (SocketAddr, SocketAddr),
        seq: u32,
        syn: bool,
        payload: &[u8],
        frame: u64,
        sink: &mut dyn FnMut(CaptureEvent<'_>),
    ) {
        if syn {
            // A new connection on the same addresses: finish the old one first.
            if let Some(old) = self.flows.remove(&key) {
                self.finish_flow(key, old, sink);
            }
        }
        let flow = self.flows.entry(key).or_insert_with(|| Flow {
            next_seq: None,
            buf: BytesMut::new(),
            out_of_order: BTreeMap::new(),
            state: FlowState::Unknown,
            last_frame: frame,
        });
        flow.last_frame = frame;
        if syn {
            flow.next_seq = Some(seq.wrapping_add(1));
        }
        if payload.is_empty() || flow.state == FlowState::Ignored {
            return;
        }
        let next = *flow.next_seq.get_or_insert(seq);
        let ahead = seq.wrapping_sub(next) as i32;
        if ahead > 0 {
            if flow.out_of_order.len() < MAX_OOO_SEGMENTS {
                flow.out_of_order
                    .entry(seq)
                    .or_insert_with(|| payload.to_vec());
            }
            return;
        }
        append_from(flow, seq, payload);
        // Drain segments that are now in order.
        while let Some((&s, _)) = flow.out_of_order.first_key_value() {
            let next = flow.next_seq.unwrap_or(s);
            if (s.wrapping_sub(next) as i32) > 0 {
                break;
            }
            let data = flow.out_of_order.remove(&s).unwrap_or_default();
            append_from(flow, s, &data);
        }
        Self::frames(key, flow, frame, &mut self.non_hep, sink);
    }

    fn frames(
        key: (SocketAddr, SocketAddr),
        flow: &mut Flow,
        frame: u64,
        non_hep: &mut u64,
        sink: &mut dyn FnMut(CaptureEvent<'_>),
    ) {
        let origin = Origin::Tcp {
            frame,
            src: key.0,
            dst: key.1,
        };
        if flow.state == FlowState::Unknown && flow.buf.len() >= 4 {
            if looks_like_hep(&flow.buf) && flow.buf[0] != 1 && flow.buf[0] != 2 {
                flow.state = FlowState::Hep;
            } else {
                flow.state = FlowState::Ignored;
                *non_hep += 1;
                flow.buf.clear();
                flow.out_of_order.clear();
            }
        }
        if flow.state != FlowState::Hep {
            return;
        }
        loop {
            match next_frame(&mut flow.buf) {
                Ok(Some(f)) => sink(CaptureEvent::Packet { bytes: &f, origin }),
                Ok(None) => break,
                Err(e) => {
                    sink(CaptureEvent::StreamError {
                        origin,
                        error: e.into(),
                    });
                    flow.state = FlowState::Ignored;
                    flow.buf.clear();
                    flow.out_of_order.clear();
                    break;
                }
            }
        }
    }

    fn finish_flow(
        &mut self,
        key: (SocketAddr, SocketAddr),
        flow: Flow,
        sink: &mut dyn FnMut(CaptureEvent<'_>),
    ) {
        if flow.state != FlowState::Hep {
            return;
        }
        let origin = Origin::Tcp {
            frame: flow.last_frame,
            src: key.0,
            dst: key.1,
        };
        let missing: usize = flow.out_of_order.values().map(Vec::len).sum();
        if missing > 0 {
            sink(CaptureEvent::StreamError {
                origin,
                error: StreamError::Gap(missing),
            });
        } else if !flow.buf.is_empty() {
            sink(CaptureEvent::StreamError {
                origin,
                error: StreamError::Truncated(flow.buf.len()),
            });
        }
    }

    /// Ends every stream (end of the capture): what is left in each is framed or reported.
    pub(super) fn finish(mut self, sink: &mut dyn FnMut(CaptureEvent<'_>)) {
        let mut flows: Vec<_> = std::mem::take(&mut self.flows).into_iter().collect();
        flows.sort_by_key(|(_, f)| f.last_frame);
        for (key, flow) in flows {
            self.finish_flow(key, flow, sink);
        }
    }
}

/// Appends the part of a segment at `seq` that lies at or after the flow's next sequence
/// number (retransmitted bytes are dropped).
fn append_from(flow: &mut Flow, seq: u32, payload: &[u8]) {
    let next = flow.next_seq.unwrap_or(seq);
    let behind = next.wrapping_sub(seq) as usize;
    if behind >= payload.len() {
        return;
    }
    flow.buf.extend_from_slice(&payload[behind..]);
    flow.next_seq = Some(next.wrapping_add((payload.len() - behind) as u32));
}
