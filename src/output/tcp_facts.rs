//! `TCP_INFO` of a connection: what the collector's TCP acknowledged and the window it
//! advertises, the facts [`crate::output::delivery`] decides with.
//!
//! Why `unsafe` here, and only here: `getsockopt(TCP_INFO)` fills a C struct, and neither
//! `libc`'s `tcp_info` for glibc (it stops before `tcpi_snd_wnd`) nor `nix` nor `socket2`
//! reads the two fields needed. The struct below is Linux's `struct tcp_info` up to
//! `tcpi_snd_wnd` (`linux/tcp.h`, since Linux 5.4); the kernel writes at most the length
//! passed and says how much it wrote, so an older kernel leaves the field unset and is
//! recognised by that length.
//!
//! Linux only: other systems' `TCP_INFO`, where there is one, has another layout, so
//! there [`read`] gives no facts and the delivery core falls back to its time rule
//! (see [`crate::output::delivery`]).

use super::delivery::SocketFacts;

#[cfg(target_os = "linux")]
pub use linux::read;

/// No socket facts outside Linux: the delivery core confirms by time.
#[cfg(not(target_os = "linux"))]
pub fn read<S: ?Sized>(_socket: &S) -> Option<SocketFacts> {
    None
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod linux {
    use super::SocketFacts;

    /// Linux's `struct tcp_info` (`linux/tcp.h`) through `tcpi_snd_wnd`.
    #[repr(C)]
    #[derive(Default)]
    pub(super) struct TcpInfo {
        state: u8,
        ca_state: u8,
        retransmits: u8,
        probes: u8,
        backoff: u8,
        options: u8,
        wscale: u8,
        flags: u8,
        u32s_a: [u32; 24], // tcpi_rto .. tcpi_total_retrans
        pacing_rate: u64,
        max_pacing_rate: u64,
        bytes_acked: u64,
        bytes_received: u64,
        u32s_b: [u32; 6], // tcpi_segs_out .. tcpi_data_segs_out
        delivery_rate: u64,
        busy_time: u64,
        rwnd_limited: u64,
        sndbuf_limited: u64,
        delivered: u32,
        delivered_ce: u32,
        bytes_sent: u64,
        bytes_retrans: u64,
        dsack_dups: u32,
        reord_seen: u32,
        rcv_ooopack: u32,
        snd_wnd: u32,
    }

    /// `TCP_ESTABLISHED`, `TCP_FIN_WAIT1`, `TCP_FIN_WAIT2`, `TCP_CLOSE_WAIT`: states in which
    /// the counters describe a live exchange.
    fn live(state: u8) -> bool {
        matches!(state, 1 | 4 | 5 | 8)
    }

    /// The socket's facts, or `None` when the kernel gives none (not Linux ≥ 5.4, not a live
    /// connection, or the call failed).
    pub fn read(fd: &impl std::os::fd::AsRawFd) -> Option<SocketFacts> {
        let mut info = TcpInfo::default();
        let mut len = std::mem::size_of::<TcpInfo>() as libc::socklen_t;
        // SAFETY: `info` is a plain-data `repr(C)` struct of `len` bytes that lives through the
        // call; the kernel writes at most `len` bytes into it and stores the count in `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut TcpInfo).cast(),
                &mut len,
            )
        };
        if rc != 0 || (len as usize) < std::mem::size_of::<TcpInfo>() || !live(info.state) {
            return None;
        }
        Some(SocketFacts {
            // The count includes the SYN (and, at the end, the FIN): data bytes are one less.
            acked: info.bytes_acked.saturating_sub(1),
            window: info.snd_wnd,
        })
    }
}

#[cfg(all(test, not(target_os = "linux")))]
mod tests {
    #[test]
    fn no_facts_outside_linux() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert!(super::read(&c).is_none());
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::linux::*;

    #[test]
    fn the_layout_is_linux_s() {
        // offsetof(struct tcp_info, tcpi_bytes_acked) = 120, tcpi_snd_wnd = 228, size 232.
        assert_eq!(std::mem::size_of::<TcpInfo>(), 232);
    }

    #[test]
    fn a_loopback_connection_reports_what_its_peer_acknowledged_and_its_window() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let before = read(&c).expect("facts on Linux");
        assert_eq!(before.acked, 0);
        assert!(before.window > 0);
        c.write_all(&[7u8; 10_000]).unwrap();
        let mut got = vec![0u8; 10_000];
        s.read_exact(&mut got).unwrap();
        let mut after = read(&c).unwrap();
        for _ in 0..100 {
            if after.acked >= 10_000 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            after = read(&c).unwrap();
        }
        assert_eq!(after.acked, 10_000);
        drop(s);
        drop(l);
    }
}
