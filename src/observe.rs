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

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines (colour only on a terminal, and never with `NO_COLOR` set).
    #[default]
    Text,
    /// One JSON object per line (for journald, Loki, …).
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `HEPLINK_LOG` is not a valid filter.
    #[error("HEPLINK_LOG={value:?} is not a valid log filter ({message}); use a level such as info or debug, or directives such as heplink=debug,warn")]
    Filter {
        /// The variable's value.
        value: String,
        /// What the parser said.
        message: String,
    },
}

/// Sets up logging to stderr: the filter from `HEPLINK_LOG` (an invalid one is an
/// error naming the variable), `default` without it; colour only when stderr is a
/// terminal and `NO_COLOR` is unset.
pub fn init_logging(default: &str, format: LogFormat) -> Result<(), LogError> {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("HEPLINK_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::builder()
                .parse(&v)
                .map_err(|e| LogError::Filter {
                    value: v.clone(),
                    message: e.to_string(),
                })?
        }
        _ => EnvFilter::new(default),
    };
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.with_ansi(ansi).init(),
        LogFormat::Json => b.json().with_ansi(false).init(),
    }
    Ok(())
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
