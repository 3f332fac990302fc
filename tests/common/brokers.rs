//! Real brokers on loopback for the broker-input tests: Debian's `mosquitto` and
//! `rabbitmq-server` (with its consistent-hash exchange plugin), each started here with a
//! configuration and data directory of the test's own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, wait_or_kill};

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_port(port: u16, within: Duration, what: &str, log: &Path) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A mosquitto broker on 127.0.0.1, persisting its sessions in the test's directory.
pub struct Mosquitto {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    conf: PathBuf,
    log: PathBuf,
}

impl Mosquitto {
    /// Starts one in `dir` on a free port.
    pub fn start(dir: &Path) -> Mosquitto {
        Self::start_with(dir, "")
    }

    /// Starts one in `dir` on a free port, with `extra` configuration after the plain
    /// listener's (e.g. a TLS listener of its own).
    pub fn start_with(dir: &Path, extra: &str) -> Mosquitto {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        let log = dir.join("mosquitto.log");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\npersistence_location {}/\nautosave_interval 1\n\
                 max_inflight_messages 0\nmax_queued_messages 1000000\nlog_dest file {}\n{extra}",
                dir.display(),
                log.display()
            ),
        )
        .unwrap();
        let mut m = Mosquitto {
            child: None,
            port,
            conf,
            log,
        };
        m.up();
        m
    }

    /// Starts it (again) on its port.
    pub fn up(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is not installed (apt-get install mosquitto)");
        self.child = Some(child);
        wait_port(self.port, Duration::from_secs(10), "mosquitto", &self.log);
    }

    /// Stops it as an operator's restart does (SIGTERM: it saves its sessions), then
    /// starts it again on the same port after `down`.
    pub fn restart(&mut self, down: Duration) {
        self.stop();
        std::thread::sleep(down);
        self.up();
    }

    /// Stops it (SIGTERM).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            wait_or_kill(&mut c, Duration::from_secs(10));
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// RabbitMQ's own scripts: they run as the calling user (root in CI), where Debian's
/// wrappers in /usr/sbin switch to the `rabbitmq` user and its home.
pub const RABBIT_BIN: &str = "/usr/lib/rabbitmq/bin/";

/// Stops the node's epmd: it refuses while the node is still registered, so a few tries.
const KILL_EPMD: &str =
    "for i in 1 2 3 4 5 6 7 8 9 10; do epmd -kill >/dev/null 2>&1 && break; sleep 0.5; done";

/// A RabbitMQ node on 127.0.0.1 (its own node name, ports, Erlang cookie, data and
/// epmd), with the consistent-hash exchange plugin.
pub struct Rabbit {
    child: Option<Child>,
    /// AMQP port.
    pub port: u16,
    /// AMQPS port (a certificate for 127.0.0.1 signed by `ca`).
    pub tls_port: u16,
    /// The CA of the AMQPS listener's certificate.
    pub ca: PathBuf,
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Rabbit {
    /// Starts one in `dir`.
    pub fn start(dir: &Path) -> Rabbit {
        let port = free_port();
        let dist = free_port();
        let epmd = free_port();
        let node = format!("heplink{port}@localhost");
        let tls_port = free_port();
        let (ca, issuer) = super::pki::make_ca(dir, "rabbit-ca");
        let (cert, key) = super::pki::leaf(dir, "rabbit", &["localhost", "127.0.0.1"], &issuer);
        std::fs::write(
            dir.join("enabled_plugins"),
            "[rabbitmq_consistent_hash_exchange].\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.1 = 127.0.0.1:{port}\nloopback_users = none\nlog.file.level = info\n\
                 listeners.ssl.1 = 127.0.0.1:{tls_port}\nssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\nssl_options.keyfile = {}\nssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n",
                ca.display(),
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        let env = vec![
            ("HOME", dir.display().to_string()),
            ("RABBITMQ_NODENAME", node),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".into()),
            ("RABBITMQ_NODE_PORT", port.to_string()),
            ("RABBITMQ_DIST_PORT", dist.to_string()),
            ("ERL_EPMD_PORT", epmd.to_string()),
            ("ERL_EPMD_ADDRESS", "127.0.0.1".into()),
            (
                "RABBITMQ_CONFIG_FILE",
                dir.join("rabbitmq.conf").display().to_string(),
            ),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                dir.join("enabled_plugins").display().to_string(),
            ),
            (
                "RABBITMQ_MNESIA_BASE",
                dir.join("mnesia").display().to_string(),
            ),
            ("RABBITMQ_LOG_BASE", dir.join("log").display().to_string()),
            (
                "ERL_CRASH_DUMP",
                dir.join("erl_crash.dump").display().to_string(),
            ),
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}".into(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut r = Rabbit {
            child: None,
            port,
            tls_port,
            ca,
            dir: dir.to_path_buf(),
            env,
        };
        r.up();
        r.watchdog();
        r
    }

    /// A node shared by a test binary's tests is never dropped: a watchdog stops it, and
    /// its epmd, once the test process is gone.
    fn watchdog(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {RABBIT_BIN}rabbitmqctl stop >/dev/null 2>&1; {KILL_EPMD}",
            pid = std::process::id()
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    fn up(&mut self) {
        let child = Command::new(RABBIT_BIN.to_string() + "rabbitmq-server")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server is not installed (apt-get install rabbitmq-server)");
        self.child = Some(child);
        wait_port(
            self.port,
            Duration::from_secs(60),
            "rabbitmq-server",
            &self.dir.join("log"),
        );
    }

    /// Stops it (`rabbitmqctl stop`, as an operator's restart), then starts it again.
    pub fn restart(&mut self, down: Duration) {
        self.stop();
        std::thread::sleep(down);
        self.up();
    }

    /// Stops it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new(RABBIT_BIN.to_string() + "rabbitmqctl")
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .arg("stop")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            wait_or_kill(&mut c, Duration::from_secs(30));
        }
    }

    /// `rabbitmqctl ARGS…`'s output.
    pub fn ctl(&self, args: &[&str]) -> String {
        let o = Command::new(RABBIT_BIN.to_string() + "rabbitmqctl")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Its URL (guest, default vhost).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        self.stop();
        // Its epmd was started for this node's port: stop it too.
        if let Some((_, p)) = self.env.iter().find(|(k, _)| k == "ERL_EPMD_PORT") {
            let _ = Command::new("sh")
                .args(["-c", KILL_EPMD])
                .env("ERL_EPMD_PORT", p)
                .status();
        }
    }
}

/// A TCP HEP receiver on loopback that records, for each packet, how long after its HEP
/// timestamp it arrived (µs): the end-to-end latency when the events carry the time they
/// were published.
pub async fn latency_receiver() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
) {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let lat = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = lat.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let out = out.clone();
            tokio::spawn(async move {
                let mut buf = bytes::BytesMut::with_capacity(1 << 16);
                while matches!(s.read_buf(&mut buf).await, Ok(n) if n > 0) {
                    let now = heplink::time::now_us();
                    while let Ok(Some(f)) = heplink::proto::next_frame(&mut buf) {
                        if let Ok(p) = heplink::proto::decode(&f, heplink::proto::Mode::Strict) {
                            if let Some(t) = p.timestamp_micros() {
                                out.lock().unwrap().push(now.saturating_sub(t));
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, lat)
}

/// The 50th and 99th percentiles of `v`, in µs.
pub fn p50_p99(v: &mut [u64]) -> (u64, u64) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize];
    (at(0.5), at(0.99))
}
