//! The step driver: plans one step for every partition of the run, skips the items already
//! committed, feeds the rest to the work queue, launches a fleet, and counts the collector's
//! events until every item is committed or one has failed for good. The fleet is deleted
//! whatever happens; then superseded outputs are pruned and the step is summarised.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runner_backends::fleet::{FleetHandle, FleetRequest};
use runner_backends::queue::Queue;
use runner_spec::{JobSpec, StepSpec};
use runner_types::{Partition, WorkItemId};
use tracing::{info, warn};

use super::collect::{Collector, Event};
use super::{Backends, LiveFleets, RunError, RunOptions, infra};
use crate::feed::Feeder;
use crate::observer::Observer;
use crate::plan;
use crate::run_state::{self, RunRecord, unix_now};
use crate::summary::StepSummary;
use crate::wire::WorkItem;
use crate::worker::WorkerConfig;

/// How often the fleet is maintained and the dead-letter queue read.
const MAINTAIN_EVERY: Duration = Duration::from_secs(2);
/// How often pending items' manifests are read (a callback can be lost for good).
const MANIFEST_POLL_EVERY: Duration = Duration::from_secs(15);
/// How often the run record's heartbeat is written.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);

/// What every step of a run shares.
pub(crate) struct StepContext<'a> {
    pub spec: &'a JobSpec,
    pub spec_uri: &'a runner_types::Location,
    pub options: &'a RunOptions,
    pub backends: &'a Backends,
    pub observer: &'a dyn Observer,
    pub live: &'a LiveFleets,
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

/// Runs one step to the end.
pub(crate) async fn run_step(
    ctx: &StepContext<'_>,
    step: &StepSpec,
    attempts: u32,
    queues: &StepQueues<'_>,
    record: &mut RunRecord,
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
    let mut summary =
        StepSummary { name: step.name.clone(), items: items.len(), already_done: already, ..Default::default() };

    if !todo.is_empty() {
        let bodies: Vec<String> = todo.iter().map(|i| serde_json::to_string(i).unwrap_or_default()).collect();
        let mut feeder = Feeder::new(bodies, opts.enqueue_window);
        feeder.top_up(&**queues.work, 0).await.map_err(infra)?;
        let worker = WorkerConfig {
            backend: ctx.backends.kind,
            work_queue: queues.work.address(),
            callback_queue: queues.callbacks.address(),
            visibility_secs: opts.visibility.as_secs().max(1),
            heartbeat_secs: opts.heartbeat.as_secs().max(1),
            idle_shutdown_secs: opts.idle_shutdown.as_secs().max(1),
            poll_imds: opts.poll_imds,
            scratch_dir: opts.scratch_dir.clone(),
        };
        let request = FleetRequest {
            run_id: opts.run_id.clone(),
            step: step.name.clone(),
            dagster_run_id: opts.dagster_run_id.clone(),
            capacity: opts.capacity.min(todo.len()).max(1),
            worker_config: serde_json::to_string(&worker).unwrap_or_default(),
        };
        let fleet = ctx.backends.fleet.launch(&request).await.map_err(infra)?;
        ctx.live.add(fleet.clone());
        info!(fleet = %fleet.id, kind = %ctx.backends.fleet.kind(), "fleet launched for step {}", step.name);
        let mut wait = Wait { ctx, step, attempts, todo: &todo, feeder: &mut feeder, summary: &mut summary, record };
        let waited = wait.until_committed(queues, &fleet, &request).await;
        // The fleet goes whatever happened.
        if let Err(e) = ctx.backends.fleet.delete(&fleet).await {
            warn!(fleet = %fleet.id, "deleting the fleet failed: {e}");
        } else {
            ctx.live.remove(&fleet);
        }
        waited?;
    }
    let current: BTreeSet<&WorkItemId> = items.iter().map(|i| &i.id).collect();
    run_state::prune(stores, &opts.state, &ctx.spec.name, &step.name, &partitions, &current).await.map_err(infra)?;
    summary.add_items(stores, step, &items).await.map_err(infra)?;
    summary.seconds = started.elapsed().as_secs_f64();
    ctx.observer.step_finished(&step.name, ctx.index, ctx.steps, summary.seconds);
    Ok(summary)
}

/// Waiting for a step's items: the tally of what the collector reported.
struct Wait<'a, 'b> {
    ctx: &'a StepContext<'b>,
    step: &'a StepSpec,
    attempts: u32,
    todo: &'a [&'a WorkItem],
    feeder: &'a mut Feeder,
    summary: &'a mut StepSummary,
    record: &'a mut RunRecord,
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
        let (mut last_maintain, mut last_manifest_check, mut last_heartbeat) =
            (Instant::now(), Instant::now(), Instant::now());
        let total = self.todo.len();
        ctx.observer.progress(&self.step.name, ctx.index, ctx.steps, 0, total);
        while done.len() < total {
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
                ctx.backends.fleet.maintain(fleet, request).await.map_err(infra)?;
                for event in collector.dead_letters().await.map_err(infra)? {
                    self.count(event, &mut done, &mut failures)?;
                }
            }
            if last_manifest_check.elapsed() >= MANIFEST_POLL_EVERY {
                last_manifest_check = Instant::now();
                // Only sent items can have finished.
                let sent = &self.todo[..self.feeder.sent()];
                let pending: Vec<&WorkItem> = sent.iter().filter(|i| !done.contains(&i.id)).copied().collect();
                for event in collector.manifests(&*ctx.backends.stores, &pending, ctx.options.force).await {
                    self.count(event, &mut done, &mut failures)?;
                }
                ctx.observer.progress(&self.step.name, ctx.index, ctx.steps, done.len(), total);
            }
            if last_heartbeat.elapsed() >= HEARTBEAT_EVERY {
                last_heartbeat = Instant::now();
                self.record.heartbeat = unix_now();
                self.record.write(&*ctx.backends.stores, &ctx.options.state).await.ok();
            }
        }
        Ok(())
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
            Event::Succeeded { item, instance_type, peak_rss_bytes } => {
                if done.insert(item.id.clone()) {
                    if let Some(t) = instance_type {
                        *self.summary.instance_types.entry(t).or_default() += 1;
                    }
                    self.summary.peak_rss_bytes = self.summary.peak_rss_bytes.max(peak_rss_bytes.unwrap_or(0));
                    ctx.observer.progress(step, ctx.index, ctx.steps, done.len(), self.todo.len());
                }
            }
            Event::ManifestFound { item } => {
                done.insert(item.id.clone());
            }
            Event::Failed { item, error } => {
                if done.contains(&item.id) {
                    return Ok(());
                }
                let entry = failures.entry(item.id.clone()).or_insert((0, String::new()));
                entry.0 += 1;
                entry.1 = error.clone();
                let will_retry = entry.0 < self.attempts;
                ctx.observer.item_failed(step, &item.label, entry.0, &error, will_retry);
                if !will_retry {
                    return Err(RunError::ItemFailed {
                        step: step.clone(),
                        item: item.label.clone(),
                        attempts: entry.0,
                        error,
                    });
                }
                self.summary.retries += 1;
            }
            Event::Interrupted { item, reason } => {
                self.summary.interruptions += 1;
                ctx.observer.item_interrupted(step, &item.label, &reason);
            }
            Event::DeadLettered { item } => {
                if done.contains(&item.id) {
                    return Ok(());
                }
                let (n, error) = failures.get(&item.id).cloned().unwrap_or((0, "no error was reported".into()));
                return Err(RunError::ItemFailed {
                    step: step.clone(),
                    item: item.label.clone(),
                    attempts: n,
                    error: format!("{error} (the item went to the dead-letter queue after too many deliveries)"),
                });
            }
        }
        Ok(())
    }
}
