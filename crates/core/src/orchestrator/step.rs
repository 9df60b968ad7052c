//! The step driver: plans one step for every partition of the run, skips the items already
//! committed, feeds the rest to the work queue, launches a fleet, and counts the collector's
//! events until every item is committed or one has failed for good. The fleet is deleted
//! whatever happens; then superseded outputs are pruned and the step is summarised.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runner_backends::fleet::{FleetHandle, FleetRequest};
use runner_backends::lease::{Holder, LeaseError, lease_name};
use runner_backends::queue::Queue;
use runner_spec::{JobSpec, StepSpec};
use runner_types::{Partition, WorkItemId};
use tracing::{info, warn};

use super::collect::{Collector, Event};
use super::leases::StepLeases;
use super::watchdog::Watchdog;
use super::{Backends, LiveResources, RunError, RunOptions, infra, tables};
use crate::feed::{self, Feeder};
use crate::observer::Observer;
use crate::plan;
use crate::run_state;
use crate::summary::{LostAttempt, StepSummary};
use crate::wire::WorkItem;
use crate::worker::WorkerConfig;

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

/// What every step of a run shares.
pub(crate) struct StepContext<'a> {
    pub spec: &'a JobSpec,
    pub spec_uri: &'a runner_types::Location,
    pub options: &'a RunOptions,
    pub backends: &'a Backends,
    pub observer: &'a dyn Observer,
    pub live: &'a LiveResources,
    /// 1-based position of the step in the run.
    pub index: usize,
    /// Steps in the run.
    pub steps: usize,
    pub deadline: Option<Instant>,
}

/// The queues a step talks to.
pub(crate) struct StepQueues<'a> {
    pub work: &'a Arc<dyn Queue>,
    pub callbacks: &'a dyn Queue,
    pub dlq: &'a dyn Queue,
}

impl StepContext<'_> {
    fn partitions(&self) -> Vec<Option<Partition>> {
        let p = &self.options.partitions;
        if p.is_empty() { vec![None] } else { p.iter().cloned().map(Some).collect() }
    }
}

/// This machine's name, for a lease's holder.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its length.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    if ok { String::from_utf8_lossy(&buf[..end]).into_owned() } else { "unknown".into() }
}

/// Runs one step to the end, holding the lease on each of its partitions throughout.
pub(crate) async fn run_step(
    ctx: &StepContext<'_>,
    step: &StepSpec,
    attempts: u32,
    queues: &StepQueues<'_>,
) -> Result<StepSummary, RunError> {
    let opts = ctx.options;
    let names = ctx
        .partitions()
        .iter()
        .map(|p| lease_name(&ctx.spec.name, step.name.as_str(), &run_state::partition_folder(p.as_ref())))
        .collect();
    let holder = Holder {
        run_id: opts.run_id.to_string(),
        dagster_run_id: opts.dagster_run_id.clone(),
        host: hostname(),
        pid: std::process::id(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        expires_at: 0.0,
        ttl_secs: None,
    };
    let leases = StepLeases::take(ctx.backends.leases.clone(), names, holder, opts.lease_wait)
        .await
        .map_err(|e| lease_error(step, e))?;
    let result = run_leased(ctx, step, attempts, queues, &leases).await;
    leases.give_back().await;
    result
}

/// A lease held by another run, or lost to one, stops the step; a store that fails is trouble.
fn lease_error(step: &StepSpec, e: LeaseError) -> RunError {
    match e {
        LeaseError::Backend { .. } => infra(e),
        LeaseError::Held { .. } | LeaseError::Lost { .. } => {
            RunError::Busy { step: step.name.clone(), error: e.to_string() }
        }
    }
}

async fn run_leased(
    ctx: &StepContext<'_>,
    step: &StepSpec,
    attempts: u32,
    queues: &StepQueues<'_>,
    leases: &StepLeases,
) -> Result<StepSummary, RunError> {
    let started = Instant::now();
    let opts = ctx.options;
    let stores = &*ctx.backends.stores;
    let partitions = ctx.partitions();
    let mut items: Vec<WorkItem> = Vec::new();
    let mut committed_before: BTreeSet<WorkItemId> = BTreeSet::new();
    for partition in &partitions {
        let plan_ctx = plan::PlanContext {
            stores,
            run_id: &opts.run_id,
            job: ctx.spec,
            spec_uri: ctx.spec_uri,
            root: &opts.root,
            state: &opts.state,
        };
        items.extend(plan::plan_step(&plan_ctx, step, partition.as_ref()).await?);
        committed_before.extend(
            run_state::committed_ids(stores, &opts.state, &ctx.spec.name, &step.name, partition.as_ref())
                .await
                .map_err(infra)?,
        );
    }
    let todo: Vec<&WorkItem> = items.iter().filter(|i| opts.force || !committed_before.contains(&i.id)).collect();
    let already = items.len() - todo.len();
    ctx.observer.step_started(&step.name, ctx.index, ctx.steps, items.len(), already);
    let mut summary = StepSummary {
        name: step.name.clone(),
        items: items.len(),
        items_already_committed: already,
        usage: Some(Vec::new()),
        ..Default::default()
    };
    for item in items.iter().filter(|i| !opts.force && committed_before.contains(&i.id)) {
        summary.by_partition.entry(partition_key(item)).or_default().items_already_committed += 1;
    }

    if !todo.is_empty() {
        let fleet_api = &ctx.backends.fleet;
        let store_at = |i: &WorkItem| run_state::stored_item_location(&opts.state, &opts.run_id, &step.name, &i.id);
        let bodies = feed::bodies(&todo, &*ctx.backends.stores, store_at).await.map_err(infra)?;
        let window = opts.enqueue_window.unwrap_or_else(|| feed::default_window(fleet_api.max_items()));
        let mut feeder = Feeder::new(bodies, window);
        feeder.top_up(&**queues.work, 0).await.map_err(infra)?;
        let workers_prefix = run_state::workers_prefix(&opts.state, &opts.run_id, &step.name);
        let worker = WorkerConfig {
            backend: ctx.backends.kind,
            work_queue: queues.work.address(),
            callback_queue: queues.callbacks.address(),
            visibility_secs: opts.visibility.as_secs().max(1),
            heartbeat_secs: opts.heartbeat.as_secs().max(1),
            idle_shutdown_secs: opts.idle_shutdown.as_secs().max(1),
            poll_imds: opts.poll_imds,
            scratch_dir: opts.scratch_dir.clone(),
            vcpus_per_item: fleet_api.vcpus_per_item(),
            memory_mib_per_item: step.memory_limit_mb,
            slots: fleet_api.slots_per_worker(),
            workers_prefix: Some(workers_prefix.clone()),
            step_items: Some(todo.len()),
            warm_items: opts.warm_items,
            env: ctx.spec.env.clone(),
            // A fleet that sets each worker's slots runs its workers on one machine (local
            // processes): as many items run on it at once as the fleet runs in all.
            machine_items: fleet_api.slots_per_worker().map(|_| todo.len().min(fleet_api.max_items())),
        };
        let request = FleetRequest {
            run_id: opts.run_id.clone(),
            step: step.name.clone(),
            dagster_run_id: opts.dagster_run_id.clone(),
            worker_config: serde_json::to_string(&worker).unwrap_or_default(),
            workers_prefix: workers_prefix.clone(),
        };
        summary.worker_logs = Some(workers_prefix.clone());
        let wanted = todo.len().min(fleet_api.max_items());
        let fleet = fleet_api.launch(&request, wanted).await.map_err(infra)?;
        ctx.live.add_fleet(fleet.clone());
        info!(fleet = %fleet.id, kind = %fleet_api.kind(), wanted, "fleet launched for step {}", step.name);
        let watchdog = Watchdog::new(workers_prefix.clone(), opts.boot_timeout, opts.crash_loop_after);
        let mut wait = Wait {
            ctx,
            step,
            attempts,
            todo: &todo,
            feeder: &mut feeder,
            summary: &mut summary,
            watchdog,
            spans: HashMap::new(),
            handed_back: HashMap::new(),
            succeeded: BTreeSet::new(),
            leases,
        };
        let waited = wait.until_committed(queues, &fleet, &request).await;
        let spans = std::mem::take(&mut wait.spans);
        // The fleet goes whatever happened.
        if let Err(e) = fleet_api.delete(&fleet).await {
            warn!(fleet = %fleet.id, "deleting the fleet failed: {e}");
        } else {
            ctx.live.remove_fleet(&fleet);
        }
        // Read after the delete, so every instance's end is recorded; each instance runs from
        // when its worker said its machine booted.
        summary.usage = match fleet_api.usage(&fleet).await {
            Ok(mut u) => {
                let booted = run_state::boot_times(&*ctx.backends.stores, &workers_prefix).await;
                u.iter_mut().for_each(|u| u.running_at = booted.get(&u.id).copied());
                Some(u)
            }
            Err(e) => {
                warn!(fleet = %fleet.id, "cannot read what the fleet's instances used; the step's cost is unknown: {e}");
                None
            }
        };
        if waited.is_err()
            && let Some(usage) = &summary.usage
        {
            // A failed step reports no materialization: its log is where what it used is seen.
            let hours: f64 = usage.iter().map(|u| u.seconds()).sum::<f64>() / 3600.0;
            warn!(step = %step.name, "before it failed, the step used {} instance(s) for {hours:.3} instance-hours", usage.len());
        }
        summary.workers = spans.len();
        summary.peak_items_per_worker = spans.values().map(|s| peak_overlap(s)).max().unwrap_or(0);
        waited?;
    }
    // Pruning sweeps the partitions' folders and the summary reports their outputs: both only
    // for their holder. A takeover since the last renewal would otherwise go unseen, and the
    // step would delete what the new holder is publishing and report it as its own.
    leases.confirm().await.map_err(|e| lease_error(step, e))?;
    // Items whose inputs or definition changed have new ids: what the old ones wrote goes, from
    // the tables first (a file they list is pruned only once a commit has removed it).
    let current: BTreeSet<&WorkItemId> = items.iter().map(|i| &i.id).collect();
    let superseded = run_state::superseded(stores, &opts.state, &ctx.spec.name, &step.name, &partitions, &current)
        .await
        .map_err(infra)?;
    let tables = tables::commit_step(ctx, step, &items, &partitions, &superseded).await?;
    run_state::prune(stores, &step.name, superseded).await.map_err(infra)?;
    prune_strays(ctx, step, &partitions).await?;
    summary.add_items(stores, step, &items).await.map_err(infra)?;
    for (name, table) in tables {
        summary.outputs.entry(name).or_default().table = Some(table);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    ctx.observer.step_finished(&step.name, ctx.index, ctx.steps, summary.seconds);
    Ok(summary)
}

/// Deletes what items killed between publishing and committing left in the step's output
/// directories. Only directories that belong to the leased partitions are swept (an
/// unpartitioned run's, or a path holding `{partition_key}`): another partition's run may be
/// publishing into a shared one right now. A file is kept when any step of the job committed it.
async fn prune_strays(
    ctx: &StepContext<'_>,
    step: &StepSpec,
    partitions: &[Option<Partition>],
) -> Result<(), RunError> {
    let opts = ctx.options;
    let stores = &*ctx.backends.stores;
    let mut dirs = Vec::new();
    for partition in partitions {
        let paths = plan::step_paths(&opts.root, step, partition.as_ref())?;
        for (name, output) in &step.outputs {
            if partition.is_none() || output.path.contains("{partition_key}") {
                dirs.push(paths.outputs[name].clone());
            }
        }
    }
    if dirs.is_empty() {
        return Ok(());
    }
    let mut committed = BTreeSet::new();
    for s in &ctx.spec.steps {
        committed.extend(
            run_state::committed_ids_of_step(stores, &opts.state, &ctx.spec.name, &s.name).await.map_err(infra)?,
        );
    }
    let deleted = run_state::prune_strays(stores, &step.name, &dirs, &committed).await.map_err(infra)?;
    if deleted > 0 {
        info!(step = %step.name, "deleted {deleted} file(s) that items published and never committed");
    }
    Ok(())
}

/// Waiting for a step's items: the tally of what the collector reported.
struct Wait<'a, 'b> {
    ctx: &'a StepContext<'b>,
    step: &'a StepSpec,
    attempts: u32,
    todo: &'a [&'a WorkItem],
    feeder: &'a mut Feeder,
    summary: &'a mut StepSummary,
    watchdog: Watchdog,
    /// When each worker ran each committed attempt.
    spans: HashMap<String, Vec<(f64, f64)>>,
    /// How often each item was handed back by its worker, and the last reason.
    handed_back: HashMap<WorkItemId, (u32, String)>,
    /// Items whose successful attempt's callback was counted (a manifest can come first).
    succeeded: BTreeSet<WorkItemId>,
    /// The step's leases, which must not be lost while it runs.
    leases: &'a StepLeases,
}

/// The most intervals open at one instant.
fn peak_overlap(spans: &[(f64, f64)]) -> usize {
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
    async fn until_committed(
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
fn partition_key(item: &WorkItem) -> String {
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
