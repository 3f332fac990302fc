//! `heplink serve`: the agent. Janus event handlers post (HTTP) or stream (WebSocket)
//! events; one pipeline task parses, correlates, maps and encodes them; each collector
//! has a bounded queue and a sender task. SIGTERM / SIGINT stop the inputs, release what
//! the correlator holds and drain the queues (bounded by `shutdown_timeout_ms`).

use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::metrics::{CollectorMetrics, Input, Metrics, Reject};
use crate::pipeline::{Pipeline, Rejected};
use crate::sender::{self, CollectorUrl, Queue};

/// A body for the pipeline task.
struct Job {
    body: Bytes,
    input: Input,
    reply: Option<oneshot::Sender<Vec<Rejected>>>,
}

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
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Agent {
    /// Waits until the agent has shut down (after the `shutdown` future given to
    /// [`start`] completed) and its queues drained.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.done.await?
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Binds the listeners and starts everything; the agent runs until `shutdown` completes.
pub async fn start(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Agent> {
    // Collectors.
    let mut queues = Vec::new();
    let mut senders = Vec::new();
    let mut collector_metrics = Vec::new();
    for o in &cfg.output {
        let url = CollectorUrl::parse(&o.url)?;
        let m = Arc::new(CollectorMetrics {
            url: o.url.clone(),
            ..Default::default()
        });
        let spool = if cfg.spool.dir.is_empty() || url.transport == sender::Transport::Udp {
            None
        } else {
            let dir = std::path::Path::new(&cfg.spool.dir).join(crate::spool::dir_name(&o.url));
            Some(
                crate::spool::Spool::open(&dir, cfg.spool.max_bytes)
                    .map_err(|e| anyhow::anyhow!("spool {}: {e}", dir.display()))?,
            )
        };
        let (q, task) = sender::spawn(
            url,
            sender::SendOptions {
                capacity: cfg.queue.capacity,
                policy: cfg.queue.when_full,
                mtu: o.mtu,
                fin_confirms: false,
                failback: std::time::Duration::from_secs(o.failback_s),
            },
            &o.tls,
            spool,
            m.clone(),
        )?;
        collector_metrics.push(m);
        queues.push(q);
        senders.push(task);
    }
    let metrics = Arc::new(Metrics::new(collector_metrics));

    // The pipeline task.
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job>(1024);
    let pipeline = tokio::spawn(run_pipeline(cfg.clone(), jobs_rx, queues, metrics.clone()));

    // Inputs and metrics.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut bound = Bound::default();
    let mut servers = Vec::new();
    if cfg.http.enabled {
        let l = TcpListener::bind(cfg.http.listen)
            .await
            .map_err(|e| anyhow::anyhow!("HTTP input {}: {e}", cfg.http.listen))?;
        bound.http = Some(l.local_addr()?);
        let st = Arc::new(HttpState {
            jobs: jobs_tx.clone(),
            metrics: metrics.clone(),
            auth: (!cfg.http.username.is_empty()).then(|| {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", cfg.http.username, cfg.http.password));
                format!("Basic {token}").into_bytes()
            }),
            max_body: cfg.http.max_body_bytes,
            max_decompressed: cfg.http.max_decompressed_bytes,
        });
        let app = Router::new().fallback(http_ingest).with_state(st);
        if cfg.http.tls_cert.is_empty() {
            servers.push(tokio::spawn(serve_router(l, app, stop_rx.clone())));
        } else {
            let tls = crate::tls::server(
                std::path::Path::new(&cfg.http.tls_cert),
                std::path::Path::new(&cfg.http.tls_key),
                None,
            )?;
            servers.push(tokio::spawn(serve_tls_router(
                TlsListener::new(l, tls)?,
                app,
                stop_rx.clone(),
            )));
        }
        tracing::info!(listen = %bound.http.unwrap_or(cfg.http.listen), "HTTP input ready.");
    }
    if cfg.ws.enabled {
        let l = TcpListener::bind(cfg.ws.listen)
            .await
            .map_err(|e| anyhow::anyhow!("WebSocket input {}: {e}", cfg.ws.listen))?;
        bound.ws = Some(l.local_addr()?);
        let st = Arc::new(WsState {
            jobs: jobs_tx.clone(),
            metrics: metrics.clone(),
            max_message: cfg.ws.max_message_bytes,
            stop: stop_rx.clone(),
        });
        let app = Router::new().fallback(ws_upgrade).with_state(st);
        servers.push(tokio::spawn(serve_router(l, app, stop_rx.clone())));
        tracing::info!(listen = %bound.ws.unwrap_or(cfg.ws.listen), "WebSocket input ready.");
    }
    drop(jobs_tx);
    if cfg.metrics.enabled {
        let l = TcpListener::bind(cfg.metrics.listen)
            .await
            .map_err(|e| anyhow::anyhow!("metrics {}: {e}", cfg.metrics.listen))?;
        bound.metrics = Some(l.local_addr()?);
        let m = metrics.clone();
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
            .route("/health", get(|| async { "ok\n" }));
        servers.push(tokio::spawn(serve_router(l, app, stop_rx.clone())));
    }

    let timeout = Duration::from_millis(cfg.shutdown_timeout_ms);
    let m2 = metrics.clone();
    let done = tokio::spawn(async move {
        shutdown.await;
        tracing::info!("Shutting down: inputs close, held events are released, queues drain.");
        let _ = stop_tx.send(true);
        for s in servers {
            let _ = s.await;
        }
        pipeline.await?;
        let drained = tokio::time::timeout(timeout, async {
            for s in senders.iter_mut() {
                let _ = s.await;
            }
        })
        .await;
        if drained.is_err() {
            for c in &m2.collectors {
                let left = c.queue_depth.load(Relaxed);
                c.dropped_shutdown.fetch_add(left, Relaxed);
                tracing::warn!(collector = %c.url, packets = left, "Shutdown drain time ran out: packets dropped.");
            }
            for s in &senders {
                s.abort();
            }
        }
        Ok(())
    });
    Ok(Agent {
        bound,
        metrics,
        done,
    })
}

/// An HTTPS listener for axum: TLS handshakes run on their own tasks (a slow or broken
/// client cannot hold up the others) and finished connections are handed over.
struct TlsListener {
    rx: mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    local: SocketAddr,
}

impl TlsListener {
    fn new(l: TcpListener, cfg: Arc<rustls::ServerConfig>) -> std::io::Result<TlsListener> {
        let local = l.local_addr()?;
        let (tx, rx) = mpsc::channel(128);
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        tokio::spawn(async move {
            loop {
                let Ok((s, peer)) = l.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(s)).await {
                        Ok(Ok(t)) => {
                            let _ = tx.send((t, peer)).await;
                        }
                        Ok(Err(e)) => tracing::warn!(%peer, error = %e, "HTTPS handshake failed."),
                        Err(_) => tracing::warn!(%peer, "HTTPS handshake timed out."),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

async fn serve_tls_router(l: TlsListener, app: Router, mut stop: watch::Receiver<bool>) {
    let r = axum::serve(l, app.into_make_service())
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "HTTPS listener failed.");
    }
}

async fn serve_router(l: TcpListener, app: Router, mut stop: watch::Receiver<bool>) {
    let svc = app.into_make_service_with_connect_info::<SocketAddr>();
    let r = axum::serve(l, svc)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "Listener failed.");
    }
}

async fn run_pipeline(
    cfg: Config,
    mut jobs: mpsc::Receiver<Job>,
    queues: Vec<Queue>,
    metrics: Arc<Metrics>,
) {
    let mut p = Pipeline::new(cfg.correlator(), cfg.mapper());
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut packets: Vec<Bytes> = Vec::new();
    let mut buf = BytesMut::with_capacity(1 << 16);
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { break };
                let before = p.stats().by_type;
                let rejected = p.push_body(&job.body, now_us(), &mut |o| encode_into(o.packet, &mut buf, &mut packets));
                let after = p.stats().by_type;
                for (i, (a, b)) in after.iter().zip(before.iter()).enumerate() {
                    if a > b {
                        metrics.event(job.input, i, a - b);
                    }
                }
                for r in &rejected {
                    metrics.reject(job.input, Reject::from_reason(r.reason));
                }
                if let Some(reply) = job.reply {
                    let _ = reply.send(rejected);
                }
            }
            _ = tick.tick() => {
                p.tick(now_us(), &mut |o| encode_into(o.packet, &mut buf, &mut packets));
                // Gauges walk the correlator's tables: on the tick, not per request.
                update_gauges(&p, &metrics);
            }
        }
        send_all(&mut packets, &queues, &metrics).await;
    }
    p.flush(now_us(), &mut |o| {
        encode_into(o.packet, &mut buf, &mut packets)
    });
    send_all(&mut packets, &queues, &metrics).await;
    update_gauges(&p, &metrics);
}

fn encode_into(
    packet: Result<heplink_proto::PacketBuilder, heplink_proto::EncodeError>,
    buf: &mut BytesMut,
    out: &mut Vec<Bytes>,
) {
    if let Ok(b) = packet {
        if b.encode(buf).is_ok() {
            out.push(buf.split().freeze());
        }
    }
}

async fn send_all(packets: &mut Vec<Bytes>, queues: &[Queue], metrics: &Metrics) {
    metrics.packets.fetch_add(packets.len() as u64, Relaxed);
    for p in packets.drain(..) {
        for q in queues {
            q.push(p.clone()).await;
        }
    }
}

fn update_gauges(p: &Pipeline, m: &Metrics) {
    let c = p.correlator();
    let st = c.stats();
    m.handles.store(c.handles() as u64, Relaxed);
    m.held.store(c.held() as u64, Relaxed);
    m.hold_expired.store(st.hold_expired, Relaxed);
    m.hold_overflow.store(st.hold_overflow, Relaxed);
    m.expired.store(st.expired, Relaxed);
    m.evicted.store(st.evicted, Relaxed);
    m.unencodable.store(p.stats().unencodable, Relaxed);
}

struct HttpState {
    jobs: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
    auth: Option<Vec<u8>>,
    max_body: usize,
    max_decompressed: usize,
}

/// Compares in time that depends only on the expected value's length.
fn ct_eq(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != given.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

fn plain(status: StatusCode, msg: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], msg).into_response()
}

async fn http_ingest(State(st): State<Arc<HttpState>>, headers: HeaderMap, body: Body) -> Response {
    st.metrics.http_requests.fetch_add(1, Relaxed);
    if let Some(expected) = &st.auth {
        let given = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        if !ct_eq(expected, given) {
            st.metrics.reject(Input::Http, Reject::Unauthorized);
            let mut r = plain(
                StatusCode::UNAUTHORIZED,
                "{\"error\":\"wrong or missing credentials\"}".into(),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"heplink\""),
            );
            return r;
        }
    }
    let raw = match axum::body::to_bytes(body, st.max_body).await {
        Ok(b) => b,
        Err(_) => {
            st.metrics.reject(Input::Http, Reject::BodyTooLarge);
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("{{\"error\":\"body larger than {} bytes\"}}", st.max_body),
            );
        }
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let body = match encoding.as_str() {
        "" | "identity" => raw,
        "gzip" | "x-gzip" => match gunzip(&raw, st.max_decompressed) {
            Ok(b) => b,
            Err(GunzipError::TooLarge) => {
                st.metrics.reject(Input::Http, Reject::DecompressedTooLarge);
                return plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "{{\"error\":\"decompressed body larger than {} bytes\"}}",
                        st.max_decompressed
                    ),
                );
            }
            Err(GunzipError::Bad(e)) => {
                st.metrics.reject(Input::Http, Reject::BadGzip);
                return plain(
                    StatusCode::BAD_REQUEST,
                    format!("{{\"error\":\"bad gzip body: {}\"}}", json_escape(&e)),
                );
            }
        },
        other => {
            st.metrics.reject(Input::Http, Reject::UnsupportedEncoding);
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "{{\"error\":\"unsupported Content-Encoding {}\"}}",
                    json_escape(other)
                ),
            );
        }
    };
    let (tx, rx) = oneshot::channel();
    let job = Job {
        body,
        input: Input::Http,
        reply: Some(tx),
    };
    if st.jobs.send(job).await.is_err() {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"error\":\"shutting down\"}".into(),
        );
    }
    match rx.await {
        Ok(rejected) if rejected.is_empty() => plain(StatusCode::OK, "{\"ok\":true}".into()),
        Ok(rejected) => {
            let items: Vec<String> = rejected
                .iter()
                .map(|r| {
                    format!(
                        "{{\"index\":{},\"reason\":\"{}\",\"error\":\"{}\"}}",
                        r.index,
                        r.reason,
                        json_escape(&r.message)
                    )
                })
                .collect();
            plain(
                StatusCode::BAD_REQUEST,
                format!("{{\"rejected\":[{}]}}", items.join(",")),
            )
        }
        Err(_) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"error\":\"shutting down\"}".into(),
        ),
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::new();
    crate::janus::event::write_json_str(&mut out, s);
    out[1..out.len() - 1].to_string()
}

enum GunzipError {
    TooLarge,
    Bad(String),
}

/// Gunzips with a cap: reading stops one byte past `max`, so a bomb costs at most `max`.
fn gunzip(data: &[u8], max: usize) -> Result<Bytes, GunzipError> {
    let mut out = Vec::new();
    let mut d = flate2::read::MultiGzDecoder::new(data).take(max as u64 + 1);
    d.read_to_end(&mut out)
        .map_err(|e| GunzipError::Bad(e.to_string()))?;
    if out.len() > max {
        return Err(GunzipError::TooLarge);
    }
    Ok(Bytes::from(out))
}

struct WsState {
    jobs: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
    max_message: usize,
    stop: watch::Receiver<bool>,
}

async fn ws_upgrade(
    State(st): State<Arc<WsState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.protocols(["janus-event-handlers"])
        .max_message_size(st.max_message)
        .on_upgrade(move |socket| ws_session(socket, peer, st))
}

async fn ws_session(mut socket: WebSocket, peer: SocketAddr, st: Arc<WsState>) {
    st.metrics.ws_connections.fetch_add(1, Relaxed);
    st.metrics.ws_connections_total.fetch_add(1, Relaxed);
    tracing::info!(%peer, "Janus connected over WebSocket.");
    let mut stop = st.stop.clone();
    loop {
        let msg = tokio::select! {
            m = socket.recv() => m,
            _ = stop.wait_for(|s| *s) => break,
        };
        let body = match msg {
            Some(Ok(Message::Text(t))) => Bytes::from(t),
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                st.metrics.reject(Input::Ws, Reject::BadWsMessage);
                tracing::warn!(%peer, error = %e, "WebSocket error.");
                break;
            }
        };
        let job = Job {
            body,
            input: Input::Ws,
            reply: None,
        };
        if st.jobs.send(job).await.is_err() {
            break;
        }
    }
    st.metrics.ws_connections.fetch_sub(1, Relaxed);
    tracing::info!(%peer, "Janus WebSocket connection closed.");
}

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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let agent = start(cfg, signals()).await?;
        tracing::info!(?agent.bound, "heplink serve running.");
        agent.wait().await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"Basic abc", b"Basic abc"));
        assert!(!ct_eq(b"Basic abc", b"Basic abd"));
        assert!(!ct_eq(b"Basic abc", b"Basic ab"));
        assert!(!ct_eq(b"Basic abc", b"Basic abcd"));
        assert!(!ct_eq(b"Basic abc", b""));
    }

    #[test]
    fn gunzip_caps_bombs() {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![b' '; 10 << 20]).unwrap();
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 20_000);
        assert!(matches!(gunzip(&bomb, 1 << 20), Err(GunzipError::TooLarge)));
        assert_eq!(
            gunzip(&bomb, 10 << 20).ok().map(|b| b.len()),
            Some(10 << 20)
        );
        assert!(matches!(gunzip(b"not gzip", 100), Err(GunzipError::Bad(_))));
    }
}
