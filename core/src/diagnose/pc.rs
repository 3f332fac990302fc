//! One PeerConnection's facts, as Janus reports them, and the verdict they give.
//!
//! ## Outcomes and thresholds
//!
//! - `ice-failed`: ICE reported `failed`, or ICE was tried and never connected.
//! - `dtls-failed`: DTLS reported `failed`, or ICE connected and the PeerConnection never
//!   came up (`webrtcup`): a handshake that never completed ends in Janus's
//!   `"DTLS timeout"` hangup. (`"DTLS alert"` alone is how an ordinary close ends: not a
//!   failure.)
//! - `no-media`: up, with audio or video negotiated, and no media in the direction the
//!   PeerConnection is for (a publisher's to Janus, a subscriber's from Janus, both for
//!   the others) in its whole life, or media that stopped ([`STOPPED_AT_END_US`] or more of
//!   `receiving: false` before the end); or negotiated and never connected without any ICE
//!   activity.
//! - `degraded`: up and with media, but any of: audio MOS (average of the stats intervals,
//!   the E-model homer-ui and heplify-server use) below [`MOS_DEGRADED`] (ITU-T G.107:
//!   R < 70, "many users dissatisfied"); loss of [`LOSS_DEGRADED_PCT`] or more of an
//!   interval's packets (either way) in [`LOSSY_INTERVALS`] stats intervals or more; jitter of [`JITTER_DEGRADED_MS`] or more; round trip of [`RTT_DEGRADED_MS`] or
//!   more (G.114's 150 ms one way, twice); any `slow_link`; an ICE restart; media gaps
//!   (`receiving: false` that came back) of [`GAPS_DEGRADED_US`] or more in all.
//! - `ok`: none of these.
//!
//! Why this file is over 500 lines: the facts, the rules that read them and the tests of
//! each outcome belong together; the thresholds are read beside the rules that use them.

use std::fmt::Write as _;

use crate::json::{write_hundredths, write_json_str, write_u64};

/// Average audio MOS below which a PeerConnection is degraded (G.107: R 70).
pub const MOS_DEGRADED: f64 = 3.6;
/// Loss in one stats interval (percent of the packets of that interval) that degrades.
pub const LOSS_DEGRADED_PCT: f64 = 5.0;
/// Stats intervals with such loss that degrade: one alone is a burst (a gap of sequence
/// numbers Janus's echotest leaves when a call starts reads as 37 % of one interval).
pub const LOSSY_INTERVALS: u32 = 2;
/// Packets an interval needs for its loss to count.
pub const LOSS_MIN_PACKETS: u64 = 20;
/// Jitter that degrades, ms.
pub const JITTER_DEGRADED_MS: u32 = 30;
/// Round-trip time that degrades, ms.
pub const RTT_DEGRADED_MS: u32 = 300;
/// Media gaps in all that degrade, µs.
pub const GAPS_DEGRADED_US: u64 = 2_000_000;
/// Media stopped this long before the end: no media, µs.
pub const STOPPED_AT_END_US: u64 = 5_000_000;

/// A PeerConnection's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Up, with media, nothing wrong.
    Ok,
    /// Up, with media, but with loss, jitter, delay, gaps or congestion.
    Degraded,
    /// No media where it was expected.
    NoMedia,
    /// DTLS failed.
    DtlsFailed,
    /// ICE failed.
    IceFailed,
}

impl Outcome {
    /// All outcomes, in the order of [`Outcome::index`].
    pub const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::Degraded,
        Outcome::NoMedia,
        Outcome::DtlsFailed,
        Outcome::IceFailed,
    ];

    /// Its name in summaries and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Degraded => "degraded",
            Outcome::NoMedia => "no-media",
            Outcome::DtlsFailed => "dtls-failed",
            Outcome::IceFailed => "ice-failed",
        }
    }

    /// Its index in [`Outcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether it is a failure (not `ok` nor `degraded`).
    pub fn failed(self) -> bool {
        self > Outcome::Degraded
    }
}

/// The previous stats sample of one medium.
#[derive(Debug, Clone, Default)]
pub(super) struct Sample {
    pub(super) media: String,
    pub(super) lost: i64,
    pub(super) received: u64,
    pub(super) lost_remote: i64,
    pub(super) sent: u64,
}

/// What Janus reported of one PeerConnection.
#[derive(Debug, Clone, Default)]
pub(super) struct Pc {
    pub(super) start_us: u64,
    pub(super) last_us: u64,
    pub(super) offer_us: Option<u64>,
    pub(super) webrtcup_us: Option<u64>,
    pub(super) ice_seen: bool,
    pub(super) ice_ok: bool,
    pub(super) ice_failed: bool,
    pub(super) ice_restarts: u32,
    pub(super) ice_last: Option<String>,
    pub(super) dtls_last: Option<String>,
    pub(super) dtls_failed: bool,
    pub(super) hangup: Option<String>,
    pub(super) has_av: bool,
    /// Media not received now, since when (per medium).
    pub(super) not_receiving: Vec<(String, u64)>,
    pub(super) gaps: u32,
    pub(super) gap_us: u64,
    pub(super) slow_links: u32,
    pub(super) samples: Vec<Sample>,
    pub(super) stats_seen: bool,
    pub(super) received: u64,
    pub(super) sent: u64,
    pub(super) worst_loss_pct: f64,
    /// Stats events with an interval's loss of [`LOSS_DEGRADED_PCT`] or more.
    pub(super) lossy_intervals: u32,
    pub(super) max_jitter_ms: u32,
    pub(super) max_rtt_ms: u32,
    pub(super) mos_sum: f64,
    pub(super) mos_n: u32,
    pub(super) mos_min: Option<f64>,
    /// The roles the handle had during this PeerConnection (bits of `Role as u8`).
    pub(super) roles: u8,
}

/// A verdict with the facts behind it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The outcome.
    pub outcome: Outcome,
    /// Why it is not `ok` (empty when it is), most telling first.
    pub reasons: Vec<String>,
    /// From the first event to the end, µs.
    pub duration_us: u64,
    /// From the first JSEP to `webrtcup`, µs.
    pub to_webrtcup_us: Option<u64>,
    /// Average audio MOS.
    pub mos: Option<f64>,
    /// Media stopped this long before the end, µs.
    pub stopped_at_end_us: u64,
}

impl Pc {
    pub(super) fn new(at: u64) -> Pc {
        Pc {
            start_us: at,
            last_us: at,
            ..Pc::default()
        }
    }

    /// Takes in one media stats event.
    pub(super) fn stats(&mut self, all: Option<&[crate::map::stats::Stats<'_>]>) {
        let pc = self;
        let Some(all) = all else {
            return;
        };
        pc.stats_seen = true;
        let mut lossy = false;
        for s in all {
            let media = s.media.as_deref().unwrap_or("");
            if !(media.starts_with("audio") || media.starts_with("video")) {
                continue;
            }
            let name = s.mid.as_deref().unwrap_or(media);
            let i = match pc.samples.iter().position(|p| p.media == name) {
                Some(i) => i,
                None if pc.samples.len() < 16 => {
                    pc.samples.push(Sample {
                        media: name.to_string(),
                        ..Sample::default()
                    });
                    pc.samples.len() - 1
                }
                None => continue,
            };
            // The previous sample's counters, replaced by this one's (no copy of its name).
            let prev = &mut pc.samples[i];
            let d_lost = (s.lost - std::mem::replace(&mut prev.lost, s.lost)).max(0) as u64;
            let d_recv = s
                .packets_received
                .saturating_sub(std::mem::replace(&mut prev.received, s.packets_received));
            let d_lost_r = (s.lost_by_remote
                - std::mem::replace(&mut prev.lost_remote, s.lost_by_remote))
            .max(0) as u64;
            let d_sent = s
                .packets_sent
                .saturating_sub(std::mem::replace(&mut prev.sent, s.packets_sent));
            let mut loss = 0.0;
            if d_lost + d_recv >= LOSS_MIN_PACKETS {
                loss = 100.0 * d_lost as f64 / (d_lost + d_recv) as f64;
            }
            let mut loss_r = 0.0;
            if d_sent >= LOSS_MIN_PACKETS {
                loss_r = (100.0 * d_lost_r as f64 / d_sent as f64).min(100.0);
            }
            pc.worst_loss_pct = pc.worst_loss_pct.max(loss).max(loss_r);
            lossy |= loss.max(loss_r) >= LOSS_DEGRADED_PCT;
            pc.max_jitter_ms = pc.max_jitter_ms.max(s.jitter_local).max(s.jitter_remote);
            pc.max_rtt_ms = pc.max_rtt_ms.max(s.rtt);
            if media.starts_with("audio") && (d_recv > 0 || d_sent > 0) {
                let (m, _) =
                    crate::map::qos::mos(f64::from(s.rtt), f64::from(s.jitter_local), loss);
                pc.mos_sum += m;
                pc.mos_n += 1;
                pc.mos_min = Some(pc.mos_min.map_or(m, |x: f64| x.min(m)));
            }
        }
        pc.lossy_intervals += u32::from(lossy);
        pc.received = pc.samples.iter().map(|s| s.received).sum();
        pc.sent = pc.samples.iter().map(|s| s.sent).sum();
    }

    /// An ICE state.
    pub(super) fn ice(&mut self, state: &str) {
        self.ice_seen = true;
        match state {
            "connected" | "ready" => self.ice_ok = true,
            "failed" => self.ice_failed = true,
            // Back to checking after it connected: a restart.
            "checking" | "connecting" if self.ice_ok && self.ice_last.as_deref() != Some(state) => {
                self.ice_restarts += 1
            }
            _ => {}
        }
        self.ice_last = Some(state.into());
    }

    /// A DTLS state.
    pub(super) fn dtls(&mut self, state: &str) {
        if state == "failed" {
            self.dtls_failed = true;
        }
        self.dtls_last = Some(state.into());
    }

    /// `receiving` of one medium at `at`.
    pub(super) fn receiving(&mut self, media: &str, on: bool, at: u64) {
        let i = self.not_receiving.iter().position(|(m, _)| m == media);
        match (on, i) {
            (true, Some(i)) => {
                let (_, since) = self.not_receiving.swap_remove(i);
                self.gaps += 1;
                self.gap_us += at.saturating_sub(since);
            }
            (false, None) if self.not_receiving.len() < 16 => {
                self.not_receiving.push((media.into(), at))
            }
            _ => {}
        }
    }

    /// Media stopped this long before `end`: the longest open gap.
    fn stopped_at_end(&self, end: u64) -> u64 {
        self.not_receiving
            .iter()
            .map(|(_, since)| end.saturating_sub(*since))
            .max()
            .unwrap_or(0)
    }

    /// The verdict for a PeerConnection of this role that ended at `end`.
    pub(super) fn verdict(&self, end: u64, role: super::names::Role) -> Verdict {
        use super::names::Role;
        let up = self.webrtcup_us.is_some();
        let stopped = self.stopped_at_end(end);
        let mut reasons = Vec::new();
        // Media in the direction of some role the handle had (a publisher that also
        // subscribes, renegotiated, has media either way).
        let roles = self.roles | 1 << role as u8;
        let has = |r: Role| roles & (1 << r as u8) != 0;
        let flowed = (has(Role::Publisher) && self.received > 0)
            || (has(Role::Subscriber) && self.sent > 0)
            || ((has(Role::Participant) || has(Role::Sip) || has(Role::Other))
                && self.received > 0
                && self.sent > 0);
        let expected_none = !flowed;
        let outcome = if self.ice_failed || (!up && self.ice_seen && !self.ice_ok) {
            reasons.push(if self.ice_failed {
                "ICE failed".to_string()
            } else {
                "ICE never connected".to_string()
            });
            Outcome::IceFailed
        } else if self.dtls_failed || (!up && self.ice_ok) {
            reasons.push(if self.dtls_failed {
                "DTLS failed".to_string()
            } else {
                "DTLS never completed".to_string()
            });
            Outcome::DtlsFailed
        } else if !up {
            reasons.push("never connected".to_string());
            Outcome::NoMedia
        } else if self.has_av && stopped >= STOPPED_AT_END_US {
            reasons.push(format!(
                "media stopped {} before the end",
                duration(stopped)
            ));
            Outcome::NoMedia
        } else if self.has_av && self.stats_seen && expected_none {
            reasons.push(if self.received == 0 && self.sent == 0 {
                "no packets either way".to_string()
            } else if self.received == 0 {
                "no packets from the peer".to_string()
            } else {
                "no packets to the peer".to_string()
            });
            Outcome::NoMedia
        } else {
            self.degradations(&mut reasons);
            if reasons.is_empty() {
                Outcome::Ok
            } else {
                Outcome::Degraded
            }
        };
        Verdict {
            outcome,
            reasons,
            duration_us: end.saturating_sub(self.start_us),
            to_webrtcup_us: match (self.offer_us, self.webrtcup_us) {
                (Some(o), Some(u)) => Some(u.saturating_sub(o)),
                _ => None,
            },
            mos: (self.mos_n > 0).then(|| self.mos_sum / f64::from(self.mos_n)),
            stopped_at_end_us: stopped,
        }
    }

    fn degradations(&self, reasons: &mut Vec<String>) {
        if self.lossy_intervals >= LOSSY_INTERVALS {
            reasons.push(format!("loss {:.0}%", self.worst_loss_pct));
        }
        if let Some(m) = (self.mos_n > 0).then(|| self.mos_sum / f64::from(self.mos_n)) {
            if m < MOS_DEGRADED {
                reasons.push(format!("MOS {m:.1}"));
            }
        }
        if self.max_jitter_ms >= JITTER_DEGRADED_MS {
            reasons.push(format!("jitter {} ms", self.max_jitter_ms));
        }
        if self.max_rtt_ms >= RTT_DEGRADED_MS {
            reasons.push(format!("RTT {} ms", self.max_rtt_ms));
        }
        if self.slow_links > 0 {
            reasons.push(format!("{} slow_link", self.slow_links));
        }
        if self.ice_restarts > 0 {
            reasons.push(format!("{} ICE restart", self.ice_restarts));
        }
        if self.gap_us >= GAPS_DEGRADED_US {
            reasons.push(format!("media gaps {}", duration(self.gap_us)));
        }
    }

    /// The `"summary"` object's facts (after its identity), written into `s`.
    pub(super) fn write_facts(&self, v: &Verdict, s: &mut String) {
        s.push_str(",\"outcome\":");
        write_json_str(s, v.outcome.as_str());
        s.push_str(",\"reasons\":[");
        for (i, r) in v.reasons.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            write_json_str(s, r);
        }
        s.push_str("],\"duration_ms\":");
        write_u64(s, v.duration_us / 1000);
        s.push_str(",\"offer_to_webrtcup_ms\":");
        opt_u64(s, v.to_webrtcup_us.map(|u| u / 1000));
        s.push_str(",\"ice\":{\"last\":");
        opt_str(s, self.ice_last.as_deref());
        let _ = write!(
            s,
            ",\"failed\":{},\"restarts\":{}}},\"dtls\":{{\"last\":",
            self.ice_failed, self.ice_restarts
        );
        opt_str(s, self.dtls_last.as_deref());
        let _ = write!(s, ",\"failed\":{}}},\"hangup_reason\":", self.dtls_failed);
        opt_str(s, self.hangup.as_deref());
        let _ = write!(
            s,
            ",\"media\":{{\"negotiated\":{},\"receiving_gaps\":{},\"receiving_gap_ms\":{},\"stopped_at_end_ms\":{},\"packets_received\":{},\"packets_sent\":{}}}",
            self.has_av,
            self.gaps,
            self.gap_us / 1000,
            v.stopped_at_end_us / 1000,
            self.received,
            self.sent
        );
        let _ = write!(
            s,
            ",\"slow_links\":{},\"lossy_intervals\":{}",
            self.slow_links, self.lossy_intervals
        );
        s.push_str(",\"worst_loss_pct\":");
        write_hundredths(s, self.worst_loss_pct);
        let _ = write!(
            s,
            ",\"max_jitter_ms\":{},\"max_rtt_ms\":{},\"mos\":",
            self.max_jitter_ms, self.max_rtt_ms
        );
        match v.mos {
            Some(m) => write_hundredths(s, m),
            None => s.push_str("null"),
        }
        s.push_str(",\"mos_min\":");
        match self.mos_min {
            Some(m) => write_hundredths(s, m),
            None => s.push_str("null"),
        }
    }
}

fn opt_u64(s: &mut String, v: Option<u64>) {
    match v {
        Some(n) => write_u64(s, n),
        None => s.push_str("null"),
    }
}

fn opt_str(s: &mut String, v: Option<&str>) {
    match v {
        Some(t) => write_json_str(s, t),
        None => s.push_str("null"),
    }
}

/// A duration in words: `45 s`, `12 min`, `2 h 5 min`.
pub fn duration(us: u64) -> String {
    let s = us / 1_000_000;
    if s < 120 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min", s / 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::super::names::Role;
    use super::*;

    fn up() -> Pc {
        let mut p = Pc::new(0);
        p.offer_us = Some(0);
        p.ice("connecting");
        p.ice("connected");
        p.dtls("trying");
        p.dtls("connected");
        p.webrtcup_us = Some(500_000);
        p.has_av = true;
        p.stats_seen = true;
        p.received = 100;
        p.sent = 100;
        p
    }

    #[test]
    fn each_outcome_from_its_facts() {
        assert_eq!(up().verdict(10_000_000, Role::Other).outcome, Outcome::Ok);
        let mut ice = Pc::new(0);
        ice.ice("connecting");
        ice.ice("failed");
        assert_eq!(ice.verdict(1, Role::Publisher).outcome, Outcome::IceFailed);
        let mut never = Pc::new(0);
        never.ice("connecting");
        assert_eq!(
            never.verdict(1, Role::Publisher).outcome,
            Outcome::IceFailed
        );
        let mut dtls = Pc::new(0);
        dtls.ice("connected");
        dtls.dtls("trying");
        dtls.hangup = Some("DTLS timeout".into());
        assert_eq!(
            dtls.verdict(1, Role::Publisher).outcome,
            Outcome::DtlsFailed
        );
        let mut quiet = up();
        quiet.received = 0;
        assert_eq!(quiet.verdict(1, Role::Publisher).outcome, Outcome::NoMedia);
        // A subscriber gets media from Janus: nothing received from it is normal.
        assert_eq!(quiet.verdict(1, Role::Subscriber).outcome, Outcome::Ok);
        let mut stopped = up();
        stopped.receiving("audio", false, 2_000_000);
        assert_eq!(
            stopped.verdict(6_000_000, Role::Publisher).outcome,
            Outcome::Ok
        );
        assert_eq!(
            stopped.verdict(8_000_000, Role::Publisher).outcome,
            Outcome::NoMedia
        );
        let mut lossy = up();
        lossy.worst_loss_pct = 12.0;
        lossy.lossy_intervals = 1;
        assert_eq!(
            lossy.verdict(1, Role::Publisher).outcome,
            Outcome::Ok,
            "a burst"
        );
        lossy.lossy_intervals = 2;
        let v = lossy.verdict(1, Role::Publisher);
        assert_eq!(
            (v.outcome, v.reasons[0].as_str()),
            (Outcome::Degraded, "loss 12%")
        );
        let mut gaps = up();
        gaps.receiving("video", false, 1_000_000);
        gaps.receiving("video", true, 4_000_000);
        assert_eq!(
            gaps.verdict(9_000_000, Role::Publisher).outcome,
            Outcome::Degraded
        );
    }

    #[test]
    fn an_ice_restart_is_counted_once_per_return_to_checking() {
        let mut p = up();
        p.ice("checking");
        p.ice("checking");
        p.ice("connected");
        assert_eq!(p.ice_restarts, 1);
        assert_eq!(duration(45_000_000), "45 s");
        assert_eq!(duration(720_000_000), "12 min");
    }
}
