//! The MQTT input: subscribes to what Janus's mqttevh publishes (one event per message,
//! on `<topic>/<type>` with its default `addevent = true`) and hands each message to the
//! pipeline. With QoS 1 a message is acknowledged only once its events are safe (see
//! `ack::settle`); until then the broker keeps it, and delivers it again after a
//! reconnection (with a persistent session) or to the next agent. Events of one handle
//! arrive on several topics in any order between them: the correlator's hold window
//! covers that.
//!
//! The broker connection is rumqttc's event loop, polled here; a failed connection is
//! tried again with a growing pause (0.1 s doubling to 5 s), and the subscriptions are
//! made again whenever the broker did not keep the session.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::ack::{Job, Outcome, Receipt, Tag};
use crate::config::{MqttInput, MqttVersion};
use crate::telemetry::{Broker, BrokerEmit, Emit, Ingest, Input};

/// What the two protocol versions' event loops give the input.
enum Happening {
    /// Connected; whether the broker kept the session.
    Connected { session_present: bool },
    /// A subscription refused by the broker.
    Refused,
    /// A message.
    Message {
        /// On `<topic>/status`: mqttevh's connect and last-will status, not an event.
        status: bool,
        payload: Bytes,
        pkid: u16,
        qos1: bool,
        dup: bool,
    },
    /// Anything else.
    Other,
}

/// One broker connection of either protocol version.
enum Link {
    V4(rumqttc::AsyncClient, Box<rumqttc::EventLoop>),
    V5(rumqttc::v5::AsyncClient, Box<rumqttc::v5::EventLoop>),
}

/// The persistent session's expiry asked for with MQTT 5: a day.
const SESSION_EXPIRY_S: u32 = 86_400;

impl Link {
    fn new(cfg: &MqttInput) -> anyhow::Result<Link> {
        let b = cfg.broker()?;
        let (user, pass) = match (&b.user, cfg.username.is_empty()) {
            (_, false) => (cfg.username.clone(), cfg.password.clone()),
            (Some((u, p)), true) => (u.clone(), p.clone()),
            (None, true) => (String::new(), String::new()),
        };
        let tls = if b.tls {
            let (c, _) = crate::tls::client(&cfg.tls.client(), &b.host)?;
            Some(rumqttc::TlsConfiguration::Rustls(c))
        } else {
            None
        };
        Ok(match cfg.version {
            MqttVersion::V311 => {
                let mut o = rumqttc::MqttOptions::new(&cfg.client_id, &b.host, b.port);
                o.set_keep_alive(Duration::from_secs(15))
                    .set_clean_session(!cfg.persistent)
                    .set_manual_acks(true)
                    .set_max_packet_size(cfg.max_message_bytes, 64 << 10);
                if !user.is_empty() {
                    o.set_credentials(user, pass);
                }
                if let Some(t) = tls {
                    o.set_transport(rumqttc::Transport::Tls(t));
                }
                let (c, e) = rumqttc::AsyncClient::new(o, 1024);
                Link::V4(c, Box::new(e))
            }
            MqttVersion::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(&cfg.client_id, &b.host, b.port);
                o.set_keep_alive(Duration::from_secs(15))
                    .set_clean_start(!cfg.persistent)
                    .set_manual_acks(true)
                    .set_receive_maximum(Some(u16::MAX))
                    .set_max_packet_size(Some(cfg.max_message_bytes as u32));
                if cfg.persistent {
                    o.set_session_expiry_interval(Some(SESSION_EXPIRY_S));
                }
                if !user.is_empty() {
                    o.set_credentials(user, pass);
                }
                if let Some(t) = tls {
                    o.set_transport(rumqttc::Transport::Tls(t));
                }
                let (c, e) = rumqttc::v5::AsyncClient::new(o, 1024);
                Link::V5(c, Box::new(e))
            }
        })
    }

    async fn poll(&mut self) -> Result<Happening, String> {
        use rumqttc::v5::mqttbytes::v5 as p5;
        use rumqttc::{Event, Packet};
        match self {
            Link::V4(_, e) => match e.poll().await.map_err(|e| e.to_string())? {
                Event::Incoming(Packet::ConnAck(a)) => Ok(Happening::Connected {
                    session_present: a.session_present,
                }),
                Event::Incoming(Packet::SubAck(a))
                    if a.return_codes
                        .iter()
                        .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) =>
                {
                    Ok(Happening::Refused)
                }
                Event::Incoming(Packet::Publish(p)) => Ok(Happening::Message {
                    status: p.topic.ends_with("/status"),
                    payload: p.payload,
                    pkid: p.pkid,
                    qos1: p.qos != rumqttc::QoS::AtMostOnce,
                    dup: p.dup,
                }),
                _ => Ok(Happening::Other),
            },
            Link::V5(_, e) => match e.poll().await.map_err(|e| e.to_string())? {
                rumqttc::v5::Event::Incoming(p5::Packet::ConnAck(a)) => Ok(Happening::Connected {
                    session_present: a.session_present,
                }),
                rumqttc::v5::Event::Incoming(p5::Packet::SubAck(a))
                    if a.return_codes
                        .iter()
                        .any(|c| !matches!(c, p5::SubscribeReasonCode::Success(_))) =>
                {
                    Ok(Happening::Refused)
                }
                rumqttc::v5::Event::Incoming(p5::Packet::Publish(p)) => Ok(Happening::Message {
                    status: p.topic.ends_with(b"/status"),
                    payload: p.payload,
                    pkid: p.pkid,
                    qos1: p.qos != rumqttc::v5::mqttbytes::QoS::AtMostOnce,
                    dup: p.dup,
                }),
                _ => Ok(Happening::Other),
            },
        }
    }

    fn subscribe(&self, topics: &[String], qos1: bool) {
        let r = match self {
            Link::V4(c, _) => {
                let q = if qos1 {
                    rumqttc::QoS::AtLeastOnce
                } else {
                    rumqttc::QoS::AtMostOnce
                };
                c.try_subscribe_many(
                    topics
                        .iter()
                        .map(|t| rumqttc::SubscribeFilter::new(t.clone(), q)),
                )
                .map_err(|e| e.to_string())
            }
            Link::V5(c, _) => {
                use rumqttc::v5::mqttbytes::{v5::Filter, QoS};
                let q = if qos1 {
                    QoS::AtLeastOnce
                } else {
                    QoS::AtMostOnce
                };
                c.try_subscribe_many(topics.iter().map(|t| Filter::new(t.clone(), q)))
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(e) = r {
            tracing::error!(error = %e, "MQTT subscribe request failed.");
        }
    }

    fn ack(&self, pkid: u16) {
        let r = match self {
            Link::V4(c, _) => {
                let mut p = rumqttc::Publish::new("", rumqttc::QoS::AtLeastOnce, Vec::new());
                p.pkid = pkid;
                c.try_ack(&p).map_err(|e| e.to_string())
            }
            Link::V5(c, _) => {
                let mut p = rumqttc::v5::mqttbytes::v5::Publish::new(
                    "",
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    Vec::new(),
                    None,
                );
                p.pkid = pkid;
                c.try_ack(&p).map_err(|e| e.to_string())
            }
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, pkid, "MQTT acknowledgement not sent: the broker sends the message again.");
        }
    }

    fn disconnect(&self) {
        let _ = match self {
            Link::V4(c, _) => c.try_disconnect().map_err(|e| e.to_string()),
            Link::V5(c, _) => c.try_disconnect().map_err(|e| e.to_string()),
        };
    }
}

/// Runs the MQTT input until `stop` turns true, then acknowledges what the pipeline
/// still settles (until it drops the last receipt or `drain` runs out) and disconnects.
pub async fn run(
    cfg: MqttInput,
    jobs: mpsc::Sender<Job>,
    (metrics, status): (Arc<dyn Emit<Ingest>>, Arc<crate::status::InputStatus>),
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let m = &BrokerEmit::new(metrics, Input::Mqtt, status);
    let link = match Link::new(&cfg) {
        Ok(l) => l,
        Err(e) => {
            m.down(&e);
            tracing::error!(error = %e, "MQTT input cannot start.");
            return;
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<(Tag, Outcome)>();
    let mut q = Mqtt {
        cfg: &cfg,
        m,
        link,
        receipts: tx,
        connection: 0,
        pause: Duration::from_millis(100),
        failures: 0,
    };
    loop {
        let step = tokio::select! {
            h = q.link.poll() => q.happening(h),
            Some((tag, outcome)) = rx.recv() => {
                settle(&q.link, m, q.connection, tag, outcome);
                Step::Go
            }
            _ = stopped(&mut stop) => break,
        };
        match step {
            Step::Go => {}
            Step::Job(job) => {
                if jobs.send(job).await.is_err() {
                    break;
                }
            }
            Step::Wait(p) => tokio::select! {
                _ = tokio::time::sleep(p) => {}
                _ = stopped(&mut stop) => break,
            },
        }
    }
    drop(jobs);
    q.wind_down(rx, drain).await;
}

/// What the input does after a happening of its connection.
enum Step {
    /// Goes on.
    Go,
    /// Hands a job to the pipeline.
    Job(Job),
    /// Waits before the next attempt to connect.
    Wait(Duration),
}

/// The input's running context.
struct Mqtt<'a> {
    cfg: &'a MqttInput,
    m: &'a BrokerEmit,
    link: Link,
    /// Where the pipeline sends each QoS 1 message's receipt back.
    receipts: mpsc::UnboundedSender<(Tag, Outcome)>,
    /// Connections made: a receipt of an earlier one is stale.
    connection: u64,
    pause: Duration,
    failures: u64,
}

impl Mqtt<'_> {
    /// What one happening of the connection means.
    fn happening(&mut self, h: Result<Happening, String>) -> Step {
        let (cfg, m) = (self.cfg, self.m);
        match h {
            Ok(Happening::Connected { session_present }) => {
                self.connection += 1;
                m.add(Broker::Connections, 1);
                m.up();
                self.pause = Duration::from_millis(100);
                self.failures = 0;
                if !(session_present && cfg.persistent) {
                    self.link.subscribe(&cfg.topics, cfg.qos == 1);
                }
                tracing::info!(url = %cfg.url, session_present, topics = ?cfg.topics, "MQTT input connected.");
                Step::Go
            }
            Ok(Happening::Refused) => {
                m.down(&"subscription refused");
                tracing::error!(topics = ?cfg.topics, "MQTT broker refused a subscription (its ACL?).");
                Step::Go
            }
            Ok(Happening::Message {
                status,
                payload,
                pkid,
                qos1,
                dup,
            }) => {
                m.add(Broker::Messages, 1);
                tracing::trace!(pkid, qos1, dup, bytes = payload.len(), "MQTT message.");
                if dup {
                    m.add(Broker::Redeliveries, 1);
                }
                if status {
                    tracing::debug!(status = %String::from_utf8_lossy(&payload), "mqttevh status.");
                    if qos1 {
                        self.link.ack(pkid);
                    }
                    return Step::Go;
                }
                let receipt = qos1.then(|| Receipt {
                    to: self.receipts.clone(),
                    tag: Tag {
                        connection: self.connection,
                        delivery: u64::from(pkid),
                    },
                });
                Step::Job(Job {
                    body: payload,
                    input: Input::Mqtt,
                    receipt,
                    warm: false,
                })
            }
            Ok(Happening::Other) => Step::Go,
            Err(e) => {
                m.down(&e);
                self.failures += 1;
                if self.failures == 1 || self.failures.is_power_of_two() {
                    tracing::warn!(url = %cfg.url, error = %e, failures = self.failures, retry_in = ?self.pause, "MQTT broker connection lost or refused.");
                }
                let wait = self.pause;
                self.pause = (self.pause * 2).min(Duration::from_secs(5));
                Step::Wait(wait)
            }
        }
    }

    /// Stopping: no new message is taken (the broker keeps what comes now for the next
    /// connection); what the pipeline settles is acknowledged while the event loop runs,
    /// until it drops the last receipt or `drain` runs out; then disconnects.
    async fn wind_down(mut self, mut rx: mpsc::UnboundedReceiver<(Tag, Outcome)>, drain: Duration) {
        let m = self.m;
        drop(self.receipts);
        let deadline = tokio::time::Instant::now() + drain;
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Some((tag, outcome)) => settle(&self.link, m, self.connection, tag, outcome),
                    None => break,
                },
                h = self.link.poll() => if h.is_err() { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.link.disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while self.link.poll().await.is_ok() {}
        })
        .await;
        m.stopped();
    }
}

fn settle(link: &Link, m: &BrokerEmit, connection: u64, tag: Tag, outcome: Outcome) {
    tracing::trace!(?tag, ?outcome, connection, "MQTT message settled.");
    if tag.connection != connection {
        // Delivered on an earlier connection: the broker sends it again.
        return;
    }
    // MQTT has no rejection: a malformed message is acknowledged too (and counted), or
    // the broker would deliver it forever.
    link.ack(tag.delivery as u16);
    match outcome {
        Outcome::Safe => m.add(Broker::Acks, 1),
        Outcome::Malformed => m.add(Broker::Nacks, 1),
    };
}

/// Until `stop` turns true (the value's guard is not kept across the await).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}
