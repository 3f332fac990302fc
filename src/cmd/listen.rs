//! A HEP receiver: `heplink listen` (a debugging aid and capture tool without Homer) and
//! the receiving half of `heplink demo`.
//!
//! Packets from any mix of UDP and TCP listeners are decoded strictly, printed (readable
//! or JSON, as `decode` prints them), optionally written to a pcap (as UDP datagrams from
//! the sender to the listening address) and a JSONL file, and summarised per correlation
//! id: time span, packet count, proto types, the IP:port columns Homer would draw and the
//! participants named in the payloads.
//!
//! Why this file is over 500 lines: the listener's three transports, its UDP drop
//! accounting, its output (`Out`) and the per-flow summary it prints at the end are one
//! command; the summary is `listen`'s own (the flow page reads the JSON lines instead).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use heplink_proto::{decode, next_frame, Mode, Packet};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use crate::capture::pcap_writer::PcapWriter;
use crate::capture::render::{error_json, format_utc, packet_json, packet_line};
use crate::capture::Origin;

/// Arguments of `heplink listen`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListenArgs {
    /// Receive HEP over UDP here (repeatable). Default: 127.0.0.1:9060 when no listener is given.
    #[arg(long, value_name = "ADDR")]
    pub udp: Vec<SocketAddr>,
    /// Receive HEP over TCP here (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub tcp: Vec<SocketAddr>,
    /// Receive HEP over TLS here (repeatable; needs --tls-cert and --tls-key).
    #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
    pub tls: Vec<SocketAddr>,
    /// Server certificate chain (PEM) for --tls.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Server key (PEM) for --tls.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM) on --tls.
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Receive buffer asked for on UDP listeners, bytes (the kernel doubles it; beyond
    /// `net.core.rmem_max` only as root). The summary says how many datagrams the kernel
    /// dropped because it was full.
    #[arg(long, value_name = "BYTES", default_value_t = UDP_RECEIVE_BUFFER)]
    pub udp_buffer: usize,
    /// Write what arrives to this pcap file.
    #[arg(short = 'w', long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Write one JSON object per packet to this file.
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    /// Print JSON instead of readable lines.
    #[arg(long)]
    pub json: bool,
    /// Print nothing per packet: only the flow summary at the end.
    #[arg(long, short)]
    pub quiet: bool,
    /// Do not print the flow summary at exit (it is printed by default).
    #[arg(long)]
    pub no_flows: bool,
    /// Stop after this many packets.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
}

/// What one correlation id looked like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flow {
    /// Packets.
    pub packets: u64,
    /// First and last HEP timestamps (µs).
    pub first_us: u64,
    /// Last HEP timestamp (µs).
    pub last_us: u64,
    /// Proto types seen.
    pub proto_types: BTreeSet<u8>,
    /// The IP:port columns.
    pub endpoints: BTreeSet<String>,
    /// Participants named in payloads (`display (id)`).
    pub participants: BTreeSet<String>,
    /// The verdicts in its payloads (their words), in arrival order; 20 at most.
    pub verdicts: Vec<String>,
}

/// Flows by correlation id, and counts.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Per correlation id.
    pub flows: BTreeMap<String, Flow>,
    /// Packets decoded.
    pub packets: u64,
    /// Packets rejected by the strict decoder.
    pub rejected: u64,
    /// UDP datagrams the kernel dropped because the receive buffer was full (`None`
    /// without UDP listeners).
    pub udp_dropped: Option<u64>,
}

fn dropped_line(d: u64) -> String {
    format!(
        "{d} UDP datagrams dropped by the kernel: the receive buffer was full (the sender \
         bursts faster than this listener reads; pace it or use TCP)"
    )
}

impl Summary {
    /// Adds a decoded packet.
    pub fn add(&mut self, p: &Packet<'_>) {
        self.packets += 1;
        let cid = String::from_utf8_lossy(p.correlation_id.unwrap_or(b"")).into_owned();
        let f = self.flows.entry(cid).or_default();
        f.packets += 1;
        let ts = p.timestamp_micros().unwrap_or(0);
        if f.packets == 1 || ts < f.first_us {
            f.first_us = ts;
        }
        f.last_us = f.last_us.max(ts);
        if let Some(t) = p.proto_type {
            f.proto_types.insert(t.0);
        }
        for (ip, port) in [(p.src_ip, p.src_port), (p.dst_ip, p.dst_port)] {
            if let (Some(ip), Some(port)) = (ip, port) {
                f.endpoints.insert(SocketAddr::new(ip, port).to_string());
            }
        }
        if let Some(payload) = p
            .payload
            .map(crate::map::log_json)
            .filter(|b| b.first() == Some(&b'{'))
        {
            #[derive(serde::Deserialize)]
            struct Facts {
                heplink: Option<Inner>,
                label: Option<String>,
                summary: Option<serde::de::IgnoredAny>,
                room_summary: Option<serde::de::IgnoredAny>,
            }
            #[derive(serde::Deserialize)]
            struct Inner {
                participant: Option<serde_json::Value>,
                display: Option<String>,
            }
            if let Ok(Facts {
                heplink: Some(i),
                label,
                summary,
                room_summary,
            }) = serde_json::from_slice::<Facts>(payload)
            {
                if let (Some(l), true) = (label, summary.is_some() || room_summary.is_some()) {
                    if f.verdicts.len() < 20 {
                        f.verdicts.push(l);
                    }
                }
                if let Some(id) = i.participant {
                    let id = id.to_string().trim_matches('"').to_string();
                    f.participants.insert(match i.display {
                        Some(d) => format!("{d} ({id})"),
                        None => id,
                    });
                }
            }
        }
    }

    /// Prints the summary.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{} packets, {} rejected, {} correlation ids",
            self.packets,
            self.rejected,
            self.flows.len()
        )?;
        match self.udp_dropped {
            Some(0) => writeln!(out, "0 UDP datagrams dropped by the kernel")?,
            Some(d) => writeln!(out, "{}", dropped_line(d))?,
            None => {}
        }
        for (cid, f) in &self.flows {
            let span = (f.last_us.saturating_sub(f.first_us)) as f64 / 1e6;
            let t = |us: u64| format_utc((us / 1_000_000) as u32, (us % 1_000_000) as u32);
            writeln!(
                out,
                "{cid}  {} packets  {} .. {} ({span:.1} s)",
                f.packets,
                t(f.first_us),
                t(f.last_us)
            )?;
            let types: Vec<String> = f
                .proto_types
                .iter()
                .map(|t| heplink_proto::ProtoType(*t).to_string())
                .collect();
            writeln!(out, "    proto types: {}", types.join(", "))?;
            writeln!(
                out,
                "    columns ({}): {}",
                f.endpoints.len(),
                f.endpoints.iter().cloned().collect::<Vec<_>>().join(", ")
            )?;
            if !f.participants.is_empty() {
                writeln!(
                    out,
                    "    participants: {}",
                    f.participants
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
            }
            for v in &f.verdicts {
                writeln!(out, "    {v}")?;
            }
        }
        Ok(())
    }
}

/// A packet as received.
#[derive(Debug)]
pub struct Received {
    /// The bytes.
    pub bytes: Bytes,
    /// The sender.
    pub peer: SocketAddr,
    /// The listening address.
    pub local: SocketAddr,
    /// TCP (else UDP).
    pub tcp: bool,
}

/// Reads back-to-back HEP frames from a stream until it ends or stops being HEP.
async fn read_frames<S: tokio::io::AsyncRead + Unpin>(
    mut s: S,
    peer: SocketAddr,
    local: SocketAddr,
    tx: mpsc::Sender<Received>,
) {
    let mut buf = BytesMut::with_capacity(1 << 16);
    loop {
        match s.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => loop {
                match next_frame(&mut buf) {
                    Ok(Some(f)) => {
                        let r = Received {
                            bytes: f,
                            peer,
                            local,
                            tcp: true,
                        };
                        if tx.send(r).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // As heplify-server does: the stream cannot be resynchronised.
                        tracing::warn!(%peer, error = %e, "Not a HEP stream: closing the connection.");
                        return;
                    }
                }
            },
        }
    }
    tracing::info!(%peer, "HEP sender disconnected.");
}

/// Receive buffer a HEP receiver asks for: 8 MiB (the kernel doubles it for its own
/// bookkeeping). Linux's default is 208 KiB, which a burst of a few hundred packets
/// (one `sendmmsg` of the agent) overflows while the reader is busy.
pub const UDP_RECEIVE_BUFFER: usize = 8 << 20;

/// Binds a UDP socket for receiving HEP with a large receive buffer: `SO_RCVBUFFORCE`
/// where allowed (root or `CAP_NET_ADMIN`, past `net.core.rmem_max`), else `SO_RCVBUF`
/// (capped by `rmem_max`). Also turns on `SO_RXQ_OVFL`, so that `recvmsg` tells how
/// many datagrams the kernel dropped because the buffer was full. Returns the socket (in
/// blocking mode) and the buffer size the kernel granted.
pub fn udp_receive_socket(addr: SocketAddr) -> std::io::Result<(std::net::UdpSocket, usize)> {
    udp_receive_socket_sized(addr, UDP_RECEIVE_BUFFER)
}

/// As [`udp_receive_socket`], asking for `want` bytes of receive buffer.
pub fn udp_receive_socket_sized(
    addr: SocketAddr,
    want: usize,
) -> std::io::Result<(std::net::UdpSocket, usize)> {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    let s = std::net::UdpSocket::bind(addr)?;
    if setsockopt(&s, sockopt::RcvBufForce, &want).is_err() {
        // Not privileged: take what rmem_max allows.
        let _ = setsockopt(&s, sockopt::RcvBuf, &want);
    }
    let _ = setsockopt(&s, sockopt::RxqOvfl, &1);
    let got = getsockopt(&s, sockopt::RcvBuf).unwrap_or(0);
    Ok((s, got))
}

/// One datagram from a socket set up by [`udp_receive_socket`]: its length, sender and
/// the kernel's count of datagrams dropped so far because the buffer was full
/// (`SO_RXQ_OVFL`; it comes with a datagram once the count is above zero).
fn recv_counting_drops(
    s: &UdpSocket,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr, Option<u64>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let mut cmsg = nix::cmsg_space!(u32);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg =
        recvmsg::<SockaddrStorage>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
            .map_err(std::io::Error::from)?;
    let mut dropped = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::RxqOvfl(n) = c {
                dropped = Some(u64::from(n));
            }
        }
    }
    let peer = msg
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::V4((*v4).into()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into())))
        })
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    Ok((msg.bytes, peer, dropped))
}

/// The kernel's drop count of the UDP socket bound to `local` now, from its
/// `/proc/net/udp{,6}` line (the `drops` column, the counter `SO_RXQ_OVFL` reports). The
/// count that comes with a datagram misses drops after the last datagram read: this one
/// does not.
pub fn udp_drops_now(local: SocketAddr) -> Option<u64> {
    let (file, want) = match local {
        SocketAddr::V4(a) => (
            "/proc/net/udp",
            format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(a.ip().octets()),
                a.port()
            ),
        ),
        SocketAddr::V6(a) => {
            let words: String = a
                .ip()
                .octets()
                .chunks(4)
                .map(|w| format!("{:08X}", u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
                .collect();
            ("/proc/net/udp6", format!("{words}:{:04X}", a.port()))
        }
    };
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .skip(1)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(1) == Some(&want.as_str()) {
                f.last()?.parse().ok()
            } else {
                None
            }
        })
}

/// The listeners' channel of packets, their bound UDP, TCP and TLS addresses, and the
/// kernel's count of UDP datagrams dropped because a receive buffer was full.
pub type Bound = (
    mpsc::Receiver<Received>,
    Vec<SocketAddr>,
    Vec<SocketAddr>,
    Vec<SocketAddr>,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
);

/// Binds the listeners (TLS ones with `tls`); packets go to the returned channel.
///
/// Over 80 lines: one block per transport (UDP, TCP, TLS), each bind, its reader task
/// and its log; they share the channel and the drop counter.
pub async fn bind(
    udp: &[SocketAddr],
    tcp: &[SocketAddr],
    tls: &[SocketAddr],
    tls_cfg: Option<std::sync::Arc<rustls::ServerConfig>>,
    udp_buffer: usize,
) -> std::io::Result<Bound> {
    let drops = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (tx, rx) = mpsc::channel(65_536);
    let mut u_bound = Vec::new();
    for a in udp {
        let (s, granted) = udp_receive_socket_sized(*a, udp_buffer)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on UDP {a}: {e}")))?;
        s.set_nonblocking(true)?;
        let s = UdpSocket::from_std(s)?;
        let local = s.local_addr()?;
        tracing::debug!(%local, receive_buffer = granted, "UDP receive buffer.");
        u_bound.push(local);
        let tx = tx.clone();
        let drops = drops.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, peer, dropped)) = s
                .async_io(tokio::io::Interest::READABLE, || {
                    recv_counting_drops(&s, &mut buf)
                })
                .await
            {
                if let Some(d) = dropped {
                    drops.fetch_max(d, std::sync::atomic::Ordering::Relaxed);
                }
                let r = Received {
                    bytes: Bytes::copy_from_slice(&buf[..n]),
                    peer,
                    local,
                    tcp: false,
                };
                if tx.send(r).await.is_err() {
                    return;
                }
            }
        });
    }
    let mut t_bound = Vec::new();
    let mut s_bound = Vec::new();
    let acceptor = tls_cfg.map(tokio_rustls::TlsAcceptor::from);
    for (a, secure) in tcp
        .iter()
        .map(|a| (a, false))
        .chain(tls.iter().map(|a| (a, true)))
    {
        let l = TcpListener::bind(a).await.map_err(|e| {
            let what = if secure { "TLS" } else { "TCP" };
            std::io::Error::new(e.kind(), format!("cannot listen on {what} {a}: {e}"))
        })?;
        let local = l.local_addr()?;
        if secure {
            s_bound.push(local);
        } else {
            t_bound.push(local);
        }
        let tx = tx.clone();
        let acceptor = if secure { acceptor.clone() } else { None };
        tokio::spawn(async move {
            while let Ok((s, peer)) = l.accept().await {
                let tx = tx.clone();
                let acceptor = acceptor.clone();
                tracing::info!(%peer, tls = acceptor.is_some(), "HEP sender connected.");
                tokio::spawn(async move {
                    match acceptor {
                        None => read_frames(s, peer, local, tx).await,
                        Some(acc) => match acc.accept(s).await {
                            Ok(t) => read_frames(t, peer, local, tx).await,
                            Err(e) => tracing::warn!(%peer, error = %e, "TLS handshake failed."),
                        },
                    }
                });
            }
        });
    }
    Ok((rx, u_bound, t_bound, s_bound, drops))
}

/// Where `listen` writes what it receives: the pcap, the JSON lines file, standard
/// output; the summary it keeps; the index of the next packet.
struct Out {
    pcap: Option<PcapWriter<BufWriter<File>>>,
    jsonl: Option<std::io::LineWriter<File>>,
    summary: Summary,
    index: u64,
}

impl Out {
    fn open(args: &ListenArgs) -> anyhow::Result<Out> {
        Ok(Out {
            pcap: match &args.write {
                Some(p) => Some(PcapWriter::new(BufWriter::new(File::create(p)?))?),
                None => None,
            },
            // Line by line: the file is readable while listen runs (tail -f).
            jsonl: match &args.jsonl {
                Some(p) => Some(std::io::LineWriter::new(File::create(p)?)),
                None => None,
            },
            summary: Summary::default(),
            index: 0,
        })
    }

    /// One packet received: into the pcap, decoded (strictly) into the summary, its line
    /// and JSON written.
    fn take(&mut self, args: &ListenArgs, r: &Received) -> anyhow::Result<()> {
        let index = self.index;
        if let Some(w) = self.pcap.as_mut() {
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            w.udp(ts, r.peer, r.local, &r.bytes)?;
        }
        let (frame, src, dst) = (index + 1, r.peer, r.local);
        let origin = match r.tcp {
            true => Origin::Tcp { frame, src, dst },
            false => Origin::Udp { frame, src, dst },
        };
        let (line, json) = match decode(&r.bytes, Mode::Strict) {
            Ok(p) => {
                self.summary.add(&p);
                (
                    packet_line(index, &p),
                    packet_json(index, &p, Some(&origin)),
                )
            }
            Err(e) => {
                self.summary.rejected += 1;
                let json = error_json(index, &e, Some(&origin));
                (format!("#{index} rejected: {e}"), json)
            }
        };
        if let Some(w) = self.jsonl.as_mut() {
            writeln!(w, "{json}")?;
        }
        if !args.quiet {
            let mut o = std::io::stdout().lock();
            match args.json {
                true => writeln!(o, "{json}")?,
                false => writeln!(o, "{line}")?,
            }
        }
        self.index += 1;
        Ok(())
    }

    /// Flushes the files; the summary.
    fn finish(self) -> anyhow::Result<Summary> {
        if let Some(w) = self.pcap {
            w.finish()?.flush()?;
        }
        if let Some(mut w) = self.jsonl {
            w.flush()?;
        }
        Ok(self.summary)
    }
}

/// Runs `heplink listen` until a signal, --count or --duration.
pub fn main(args: &ListenArgs) -> anyhow::Result<Summary> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let udp = if args.udp.is_empty() && args.tcp.is_empty() && args.tls.is_empty() { vec!["127.0.0.1:9060".parse()?] } else { args.udp.clone() };
        let tls_cfg = match (&args.tls_cert, &args.tls_key) {
            (Some(c), Some(k)) => Some(crate::tls::server(c, k, args.tls_client_ca.as_deref())?),
            _ => None,
        };
        let (mut rx, u, t, l, drops) = bind(&udp, &args.tcp, &args.tls, tls_cfg, args.udp_buffer).await?;
        for a in &l {
            tracing::info!(listen = %a, "Listening for HEP over TLS.");
        }
        for a in &u {
            tracing::info!(listen = %a, "Listening for HEP over UDP.");
        }
        for a in &t {
            tracing::info!(listen = %a, "Listening for HEP over TCP.");
        }
        let mut out = Out::open(args)?;
        let deadline = args.duration.map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d));
        let signals = crate::agent::signals();
        tokio::pin!(signals);
        loop {
            let r = tokio::select! {
                r = rx.recv() => match r { Some(r) => r, None => break },
                _ = &mut signals => break,
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
            };
            out.take(args, &r)?;
            if args.count.is_some_and(|c| out.index >= c) {
                break;
            }
        }
        let mut summary = out.finish()?;
        let stdout = std::io::stdout();
        if !u.is_empty() {
            let seen = drops.load(std::sync::atomic::Ordering::Relaxed);
            let now: u64 = u.iter().filter_map(|a| udp_drops_now(*a)).sum();
            summary.udp_dropped = Some(seen.max(now));
        }
        if !args.no_flows {
            summary.print(&mut stdout.lock())?;
        } else if let Some(d) = summary.udp_dropped.filter(|d| *d > 0) {
            writeln!(stdout.lock(), "{}", dropped_line(d))?;
        }
        Ok(summary)
    })
}
