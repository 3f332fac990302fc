//! `heplink convert`: Janus event captures (one event-handler body per line) through
//! correlator and mapper into a pcap of the HEP packets `serve` would send.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;

use crate::capture::pcap_writer::PcapWriter;
use crate::correlate::{self, Fallback, GroupKey};
use crate::map::MapConfig;
use crate::pipeline::{Output, Pipeline};

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
    #[arg(long, value_enum, default_value_t = Fallback::Session)]
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
    #[arg(long, value_enum, default_value_t = crate::map::qos::QosReports::default())]
    pub qos: crate::map::qos::QosReports,
}

/// The address the packets are written to, as `serve` sends them by default.
pub const COLLECTOR: &str = "127.0.0.1:9060";
/// The source address of the packets in the pcap.
pub const AGENT: &str = "127.0.0.1:39060";

/// Per correlation id: what the summary prints.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlowSummary {
    /// The correlation id.
    pub cid: String,
    /// Packets.
    pub packets: u64,
    /// Rooms.
    pub rooms: BTreeSet<String>,
    /// Participants (id, and display name when known).
    pub participants: BTreeSet<String>,
    /// Handles.
    pub handles: BTreeSet<u64>,
    /// Sessions.
    pub sessions: BTreeSet<u64>,
}

/// What a conversion produced.
#[derive(Debug, Default)]
pub struct Converted {
    /// The encoded packets with their timestamps, in order.
    pub packets: Vec<(u64, Bytes)>,
    /// The correlation id of each packet, in order.
    pub cids: Vec<String>,
    /// Per correlation id, in order of first appearance.
    pub flows: Vec<FlowSummary>,
    /// Events rejected (line, message).
    pub rejected: Vec<(usize, String)>,
    /// Events read.
    pub events: u64,
}

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

/// Converts bodies (one per line) read from `inputs`, using event time as the clock.
pub fn convert(
    inputs: &mut dyn Iterator<Item = io::Result<String>>,
    corr: correlate::Config,
    map: MapConfig,
) -> io::Result<Converted> {
    // Event time is the clock: each body is correlated at its newest timestamp.
    let mut p = Pipeline::new(corr, map).event_time();
    let mut res = Converted::default();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut sink = |o: Output| {
        let c = o.correlated;
        res.packets.push((o.ts_us, o.packet));
        let cid = c.cid.to_string();
        res.cids.push(cid.clone());
        let i = *index.entry(cid.clone()).or_insert_with(|| {
            res.flows.push(FlowSummary {
                cid,
                ..Default::default()
            });
            res.flows.len() - 1
        });
        let f = &mut res.flows[i];
        f.packets += 1;
        if let Some(GroupKey::Room(p, r)) = &c.facts.group {
            f.rooms.insert(format!("{}:{r}", p.short()));
        }
        if let Some((_, id)) = &c.facts.participant {
            f.participants.insert(match &c.facts.display {
                Some(d) => format!("{id} ({d})"),
                None => id.to_string(),
            });
        }
        f.handles.extend(c.event.handle_id);
        f.sessions.extend(c.event.session_id);
    };
    for (lineno, line) in inputs.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let body = Bytes::from(line);
        for r in p.push_body(&body, 0, &mut sink).rejected {
            res.rejected
                .push((lineno + 1, format!("event {}: {}", r.index, r.message)));
        }
    }
    let now = p.now();
    p.flush(now, &mut sink);
    res.events = p.stats().events;
    Ok(res)
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
