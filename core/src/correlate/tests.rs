//! The correlator's unit tests: the size of its state, and what it keeps.

mod size_tests {
    use super::super::group::Group;
    use super::super::state::{HandleState, SessionState};

    /// Guards the per-handle memory figure (≤ 1 KiB per live handle, measured by
    /// `cargo bench --bench state_size`): the tables' slots must not grow unnoticed.
    #[test]
    fn state_structs_stay_small() {
        assert!(
            std::mem::size_of::<HandleState>() <= 256,
            "{}",
            std::mem::size_of::<HandleState>()
        );
        assert!(
            std::mem::size_of::<SessionState>() <= 152,
            "{}",
            std::mem::size_of::<SessionState>()
        );
        assert_eq!(std::mem::size_of::<Group>(), 8);
    }
}

mod kept_tests {
    use super::super::{Config, Correlator};
    use crate::janus::event::Event;
    use bytes::Bytes;

    /// Every event the correlator keeps (held for a binding, kept for late groups).
    fn kept(c: &Correlator) -> Vec<&Event> {
        let mut v = Vec::new();
        for e in c.emitters.values() {
            v.extend(
                e.handles
                    .values()
                    .flat_map(|h| h.hold.held.iter().map(|h| &h.event)),
            );
            v.extend(
                e.sessions
                    .values()
                    .flat_map(|s| s.hold.held.iter().map(|h| &h.event)),
            );
            v.extend(
                e.late
                    .values()
                    .flat_map(|l| l.iter().map(|(h, _)| &h.event)),
            );
        }
        v
    }

    /// A kept event owns its bytes: it does not keep the body it came in (for the HTTP
    /// input, the connection's read buffer) alive. Sharing the body's allocation kept
    /// every such body for the hold window: 100-224 MiB under 100-event POSTs.
    #[test]
    fn kept_events_do_not_keep_their_body() {
        let session = br#"{"emitter":"j","type":1,"timestamp":1795489769234105,"session_id":7,"event":{"name":"created","transport":{"transport":"janus.transport.http","id":"1"}}}"#;
        let attached = br#"{"emitter":"j","type":2,"timestamp":1795489769241014,"session_id":7,"handle_id":8,"event":{"name":"attached","plugin":"janus.plugin.videoroom","opaque_id":"x"}}"#;
        // One large body holding both events, as an HTTP body read in one piece.
        let mut big = Vec::with_capacity(1 << 20);
        big.extend_from_slice(session);
        big.extend_from_slice(attached);
        big.resize(1 << 20, b' ');
        let body = Bytes::from(big);
        let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        let mut parser = crate::janus::EventParser::new();
        let mut c = Correlator::new(Config::default());
        let mut out = Vec::new();
        let now = 1_795_489_769_000_000;
        for (a, b) in [
            (0, session.len()),
            (session.len(), session.len() + attached.len()),
        ] {
            let ev = parser.parse(body.slice(a..b)).unwrap();
            c.push(ev, now, &mut out);
        }
        let kept = kept(&c);
        assert!(!kept.is_empty(), "the handle's event waits for its room");
        for ev in kept {
            let p = ev.raw.as_ptr() as usize;
            assert!(!range.contains(&p), "a kept event points into its body");
        }
    }
}
