//! Janus events: splitting bodies into events, and the typed event model.

pub mod event;
pub mod ice;
pub mod scan;
pub mod sip;
pub mod split;

pub use event::{Event, EventError, EventParser};
pub use split::{split_events, SplitError};
