//! The broker inputs' settings: `[mqtt]` (Janus's mqttevh through an MQTT broker) and
//! `[amqp]` (Janus's rabbitmqevh through RabbitMQ). Each is off while its `url` is empty.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::settings::section;

/// MQTT protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
pub enum MqttVersion {
    /// MQTT 3.1.1.
    #[default]
    #[serde(rename = "3.1.1")]
    #[value(name = "3.1.1")]
    V311,
    /// MQTT 5.
    #[serde(rename = "5")]
    #[value(name = "5")]
    V5,
}

crate::settings::parsed!(MqttVersion);

section! {
    /// The MQTT input.
    pub struct MqttInput {
        /// The MQTT broker to take mqttevh's events from: `mqtt://HOST:PORT` or
        /// `mqtts://HOST:PORT` (TLS); empty: off.
        #[flag("mqtt", value_name = "URL")]
        pub url: String = String::new(),
        /// MQTT topic filters to subscribe to (mqttevh publishes to `<topic>/<type>` with
        /// `addevent = true`, its default, else to `<topic>`). The flag is repeatable.
        #[flag("mqtt-topic", value_name = "FILTER")]
        pub topics: Vec<String> = vec!["/janus/events/#".into()],
        /// MQTT protocol version.
        #[flag("mqtt-version")]
        pub version: MqttVersion = MqttVersion::V311,
        /// MQTT subscription QoS: 0 (at most once) or 1 (at least once: a message is
        /// acknowledged once its events are safe, and redelivered after a crash).
        #[flag("mqtt-qos")]
        pub qos: u8 = 1,
        /// The MQTT client id; with `persistent`, the broker keeps the session under it.
        #[flag("mqtt-client-id")]
        pub client_id: String = "heplink".into(),
        /// A persistent MQTT session (clean session off): with QoS 1 the broker keeps what
        /// is published while the agent is away.
        #[flag("mqtt-persistent")]
        pub persistent: bool = true,
        /// MQTT user name; empty: none.
        #[flag("mqtt-username")]
        pub username: String = String::new(),
        /// MQTT password.
        #[flag("mqtt-password", hide_env_values = true)]
        pub password: String = String::new(),
        /// Largest MQTT message accepted, bytes (the connection is closed beyond: the
        /// broker's `max_packet_size` should be lower).
        #[flag("mqtt-max-message-bytes")]
        pub max_message_bytes: usize = 1 << 20,
        #[table(skip_serializing_if = "crate::settings::is_default")]
        /// TLS settings for `mqtts://`.
        pub tls: MqttTls,
    }
}

section! {
    /// TLS settings of the MQTT input (`mqtts://`). The broker's certificate is verified
    /// for the URL's host.
    pub struct MqttTls {
        /// PEM file of the CA(s) that signed the MQTT broker's certificate; none: the
        /// system's.
        #[flag("mqtt-tls-ca", value_name = "FILE")]
        pub ca_file: Option<PathBuf> = None,
        /// Client certificate chain (PEM) for the MQTT broker, when it asks for one.
        #[flag("mqtt-tls-cert", value_name = "FILE", requires = "mqtt-tls-key")]
        pub cert_file: Option<PathBuf> = None,
        /// The MQTT client certificate's private key (PEM).
        #[flag("mqtt-tls-key", value_name = "FILE", requires = "mqtt-tls-cert")]
        pub key_file: Option<PathBuf> = None,
        /// Accept any MQTT broker certificate. INSECURE: for tests and lab brokers only.
        #[flag("mqtt-tls-insecure-skip-verify", action = clap::ArgAction::SetTrue)]
        pub insecure_skip_verify: bool = false,
    }
}

impl MqttTls {
    /// The settings of the TLS client.
    pub fn client(&self) -> crate::tls::TlsClient {
        crate::tls::TlsClient {
            ca_file: self.ca_file.clone(),
            server_name: None,
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            insecure_skip_verify: self.insecure_skip_verify,
        }
    }
}

section! {
    /// The AMQP (RabbitMQ) input.
    pub struct AmqpInput {
        /// RabbitMQ to take rabbitmqevh's events from:
        /// `amqp://USER:PASS@HOST:PORT/VHOST` or `amqps://…`; empty: off.
        #[flag("amqp", value_name = "URL", hide_env_values = true)]
        pub url: String = String::new(),
        /// The AMQP queue the agent declares (durable) and consumes; with `partitions`,
        /// the base name of the partition queues (`<queue>.0` …).
        #[flag("amqp-queue", value_name = "NAME")]
        pub queue: String = "janus-events".into(),
        /// An AMQP exchange to bind the queue to (declared as Janus declares it: not
        /// durable, of `exchange_type`); empty: none (Janus then publishes to the queue by
        /// its name through the default exchange: its `route_key` must be `queue`).
        #[flag("amqp-exchange", value_name = "NAME")]
        pub exchange: String = String::new(),
        /// The AMQP exchange's type, as in Janus's `exchange_type` (with `partitions`:
        /// `x-consistent-hash`, whatever this says).
        #[flag("amqp-exchange-type")]
        pub exchange_type: String = "fanout".into(),
        /// The binding key of the AMQP queue to the exchange (`#`: everything on a topic
        /// exchange; ignored by fanout).
        #[flag("amqp-binding-key")]
        pub binding_key: String = "#".into(),
        /// AMQP messages delivered and not yet acknowledged, at most (per queue consumed).
        #[flag("amqp-prefetch", value_name = "N")]
        pub prefetch: u16 = 1000,
        /// Scale-out: the number of AMQP partition queues behind a consistent-hash
        /// exchange (`exchange`, required then), each consumed by one agent at a time; 0:
        /// one queue.
        #[flag("amqp-partitions", value_name = "N")]
        pub partitions: u16 = 0,
        /// Scale-out: how long the correlation log keeps what it needs to rebuild a
        /// partition's state on another agent, seconds (sessions older than this lose
        /// their room after a failover).
        #[flag("amqp-state-max-age-s", value_name = "SECONDS")]
        pub state_max_age_s: u64 = 6 * 3600,
        /// Largest AMQP message accepted, bytes (rejected without redelivery beyond).
        #[flag("amqp-max-message-bytes")]
        pub max_message_bytes: usize = 8 << 20,
        /// `amqps://`: PEM file of the CA(s) that signed the broker's certificate; empty:
        /// the system's.
        #[flag("amqp-ca-file", value_name = "FILE")]
        pub ca_file: String = String::new(),
    }
}

/// `url` with its password (`user:password@`) masked, for logs and `heplink check`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{name}:********@{host}")
        }
        _ => url.to_string(),
    }
}

/// A broker's address, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Whether it is the TLS scheme (`mqtts`, `amqps`).
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User and password from the URL, if any.
    pub user: Option<(String, String)>,
}

impl BrokerUrl {
    /// Parses `SCHEME://[USER[:PASS]@]HOST[:PORT][/…]` for `plain` / `tls` schemes.
    pub fn parse(
        key: &'static str,
        url: &str,
        (plain, tls, plain_port, tls_port): (&str, &str, u16, u16),
    ) -> Result<BrokerUrl, ConfigError> {
        let bad = |message: String| ConfigError::Invalid { key, message };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad(format!("{url:?}: expected {plain}://HOST:PORT")))?;
        let is_tls = match scheme {
            s if s == plain => false,
            s if s == tls => true,
            s => return Err(bad(format!("scheme {s:?}: expected {plain} or {tls}"))),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => {
                let (name, pass) = u.split_once(':').unwrap_or((u, ""));
                (Some((name.to_string(), pass.to_string())), h)
            }
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad(format!("port {p:?} is not a number from 1 to 65535")))?,
            ),
            _ => (hostport, if is_tls { tls_port } else { plain_port }),
        };
        if host.is_empty() {
            return Err(bad(format!("{url:?}: no host")));
        }
        Ok(BrokerUrl {
            tls: is_tls,
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port,
            user,
        })
    }
}

/// A setting that parses but cannot work.
fn bad(key: &'static str, message: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key,
        message: message.into(),
    })
}

impl MqttInput {
    /// The broker's address.
    pub fn broker(&self) -> Result<BrokerUrl, ConfigError> {
        BrokerUrl::parse(
            "mqtt.url (--mqtt)",
            &self.url,
            ("mqtt", "mqtts", 1883, 8883),
        )
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.url.is_empty() {
            return Ok(());
        }
        self.broker()?;
        if self.topics.is_empty() || self.topics.iter().any(String::is_empty) {
            return bad(
                "mqtt.topics (--mqtt-topic)",
                "at least one non-empty filter",
            );
        }
        if self.qos > 1 {
            return bad("mqtt.qos (--mqtt-qos)", "0 or 1");
        }
        if self.client_id.is_empty() {
            return bad("mqtt.client_id (--mqtt-client-id)", "must not be empty");
        }
        if self.max_message_bytes < 1024 {
            return bad("mqtt.max_message_bytes", "at least 1024");
        }
        Ok(())
    }
}

impl AmqpInput {
    /// The broker's address.
    pub fn broker(&self) -> Result<BrokerUrl, ConfigError> {
        BrokerUrl::parse(
            "amqp.url (--amqp)",
            &self.url,
            ("amqp", "amqps", 5672, 5671),
        )
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.url.is_empty() {
            return Ok(());
        }
        self.broker()?;
        if self.queue.is_empty() {
            return bad("amqp.queue (--amqp-queue)", "must not be empty");
        }
        if self.prefetch == 0 {
            return bad("amqp.prefetch (--amqp-prefetch)", "at least 1");
        }
        if self.partitions > 0 && self.exchange.is_empty() {
            return bad(
                "amqp.exchange (--amqp-exchange)",
                "partitions need the consistent-hash exchange Janus publishes to",
            );
        }
        if !self.ca_file.is_empty() {
            super::readable_file("amqp.ca_file", std::path::Path::new(&self.ca_file))?;
        }
        if self.partitions > 1000 {
            return bad("amqp.partitions (--amqp-partitions)", "at most 1000");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            redact_url("amqp://guest:s3cret@host:5672/%2f"),
            "amqp://guest:********@host:5672/%2f"
        );
        assert_eq!(redact_url("mqtt://host:1883"), "mqtt://host:1883");
        assert_eq!(redact_url("mqtt://user@host"), "mqtt://user@host");
    }

    #[test]
    fn broker_urls() {
        let m = MqttInput {
            url: "mqtts://u:p@broker.example:8884".into(),
            ..Default::default()
        };
        let b = m.broker().unwrap();
        assert!(b.tls);
        assert_eq!((b.host.as_str(), b.port), ("broker.example", 8884));
        assert_eq!(b.user, Some(("u".into(), "p".into())));
        let a = AmqpInput {
            url: "amqp://guest:guest@[::1]/%2f".into(),
            ..Default::default()
        };
        let b = a.broker().unwrap();
        assert_eq!((b.host.as_str(), b.port, b.tls), ("::1", 5672, false));
        for bad in ["http://x", "mqtt://:1883", "mqtt://h:99999", "nohost"] {
            let m = MqttInput {
                url: bad.into(),
                ..Default::default()
            };
            assert!(m.validate().is_err(), "{bad}");
        }
    }
}
