//! Keeping a running item's message invisible, and knowing when that can no longer be done.
//!
//! A worker extends its message's visibility every heartbeat. SQS refuses an extension past
//! 12 hours from the receipt, and once a message is visible again another worker reruns the
//! item while a delete with the first receipt silently does nothing. So the keeper never asks
//! past the ceiling: it stops the item shortly before it (a permanent failure naming the limit:
//! a rerun would hit it again) while still keeping the message hidden until its callback is
//! sent, and it treats an extension the queue refuses (a receipt it no longer knows) as the loss
//! of the item: the item is stopped before it publishes, and handed back.

use std::sync::Arc;
use std::time::Duration;

use runner_backends::queue::{Queue, QueueError};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;

/// How long SQS keeps a received message invisible at most, counted from its receipt.
pub const VISIBILITY_CEILING: Duration = Duration::from_secs(12 * 3600);

/// Test-only: a shorter ceiling (`SPOTLAKE_TEST_VISIBILITY_CEILING_SECS`), so a test can reach
/// it in seconds.
fn ceiling() -> Duration {
    std::env::var("SPOTLAKE_TEST_VISIBILITY_CEILING_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(VISIBILITY_CEILING)
}

/// Why an item can't go on under its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loss {
    /// It ran to the queue's visibility ceiling: it fails, no retry.
    Ceiling(String),
    /// Its message may be another worker's now: it is handed back, unpublished.
    Lost(String),
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loss::Ceiling(why) => f.write_str(why),
            Loss::Lost(why) => write!(f, "the item's message may be another worker's now: {why}"),
        }
    }
}

/// What a heartbeat does next.
#[derive(Debug, Clone, PartialEq)]
enum Beat {
    /// Extend the visibility by this much.
    Extend(Duration),
    /// Stop the item.
    Stop(Loss),
}

/// The rules, apart from the clock and the queue, so each has a test.
#[derive(Debug, Clone, Copy)]
struct Rules {
    /// The queue's ceiling, from the receipt.
    ceiling: Duration,
    /// The visibility asked for at each extension.
    visibility: Duration,
    /// The heartbeat period.
    every: Duration,
}

impl Rules {
    /// How long before the ceiling the item is stopped: time to kill it, send its callback and
    /// delete its message with a receipt that still holds (15 minutes under SQS's 12 hours).
    fn margin(&self) -> Duration {
        (self.ceiling / 48).max(self.every * 2)
    }

    /// The next heartbeat, `elapsed` after the receipt.
    fn next(&self, elapsed: Duration) -> Beat {
        let left = self.ceiling.saturating_sub(elapsed);
        if left <= self.margin() {
            return Beat::Stop(Loss::Ceiling(format!(
                "the item ran {} and its queue keeps a message invisible at most {} from its receipt \
                 (SQS's limit); stopped before then so no second worker runs it: split the item \
                 (smaller inputs per item) or make it faster",
                human(elapsed),
                human(self.ceiling)
            )));
        }
        Beat::Extend(self.visibility.min(left))
    }

    /// After a failed extension: whether the item is lost. Only the queue refusing the
    /// extension says so (a receipt it no longer knows); a call that got no answer is tried
    /// again, and should the message show meanwhile, a second attempt of the item finds the
    /// first one's commit (or the first finds the second's) and publishes nothing twice.
    fn after_failure(&self, error: &QueueError) -> Option<Loss> {
        matches!(error, QueueError::StaleReceipt(_))
            .then(|| Loss::Lost(format!("the queue refused to extend this delivery ({error})")))
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 { format!("{}h{:02}m", s / 3600, s % 3600 / 60) } else { format!("{s}s") }
}

/// The heartbeat of one running item. Dropping it stops the heartbeat.
pub(crate) struct Keeper {
    task: tokio::task::JoinHandle<()>,
    lost: watch::Receiver<Option<Loss>>,
}

impl Keeper {
    /// Starts extending `receipt`, received `received_at` with `visibility`, every `every`.
    pub(crate) fn start(
        work: Arc<dyn Queue>,
        receipt: String,
        received_at: Instant,
        visibility: Duration,
        every: Duration,
        label: String,
    ) -> Self {
        let rules = Rules { ceiling: ceiling(), visibility, every: every.max(Duration::from_secs(1)) };
        let (tell, lost) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(received_at + rules.every, rules.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let elapsed = received_at.elapsed();
                let extend = match rules.next(elapsed) {
                    Beat::Extend(d) => d,
                    // The item is stopped, but its message stays hidden (up to the ceiling) until
                    // its callback is sent and the message deleted.
                    Beat::Stop(loss) => {
                        if tell.borrow().is_none() {
                            let _ = tell.send(Some(loss));
                        }
                        rules.ceiling.saturating_sub(elapsed)
                    }
                };
                if extend.is_zero() {
                    return;
                }
                if let Err(e) = work.set_visibility(&receipt, extend).await {
                    match rules.after_failure(&e) {
                        Some(loss) => {
                            warn!(item = %label, "stopping the item: {loss}");
                            let _ = tell.send(Some(loss));
                            return;
                        }
                        None => warn!(item = %label, "heartbeat failed (tried again in {:?}): {e}", rules.every),
                    }
                }
            }
        });
        Self { task, lost }
    }

    /// Resolves when the item can't go on under its message (never, while it can).
    pub(crate) fn lost(&self) -> impl std::future::Future<Output = Loss> + use<> {
        let mut lost = self.lost.clone();
        async move {
            loop {
                if let Some(loss) = lost.borrow_and_update().clone() {
                    return loss;
                }
                if lost.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// The loss, if the item had one.
    pub(crate) fn loss(&self) -> Option<Loss> {
        self.lost.borrow().clone()
    }

    /// Stops extending (the item is over, or its message handed back).
    pub(crate) fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;

    fn sqs() -> Rules {
        Rules { ceiling: VISIBILITY_CEILING, visibility: Duration::from_secs(300), every: Duration::from_secs(60) }
    }

    #[test]
    fn extensions_never_ask_past_twelve_hours_from_the_receipt() {
        let r = sqs();
        assert_eq!(r.next(Duration::from_secs(60)), Beat::Extend(Duration::from_secs(300)));
        // 11h40m in: 20 minutes left, above the 15-minute margin; a full extension still fits.
        assert_eq!(r.next(Duration::from_secs(11 * H + 40 * 60)), Beat::Extend(Duration::from_secs(300)));
        // 11h44m in: 16 minutes left; still a full 5 minutes.
        assert_eq!(r.next(Duration::from_secs(11 * H + 44 * 60)), Beat::Extend(Duration::from_secs(300)));
        // 11h45m in: 15 minutes left, the margin: stopped, naming the limit.
        match r.next(Duration::from_secs(11 * H + 45 * 60)) {
            Beat::Stop(Loss::Ceiling(why)) => {
                assert!(why.contains("11h45m") && why.contains("12h00m") && why.contains("split the item"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        // A visibility longer than what is left is cut to what is left.
        let long = Rules { visibility: Duration::from_secs(2 * H), ..sqs() };
        assert_eq!(long.next(Duration::from_secs(11 * H)), Beat::Extend(Duration::from_secs(H)));
    }

    #[test]
    fn a_short_ceiling_keeps_two_heartbeats_of_margin() {
        let r = Rules {
            ceiling: Duration::from_secs(8),
            visibility: Duration::from_secs(5),
            every: Duration::from_secs(1),
        };
        assert_eq!(r.margin(), Duration::from_secs(2));
        assert_eq!(r.next(Duration::from_secs(5)), Beat::Extend(Duration::from_secs(3)));
        assert!(matches!(r.next(Duration::from_secs(6)), Beat::Stop(Loss::Ceiling(_))));
    }

    #[test]
    fn only_the_queue_refusing_an_extension_loses_the_item() {
        let r = sqs();
        let stale = QueueError::StaleReceipt("w".into());
        assert!(matches!(r.after_failure(&stale), Some(Loss::Lost(why)) if why.contains("refused")));
        let flaky = QueueError::Backend { queue: "w".into(), operation: "set_visibility", detail: "timeout".into() };
        assert_eq!(r.after_failure(&flaky), None, "no answer is tried again");
    }
}
