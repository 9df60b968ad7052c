//! Waiting for a step's items: counts the collector's events (callbacks, dead letters, manifests
//! found by polling) until every item is committed or one has failed for good, keeps the fleet
//! maintained and watched meanwhile, and tallies attempts, workers and retries into the step's
//! summary.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use runner_backends::fleet::{FleetHandle, FleetRequest};
use runner_spec::StepSpec;
use runner_types::WorkItemId;
use tracing::warn;

use super::collect::{Collector, Event};
use super::context::{StepContext, StepQueues};
use super::leases::StepLeases;
use super::watchdog::Watchdog;
use super::{RunError, infra};
use crate::feed::Feeder;
use crate::summary::{LostAttempt, StepSummary};
use crate::wire::WorkItem;

/// How often the fleet is maintained and watched, and the dead-letter queue read.
const MAINTAIN_EVERY: Duration = Duration::from_secs(3);
/// How often pending items' manifests are read (a callback can be lost for good).
const MANIFEST_POLL_EVERY: Duration = Duration::from_secs(15);
/// [`MANIFEST_POLL_EVERY`], or a test's shorter one (`SPOTLAKE_TEST_MANIFEST_POLL_MS`).
fn manifest_poll_every() -> Duration {
    std::env::var("SPOTLAKE_TEST_MANIFEST_POLL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(MANIFEST_POLL_EVERY, Duration::from_millis)
}
/// How long a step waits, once every item is committed, for the callbacks of items whose
/// manifest the poll found first: the callback carries the attempt's time and worker.
const LATE_CALLBACK_GRACE: Duration = Duration::from_secs(10);

/// Waiting for a step's items: the tally of what the collector reported.
pub(super) struct Wait<'a, 'b> {
    pub(super) ctx: &'a StepContext<'b>,
    pub(super) step: &'a StepSpec,
    pub(super) attempts: u32,
    pub(super) todo: &'a [&'a WorkItem],
    pub(super) feeder: &'a mut Feeder,
    pub(super) summary: &'a mut StepSummary,
    pub(super) watchdog: Watchdog,
    /// When each worker ran each committed attempt.
    pub(super) spans: HashMap<String, Vec<(f64, f64)>>,
    /// How often each item was handed back by its worker, and the last reason.
    pub(super) handed_back: HashMap<WorkItemId, (u32, String)>,
    /// Items whose successful attempt's callback was counted (a manifest can come first).
    pub(super) succeeded: BTreeSet<WorkItemId>,
    /// The step's leases, which must not be lost while it runs.
    pub(super) leases: &'a StepLeases,
}

/// The most intervals open at one instant.
pub(super) fn peak_overlap(spans: &[(f64, f64)]) -> usize {
    // Ends sort before starts at the same instant: back-to-back items do not overlap.
    let mut edges: Vec<(f64, i32)> = spans.iter().flat_map(|&(a, b)| [(a, 1), (b, -1)]).collect();
    edges.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let (mut open, mut peak) = (0i32, 0i32);
    for (_, d) in edges {
        open += d;
        peak = peak.max(open);
    }
    peak as usize
}

impl Wait<'_, '_> {
    pub(super) async fn until_committed(
        &mut self,
        queues: &StepQueues<'_>,
        fleet: &FleetHandle,
        request: &FleetRequest,
    ) -> Result<(), RunError> {
        let ctx = self.ctx;
        let collector = Collector::new(&ctx.options.run_id, self.todo, queues.callbacks, queues.dlq);
        let mut done: BTreeSet<WorkItemId> = BTreeSet::new();
        let mut failures: HashMap<WorkItemId, (u32, String)> = HashMap::new();
        let (mut last_maintain, mut last_manifest_check) = (Instant::now(), Instant::now());
        let total = self.todo.len();
        ctx.observer.progress(&self.step.name, ctx.index, ctx.steps, 0, total);
        while done.len() < total {
            if let Some(lost) = self.leases.lost() {
                return Err(RunError::Busy { step: self.step.name.clone(), error: lost });
            }
            if let Some(deadline) = ctx.deadline
                && Instant::now() > deadline
            {
                return Err(RunError::MaxRuntime(ctx.options.max_runtime.unwrap_or_default()));
            }
            for event in collector.callbacks(Duration::from_secs(1)).await.map_err(infra)? {
                self.count(event, &mut done, &mut failures)?;
            }
            self.feeder.top_up(&**queues.work, done.len()).await.map_err(infra)?;
            if last_maintain.elapsed() >= MAINTAIN_EVERY {
                last_maintain = Instant::now();
                let wanted = (total - done.len()).min(ctx.backends.fleet.max_items());
                let state = ctx.backends.fleet.maintain(fleet, request, wanted).await.map_err(infra)?;
                for e in &state.errors {
                    warn!(step = %self.step.name, "the fleet reports: {e}");
                }
                self.summary.fleet_requested = state.requested;
                self.watchdog
                    .check(&*ctx.backends.stores, &state)
                    .await
                    .map_err(|e| RunError::Boot { step: self.step.name.clone(), error: e.to_string() })?;
                for event in collector.dead_letters().await.map_err(infra)? {
                    self.count(event, &mut done, &mut failures)?;
                }
            }
            if last_manifest_check.elapsed() >= manifest_poll_every() {
                last_manifest_check = Instant::now();
                // Only sent items can have finished.
                let sent = &self.todo[..self.feeder.sent()];
                let pending: Vec<&WorkItem> = sent.iter().filter(|i| !done.contains(&i.id)).copied().collect();
                for event in collector.manifests(&*ctx.backends.stores, &pending, ctx.options.force).await {
                    self.count(event, &mut done, &mut failures)?;
                }
                ctx.observer.progress(&self.step.name, ctx.index, ctx.steps, done.len(), total);
            }
        }
        // A manifest the poll found before its item's callback arrived leaves that attempt's
        // seconds out of its partition's share of the bill, unless the callback is still read.
        let grace = Instant::now() + LATE_CALLBACK_GRACE;
        while self.succeeded.len() < done.len() && Instant::now() < grace {
            for event in collector.callbacks(Duration::from_secs(1)).await.map_err(infra)? {
                self.count(event, &mut done, &mut failures)?;
            }
        }
        if self.succeeded.len() < done.len() {
            warn!(
                step = %self.step.name,
                "{} committed item(s) sent no callback: their attempts' seconds are not in the partitions' shares",
                done.len() - self.succeeded.len()
            );
        }
        Ok(())
    }

    /// Adds an attempt's seconds to its partition's work.
    fn add_attempt(&mut self, item: &WorkItem, (start, end): (f64, f64)) {
        self.summary.by_partition.entry(partition_key(item)).or_default().attempt_seconds += (end - start).max(0.0);
    }

    fn lose_attempt(&mut self, item: &WorkItem, worker: String, outcome: &str, (started_at, finished_at): (f64, f64)) {
        self.summary.lost_attempts.push(LostAttempt {
            item: item.label.clone(),
            worker,
            outcome: outcome.into(),
            started_at,
            finished_at,
        });
    }

    /// Counts one event: a success once per item (callbacks may be duplicated), a failure
    /// against the item's attempts, an interruption freely.
    fn count(
        &mut self,
        event: Event<'_>,
        done: &mut BTreeSet<WorkItemId>,
        failures: &mut HashMap<WorkItemId, (u32, String)>,
    ) -> Result<(), RunError> {
        let (ctx, step) = (self.ctx, &self.step.name);
        match event {
            Event::Succeeded { item, instance_type, peak_rss_bytes, warm_start, worker, span } => {
                done.insert(item.id.clone());
                if self.succeeded.insert(item.id.clone()) {
                    self.add_attempt(item, span);
                    self.spans.entry(worker).or_default().push(span);
                    if let Some(t) = instance_type {
                        *self.summary.instance_types.entry(t).or_default() += 1;
                    }
                    self.summary.peak_item_rss_bytes =
                        self.summary.peak_item_rss_bytes.max(peak_rss_bytes.unwrap_or(0));
                    self.summary.items_warm_started += usize::from(warm_start);
                    ctx.observer.progress(step, ctx.index, ctx.steps, done.len(), self.todo.len());
                }
            }
            Event::ManifestFound { item } => {
                done.insert(item.id.clone());
            }
            Event::Failed { item, error, permanent, worker, span } => {
                self.add_attempt(item, span);
                self.lose_attempt(item, worker, "failed", span);
                if done.contains(&item.id) {
                    return Ok(());
                }
                let entry = failures.entry(item.id.clone()).or_insert((0, String::new()));
                entry.0 += 1;
                entry.1 = error.clone();
                let will_retry = !permanent && entry.0 < self.attempts;
                ctx.observer.item_failed(step, &item.label, entry.0, &error, will_retry);
                if !will_retry {
                    let error = if permanent {
                        format!("{error} (not retried: another attempt would fail the same way)")
                    } else {
                        error
                    };
                    return Err(RunError::ItemFailed {
                        step: step.clone(),
                        item: item.label.clone(),
                        attempts: entry.0,
                        error,
                    });
                }
                self.summary.retries += 1;
            }
            Event::Interrupted { item, reason, worker, span } => {
                self.add_attempt(item, span);
                self.lose_attempt(item, worker, "interrupted", span);
                self.summary.interruptions_survived += 1;
                ctx.observer.item_interrupted(step, &item.label, &reason);
                let entry = self.handed_back.entry(item.id.clone()).or_default();
                entry.0 += 1;
                entry.1 = reason;
            }
            // Every delivery counts toward the queue's bound, so losses of every kind end here:
            // failures, hand-backs, and attempts whose worker died without a callback.
            Event::DeadLettered { item } => {
                if done.contains(&item.id) {
                    return Ok(());
                }
                let deliveries = self.attempts + ctx.options.interruption_allowance;
                let (failed, error) = failures.get(&item.id).cloned().unwrap_or_default();
                let (handed_back, reason) = self.handed_back.get(&item.id).cloned().unwrap_or_default();
                let silent = deliveries.saturating_sub(failed + handed_back);
                let last = if handed_back > 0 { format!(" (the last: {reason})") } else { String::new() };
                let lost = format!(
                    "the item went to the dead-letter queue after {deliveries} deliveries: {failed} failed, \
                     {handed_back} handed back by their worker{last}, {silent} with no callback (as when a worker dies)"
                );
                return Err(RunError::ItemFailed {
                    step: step.clone(),
                    item: item.label.clone(),
                    attempts: deliveries,
                    error: if failed > 0 { format!("{error} ({lost})") } else { lost },
                });
            }
        }
        Ok(())
    }
}

/// The run partition an item belongs to, as summaries key it (empty when unpartitioned).
pub(super) fn partition_key(item: &WorkItem) -> String {
    item.partition.as_ref().map(|p| p.key.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::peak_overlap;

    #[test]
    fn overlap_counts_items_running_at_once() {
        assert_eq!(peak_overlap(&[]), 0);
        assert_eq!(peak_overlap(&[(0.0, 2.0), (1.0, 3.0), (1.5, 1.7)]), 3);
        assert_eq!(peak_overlap(&[(0.0, 1.0), (1.0, 2.0)]), 1, "back to back is one at a time");
    }
}
