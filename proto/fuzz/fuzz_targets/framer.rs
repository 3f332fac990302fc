//! The framer over arbitrary chunking: feeding a stream in any pieces yields the same
//! frames (and the same error) as feeding it whole.
#![no_main]
use bytes::BytesMut;
use heplink_proto::{next_frame, Frames};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, &[u8])| {
    let (cuts, stream) = input;
    let mut whole = Frames::new(stream);
    let want: Vec<&[u8]> = whole.by_ref().collect();
    let want_err = whole.error();

    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut err = None;
    let mut pos = 0;
    let mut i = 0;
    'feed: while pos < stream.len() {
        let n = (usize::from(*cuts.get(i).unwrap_or(&7)) + 1).min(stream.len() - pos);
        i += 1;
        buf.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        loop {
            match next_frame(&mut buf) {
                Ok(Some(f)) => got.push(f),
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(&g[..], *w);
    }
    assert_eq!(err, want_err);
});
