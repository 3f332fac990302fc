//! heplink: Janus WebRTC Server events to correlated HEPv3 for Homer.
//!
//! The HEP codec lives in the `heplink-proto` crate (re-exported as [`proto`]); this
//! crate holds the agent and its tools.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use heplink_proto as proto;

pub mod capture;
pub mod decode_cmd;
pub mod pcap_writer;
pub mod render;
