//! Rate-limited logging: a happening that can repeat thousands of times a second (a
//! rejected request, a failed disk write) logs at most once per interval, with the count
//! of what was suppressed since the last line.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One kind of log line, limited to one per `every`.
#[derive(Debug)]
pub struct LogLimit {
    every: Duration,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl LogLimit {
    /// At most one line per `every`.
    pub const fn new(every: Duration) -> LogLimit {
        LogLimit {
            every,
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether to log now; if so, how many were suppressed since the last line.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    /// [`LogLimit::allow`] with the time as an argument.
    pub fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(t) if now.saturating_duration_since(t) < self.every => {
                self.suppressed.fetch_add(1, Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.suppressed.swap(0, Relaxed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_of_the_rest() {
        let l = LogLimit::new(Duration::from_secs(1));
        let t = Instant::now();
        assert_eq!(l.allow_at(t), Some(0));
        for i in 1..=279 {
            assert_eq!(l.allow_at(t + Duration::from_millis(i)), None);
        }
        assert_eq!(l.allow_at(t + Duration::from_millis(1000)), Some(279));
        assert_eq!(l.allow_at(t + Duration::from_millis(1500)), None);
    }
}
