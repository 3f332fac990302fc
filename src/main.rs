//! The `heplink` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the agent allocates and frees a few small buffers per event; glibc's
/// malloc spent ~16% of the pipeline's time on that (see `cargo bench --bench breakdown`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Janus WebRTC Server events → correlated HEPv3 for Homer.
#[derive(Debug, Parser)]
#[command(name = "heplink", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the HEP packets of pcap, pcapng or raw HEP stream files.
    ///
    /// Exit status: 0 when every packet decoded, 1 when any was rejected, 2 on errors.
    Decode(heplink::decode_cmd::DecodeArgs),
    /// Convert Janus event captures (one event-handler body per line) into a pcap of the
    /// correlated HEP packets `serve` would send to 127.0.0.1:9060.
    ///
    /// Exit status: 0 when every event was used, 1 when any was rejected, 2 on errors.
    Convert(heplink::convert_cmd::ConvertArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEPLINK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Decode(args) => match heplink::decode_cmd::main(&args) {
            Ok(s) if s.rejected == 0 => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(1),
            Err(e) => {
                eprintln!("heplink decode: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Convert(args) => match heplink::convert_cmd::main(&args) {
            Ok(c) if c.rejected.is_empty() => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(1),
            Err(e) => {
                eprintln!("heplink convert: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}
