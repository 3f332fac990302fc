//! `heplink serve`: the agent as a command (the wiring is in [`crate::agent`]).

use crate::agent::start;
use crate::config::Config;

/// Arguments of `heplink serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (see heplink.example.toml).
    #[arg(long, short, env = "HEPLINK_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Settings that override the file.
    #[command(flatten)]
    pub overrides: crate::config::Overrides,
}

/// Waits for SIGTERM or SIGINT.
pub async fn signals() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `serve` until a signal, then drains.
pub fn main(args: &ServeArgs) -> anyhow::Result<()> {
    let cfg = Config::load(args.config.as_deref(), &args.overrides)?;
    crate::input::guard::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let agent = start(cfg, signals()).await?;
        tracing::info!(?agent.bound, "heplink serve running.");
        agent.wait().await
    })
}
