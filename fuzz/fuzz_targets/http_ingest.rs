//! Any request (method, headers, encoding, body) through the real HTTP ingest handler,
//! without sockets: no panic, a status from the documented set, a bounded answer, and a
//! 200 only with `{"ok":true}`.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 6] = ["POST", "GET", "PUT", "DELETE", "HEAD", "OPTIONS"];
const ENCODINGS: [&[u8]; 5] = [b"gzip", b"identity", b"x-gzip", b"br", b" GZIP "];

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (m, flags, len_hint) = (data[0], data[1], data[2]);
    let mut body = data[3..].to_vec();
    let method = METHODS[m as usize % METHODS.len()];
    let mut headers: Vec<(&str, Vec<u8>)> = Vec::new();
    if flags & 1 != 0 {
        headers.push(("content-encoding", ENCODINGS[(flags >> 5) as usize % 5].to_vec()));
        // Compress the body for real half of the time, to reach the events inside.
        if flags & 16 != 0 {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = e.write_all(&body);
            body = e.finish().unwrap_or_default();
        }
    }
    if flags & 2 != 0 {
        // A Content-Length that may lie (hyper would refuse a mismatch on the wire; the
        // handler must not trust it either way).
        let n = body.len().saturating_add(len_hint as usize * 1024);
        headers.push(("content-length", n.to_string().into_bytes()));
    }
    let auth = flags & 4 != 0;
    if flags & 8 != 0 {
        let v: &[u8] = if len_hint & 1 == 0 { b"Basic amFudXM6czNjcmV0" } else { b"Basic eDp5" };
        headers.push(("authorization", v.to_vec()));
    }
    let h: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, &v[..])).collect();
    let (status, answer, _events) = heplink::input::http::ingest_once(method, &h, body, auth);
    assert!(
        matches!(status, 0 | 200 | 400 | 401 | 405 | 413 | 415 | 503),
        "status {status}"
    );
    assert!(answer.len() <= 4096, "an answer of {} bytes", answer.len());
    if status == 200 {
        assert_eq!(answer, b"{\"ok\":true}");
    }
});
