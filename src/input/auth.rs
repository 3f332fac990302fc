//! Authentication of the inputs: the constant-time comparison of credentials, and the
//! growing delay for failed tries per peer address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Slows down failed authentication per peer address: the n-th failure in a row waits
/// `base` × 2^(n-1) (50 ms by default, at most 3.2 s) before its 401. A success clears the address.
#[derive(Debug)]
pub struct AuthThrottle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    base: Duration,
}

impl Default for AuthThrottle {
    fn default() -> Self {
        AuthThrottle::new(Duration::from_millis(50))
    }
}

/// Addresses remembered by [`AuthThrottle`] at most (then the oldest half is forgotten).
const THROTTLE_ENTRIES: usize = 10_000;

impl AuthThrottle {
    /// A throttle whose first delay is `base` (doubling up to 64 × `base`).
    pub fn new(base: Duration) -> AuthThrottle {
        AuthThrottle {
            failures: Mutex::default(),
            base,
        }
    }

    /// Records a failure from `ip`; returns the delay to apply and the failures so far.
    pub fn fail(&self, ip: IpAddr) -> (Duration, u32) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() >= THROTTLE_ENTRIES && !f.contains_key(&ip) {
            let mut by_age: Vec<(IpAddr, Instant)> = f.iter().map(|(k, v)| (*k, v.1)).collect();
            by_age.sort_by_key(|e| e.1);
            for (k, _) in by_age.into_iter().take(THROTTLE_ENTRIES / 2) {
                f.remove(&k);
            }
        }
        let e = f.entry(ip).or_insert((0, Instant::now()));
        // A quiet minute forgives.
        if e.1.elapsed() > Duration::from_secs(60) {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = Instant::now();
        let n = e.0;
        (self.base * (1u32 << (n - 1).min(6)), n)
    }

    /// Forgets `ip`'s failures (it authenticated).
    pub fn succeed(&self, ip: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if !f.is_empty() {
            f.remove(&ip);
        }
    }
}

/// Compares in time that depends only on the expected value's length.
pub fn ct_eq(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != given.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"Basic abc", b"Basic abc"));
        assert!(!ct_eq(b"Basic abc", b"Basic abd"));
        assert!(!ct_eq(b"Basic abc", b"Basic ab"));
        assert!(!ct_eq(b"Basic abc", b"Basic abcd"));
        assert!(!ct_eq(b"Basic abc", b""));
    }
    #[test]
    fn failed_authentication_waits_longer_each_time() {
        let t = AuthThrottle::default();
        let ip: IpAddr = [127, 0, 0, 9].into();
        let d: Vec<u64> = (0..9).map(|_| t.fail(ip).0.as_millis() as u64).collect();
        assert_eq!(d, [50, 100, 200, 400, 800, 1600, 3200, 3200, 3200]);
        t.succeed(ip);
        assert_eq!(t.fail(ip).0, Duration::from_millis(50));
    }
}
