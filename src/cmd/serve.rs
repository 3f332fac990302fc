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

/// Runs `serve` until a signal, then drains.
pub fn main(args: &ServeArgs) -> anyhow::Result<()> {
    let cfg = Config::load(args.config.as_deref(), &args.overrides)?;
    for w in cfg.warnings() {
        tracing::warn!("{w}");
    }
    crate::input::guard::raise_fd_limit();
    let collectors: Vec<String> = cfg
        .output
        .iter()
        .map(|o| match o.url.is_udp() && o.udp_rate > 0 {
            true => format!("{} (paced at {} packets/s)", o.url, o.udp_rate),
            false => o.url.to_string(),
        })
        .collect();
    let brokers: String = [("MQTT", &cfg.mqtt.url), ("AMQP", &cfg.amqp.url)]
        .iter()
        .filter(|(_, u)| !u.is_empty())
        .map(|(what, u)| format!(", {what} input from {}", crate::config::redact_url(u)))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let agent = start(cfg, crate::agent::signals()).await?;
        let b = &agent.bound;
        let words = |a: Option<std::net::SocketAddr>,
                     f: &dyn Fn(std::net::SocketAddr) -> String| {
            a.map_or_else(|| "off".to_string(), f)
        };
        tracing::info!(
            "heplink serve running: HTTP input {}, WebSocket input {}{brokers}, metrics {}; HEP to {}.",
            words(b.http, &|a| format!("on http://{a}/ (POST Janus events)")),
            words(b.ws, &|a| format!("on ws://{a}/")),
            words(b.metrics, &|a| format!("on http://{a}/metrics")),
            collectors.join(", ")
        );
        agent.wait().await
    })
}
