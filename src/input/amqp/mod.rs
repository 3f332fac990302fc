//! The AMQP input: consumes what Janus's rabbitmqevh publishes to RabbitMQ (arrays of up
//! to 100 events with its default `grouping = true`, or single objects) from a durable
//! queue the agent declares, bound to Janus's exchange when one is given.
//!
//! A message is acknowledged only once its events are safe (queued to every collector,
//! and in every spool when the spool is on: see `ack::settle`); one in which nothing
//! reads as an event, or over `max_message_bytes`, is rejected without requeue and
//! counted, so that it never comes back to poison the queue. The prefetch bounds what is
//! delivered and not yet acknowledged. A lost connection is opened again with a growing
//! pause (0.1 s doubling to 5 s) and the topology declared again; what was delivered and
//! not acknowledged comes again (counted as redelivered).

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use tokio::sync::mpsc;

use crate::ack::{Outcome, Tag};
use crate::config::AmqpInput;
use crate::telemetry::{Broker, BrokerEmit};

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

pub mod partitions;
mod queue;
mod run;

pub use run::run;

/// A delivery, or the end of its consumer, with the index of its queue.
type Incoming = (usize, Result<lapin::message::Delivery, lapin::Error>);

/// An open connection: its consuming channel, the deliveries of every queue consumed
/// (forwarded by a task per consumer), and with partitions, the log channel.
struct Session {
    conn: Connection,
    channel: Channel,
    deliveries: mpsc::Receiver<Incoming>,
    forward: mpsc::Sender<Incoming>,
    tags: Vec<String>,
    log: Option<Channel>,
}

/// Forwards a consumer's deliveries, tagged with its queue's index, until it ends.
fn forward(i: usize, mut c: Consumer, to: mpsc::Sender<Incoming>) {
    tokio::spawn(async move {
        while let Some(d) = c.next().await {
            let end = d.is_err();
            if to.send((i, d)).await.is_err() || end {
                break;
            }
        }
    });
}

/// Starts consuming queue `i` (`q`) on the session's channel.
async fn consume(s: &mut Session, i: usize, q: &str) -> Result<(), AmqpError> {
    let tag = format!(
        "heplink-{}-{i}-{}",
        std::process::id(),
        crate::time::now_us()
    );
    let c = s
        .channel
        .basic_consume(
            q.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| AmqpError::Topology {
            what: format!("consuming {q:?}"),
            source,
            hint: "",
        })?;
    s.tags[i] = tag;
    forward(i, c, s.forward.clone());
    Ok(())
}

async fn open(
    cfg: &AmqpInput,
    members: Option<&partitions::Members>,
) -> Result<Session, AmqpError> {
    let err = |source| AmqpError::Connect {
        url: crate::config::redact_url(&cfg.url),
        source,
    };
    let conn = if cfg.ca_file.is_empty() {
        Connection::connect(&cfg.url, ConnectionProperties::default())
            .await
            .map_err(err)?
    } else {
        // The CA was found readable when the settings were checked.
        let pem = std::fs::read_to_string(&cfg.ca_file).unwrap_or_default();
        let tls = lapin::tcp::OwnedTLSConfig {
            identity: None,
            cert_chain: Some(pem),
        };
        let rt = lapin::runtime::default_runtime().map_err(err)?;
        Connection::connect_with_config(&cfg.url, ConnectionProperties::default(), tls, rt)
            .await
            .map_err(err)?
    };
    let topo =
        |what: String, hint: &'static str| move |source| AmqpError::Topology { what, source, hint };
    let channel = conn
        .create_channel()
        .await
        .map_err(topo("opening a channel".into(), ""))?;
    if cfg.partitions > 0 {
        partitions::declare(&channel, cfg).await?;
    } else {
        queue::declare(&channel, cfg).await?;
    }
    channel
        .basic_qos(cfg.prefetch, BasicQosOptions::default())
        .await
        .map_err(topo("setting the prefetch".into(), ""))?;
    let log = if cfg.partitions > 0 {
        Some(partitions::log_channel(&conn).await?)
    } else {
        None
    };
    let n = usize::from(cfg.partitions).max(1);
    let (forward_tx, deliveries) = mpsc::channel(1024);
    let mut s = Session {
        conn,
        channel,
        deliveries,
        forward: forward_tx,
        tags: vec![String::new(); n],
        log,
    };
    if let Some(members) = members {
        let c = members.join(&s.channel, cfg).await?;
        forward(partitions::MEMBERS, c, s.forward.clone());
    }
    for i in 0..n {
        let q = if cfg.partitions > 0 {
            partitions::queue(cfg, i)
        } else {
            cfg.queue.clone()
        };
        consume(&mut s, i, &q).await?;
    }
    Ok(s)
}

/// Acknowledges or rejects a message on the session it came on.
async fn finish(s: &Session, m: &BrokerEmit, delivery: u64, outcome: Outcome) {
    let r = match outcome {
        Outcome::Safe => {
            m.add(Broker::Acks, 1);
            s.channel
                .basic_ack(delivery, BasicAckOptions::default())
                .await
        }
        Outcome::Malformed => {
            m.add(Broker::Nacks, 1);
            s.channel
                .basic_reject(delivery, BasicRejectOptions { requeue: false })
                .await
        }
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, "AMQP acknowledgement not sent: the broker delivers the message again.");
    }
}

/// What a partition's message waits for before it is acknowledged.
#[derive(Debug)]
struct Wait {
    /// What the pipeline said of it, once it did.
    settled: Option<Outcome>,
    /// Its log entry is confirmed (or it needed none).
    logged: bool,
}

/// The input's state across connections.
struct State {
    connection: u64,
    /// Per partition: whether this agent took it over (is its active consumer).
    held: Vec<bool>,
    /// Partition messages not yet acknowledged, by delivery tag.
    waits: std::collections::HashMap<u64, Wait>,
    last_spread: tokio::time::Instant,
}

impl State {
    fn held(&self) -> u64 {
        self.held.iter().filter(|h| **h).count() as u64
    }
}

/// Settles a message: at once without partitions; with them, once its log entry is
/// confirmed too.
async fn settle(s: &Session, st: &mut State, m: &BrokerEmit, tag: Tag, outcome: Outcome) {
    if tag.connection != st.connection {
        return; // its channel is gone: the broker delivers it again
    }
    if s.log.is_none() {
        return finish(s, m, tag.delivery, outcome).await;
    }
    let done = match st.waits.get_mut(&tag.delivery) {
        Some(w) => {
            w.settled = Some(outcome);
            w.logged
        }
        None => true,
    };
    if done {
        st.waits.remove(&tag.delivery);
        finish(s, m, tag.delivery, outcome).await;
    }
}

/// A partition message's log entry is confirmed.
async fn logged(s: &Session, st: &mut State, m: &BrokerEmit, tag: Tag) {
    if tag.connection != st.connection {
        return;
    }
    let settled = match st.waits.get_mut(&tag.delivery) {
        Some(w) => {
            w.logged = true;
            w.settled
        }
        None => None,
    };
    if let Some(outcome) = settled {
        st.waits.remove(&tag.delivery);
        finish(s, m, tag.delivery, outcome).await;
    }
}

/// Spreads the partitions: an agent active on more than its share (the partitions over
/// the agents announcing themselves, rounded up) gives the excess up, to the back of each
/// queue's line of consumers; the next agent in line becomes active.
async fn spread(s: &mut Session, st: &mut State, cfg: &AmqpInput, m: &BrokerEmit, agents: u64) {
    let n = u64::from(cfg.partitions);
    let share = n.div_ceil(agents);
    let mut excess = st.held().saturating_sub(share);
    for i in (0..st.held.len()).rev() {
        if excess == 0 {
            break;
        }
        if !st.held[i] {
            continue;
        }
        let _ = s
            .channel
            .basic_cancel(s.tags[i].as_str().into(), BasicCancelOptions::default())
            .await;
        st.held[i] = false;
        excess -= 1;
        let q = partitions::queue(cfg, i);
        if let Err(e) = consume(s, i, &q).await {
            tracing::warn!(error = %e, "AMQP partition not consumed again.");
        }
        tracing::info!(
            partition = i,
            agents,
            share,
            "AMQP partition given up to spread the partitions between the agents."
        );
    }
    m.set(Broker::PartitionsHeld, st.held());
}
