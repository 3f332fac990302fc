//! # heplink-proto
//!
//! A sans-IO codec for HEP, the Homer Encapsulation Protocol: no sockets, no clock, no
//! runtime. It is what heplink uses to talk to heplify-server, and it is usable on its own.
//!
//! - [`registry`]: chunk types, vendor ids and payload types as integer newtypes with
//!   named constants; unknown values still parse and print as numbers.
//! - [`decode()`]: a zero-copy nom decoder. [`Mode::Strict`] accepts exactly what
//!   heplify-server accepts and names the rule, the chunk and the byte offset of every
//!   rejection; [`Mode::Lenient`] keeps odd chunks so that [`Packet::encode_raw`]
//!   reproduces the input byte for byte. HEPv1/v2 are read, never written.
//! - [`PacketBuilder`]: an owned encoder that refuses what heplify-server would drop or
//!   mis-store (no payload type, empty payload, no correlation id on non-SIP packets,
//!   over 65,507 bytes, `"` or `\` in node name or auth key, mixed address families, …).
//! - [`frame()`] / [`next_frame`]: framing of HEP over TCP/TLS streams.
//!
//! ```
//! use heplink_proto::{decode, Mode, PacketBuilder, ProtoType};
//!
//! let bytes = PacketBuilder::new(ProtoType::LOG, &b"{\"janus\":\"event\"}"[..])
//!     .udp(("10.0.0.1".parse().unwrap(), 8088), ("10.0.0.2".parse().unwrap(), 0))
//!     .timestamp_micros(1_700_000_000_123_456)
//!     .correlation_id("janus:room:1234")
//!     .to_bytes()
//!     .unwrap();
//! let p = decode(&bytes, Mode::Strict).unwrap();
//! assert_eq!(p.correlation_id, Some(&b"janus:room:1234"[..]));
//! assert_eq!(p.ts_usec, Some(123_456));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod decode;
pub mod encode;
pub mod error;
pub mod frame;
pub mod registry;

pub use decode::{
    decode, decode_v2, decode_v3, parse_chunk, parse_hep3_header, Mode, Packet, RawChunk, Version,
};
pub use encode::{ExtraChunk, PacketBuilder};
pub use error::{DecodeError, DecodeErrorKind, EncodeError, FrameError};
pub use frame::{frame, next_frame, Frame, Frames, MAX_PACKET_LEN};
pub use registry::{ChunkType, ProtoType, VendorId};
