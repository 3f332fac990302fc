//! `heplink decode`: print the HEP packets of pcap, pcapng or raw HEP stream files.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use heplink_proto::{decode, Mode};

use crate::capture::render::{error_json, packet_json, packet_line};
use crate::capture::{read_capture, CaptureEvent};

/// Arguments of `heplink decode`.
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// Capture files: pcap, pcapng or a raw stream of back-to-back HEPv3 packets; `-` reads stdin.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// One JSON object per packet instead of a readable line.
    #[arg(long)]
    pub json: bool,
    /// Accept what heplify-server would reject where the packet can still be read
    /// (EEP3 magic, odd fixed-size chunks, trailing bytes).
    #[arg(long)]
    pub lenient: bool,
}

/// What a decode run found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DecodeSummary {
    /// Packets decoded.
    pub ok: u64,
    /// Packets rejected, and broken streams.
    pub rejected: u64,
}

/// Runs the command, writing to `out`; returns what was found.
pub fn run(args: &DecodeArgs, out: &mut dyn Write) -> anyhow::Result<DecodeSummary> {
    let mode = if args.lenient {
        Mode::Lenient
    } else {
        Mode::Strict
    };
    let mut summary = DecodeSummary::default();
    let mut index = 0u64;
    for path in &args.files {
        let input: Box<dyn Read + Send> = if path.as_os_str() == "-" {
            Box::new(io::stdin())
        } else {
            Box::new(File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
        };
        let mut write_err: Option<io::Error> = None;
        let mut emit = |line: String| {
            if write_err.is_none() {
                if let Err(e) = writeln!(out, "{line}") {
                    write_err = Some(e);
                }
            }
        };
        let stats = read_capture(input, &mut |ev| match ev {
            CaptureEvent::Packet { bytes, origin } => {
                let i = index;
                index += 1;
                match decode(bytes, mode) {
                    Ok(p) => {
                        summary.ok += 1;
                        emit(if args.json {
                            packet_json(i, &p, Some(&origin)).to_string()
                        } else {
                            packet_line(i, &p)
                        });
                    }
                    Err(e) => {
                        summary.rejected += 1;
                        emit(if args.json {
                            error_json(i, &e, Some(&origin)).to_string()
                        } else {
                            format!("#{i} rejected: {e}")
                        });
                    }
                }
            }
            CaptureEvent::StreamError { origin, error } => {
                summary.rejected += 1;
                tracing::debug!(?origin, %error, "HEP stream broken.");
                emit(if args.json {
                    serde_json::json!({"stream_error": error.to_string(), "capture": format!("{origin:?}")}).to_string()
                } else {
                    format!("stream error: {error} ({origin:?})")
                });
            }
        })
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if let Some(e) = write_err {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(summary);
            }
            return Err(e.into());
        }
        tracing::info!(file = %path.display(), format = stats.format, frames = stats.frames,
            skipped = stats.skipped_frames, non_hep_streams = stats.non_hep_streams, "Capture read.");
    }
    Ok(summary)
}

/// Runs the command on stdout.
pub fn main(args: &DecodeArgs) -> anyhow::Result<DecodeSummary> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let s = run(args, &mut out)?;
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(s),
    }
}
