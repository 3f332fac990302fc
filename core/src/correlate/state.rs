//! What the correlator keeps of each handle, session and transport, and what one handle
//! event teaches it: the tables' rows, shared by the rules (which import this file, never
//! each other's).

use std::net::SocketAddr;
use std::sync::Arc;

use smallvec::SmallVec;

use super::group::Groups;
use super::hold::Hold;
use super::GroupKey;
use crate::janus::event::{Plugin, RoomId};

/// A handle: its plugin, groups, participant, addresses and hold.
#[derive(Debug)]
pub(super) struct HandleState {
    pub session: Option<u64>,
    pub plugin: Option<Plugin>,
    pub groups: Groups,
    /// The room this handle participates in (as publisher, subscriber or member).
    pub participant: Option<(RoomId, RoomId)>,
    pub display: Option<Arc<str>>,
    pub feeds: Vec<RoomId>,
    pub sip: SipPhase,
    pub hold: Hold,
    pub client: Option<SocketAddr>,
    pub janus: Option<SocketAddr>,
    pub opaque: Option<Arc<str>>,
}

/// A session: its handles, the groups of those already forgotten, its transport and hold.
#[derive(Debug, Default)]
pub(super) struct SessionState {
    pub handles: SmallVec<[u64; 2]>,
    /// Groups of handles already forgotten, for the session's last events.
    pub past_groups: Groups,
    pub hold: Hold,
    /// A handle of the session sends to the session's fallback flow (it never binds):
    /// the session's events go there too, besides its handles' groups.
    pub fallback_used: bool,
    pub client: Option<SocketAddr>,
    pub transport_id: Option<Arc<str>>,
    pub persistent_transport: bool,
}

/// A transport connection seen recently: its client, for the sessions created on it.
#[derive(Debug)]
pub(super) struct TransportSeen {
    pub client: Option<SocketAddr>,
    pub at: u64,
}

/// Where a SIP handle is in its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SipPhase {
    /// No call yet, or the last one is over and no new one started.
    Idle,
    /// A new call's offer came; its Call-ID is not known yet.
    SettingUp,
    /// In a call.
    InCall,
}

/// What an event said besides the handle's own state.
#[derive(Debug, Default)]
pub(super) struct Learned {
    /// The handle was detached.
    pub detached: bool,
    /// A SIP message or call event of another call than the handle's: its own id.
    pub own_cid: Option<(Arc<str>, GroupKey)>,
    /// A room participant this event introduced (plugin, room, participant id).
    pub new_participant: Option<(Plugin, RoomId, RoomId)>,
    /// The room a plugin event names.
    pub named: Option<GroupKey>,
}
