//! Exponential backoff with a cap, on the caller's clock: how the fleet waits after throttling,
//! a spot shortage or a quota error instead of asking again every tick.

use std::time::{Duration, Instant};

/// Waits that double from `first` up to `cap` while failures continue, and reset on success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    first: Duration,
    cap: Duration,
    failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    pub(crate) fn new(first: Duration, cap: Duration) -> Self {
        Self { first, cap, failures: 0, until: None }
    }

    /// Whether asking is allowed at `now`.
    pub(crate) fn ready(&self, now: Instant) -> bool {
        self.until.is_none_or(|u| now >= u)
    }

    /// A failure at `now`: the next try waits twice as long as the last wait (up to the cap).
    /// Returns the wait.
    pub(crate) fn failed(&mut self, now: Instant) -> Duration {
        let wait = self.first.saturating_mul(1u32 << self.failures.min(20)).min(self.cap);
        self.failures = self.failures.saturating_add(1);
        self.until = Some(now + wait);
        wait
    }

    /// A success: the next failure waits `first` again.
    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
        self.until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_reset_on_success() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
        assert!(b.ready(t0));
        let waits: Vec<u64> = (0..6).map(|_| b.failed(t0).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
        assert!(!b.ready(t0 + Duration::from_secs(59)));
        assert!(b.ready(t0 + Duration::from_secs(60)));
        assert_eq!(b.failures, 6);
        b.succeeded();
        assert!(b.ready(t0));
        assert_eq!(b.failed(t0).as_secs(), 5);
    }
}

/// How long the fleet goes on with its last look when EC2 can't be read: for ever while it is
/// throttled (throttling never fails a step by itself), for a bounded time while it does not
/// answer, and not at all for other errors (a permission withdrawn, say).
#[derive(Debug, Clone)]
pub(crate) struct Patience {
    limit: Duration,
    failing_since: Option<Instant>,
}

impl Patience {
    pub(crate) fn new(limit: Duration) -> Self {
        Self { limit, failing_since: None }
    }

    /// A failed look at `now`: whether to go on with the last one.
    pub(crate) fn bear(&mut self, trouble: super::trouble::Trouble, now: Instant) -> bool {
        use super::trouble::Trouble;
        let since = *self.failing_since.get_or_insert(now);
        match trouble {
            Trouble::Throttled => true,
            Trouble::Transient => now.duration_since(since) < self.limit,
            _ => false,
        }
    }

    /// A look that worked.
    pub(crate) fn succeeded(&mut self) {
        self.failing_since = None;
    }
}

#[cfg(test)]
mod patience_tests {
    use super::super::trouble::Trouble;
    use super::*;

    #[test]
    fn throttling_is_borne_for_ever_silence_for_a_while_and_refusals_not_at_all() {
        let t0 = Instant::now();
        let mut p = Patience::new(Duration::from_secs(600));
        // 40 throttled describes in a row, 3 s apart, then an hour more of them.
        for k in 0..40 {
            assert!(p.bear(Trouble::Throttled, t0 + Duration::from_secs(3 * k)));
        }
        assert!(p.bear(Trouble::Throttled, t0 + Duration::from_secs(3600)));
        p.succeeded();
        let t1 = t0 + Duration::from_secs(4000);
        assert!(p.bear(Trouble::Transient, t1));
        assert!(p.bear(Trouble::Transient, t1 + Duration::from_secs(599)));
        assert!(!p.bear(Trouble::Transient, t1 + Duration::from_secs(600)));
        p.succeeded();
        assert!(!p.bear(Trouble::Permission, t1));
        assert!(!p.bear(Trouble::Other, t1));
    }
}
