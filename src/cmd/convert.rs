//! `heplink convert`: Janus event captures (one event-handler body per line) through
//! correlator and mapper into a pcap of the HEP packets `serve` would send.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;

use crate::capture::jsonl::{convert, Converted};
use crate::capture::pcap_writer::PcapWriter;
use crate::correlate::{self, Fallback};
use crate::map::MapConfig;

/// Arguments of `heplink convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Janus event captures: one event-handler body (object, array or NDJSON) per line.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The pcap to write (HEP over UDP to 127.0.0.1:9060).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Print each correlation id with its events, rooms, participants and handles.
    #[arg(long)]
    pub summary: bool,
    /// Grouping of events that belong to no room or call.
    #[arg(long, value_parser = crate::config::choice::<Fallback>(), default_value_t = Fallback::Session)]
    pub fallback: Fallback,
    /// How long events wait for their handle's binding, in milliseconds (event time).
    #[arg(long, default_value_t = 10_000)]
    pub hold_ms: u64,
    /// HEP capture agent id.
    #[arg(long, default_value_t = 2001)]
    pub capture_id: u32,
    /// HEP node name (default: the Janus emitter).
    #[arg(long)]
    pub node_name: Option<String>,
    /// QoS reports made of media stats, as `serve` sends them (`hep.qos`).
    #[arg(
        long,
        value_parser = crate::config::choice::<crate::map::qos::QosReports>(),
        default_value_t = crate::map::qos::QosReports::default()
    )]
    pub qos: crate::map::qos::QosReports,
}

/// The address the packets are written to, as `serve` sends them by default.
pub const COLLECTOR: &str = "127.0.0.1:9060";
/// The source address of the packets in the pcap.
pub const AGENT: &str = "127.0.0.1:39060";

impl ConvertArgs {
    /// Correlator settings from the arguments.
    pub fn correlator(&self) -> correlate::Config {
        correlate::Config {
            fallback: self.fallback,
            hold_us: self.hold_ms * 1000,
            ..Default::default()
        }
    }

    /// Mapper settings from the arguments.
    pub fn mapper(&self) -> MapConfig {
        MapConfig {
            capture_id: self.capture_id,
            node_name: self.node_name.clone(),
            qos: self.qos,
            ..Default::default()
        }
    }
}

/// Writes the packets as UDP datagrams from [`AGENT`] to [`COLLECTOR`].
pub fn write_pcap(path: &std::path::Path, packets: &[(u64, Bytes)]) -> io::Result<()> {
    let mut w = PcapWriter::new(BufWriter::new(File::create(path)?))?;
    let (src, dst): (SocketAddr, SocketAddr) = (
        AGENT.parse().expect("valid"),
        COLLECTOR.parse().expect("valid"),
    );
    for (ts, p) in packets {
        w.udp(*ts, src, dst, p)?;
    }
    w.finish()?.flush()
}

/// Prints the summary.
pub fn print_summary(out: &mut dyn Write, c: &Converted) -> io::Result<()> {
    for f in &c.flows {
        writeln!(out, "{}  packets={}", f.cid, f.packets)?;
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        if !f.rooms.is_empty() {
            writeln!(out, "    rooms: {}", join(&f.rooms))?;
        }
        if !f.participants.is_empty() {
            writeln!(out, "    participants: {}", join(&f.participants))?;
        }
        if !f.sessions.is_empty() {
            let s: Vec<String> = f.sessions.iter().map(u64::to_string).collect();
            writeln!(out, "    sessions: {}", s.join(", "))?;
        }
        if !f.handles.is_empty() {
            let h: Vec<String> = f.handles.iter().map(u64::to_string).collect();
            writeln!(out, "    handles: {}", h.join(", "))?;
        }
    }
    Ok(())
}

/// Runs the command.
pub fn main(args: &ConvertArgs) -> anyhow::Result<Converted> {
    let mut lines: Vec<io::Result<String>> = Vec::new();
    for path in &args.inputs {
        let mut f = File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        // Janus JSONL starts with `{` or `[`: say so when the file is something else (a
        // pcap, a HEP stream) rather than failing on its first non-UTF-8 byte.
        let mut head = [0u8; 64];
        let n = io::Read::read(&mut f, &mut head)?;
        let first = head[..n].iter().find(|b| !b.is_ascii_whitespace());
        if !matches!(first, Some(b'{') | Some(b'[') | None) {
            anyhow::bail!(
                "{}: not Janus JSONL (one event-handler body per line, starting with {{ or [); for pcap, pcapng or HEP captures use `heplink decode` or `heplink replay`",
                path.display()
            );
        }
        let f = io::Read::chain(&head[..n], f);
        lines.extend(BufReader::new(f).lines().collect::<Vec<_>>());
    }
    let c = convert(&mut lines.into_iter(), args.correlator(), args.mapper())?;
    for (line, msg) in &c.rejected {
        eprintln!("line {line}: {msg}");
    }
    if let Some(out) = &args.output {
        write_pcap(out, &c.packets).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    }
    if args.summary {
        let stdout = io::stdout();
        let mut w = BufWriter::new(stdout.lock());
        print_summary(&mut w, &c)?;
        w.flush()?;
    }
    eprintln!(
        "{} events, {} packets, {} correlation ids, {} rejected",
        c.events,
        c.packets.len(),
        c.flows.len(),
        c.rejected.len()
    );
    Ok(c)
}
