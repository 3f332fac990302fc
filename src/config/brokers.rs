//! The broker inputs' settings: `[mqtt]` (Janus's mqttevh through an MQTT broker) and
//! `[amqp]` (Janus's rabbitmqevh through RabbitMQ). Each is off while its `url` is empty.

use serde::{Deserialize, Serialize};

use super::ConfigError;

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

/// The MQTT input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttInput {
    /// The broker: `mqtt://HOST:PORT` or `mqtts://HOST:PORT` (TLS); empty: off.
    pub url: String,
    /// Topic filters to subscribe to (mqttevh publishes to `<topic>/<type>` with
    /// `addevent = true`, its default, else to `<topic>`).
    pub topics: Vec<String>,
    /// Protocol version.
    pub version: MqttVersion,
    /// Subscription QoS: 0 (at most once) or 1 (at least once: a message is acknowledged
    /// once its events are safe, and redelivered after a crash).
    pub qos: u8,
    /// The client id; with `persistent`, the broker keeps the session under it.
    pub client_id: String,
    /// A persistent session (clean session off): with QoS 1 the broker keeps what is
    /// published while the agent is away.
    pub persistent: bool,
    /// User name; empty: none.
    pub username: String,
    /// Password.
    pub password: String,
    /// Largest message accepted, bytes (the connection is closed beyond: the broker's
    /// `max_packet_size` should be lower).
    pub max_message_bytes: usize,
    /// TLS settings for `mqtts://`.
    #[serde(default, skip_serializing_if = "super::is_default_tls")]
    pub tls: crate::tls::TlsClient,
}

impl Default for MqttInput {
    fn default() -> Self {
        MqttInput {
            url: String::new(),
            topics: vec!["/janus/events/#".into()],
            version: MqttVersion::V311,
            qos: 1,
            client_id: "heplink".into(),
            persistent: true,
            username: String::new(),
            password: String::new(),
            max_message_bytes: 1 << 20,
            tls: Default::default(),
        }
    }
}

/// The AMQP (RabbitMQ) input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpInput {
    /// The broker: `amqp://USER:PASS@HOST:PORT/VHOST` or `amqps://…`; empty: off.
    pub url: String,
    /// The queue the agent declares (durable) and consumes; with `partitions`, the base
    /// name of the partition queues (`<queue>.0` …).
    pub queue: String,
    /// An exchange to bind the queue to (declared as Janus declares it: not durable, of
    /// `exchange_type`); empty: none (Janus then publishes to the queue by its name
    /// through the default exchange: its `route_key` must be `queue`).
    pub exchange: String,
    /// The exchange's type, as in Janus's `exchange_type` (with `partitions`:
    /// `x-consistent-hash`, whatever this says).
    pub exchange_type: String,
    /// The binding key of the queue to the exchange (`#`: everything on a topic exchange;
    /// ignored by fanout).
    pub binding_key: String,
    /// Messages delivered and not yet acknowledged, at most (per queue consumed).
    pub prefetch: u16,
    /// Scale-out: the number of partition queues behind a consistent-hash exchange
    /// (`exchange`, required then), each consumed by one agent at a time; 0: one queue.
    pub partitions: u16,
    /// Scale-out: how long the correlation log keeps what it needs to rebuild a
    /// partition's state on another agent, seconds (sessions older than this lose their
    /// room after a failover).
    pub state_max_age_s: u64,
    /// Largest message accepted, bytes (rejected without redelivery beyond).
    pub max_message_bytes: usize,
    /// `amqps://`: PEM file of the CA(s) that signed the broker's certificate; empty: the
    /// system's.
    pub ca_file: String,
}

impl Default for AmqpInput {
    fn default() -> Self {
        AmqpInput {
            url: String::new(),
            queue: "janus-events".into(),
            exchange: String::new(),
            exchange_type: "fanout".into(),
            binding_key: "#".into(),
            prefetch: 1000,
            partitions: 0,
            state_max_age_s: 6 * 3600,
            max_message_bytes: 8 << 20,
            ca_file: String::new(),
        }
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
        if self.tls.server_name.is_some() {
            return bad(
                "mqtt.tls.server_name",
                "not supported: the broker's certificate is verified for the URL's host",
            );
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
