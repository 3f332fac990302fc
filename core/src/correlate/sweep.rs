//! Sweeping: holds that ran out go to the fallback (the handle or session gives up
//! waiting); ended handles and sessions are forgotten after their grace period, idle ones
//! after `idle_us`; the handle cap evicts the least recently active. Every release, expiry
//! and eviction is counted.

use super::emitter::{Cx, EmitterState};
use super::group::push_unique;
use super::hold::{ids_where, Hold, Over};

impl EmitterState {
    /// Releases expired holds; forgets ended and idle state; applies the handle cap.
    pub(super) fn sweep(&mut self, cx: &mut Cx<'_>) {
        let (now, hold_us) = (cx.now, cx.cfg.hold_us);
        // Session events kept for late groups: only for the hold window.
        self.late.retain(|_, v| {
            v.retain(|(h, _)| now.saturating_sub(h.at) < hold_us);
            !v.is_empty()
        });
        // Holds that ran out.
        let ran_out = |h: &Hold| h.ran_out(now, hold_us);
        for hid in ids_where(&self.handles, |h| &h.hold, ran_out) {
            if let Some(h) = self.handles.get_mut(&hid) {
                cx.st.hold_expired += h.hold.held.len() as u64;
                h.hold.gave_up = true;
            }
            self.release_handle_fallback(cx, hid);
        }
        for sid in ids_where(&self.sessions, |s| &s.hold, ran_out) {
            if let Some(s) = self.sessions.get_mut(&sid) {
                cx.st.hold_expired += s.hold.held.len() as u64;
                s.hold.gave_up = true;
            }
            self.release_session(cx, sid);
        }
        // Ended (after the grace period) or idle handles.
        let gone: Vec<(u64, Over)> = self
            .handles
            .iter()
            .filter_map(|(k, h)| Some((*k, h.hold.over(now, cx.cfg)?)))
            .collect();
        for (hid, over) in gone {
            if over == Over::Idle {
                cx.st.expired += 1;
            }
            self.forget_handle(cx, hid);
        }
        if self.handles.len() > cx.cfg.max_handles {
            self.evict(cx);
        }
        // A session is idle only once it has no handle left.
        let gone: Vec<(u64, Over)> = self
            .sessions
            .iter()
            .filter_map(|(k, s)| match s.hold.over(now, cx.cfg)? {
                Over::Idle if !s.handles.is_empty() => None,
                over => Some((*k, over)),
            })
            .collect();
        for (sid, over) in gone {
            if over == Over::Idle {
                cx.st.expired += 1;
            }
            self.forget_session(cx, sid);
        }
        self.transports
            .retain(|_, t| now.saturating_sub(t.at) < hold_us);
    }

    /// Forgets an ended or idle session: what it holds is released, its transport's list
    /// and its handles are forgotten.
    fn forget_session(&mut self, cx: &mut Cx<'_>, sid: u64) {
        self.release_session(cx, sid);
        let Some(s) = self.sessions.remove(&sid) else {
            return;
        };
        if let Some(t) = &s.transport_id {
            if let Some(list) = self.transport_sessions.get_mut(t) {
                list.retain(|x| *x != sid);
                if list.is_empty() {
                    self.transport_sessions.remove(t);
                }
            }
        }
        for h in s.handles {
            self.forget_handle(cx, h);
        }
    }

    /// Evicts the least recently active handles down to 90% of the cap (counted).
    pub(super) fn evict(&mut self, cx: &mut Cx<'_>) {
        let mut by_age: Vec<(u64, u64)> = self
            .handles
            .iter()
            .map(|(k, h)| (h.hold.last_seen, *k))
            .collect();
        by_age.sort_unstable();
        let excess = self
            .handles
            .len()
            .saturating_sub(cx.cfg.max_handles * 9 / 10)
            .max(1);
        for (_, hid) in by_age.into_iter().take(excess) {
            cx.st.evicted += 1;
            self.forget_handle(cx, hid);
        }
    }

    /// Forgets a handle: what it holds is released; its session keeps its groups for the
    /// session's last events.
    fn forget_handle(&mut self, cx: &mut Cx<'_>, hid: u64) {
        self.release_handle_fallback(cx, hid);
        let Some(h) = self.handles.remove(&hid) else {
            return;
        };
        self.participants.retain(|_, v| *v != hid);
        if let Some(s) = h.session.and_then(|sid| self.sessions.get_mut(&sid)) {
            s.handles.retain(|x| *x != hid);
            for g in h.groups {
                push_unique(&mut s.past_groups, g);
            }
        }
    }
}
