//! heplink's core: what happens to a Janus event between the input that read it and the
//! output that sends it, with no I/O, no runtime and no clock of its own (time is an
//! input, as in quinn-proto).
//!
//! The modules follow the path of one event (`ARCHITECTURE.md` walks it): [`janus`] reads
//! a body into typed events → [`correlate`] gives each its flow → [`diagnose`] judges each
//! PeerConnection when it ends → [`map`] makes HEP packets (labels, QoS reports) →
//! [`pipeline`] chains those and encodes with `heplink-proto`. [`reject`] names what is
//! refused, [`json`] writes JSON by hand, [`time`] converts Janus's clocks.
//!
//! The agent (`heplink`) depends on this crate and adds the inputs, outputs, Homer's API
//! and the commands; Cargo holds the boundary: nothing here may depend on tokio, axum,
//! hyper, lapin, rumqttc, clap or tracing-subscriber.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use heplink_proto as proto;

pub mod choice;
pub mod correlate;
pub mod diagnose;
pub mod janus;
pub mod json;
pub mod map;
pub mod pipeline;
pub mod reject;
pub mod time;
