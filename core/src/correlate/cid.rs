//! Correlation ids that are not a group's: fallback flows (per session, handle or opaque
//! id), core and transport flows per hour, external and plugin-wide flows; and the cache
//! that spares formatting them for every event.

use std::sync::Arc;

use crate::janus::event::Plugin;

/// What a fallback or emitter-level correlation id is made of (besides the emitter).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum CidKey {
    /// Core events (and session-less events), per hour (µs since the epoch / 1 h).
    Core(u64),
    External,
    Session(u64),
    Handle(u64),
    Opaque(Arc<str>),
    /// A transport plugin's package name (`janus.transport.http`), or `None`, per hour.
    Transport(Option<Arc<str>>, u64),
    /// Plugin events with neither handle, session nor room.
    Plugin(Plugin),
}

impl CidKey {
    /// The session's flow, or the hour's core flow when there is no session.
    pub(super) fn session(sid: Option<u64>, at_us: u64) -> CidKey {
        sid.map_or(CidKey::Core(hour(at_us)), CidKey::Session)
    }

    fn format(&self, em: &str) -> String {
        match self {
            CidKey::Core(h) => format!("{em}:core:{}", hour_label(*h)),
            CidKey::External => format!("{em}:external"),
            CidKey::Session(s) => format!("{em}:session:{s}"),
            CidKey::Handle(h) => format!("{em}:handle:{h}"),
            CidKey::Opaque(o) => format!("{em}:opaque:{o}"),
            CidKey::Transport(t, h) => {
                let name = t.as_deref().unwrap_or("unknown");
                let short = name.strip_prefix("janus.transport.").unwrap_or(name);
                format!("{em}:transport:{short}:{}", hour_label(*h))
            }
            CidKey::Plugin(p) => format!("{em}:{}", p.short()),
        }
    }
}

/// The hour of a time in µs since the epoch (the bucket of core and transport flows).
pub(super) fn hour(at_us: u64) -> u64 {
    at_us / 3_600_000_000
}

/// An hour as `YYYY-MM-DDTHH` (UTC), from hours since the epoch.
pub fn hour_label(hours: u64) -> String {
    let (y, m, d) = crate::time::civil_from_days((hours / 24) as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}", hours % 24)
}

/// Slots of the [`CidCache`] of an emitter.
const CID_SLOTS: usize = 256;

/// Recent fallback ids. An id is a pure function of (emitter, [`CidKey`]), so this
/// direct-mapped cache can never give a wrong one: it only spares formatting and
/// allocating a new `Arc<str>` for every event of a session, handle or transport (and
/// lets the mapper reuse the id's bytes). Bounded to [`CID_SLOTS`] entries per emitter.
#[derive(Debug, Default)]
pub(super) struct CidCache {
    slots: Vec<Option<(CidKey, Arc<str>)>>,
}

impl CidCache {
    /// The id of `key` for emitter `em`.
    pub(super) fn get(&mut self, em: &str, key: CidKey) -> Arc<str> {
        if self.slots.is_empty() {
            self.slots.resize(CID_SLOTS, None);
        }
        let h = match &key {
            CidKey::Session(id) | CidKey::Handle(id) => {
                id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
            }
            k => ahash::RandomState::with_seeds(1, 2, 3, 4).hash_one(k),
        };
        let i = (h as usize) % CID_SLOTS;
        if let Some((k, v)) = &self.slots[i] {
            if *k == key {
                return v.clone();
            }
        }
        let v: Arc<str> = key.format(em).into();
        self.slots[i] = Some((key, v.clone()));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_labels_are_utc_calendar_hours() {
        assert_eq!(hour_label(hour(1_795_489_768_469_225)), "2026-11-24T03");
        assert_eq!(hour_label(0), "1970-01-01T00");
        assert_eq!(hour_label(hour(951_782_400_000_000)), "2000-02-29T00");
        assert_eq!(hour_label(hour(4_102_444_800_000_000 - 1)), "2099-12-31T23");
    }
}
