//! The pipeline task: it takes the inputs' `Job`s one at a time, runs them through the
//! pipeline, pushes the packets to every collector's queue, counts what each body held,
//! and settles bodies (the journal's checkpoint, the brokers' acknowledgements) once
//! they are safe. First it takes again what the intake journal kept from the last run;
//! at the end it releases what the correlator holds.
//!
//! Its state ([`Task`]) sits behind an async lock ([`Shared`]) that the task takes for
//! each job and tick. The HTTP input takes the same lock and runs the same step in its
//! handler ([`crate::ack::Taker`]): a POST is answered without a hop to this task and
//! back, and bodies still go through the pipeline (and their packets into the queues)
//! one at a time, in one order.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::ack::journal::Intake;
use crate::ack::settle::Settling;
use crate::ack::Job;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::output::Queue;
use crate::pipeline::{Pipeline, Rejections};
use crate::time::now_us;

/// The pipeline task's state behind its lock, shared with the HTTP input.
pub(super) struct Shared(Arc<tokio::sync::Mutex<Task>>);

/// The lock on the pipeline task's state, taken before the inputs start and kept by the
/// task while it takes again what the intake journal kept: a POST that comes meanwhile
/// waits for it, so that the correlator knows what it knew before new events come.
pub(super) struct Replay(tokio::sync::OwnedMutexGuard<Task>);

impl Shared {
    /// The lock for [`run_pipeline`]'s replay of the journal (there is nobody to wait
    /// for yet).
    pub(super) async fn replay(&self) -> Replay {
        Replay(self.0.clone().lock_owned().await)
    }

    /// The state of a pipeline task that has not started yet.
    pub(super) fn new(
        cfg: &Config,
        queues: Vec<Queue>,
        metrics: Arc<Metrics>,
        (intake, aliases, spooled): (
            Option<Intake>,
            Option<crate::homer::aliases::AliasFeed>,
            Vec<Arc<crate::output::Progress>>,
        ),
    ) -> Arc<Shared> {
        Arc::new(Shared(Arc::new(tokio::sync::Mutex::new(Task {
            p: if aliases.is_some() {
                Pipeline::new(cfg.correlator(), cfg.mapper()).with_names()
            } else {
                Pipeline::new(cfg.correlator(), cfg.mapper())
            },
            names: Vec::new(),
            packets: Vec::new(),
            st: Settling::new(spooled, intake),
            aliases,
            queues,
            metrics,
            finished: false,
        }))))
    }
}

/// The HTTP input's way in: `Shared` and a sender of the pipeline task's channel, which
/// keeps the task running as long as the input is there (the task finishes once every
/// input's sender is gone).
pub(super) struct Direct {
    pub(super) shared: Arc<Shared>,
    pub(super) _alive: mpsc::Sender<Job>,
}

impl crate::ack::Taker for Direct {
    fn take(
        &self,
        job: Job,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Rejections>> + Send + '_>> {
        Box::pin(async move {
            // Mostly nobody holds the lock: taken without a waiter then.
            let mut t = match self.shared.0.try_lock() {
                Ok(t) => t,
                Err(_) => self.shared.0.lock().await,
            };
            (!t.finished).then_some(())?;
            Some(t.take(job).await)
        })
    }
}

/// Runs the pipeline task until every input's sender is gone: first what the journal
/// kept, under `replay`.
pub(super) async fn run_pipeline(
    shared: Arc<Shared>,
    mut jobs: mpsc::Receiver<Job>,
    replay: Replay,
) {
    {
        let mut t = replay.0;
        t.replay_journal().await;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { break };
                shared.0.lock().await.take(job).await;
            }
            _ = tick.tick() => shared.0.lock().await.tick().await,
        }
    }
    shared.0.lock().await.finish().await;
}

/// The pipeline task's state: the pipeline, the packets on their way to the queues, the
/// bodies not yet safe, the journal, the alias feed.
struct Task {
    p: Pipeline,
    packets: Vec<Bytes>,
    st: Settling,
    aliases: Option<crate::homer::aliases::AliasFeed>,
    /// Names taken from the pipeline for the alias keeper (a kept buffer).
    names: Vec<crate::diagnose::NameChange>,
    queues: Vec<Queue>,
    metrics: Arc<Metrics>,
    /// Set by [`Task::finish`]: what comes after is refused.
    finished: bool,
}

impl Task {
    /// What the journal kept from the last run goes first: the delivered bodies to rebuild
    /// the correlator's, the QoS reports' and the diagnosis's state (nothing sent), then the
    /// rest (its events may be sent twice, with the ids they got the first time). Each at
    /// the time it was taken then.
    ///
    /// A delivered body's held events stay held ([`Pipeline::replay_body`]): a later
    /// body's binding releases them as the first time, into the state (a subscriber's SDP,
    /// taken before its handle joins, gives its QoS reports their SSRCs; its ICE and DTLS
    /// states its verdict), and no packet is made of them: a delivered body's packets all
    /// reached the spool the first time.
    async fn replay_journal(&mut self) {
        for r in self.st.journal_warm() {
            let packets = &mut self.packets;
            self.p.replay_body(&Bytes::from(r.body), r.at_us, &mut |o| {
                packets.push(o.packet)
            });
            send_all(&mut self.packets, &self.queues, &self.metrics).await;
        }
        for r in self.st.journal_back() {
            let now = r.at_us;
            self.st.taken_again(&r);
            self.metrics.journal_replayed.fetch_add(1, Relaxed);
            let packets = &mut self.packets;
            let taken = self
                .p
                .push_body(&Bytes::from(r.body), now, &mut |o| packets.push(o.packet));
            for (reason, n) in &taken.rejected.counts {
                self.metrics.reject_n(r.input, *reason, *n);
            }
            send_all(&mut self.packets, &self.queues, &self.metrics).await;
        }
    }

    /// One job: journaled (unless a broker keeps it), through the pipeline, counted, its
    /// packets queued, settled now or once its held events are released. Returns its
    /// rejected events (the HTTP input's answer).
    async fn take(&mut self, job: Job) -> Rejections {
        if job.warm {
            // A partition's log on takeover: as the journal's delivered bodies above. What
            // the clock releases meanwhile of other bodies goes out as usual.
            let at = self.st.time();
            let packets = &mut self.packets;
            self.p
                .replay_body(&job.body, at, &mut |o| packets.push(o.packet));
            send_all(&mut self.packets, &self.queues, &self.metrics).await;
            return Rejections::default();
        }
        let now = self.st.time();
        let journaled = self.st.journal(now, &job, &*self.metrics);
        let packets = &mut self.packets;
        let taken = self
            .p
            .push_body(&job.body, now, &mut |o| packets.push(o.packet));
        self.names();
        for (i, n) in taken.by_type.iter().enumerate().filter(|(_, n)| **n > 0) {
            self.metrics.event(job.input, i, *n);
        }
        for (reason, n) in &taken.rejected.counts {
            self.metrics.reject_n(job.input, *reason, *n);
        }
        self.send().await;
        let unreadable = taken.events() == 0 && !taken.rejected.is_empty();
        self.st
            .taken(now, journaled, job.receipt, unreadable, taken.held);
        taken.rejected
    }

    /// The clock: holds that ran out are released, gauges updated, bodies settled.
    async fn tick(&mut self) {
        let packets = &mut self.packets;
        self.p.tick(now_us(), &mut |o| packets.push(o.packet));
        self.names();
        // Gauges walk the correlator's tables: on the tick, not per request.
        update_gauges(&self.p, &self.metrics);
        self.send().await;
        let p = &self.p;
        self.st.settle(|h| p.correlator().held_times(h), false);
    }

    /// Hands the diagnosis's names to the alias keeper.
    fn names(&mut self) {
        let Some(a) = self.aliases.as_ref() else {
            return;
        };
        self.p.take_names(&mut self.names);
        for n in self.names.drain(..) {
            a.name(n);
        }
    }

    async fn send(&mut self) {
        send_all(&mut self.packets, &self.queues, &self.metrics).await;
    }

    /// The inputs are gone: everything held is released. The senders take the rest into
    /// their spools while they drain; what they did take by now is checkpointed (and
    /// acknowledged), the rest is taken again next time.
    async fn finish(&mut self) {
        self.finished = true;
        let packets = &mut self.packets;
        self.p.flush(now_us(), &mut |o| packets.push(o.packet));
        self.send().await;
        update_gauges(&self.p, &self.metrics);
        for _ in 0..50 {
            let p = &self.p;
            self.st.settle(|h| p.correlator().held_times(h), true);
            if self.st.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.st.sync();
    }
}

async fn send_all(packets: &mut Vec<Bytes>, queues: &[Queue], metrics: &Metrics) {
    metrics.packets.fetch_add(packets.len() as u64, Relaxed);
    for p in packets.drain(..) {
        for q in queues {
            q.push(p.clone()).await;
        }
    }
}

fn update_gauges(p: &Pipeline, m: &Metrics) {
    let c = p.correlator();
    let st = c.stats();
    m.handles.store(c.handles() as u64, Relaxed);
    m.held.store(c.held() as u64, Relaxed);
    m.hold_expired.store(st.hold_expired, Relaxed);
    m.hold_overflow.store(st.hold_overflow, Relaxed);
    m.expired.store(st.expired, Relaxed);
    m.evicted.store(st.evicted, Relaxed);
    m.unencodable.store(p.stats().unencodable, Relaxed);
    let ms = p.mapper_stats();
    m.time_rewritten_old.store(ms.time_rewritten_old, Relaxed);
    m.time_rewritten_future
        .store(ms.time_rewritten_future, Relaxed);
    if let Ok(mut d) = m.diagnosis.lock() {
        d.clone_from(p.diagnoser().stats());
    }
}
