//! The one-queue topology (no partitions): Janus's exchange, when one is given, declared
//! as Janus declares it, and the durable queue the agent consumes, bound to it.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};

use super::AmqpError;
use crate::config::AmqpInput;

/// The exchange type Janus declares, as lapin names it.
fn kind(t: &str) -> ExchangeKind {
    match t {
        "fanout" => ExchangeKind::Fanout,
        "direct" => ExchangeKind::Direct,
        "topic" => ExchangeKind::Topic,
        "headers" => ExchangeKind::Headers,
        other => ExchangeKind::Custom(other.to_string()),
    }
}

/// The one-queue topology: Janus's exchange (when given) and the durable queue.
pub(super) async fn declare(channel: &Channel, cfg: &AmqpInput) -> Result<(), AmqpError> {
    let topo =
        |what: String, hint: &'static str| move |source| AmqpError::Topology { what, source, hint };
    if !cfg.exchange.is_empty() {
        // As Janus declares it (not durable): the same declaration from both sides.
        channel
            .exchange_declare(
                cfg.exchange.as_str().into(),
                kind(&cfg.exchange_type),
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(topo(
                format!("declaring exchange {:?} ({})", cfg.exchange, cfg.exchange_type),
                " (it exists with another type or durability: amqp.exchange_type must be Janus's exchange_type)",
            ))?;
    }
    channel
        .queue_declare(
            cfg.queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(topo(
            format!("declaring queue {:?}", cfg.queue),
            " (it exists with other settings: Janus's rabbitmqevh declares its route_key queue non-durable unless declare_outgoing_queue = false; delete that queue)",
        ))?;
    if !cfg.exchange.is_empty() {
        channel
            .queue_bind(
                cfg.queue.as_str().into(),
                cfg.exchange.as_str().into(),
                cfg.binding_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(topo(
                format!("binding queue {:?} to {:?}", cfg.queue, cfg.exchange),
                "",
            ))?;
    }
    Ok(())
}
