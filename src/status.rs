//! What each input says of itself, for `/health`: control state the input publishes and
//! `/health` reads. The metrics mirror some of it (`heplink_broker_connected`), but no
//! decision is taken from a counter or a gauge.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// One input: whether it is configured, whether it is up, and why not.
#[derive(Debug, Default)]
pub struct InputStatus {
    on: AtomicBool,
    up: AtomicBool,
    error: Mutex<Option<String>>,
}

impl InputStatus {
    /// The input is configured (it counts for `/health` from now on).
    pub fn enable(&self) {
        self.on.store(true, Relaxed);
    }

    /// The input listens or consumes.
    pub fn up(&self) {
        self.up.store(true, Relaxed);
        if let Ok(mut e) = self.error.lock() {
            *e = None;
        }
    }

    /// The input is down, for this reason.
    pub fn down(&self, reason: &dyn fmt::Display) {
        self.up.store(false, Relaxed);
        if let Ok(mut e) = self.error.lock() {
            *e = Some(reason.to_string());
        }
    }

    /// The input stopped (shutdown): down, with no error.
    pub fn stopped(&self) {
        self.up.store(false, Relaxed);
    }

    fn line(&self, name: &str, out: &mut String, extra: &str) -> bool {
        if !self.on.load(Relaxed) {
            return true;
        }
        if self.up.load(Relaxed) {
            let _ = writeln!(out, "{name} up{extra}");
            return true;
        }
        let e = self.error.lock().ok().and_then(|e| e.clone());
        let _ = writeln!(out, "{name} down: {}", e.as_deref().unwrap_or("connecting"));
        false
    }
}

/// Every input's status, in `/health`'s order.
#[derive(Debug, Default)]
pub struct Health {
    /// The HTTP input (sampleevh).
    pub http: InputStatus,
    /// The WebSocket input (wsevh).
    pub ws: InputStatus,
    /// The MQTT input (mqttevh), handed to its task.
    pub mqtt: Arc<InputStatus>,
    /// The RabbitMQ input (rabbitmqevh), handed to its task.
    pub amqp: Arc<InputStatus>,
}

impl Health {
    /// Whether every configured input is up, and one line per configured input
    /// (`amqp_extra` follows the AMQP input's `up`, e.g. the partitions it holds).
    pub fn report(&self, amqp_extra: &str) -> (bool, String) {
        let mut lines = String::new();
        let mut all_up = true;
        all_up &= self.http.line("http", &mut lines, "");
        all_up &= self.ws.line("ws", &mut lines, "");
        all_up &= self.mqtt.line("mqtt", &mut lines, "");
        all_up &= self.amqp.line("amqp", &mut lines, amqp_extra);
        (all_up, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_up_only_when_every_configured_input_is() {
        let h = Health::default();
        h.http.enable();
        h.http.up();
        h.mqtt.enable();
        assert_eq!(
            h.report(""),
            (false, "http up\nmqtt down: connecting\n".into())
        );
        h.mqtt.down(&"connection refused");
        assert_eq!(
            h.report(""),
            (false, "http up\nmqtt down: connection refused\n".into())
        );
        h.mqtt.up();
        h.amqp.enable();
        h.amqp.up();
        assert_eq!(
            h.report(" partitions_held=2"),
            (true, "http up\nmqtt up\namqp up partitions_held=2\n".into())
        );
    }
}
