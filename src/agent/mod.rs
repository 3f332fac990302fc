//! The agent's wiring, which `heplink serve` and `demo` run. Janus event handlers post (HTTP) or stream (WebSocket)
//! events; one pipeline task parses, correlates, maps and encodes them; each collector
//! has a bounded queue and a sender task. SIGTERM / SIGINT stop the inputs, release what
//! the correlator holds and drain the queues (bounded by `shutdown_timeout_ms`).
//!
//! The pipeline task's loop is `task.rs`; the bookkeeping of bodies not yet safe lives in
//! `ack/settle.rs` (`Settling`, which keeps the intake journal of `ack/journal.rs`).

mod task;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header;
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::ack::journal::Intake;
use crate::config::Config;
use crate::input::guard::{Gate, GuardedListener, Limits};
use crate::input::http::{HttpState, MakeHttp};

use crate::ack::Job;
use crate::input::ws::{ws_upgrade, WsState};
use crate::input::{serve, serve_router, TlsListener};
use crate::metrics::{CollectorMetrics, Input, Metrics};
use crate::output::{self, Queue};

/// The addresses the agent listens on (useful with port 0).
#[derive(Debug, Clone, Default)]
pub struct Bound {
    /// HTTP input.
    pub http: Option<SocketAddr>,
    /// WebSocket input.
    pub ws: Option<SocketAddr>,
    /// Metrics.
    pub metrics: Option<SocketAddr>,
}

/// A running agent.
pub struct Agent {
    /// Where it listens.
    pub bound: Bound,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// How far each collector's queue and spool got, in the order of the collectors
    /// (control state the outputs publish; see [`output::Progress`]).
    pub progress: Vec<Arc<output::Progress>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Agent {
    /// Waits until the agent has shut down (after the `shutdown` future given to
    /// [`start`] completed) and its queues drained.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.done.await?
    }
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

/// The whole `Authorization` header value Basic auth expects, when it is on.
fn http_auth(cfg: &Config) -> Option<Vec<u8>> {
    (!cfg.http.username.is_empty()).then(|| {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", cfg.http.username, cfg.http.password));
        format!("Basic {token}").into_bytes()
    })
}

/// Binds the listeners and starts everything; the agent runs until `shutdown` completes.
pub async fn start(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Agent> {
    let (queues, senders, collector_metrics) = start_collectors(&cfg)?;
    let metrics = Arc::new(Metrics::new(collector_metrics));
    let journal = open_journal(&cfg)?;
    // The collectors with a spool: a body is safe once they took its packets into it, as
    // their queues' progress says (control state the outputs publish, not a counter).
    let spooled: Vec<Arc<output::Progress>> = if cfg.spool.dir.is_empty() {
        Vec::new()
    } else {
        queues
            .iter()
            .zip(&cfg.output)
            .filter(|(_, o)| !o.url.is_udp())
            .map(|(q, _)| q.progress().clone())
            .collect()
    };
    let aliases = alias_feed(&cfg, &metrics)?;
    let progress = queues.iter().map(|q| q.progress().clone()).collect();

    // The pipeline task.
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job>(1024);
    let shared = task::Shared::new(&cfg, queues, metrics.clone(), (journal, aliases, spooled));
    let replay = shared.replay().await;
    let pipeline = tokio::spawn(task::run_pipeline(shared.clone(), jobs_rx, replay));

    // Inputs and metrics.
    let (stop_tx, stop_rx) = watch::channel(false);
    let w = Wiring {
        cfg: &cfg,
        jobs: jobs_tx,
        shared,
        metrics: &metrics,
        health: Default::default(),
        stop: &stop_rx,
    };
    let mut bound = Bound::default();
    let mut servers = Vec::new();
    if cfg.http.enabled {
        let (addr, server) = w.http().await?;
        bound.http = Some(addr);
        servers.push(server);
    }
    if cfg.ws.enabled {
        let (addr, server) = w.ws().await?;
        bound.ws = Some(addr);
        servers.push(server);
    }
    // Broker inputs: they acknowledge until the pipeline settled its last message, so
    // they are waited for after it.
    let brokers = w.brokers();
    if cfg.metrics.enabled {
        let (addr, server) = w.metrics().await?;
        bound.metrics = Some(addr);
        servers.push(server);
    }
    drop(w);
    let stopping = Stopping {
        stop: stop_tx,
        servers,
        pipeline,
        brokers,
        senders,
        timeout: Duration::from_millis(cfg.shutdown_timeout_ms),
        spooled: !cfg.spool.dir.is_empty(),
        metrics: metrics.clone(),
    };
    let done = tokio::spawn(async move {
        shutdown.await;
        stopping.run().await
    });
    Ok(Agent {
        bound,
        metrics,
        progress,
        done,
    })
}

/// Each collector's queue and sender task (with its spool, when on), and its counters.
#[allow(clippy::type_complexity)]
fn start_collectors(
    cfg: &Config,
) -> anyhow::Result<(
    Vec<Queue>,
    Vec<tokio::task::JoinHandle<()>>,
    Vec<Arc<CollectorMetrics>>,
)> {
    // Collectors.
    let mut queues = Vec::new();
    let mut senders = Vec::new();
    let mut collector_metrics = Vec::new();
    for o in &cfg.output {
        let url = o.url.clone();
        let m = Arc::new(CollectorMetrics {
            url: o.url.to_string(),
            ..Default::default()
        });
        let spool = if cfg.spool.dir.is_empty() || url.transport == output::Transport::Udp {
            None
        } else {
            let dir = std::path::Path::new(&cfg.spool.dir)
                .join(crate::output::spool::dir_name(&o.url.to_string()));
            Some(
                crate::output::spool::Spool::open(&dir, cfg.spool.max_bytes)
                    .map_err(|e| anyhow::anyhow!("spool {}: {e}", dir.display()))?,
            )
        };
        let (q, task) = output::spawn(
            url,
            output::SendOptions {
                capacity: cfg.queue.capacity,
                max_bytes: cfg.queue.max_bytes,
                policy: cfg.queue.when_full,
                mtu: o.mtu,
                fin_confirms: false,
                failback: std::time::Duration::from_secs(o.failback_s),
                udp_rate: o.udp_rate,
                udp_burst: o.udp_burst,
                stall: std::time::Duration::from_secs(o.stall_s.max(1)),
                read_grace: std::time::Duration::from_millis(o.read_grace_ms),
            },
            &o.tls,
            spool,
            m.clone(),
        )?;
        collector_metrics.push(m);
        queues.push(q);
        senders.push(task);
    }
    Ok((queues, senders, collector_metrics))
}

/// The intake journal (with the spool): what was answered 2xx survives a SIGKILL.
fn open_journal(cfg: &Config) -> anyhow::Result<Option<Intake>> {
    Ok(if cfg.spool.dir.is_empty() {
        None
    } else {
        let dir = std::path::Path::new(&cfg.spool.dir).join("journal");
        let intake = Intake::open(&dir)
            .map_err(|e| anyhow::anyhow!("intake journal {}: {e}", dir.display()))?;
        if !intake.back.is_empty() {
            tracing::info!(
                bodies = intake.back.len(),
                "Taking again what the intake journal holds from the last run."
            );
        }
        Some(intake)
    })
}

/// Homer's aliases (named columns), when its API is configured.
fn alias_feed(
    cfg: &Config,
    metrics: &Metrics,
) -> anyhow::Result<Option<crate::homer::aliases::AliasFeed>> {
    Ok(if cfg.homer.api.is_empty() || !cfg.homer.aliases {
        None
    } else {
        let api = crate::homer::Api::new(
            &cfg.homer.api,
            &cfg.homer.user,
            &cfg.homer.password,
            Default::default(),
        )
        .map_err(|e| anyhow::anyhow!("homer.api: {e}"))?;
        let (feed, _task) = crate::homer::aliases::spawn(
            api,
            crate::homer::aliases::Keeping {
                max: cfg.homer.max_aliases,
                rate: cfg.homer.alias_rate,
                retention: std::time::Duration::from_secs(cfg.homer.alias_retention_s),
            },
            metrics.homer.clone(),
        );
        Some(feed)
    })
}

/// What the inputs are started with.
struct Wiring<'a> {
    cfg: &'a Config,
    jobs: mpsc::Sender<Job>,
    shared: Arc<task::Shared>,
    metrics: &'a Arc<Metrics>,
    /// What each input says of itself, for `/health`.
    health: Arc<crate::status::Health>,
    stop: &'a watch::Receiver<bool>,
}

type Server = tokio::task::JoinHandle<()>;

impl Wiring<'_> {
    /// The HTTP input (sampleevh), plain or TLS, behind the connection guard.
    async fn http(&self) -> anyhow::Result<(SocketAddr, Server)> {
        let (cfg, metrics) = (self.cfg, self.metrics);
        let l = TcpListener::bind(cfg.http.listen)
            .await
            .map_err(|e| anyhow::anyhow!("HTTP input {}: {e}", cfg.http.listen))?;
        let addr = l.local_addr()?;
        let st = Arc::new(HttpState {
            taker: Arc::new(task::Direct {
                shared: self.shared.clone(),
                _alive: self.jobs.clone(),
            }),
            metrics: metrics.clone(),
            auth: http_auth(cfg),
            max_body: cfg.http.max_body_bytes,
            max_decompressed: cfg.http.max_decompressed_bytes,
            budget: Arc::new(tokio::sync::Semaphore::new(cfg.limits.body_budget_bytes)),
            auth_failures: Default::default(),
            inflate_slots: Arc::new(tokio::sync::Semaphore::new(
                crate::input::body::INFLATE_SLOTS,
            )),
        });
        let app = MakeHttp(st);
        let gate = Gate::new(Limits::http(&cfg.limits), Input::Http, metrics.clone());
        let server = if cfg.http.tls_cert.is_empty() {
            let l = GuardedListener::new(l, gate);
            tokio::spawn(serve(l, app, self.stop.clone()))
        } else {
            let tls = crate::tls::server(
                std::path::Path::new(&cfg.http.tls_cert),
                std::path::Path::new(&cfg.http.tls_key),
                None,
            )?;
            tokio::spawn(serve(
                TlsListener::new(l, tls, gate)?,
                app,
                self.stop.clone(),
            ))
        };
        self.health.http.enable();
        self.health.http.up();
        tracing::info!(listen = %addr, "HTTP input ready.");
        Ok((addr, server))
    }

    /// The WebSocket input (wsevh), behind the connection guard.
    async fn ws(&self) -> anyhow::Result<(SocketAddr, Server)> {
        let (cfg, metrics) = (self.cfg, self.metrics);
        let l = TcpListener::bind(cfg.ws.listen)
            .await
            .map_err(|e| anyhow::anyhow!("WebSocket input {}: {e}", cfg.ws.listen))?;
        let addr = l.local_addr()?;
        let st = Arc::new(WsState {
            jobs: self.jobs.clone(),
            metrics: metrics.clone(),
            max_message: cfg.ws.max_message_bytes,
            stop: self.stop.clone(),
            auth: http_auth(cfg),
            token: (!cfg.ws.token.is_empty()).then(|| cfg.ws.token.clone()),
            require_subprotocol: cfg.ws.require_subprotocol,
            auth_failures: Default::default(),
        });
        let app = Router::new().fallback(ws_upgrade).with_state(st);
        let gate = Gate::new(Limits::ws(&cfg.limits), Input::Ws, metrics.clone());
        let l = GuardedListener::new(l, gate);
        let server = tokio::spawn(serve_router(l, app, self.stop.clone()));
        self.health.ws.enable();
        self.health.ws.up();
        tracing::info!(listen = %addr, "WebSocket input ready.");
        Ok((addr, server))
    }

    /// The MQTT and RabbitMQ inputs that are configured.
    fn brokers(&self) -> Vec<Server> {
        let (cfg, metrics) = (self.cfg, self.metrics);
        let drain = Duration::from_millis(cfg.shutdown_timeout_ms);
        let mut brokers = Vec::new();
        if !cfg.mqtt.url.is_empty() {
            metrics.brokers[0].enabled.store(1, Relaxed);
            self.health.mqtt.enable();
            brokers.push(tokio::spawn(crate::input::mqtt::run(
                cfg.mqtt.clone(),
                self.jobs.clone(),
                (metrics.clone(), self.health.mqtt.clone()),
                self.stop.clone(),
                drain,
            )));
        }
        if !cfg.amqp.url.is_empty() {
            metrics.brokers[1].enabled.store(1, Relaxed);
            self.health.amqp.enable();
            brokers.push(tokio::spawn(crate::input::amqp::run(
                cfg.amqp.clone(),
                self.jobs.clone(),
                (metrics.clone(), self.health.amqp.clone()),
                self.stop.clone(),
                drain,
            )));
        }
        brokers
    }

    /// `/metrics` and `/health`.
    async fn metrics(&self) -> anyhow::Result<(SocketAddr, Server)> {
        let cfg = self.cfg;
        let l = TcpListener::bind(cfg.metrics.listen)
            .await
            .map_err(|e| anyhow::anyhow!("metrics {}: {e}", cfg.metrics.listen))?;
        let addr = l.local_addr()?;
        let m = self.metrics.clone();
        let (m2, h) = (self.metrics.clone(), self.health.clone());
        let app = Router::new()
            .route(
                "/metrics",
                get(move || async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        m.render(),
                    )
                }),
            )
            .route("/health", get(move || async move { health(&h, &m2) }));
        Ok((addr, tokio::spawn(serve_router(l, app, self.stop.clone()))))
    }
}

/// What shutting down waits for, in order: the inputs, the pipeline (it releases what it
/// holds), the broker inputs (their last acknowledgements), the senders (their drain,
/// within `timeout`; what is left is counted as dropped).
struct Stopping {
    stop: watch::Sender<bool>,
    servers: Vec<Server>,
    pipeline: tokio::task::JoinHandle<()>,
    brokers: Vec<Server>,
    senders: Vec<tokio::task::JoinHandle<()>>,
    timeout: Duration,
    spooled: bool,
    metrics: Arc<Metrics>,
}

impl Stopping {
    async fn run(mut self) -> anyhow::Result<()> {
        tracing::info!("Shutting down: inputs close, held events are released, queues drain.");
        let _ = self.stop.send(true);
        for s in self.servers {
            let _ = s.await;
        }
        self.pipeline.await?;
        for b in self.brokers {
            let _ = b.await;
        }
        let drained = tokio::time::timeout(self.timeout, async {
            for s in self.senders.iter_mut() {
                let _ = s.await;
            }
        })
        .await;
        if drained.is_err() {
            for c in &self.metrics.collectors {
                // Queued packets are lost; written but unconfirmed ones too, unless the
                // spool keeps them for the next run.
                let unconfirmed = if self.spooled {
                    0
                } else {
                    c.in_flight.load(Relaxed)
                };
                let left = c.queue_depth.load(Relaxed) + unconfirmed;
                c.dropped_shutdown.fetch_add(left, Relaxed);
                if left > 0 {
                    tracing::warn!(collector = %c.url, packets = left, "Shutdown drain time ran out: packets dropped.");
                }
            }
            for s in &self.senders {
                s.abort();
            }
        }
        Ok(())
    }
}

/// `/health`: one line per configured input, up or down (with the broker's last error),
/// as the inputs say (`crate::status`); 200 when every one is up, 503 otherwise. The AMQP
/// line shows the partitions it holds (a figure shown, not a decision).
fn health(h: &crate::status::Health, m: &Metrics) -> (axum::http::StatusCode, String) {
    let held = m.brokers[1].partitions_held.load(Relaxed);
    let (all_up, lines) = h.report(&format!(" partitions_held={held}"));
    if all_up {
        (axum::http::StatusCode::OK, format!("ok\n{lines}"))
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("degraded\n{lines}"),
        )
    }
}
