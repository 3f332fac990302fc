//! `input::http::ingest_once`, the fuzz target's way into the HTTP ingest handler, as the
//! fuzz crate calls it: through the `test-support` feature, which the crate's own tests
//! turn on (a dev-dependency on itself) and the shipped build leaves off.

#[test]
fn ingest_once_runs_the_handler() {
    use heplink::input::http::ingest_once;
    let event = br#"[{"emitter":"t","type":1,"timestamp":1700000000000000,"session_id":1,"event":{"name":"created","transport":{"transport":"janus.transport.http","id":"x"}}}]"#;
    let (status, answer, events) = ingest_once("POST", &[], event.to_vec(), false);
    assert_eq!(
        (status, &answer[..], events),
        (200, &b"{\"ok\":true}"[..], 1)
    );
    // Basic auth on (`janus:s3cret`): refused without it, taken with it.
    let (status, _, events) = ingest_once("POST", &[], event.to_vec(), true);
    assert_eq!((status, events), (401, 0));
    let basic: &[u8] = b"Basic amFudXM6czNjcmV0";
    let (status, _, events) =
        ingest_once("POST", &[("authorization", basic)], event.to_vec(), true);
    assert_eq!((status, events), (200, 1));
    let (status, _, _) = ingest_once("GET", &[], Vec::new(), false);
    assert_eq!(status, 405);
}
