//! Checks of values that parse but cannot work, each naming its key (and its flag where
//! an operator is likely to have given it), and the warnings `check` and `serve` print.

use std::path::Path;

use super::{Config, ConfigError};

/// A file a setting names must exist and be readable.
pub(super) fn readable_file(key: &'static str, p: &Path) -> Result<(), ConfigError> {
    match std::fs::File::open(p) {
        Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => Ok(()),
        Ok(_) => Err(ConfigError::Invalid {
            key,
            message: format!("{} is not a file", p.display()),
        }),
        Err(e) => Err(ConfigError::Invalid {
            key,
            message: format!("cannot read {}: {e}", p.display()),
        }),
    }
}

impl Config {
    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, message: String| Err(ConfigError::Invalid { key, message });
        if self.output.is_empty() {
            return bad("output", "at least one collector is needed".into());
        }
        if self.queue.capacity == 0 {
            return bad("queue.capacity", "must be at least 1".into());
        }
        if self.queue.max_bytes < crate::output::MIN_QUEUE_BYTES {
            return bad(
                "queue.max_bytes",
                format!(
                    "must be at least {} (the largest HEP packet)",
                    crate::output::MIN_QUEUE_BYTES
                ),
            );
        }
        for (key, v) in [
            ("hep.node_name", &self.hep.node_name),
            ("hep.auth_key", &self.hep.auth_key),
        ] {
            if v.contains('"') || v.contains('\\') {
                return bad(
                    key,
                    "must not contain \" or \\ (heplify-server copies it into JSON unescaped)"
                        .into(),
                );
            }
        }
        if self.http.tls_cert.is_empty() != self.http.tls_key.is_empty() {
            return bad("http.tls_cert", "tls_cert and tls_key go together".into());
        }
        if self.http.username.is_empty() != self.http.password.is_empty() {
            return bad("http.username", "username and password go together".into());
        }
        for (key, v) in [
            ("limits.max_connections", self.limits.max_connections as u64),
            (
                "limits.max_connections_per_peer",
                self.limits.max_connections_per_peer as u64,
            ),
            ("limits.header_timeout_ms", self.limits.header_timeout_ms),
            ("limits.min_rate_bytes", self.limits.min_rate_bytes),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1".into());
            }
        }
        self.validate_paths()?;
        if self.limits.body_budget_bytes < self.http.max_body_bytes {
            return bad(
                "limits.body_budget_bytes",
                format!(
                    "must be at least http.max_body_bytes ({}), or no body that size could be read",
                    self.http.max_body_bytes
                ),
            );
        }
        self.validate_exposure()?;
        self.mqtt.validate()?;
        self.amqp.validate()?;
        if !self.http.enabled
            && !self.ws.enabled
            && self.mqtt.url.is_empty()
            && self.amqp.url.is_empty()
        {
            return bad("http.enabled", "no input enabled".into());
        }
        Ok(())
    }

    /// An input open to the network beside one that is locked is an open door: refused.
    fn validate_exposure(&self) -> Result<(), ConfigError> {
        let http_locked = self.http.enabled && !self.http.username.is_empty();
        let ws_locked = self.ws.enabled && !self.ws.token.is_empty();
        if self.ws.enabled && !ws_locked && http_locked && !self.ws.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                key: "ws.token",
                message: format!(
                    "the WebSocket input listens on {} without a token while the HTTP input requires credentials: anyone who can reach it could post events. Set ws.token (--ws-token, and ?token=… in wsevh's backend URL), or listen on 127.0.0.1",
                    self.ws.listen
                ),
            });
        }
        if self.http.enabled && !http_locked && ws_locked && !self.http.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                key: "http.username",
                message: format!(
                    "the HTTP input listens on {} without credentials while the WebSocket input requires a token: anyone who can reach it could post events. Set http.username and http.password (sampleevh's backend_user / backend_pwd), or listen on 127.0.0.1",
                    self.http.listen
                ),
            });
        }
        Ok(())
    }

    /// What `check` and `serve` warn of: inputs that listen beyond loopback without
    /// credentials.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.http.enabled
            && self.http.username.is_empty()
            && !self.http.listen.ip().is_loopback()
        {
            w.push(format!("the HTTP input listens on {} without credentials (http.username / http.password): anyone who can reach it can post events", self.http.listen));
        }
        if self.ws.enabled && self.ws.token.is_empty() && !self.ws.listen.ip().is_loopback() {
            w.push(format!("the WebSocket input listens on {} without a token (ws.token): anyone who can reach it can send events", self.ws.listen));
        }
        w
    }

    /// The files and directories the settings name: checked here, so that `check` finds
    /// them and `serve` fails at start naming the setting.
    fn validate_paths(&self) -> Result<(), ConfigError> {
        if !self.http.tls_cert.is_empty() {
            readable_file(
                "http.tls_cert (--http-tls-cert)",
                Path::new(&self.http.tls_cert),
            )?;
            readable_file(
                "http.tls_key (--http-tls-key)",
                Path::new(&self.http.tls_key),
            )?;
        }
        for o in &self.output {
            for (key, f) in [
                ("output.tls.ca_file (--tls-ca)", &o.tls.ca_file),
                ("output.tls.cert_file (--tls-cert)", &o.tls.cert_file),
                ("output.tls.key_file (--tls-key)", &o.tls.key_file),
            ] {
                if let Some(p) = f {
                    readable_file(key, p)?;
                }
            }
        }
        if !self.spool.dir.is_empty() {
            let d = Path::new(&self.spool.dir);
            let usable = if d.exists() {
                d.is_dir()
            } else {
                // It will be created: its nearest existing ancestor must be a directory.
                d.ancestors()
                    .skip(1)
                    .find(|a| a.exists())
                    .is_some_and(Path::is_dir)
            };
            if !usable {
                return Err(ConfigError::Invalid {
                    key: "spool.dir (--spool-dir)",
                    message: format!("{} is not a directory and cannot be created", d.display()),
                });
            }
        }
        Ok(())
    }
}
