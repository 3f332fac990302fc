//! The AMQP input: consumes what Janus's rabbitmqevh publishes to RabbitMQ (arrays of up
//! to 100 events with its default `grouping = true`, or single objects) from a durable
//! queue the agent declares, bound to Janus's exchange when one is given.
//!
//! A message is acknowledged only once its events are safe (queued to every collector,
//! and in every spool when the spool is on: see `input::settle`); one in which nothing
//! reads as an event, or over `max_message_bytes`, is rejected without requeue and
//! counted, so that it never comes back to poison the queue. The prefetch bounds what is
//! delivered and not yet acknowledged. A lost connection is opened again with a growing
//! pause (0.1 s doubling to 5 s) and the topology declared again; what was delivered and
//! not acknowledged comes again (counted as redelivered).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use tokio::sync::{mpsc, watch};

use super::mqtt::stopped;
use super::{Job, Outcome, Receipt, Tag};
use crate::config::AmqpInput;
use crate::metrics::{BrokerMetrics, Input, Metrics};

/// Why the AMQP input could not open its connection or topology.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// Connecting or logging in failed.
    #[error("connecting to {url}: {source}")]
    Connect {
        /// The broker (without password).
        url: String,
        /// What lapin said.
        source: lapin::Error,
    },
    /// A declaration, binding or the consumer failed.
    #[error("{what}: {source}{hint}")]
    Topology {
        /// What was being done.
        what: String,
        /// What lapin said.
        source: lapin::Error,
        /// A hint for the common mistakes.
        hint: &'static str,
    },
}

/// An open connection with its consuming channel.
struct Session {
    conn: Connection,
    channel: Channel,
    consumer: Consumer,
    tag: String,
}

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

fn redacted(url: &str) -> String {
    match url.split_once('@') {
        Some((head, tail)) => {
            let user = head.rsplit_once(':').map_or(head, |(u, _)| u);
            format!("{user}:…@{tail}")
        }
        None => url.to_string(),
    }
}

async fn open(cfg: &AmqpInput) -> Result<Session, AmqpError> {
    let conn = Connection::connect(&cfg.url, ConnectionProperties::default())
        .await
        .map_err(|source| AmqpError::Connect {
            url: redacted(&cfg.url),
            source,
        })?;
    let topo =
        |what: String, hint: &'static str| move |source| AmqpError::Topology { what, source, hint };
    let channel = conn
        .create_channel()
        .await
        .map_err(topo("opening a channel".into(), ""))?;
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
    channel
        .basic_qos(cfg.prefetch, BasicQosOptions::default())
        .await
        .map_err(topo("setting the prefetch".into(), ""))?;
    let tag = format!("heplink-{}", std::process::id());
    let consumer = channel
        .basic_consume(
            cfg.queue.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(topo(format!("consuming {:?}", cfg.queue), ""))?;
    Ok(Session {
        conn,
        channel,
        consumer,
        tag,
    })
}

/// Acknowledges or rejects a settled message on the session it came on.
async fn settle(s: &Session, m: &BrokerMetrics, connection: u64, tag: Tag, outcome: Outcome) {
    if tag.connection != connection {
        return; // its channel is gone: the broker delivers it again
    }
    let r = match outcome {
        Outcome::Safe => {
            m.acks.fetch_add(1, Relaxed);
            s.channel
                .basic_ack(tag.delivery, BasicAckOptions::default())
                .await
        }
        Outcome::Malformed => {
            m.nacks.fetch_add(1, Relaxed);
            s.channel
                .basic_reject(tag.delivery, BasicRejectOptions { requeue: false })
                .await
        }
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, "AMQP acknowledgement not sent: the broker delivers the message again.");
    }
}

/// Runs the AMQP input until `stop` turns true, then acknowledges what the pipeline still
/// settles (until it drops the last receipt or `drain` runs out) and closes.
pub async fn run(
    cfg: AmqpInput,
    jobs: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let m: &BrokerMetrics = &metrics.brokers[1];
    let (tx, mut rx) = mpsc::unbounded_channel::<(Tag, Outcome)>();
    let mut connection = 0u64;
    let mut pause = Duration::from_millis(100);
    let mut failures = 0u64;
    let mut session: Option<Session> = None;
    'run: loop {
        let s = match session.as_mut() {
            Some(s) => s,
            None => {
                match open(&cfg).await {
                    Ok(s) => {
                        connection += 1;
                        m.connections.fetch_add(1, Relaxed);
                        m.connected.store(1, Relaxed);
                        pause = Duration::from_millis(100);
                        failures = 0;
                        tracing::info!(url = %redacted(&cfg.url), queue = %cfg.queue, exchange = %cfg.exchange, "AMQP input consuming.");
                        session = Some(s);
                    }
                    Err(e) => {
                        m.down(&e);
                        failures += 1;
                        if failures == 1 || failures.is_power_of_two() {
                            tracing::warn!(error = %e, failures, retry_in = ?pause, "AMQP input cannot consume.");
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = stopped(&mut stop) => break 'run,
                        }
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
                continue;
            }
        };
        tokio::select! {
            d = s.consumer.next() => match d {
                Some(Ok(d)) => {
                    m.messages.fetch_add(1, Relaxed);
                    if d.redelivered {
                        m.redeliveries.fetch_add(1, Relaxed);
                    }
                    let tag = Tag { connection, delivery: d.delivery_tag };
                    if d.data.len() > cfg.max_message_bytes {
                        metrics.reject(Input::Amqp, crate::metrics::Reject::BodyTooLarge);
                        settle(s, m, connection, tag, Outcome::Malformed).await;
                        continue;
                    }
                    let job = Job {
                        body: Bytes::from(d.data),
                        input: Input::Amqp,
                        reply: None,
                        receipt: Some(Receipt { to: tx.clone(), tag }),
                    };
                    if jobs.send(job).await.is_err() {
                        break 'run;
                    }
                }
                Some(Err(e)) => {
                    m.down(&e);
                    tracing::warn!(error = %e, "AMQP connection lost.");
                    session = None;
                }
                None => {
                    m.down(&"consumer cancelled");
                    tracing::warn!("AMQP consumer cancelled by the broker.");
                    session = None;
                }
            },
            Some((tag, outcome)) = rx.recv() => settle(s, m, connection, tag, outcome).await,
            _ = stopped(&mut stop) => break 'run,
        }
    }
    // Stopping: no new delivery is taken; what the pipeline settles is acknowledged.
    drop((tx, jobs));
    if let Some(s) = session.as_ref() {
        let _ = s
            .channel
            .basic_cancel(s.tag.as_str().into(), BasicCancelOptions::default())
            .await;
        let deadline = tokio::time::Instant::now() + drain;
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Some((tag, outcome)) => settle(s, m, connection, tag, outcome).await,
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let _ = s.conn.close(200, "heplink stopping".into()).await;
    }
    m.connected.store(0, Relaxed);
}
