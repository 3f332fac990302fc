//! SIP message helpers for what the SIP plugin's events carry: a header's value, the
//! Call-ID (the id of a call's flow).

/// The value of the `Call-ID` (or compact `i`) header of a SIP message.
pub fn sip_call_id(msg: &str) -> Option<&str> {
    sip_header(msg, "call-id", Some("i"))
}

/// The first value of a SIP header (case-insensitive name, optional compact form); lines
/// may end with CRLF or LF alone.
pub fn sip_header<'m>(msg: &'m str, name: &str, compact: Option<&str>) -> Option<&'m str> {
    for line in msg.split('\n').skip(1) {
        let line = line.strip_suffix('\r').unwrap_or(line);
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

/// A SIP message as SIP is written: every line of its head ending with CRLF, a blank
/// line after the head, the body's line ends CRLF too when the head's were bare LF (an SDP
/// is CRLF on the wire), and `Content-Length` (or `l`) true to the body's bytes (added when
/// there is a body without it). Janus ≥ 1.3 built against sofia-sip ≥ 1.13 reports what
/// it sends (`sip-out`) with bare LF line ends, which heplify-server refuses ("no SIP eof
/// found"). Borrowed when the message is already so.
pub fn sip_crlf(msg: &str) -> std::borrow::Cow<'_, str> {
    let (head, body, sep_ok) = match (msg.find("\r\n\r\n"), msg.find("\n\n")) {
        (Some(a), Some(b)) if b + 1 < a => (&msg[..b], &msg[b + 2..], false),
        (Some(a), _) => (&msg[..a], &msg[a + 4..], true),
        (None, Some(b)) => (&msg[..b], &msg[b + 2..], false),
        (None, None) => (msg.trim_end_matches(['\r', '\n']), "", false),
    };
    let bare_lf = |t: &str| {
        t.bytes()
            .enumerate()
            .any(|(i, c)| c == b'\n' && (i == 0 || t.as_bytes()[i - 1] != b'\r'))
    };
    let head_lf = bare_lf(head);
    let declared = content_length(head);
    if sep_ok && !head_lf && declared == Some(body.len()) {
        return std::borrow::Cow::Borrowed(msg);
    }
    if sep_ok && !head_lf && declared.is_none() && body.is_empty() {
        return std::borrow::Cow::Borrowed(msg);
    }
    let body: std::borrow::Cow<'_, str> = if head_lf && bare_lf(body) {
        std::borrow::Cow::Owned(
            body.split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l))
                .collect::<Vec<_>>()
                .join("\r\n"),
        )
    } else {
        std::borrow::Cow::Borrowed(body)
    };
    let mut out = String::with_capacity(msg.len() + 64);
    let mut had_length = false;
    for line in head.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let name = line.split_once(':').map(|(n, _)| n.trim());
        if name.is_some_and(|n| n.eq_ignore_ascii_case("content-length") || n == "l") {
            had_length = true;
            out.push_str("Content-Length: ");
            out.push_str(&body.len().to_string());
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    if !had_length && !body.is_empty() {
        out.push_str("Content-Length: ");
        out.push_str(&body.len().to_string());
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    std::borrow::Cow::Owned(out)
}

/// The `Content-Length` a head declares.
fn content_length(head: &str) -> Option<usize> {
    head.split('\n').skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case("content-length") || n == "l")
            .then(|| v.trim().parse().ok())
            .flatten()
    })
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

    #[test]
    fn bare_lf_messages_become_crlf_with_a_true_content_length() {
        // As Janus 1.4.1 with sofia-sip 1.13 reports a sent INVITE.
        let sdp = "v=0\no=- 1 1 IN IP4 127.0.0.41\ns=-\n";
        let m = format!("INVITE sip:a@127.0.0.42:5070 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.41:49472;branch=z9\nCall-ID: x\nContent-Length: {}\n\n{sdp}", sdp.len());
        let n = sip_crlf(&m);
        let want_body = "v=0\r\no=- 1 1 IN IP4 127.0.0.41\r\ns=-\r\n";
        assert_eq!(
            n,
            format!("INVITE sip:a@127.0.0.42:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.41:49472;branch=z9\r\nCall-ID: x\r\nContent-Length: {}\r\n\r\n{want_body}", want_body.len())
        );
        assert_eq!(
            sip_header(&m, "via", Some("v")),
            Some("SIP/2.0/UDP 127.0.0.41:49472;branch=z9")
        );
        // Without a blank line or a length (a head alone).
        assert_eq!(
            sip_crlf("BYE sip:a@b SIP/2.0\nCall-ID: y"),
            "BYE sip:a@b SIP/2.0\r\nCall-ID: y\r\n\r\n"
        );
        // A CRLF message with a true length is not copied.
        let ok = "SIP/2.0 200 OK\r\nCall-ID: z\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(sip_crlf(ok), std::borrow::Cow::Borrowed(_)));
        // A wrong length is made true.
        assert_eq!(
            sip_crlf("SIP/2.0 200 OK\r\nl: 9\r\n\r\nab"),
            "SIP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nab"
        );
    }
}
