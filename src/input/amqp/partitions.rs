//! Scale-out on RabbitMQ: N partition queues behind a consistent-hash exchange, each
//! consumed by every agent with one active at a time, and a correlation log per partition
//! from which an agent that takes a partition over rebuilds what the previous one knew.
//!
//! Topology, declared by every agent (idempotent):
//! - the exchange `amqp.exchange`, of type `x-consistent-hash`, not durable, as Janus's
//!   rabbitmqevh declares it (each Janus with a `route_key` of its own: the hash of the
//!   routing key picks the partition, so all of one Janus's events go to one partition);
//! - `<queue>.<i>`: quorum queues with single-active-consumer, bound with weight 1;
//! - `<queue>.<i>.log`: streams, kept `amqp.state_max_age_s`.
//!
//! The active agent of a partition appends to its log every body it takes, less the media
//! statistics (the bulk of Janus's events, and no part of what correlation knows), and
//! acknowledges a message only once its log entry is confirmed and its events are safe.
//! An agent that becomes active on a partition (its first delivery from it) first appends
//! a marker to the log, then reads the log from its start up to that marker through the
//! correlator without sending anything (`Job::warm`), then takes the deliveries.

use bytes::Bytes;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use tokio::sync::mpsc;

use super::AmqpError;
use crate::ack::Job;
use crate::config::AmqpInput;
use crate::telemetry::Input;

/// The header marking a takeover's marker.
const MARKER: &str = "heplink-marker";

/// Partition `i`'s queue.
pub fn queue(cfg: &AmqpInput, i: usize) -> String {
    format!("{}.{i}", cfg.queue)
}

/// Partition `i`'s correlation log.
pub fn log(cfg: &AmqpInput, i: usize) -> String {
    format!("{}.{i}.log", cfg.queue)
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn topo(what: String, hint: &'static str) -> impl FnOnce(lapin::Error) -> AmqpError {
    move |source| AmqpError::Topology { what, source, hint }
}

/// Declares the exchange, the partition queues and their logs.
pub async fn declare(ch: &Channel, cfg: &AmqpInput) -> Result<(), AmqpError> {
    ch.exchange_declare(
        cfg.exchange.as_str().into(),
        ExchangeKind::Custom("x-consistent-hash".into()),
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(topo(
        format!("declaring exchange {:?} (x-consistent-hash)", cfg.exchange),
        " (is the rabbitmq_consistent_hash_exchange plugin on? Janus's exchange_type must be x-consistent-hash)",
    ))?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for i in 0..usize::from(cfg.partitions) {
        let q = queue(cfg, i);
        ch.queue_declare(
            q.as_str().into(),
            durable,
            table(&[
                ("x-queue-type", AMQPValue::LongString("quorum".into())),
                ("x-single-active-consumer", AMQPValue::Boolean(true)),
            ]),
        )
        .await
        .map_err(topo(
            format!("declaring partition queue {q:?}"),
            " (it exists with other settings)",
        ))?;
        ch.queue_bind(
            q.as_str().into(),
            cfg.exchange.as_str().into(),
            "1".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(topo(format!("binding {q:?}"), ""))?;
        let l = log(cfg, i);
        ch.queue_declare(
            l.as_str().into(),
            durable,
            table(&[
                ("x-queue-type", AMQPValue::LongString("stream".into())),
                (
                    "x-max-age",
                    AMQPValue::LongString(format!("{}s", cfg.state_max_age_s).into()),
                ),
            ]),
        )
        .await
        .map_err(topo(
            format!("declaring correlation log {l:?}"),
            " (streams need RabbitMQ 3.9 or later)",
        ))?;
    }
    Ok(())
}

/// What of a body goes into the correlation log: every event but the media statistics
/// (type 32), as a JSON array; `None` when nothing is left.
pub fn log_body(body: &Bytes) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: Option<u64>,
    }
    let mut out = Vec::with_capacity(body.len());
    out.push(b'[');
    let mut n = 0;
    for piece in crate::janus::split::split_events_full(body)
        .into_iter()
        .flatten()
    {
        let keep = serde_json::from_slice::<Kind>(&piece).is_ok_and(|k| k.kind != Some(32));
        if keep {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&piece);
            n += 1;
        }
    }
    out.push(b']');
    (n > 0).then_some(out)
}

/// The agents consuming the partitions: each announces itself once a second on the
/// fanout exchange `<queue>.agents`, and each counts who it heard from lately.
pub struct Members {
    me: String,
    seen: std::collections::HashMap<String, tokio::time::Instant>,
}

/// The consumer index the membership announcements are forwarded with.
pub const MEMBERS: usize = usize::MAX;

impl Members {
    /// This agent's membership, with an id of its own.
    pub fn new() -> Members {
        Members {
            me: format!("{}-{}", std::process::id(), crate::time::now_us()),
            seen: Default::default(),
        }
    }

    /// Declares the exchange and this agent's own queue on it; its consumer (no acks).
    pub async fn join(&self, ch: &Channel, cfg: &AmqpInput) -> Result<lapin::Consumer, AmqpError> {
        let ex = format!("{}.agents", cfg.queue);
        ch.exchange_declare(
            ex.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(topo(format!("declaring {ex:?}"), ""))?;
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(topo("declaring the membership queue".into(), ""))?;
        ch.queue_bind(
            q.name().clone(),
            ex.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(topo(format!("binding to {ex:?}"), ""))?;
        ch.basic_consume(
            q.name().clone(),
            format!("heplink-members-{}", self.me).as_str().into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(topo("consuming the membership queue".into(), ""))
    }

    /// Announces this agent.
    pub async fn announce(&self, ch: &Channel, cfg: &AmqpInput) {
        let _ = ch
            .basic_publish(
                format!("{}.agents", cfg.queue).as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                self.me.as_bytes(),
                BasicProperties::default(),
            )
            .await;
    }

    /// An announcement heard.
    pub fn heard(&mut self, body: &[u8]) {
        self.seen.insert(
            String::from_utf8_lossy(body).into_owned(),
            tokio::time::Instant::now(),
        );
    }

    /// The agents heard from in the last 3 s (this one included).
    pub fn count(&mut self) -> u64 {
        let now = tokio::time::Instant::now();
        self.seen
            .retain(|_, t| now.duration_since(*t) < std::time::Duration::from_secs(3));
        self.seen.len().max(1) as u64
    }
}

impl Default for Members {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends a body to partition `i`'s log; the confirmation to wait for.
pub async fn append(
    ch: &Channel,
    cfg: &AmqpInput,
    i: usize,
    body: &[u8],
) -> Result<lapin::PublisherConfirm, lapin::Error> {
    ch.basic_publish(
        "".into(),
        log(cfg, i).as_str().into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default().with_delivery_mode(2),
    )
    .await
}

/// A channel for appending to the logs, with publisher confirms.
pub async fn log_channel(conn: &Connection) -> Result<Channel, AmqpError> {
    let ch = conn
        .create_channel()
        .await
        .map_err(topo("opening the log channel".into(), ""))?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(topo("publisher confirms on the log channel".into(), ""))?;
    Ok(ch)
}

/// Rebuilds what the previous agent knew of partition `i`: appends a marker to its log,
/// then hands every body logged before it to the pipeline as a warm job. The number of
/// bodies replayed.
pub async fn take_over(
    conn: &Connection,
    log_ch: &Channel,
    cfg: &AmqpInput,
    i: usize,
    jobs: &mpsc::Sender<Job>,
) -> Result<u64, AmqpError> {
    let nonce = format!("{}-{}-{}", std::process::id(), i, crate::time::now_us());
    let l = log(cfg, i);
    log_ch
        .basic_publish(
            "".into(),
            l.as_str().into(),
            BasicPublishOptions::default(),
            b"",
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(table(&[(
                    MARKER,
                    AMQPValue::LongString(nonce.as_str().into()),
                )])),
        )
        .await
        .map_err(topo(format!("marking {l:?}"), ""))?
        .await
        .map_err(topo(format!("marking {l:?}"), ""))?;
    let ch = conn
        .create_channel()
        .await
        .map_err(topo("opening a replay channel".into(), ""))?;
    ch.basic_qos(1000, BasicQosOptions::default())
        .await
        .map_err(topo("replay prefetch".into(), ""))?;
    let tag = format!("heplink-replay-{nonce}");
    let mut c = ch
        .basic_consume(
            l.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            table(&[(
                "x-stream-offset",
                AMQPValue::LongString(LongString::from("first")),
            )]),
        )
        .await
        .map_err(topo(format!("reading {l:?}"), ""))?;
    let mut n = 0;
    while let Some(d) = c.next().await {
        let d = d.map_err(topo(format!("reading {l:?}"), ""))?;
        let headers = d.properties.headers().as_ref().map(|h| h.inner().clone());
        let header = |k: &str| headers.as_ref().and_then(|h| h.get(k).cloned());
        let _ = ch
            .basic_ack(d.delivery_tag, BasicAckOptions::default())
            .await;
        if let Some(AMQPValue::LongString(m)) = header(MARKER) {
            if m.to_string() == nonce {
                break;
            }
            continue; // an earlier takeover's marker
        }
        let job = Job {
            body: Bytes::from(d.data),
            input: Input::Amqp,
            receipt: None,
            warm: true,
        };
        if jobs.send(job).await.is_err() {
            break;
        }
        n += 1;
    }
    let _ = ch
        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
        .await;
    let _ = ch.close(200, "replayed".into()).await;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_every_event_but_media_statistics() {
        let body = Bytes::from_static(
            br#"[{"type":1,"session_id":1},{"type":32,"subtype":3},{"type":64,"event":{}}]"#,
        );
        let out = log_body(&body).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"[{"type":1,"session_id":1},{"type":64,"event":{}}]"#
        );
        assert!(log_body(&Bytes::from_static(br#"{"type":32}"#)).is_none());
        assert!(log_body(&Bytes::from_static(b"garbage")).is_none());
    }
}
