//! The addresses in Janus's ICE events: a candidate line's, and a selected pair's.

use std::net::{IpAddr, SocketAddr};

/// The address of an ICE candidate line: `foundation component transport priority ip port typ …`
/// (with or without the `candidate:` prefix).
pub fn candidate_addr(c: &str) -> Option<SocketAddr> {
    let mut f = c.trim().split_ascii_whitespace();
    let _foundation = f.next()?;
    let _component = f.next()?;
    let _transport = f.next()?;
    let _priority = f.next()?;
    let ip: IpAddr = f.next()?.parse().ok()?;
    let port: u16 = f.next()?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// Local and remote addresses of `"<lip>:<lport> [host,udp] <-> <rip>:<rport> [srflx,udp]"`.
pub fn selected_pair(s: &str) -> Option<(SocketAddr, SocketAddr)> {
    let (l, r) = s.split_once("<->")?;
    let addr = |side: &str| -> Option<SocketAddr> {
        let a = side.split_ascii_whitespace().next()?;
        let (ip, port) = a.rsplit_once(':')?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
    };
    Some((addr(l)?, addr(r)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_and_pairs() {
        assert_eq!(
            candidate_addr("1 1 udp 2015363327 127.0.0.2 20748 typ host"),
            Some("127.0.0.2:20748".parse().unwrap())
        );
        assert_eq!(
            candidate_addr("candidate:842163049 1 udp 1677729535 203.0.113.7 51432 typ srflx raddr 0.0.0.0 rport 0 generation 0"),
            Some("203.0.113.7:51432".parse().unwrap())
        );
        assert_eq!(
            candidate_addr("remote1 1 udp 1862270975 127.0.0.6 50628 typ prflx raddr 127.0.0.6 rport 50628\r\n"),
            Some("127.0.0.6:50628".parse().unwrap())
        );
        assert_eq!(candidate_addr("garbage"), None);
        assert_eq!(
            selected_pair("127.0.0.2:20126 [host,udp] <-> 127.0.0.5:55529 [host,udp]"),
            Some((
                "127.0.0.2:20126".parse().unwrap(),
                "127.0.0.5:55529".parse().unwrap()
            ))
        );
        assert_eq!(
            selected_pair("[::1]:1 [host,udp] <-> [2001:db8::5]:2 [srflx,udp]"),
            Some((
                "[::1]:1".parse().unwrap(),
                "[2001:db8::5]:2".parse().unwrap()
            ))
        );
    }
}
