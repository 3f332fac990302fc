//! Neither decoder mode may panic, and whatever strict accepts, lenient accepts too.
#![no_main]
use heplink_proto::{decode, Mode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let strict = decode(data, Mode::Strict);
    let lenient = decode(data, Mode::Lenient);
    if let Ok(s) = strict {
        let l = lenient.expect("lenient rejected what strict accepted");
        assert!(s.chunks().eq(l.chunks()));
        let _ = s.chunks().count();
        let _ = s.timestamp_micros();
    }
});
