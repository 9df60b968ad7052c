//! Retries of a call that fails (opening a queue, checking in, a receive, a callback): the
//! worker asks again with growing waits for a bounded time instead of giving up on the first
//! error.

use std::time::{Duration, Instant};

/// How long the worker keeps asking a queue that fails (receives, callbacks) before giving up.
pub const QUEUE_PATIENCE: Duration = Duration::from_secs(300);

/// [`QUEUE_PATIENCE`], or a test's shorter one (`SPOTLAKE_TEST_QUEUE_PATIENCE_SECS`).
pub(super) fn patience() -> Duration {
    std::env::var("SPOTLAKE_TEST_QUEUE_PATIENCE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(QUEUE_PATIENCE)
}

/// Retries of a queue call that fails: waits of 1, 2, 4 ... 30 s, for [`QUEUE_PATIENCE`].
#[derive(Debug, Default)]
pub(super) struct Retrying {
    since: Option<Instant>,
    tries: u32,
}

impl Retrying {
    /// The wait before the next try, or `None` when patience has run out.
    pub(super) fn again(&mut self, now: Instant) -> Option<Duration> {
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= patience() {
            return None;
        }
        let wait = Duration::from_secs(1u64 << self.tries.min(5)).min(Duration::from_secs(30));
        self.tries += 1;
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_queue_is_asked_again_with_backoff_for_a_bounded_time() {
        let t0 = Instant::now();
        let mut r = Retrying::default();
        let waits: Vec<u64> = (0..8).map(|_| r.again(t0).unwrap().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert!(r.again(t0 + QUEUE_PATIENCE - Duration::from_secs(1)).is_some());
        assert_eq!(r.again(t0 + QUEUE_PATIENCE), None);
    }
}
