//! Groups (a room, a SIP call) interned per emitter, and handing correlated events out:
//! to one id, or to each group of a handle or session.

use std::sync::Arc;

use smallvec::SmallVec;

use super::{Correlated, Facts, GroupKey, HashMap};
use crate::janus::event::Event;

/// A group with its correlation id, shared (interned) by every handle in it.
#[derive(Debug, Clone)]
pub(super) struct Group(Arc<GroupInner>);

/// What a [`Group`] points to.
#[derive(Debug)]
pub(super) struct GroupInner {
    /// The room or call.
    pub key: GroupKey,
    /// Its correlation id.
    pub cid: Arc<str>,
}

impl std::ops::Deref for Group {
    type Target = GroupInner;
    fn deref(&self) -> &GroupInner {
        &self.0
    }
}

/// The groups of a handle or session (most have one or two).
pub(super) type Groups = SmallVec<[Group; 2]>;

/// The interned group of `key` (one allocation per room or call, not per handle).
pub(super) fn intern(cache: &mut HashMap<GroupKey, Group>, emitter: &str, key: GroupKey) -> Group {
    if let Some(g) = cache.get(&key) {
        return g.clone();
    }
    let cid: Arc<str> = match &key {
        GroupKey::Room(p, r) => format!("{emitter}:{}:{r}", p.short()).into(),
        GroupKey::Call(c) => c.clone(),
    };
    let g = Group(Arc::new(GroupInner {
        key: key.clone(),
        cid,
    }));
    cache.insert(key, g.clone());
    g
}

/// Adds `g` unless a group of its key is there.
pub(super) fn push_unique(groups: &mut Groups, g: Group) {
    if !groups.iter().any(|x| x.key == g.key) {
        groups.push(g);
    }
}

/// One event to one id.
pub(super) fn emit(out: &mut Vec<Correlated>, event: Event, cid: Arc<str>, facts: Facts) {
    out.push(Correlated { event, cid, facts });
}

/// One event to each group (one packet per group), each with its group and Call-ID.
pub(super) fn emit_groups(out: &mut Vec<Correlated>, event: Event, groups: &[Group], facts: Facts) {
    let last = groups.len() - 1;
    let mut event = Some(event);
    for (i, g) in groups.iter().enumerate() {
        let e = if i == last {
            event.take().expect("once")
        } else {
            event.clone().expect("present")
        };
        let mut f = facts.clone();
        f.group = Some(g.key.clone());
        if let GroupKey::Call(c) = &g.key {
            f.call_id = Some(c.clone());
        }
        emit(out, e, g.cid.clone(), f);
    }
}
