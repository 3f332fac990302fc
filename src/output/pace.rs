//! Pacing for UDP collectors: a token bucket, sans-IO (time is an argument).
//!
//! UDP has no flow control: a burst larger than the collector's socket buffer is dropped
//! by the collector's kernel, silently for the sender. heplify-server keeps the kernel's
//! default buffer (208 KiB, about 90 queued packets of Janus's size on Linux), so an
//! unpaced burst of a few hundred packets loses most of them. The bucket lets `burst`
//! packets go at once and then `rate` packets per second.

use std::time::{Duration, Instant};

/// A token bucket of packets. `rate == 0` means unpaced.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: u32,
    burst: u32,
    /// Tokens, in millionths of a packet (integer arithmetic, no drift).
    micro_tokens: u64,
    last: Instant,
}

impl Pacer {
    /// A full bucket of `burst` packets refilled at `rate` packets per second, starting
    /// at `now`. `rate == 0` paces nothing; `burst` is at least 1.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Pacer {
        let burst = burst.max(1);
        Pacer {
            rate,
            burst,
            micro_tokens: u64::from(burst) * 1_000_000,
            last: now,
        }
    }

    /// Whether this bucket paces at all.
    pub fn is_paced(&self) -> bool {
        self.rate > 0
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        let add = elapsed.as_micros() as u64 * u64::from(self.rate);
        self.micro_tokens = (self.micro_tokens + add).min(u64::from(self.burst) * 1_000_000);
    }

    /// How many of `want` packets may go at `now` (they are taken from the bucket), and,
    /// when that is fewer than `want`, how long to wait before the next one may go.
    pub fn take(&mut self, now: Instant, want: usize) -> (usize, Option<Duration>) {
        if self.rate == 0 {
            return (want, None);
        }
        self.refill(now);
        let whole = (self.micro_tokens / 1_000_000) as usize;
        let n = whole.min(want);
        self.micro_tokens -= n as u64 * 1_000_000;
        if n == want {
            return (n, None);
        }
        let missing = 1_000_000 - self.micro_tokens % 1_000_000;
        let wait_us = missing.div_ceil(u64::from(self.rate));
        (n, Some(Duration::from_micros(wait_us.max(1))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpaced_lets_everything_through() {
        let t = Instant::now();
        let mut p = Pacer::new(0, 64, t);
        assert_eq!(p.take(t, 10_000), (10_000, None));
    }

    #[test]
    fn a_burst_then_the_rate() {
        let t = Instant::now();
        let mut p = Pacer::new(1000, 10, t);
        assert_eq!(p.take(t, 4).0, 4);
        let (n, wait) = p.take(t, 100);
        assert_eq!(n, 6, "the rest of the burst");
        assert_eq!(wait, Some(Duration::from_millis(1)), "one packet per ms");
        // 5 ms later: 5 more.
        let (n, _) = p.take(t + Duration::from_millis(5), 100);
        assert_eq!(n, 5);
        // A long idle refills only up to the burst.
        let (n, _) = p.take(t + Duration::from_secs(10), 100);
        assert_eq!(n, 10);
    }

    #[test]
    fn over_a_second_the_rate_is_kept_exactly() {
        let t0 = Instant::now();
        let mut p = Pacer::new(15_000, 64, t0);
        let mut now = t0;
        let mut sent = 0;
        while now < t0 + Duration::from_secs(1) {
            let (n, wait) = p.take(now, 64);
            sent += n;
            now += wait.unwrap_or(Duration::from_micros(1));
        }
        // The burst plus one second at the rate, give or take the last packet.
        assert!((15_063..=15_065).contains(&sent), "{sent}");
    }
}
