//! The alias keeper: names Homer's columns for what the agent knows. Janus's own address
//! becomes `janus <emitter>` (port 0: any port of it), and each PeerConnection's client
//! address, while the PeerConnection lives, the participant's name with room and role
//! (`alice (1234, publisher)`; the client's opaque id, else `peer <handle>`, when no name
//! is known), cut to homer-app's 40 characters.
//!
//! Bounded and never in the way of events: the pipeline hands intents over with
//! `try_send` (a full channel drops the intent, counted); the keeper writes at most
//! `rate` alias changes a second, keeps at most `max` aliases of its own (beyond, new
//! ones are skipped, counted), deletes a client's alias when its PeerConnection hangs up
//! or its handle detaches, and counts and logs (rate-limited) every failed call.

use crate::internal_events::AliasFailed;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Alias, Api};
use crate::correlate::{Correlated, GroupKey};
use crate::janus::event::kind;

/// What the keeper should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Name `ip:port` (port 0: every port of `ip`).
    Set {
        /// The address.
        ip: IpAddr,
        /// The port, 0 for any.
        port: u16,
        /// The name.
        name: String,
    },
    /// Forget the name of `ip:port`.
    Unset {
        /// The address.
        ip: IpAddr,
        /// The port.
        port: u16,
    },
}

/// The keeper's counters.
#[derive(Debug, Default)]
pub struct AliasMetrics {
    /// Aliases the keeper holds in Homer now.
    pub held: AtomicU64,
    /// Aliases created or deleted.
    pub writes: AtomicU64,
    /// API calls that failed.
    pub failures: AtomicU64,
    /// Intents dropped: the channel was full or the cap was reached.
    pub dropped: AtomicU64,
}

/// The pipeline's end: turns events into intents and hands them over without waiting.
#[derive(Debug)]
pub struct AliasFeed {
    tx: mpsc::Sender<Intent>,
    metrics: Arc<AliasMetrics>,
    /// Janus addresses already named, per emitter.
    janus: HashSet<(Arc<str>, IpAddr)>,
}

impl AliasFeed {
    fn send(&self, i: Intent) {
        if self.tx.try_send(i).is_err() {
            self.metrics.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Looks at one correlated event.
    pub fn event(&mut self, c: &Correlated) {
        let ev = &c.event;
        if let Some(j) = c.facts.janus {
            let key = (ev.emitter.clone(), j.ip());
            if !self.janus.contains(&key) && self.janus.len() < 1024 {
                self.janus.insert(key);
                self.send(Intent::Set {
                    ip: j.ip(),
                    port: 0,
                    name: format!("janus {}", ev.emitter),
                });
            }
        }
        let Some(client) = c.facts.client else { return };
        match (ev.kind, ev.subtype) {
            // The selected pair names the PeerConnection's client address.
            (kind::WEBRTC, Some(4)) => {
                // The participant's display name, else the client's opaque id, else the
                // handle: homer-app keeps 40 characters.
                let who = match (&c.facts.display, &ev.opaque_id, ev.handle_id) {
                    (Some(d), _, _) => d.to_string(),
                    (None, Some(o), _) => o.to_string(),
                    (None, None, Some(h)) => format!("peer {h}"),
                    (None, None, None) => "peer".into(),
                };
                let name = match &c.facts.group {
                    Some(GroupKey::Room(_, room)) => {
                        let role = if c.facts.feeds.is_empty() {
                            "publisher"
                        } else {
                            "subscriber"
                        };
                        format!("{who} ({room}, {role})")
                    }
                    Some(GroupKey::Call(_)) => format!("{who} (sip)"),
                    None => who,
                };
                self.send(Intent::Set {
                    ip: client.ip(),
                    port: client.port(),
                    name,
                });
            }
            (kind::WEBRTC, Some(6)) | (kind::HANDLE, _) if ev.ends_peer_connection() => {
                self.send(Intent::Unset {
                    ip: client.ip(),
                    port: client.port(),
                });
            }
            _ => {}
        }
    }
}

/// Starts the keeper: at most `max` aliases of its own, `rate` changes a second.
pub fn spawn(
    api: Api,
    max: usize,
    rate: u32,
    metrics: Arc<AliasMetrics>,
) -> (AliasFeed, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1024);
    let task = tokio::spawn(keep(api, rx, max, rate.max(1), metrics.clone()));
    (
        AliasFeed {
            tx,
            metrics,
            janus: HashSet::new(),
        },
        task,
    )
}

/// Whether an alias name is one this keeper makes: `janus <emitter>`, or a client's
/// `… (<room>, publisher|subscriber)` / `… (sip)` (possibly cut at 40 characters).
fn is_ours(name: &str) -> bool {
    name.starts_with("janus ")
        || name.ends_with(", publisher)")
        || name.ends_with(", subscriber)")
        || name.ends_with(" (sip)")
}

/// The aliases an earlier run left (it may have been killed), known by their names,
/// taken over so that they are replaced or deleted like this run's own; its client
/// aliases, which name PeerConnections that are gone, deleted.
async fn take_over(api: &mut Api, m: &AliasMetrics) -> HashMap<(IpAddr, u16), (String, String)> {
    let mut ours: HashMap<(IpAddr, u16), (String, String)> = HashMap::new();
    // What an earlier run left (it may have been killed): its aliases, known by their
    // names, are taken over, so that they are replaced or deleted like this run's own.
    match api.aliases().await {
        Ok(list) => {
            for a in list {
                let (Ok(ip), true) = (a.ip.parse::<IpAddr>(), is_ours(&a.alias)) else {
                    continue;
                };
                if let Some((old, _)) = ours.insert((ip, a.port), (a.guid, a.alias)) {
                    // A duplicate of the same address: one is enough.
                    let _ = api.delete_alias(&old).await;
                }
            }
            m.held.store(ours.len() as u64, Relaxed);
        }
        Err(e) => AliasFailed {
            what: "cannot list the existing ones.",
            error: &e,
        }
        .emit(m),
    }
    // Client aliases of an earlier run name PeerConnections that are gone.
    let stale: Vec<(IpAddr, u16)> = ours
        .iter()
        .filter(|(_, (_, name))| !name.starts_with("janus "))
        .map(|(k, _)| *k)
        .collect();
    for k in stale {
        if let Some((guid, _)) = ours.remove(&k) {
            if api.delete_alias(&guid).await.is_ok() {
                m.writes.fetch_add(1, Relaxed);
            }
        }
    }
    m.held.store(ours.len() as u64, Relaxed);
    ours
}

async fn keep(
    mut api: Api,
    mut rx: mpsc::Receiver<Intent>,
    max: usize,
    rate: u32,
    m: Arc<AliasMetrics>,
) {
    // (ip, port) -> (guid, name) of the aliases this keeper made.
    let mut ours = take_over(&mut api, &m).await;
    let gap = Duration::from_secs(1) / rate;
    let mut next = Instant::now();
    let failed = |m: &AliasMetrics, e: &super::ApiError| {
        AliasFailed {
            what: "an update failed.",
            error: e,
        }
        .emit(m)
    };
    while let Some(intent) = rx.recv().await {
        let now = Instant::now();
        if next > now {
            tokio::time::sleep(next - now).await;
        }
        next = Instant::now().max(next) + gap;
        match intent {
            Intent::Set { ip, port, name } => {
                if ours.get(&(ip, port)).is_some_and(|(_, n)| *n == name) {
                    continue;
                }
                if !ours.contains_key(&(ip, port)) && ours.len() >= max {
                    m.dropped.fetch_add(1, Relaxed);
                    continue;
                }
                if let Some((guid, _)) = ours.remove(&(ip, port)) {
                    match api.delete_alias(&guid).await {
                        Ok(_) => {
                            m.writes.fetch_add(1, Relaxed);
                        }
                        Err(e) => failed(&m, &e),
                    }
                }
                match api.create_alias(&Alias::host(&name, ip, port)).await {
                    Ok(guid) => {
                        m.writes.fetch_add(1, Relaxed);
                        ours.insert((ip, port), (guid, name));
                    }
                    Err(e) => failed(&m, &e),
                }
            }
            Intent::Unset { ip, port } => {
                if let Some((guid, _)) = ours.remove(&(ip, port)) {
                    match api.delete_alias(&guid).await {
                        Ok(_) => {
                            m.writes.fetch_add(1, Relaxed);
                        }
                        Err(e) => failed(&m, &e),
                    }
                }
            }
        }
        m.held.store(ours.len() as u64, Relaxed);
    }
}
