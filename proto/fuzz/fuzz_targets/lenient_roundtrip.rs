//! Lenient decode → encode → decode is the identity: same bytes, same fields.
#![no_main]
use bytes::BytesMut;
use heplink_proto::{decode, Mode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = decode(data, Mode::Lenient) else { return };
    let mut out = BytesMut::new();
    p.encode_raw(&mut out);
    assert_eq!(&out[..], p.raw, "re-encoding changed the bytes");
    let q = decode(&out, Mode::Lenient).expect("re-encoded packet no longer decodes");
    assert_eq!(p.raw, q.raw);
    assert_eq!(
        (p.version, p.proto_type, p.src_ip, p.dst_ip, p.src_port, p.dst_port, p.ts_sec, p.ts_usec),
        (q.version, q.proto_type, q.src_ip, q.dst_ip, q.src_port, q.dst_port, q.ts_sec, q.ts_usec)
    );
    assert_eq!((p.payload, p.correlation_id, p.node_name, p.auth_key), (q.payload, q.correlation_id, q.node_name, q.auth_key));
    assert!(p.chunks().eq(q.chunks()));
});
