//! The step driver: plans one step for every partition of the run, skips the items already
//! committed, feeds the rest to the work queue, launches a fleet, and counts the collector's
//! events until every item is committed or one has failed for good. The fleet is deleted
//! whatever happens; then superseded outputs are pruned and the step is summarised.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use runner_backends::fleet::FleetRequest;
use runner_backends::lease::{Holder, LeaseError, lease_name};
use runner_spec::StepSpec;
use runner_types::{Partition, WorkItemId};
use tracing::{info, warn};

use super::context::{StepContext, StepQueues};
use super::leases::StepLeases;
use super::wait::{Wait, partition_key, peak_overlap};
use super::watchdog::Watchdog;
use super::{RunError, infra, tables};
use crate::feed::{self, Feeder};
use crate::plan;
use crate::run_state;
use crate::summary::StepSummary;
use crate::wire::WorkItem;
use crate::worker::WorkerConfig;

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
