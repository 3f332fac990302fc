//! The correlator's public values: its settings, what it says of each event, its counters.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::janus::event::{Event, Plugin, RoomId};

/// How events that belong to no room or call are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// `<emitter>:session:<session_id>`.
    #[default]
    Session,
    /// `<emitter>:handle:<handle_id>` (session-level events: the session id).
    Handle,
    /// `<emitter>:opaque:<opaque_id>` when the handle has one, else the session id.
    OpaqueId,
}

impl crate::choice::Choice for Fallback {
    const ALL: &'static [(&'static str, Self)] = &[
        ("session", Self::Session),
        ("handle", Self::Handle),
        ("opaque-id", Self::OpaqueId),
    ];
}
crate::choice::display_choice!(Fallback);

/// Correlator settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The fallback policy.
    pub fallback: Fallback,
    /// How long events wait for their handle's binding, µs (also the grace period after
    /// a handle or session ends).
    pub hold_us: u64,
    /// Inactivity after which a handle or session is forgotten, µs.
    pub idle_us: u64,
    /// Most handles tracked per emitter; beyond it the least recently active are evicted.
    pub max_handles: usize,
    /// Most events held per handle or session; beyond it the oldest is released.
    pub max_held: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fallback: Fallback::Session,
            hold_us: 10_000_000,
            idle_us: 3_600_000_000,
            max_handles: 200_000,
            max_held: 512,
        }
    }
}

/// A group: a room of a plugin, or a SIP call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupKey {
    /// A room.
    Room(Plugin, RoomId),
    /// A SIP call (its Call-ID).
    Call(Arc<str>),
}

/// What heplink learned about an event, sent along in its payload and used for addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The group, when the event belongs to one.
    pub group: Option<GroupKey>,
    /// The participant (room id, participant id) of the handle or event.
    pub participant: Option<(RoomId, RoomId)>,
    /// The participant's display name.
    pub display: Option<Arc<str>>,
    /// Publishers a subscriber handle receives.
    pub feeds: Vec<RoomId>,
    /// The SIP Call-ID.
    pub call_id: Option<Arc<str>>,
    /// How long the event was held before its id was known, µs.
    pub held_us: u64,
    /// The client side of the PeerConnection or session, when known.
    pub client: Option<SocketAddr>,
    /// Janus's side of the PeerConnection, when known.
    pub janus: Option<SocketAddr>,
}

/// An event with its correlation id.
#[derive(Debug, Clone)]
pub struct Correlated {
    /// The event.
    pub event: Event,
    /// The correlation id.
    pub cid: Arc<str>,
    /// The facts learned.
    pub facts: Facts,
}

/// Counters of what the correlator did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events taken in.
    pub events: u64,
    /// Packets released (an event can give more than one).
    pub released: u64,
    /// Events that waited for a binding.
    pub held: u64,
    /// Held events released with the fallback id because no binding came in time.
    pub hold_expired: u64,
    /// Held events released early because a handle or session held too many.
    pub hold_overflow: u64,
    /// Handles and sessions forgotten after inactivity.
    pub expired: u64,
    /// Handles evicted by the cap.
    pub evicted: u64,
}
