//! SIP messages are drawn between the addresses the dialog names: a response without a
//! Contact (Janus's 200 OK to a BYE) takes Janus's address from the dialog's other
//! messages instead of a synthetic column.

mod common;

use heplink::proto::{decode, Mode, ProtoType};

#[test]
fn janus_200_to_a_bye_without_contact_comes_from_janus_sip_address() {
    let mut lines = common::fixture_bodies("sip-call-simple")
        .into_iter()
        .map(Ok);
    let c = heplink::capture::jsonl::convert(&mut lines, Default::default(), Default::default())
        .unwrap();
    let mut sip = 0;
    let mut ok_without_contact = 0;
    for (_, bytes) in &c.packets {
        let p = decode(bytes, Mode::Strict).unwrap();
        if p.proto_type != Some(ProtoType::SIP) {
            continue;
        }
        sip += 1;
        let text = String::from_utf8_lossy(p.payload.unwrap());
        let ends = [p.src_ip.unwrap().to_string(), p.dst_ip.unwrap().to_string()];
        assert!(
            !ends
                .iter()
                .any(|e| e.starts_with("240.") || e.starts_with("fd")),
            "a synthetic column for {}",
            text.lines().next().unwrap()
        );
        let has_contact = text
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("contact:") || l.starts_with("m:"));
        if text.starts_with("SIP/2.0 200") && !has_contact {
            ok_without_contact += 1;
            // Janus's side of this dialog is where its INVITE came from.
            assert_eq!(
                (ends[0].as_str(), p.src_port),
                ("127.0.0.41", Some(51182)),
                "{text}"
            );
        }
    }
    assert!(sip >= 12, "{sip} SIP packets");
    assert_eq!(ok_without_contact, 1, "the capture's 200 OK to the BYE");
}
