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
    /// Log lines as text (colour only on a terminal; NO_COLOR honoured) or JSON.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "HEPLINK_LOG_FORMAT"
    )]
    log_format: heplink::observe::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the HEP packets of pcap, pcapng or raw HEP stream files.
    ///
    /// Exit status: 0 when every packet decoded, 1 when any was rejected, 2 on errors.
    Decode(heplink::cmd::decode::DecodeArgs),
    /// Convert Janus event captures (one event-handler body per line) into a pcap of the
    /// correlated HEP packets `serve` would send to 127.0.0.1:9060.
    ///
    /// Exit status: 0 when every event was used, 1 when any was rejected, 2 on errors.
    Convert(heplink::cmd::convert::ConvertArgs),
    /// Run the agent: take Janus events over HTTP(S) and WebSocket, send correlated HEP.
    ///
    /// With no configuration: HTTP on 127.0.0.1:8090, WebSocket on 127.0.0.1:8091,
    /// metrics on 127.0.0.1:9466, HEP over UDP to 127.0.0.1:9060.
    Serve(heplink::cmd::serve::ServeArgs),
    /// The main job on an embedded default: a bundled real VideoRoom capture goes through a
    /// real agent to an embedded HEP listener, which prints the correlated flows.
    Demo(heplink::cmd::demo::DemoArgs),
    /// Receive HEP over UDP, TCP and TLS: print each packet, write pcap/JSONL, summarise the flows.
    Listen(heplink::cmd::listen::ListenArgs),
    /// Send captures to a collector: Janus JSONL through the pipeline, HEP pcap/raw as is.
    ///
    /// Exit status: 0 when every packet was sent, 2 otherwise.
    Replay(heplink::cmd::replay::ReplayArgs),
    /// Draw each correlated flow of a capture (Janus JSONL or HEP) as Homer would: a
    /// self-contained HTML page (click an arrow for its payload), optionally an SVG.
    Flow(heplink::cmd::flow::FlowArgs),
    /// Validate a configuration and print the effective settings (file + flags + env).
    Check {
        /// The TOML file (none: defaults).
        config: Option<std::path::PathBuf>,
        /// Settings that override the file.
        #[command(flatten)]
        overrides: heplink::config::Overrides,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The agent logs its connections; the offline tools only warnings (stdout is theirs).
    let default = if matches!(cli.command, Command::Serve(_) | Command::Listen(_)) {
        "info"
    } else {
        "warn"
    };
    if let Err(e) = heplink::observe::init_logging(default, cli.log_format) {
        eprintln!("heplink: {e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Decode(args) => match heplink::cmd::decode::main(&args) {
            Ok(s) if s.rejected == 0 => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(1),
            Err(e) => {
                eprintln!("heplink decode: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Serve(args) => match heplink::cmd::serve::main(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("heplink serve: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Demo(args) => match heplink::cmd::demo::main(&args) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("heplink demo: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Listen(args) => match heplink::cmd::listen::main(&args) {
            Ok(s) if s.rejected == 0 => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(1),
            Err(e) => {
                eprintln!("heplink listen: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Replay(args) => match heplink::cmd::replay::main(&args) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("heplink replay: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Flow(args) => match heplink::cmd::flow::main(&args) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("heplink flow: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Check { config, overrides } => {
            match heplink::config::Config::load(config.as_deref(), &overrides) {
                Ok(c) => {
                    print!("{}", c.to_toml());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("heplink check: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Convert(args) => match heplink::cmd::convert::main(&args) {
            Ok(c) if c.rejected.is_empty() => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(1),
            Err(e) => {
                eprintln!("heplink convert: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}
