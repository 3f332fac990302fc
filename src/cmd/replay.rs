//! `heplink replay`: sends captures to a collector.
//!
//! - Janus JSONL captures (one event-handler body per line) go through correlator, mapper
//!   and encoder exactly as `serve` would send them (event time is the clock).
//! - HEP captures (pcap, pcapng, raw stream) are sent packet by packet, as they are.
//! - Time stamps are moved so the capture starts now, keeping the spacing (heplify-server
//!   keeps partitions only around the current day); `--keep-time` sends the originals.
//! - Pacing: the original timing, `--speed X`, `--rate N` packets/s or `--fast`; `--loop N`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use heplink_proto::{decode, ChunkType, Mode, Version};

use crate::capture::load::{load, Timed};
use crate::metrics::CollectorMetrics;
use crate::output::{self, CollectorUrl, WhenFull};

/// Arguments of `heplink replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Captures: Janus JSONL, or HEP in pcap, pcapng or a raw stream.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The collector: `udp://`, `tcp://` or `tls://HOST:PORT`.
    #[arg(long, value_name = "URL")]
    pub to: CollectorUrl,
    /// Play faster (2 = twice as fast) or slower than the original timing.
    #[arg(long, conflicts_with_all = ["rate", "fast"])]
    pub speed: Option<f64>,
    /// A fixed rate, packets per second.
    #[arg(long, conflicts_with = "fast")]
    pub rate: Option<f64>,
    /// As fast as possible.
    #[arg(long)]
    pub fast: bool,
    /// UDP collectors: packets per second at most, also with --fast (0: unpaced). The
    /// default lets a collector that keeps the kernel's default buffer keep up.
    #[arg(long, value_name = "PACKETS", default_value_t = crate::config::DEFAULT_UDP_RATE)]
    pub udp_rate: u32,
    /// Play the captures this many times.
    #[arg(long = "loop", default_value_t = 1)]
    pub loops: u32,
    /// Send the original time stamps instead of moving them to now.
    #[arg(long)]
    pub keep_time: bool,
    /// TLS settings for a `tls://` collector.
    #[command(flatten)]
    pub tls: crate::tls::TlsClientArgs,
    /// How long to wait at the end for the collector to take the last packets, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub drain_timeout: f64,
}

/// The packet with its time stamp replaced (HEPv3 chunks 0x09/0x0a; HEPv2 time header).
/// Everything else stays byte for byte; packets without a time stamp are unchanged.
pub fn restamp(packet: &[u8], ts_us: u64) -> Bytes {
    let Ok(p) = decode(packet, Mode::Lenient) else {
        return Bytes::copy_from_slice(packet);
    };
    let sec = u32::try_from(ts_us / 1_000_000).unwrap_or(u32::MAX);
    let usec = (ts_us % 1_000_000) as u32;
    let mut out = packet.to_vec();
    match p.version {
        Version::V3 => {
            let mut off = 6;
            for c in p.chunks() {
                if c.vendor.0 == 0 && c.body.len() == 4 {
                    let v = match c.kind {
                        ChunkType::TS_SEC => Some(sec),
                        ChunkType::TS_USEC => Some(usec),
                        _ => None,
                    };
                    if let Some(v) = v {
                        out[off + 6..off + 10].copy_from_slice(&v.to_be_bytes());
                    }
                }
                off += c.wire_len();
            }
        }
        Version::V2 => {
            let addr = if p.ip_family == Some(10) { 32 } else { 8 };
            let at = 8 + addr;
            out[at..at + 4].copy_from_slice(&sec.to_le_bytes());
            out[at + 4..at + 8].copy_from_slice(&usec.to_le_bytes());
        }
        Version::V1 => {}
    }
    Bytes::from(out)
}

/// The packet with the hour in its correlation id (`…:core:2026-11-24T03`,
/// `…:transport:http:…`, a session's fallback id) moved by `shift_us`, as its time was:
/// the rows a replay stores today are found under today's ids. The id keeps its length,
/// so the hour is rewritten in place, in the 0x11 chunk and wherever the payload names the
/// same id; every other byte stays. Ids without an hour are unchanged.
pub fn restamp_ids(packet: &[u8], shift_us: i64) -> Bytes {
    let Ok(p) = decode(packet, Mode::Lenient) else {
        return Bytes::copy_from_slice(packet);
    };
    let Some(cid) = p.correlation_id else {
        return Bytes::copy_from_slice(packet);
    };
    let Some(hours) = id_hour(cid) else {
        return Bytes::copy_from_slice(packet);
    };
    let moved = hours * 3_600_000_000 + shift_us;
    if moved < 0 {
        return Bytes::copy_from_slice(packet);
    }
    let label = crate::correlate::hour_label(moved as u64 / 3_600_000_000);
    let old = cid.to_vec();
    let mut new = old.clone();
    let at = new.len() - label.len();
    new[at..].copy_from_slice(label.as_bytes());
    let mut out = packet.to_vec();
    let mut from = 0;
    while let Some(i) = memchr::memmem::find(&out[from..], &old) {
        let i = from + i;
        out[i..i + new.len()].copy_from_slice(&new);
        from = i + new.len();
    }
    Bytes::from(out)
}

/// The hour an id ends with (`:YYYY-MM-DDTHH`), in hours since the epoch.
fn id_hour(cid: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(cid).ok()?;
    let tail = s.get(s.len().checked_sub(14)?..)?;
    let b = tail.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = tail.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b[0] != b':' || b[5] != b'-' || b[8] != b'-' || b[11] != b'T' {
        return None;
    }
    let (y, m, d, h) = (
        digits(1..5)?,
        digits(6..8)?,
        digits(9..11)?,
        digits(12..14)?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 {
        return None;
    }
    Some(crate::time::days_from_civil(y, m as u32, d as u32) * 24 + h)
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Packets queued for sending.
    pub queued: u64,
    /// Packets the sender wrote.
    pub sent: u64,
}

/// Runs the replay.
pub fn main(args: &ReplayArgs) -> anyhow::Result<ReplaySummary> {
    let mut packets = Vec::new();
    for f in &args.files {
        packets.extend(load(f)?);
    }
    if packets.is_empty() {
        anyhow::bail!("no packets in the captures");
    }
    let first_ts = packets
        .iter()
        .map(|p| p.ts)
        .filter(|t| *t > 0)
        .min()
        .unwrap_or(0);
    let last_ts = packets.iter().map(|p| p.ts).max().unwrap_or(0);
    let span = last_ts.saturating_sub(first_ts).max(1);
    let total = packets.len() as u64 * u64::from(args.loops);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let m = Arc::new(CollectorMetrics {
            url: args.to.to_string(),
            ..Default::default()
        });
        let (queue, task) = output::spawn(
            args.to.clone(),
            output::SendOptions {
                capacity: 4096,
                max_bytes: crate::output::DEFAULT_QUEUE_BYTES,
                policy: WhenFull::Block,
                mtu: 65_507,
                fin_confirms: true,
                failback: std::time::Duration::from_secs(30),
                udp_rate: args.udp_rate,
                udp_burst: crate::config::DEFAULT_UDP_BURST,
                stall: std::time::Duration::from_secs(10),
                // The agent's default (`output.read_grace_ms`), not a shorter one of its own.
                read_grace: std::time::Duration::from_millis(
                    crate::config::Output::new(args.to.clone()).read_grace_ms,
                ),
            },
            &args.tls.settings(),
            None,
            m.clone(),
        )?;
        let start = Instant::now();
        let replay = Replay {
            args,
            first_ts,
            span,
            total,
            start,
        };
        replay.push_all(&packets, &queue).await?;
        drop(queue);
        let drained = tokio::time::timeout(Duration::from_secs_f64(args.drain_timeout), task).await;
        replay.summary(&m, drained.is_ok())
    })
}

/// One replay under way: its settings, the captures' time origin and span, the packets
/// it sends in all, when it started.
struct Replay<'a> {
    args: &'a ReplayArgs,
    first_ts: u64,
    span: u64,
    total: u64,
    start: Instant,
}

impl Replay<'_> {
    /// When the `n`th packet (of loop `l`, `offset` µs into its capture) is due, from the
    /// start; `None` with `--fast`.
    fn due(&self, n: u64, l: u64, offset: u64) -> Option<Duration> {
        let args = self.args;
        if args.fast {
            None
        } else if let Some(rate) = args.rate {
            Some(Duration::from_secs_f64(n as f64 / rate))
        } else {
            let speed = args.speed.unwrap_or(1.0);
            let offset = l * self.span + offset;
            Some(Duration::from_secs_f64(offset as f64 / 1e6 / speed))
        }
    }

    /// Every packet, every loop, each when due and restamped (unless `--keep-time`), into
    /// the sender's queue; progress on a terminal.
    async fn push_all(&self, packets: &[Timed], queue: &output::Queue) -> anyhow::Result<()> {
        let (args, first_ts, span, total) = (self.args, self.first_ts, self.span, self.total);
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_micros() as u64;
        let tty = std::io::stderr().is_terminal();
        let mut last_progress = Instant::now();
        let mut n = 0u64;
        for l in 0..u64::from(args.loops) {
            for p in packets {
                if let Some(d) = self.due(n, l, p.ts.saturating_sub(first_ts)) {
                    let elapsed = self.start.elapsed();
                    if d > elapsed {
                        tokio::time::sleep(d - elapsed).await;
                    }
                }
                let bytes = if args.keep_time || p.ts == 0 {
                    p.bytes.clone()
                } else {
                    let ts = now_us + l * span + (p.ts - first_ts);
                    restamp_ids(&restamp(&p.bytes, ts), ts as i64 - p.ts as i64)
                };
                queue.push(bytes).await;
                n += 1;
                if tty && last_progress.elapsed() > Duration::from_millis(200) {
                    last_progress = Instant::now();
                    let rate = n as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
                    let eta = (total - n) as f64 / rate.max(1e-9);
                    eprint!("\r{n}/{total} packets  {:.0}/s  ETA {:.0} s   ", rate, eta);
                }
            }
        }
        if tty {
            eprint!("\r");
        }
        Ok(())
    }

    /// The line on standard error, and an error when packets could not be sent (the
    /// sender did not drain in time, or gave up on some).
    fn summary(&self, m: &CollectorMetrics, drained: bool) -> anyhow::Result<ReplaySummary> {
        let (args, total) = (self.args, self.total);
        let sent = m.packets.load(Relaxed);
        let secs = self.start.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        writeln!(
            err,
            "replayed {sent}/{total} packets to {} in {secs:.2} s ({:.0} packets/s)",
            args.to,
            sent as f64 / secs.max(1e-9)
        )?;
        if !drained || sent < total {
            let why = m
                .error()
                .map_or_else(String::new, |e| format!(" (last error: {e})"));
            anyhow::bail!(
                "{} packets could not be sent to {}{why}",
                total - sent.min(total),
                args.to
            );
        }
        Ok(ReplaySummary {
            queued: total,
            sent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heplink_proto::{PacketBuilder, ProtoType};

    #[test]
    fn restamped_ids_follow_the_time() {
        let b = PacketBuilder::new(
            ProtoType::LOG,
            "core started\n{\"heplink\":{\"cid\":\"j:core:2026-11-24T03\"}}",
        )
        .correlation_id("j:core:2026-11-24T03")
        .timestamp_micros(1_000_000)
        .to_bytes()
        .unwrap();
        // Thirteen days and two hours later.
        let r = restamp_ids(&b, (13 * 24 + 2) * 3_600_000_000);
        let p = decode(&r, Mode::Strict).unwrap();
        assert_eq!(p.correlation_id, Some(&b"j:core:2026-12-07T05"[..]));
        assert_eq!(
            p.payload,
            Some(&b"core started\n{\"heplink\":{\"cid\":\"j:core:2026-12-07T05\"}}"[..])
        );
        assert_eq!(r.len(), b.len());
        // A room's id has no hour: unchanged.
        let room = PacketBuilder::new(ProtoType::LOG, "x")
            .correlation_id("j:videoroom:1234")
            .to_bytes()
            .unwrap();
        assert_eq!(restamp_ids(&room, 3_600_000_000), room);
        assert_eq!(id_hour(b"j:core:2026-13-01T00"), None);
        assert_eq!(id_hour(b"x:2026-01-01T00"), Some(20454 * 24));
    }

    #[test]
    fn restamp_changes_only_the_time() {
        let b = PacketBuilder::new(ProtoType::LOG, "x")
            .correlation_id("c")
            .timestamp_micros(1_000_000_123_456)
            .to_bytes()
            .unwrap();
        let r = restamp(&b, 1_795_000_000_654_321);
        let p = decode(&r, Mode::Strict).unwrap();
        assert_eq!(p.timestamp_micros(), Some(1_795_000_000_654_321));
        let q = decode(&b, Mode::Strict).unwrap();
        assert_eq!((p.payload, p.correlation_id), (q.payload, q.correlation_id));
        assert_eq!(r.len(), b.len());
        let diff = r.iter().zip(b.iter()).filter(|(a, b)| a != b).count();
        assert!(diff <= 8);
    }
}
