//! Reading HEP packets out of captures: pcap, pcapng (HEP over UDP, and over TCP with the
//! stream reassembled, on any port) and raw streams of back-to-back HEPv3 packets.
//!
//! TCP reassembly (reordering, retransmission, sequence wrap) is `reassembly.rs`.

pub mod jsonl;
pub mod load;
pub mod pcap_writer;
mod reassembly;
pub mod render;

use reassembly::TcpStreams;

use std::io::{self, Cursor, Read};
use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use heplink_proto::{next_frame, FrameError};
use pcap_parser::data::{get_packetdata, PacketData};
use pcap_parser::pcapng::Block;
use pcap_parser::{create_reader, Linktype, PcapBlockOwned, PcapError};

/// Where a HEP packet was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A UDP datagram in frame `frame` (1-based) of a capture.
    Udp {
        /// Frame number.
        frame: u64,
        /// UDP source.
        src: SocketAddr,
        /// UDP destination.
        dst: SocketAddr,
    },
    /// A TCP stream of a capture, completed by frame `frame`.
    Tcp {
        /// Frame number of the segment that completed the packet.
        frame: u64,
        /// Stream source.
        src: SocketAddr,
        /// Stream destination.
        dst: SocketAddr,
    },
    /// A raw stream of back-to-back packets, at this byte offset.
    Stream {
        /// Offset of the packet in the stream.
        offset: u64,
    },
}

/// What the capture reader reports.
#[derive(Debug)]
pub enum CaptureEvent<'a> {
    /// A candidate HEP packet (it still has to be decoded).
    Packet {
        /// The packet bytes.
        bytes: &'a [u8],
        /// Where it came from.
        origin: Origin,
    },
    /// A stream that stopped being decodable.
    StreamError {
        /// Where.
        origin: Origin,
        /// Why.
        error: StreamError,
    },
}

/// Why a HEP stream could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// A frame length heplify-server would close the connection on.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream ended inside a packet.
    #[error("stream ended inside a packet: {0} byte(s) left over")]
    Truncated(usize),
    /// TCP segments were missing and the stream could not be reassembled past a gap.
    #[error("TCP segments missing: {0} byte(s) could not be reassembled")]
    Gap(usize),
}

/// A capture that could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Reading failed.
    #[error("reading the capture: {0}")]
    Io(#[from] io::Error),
    /// The input is empty.
    #[error("the file is empty: nothing to read")]
    Empty,
    /// The input is neither a pcap, a pcapng nor a raw HEP stream.
    #[error("not a pcap, pcapng or HEP stream: it starts with {start:?}{hint}")]
    NotACapture {
        /// Its first bytes, as text where printable.
        start: String,
        /// What it looks like instead, if known.
        hint: &'static str,
    },
    /// The pcap or pcapng structure is broken.
    #[error("pcap/pcapng structure broken after {frames} frame(s): {message}")]
    Pcap {
        /// Frames read before the error.
        frames: u64,
        /// What pcap-parser said.
        message: String,
    },
}

/// Counts of what a capture held besides HEP.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CaptureStats {
    /// The detected format.
    pub format: &'static str,
    /// Frames (pcap) read.
    pub frames: u64,
    /// Frames that were not IP/UDP/TCP or not HEP.
    pub skipped_frames: u64,
    /// TCP flows that did not start with a HEP magic and were ignored.
    pub non_hep_streams: u64,
}

const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Reads a capture of any supported format and reports every candidate HEP packet.
pub fn read_capture<R: Read + Send>(
    mut input: R,
    sink: &mut dyn FnMut(CaptureEvent<'_>),
) -> Result<CaptureStats, CaptureError> {
    // pcap-parser probes the header from a single read, so hand it a generous first block.
    let mut head = Vec::with_capacity(1 << 16);
    input.by_ref().take(1 << 16).read_to_end(&mut head)?;
    if head.is_empty() {
        return Err(CaptureError::Empty);
    }
    let magic: Option<[u8; 4]> = head.get(..4).and_then(|m| m.try_into().ok());
    if magic.is_some_and(|m| PCAP_MAGICS.contains(&m) || m == PCAPNG_MAGIC) {
        return read_pcap(Cursor::new(head).chain(input), sink);
    }
    // A raw stream starts with a HEP packet: `HEP3`, `EEP3`, or a HEPv1/v2 header.
    let hep = head.starts_with(b"HEP3")
        || head.starts_with(b"EEP3")
        || matches!(head.first(), Some(1 | 2)) && head.get(1).is_some_and(|l| *l >= 16);
    if !hep {
        let start: String = head
            .iter()
            .take(16)
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        let first = head.iter().find(|b| !b.is_ascii_whitespace());
        let hint = match first {
            Some(b'{') | Some(b'[') => {
                " (it looks like Janus JSON: use `heplink convert` or `heplink replay`)"
            }
            _ => "",
        };
        return Err(CaptureError::NotACapture { start, hint });
    }
    read_raw_stream(Cursor::new(head).chain(input), sink)
}

/// Reads back-to-back HEPv3 packets.
pub fn read_raw_stream<R: Read>(
    mut input: R,
    sink: &mut dyn FnMut(CaptureEvent<'_>),
) -> Result<CaptureStats, CaptureError> {
    let mut buf = BytesMut::with_capacity(1 << 16);
    let mut offset = 0u64;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let k = match input.read(&mut chunk) {
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if k == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..k]);
        loop {
            match next_frame(&mut buf) {
                Ok(Some(f)) => {
                    sink(CaptureEvent::Packet {
                        bytes: &f,
                        origin: Origin::Stream { offset },
                    });
                    offset += f.len() as u64;
                }
                Ok(None) => break,
                Err(e) => {
                    sink(CaptureEvent::StreamError {
                        origin: Origin::Stream { offset },
                        error: e.into(),
                    });
                    return Ok(stats("raw"));
                }
            }
        }
    }
    if !buf.is_empty() {
        sink(CaptureEvent::StreamError {
            origin: Origin::Stream { offset },
            error: StreamError::Truncated(buf.len()),
        });
    }
    Ok(stats("raw"))
}

fn stats(format: &'static str) -> CaptureStats {
    CaptureStats {
        format,
        ..Default::default()
    }
}

/// Reads a pcap or pcapng capture.
fn read_pcap<R: Read + Send>(
    input: R,
    sink: &mut dyn FnMut(CaptureEvent<'_>),
) -> Result<CaptureStats, CaptureError> {
    let mut st = stats("pcap");
    let broken = |frames, e: &dyn std::fmt::Debug| CaptureError::Pcap {
        frames,
        message: format!("{e:?}"),
    };
    let mut reader = create_reader(1 << 20, input).map_err(|e| broken(0, &e))?;
    let mut linktypes: Vec<Linktype> = Vec::new();
    let mut tcp = TcpStreams::default();
    loop {
        match reader.next() {
            Ok((consumed, block)) => {
                let frame = match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        linktypes = vec![h.network];
                        None
                    }
                    PcapBlockOwned::Legacy(b) => {
                        Some((linktypes.first().copied(), b.data, b.caplen as usize))
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        st.format = "pcapng";
                        linktypes.clear();
                        None
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        linktypes.push(idb.linktype);
                        None
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => Some((
                        linktypes.get(epb.if_id as usize).copied(),
                        epb.data,
                        epb.caplen as usize,
                    )),
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        Some((linktypes.first().copied(), spb.data, spb.data.len()))
                    }
                    PcapBlockOwned::NG(_) => None,
                };
                if let Some((lt, data, caplen)) = frame {
                    st.frames += 1;
                    let data = &data[..caplen.min(data.len())];
                    let handled =
                        lt.is_some_and(|lt| handle_frame(lt, data, st.frames, &mut tcp, sink));
                    if !handled {
                        st.skipped_frames += 1;
                    }
                }
                reader.consume(consumed);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                reader.refill().map_err(|e| broken(st.frames, &e))?;
            }
            Err(e) => return Err(broken(st.frames, &e)),
        }
    }
    st.non_hep_streams = tcp.non_hep;
    tcp.finish(sink);
    Ok(st)
}

/// Decodes link, IP and transport layers of one frame; returns false when the frame was
/// not UDP or TCP carrying (possibly) HEP.
fn handle_frame(
    lt: Linktype,
    data: &[u8],
    frame: u64,
    tcp: &mut TcpStreams,
    sink: &mut dyn FnMut(CaptureEvent<'_>),
) -> bool {
    let sliced = match get_packetdata(data, lt, data.len()) {
        Some(PacketData::L2(d)) => SlicedPacket::from_ethernet(d),
        Some(PacketData::L3(_, d)) => SlicedPacket::from_ip(d),
        _ => return false,
    };
    let Ok(p) = sliced else { return false };
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match &p.net {
        Some(NetSlice::Ipv4(v4)) => {
            if v4.payload().fragmented {
                return false;
            }
            (
                v4.header().source_addr().into(),
                v4.header().destination_addr().into(),
            )
        }
        Some(NetSlice::Ipv6(v6)) => {
            if v6.payload().fragmented {
                return false;
            }
            (
                v6.header().source_addr().into(),
                v6.header().destination_addr().into(),
            )
        }
        _ => return false,
    };
    match &p.transport {
        Some(TransportSlice::Udp(u)) => {
            let payload = u.payload();
            if !looks_like_hep(payload) {
                return false;
            }
            sink(CaptureEvent::Packet {
                bytes: payload,
                origin: Origin::Udp {
                    frame,
                    src: SocketAddr::new(src_ip, u.source_port()),
                    dst: SocketAddr::new(dst_ip, u.destination_port()),
                },
            });
            true
        }
        Some(TransportSlice::Tcp(t)) => {
            let key = (
                SocketAddr::new(src_ip, t.source_port()),
                SocketAddr::new(dst_ip, t.destination_port()),
            );
            tcp.segment(key, t.sequence_number(), t.syn(), t.payload(), frame, sink);
            true
        }
        _ => false,
    }
}

/// Whether a datagram starts like a HEP packet: `HEP3`/`EEP3`, or a HEPv1/v2 header with
/// a valid family and transport.
pub fn looks_like_hep(d: &[u8]) -> bool {
    if d.starts_with(b"HEP3") || d.starts_with(b"EEP3") {
        return true;
    }
    d.len() >= 8 && matches!(d[0], 1 | 2) && matches!(d[2], 2 | 10) && matches!(d[3], 6 | 17 | 132)
}
