//! The disk spool of a TCP/TLS collector: every packet taken from the collector's queue is
//! appended to disk first, and shipped from there. What the collector has not confirmed
//! survives collector outages and agent restarts (SIGKILL included) and is sent, in
//! order, when the collector is back or the agent starts again.
//!
//! Layout: `<dir>/<collector>/NNNNNNNNNNNN.hep` segments of back-to-back HEP packets (the
//! HEP length frames them), and `committed`: `"<segment> <offset>"` of the first byte not
//! yet confirmed, replaced atomically. A cap in bytes drops the oldest segments (counted).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use heplink_proto::Frames;

/// Largest segment before a new one starts (smaller for small caps: an eighth of the cap,
/// so that dropping the oldest segment frees room without dropping much more than needed).
const SEGMENT_BYTES: u64 = 16 << 20;

/// The segment size for a cap.
fn segment_bytes(max_bytes: u64) -> u64 {
    (max_bytes / 8).clamp(4 << 10, SEGMENT_BYTES)
}

/// A position in the spool: segment number and byte offset in it.
pub type Pos = (u64, u64);

/// One collector's spool.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// Segment numbers present, oldest first, and their sizes.
    segments: Vec<(u64, u64)>,
    head: Option<File>,
    committed: Pos,
    cursor: Pos,
    /// Packets dropped by the cap.
    pub dropped: u64,
}

fn seg_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:012}.hep"))
}

/// A directory name for a collector URL.
pub fn dir_name(url: &str) -> String {
    url.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, resuming what a previous run left.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut segments = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(n) = name
                .strip_suffix(".hep")
                .and_then(|n| n.parse::<u64>().ok())
            {
                segments.push((n, e.metadata()?.len()));
            }
        }
        segments.sort_unstable();
        let committed = fs::read_to_string(dir.join("committed"))
            .ok()
            .and_then(|t| {
                let mut it = t.split_whitespace().map(|v| v.parse::<u64>().ok());
                Some((it.next()??, it.next()??))
            })
            .unwrap_or_else(|| segments.first().map_or((0, 0), |s| (s.0, 0)));
        let mut s = Spool {
            dir: dir.into(),
            max_bytes,
            segments,
            head: None,
            committed,
            cursor: committed,
            dropped: 0,
        };
        // A crash can leave a torn packet at the end of the last segment: cut it off.
        if let Some(&(n, len)) = s.segments.last() {
            let data = fs::read(seg_path(dir, n))?;
            let mut frames = Frames::new(&data);
            let whole: usize = frames.by_ref().map(<[u8]>::len).sum();
            if (whole as u64) < len {
                OpenOptions::new()
                    .write(true)
                    .open(seg_path(dir, n))?
                    .set_len(whole as u64)?;
                s.segments.last_mut().expect("present").1 = whole as u64;
            }
        }
        Ok(s)
    }

    /// Bytes written and not yet confirmed.
    pub fn pending_bytes(&self) -> u64 {
        self.segments
            .iter()
            .filter(|(n, _)| *n >= self.committed.0)
            .map(|(n, len)| {
                if *n == self.committed.0 {
                    len.saturating_sub(self.committed.1)
                } else {
                    *len
                }
            })
            .sum()
    }

    /// Whether there is something to read at the cursor.
    pub fn has_unread(&self) -> bool {
        self.segments
            .iter()
            .any(|(n, len)| *n > self.cursor.0 || (*n == self.cursor.0 && *len > self.cursor.1))
    }

    /// The cap on the spool's bytes on disk.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Appends packets (buffered by the OS; [`Spool::sync`] makes them durable). The
    /// cap holds for the total: room is made first by dropping the oldest segments
    /// (counted in [`Spool::dropped`]); of a batch larger than the whole cap, the oldest
    /// packets are dropped too, so that the newest are always what is kept.
    pub fn append(&mut self, packets: &[Bytes]) -> io::Result<()> {
        let mut incoming: u64 = packets.iter().map(|p| p.len() as u64).sum();
        let mut packets = packets;
        if incoming > self.max_bytes {
            let before = packets.len();
            while incoming > self.max_bytes {
                incoming -= packets[0].len() as u64;
                packets = &packets[1..];
            }
            self.dropped += (before - packets.len()) as u64;
        }
        if packets.is_empty() {
            return Ok(());
        }
        self.make_room(incoming)?;
        let need_new = match self.segments.last() {
            None => true,
            Some((_, len)) => *len >= segment_bytes(self.max_bytes),
        };
        if need_new || self.head.is_none() {
            if need_new {
                if let Some(h) = self.head.take() {
                    h.sync_data()?;
                }
                let n = self.segments.last().map_or(self.committed.0, |s| s.0 + 1);
                self.segments.push((n, 0));
            }
            let n = self.segments.last().expect("present").0;
            self.head = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(seg_path(&self.dir, n))?,
            );
        }
        let mut buf = BytesMut::with_capacity(packets.iter().map(|p| p.len()).sum());
        for p in packets {
            buf.extend_from_slice(p);
        }
        self.head.as_mut().expect("open").write_all(&buf)?;
        self.segments.last_mut().expect("present").1 += buf.len() as u64;
        Ok(())
    }

    /// Bytes on disk in this spool's segments (confirmed ones not yet removed included).
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.1).sum()
    }

    /// Makes what was appended durable.
    pub fn sync(&mut self) -> io::Result<()> {
        match &self.head {
            Some(h) => h.sync_data(),
            None => Ok(()),
        }
    }

    /// Drops the oldest segments until `incoming` more bytes fit under the cap. When the
    /// only segment is the one being written, a new one is started so that it can go.
    fn make_room(&mut self, incoming: u64) -> io::Result<()> {
        let mut dropped_segments = 0;
        let mut dropped_packets = 0;
        while self.disk_bytes() + incoming > self.max_bytes && !self.segments.is_empty() {
            if self.segments.len() == 1 {
                if let Some(h) = self.head.take() {
                    h.sync_data()?;
                }
                let n = self.segments[0].0 + 1;
                self.segments.push((n, 0));
            }
            // Drop the oldest segment, counting its packets not yet confirmed.
            let (n, _) = self.segments.remove(0);
            let data = fs::read(seg_path(&self.dir, n)).unwrap_or_default();
            let skip = match n.cmp(&self.committed.0) {
                std::cmp::Ordering::Less => data.len(),
                std::cmp::Ordering::Equal => self.committed.1 as usize,
                std::cmp::Ordering::Greater => 0,
            };
            let lost = Frames::new(&data[skip.min(data.len())..]).count() as u64;
            self.dropped += lost;
            dropped_packets += lost;
            dropped_segments += 1;
            let _ = fs::remove_file(seg_path(&self.dir, n));
            let next = (self.segments[0].0, 0);
            if self.committed.0 <= n {
                self.committed = next;
                self.persist_commit()?;
            }
            if self.cursor.0 <= n {
                self.cursor = next;
            }
        }
        tracing::debug!(dir = %self.dir.display(), segments = dropped_segments, packets = dropped_packets, "Spool segments dropped to stay under the cap.");
        Ok(())
    }

    /// Reads whole packets from the cursor, up to about `max` bytes; returns them (back to
    /// back), their count and the position after them.
    pub fn read_batch(&mut self, max: usize) -> io::Result<Option<(Bytes, u64, Pos)>> {
        while let Some(&(n, len)) = self.segments.iter().find(|(n, _)| *n >= self.cursor.0) {
            if n > self.cursor.0 {
                self.cursor = (n, 0);
            }
            if self.cursor.1 >= len {
                if self.segments.iter().any(|(m, _)| *m > n) {
                    self.cursor = (n + 1, 0);
                    continue;
                }
                return Ok(None);
            }
            let mut f = File::open(seg_path(&self.dir, n))?;
            f.seek(SeekFrom::Start(self.cursor.1))?;
            let want = (len - self.cursor.1).min(max as u64 + 65_536) as usize;
            let mut data = vec![0u8; want];
            f.read_exact(&mut data)?;
            let mut frames = Frames::new(&data);
            let mut used = 0;
            let mut count = 0u64;
            for fr in frames.by_ref() {
                if used > 0 && used + fr.len() > max {
                    break;
                }
                used += fr.len();
                count += 1;
            }
            if count == 0 {
                return Ok(None);
            }
            data.truncate(used);
            self.cursor = (n, self.cursor.1 + used as u64);
            return Ok(Some((Bytes::from(data), count, self.cursor)));
        }
        Ok(None)
    }

    /// Everything before `pos` was confirmed: persist it and delete finished segments.
    pub fn commit(&mut self, pos: Pos) -> io::Result<()> {
        if pos <= self.committed {
            return Ok(());
        }
        self.committed = pos;
        self.persist_commit()?;
        while self.segments.len() > 1 && self.segments[0].0 < pos.0 {
            let (n, _) = self.segments.remove(0);
            fs::remove_file(seg_path(&self.dir, n))?;
        }
        Ok(())
    }

    /// Back to the last confirmed position (the connection was lost).
    pub fn rewind(&mut self) {
        self.cursor = self.committed;
    }

    fn persist_commit(&self) -> io::Result<()> {
        let tmp = self.dir.join("committed.tmp");
        fs::write(&tmp, format!("{} {}\n", self.committed.0, self.committed.1))?;
        fs::rename(tmp, self.dir.join("committed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heplink_proto::{PacketBuilder, ProtoType};

    fn pkt(i: u32) -> Bytes {
        PacketBuilder::new(ProtoType::LOG, format!("payload {i} {}", "x".repeat(200)))
            .correlation_id(format!("c{i}"))
            .to_bytes()
            .unwrap()
    }

    #[test]
    fn append_read_commit_and_resume_after_reopen() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::open(d.path(), 1 << 30).unwrap();
        let ps: Vec<Bytes> = (0..10).map(pkt).collect();
        s.append(&ps).unwrap();
        let (b, n, pos) = s.read_batch(3 * ps[0].len()).unwrap().unwrap();
        assert_eq!(n, 3);
        assert_eq!(&b[..], &[&ps[0][..], &ps[1][..], &ps[2][..]].concat()[..]);
        s.commit(pos).unwrap();
        let (_, n2, _) = s.read_batch(1 << 20).unwrap().unwrap();
        assert_eq!(n2, 7);
        // Not confirmed: a new run starts again after the third packet.
        drop(s);
        let mut s = Spool::open(d.path(), 1 << 30).unwrap();
        let (b, n, _) = s.read_batch(1 << 20).unwrap().unwrap();
        assert_eq!(n, 7);
        assert_eq!(&b[..ps[3].len()], &ps[3][..]);
        s.rewind();
        assert!(s.has_unread());
    }

    #[test]
    fn a_torn_last_packet_is_cut_off() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::open(d.path(), 1 << 30).unwrap();
        s.append(&[pkt(1), pkt(2)]).unwrap();
        drop(s);
        let seg = seg_path(d.path(), 0);
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let mut s = Spool::open(d.path(), 1 << 30).unwrap();
        let (_, n, _) = s.read_batch(1 << 20).unwrap().unwrap();
        assert_eq!(n, 1);
        s.append(&[pkt(3)]).unwrap();
        let (_, n, _) = s.read_batch(1 << 20).unwrap().unwrap();
        assert_eq!(n, 1, "the new packet follows the good one");
    }

    #[test]
    fn the_cap_drops_the_oldest_segments_and_counts_them() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::open(d.path(), 40 << 20).unwrap();
        let big = PacketBuilder::new(ProtoType::LOG, vec![b'a'; 60_000])
            .correlation_id("c")
            .to_bytes()
            .unwrap();
        let batch: Vec<Bytes> = (0..100).map(|_| big.clone()).collect();
        for _ in 0..10 {
            s.append(&batch).unwrap(); // 6 MB each
        }
        assert!(s.pending_bytes() <= 40 << 20, "{}", s.pending_bytes());
        assert!(s.dropped > 0);
        let total = s.pending_bytes() / big.len() as u64 + s.dropped;
        assert_eq!(total, 1000, "every packet is spooled or counted as dropped");
    }

    #[test]
    fn of_a_batch_larger_than_the_cap_the_newest_packets_are_kept() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::open(d.path(), 4 * pkt(0).len() as u64).unwrap();
        let batch: Vec<Bytes> = (0..10).map(pkt).collect();
        s.append(&batch).unwrap();
        assert_eq!(s.dropped, 6, "the six oldest");
        let (bytes, n, _) = s.read_batch(1 << 20).unwrap().unwrap();
        assert_eq!(n, 4);
        assert_eq!(&bytes[..], &[pkt(6), pkt(7), pkt(8), pkt(9)].concat()[..]);
    }

    #[test]
    fn a_small_cap_is_the_cap_of_the_total_on_disk() {
        // The case: a 1 MB cap once let the spool reach 4.5 MB (the cap worked per
        // 16 MiB segment). Now the total on disk never passes it.
        let d = tempfile::tempdir().unwrap();
        let cap = 1_000_000;
        let mut s = Spool::open(d.path(), cap).unwrap();
        let p = PacketBuilder::new(ProtoType::LOG, vec![b'a'; 1_000])
            .correlation_id("c")
            .to_bytes()
            .unwrap();
        let batch: Vec<Bytes> = (0..50).map(|_| p.clone()).collect();
        for _ in 0..90 {
            s.append(&batch).unwrap(); // 4.5 MB in all
            let on_disk: u64 = fs::read_dir(d.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".hep"))
                .map(|e| e.metadata().unwrap().len())
                .sum();
            assert!(on_disk <= cap, "{on_disk} bytes on disk");
        }
        let total = s.pending_bytes() / p.len() as u64 + s.dropped;
        assert_eq!(
            total, 4500,
            "every packet is spooled or counted as dropped once"
        );
        // A batch larger than the whole cap: its newest packets are kept (what was on
        // disk goes first), and everything is still spooled or counted once.
        let huge: Vec<Bytes> = (0..2000).map(|_| p.clone()).collect();
        s.append(&huge).unwrap();
        let kept = s.pending_bytes() / p.len() as u64;
        assert!(kept > 0 && kept < 2000);
        assert_eq!(kept + s.dropped, 4500 + 2000);
    }
}
