//! heplink: Janus WebRTC Server events to correlated HEPv3 for Homer.
//!
//! The HEP codec lives in the `heplink-proto` crate (re-exported as [`proto`]); this
//! crate holds the agent and its tools.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use heplink_proto as proto;

pub mod capture;
pub mod config;
pub mod convert_cmd;
pub mod correlate;
pub mod decode_cmd;
pub mod demo;
pub mod flow;
pub mod janus;
pub mod listen;
pub mod mapper;
pub mod metrics;
pub mod pcap_writer;
pub mod pipeline;
pub mod render;
pub mod replay;
pub mod sender;
pub mod serve;
pub mod spool;
pub mod tls;
