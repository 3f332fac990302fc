//! The SIP plugin: a handle's events belong to the call in progress, whose id is its
//! Call-ID exactly (homer-app's default SIP correlation then pulls them into the call).
//! A call's set-up (the remote offer and first ICE events before `calling`) waits in the
//! handle's hold until the Call-ID is known; teardown after `hangup` stays with the call
//! until the next call's offer (`handle.rs` starts the new call on that offer).

use smallvec::smallvec;

use super::group::{intern, Group};
use super::state::{HandleState, Learned, SipPhase};
use super::{GroupKey, HashMap};
use crate::janus::event::PluginEvent;

/// A SIP plugin event: which call the handle is in.
pub(super) fn learn_sip(
    h: &mut HandleState,
    groups: &mut HashMap<GroupKey, Group>,
    em: &str,
    p: &PluginEvent,
    learned: &mut Learned,
) {
    let Some(call) = &p.call_id else {
        return;
    };
    let name = p.name.as_deref().unwrap_or("");
    let message = matches!(name, "sip-in" | "sip-out");
    let invite = p.sip.as_deref().is_some_and(|m| m.starts_with("INVITE "));
    let key = GroupKey::Call(call.clone());
    let current = h.groups.iter().any(|g| g.key == key);
    let starts =
        matches!(name, "calling" | "incoming") || invite || (h.groups.is_empty() && !message);
    if !current && starts {
        h.groups = smallvec![intern(groups, em, key)];
        h.sip = SipPhase::InCall;
        h.hold.gave_up = false;
    } else if !current {
        // Another call's event (a late one, or a SIP message of its own).
        learned.own_cid = Some((call.clone(), key));
    } else if name == "hangup" {
        h.sip = SipPhase::Idle;
    }
}
