//! SIP message helpers for what the SIP plugin's events carry: a header's value, the
//! Call-ID (the id of a call's flow).

/// The value of the `Call-ID` (or compact `i`) header of a SIP message.
pub fn sip_call_id(msg: &str) -> Option<&str> {
    sip_header(msg, "call-id", Some("i"))
}

/// The first value of a SIP header (case-insensitive name, optional compact form).
pub fn sip_header<'m>(msg: &'m str, name: &str, compact: Option<&str>) -> Option<&'m str> {
    for line in msg.split("\r\n").skip(1).flat_map(|l| l.split('\n')) {
        if line.is_empty() {
            break;
        }
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        let n = n.trim();
        if n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c)) {
            let v = v.trim();
            return (!v.is_empty()).then_some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_headers() {
        let m = "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP x\r\ncall-ID:  abc@h \r\n\r\nv=0\r\nCall-ID: body";
        assert_eq!(sip_call_id(m), Some("abc@h"));
        assert_eq!(
            sip_call_id("SIP/2.0 200 OK\r\ni: compact\r\n\r\n"),
            Some("compact")
        );
        assert_eq!(sip_call_id("SIP/2.0 200 OK\r\n\r\nCall-ID: in-body"), None);
    }
}
