//! The zero-copy nom decoder: HEPv3 (strict and lenient) and HEPv1/v2 (read-only).
//!
//! [`decode`] takes one whole packet (a UDP datagram, or a frame cut by
//! [`crate::frame()`]) and returns a [`Packet`] view whose byte fields borrow the input.
//! The building blocks are free nom parsers ([`parse_hep3_header`], [`parse_chunk`])
//! with their own error type [`Fault`].
//!
//! Why this file is over 500 lines: the strict and lenient decoders of HEPv3 and the
//! HEPv1/v2 readers share the chunk table, the rules and the packet view; each rule is a
//! few lines, and there are many (the tests are in `proto/tests/`).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use nom::bytes::complete::take;
use nom::error::{ErrorKind, ParseError};
use nom::number::complete::{be_u16, be_u8, le_u16, le_u32};
use nom::{IResult, Parser};

use crate::error::{DecodeError, DecodeErrorKind};
use crate::registry::{family, ChunkType, ProtoType, VendorId};

/// How much the decoder tolerates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Exactly heplify-server's acceptance: `HEP3` magic, total length equal to the packet
    /// size, every chunk length ≥ 6 and inside the packet, the exact fixed body sizes.
    #[default]
    Strict,
    /// Accepts `EEP3`, a total length shorter than the buffer (the rest is ignored) and
    /// fixed-size chunks of other sizes (kept as raw chunks, not read into fields). The
    /// chunk structure must still tile the packet, so [`Packet::encode_raw`] reproduces
    /// the packet byte for byte.
    Lenient,
}

/// The HEP version of a decoded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HEPv1: fixed header, no timestamp.
    V1,
    /// HEPv2: fixed header plus timestamp and a 16-bit capture id.
    V2,
    /// HEPv3: chunked.
    V3,
}

impl Version {
    /// 1, 2 or 3.
    pub fn number(self) -> u8 {
        match self {
            Version::V1 => 1,
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// One chunk as it is on the wire; `body` borrows the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawChunk<'a> {
    /// Vendor id.
    pub vendor: VendorId,
    /// Type id.
    pub kind: ChunkType,
    /// The body (the chunk minus its 6-byte header).
    pub body: &'a [u8],
}

impl RawChunk<'_> {
    /// The chunk's length on the wire, header included.
    pub fn wire_len(&self) -> usize {
        self.body.len() + 6
    }
}

/// The nom error type of this module's parsers: where it happened and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault<'a> {
    /// The input at the point of failure (its length gives the offset).
    pub input: &'a [u8],
    /// The chunk concerned, when its header was read.
    pub chunk: Option<(VendorId, ChunkType)>,
    /// The HEP rule broken, or `None` for a bare nom failure (only on truncation).
    pub kind: Option<DecodeErrorKind>,
}

impl<'a> Fault<'a> {
    fn hep(input: &'a [u8], kind: DecodeErrorKind) -> nom::Err<Self> {
        nom::Err::Error(Fault {
            input,
            chunk: None,
            kind: Some(kind),
        })
    }

    fn into_error(self, packet: &[u8]) -> DecodeError {
        let offset = packet.len() - self.input.len();
        let kind = self
            .kind
            .unwrap_or(DecodeErrorKind::Truncated { needed: 1 });
        match self.chunk {
            Some((v, c)) => DecodeError::in_chunk(offset, v, c, kind),
            None => DecodeError::at(offset, kind),
        }
    }
}

impl<'a> ParseError<&'a [u8]> for Fault<'a> {
    fn from_error_kind(input: &'a [u8], _kind: ErrorKind) -> Self {
        Fault {
            input,
            chunk: None,
            kind: None,
        }
    }

    fn append(_input: &'a [u8], _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

/// Parses the 6-byte HEPv3 header: the magic and the total length.
pub fn parse_hep3_header(i: &[u8]) -> IResult<&[u8], ([u8; 4], u16), Fault<'_>> {
    if i.len() < 6 {
        return Err(Fault::hep(
            i,
            DecodeErrorKind::Truncated {
                needed: 6 - i.len(),
            },
        ));
    }
    let (rest, magic) = take(4usize).parse(i)?;
    let (rest, len) = be_u16(rest)?;
    let magic: [u8; 4] = [magic[0], magic[1], magic[2], magic[3]];
    Ok((rest, (magic, len)))
}

/// Parses one chunk: vendor u16, type u16, length u16 (header included), body.
///
/// Fails with [`DecodeErrorKind::ChunkHeaderTruncated`] when fewer than 6 bytes remain,
/// [`DecodeErrorKind::ChunkTooShort`] for a length below 6 and
/// [`DecodeErrorKind::ChunkPastEnd`] for a chunk longer than the input.
pub fn parse_chunk(i: &[u8]) -> IResult<&[u8], RawChunk<'_>, Fault<'_>> {
    if i.len() < 6 {
        return Err(Fault::hep(
            i,
            DecodeErrorKind::ChunkHeaderTruncated { remaining: i.len() },
        ));
    }
    let (rest, vendor) = be_u16(i)?;
    let (rest, kind) = be_u16(rest)?;
    let (rest, length) = be_u16(rest)?;
    let (vendor, kind) = (VendorId(vendor), ChunkType(kind));
    let fail = |k| {
        nom::Err::Error(Fault {
            input: i,
            chunk: Some((vendor, kind)),
            kind: Some(k),
        })
    };
    if length < 6 {
        return Err(fail(DecodeErrorKind::ChunkTooShort { length }));
    }
    if usize::from(length) > i.len() {
        return Err(fail(DecodeErrorKind::ChunkPastEnd {
            length,
            remaining: i.len(),
        }));
    }
    let (rest, body) = take(usize::from(length) - 6).parse(rest)?;
    Ok((rest, RawChunk { vendor, kind, body }))
}

/// A decoded packet. Byte fields borrow the input; absent chunks are `None`.
///
/// Fields are read from generic (vendor 0) chunks only; when a type appears twice the
/// last one wins, as in heplify-server. [`Packet::chunks`] yields every chunk in order,
/// vendor chunks and unknown types included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// HEP version.
    pub version: Version,
    /// The whole packet (for HEPv3 exactly `total length` bytes).
    pub raw: &'a [u8],
    /// 0x0001 (or the v1/v2 header's family byte).
    pub ip_family: Option<u8>,
    /// 0x0002 (or the v1/v2 header's protocol byte).
    pub ip_proto: Option<u8>,
    /// 0x0003 / 0x0005.
    pub src_ip: Option<IpAddr>,
    /// 0x0004 / 0x0006.
    pub dst_ip: Option<IpAddr>,
    /// 0x0007.
    pub src_port: Option<u16>,
    /// 0x0008.
    pub dst_port: Option<u16>,
    /// 0x0009.
    pub ts_sec: Option<u32>,
    /// 0x000a.
    pub ts_usec: Option<u32>,
    /// 0x000b (HEPv1/v2 always carry SIP).
    pub proto_type: Option<ProtoType>,
    /// 0x000c (HEPv2: the 16-bit capture id).
    pub capture_id: Option<u32>,
    /// 0x000d.
    pub keep_alive: Option<u16>,
    /// 0x000e.
    pub auth_key: Option<&'a [u8]>,
    /// 0x000f (HEPv1/v2: everything after the header).
    pub payload: Option<&'a [u8]>,
    /// 0x0010.
    pub compressed_payload: Option<&'a [u8]>,
    /// 0x0011.
    pub correlation_id: Option<&'a [u8]>,
    /// 0x0012.
    pub vlan: Option<u16>,
    /// 0x0013.
    pub node_name: Option<&'a [u8]>,
    /// How many chunks the packet has (0 for HEPv1/v2).
    pub chunk_count: usize,
}

impl<'a> Packet<'a> {
    fn empty(version: Version, raw: &'a [u8]) -> Self {
        Packet {
            version,
            raw,
            ip_family: None,
            ip_proto: None,
            src_ip: None,
            dst_ip: None,
            src_port: None,
            dst_port: None,
            ts_sec: None,
            ts_usec: None,
            proto_type: None,
            capture_id: None,
            keep_alive: None,
            auth_key: None,
            payload: None,
            compressed_payload: None,
            correlation_id: None,
            vlan: None,
            node_name: None,
            chunk_count: 0,
        }
    }

    /// Every chunk in wire order (empty for HEPv1/v2).
    pub fn chunks(&self) -> Chunks<'a> {
        Chunks {
            rest: match self.version {
                Version::V3 => &self.raw[6..],
                _ => &[],
            },
        }
    }

    /// The packet's magic (`HEP3` or `EEP3`) for HEPv3, `None` otherwise.
    pub fn magic(&self) -> Option<[u8; 4]> {
        match self.version {
            Version::V3 => Some([self.raw[0], self.raw[1], self.raw[2], self.raw[3]]),
            _ => None,
        }
    }

    /// Re-encodes the packet from its parts: magic, recomputed total length, and every
    /// chunk in order with its vendor, type and body. For a packet decoded in either mode
    /// the output equals [`Packet::raw`]. HEPv1/v2 packets are copied as they are.
    pub fn encode_raw(&self, out: &mut BytesMut) {
        let Some(magic) = self.magic() else {
            out.extend_from_slice(self.raw);
            return;
        };
        let start = out.len();
        out.reserve(self.raw.len());
        out.put_slice(&magic);
        out.put_u16(0);
        for c in self.chunks() {
            out.put_u16(c.vendor.0);
            out.put_u16(c.kind.0);
            // A decoded chunk fits in its packet, so its length fits in u16.
            out.put_u16(c.wire_len() as u16);
            out.put_slice(c.body);
        }
        let total = (out.len() - start) as u16;
        out[start + 4..start + 6].copy_from_slice(&total.to_be_bytes());
    }

    /// Seconds and microseconds combined, when both are present.
    pub fn timestamp_micros(&self) -> Option<u64> {
        Some(u64::from(self.ts_sec?) * 1_000_000 + u64::from(self.ts_usec?))
    }
}

/// Iterator over the chunks of a decoded HEPv3 packet.
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Chunks<'a> {
    type Item = RawChunk<'a>;

    fn next(&mut self) -> Option<RawChunk<'a>> {
        // The packet was validated when decoded, so a failure only ends the walk.
        let (rest, c) = parse_chunk(self.rest).ok()?;
        self.rest = rest;
        Some(c)
    }
}

/// Decodes one whole packet: HEPv3 by its magic, HEPv1/v2 by a first byte of 1 or 2.
pub fn decode(buf: &[u8], mode: Mode) -> Result<Packet<'_>, DecodeError> {
    match buf.first() {
        Some(1) | Some(2) => decode_v2(buf, mode),
        _ => decode_v3(buf, mode),
    }
}

/// Decodes one HEPv3 packet.
pub fn decode_v3(buf: &[u8], mode: Mode) -> Result<Packet<'_>, DecodeError> {
    let (_, (magic, declared)) = parse_hep3_header(buf).map_err(|e| fault(e, buf))?;
    match &magic {
        b"HEP3" => {}
        b"EEP3" if mode == Mode::Lenient => {}
        b"EEP3" => return Err(DecodeError::at(0, DecodeErrorKind::EepMagic)),
        _ => return Err(DecodeError::at(0, DecodeErrorKind::BadMagic(magic))),
    }
    let len = usize::from(declared);
    let ok_len = match mode {
        Mode::Strict => len == buf.len(),
        Mode::Lenient => len >= 6 && len <= buf.len(),
    };
    if !ok_len {
        return Err(DecodeError::at(
            4,
            DecodeErrorKind::LengthMismatch {
                declared,
                actual: buf.len(),
            },
        ));
    }
    let raw = &buf[..len];
    let mut p = Packet::empty(Version::V3, raw);
    let mut rest = &raw[6..];
    while !rest.is_empty() {
        let offset = len - rest.len();
        let (next, c) = parse_chunk(rest).map_err(|e| fault(e, raw))?;
        rest = next;
        p.chunk_count += 1;
        let size_ok = match c.kind.hs_fixed_body_len() {
            Some(n) if n != c.body.len() => {
                if mode == Mode::Strict {
                    return Err(DecodeError::in_chunk(
                        offset,
                        c.vendor,
                        c.kind,
                        DecodeErrorKind::WrongFixedSize {
                            expected: n,
                            actual: c.body.len(),
                        },
                    ));
                }
                false
            }
            _ => true,
        };
        if size_ok && c.vendor == VendorId::GENERIC {
            p.set_field(c);
        }
    }
    Ok(p)
}

impl<'a> Packet<'a> {
    /// Reads a generic chunk whose size is already checked into its field.
    fn set_field(&mut self, c: RawChunk<'a>) {
        let b = c.body;
        match c.kind {
            ChunkType::IP_FAMILY => self.ip_family = Some(b[0]),
            ChunkType::IP_PROTO => self.ip_proto = Some(b[0]),
            ChunkType::IPV4_SRC => self.src_ip = Some(IpAddr::V4(ipv4(b))),
            ChunkType::IPV4_DST => self.dst_ip = Some(IpAddr::V4(ipv4(b))),
            ChunkType::IPV6_SRC => self.src_ip = Some(IpAddr::V6(ipv6(b))),
            ChunkType::IPV6_DST => self.dst_ip = Some(IpAddr::V6(ipv6(b))),
            ChunkType::SRC_PORT => self.src_port = Some(u16_of(b)),
            ChunkType::DST_PORT => self.dst_port = Some(u16_of(b)),
            ChunkType::TS_SEC => self.ts_sec = Some(u32_of(b)),
            ChunkType::TS_USEC => self.ts_usec = Some(u32_of(b)),
            ChunkType::PROTO_TYPE => self.proto_type = Some(ProtoType(b[0])),
            ChunkType::CAPTURE_ID => self.capture_id = Some(u32_of(b)),
            ChunkType::KEEP_ALIVE if b.len() == 2 => self.keep_alive = Some(u16_of(b)),
            ChunkType::AUTH_KEY => self.auth_key = Some(b),
            ChunkType::PAYLOAD => self.payload = Some(b),
            ChunkType::COMPRESSED_PAYLOAD => self.compressed_payload = Some(b),
            ChunkType::CORRELATION_ID => self.correlation_id = Some(b),
            ChunkType::VLAN => self.vlan = Some(u16_of(b)),
            ChunkType::NODE_NAME => self.node_name = Some(b),
            _ => {}
        }
    }
}

fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn ipv6(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    Ipv6Addr::from(a)
}

fn u16_of(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn u32_of(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn fault(e: nom::Err<Fault<'_>>, packet: &[u8]) -> DecodeError {
    match e {
        nom::Err::Error(f) | nom::Err::Failure(f) => f.into_error(packet),
        nom::Err::Incomplete(n) => DecodeError::at(
            packet.len(),
            DecodeErrorKind::Truncated {
                needed: match n {
                    nom::Needed::Size(s) => s.get(),
                    nom::Needed::Unknown => 1,
                },
            },
        ),
    }
}

/// The fixed part of a HEPv1/v2 header.
struct V2Header {
    version: u8,
    header_len: u8,
    family: u8,
    proto: u8,
    src_port: u16,
    dst_port: u16,
}

fn parse_v2_header(i: &[u8]) -> IResult<&[u8], V2Header, Fault<'_>> {
    if i.len() < 8 {
        return Err(Fault::hep(
            i,
            DecodeErrorKind::Truncated {
                needed: 8 - i.len(),
            },
        ));
    }
    let (i, version) = be_u8(i)?;
    let (i, header_len) = be_u8(i)?;
    let (i, family) = be_u8(i)?;
    let (i, proto) = be_u8(i)?;
    let (i, src_port) = be_u16(i)?;
    let (i, dst_port) = be_u16(i)?;
    Ok((
        i,
        V2Header {
            version,
            header_len,
            family,
            proto,
            src_port,
            dst_port,
        },
    ))
}

/// Decodes one HEPv1 or HEPv2 packet, laid out as captagent and Kamailio's siptrace
/// write it: an 8-byte header (version, header length, family, protocol, ports), the two
/// addresses (4 or 16 bytes each), for v2 a 12-byte time header (seconds, microseconds,
/// 16-bit capture id, 2 bytes of padding, all little-endian as those senders write them
/// on x86), then the SIP payload. Strict mode also checks the header length byte.
pub fn decode_v2(buf: &[u8], mode: Mode) -> Result<Packet<'_>, DecodeError> {
    let (rest, h) = parse_v2_header(buf).map_err(|e| fault(e, buf))?;
    let (addr_len, expected) = match h.family {
        family::IPV4 => (4usize, 16u8),
        family::IPV6 => (16, 40),
        f => return Err(DecodeError::at(2, DecodeErrorKind::BadFamily(f))),
    };
    if mode == Mode::Strict && h.header_len != expected {
        return Err(DecodeError::at(
            1,
            DecodeErrorKind::BadHeaderLength {
                declared: h.header_len,
                expected,
            },
        ));
    }
    let v2 = h.version == 2;
    let needed = 2 * addr_len + if v2 { 12 } else { 0 };
    if rest.len() < needed {
        return Err(DecodeError::at(
            buf.len(),
            DecodeErrorKind::Truncated {
                needed: needed - rest.len(),
            },
        ));
    }
    let (src, dst) = (&rest[..addr_len], &rest[addr_len..2 * addr_len]);
    let mut p = Packet::empty(if v2 { Version::V2 } else { Version::V1 }, buf);
    p.ip_family = Some(h.family);
    p.ip_proto = Some(h.proto);
    p.src_port = Some(h.src_port);
    p.dst_port = Some(h.dst_port);
    (p.src_ip, p.dst_ip) = if addr_len == 4 {
        (Some(IpAddr::V4(ipv4(src))), Some(IpAddr::V4(ipv4(dst))))
    } else {
        (Some(IpAddr::V6(ipv6(src))), Some(IpAddr::V6(ipv6(dst))))
    };
    p.proto_type = Some(ProtoType::SIP);
    let mut rest = &rest[2 * addr_len..];
    if v2 {
        let mut time = (le_u32, le_u32, le_u16);
        let (r, (sec, usec, capt)) = time.parse(rest).map_err(|e| fault(e, buf))?;
        p.ts_sec = Some(sec);
        p.ts_usec = Some(usec);
        p.capture_id = Some(u32::from(capt));
        rest = &r[2..];
    }
    p.payload = Some(rest);
    Ok(p)
}
