//! The AMQP input's loop: connect (again, with a growing pause), take deliveries, settle
//! what the pipeline sends back, spread the partitions; on stop, acknowledge what the
//! pipeline still settles, then close.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lapin::options::BasicCancelOptions;
use lapin::Channel;
use tokio::sync::{mpsc, watch};

use super::super::mqtt::stopped;
use super::{finish, logged, open, partitions, settle, spread, Session, State, Wait};
use crate::ack::{Job, Outcome, Receipt, Tag};
use crate::config::AmqpInput;
use crate::telemetry::{Broker, BrokerEmit, Emit, Ingest, Input};

/// The input's running context: its settings, where its jobs and receipts go, its state
/// across connections, the backoff between attempts.
struct Amqp<'a> {
    cfg: &'a AmqpInput,
    jobs: mpsc::Sender<Job>,
    /// Its counts.
    broker: BrokerEmit,
    /// Where the pipeline sends each message's receipt back.
    receipts: mpsc::UnboundedSender<(Tag, Outcome)>,
    /// Where a partition message's confirmed log entry is told.
    log_tx: mpsc::UnboundedSender<Tag>,
    st: State,
    members: Option<partitions::Members>,
    pause: Duration,
    failures: u64,
}

impl Amqp<'_> {
    fn m(&self) -> &BrokerEmit {
        &self.broker
    }

    /// Opens a session, retrying with a growing pause; `None` once `stop` turned true.
    async fn connect(&mut self, stop: &mut watch::Receiver<bool>) -> Option<Session> {
        loop {
            match open(self.cfg, self.members.as_ref()).await {
                Ok(s) => {
                    let (st, m, cfg) = (&mut self.st, &self.broker, self.cfg);
                    st.connection += 1;
                    st.held.iter_mut().for_each(|h| *h = false);
                    st.waits.clear();
                    m.set(Broker::PartitionsHeld, 0);
                    m.add(Broker::Connections, 1);
                    m.up();
                    self.pause = Duration::from_millis(100);
                    self.failures = 0;
                    tracing::info!(url = %crate::config::redact_url(&cfg.url), queue = %cfg.queue, exchange = %cfg.exchange, partitions = cfg.partitions, "AMQP input consuming.");
                    return Some(s);
                }
                Err(e) => {
                    self.m().down(&e);
                    self.failures += 1;
                    if self.failures == 1 || self.failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures = self.failures, retry_in = ?self.pause, "AMQP input cannot consume.");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(self.pause) => {}
                        _ = stopped(stop) => return None,
                    }
                    self.pause = (self.pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// A message from partition (or the shared queue) `i`: capped, logged to its
    /// partition's correlation log (taking the partition over on its first message), then
    /// a job. False once the pipeline is gone.
    async fn delivery(&mut self, s: &Session, i: usize, d: lapin::message::Delivery) -> bool {
        let (cfg, m) = (self.cfg, &self.broker);
        m.add(Broker::Messages, 1);
        if d.redelivered {
            m.add(Broker::Redeliveries, 1);
        }
        let tag = Tag {
            connection: self.st.connection,
            delivery: d.delivery_tag,
        };
        if d.data.len() > cfg.max_message_bytes {
            crate::internal_events::InputRejected {
                input: Input::Amqp,
                reason: crate::reject::Reject::BodyTooLarge,
                peer: None,
                what: "AMQP message over amqp.max_message_bytes, rejected without requeue;",
                detail: format_args!("size={} max={}", d.data.len(), cfg.max_message_bytes),
            }
            .emit(self.broker.ingest());
            finish(s, m, tag.delivery, Outcome::Malformed).await;
            return true;
        }
        let body = Bytes::from(d.data);
        if let Some(log_ch) = s.log.as_ref() {
            self.log(s, log_ch, i, tag, &body).await;
        }
        let job = Job {
            body,
            input: Input::Amqp,
            receipt: Some(Receipt {
                to: self.receipts.clone(),
                tag,
            }),
            warm: false,
        };
        self.jobs.send(job).await.is_ok()
    }

    /// With partitions: takes partition `i` over on its first message (what the previous
    /// consumer knew comes first), appends the message's entry to the partition's log,
    /// and makes the message wait for its confirmation.
    async fn log(&mut self, s: &Session, log_ch: &Channel, i: usize, tag: Tag, body: &Bytes) {
        let (cfg, m) = (self.cfg, &self.broker);
        if !self.st.held[i] {
            match partitions::take_over(&s.conn, log_ch, cfg, i, &self.jobs).await {
                Ok(n) => {
                    m.add(Broker::StateReplayed, n);
                    tracing::info!(partition = i, replayed = n, "AMQP partition taken over.");
                }
                Err(e) => {
                    tracing::warn!(partition = i, error = %e, "AMQP partition taken over without its correlation log.")
                }
            }
            self.st.held[i] = true;
            m.set(Broker::PartitionsHeld, self.st.held());
        }
        let mut w = Wait {
            settled: None,
            logged: true,
        };
        if let Some(entry) = partitions::log_body(body) {
            match partitions::append(log_ch, cfg, i, &entry).await {
                Ok(confirm) => {
                    w.logged = false;
                    let to = self.log_tx.clone();
                    tokio::spawn(async move {
                        if confirm.await.is_ok() {
                            let _ = to.send(tag);
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "AMQP correlation log append failed."),
            }
        }
        self.st.waits.insert(tag.delivery, w);
    }

    /// Every second with partitions: announces this agent; every 2 s, once the others had
    /// time to announce themselves, spreads the partitions between the agents.
    async fn spread_tick(&mut self, s: &mut Session) {
        let (Some(mb), Some(log_ch)) = (self.members.as_mut(), s.log.as_ref()) else {
            return;
        };
        mb.announce(log_ch, self.cfg).await;
        if self.st.last_spread.elapsed() >= Duration::from_secs(2) {
            self.st.last_spread = tokio::time::Instant::now();
            let agents = mb.count();
            spread(s, &mut self.st, self.cfg, &self.broker, agents).await;
        }
    }
}

/// Runs the AMQP input until `stop` turns true, then acknowledges what the pipeline still
/// settles (until it drops the last receipt or `drain` runs out) and closes.
pub async fn run(
    cfg: AmqpInput,
    jobs: mpsc::Sender<Job>,
    (metrics, status): (Arc<dyn Emit<Ingest>>, Arc<crate::status::InputStatus>),
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let (receipts, mut rx) = mpsc::unbounded_channel::<(Tag, Outcome)>();
    let (log_tx, mut log_rx) = mpsc::unbounded_channel::<Tag>();
    let mut a = Amqp {
        cfg: &cfg,
        jobs,
        broker: BrokerEmit::new(metrics, Input::Amqp, status),
        receipts,
        log_tx,
        st: State {
            connection: 0,
            held: vec![false; usize::from(cfg.partitions)],
            waits: Default::default(),
            last_spread: tokio::time::Instant::now(),
        },
        members: (cfg.partitions > 0).then(partitions::Members::new),
        pause: Duration::from_millis(100),
        failures: 0,
    };
    let m = &a.broker.clone();
    let mut session: Option<Session> = None;
    let mut spread_tick = tokio::time::interval(Duration::from_secs(1));
    'run: loop {
        let Some(s) = session.as_mut() else {
            match a.connect(&mut stop).await {
                Some(s) => session = Some(s),
                None => break 'run,
            }
            continue;
        };
        tokio::select! {
            d = s.deliveries.recv() => match d {
                Some((partitions::MEMBERS, Ok(d))) => {
                    if let Some(mb) = a.members.as_mut() {
                        mb.heard(&d.data);
                    }
                }
                Some((i, Ok(d))) => {
                    if !a.delivery(s, i, d).await {
                        break 'run;
                    }
                }
                Some((_, Err(e))) => {
                    m.down(&e);
                    tracing::warn!(error = %e, "AMQP connection lost.");
                    session = None;
                }
                None => {
                    m.down(&"consumers ended");
                    session = None;
                }
            },
            Some((tag, outcome)) = rx.recv() => settle(s, &mut a.st, m, tag, outcome).await,
            Some(tag) = log_rx.recv() => logged(s, &mut a.st, m, tag).await,
            _ = spread_tick.tick(), if cfg.partitions > 0 => a.spread_tick(s).await,
            _ = stopped(&mut stop) => break 'run,
        }
    }
    // Stopping: no new delivery is taken; what the pipeline settles is acknowledged.
    // The senders go now (a partial move would keep them until the end of this
    // function): the receipts close once the pipeline drops the last one, and the
    // pipeline task, waiting for every input's sender, can finish.
    let Amqp {
        st, jobs, receipts, ..
    } = a;
    drop((jobs, receipts));
    wind_down(session, st, (rx, log_rx), m, drain).await;
}

/// Cancels the consumers, acknowledges what the pipeline still settles (until it drops
/// the last receipt or `drain` runs out) and closes.
async fn wind_down(
    session: Option<Session>,
    mut st: State,
    (mut rx, mut log_rx): (
        mpsc::UnboundedReceiver<(Tag, Outcome)>,
        mpsc::UnboundedReceiver<Tag>,
    ),
    m: &BrokerEmit,
    drain: Duration,
) {
    if let Some(s) = session.as_ref() {
        for t in &s.tags {
            let _ = s
                .channel
                .basic_cancel(t.as_str().into(), BasicCancelOptions::default())
                .await;
        }
        let deadline = tokio::time::Instant::now() + drain;
        let mut receipts_open = true;
        while receipts_open || !st.waits.is_empty() {
            tokio::select! {
                r = rx.recv(), if receipts_open => match r {
                    Some((tag, outcome)) => settle(s, &mut st, m, tag, outcome).await,
                    None => receipts_open = false,
                },
                Some(tag) = log_rx.recv() => logged(s, &mut st, m, tag).await,
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let _ = s.conn.close(200, "heplink stopping".into()).await;
    }
    m.stopped();
    m.set(Broker::PartitionsHeld, 0);
}
