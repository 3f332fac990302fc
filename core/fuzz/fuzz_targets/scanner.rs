//! The event scanner against serde_json: whatever the scanner accepts serde_json accepts,
//! and whatever serde_json accepts the scanner accepts too, lone surrogate escapes aside
//! (the scanner refuses them; serde_json only does so in strings it decodes).
#![no_main]

use heplink_core::janus::scan::Scanner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut sc = Scanner::new(text);
    let ours = sc.skip().and_then(|()| sc.end()).is_ok();
    let theirs = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
    if ours {
        assert!(theirs, "scanner accepted what serde_json refuses: {text:?}");
    } else if theirs {
        let lower = text.to_ascii_lowercase();
        assert!(
            lower.contains("\\ud8")
                || lower.contains("\\ud9")
                || lower.contains("\\uda")
                || lower.contains("\\udb")
                || lower.contains("\\udc")
                || lower.contains("\\udd")
                || lower.contains("\\ude")
                || lower.contains("\\udf"),
            "scanner refused what serde_json accepts: {text:?}"
        );
    }
});
