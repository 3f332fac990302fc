//! heplink: Janus WebRTC Server events to correlated HEPv3 for Homer.
//!
//! The HEP codec lives in the `heplink-proto` crate (re-exported as [`proto`]); this
//! crate holds the agent and its tools. The modules follow the path of one event
//! (`ARCHITECTURE.md` walks it): [`input`] → [`janus`] → [`correlate`] → [`map`] →
//! encode ([`pipeline`] chains those) → [`output`]; [`agent`] wires them for `serve`,
//! [`capture`] reads and writes capture files, and [`cmd`] holds the commands.
// `unsafe` is denied everywhere but `output::tcp_facts` (one `getsockopt`, reason there).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub use heplink_proto as proto;
// The core (`core/`, its own crate: no I/O, no runtime) under its old paths.
pub use heplink_core::{choice, correlate, diagnose, janus, json, map, pipeline, reject, time};

pub mod ack;
pub mod agent;
pub mod capture;
pub mod cmd;
pub mod config;
pub mod homer;
pub mod input;
pub mod internal_events;
pub mod metrics;
pub mod observe;
pub mod output;
pub mod settings;
pub mod status;
pub mod telemetry;
pub mod tls;
