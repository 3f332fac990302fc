//! The checked HEPv3 encoder: an owned builder that refuses what heplify-server would
//! drop or mis-store, and writes into a [`BytesMut`].

use core::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::EncodeError;
use crate::frame::MAX_PACKET_LEN;
use crate::registry::{family, ip_proto, ChunkType, ProtoType, VendorId};

/// An extra chunk to append (a vendor chunk or a generic one the builder has no field for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraChunk {
    /// Vendor id.
    pub vendor: VendorId,
    /// Type id.
    pub kind: ChunkType,
    /// Body.
    pub body: Bytes,
}

/// An owned HEPv3 packet to encode.
///
/// Chunks are written in a fixed order: family, IP protocol, source and destination
/// address, ports, seconds, microseconds, protocol type, capture id, auth key,
/// correlation id, node name, VLAN, extra chunks, payload. The address family chunk is
/// written when an address is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PacketBuilder {
    /// IP protocol id (chunk 0x0002); written when set.
    pub ip_proto: Option<u8>,
    /// Source address (0x0003 or 0x0005).
    pub src_ip: Option<IpAddr>,
    /// Destination address (0x0004 or 0x0006).
    pub dst_ip: Option<IpAddr>,
    /// Source port (0x0007).
    pub src_port: Option<u16>,
    /// Destination port (0x0008).
    pub dst_port: Option<u16>,
    /// Seconds (0x0009).
    pub ts_sec: Option<u32>,
    /// Microseconds (0x000a).
    pub ts_usec: Option<u32>,
    /// Protocol type (0x000b), required.
    pub proto_type: Option<ProtoType>,
    /// Capture agent id (0x000c).
    pub capture_id: Option<u32>,
    /// Authentication key (0x000e).
    pub auth_key: Option<Bytes>,
    /// Correlation id (0x0011), required for every type but SIP.
    pub correlation_id: Option<Bytes>,
    /// Node name (0x0013).
    pub node_name: Option<Bytes>,
    /// VLAN id (0x0012).
    pub vlan: Option<u16>,
    /// Further chunks, written before the payload.
    pub extra: Vec<ExtraChunk>,
    /// Payload (0x000f), required and non-empty.
    pub payload: Bytes,
}

impl PacketBuilder {
    /// A builder for `proto_type` with this payload.
    pub fn new(proto_type: ProtoType, payload: impl Into<Bytes>) -> Self {
        PacketBuilder {
            proto_type: Some(proto_type),
            payload: payload.into(),
            ..Default::default()
        }
    }

    /// Sets source and destination as UDP endpoints.
    pub fn udp(mut self, src: (IpAddr, u16), dst: (IpAddr, u16)) -> Self {
        self.ip_proto = Some(ip_proto::UDP);
        (self.src_ip, self.src_port) = (Some(src.0), Some(src.1));
        (self.dst_ip, self.dst_port) = (Some(dst.0), Some(dst.1));
        self
    }

    /// Sets the timestamp from microseconds since the Unix epoch.
    pub fn timestamp_micros(mut self, us: u64) -> Self {
        self.set_timestamp_micros(us);
        self
    }

    /// Sets the timestamp from microseconds since the Unix epoch, in place.
    pub fn set_timestamp_micros(&mut self, us: u64) {
        // Seconds beyond u32 (year 2106) saturate rather than wrap.
        self.ts_sec = Some(u32::try_from(us / 1_000_000).unwrap_or(u32::MAX));
        self.ts_usec = Some((us % 1_000_000) as u32);
    }

    /// Sets the capture agent id.
    pub fn capture_id(mut self, id: u32) -> Self {
        self.capture_id = Some(id);
        self
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, cid: impl Into<Bytes>) -> Self {
        self.correlation_id = Some(cid.into());
        self
    }

    /// Sets the node name.
    pub fn node_name(mut self, name: impl Into<Bytes>) -> Self {
        self.node_name = Some(name.into());
        self
    }

    /// Sets the auth key.
    pub fn auth_key(mut self, key: impl Into<Bytes>) -> Self {
        self.auth_key = Some(key.into());
        self
    }

    /// Appends an extra chunk.
    pub fn chunk(mut self, vendor: VendorId, kind: ChunkType, body: impl Into<Bytes>) -> Self {
        self.extra.push(ExtraChunk {
            vendor,
            kind,
            body: body.into(),
        });
        self
    }

    fn addr_len(ip: &Option<IpAddr>) -> usize {
        match ip {
            Some(IpAddr::V4(_)) => 10,
            Some(IpAddr::V6(_)) => 22,
            None => 0,
        }
    }

    /// The packet's size once encoded (the checks of [`PacketBuilder::encode`] aside).
    pub fn encoded_len(&self) -> usize {
        let opt = |present: bool, n: usize| if present { n } else { 0 };
        let bytes = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| 6 + b.len());
        6 + opt(self.src_ip.is_some() || self.dst_ip.is_some(), 7)
            + opt(self.ip_proto.is_some(), 7)
            + Self::addr_len(&self.src_ip)
            + Self::addr_len(&self.dst_ip)
            + opt(self.src_port.is_some(), 8)
            + opt(self.dst_port.is_some(), 8)
            + opt(self.ts_sec.is_some(), 10)
            + opt(self.ts_usec.is_some(), 10)
            + opt(self.proto_type.is_some(), 7)
            + opt(self.capture_id.is_some(), 10)
            + bytes(&self.auth_key)
            + bytes(&self.correlation_id)
            + bytes(&self.node_name)
            + opt(self.vlan.is_some(), 8)
            + self.extra.iter().map(|c| 6 + c.body.len()).sum::<usize>()
            + 6
            + self.payload.len()
    }

    /// Checks every rule without writing.
    pub fn validate(&self) -> Result<usize, EncodeError> {
        let proto = self.proto_type.ok_or(EncodeError::MissingProtoType)?;
        if proto == ProtoType::RESERVED {
            return Err(EncodeError::ReservedProtoType);
        }
        if self.payload.is_empty() {
            return Err(EncodeError::EmptyPayload);
        }
        if proto != ProtoType::SIP && self.correlation_id.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(EncodeError::MissingCorrelationId(proto));
        }
        if let (Some(s), Some(d)) = (&self.src_ip, &self.dst_ip) {
            if s.is_ipv4() != d.is_ipv4() {
                return Err(EncodeError::MixedFamilies);
            }
        }
        for (field, value) in [("node name", &self.node_name), ("auth key", &self.auth_key)] {
            if let Some(b) = value
                .as_ref()
                .and_then(|v| v.iter().find(|&&b| b == b'"' || b == b'\\'))
            {
                return Err(EncodeError::ForbiddenByte {
                    field,
                    byte: char::from(*b),
                });
            }
        }
        for c in &self.extra {
            if c.vendor != VendorId::GENERIC && c.kind.is_generic_range() {
                return Err(EncodeError::VendorReusesGenericType {
                    vendor: c.vendor,
                    chunk: c.kind,
                });
            }
            if c.vendor == VendorId::GENERIC && Self::is_builder_field(c.kind) {
                return Err(EncodeError::DuplicateField(c.kind));
            }
            if let Some(n) = c.kind.hs_fixed_body_len() {
                if n != c.body.len() {
                    return Err(EncodeError::WrongFixedSize {
                        chunk: c.kind,
                        expected: n,
                        actual: c.body.len(),
                    });
                }
            }
        }
        let size = self.encoded_len();
        if size > MAX_PACKET_LEN {
            return Err(EncodeError::TooLarge { size });
        }
        Ok(size)
    }

    fn is_builder_field(kind: ChunkType) -> bool {
        matches!(kind.0, 0x0001..=0x000c | 0x000e | 0x000f | 0x0011..=0x0013)
    }

    /// Checks the packet and appends it to `out`; returns its size. On error nothing is
    /// written.
    pub fn encode(&self, out: &mut BytesMut) -> Result<usize, EncodeError> {
        let size = self.validate()?;
        out.reserve(size);
        out.put_slice(b"HEP3");
        out.put_u16(size as u16);
        let fam = match (&self.src_ip, &self.dst_ip) {
            (Some(IpAddr::V6(_)), _) | (None, Some(IpAddr::V6(_))) => Some(family::IPV6),
            (None, None) => None,
            _ => Some(family::IPV4),
        };
        if let Some(f) = fam {
            put_u8_chunk(out, ChunkType::IP_FAMILY, f);
        }
        if let Some(p) = self.ip_proto {
            put_u8_chunk(out, ChunkType::IP_PROTO, p);
        }
        put_addr(out, &self.src_ip, ChunkType::IPV4_SRC, ChunkType::IPV6_SRC);
        put_addr(out, &self.dst_ip, ChunkType::IPV4_DST, ChunkType::IPV6_DST);
        if let Some(p) = self.src_port {
            put_chunk(out, ChunkType::SRC_PORT, &p.to_be_bytes());
        }
        if let Some(p) = self.dst_port {
            put_chunk(out, ChunkType::DST_PORT, &p.to_be_bytes());
        }
        if let Some(t) = self.ts_sec {
            put_chunk(out, ChunkType::TS_SEC, &t.to_be_bytes());
        }
        if let Some(t) = self.ts_usec {
            put_chunk(out, ChunkType::TS_USEC, &t.to_be_bytes());
        }
        if let Some(p) = self.proto_type {
            put_u8_chunk(out, ChunkType::PROTO_TYPE, p.0);
        }
        if let Some(c) = self.capture_id {
            put_chunk(out, ChunkType::CAPTURE_ID, &c.to_be_bytes());
        }
        for (kind, v) in [
            (ChunkType::AUTH_KEY, &self.auth_key),
            (ChunkType::CORRELATION_ID, &self.correlation_id),
            (ChunkType::NODE_NAME, &self.node_name),
        ] {
            if let Some(b) = v {
                put_chunk(out, kind, b);
            }
        }
        if let Some(v) = self.vlan {
            put_chunk(out, ChunkType::VLAN, &v.to_be_bytes());
        }
        for c in &self.extra {
            put_vendor_chunk(out, c.vendor, c.kind, &c.body);
        }
        put_chunk(out, ChunkType::PAYLOAD, &self.payload);
        Ok(size)
    }

    /// Encodes into a new buffer.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out)?;
        Ok(out.freeze())
    }
}

fn put_vendor_chunk(out: &mut BytesMut, vendor: VendorId, kind: ChunkType, body: &[u8]) {
    out.put_u16(vendor.0);
    out.put_u16(kind.0);
    // validate() bounds the whole packet by 65,507 bytes, so every chunk length fits.
    out.put_u16((body.len() + 6) as u16);
    out.put_slice(body);
}

fn put_chunk(out: &mut BytesMut, kind: ChunkType, body: &[u8]) {
    put_vendor_chunk(out, VendorId::GENERIC, kind, body);
}

fn put_u8_chunk(out: &mut BytesMut, kind: ChunkType, v: u8) {
    put_chunk(out, kind, &[v]);
}

fn put_addr(out: &mut BytesMut, ip: &Option<IpAddr>, v4: ChunkType, v6: ChunkType) {
    match ip {
        Some(IpAddr::V4(a)) => put_chunk(out, v4, &a.octets()),
        Some(IpAddr::V6(a)) => put_chunk(out, v6, &a.octets()),
        None => {}
    }
}
