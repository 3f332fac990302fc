//! The codec's error types: every rejection names the rule broken and where.

use crate::registry::{ChunkType, ProtoType, VendorId};

/// Why a packet was rejected by the decoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The buffer ends before the structure that starts at `offset` is complete.
    #[error("truncated: {needed} more byte(s) needed")]
    Truncated {
        /// How many more bytes the structure needs.
        needed: usize,
    },
    /// The packet starts with neither `HEP3` (nor `EEP3` in lenient mode) nor a HEPv1/v2 header.
    #[error("bad magic {0:02x?}: not a HEP packet")]
    BadMagic([u8; 4]),
    /// `EEP3` is in the specification, but heplify-server accepts only `HEP3`.
    #[error("magic EEP3 is not accepted by heplify-server (strict mode)")]
    EepMagic,
    /// The header's total length differs from the packet's size.
    #[error("length field says {declared} bytes but the packet has {actual}")]
    LengthMismatch {
        /// The u16 total length of the header.
        declared: u16,
        /// The bytes actually present.
        actual: usize,
    },
    /// Fewer than 6 bytes remain where a chunk header should start.
    #[error("{remaining} byte(s) left where a 6-byte chunk header should start")]
    ChunkHeaderTruncated {
        /// Bytes left in the packet.
        remaining: usize,
    },
    /// A chunk length below the 6-byte chunk header.
    #[error("chunk length {length} is below the 6-byte chunk header")]
    ChunkTooShort {
        /// The chunk's length field.
        length: u16,
    },
    /// A chunk that runs past the end of the packet.
    #[error("chunk length {length} runs past the end of the packet ({remaining} byte(s) left)")]
    ChunkPastEnd {
        /// The chunk's length field.
        length: u16,
        /// Bytes left in the packet from the chunk's start.
        remaining: usize,
    },
    /// A fixed-size chunk whose body has another size (heplify-server drops the packet).
    #[error("body of {actual} byte(s) where heplify-server requires exactly {expected}")]
    WrongFixedSize {
        /// The size heplify-server requires.
        expected: usize,
        /// The size found.
        actual: usize,
    },
    /// A HEPv1/v2 header with an address family other than 2 or 10.
    #[error("HEPv1/v2 address family {0} is neither 2 (IPv4) nor 10 (IPv6)")]
    BadFamily(u8),
    /// A HEPv1/v2 header length field that does not match its address family.
    #[error("HEPv1/v2 header length {declared} does not match family (expected {expected})")]
    BadHeaderLength {
        /// The header length byte.
        declared: u8,
        /// The length its family implies.
        expected: u8,
    },
}

/// A packet rejected by the decoder: the rule broken, the byte offset in the packet where
/// the offending structure starts and, for chunk errors, the chunk's vendor and type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}{}", chunk_suffix(*.vendor, *.chunk))]
pub struct DecodeError {
    /// Byte offset from the start of the packet.
    pub offset: usize,
    /// The chunk concerned, if the error is about a chunk whose header could be read.
    pub chunk: Option<ChunkType>,
    /// The vendor of that chunk.
    pub vendor: Option<VendorId>,
    /// The rule broken.
    pub kind: DecodeErrorKind,
}

fn chunk_suffix(vendor: Option<VendorId>, chunk: Option<ChunkType>) -> String {
    match (vendor, chunk) {
        (Some(v), Some(c)) if v == VendorId::GENERIC => format!(" (chunk {c})"),
        (Some(v), Some(c)) => format!(" (chunk {c}, {v})"),
        (None, Some(c)) => format!(" (chunk {c})"),
        _ => String::new(),
    }
}

impl DecodeError {
    pub(crate) fn at(offset: usize, kind: DecodeErrorKind) -> Self {
        Self {
            offset,
            chunk: None,
            vendor: None,
            kind,
        }
    }

    pub(crate) fn in_chunk(
        offset: usize,
        vendor: VendorId,
        chunk: ChunkType,
        kind: DecodeErrorKind,
    ) -> Self {
        Self {
            offset,
            chunk: Some(chunk),
            vendor: Some(vendor),
            kind,
        }
    }
}

/// A stream frame that cannot be a HEP packet: heplify-server closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame length {length} outside 6..=65507: not a HEP stream (heplify-server closes the connection)")]
pub struct FrameError {
    /// The u16 length field at offset 4 of the frame.
    pub length: u16,
}

/// What the encoder refuses to build, because heplify-server would drop or mis-store it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// No protocol type: heplify-server silently filters the packet.
    #[error("no protocol type (chunk 0x000b): heplify-server would silently drop the packet")]
    MissingProtoType,
    /// Protocol type 0: heplify-server silently filters the packet.
    #[error("protocol type 0: heplify-server would silently drop the packet")]
    ReservedProtoType,
    /// An empty or missing payload: heplify-server stores no row.
    #[error("empty payload: heplify-server would store no row")]
    EmptyPayload,
    /// A non-SIP packet without correlation id: heplify-server stores no row.
    #[error("protocol type {0} without a correlation id: heplify-server would store no row")]
    MissingCorrelationId(ProtoType),
    /// The packet would exceed what heplify-server reads.
    #[error("packet of {size} bytes exceeds the 65507-byte maximum heplify-server reads")]
    TooLarge {
        /// The size the packet would have.
        size: usize,
    },
    /// A `"` or `\` in a field heplify-server copies into JSON unescaped.
    #[error("{field} contains byte {byte:?}, which heplify-server copies into JSON unescaped (the whole batch is lost)")]
    ForbiddenByte {
        /// The field.
        field: &'static str,
        /// The byte found.
        byte: char,
    },
    /// Source and destination addresses of different families.
    #[error("source and destination addresses mix IPv4 and IPv6")]
    MixedFamilies,
    /// An extra chunk whose body size breaks the fixed size of its type.
    #[error("extra chunk {chunk} has a {actual}-byte body, heplify-server requires {expected}")]
    WrongFixedSize {
        /// The chunk type.
        chunk: ChunkType,
        /// The required size.
        expected: usize,
        /// The body size given.
        actual: usize,
    },
    /// A vendor chunk whose type id collides with a generic one (heplify-server ignores
    /// the vendor and would overwrite the generic field).
    #[error("{vendor} chunk reuses generic type id {chunk}: heplify-server would read it as the generic field")]
    VendorReusesGenericType {
        /// The vendor.
        vendor: VendorId,
        /// The type id.
        chunk: ChunkType,
    },
    /// An extra chunk that duplicates a field the builder writes itself.
    #[error("extra chunk {0} duplicates a field of the builder; set the field instead")]
    DuplicateField(ChunkType),
}
