//! The alias keeper: names Homer's columns with what the diagnosis knows
//! ([`crate::diagnose::names`]): Janus's addresses (`janus <emitter>`, `janus sip
//! <emitter>`, `janus api`), the API client (`api <ip>`), each PeerConnection's client
//! address by its short name (`Alice ▲ · room 4242`) and the SIP far end.
//!
//! Names outlive their call: people open Homer after a call went wrong, so a
//! PeerConnection's alias stays `retention` after it ended, then goes. When a new
//! PeerConnection takes an address an ended one's alias holds, the new name wins.
//!
//! Bounded and never in the way of events: the pipeline hands names over with
//! `try_send` (a full channel drops the change, counted); the keeper writes at most
//! `rate` alias changes a second, keeps at most `max` aliases of its own (beyond, the
//! oldest ended goes first; with none ended, the new one is skipped, counted), and counts
//! and logs (rate-limited) every failed call. A restart takes over what the last run left:
//! Janus's names are kept, the others count as ended at the restart.

use crate::diagnose::names::{is_janus, is_ours};
use crate::diagnose::NameChange;
use crate::internal_events::AliasFailed;
use crate::telemetry::{Alias as Count, Emit};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Alias, Api};

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
    /// The PeerConnection behind `ip:port` ended: its name stays for the retention.
    Ended {
        /// The address.
        ip: IpAddr,
        /// The port.
        port: u16,
    },
}

/// The pipeline's end: hands the diagnosis's names over without waiting.
#[derive(Debug)]
pub struct AliasFeed {
    tx: mpsc::Sender<Intent>,
    metrics: Arc<dyn Emit<Count>>,
}

impl AliasFeed {
    /// Hands over one name change.
    pub fn name(&self, n: NameChange) {
        let i = if n.ended {
            Intent::Ended {
                ip: n.ip,
                port: n.port,
            }
        } else {
            Intent::Set {
                ip: n.ip,
                port: n.port,
                name: n.name,
            }
        };
        if self.tx.try_send(i).is_err() {
            self.metrics.add(Count::Dropped, 1);
        }
    }
}

/// How the keeper keeps aliases.
#[derive(Debug, Clone, Copy)]
pub struct Keeping {
    /// Most aliases of its own.
    pub max: usize,
    /// Most changes a second.
    pub rate: u32,
    /// How long a PeerConnection's alias stays after it ended.
    pub retention: Duration,
}

/// Starts the keeper.
pub fn spawn(
    api: Api,
    keeping: Keeping,
    metrics: Arc<dyn Emit<Count>>,
) -> (AliasFeed, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1024);
    let task = tokio::spawn(keep(api, rx, keeping, metrics.clone()));
    (AliasFeed { tx, metrics }, task)
}

/// One alias of the keeper's: its guid, name, and when its PeerConnection ended.
#[derive(Debug, Clone)]
struct Held {
    guid: String,
    name: String,
    ended: Option<Instant>,
}

type Ours = HashMap<(IpAddr, u16), Held>;

/// The aliases an earlier run left (it may have been killed), known by their names,
/// taken over so that they are replaced or removed like this run's own: Janus's kept,
/// the others ended now (their PeerConnections are gone; they stay for the retention).
async fn take_over(api: &mut Api, m: &dyn Emit<Count>) -> Ours {
    let mut ours = Ours::new();
    let now = Instant::now();
    match api.aliases().await {
        Ok(list) => {
            for a in list {
                let (Ok(ip), true) = (a.ip.parse::<IpAddr>(), is_ours(&a.alias)) else {
                    continue;
                };
                let ended = (!is_janus(&a.alias)).then_some(now);
                let held = Held {
                    guid: a.guid,
                    name: a.alias,
                    ended,
                };
                if let Some(old) = ours.insert((ip, a.port), held) {
                    // A duplicate of the same address: one is enough.
                    let _ = api.delete_alias(&old.guid).await;
                }
            }
        }
        Err(e) => AliasFailed {
            what: "cannot list the existing ones.",
            error: &e,
        }
        .emit(m),
    }
    m.set(Count::Held, ours.len() as u64);
    ours
}

/// The keeper's state and its API.
struct Keeper {
    api: Api,
    ours: Ours,
    keeping: Keeping,
    m: Arc<dyn Emit<Count>>,
}

impl Keeper {
    fn failed(&self, e: &super::ApiError) {
        AliasFailed {
            what: "an update failed.",
            error: e,
        }
        .emit(&self.m)
    }

    async fn delete(&mut self, key: (IpAddr, u16)) -> bool {
        let Some(h) = self.ours.remove(&key) else {
            return false;
        };
        match self.api.delete_alias(&h.guid).await {
            Ok(_) => {
                self.m.add(Count::Writes, 1);
                true
            }
            Err(e) => {
                self.failed(&e);
                false
            }
        }
    }

    /// The ended alias whose PeerConnection ended first.
    fn oldest_ended(&self) -> Option<(IpAddr, u16)> {
        self.ours
            .iter()
            .filter_map(|(k, h)| h.ended.map(|t| (t, *k)))
            .min()
            .map(|(_, k)| k)
    }

    async fn set(&mut self, ip: IpAddr, port: u16, name: String) {
        if let Some(h) = self.ours.get_mut(&(ip, port)) {
            if h.name == name {
                // The same name again (a new PeerConnection of the same client): live.
                h.ended = None;
                return;
            }
        }
        if !self.ours.contains_key(&(ip, port)) && self.ours.len() >= self.keeping.max {
            match self.oldest_ended() {
                Some(k) => {
                    self.delete(k).await;
                    self.m.add(Count::Expired, 1);
                }
                None => {
                    self.m.add(Count::Dropped, 1);
                    return;
                }
            }
        }
        // The new name wins over what the address held.
        self.delete((ip, port)).await;
        match self.api.create_alias(&Alias::host(&name, ip, port)).await {
            Ok(guid) => {
                self.m.add(Count::Writes, 1);
                self.ours.insert(
                    (ip, port),
                    Held {
                        guid,
                        name,
                        ended: None,
                    },
                );
            }
            Err(e) => self.failed(&e),
        }
    }

    /// The aliases whose retention ran out, oldest first.
    fn expired(&self, now: Instant) -> Vec<(IpAddr, u16)> {
        let mut v: Vec<(Instant, (IpAddr, u16))> = self
            .ours
            .iter()
            .filter_map(|(k, h)| h.ended.map(|t| (t, *k)))
            .filter(|(t, _)| now.saturating_duration_since(*t) >= self.keeping.retention)
            .collect();
        v.sort();
        v.into_iter().map(|(_, k)| k).collect()
    }
}

async fn keep(api: Api, mut rx: mpsc::Receiver<Intent>, keeping: Keeping, m: Arc<dyn Emit<Count>>) {
    let mut k = Keeper {
        api,
        ours: Ours::new(),
        keeping,
        m,
    };
    k.ours = take_over(&mut k.api, &k.m).await;
    let gap = Duration::from_secs(1) / keeping.rate.max(1);
    let mut next = Instant::now();
    // Retention is looked at every second at most, or every tenth of it.
    let every = (keeping.retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut sweep = tokio::time::interval(every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let intent = tokio::select! {
            i = rx.recv() => match i {
                Some(i) => Some(i),
                None => break,
            },
            _ = sweep.tick() => None,
        };
        let expired = match &intent {
            None => k.expired(Instant::now()),
            Some(_) => Vec::new(),
        };
        if intent.is_none() && expired.is_empty() {
            continue;
        }
        for key in expired {
            pace(&mut next, gap).await;
            if k.delete(key).await {
                k.m.add(Count::Expired, 1);
            }
        }
        match intent {
            Some(Intent::Set { ip, port, name }) => {
                pace(&mut next, gap).await;
                k.set(ip, port, name).await;
            }
            Some(Intent::Ended { ip, port }) => {
                if let Some(h) = k.ours.get_mut(&(ip, port)) {
                    h.ended.get_or_insert(Instant::now());
                }
            }
            None => {}
        }
        k.m.set(Count::Held, k.ours.len() as u64);
    }
}

/// Waits for the next write's turn (`gap` apart).
async fn pace(next: &mut Instant, gap: Duration) {
    let now = Instant::now();
    if *next > now {
        tokio::time::sleep(*next - now).await;
    }
    *next = Instant::now().max(*next) + gap;
}
