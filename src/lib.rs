//! heplink: Janus WebRTC Server events to correlated HEPv3 for Homer.
#![forbid(unsafe_code)]
