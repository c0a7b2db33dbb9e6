//! Wall clocks for the callers of the log, which takes the time as an argument (`now_ms`).
//!
//! The log itself never reads a clock: whoever drives it (the Raft glue, the broker's retention
//! task) holds a [`Clock`] and passes its time in. [`SystemClock`] is the real one;
//! [`ManualClock`] is set by hand, so tests can move time past `segment.ms` or `retention.ms`.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time for the log's `now_ms` arguments.
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch (negative before it).
    fn now_ms(&self) -> i64;
}

/// The system's wall clock ([`SystemTime::now`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => millis(since),
            Err(before) => -millis(before.duration()),
        }
    }
}

/// A clock that shows what it was last set to, for tests. Clones share the time: keep one
/// to move it and hand another (in an `Arc<dyn Clock>`) to the code under test.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now_ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock showing `now_ms` (milliseconds since the Unix epoch).
    pub fn new(now_ms: i64) -> Self {
        ManualClock {
            now_ms: Arc::new(AtomicI64::new(now_ms)),
        }
    }

    /// Sets the time to `now_ms`; it may go backwards, as a wall clock can.
    pub fn set(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `by` (to at most `i64::MAX` milliseconds).
    pub fn advance(&self, by: Duration) {
        let by = millis(by);
        // The closure always returns `Some`, so the update cannot fail.
        let _ = self
            .now_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// Whole milliseconds of `duration`, saturating at `i64::MAX`.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_clones_share_the_time() {
        let clock = ManualClock::new(1_000);
        let handle: Arc<dyn Clock> = Arc::new(clock.clone());
        assert_eq!(handle.now_ms(), 1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(handle.now_ms(), 3_000);
        clock.set(5);
        assert_eq!(handle.now_ms(), 5);
        clock.advance(Duration::MAX);
        assert_eq!(handle.now_ms(), i64::MAX);
    }

    #[test]
    fn system_clock_reads_milliseconds_since_the_epoch() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let now = SystemClock.now_ms();
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
    }
}
