//! Bytes of correlator state per live handle, at 10,000 live handles (VideoRoom
//! publishers that joined, negotiated and went up). Prints the figure; target ≤ 1 KiB.
//! Run: `cargo bench --bench state_size`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::Bytes;
use heplink_core::correlate::{self, Correlator};
use heplink_core::janus::EventParser;
use serde_json::{json, Value};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
// GlobalAlloc contract; the wrapper only adds and subtracts sizes in an atomic counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout, forwarded to System.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: p was allocated by System with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: p was allocated by System with layout l.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/janus/videoroom-2pub-2sub-webrtc.jsonl"
    ))
    .unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // pubA's life up to media flowing: session created, attached, joined, offer, ICE, DTLS, webrtcup, published.
    let (sid, hid) = (2622110883396711u64, 664429782379405u64);
    let life: Vec<Value> = events
        .iter()
        .filter(|e| {
            e["session_id"] == sid && (e.get("handle_id").is_none() || e["handle_id"] == hid)
        })
        .filter(|e| e["event"]["name"] != "destroyed" && e["event"]["name"] != "detached")
        .filter(|e| e["event"]["data"]["event"] != "leaving")
        .take(40)
        .cloned()
        .collect();
    const N: u64 = 10_000;
    let mut parser = EventParser::new();
    let mut c = Correlator::new(correlate::Config::default());
    let mut out = Vec::new();
    let t0 = life[0]["timestamp"].as_u64().unwrap();
    // Warm up the parser's emitter cache and the output vector.
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..N {
        for e in &life {
            let mut e = e.clone();
            e["session_id"] = json!(sid + i);
            if e.get("handle_id").is_some() {
                e["handle_id"] = json!(hid + i);
            }
            if e["event"]["data"]["id"].is_u64() {
                e["event"]["data"]["id"] = json!(1_000_000 + i);
            }
            let ev = parser.parse(Bytes::from(e.to_string())).unwrap();
            c.push(ev, t0 + i, &mut out);
            out.clear();
        }
    }
    out.shrink_to_fit();
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(c.handles() as u64, N);
    assert_eq!(c.held(), 0);
    let per = (after - before) as f64 / N as f64;
    println!("correlator state: {} bytes for {N} live handles ({N} sessions) = {per:.0} bytes per live handle", after - before);
}
