//! The `heplink` command line.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// mimalloc: the agent allocates and frees a few small buffers per event; glibc's
/// malloc spent ~16% of the pipeline's time on that (see `cargo bench --bench breakdown`).
/// Built with `no_thp`: with transparent huge pages on (`always`, as on Debian 12),
/// mimalloc's first touch of its eagerly committed arena faulted in whole 2 MiB pages; the
/// agent rested at 17 MiB resident, 9.7 MiB without them.
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
    /// Run the agent: take Janus events over HTTP(S), WebSocket, MQTT or RabbitMQ, send correlated HEP.
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
    /// Homer's API: `homer check` sends a probe through the collectors and finds it in Homer.
    Homer(heplink::cmd::homer::HomerArgs),
    /// Print the man page (heplink(1)), or write one per command into a directory.
    Man {
        /// Write heplink.1 and heplink-COMMAND.1 here instead of printing heplink(1).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
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
    let cli = Cli::try_parse().unwrap_or_else(|e| exit_naming_env(e));
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
        Command::Decode(args) => exit("decode", heplink::cmd::decode::main(&args), |s| {
            s.rejected == 0
        }),
        Command::Serve(args) => exit("serve", heplink::cmd::serve::main(&args), |_| true),
        Command::Demo(args) => exit("demo", heplink::cmd::demo::main(&args), |_| true),
        Command::Listen(args) => exit("listen", heplink::cmd::listen::main(&args), |s| {
            s.rejected == 0
        }),
        Command::Replay(args) => exit("replay", heplink::cmd::replay::main(&args), |_| true),
        Command::Flow(args) => exit("flow", heplink::cmd::flow::main(&args), |_| true),
        Command::Check { config, overrides } => {
            match heplink::config::Config::load(config.as_deref(), &overrides) {
                Ok(c) => {
                    print!("{}", c.to_toml());
                    for w in c.warnings() {
                        eprintln!("heplink check: warning: {w}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("heplink check: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Homer(args) => ExitCode::from(heplink::cmd::homer::main(&args)),
        Command::Man { out } => match man(out.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("heplink man: {e}");
                ExitCode::from(2)
            }
        },
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "heplink", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Convert(args) => exit("convert", heplink::cmd::convert::main(&args), |c| {
            c.rejected.is_empty()
        }),
    }
}

/// A command's exit status: 0 when it did all it should (`clean`), 1 when it ran but
/// rejected some of its input, 2 on errors (said on standard error).
fn exit<T>(name: &str, r: anyhow::Result<T>, clean: impl FnOnce(&T) -> bool) -> ExitCode {
    match r {
        Ok(v) if clean(&v) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("heplink {name}: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A bad value that came from an environment variable, not the command line, is reported
/// under the variable's name (clap names the flag either way); other errors as clap says.
fn exit_naming_env(e: clap::Error) -> ! {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        let flag = match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(s)) => s.split_whitespace().next().unwrap_or("").to_owned(),
            _ => String::new(),
        };
        let on_line = std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
        if !on_line && flag.starts_with("--") {
            let mut stack = vec![Cli::command()];
            while let Some(cmd) = stack.pop() {
                for arg in cmd.get_arguments() {
                    let long = arg.get_long().map(|l| format!("--{l}"));
                    if long.as_deref() != Some(flag.as_str()) {
                        continue;
                    }
                    if let Some(var) = arg.get_env().and_then(|v| v.to_str()) {
                        if let Ok(value) = std::env::var(var) {
                            let why = e.to_string();
                            let why = why
                                .lines()
                                .next()
                                .and_then(|l| l.rsplit_once(": "))
                                .map_or(String::new(), |(_, r)| format!(": {r}"));
                            eprintln!(
                                "error: invalid value '{value}' in the environment variable {var} (the setting of {flag}){why}"
                            );
                            std::process::exit(2);
                        }
                    }
                }
                stack.extend(cmd.get_subcommands().cloned());
            }
        }
    }
    e.exit()
}

/// heplink(1) to stdout, or every command's page into `out`.
fn man(out: Option<&std::path::Path>) -> std::io::Result<()> {
    let cmd = Cli::command();
    match out {
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout()),
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let mut f = std::fs::File::create(dir.join("heplink.1"))?;
            clap_mangen::Man::new(cmd.clone()).render(&mut f)?;
            for sub in cmd.get_subcommands() {
                let name = format!("heplink-{}", sub.get_name());
                let mut f = std::fs::File::create(dir.join(format!("{name}.1")))?;
                let page = sub.clone().name(name.clone());
                clap_mangen::Man::new(page).render(&mut f)?;
            }
            Ok(())
        }
    }
}
