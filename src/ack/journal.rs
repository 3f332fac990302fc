//! The intake journal: with the spool on, every body the pipeline takes is appended here
//! before its HTTP answer goes out, so an event answered 2xx survives a SIGKILL of the
//! agent even while the correlator still holds it or its packets are on their way to the
//! spools. On start, what the journal holds past its checkpoint is run through the pipeline
//! again (at least once: packets already spooled may be sent twice, and are counted).
//!
//! The pipeline task advances the checkpoint once a body's events are all released by the
//! correlator and every spooled collector's queue took their packets into its spool. The
//! last [`KEEP_DONE`] segments wholly behind the checkpoint are kept, older ones deleted:
//! on start, their bodies run through the pipeline without sending anything, so that the
//! bodies taken again find the sessions, handles and rooms they belong to and get the
//! correlation ids they got the first time (a duplicate is then an exact duplicate, in the
//! right flow, not a stray event in a fallback flow), and make the QoS reports and verdicts
//! they made the first time (their events held for a binding are released into the state
//! too: a subscriber's SDP before its handle joins). Appends are one `write` each (the page cache
//! survives the agent's death); `fdatasync` runs once a second (group commit), so a power
//! loss costs at most the last second.
//!
//! Record: `len: u32 LE` (of what follows the checksum), `fnv1a32: u32 LE` (of the same),
//! then `seq: u64 LE`, `at_us: u64 LE`, `input: u8`, the body. A torn or corrupt record
//! ends the segment's readable part.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::telemetry::{Emit, Ingest, Input};

/// Segments are closed at this size.
const SEGMENT_BYTES: u64 = 8 << 20;

/// Segments wholly behind the checkpoint kept for warming the correlator up at start.
pub const KEEP_DONE: usize = 2;

/// A body taken back from the journal at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// When it was taken (µs since the epoch).
    pub at_us: u64,
    /// The input it came from.
    pub input: Input,
    /// The body.
    pub body: Vec<u8>,
}

/// The journal of one agent (see the module documentation).
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: File,
    seg_bytes: u64,
    /// Segment numbers with the first sequence number each holds, oldest first; the last
    /// is the one appended to.
    segments: VecDeque<(u64, u64)>,
    next_seq: u64,
    checkpoint: u64,
    dirty: bool,
}

fn fnv1a(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &x in b {
        h ^= u32::from(x);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn seg_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016}.jnl"))
}

/// Reads the records of one segment, up to the first torn or corrupt one.
fn read_segment(path: &Path) -> io::Result<Vec<Record>> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut out = Vec::new();
    let mut rest = &data[..];
    while rest.len() >= 8 {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let sum = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let Some(rec) = rest.get(8..8 + len) else {
            break;
        };
        if len < 17 || fnv1a(rec) != sum {
            break;
        }
        let input = if rec[16] == Input::Ws as u8 {
            Input::Ws
        } else {
            Input::Http
        };
        out.push(Record {
            seq: u64::from_le_bytes(rec[..8].try_into().expect("8 bytes")),
            at_us: u64::from_le_bytes(rec[8..16].try_into().expect("8 bytes")),
            input,
            body: rec[17..].to_vec(),
        });
        rest = &rest[8 + len..];
    }
    Ok(out)
}

impl Journal {
    /// Opens (creating) the journal in `dir`; returns it, the kept records up to its
    /// checkpoint (to warm the correlator up with, sending nothing), and the records past
    /// it (for the pipeline to take again), each oldest first.
    pub fn open(dir: &Path) -> io::Result<(Journal, Vec<Record>, Vec<Record>)> {
        std::fs::create_dir_all(dir)?;
        let checkpoint = match std::fs::read(dir.join("checkpoint")) {
            Ok(b) if b.len() == 8 => u64::from_le_bytes(b[..].try_into().expect("8 bytes")),
            Ok(_) => 0,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut numbers: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".jnl")?
                    .parse::<u64>()
                    .ok()
            })
            .collect();
        numbers.sort_unstable();
        let mut pending = Vec::new();
        let mut warm = Vec::new();
        let mut segments = VecDeque::new();
        let mut last_seq = checkpoint;
        for &n in &numbers {
            let records = read_segment(&seg_path(dir, n))?;
            if let Some(first) = records.first() {
                segments.push_back((n, first.seq));
            } else {
                segments.push_back((n, last_seq + 1));
            }
            for r in records {
                last_seq = last_seq.max(r.seq);
                if r.seq > checkpoint {
                    pending.push(r);
                } else {
                    warm.push(r);
                }
            }
        }
        // Appends go to a new segment: an old one may end in a torn record.
        let n = numbers.last().map_or(0, |n| n + 1);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(seg_path(dir, n))?;
        segments.push_back((n, last_seq + 1));
        let mut j = Journal {
            dir: dir.to_owned(),
            file,
            seg_bytes: 0,
            segments,
            next_seq: last_seq + 1,
            checkpoint,
            dirty: false,
        };
        j.delete_done()?;
        Ok((j, warm, pending))
    }

    /// Appends a body taken at `at_us` from `input`; returns its sequence number.
    pub fn append(&mut self, at_us: u64, input: Input, body: &[u8]) -> io::Result<u64> {
        if self.seg_bytes >= SEGMENT_BYTES {
            let n = self.segments.back().map_or(0, |s| s.0) + 1;
            self.file.sync_data()?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(seg_path(&self.dir, n))?;
            self.segments.push_back((n, self.next_seq));
            self.seg_bytes = 0;
        }
        let seq = self.next_seq;
        let mut rec = Vec::with_capacity(25 + body.len());
        rec.extend_from_slice(&[0; 8]);
        rec.extend_from_slice(&seq.to_le_bytes());
        rec.extend_from_slice(&at_us.to_le_bytes());
        rec.push(input as u8);
        rec.extend_from_slice(body);
        let len = (rec.len() - 8) as u32;
        let sum = fnv1a(&rec[8..]);
        rec[..4].copy_from_slice(&len.to_le_bytes());
        rec[4..8].copy_from_slice(&sum.to_le_bytes());
        // One write: in the page cache, it survives the agent's death.
        self.file.write_all(&rec)?;
        self.seg_bytes += rec.len() as u64;
        self.next_seq += 1;
        self.dirty = true;
        Ok(seq)
    }

    /// Flushes appended records to the disk (the group commit).
    pub fn sync(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.dirty) {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// The last sequence number whose body no longer needs the journal.
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint
    }

    /// Every body up to `seq` is safe elsewhere (in the spools): records it and deletes the
    /// segments holding only such bodies.
    pub fn advance(&mut self, seq: u64) -> io::Result<()> {
        if seq <= self.checkpoint {
            return Ok(());
        }
        self.checkpoint = seq;
        let tmp = self.dir.join("checkpoint.tmp");
        std::fs::write(&tmp, seq.to_le_bytes())?;
        std::fs::rename(&tmp, self.dir.join("checkpoint"))?;
        self.delete_done()
    }

    /// Bytes in the segment being appended to.
    pub fn segment_bytes(&self) -> u64 {
        self.seg_bytes
    }

    fn delete_done(&mut self) -> io::Result<()> {
        // A segment is done when the next one starts at or before checkpoint + 1; the last
        // KEEP_DONE done ones stay.
        let done = self
            .segments
            .iter()
            .skip(1)
            .take_while(|s| s.1 <= self.checkpoint + 1)
            .count();
        for _ in 0..done.saturating_sub(KEEP_DONE) {
            let (n, _) = self.segments.pop_front().expect("a done segment");
            match std::fs::remove_file(seg_path(&self.dir, n)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The intake journal as the pipeline task keeps it, with what the last run left in it.
pub struct Intake {
    pub(crate) journal: Journal,
    /// Bodies of the last run already delivered, to warm the correlator up with.
    pub(crate) warm: Vec<Record>,
    /// Bodies of the last run to take again.
    pub(crate) back: Vec<Record>,
    /// The newest sequence number journaled.
    pub(crate) newest: u64,
    pub(crate) last_sync: std::time::Instant,
}

impl Intake {
    /// Journals a body before the pipeline takes it (and before its answer); its sequence
    /// number, unless the write failed.
    pub fn take(
        &mut self,
        now: u64,
        job: &crate::ack::Job,
        telemetry: &dyn Emit<Ingest>,
    ) -> Option<u64> {
        match self.journal.append(now, job.input, &job.body) {
            Ok(seq) => {
                self.newest = seq;
                Some(seq)
            }
            Err(e) => {
                telemetry.add(Ingest::JournalErrors, 1);
                static LOG: crate::observe::LogLimit =
                    crate::observe::LogLimit::new(std::time::Duration::from_secs(1));
                if let Some(suppressed) = LOG.allow() {
                    tracing::error!(error = %e, suppressed, "Intake journal write failed: this body is not durable.");
                }
                None
            }
        }
    }

    /// Advances the checkpoint to just before the oldest body not yet safe (`oldest`), or
    /// to the newest journaled when every body is; syncs once a second.
    pub fn checkpoint(&mut self, oldest: Option<u64>) {
        let to = oldest.map_or(self.newest, |s| s.saturating_sub(1));
        if let Err(e) = self.journal.advance(to) {
            tracing::error!(error = %e, "Intake journal checkpoint failed.");
        }
        if self.last_sync.elapsed() >= std::time::Duration::from_secs(1) {
            self.last_sync = std::time::Instant::now();
            if let Err(e) = self.journal.sync() {
                tracing::error!(error = %e, "Intake journal sync failed.");
            }
        }
    }
}

impl Intake {
    /// Opens the journal in `dir`, with what the last run left.
    pub fn open(dir: &Path) -> io::Result<Intake> {
        let (journal, warm, back) = Journal::open(dir)?;
        Ok(Intake {
            journal,
            warm,
            back,
            newest: 0,
            last_sync: std::time::Instant::now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_past_the_checkpoint_comes_back_after_a_reopen() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, _, back) = Journal::open(d.path()).unwrap();
        assert!(back.is_empty());
        for i in 0..5u8 {
            assert_eq!(
                j.append(100 + u64::from(i), Input::Http, &[i; 3]).unwrap(),
                u64::from(i) + 1
            );
        }
        j.advance(3).unwrap();
        drop(j); // as a SIGKILL would: no sync, no close ceremony
        let (mut j, warm, back) = Journal::open(d.path()).unwrap();
        assert_eq!(
            warm.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(back.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(back[1].body, vec![4u8; 3]);
        assert_eq!(back[1].at_us, 104);
        // Numbering goes on after what is there.
        assert_eq!(j.append(0, Input::Ws, b"x").unwrap(), 6);
        j.advance(6).unwrap();
        drop(j);
        let (_, warm, back) = Journal::open(d.path()).unwrap();
        assert!(back.is_empty());
        assert_eq!(warm.len(), 6, "done records are kept to warm up with");
    }

    #[test]
    fn a_torn_record_ends_what_is_read_and_done_segments_are_deleted() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, _, _) = Journal::open(d.path()).unwrap();
        j.append(1, Input::Http, b"first").unwrap();
        j.append(2, Input::Http, b"second").unwrap();
        drop(j);
        let seg = seg_path(d.path(), 0);
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 2).unwrap();
        let (mut j, _, back) = Journal::open(d.path()).unwrap();
        assert_eq!(back.len(), 1, "the torn second record is not taken");
        assert_eq!(back[0].body, b"first");
        j.append(3, Input::Http, b"third").unwrap();
        j.advance(j.next_seq - 1).unwrap();
        drop(j);
        // Each open starts a segment: after four more, only KEEP_DONE done ones stay.
        for _ in 0..4 {
            let (mut j, _, _) = Journal::open(d.path()).unwrap();
            j.append(4, Input::Http, b"more").unwrap();
            j.advance(j.next_seq - 1).unwrap();
        }
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".jnl"))
            .collect();
        assert_eq!(
            left.len(),
            KEEP_DONE + 1,
            "the kept done segments and the current one: {left:?}"
        );
    }
}
