//! The orchestrator (`runner run`): for each step in dependency order, plan the work items
//! (for every partition of the run), skip the committed ones, enqueue the rest, launch a fleet,
//! collect callbacks until every item is committed, then delete the fleet and move on. An
//! infrastructure loss is retried freely; a failure of the job itself is retried up to the
//! step's attempts and then fails the step with the item's error.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::feed::Feeder;
use crate::fleet::{Fleet, FleetHandle, FleetRequest, WorkerConfig};
use crate::item::{Callback, Manifest, Outcome, RunId, WorkItem, WorkItemId};
use crate::observer::Observer;
use crate::partition::Partition;
use crate::plan::{self, Stores};
use crate::queue::{Queue, QueueBackend, QueueOptions};
use crate::spec::{JobSpec, StepSpec};
use crate::storage::Location;
use crate::stores::StoreCache;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Checked before anything was launched.
    #[error("preflight: {0}")]
    Preflight(String),
    /// Planning a step failed.
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    /// An item failed for good.
    #[error("step {step:?}: item {item} failed after {attempts} attempt(s): {error}")]
    ItemFailed {
        /// The step.
        step: String,
        /// The item's label.
        item: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        error: String,
    },
    /// The run went over its maximum runtime.
    #[error("the run went over its maximum runtime of {0:?}")]
    MaxRuntime(Duration),
    /// Storage, queue or fleet trouble.
    #[error("{0}")]
    Infrastructure(String),
}

fn infra(e: impl std::fmt::Display) -> RunError {
    RunError::Infrastructure(e.to_string())
}

/// The backends a run uses.
pub struct Backends {
    /// Storage.
    pub stores: Arc<StoreCache>,
    /// Queues.
    pub queues: Arc<dyn QueueBackend>,
    /// `local` or `sqs`, for workers.
    pub queue_kind: String,
    /// Where workers run.
    pub fleet: Arc<dyn Fleet>,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// This run's id.
    pub run_id: RunId,
    /// Where relative paths resolve.
    pub root: Location,
    /// Where run state (manifests, run records, the spec) lives.
    pub state: Location,
    /// The partitions (empty: an unpartitioned run).
    pub partitions: Vec<Partition>,
    /// Fleet capacity: worker processes (local) or vCPUs (EC2).
    pub capacity: usize,
    /// Give up after this long.
    pub max_runtime: Option<Duration>,
    /// Redo committed items.
    pub force: bool,
    /// The Dagster run, for tags.
    pub dagster_run_id: Option<String>,
    /// Item visibility timeout.
    pub visibility: Duration,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Idle time after which workers exit.
    pub idle_shutdown: Duration,
    /// Attempts per item when the step does not say.
    pub max_attempts: u32,
    /// Deliveries allowed beyond the attempts, for interruptions, before the dead-letter queue.
    pub interruption_allowance: u32,
    /// Whether workers poll IMDS.
    pub poll_imds: bool,
    /// Workers' scratch directory.
    pub scratch_dir: Option<String>,
    /// Run only these steps (all when empty).
    pub only_steps: Vec<String>,
    /// Work items kept in a step's queue at a time (see `feed`).
    pub enqueue_window: usize,
}

/// Fleets that are up, so they can be deleted whatever ends the run.
#[derive(Debug, Clone, Default)]
pub struct LiveFleets(Arc<Mutex<Vec<FleetHandle>>>);

impl LiveFleets {
    fn add(&self, h: FleetHandle) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(h);
    }
    fn remove(&self, h: &FleetHandle) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).retain(|x| x != h);
    }
    /// Takes every fleet still up.
    pub fn take(&self) -> Vec<FleetHandle> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// One output's totals over all of a step's items.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OutputSummary {
    /// The output directory per run partition.
    pub locations: BTreeMap<String, String>,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// Files.
    pub files: u64,
    /// Columns and types.
    pub schema: Vec<(String, String)>,
    /// Rows per hive directory (`day=2024-01-02`).
    pub hive_partitions: BTreeMap<String, u64>,
    /// Rows per run partition (the Dagster partition key).
    pub rows_by_partition: BTreeMap<String, u64>,
}

/// What a step did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepSummary {
    /// The step.
    pub name: String,
    /// Items in the step.
    pub items: usize,
    /// Items committed by an earlier run.
    pub already_done: usize,
    /// Failed attempts that were retried.
    pub retries: u32,
    /// Items handed back by a worker (spot notices, shutdowns).
    pub interruptions: u32,
    /// Seconds the step took.
    pub seconds: f64,
    /// Sum of the items' engine time.
    pub item_seconds: f64,
    /// Largest item process.
    pub peak_rss_bytes: u64,
    /// Rows read.
    pub rows_in: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Rows dropped by `skip`.
    pub rows_dropped: u64,
    /// Rows quarantined.
    pub rows_quarantined: u64,
    /// Instance types that ran items (with items each).
    pub instance_types: BTreeMap<String, u64>,
    /// Per output.
    pub outputs: BTreeMap<String, OutputSummary>,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run.
    pub run_id: String,
    /// Steps in order.
    pub steps: Vec<StepSummary>,
    /// Seconds.
    pub seconds: f64,
}

/// The run record, for `fleet gc` and for people.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run.
    pub run_id: RunId,
    /// The job.
    pub job: String,
    /// `running`, `succeeded`, `failed`.
    pub status: String,
    /// Unix seconds of the last heartbeat.
    pub heartbeat: u64,
    /// The error, when failed.
    #[serde(default)]
    pub error: Option<String>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Where a run's record lives.
pub fn run_record_location(state: &Location, run_id: &RunId) -> Location {
    state.join(&format!("runs/{run_id}/run.json"))
}

async fn write_record(stores: &StoreCache, state: &Location, record: &RunRecord) -> Result<(), RunError> {
    let loc = run_record_location(state, &record.run_id);
    stores.write(&loc.to_string(), serde_json::to_vec_pretty(record).unwrap_or_default()).await.map_err(infra)
}

/// A run is live while its record says `running` and its heartbeat is recent.
pub async fn is_run_live(stores: &StoreCache, state: &Location, run_id: &RunId) -> bool {
    let loc = run_record_location(state, run_id);
    match stores.read(&loc.to_string()).await.ok().and_then(|b| serde_json::from_slice::<RunRecord>(&b).ok()) {
        Some(r) => r.status == "running" && unix_now().saturating_sub(r.heartbeat) < 600,
        None => false,
    }
}

fn queue_name(job: &str, run_id: &RunId, suffix: &str) -> String {
    let base: String = format!("{job}-{run_id}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .collect();
    let base: String = base.chars().take(70).collect();
    format!("{base}-{suffix}")
}

/// Runs a whole job. `live` collects the fleets that are up so the caller can delete them if
/// this future is dropped (a signal) or panics.
pub async fn run_job(
    spec: &JobSpec,
    spec_text: &str,
    options: &RunOptions,
    backends: &Backends,
    observer: &dyn Observer,
    live: &LiveFleets,
) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    backends.fleet.preflight().await.map_err(|e| RunError::Preflight(e.to_string()))?;
    let spec_loc = options.state.join(&format!("runs/{}/job.toml", options.run_id));
    backends
        .stores
        .write(&spec_loc.to_string(), spec_text.as_bytes().to_vec())
        .await
        .map_err(|e| RunError::Preflight(format!("cannot write run state at {}: {e}", options.state)))?;
    let mut record = RunRecord {
        run_id: options.run_id.clone(),
        job: spec.name.clone(),
        status: "running".into(),
        heartbeat: unix_now(),
        error: None,
    };
    write_record(&backends.stores, &options.state, &record).await?;

    let result = run_steps(spec, &spec_loc.to_string(), options, backends, observer, live, &mut record).await;
    record.status = if result.is_ok() { "succeeded" } else { "failed" }.into();
    record.error = result.as_ref().err().map(|e| e.to_string());
    record.heartbeat = unix_now();
    if let Err(e) = write_record(&backends.stores, &options.state, &record).await {
        warn!("could not write the final run record: {e}");
    }
    let steps = result?;
    Ok(RunSummary { run_id: options.run_id.0.clone(), steps, seconds: started.elapsed().as_secs_f64() })
}

async fn run_steps(
    spec: &JobSpec,
    spec_uri: &str,
    options: &RunOptions,
    backends: &Backends,
    observer: &dyn Observer,
    live: &LiveFleets,
    record: &mut RunRecord,
) -> Result<Vec<StepSummary>, RunError> {
    let mut order = crate::spec::validate::order(spec).map_err(RunError::Preflight)?;
    if !options.only_steps.is_empty() {
        for name in &options.only_steps {
            if spec.step(name).is_none() {
                return Err(RunError::Preflight(format!("--step {name:?}: the job has no such step")));
            }
        }
        order.retain(|s| options.only_steps.contains(&s.name));
    }
    let dlq_name = queue_name(&spec.name, &options.run_id, "dlq");
    let dlq = backends.queues.create(&dlq_name, &QueueOptions::default()).await.map_err(infra)?;
    let callbacks = backends
        .queues
        .create(&queue_name(&spec.name, &options.run_id, "callbacks"), &QueueOptions::default())
        .await
        .map_err(infra)?;
    let mut summaries = Vec::new();
    let deadline = options.max_runtime.map(|d| Instant::now() + d);
    let mut outcome = Ok(());
    for (i, step) in order.iter().enumerate() {
        let attempts = step.max_attempts.unwrap_or(options.max_attempts);
        let work = backends
            .queues
            .create(
                &queue_name(&spec.name, &options.run_id, &format!("{}-work", step.name)),
                &QueueOptions {
                    visibility: options.visibility,
                    dead_letter: Some((dlq_name.clone(), attempts + options.interruption_allowance)),
                },
            )
            .await
            .map_err(infra)?;
        let ctx = StepContext {
            spec,
            spec_uri,
            options,
            backends,
            observer,
            live,
            index: i + 1,
            steps: order.len(),
            deadline,
        };
        let result = run_step(&ctx, step, attempts, &work, &*callbacks, &*dlq, record).await;
        let _ = backends.queues.delete(work.name()).await;
        match result {
            Ok(summary) => summaries.push(summary),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    let _ = backends.queues.delete(callbacks.name()).await;
    let _ = backends.queues.delete(dlq.name()).await;
    outcome.map(|()| summaries)
}

struct StepContext<'a> {
    spec: &'a JobSpec,
    spec_uri: &'a str,
    options: &'a RunOptions,
    backends: &'a Backends,
    observer: &'a dyn Observer,
    live: &'a LiveFleets,
    index: usize,
    steps: usize,
    deadline: Option<Instant>,
}

fn partitions_of(options: &RunOptions) -> Vec<Option<Partition>> {
    if options.partitions.is_empty() { vec![None] } else { options.partitions.iter().cloned().map(Some).collect() }
}

fn slug(p: &Option<Partition>) -> String {
    p.as_ref().map(Partition::slug).unwrap_or_else(|| "_".to_string())
}

async fn committed_ids(
    ctx: &StepContext<'_>,
    step: &StepSpec,
    partition: &Option<Partition>,
) -> Result<BTreeSet<String>, RunError> {
    let prefix = plan::manifest_prefix(&ctx.options.state, &ctx.spec.name, &step.name, &slug(partition));
    let store = ctx.backends.stores.store(&prefix).await.map_err(infra)?;
    let listed = store.list(&format!("{}/", prefix.key())).await.map_err(infra)?;
    Ok(listed
        .into_iter()
        .filter_map(|m| m.key.rsplit('/').next().and_then(|n| n.strip_suffix(".json")).map(String::from))
        .collect())
}

async fn run_step(
    ctx: &StepContext<'_>,
    step: &StepSpec,
    attempts: u32,
    work: &Arc<dyn Queue>,
    callbacks: &dyn Queue,
    dlq: &dyn Queue,
    record: &mut RunRecord,
) -> Result<StepSummary, RunError> {
    let started = Instant::now();
    let opts = ctx.options;
    let mut items: Vec<WorkItem> = Vec::new();
    let mut committed_before: BTreeSet<String> = BTreeSet::new();
    for partition in partitions_of(opts) {
        let plan_ctx = plan::PlanContext {
            stores: &*ctx.backends.stores,
            run_id: &opts.run_id,
            job: ctx.spec,
            spec_uri: ctx.spec_uri,
            root: &opts.root,
            state: &opts.state,
        };
        let planned = plan::plan_step(&plan_ctx, step, partition.as_ref()).await?;
        committed_before.extend(committed_ids(ctx, step, &partition).await?);
        items.extend(planned);
    }
    let todo: Vec<&WorkItem> = items.iter().filter(|i| opts.force || !committed_before.contains(&i.id.0)).collect();
    let already = items.len() - todo.len();
    ctx.observer.step_started(&step.name, ctx.index, ctx.steps, items.len(), already);
    let mut summary =
        StepSummary { name: step.name.clone(), items: items.len(), already_done: already, ..Default::default() };

    if !todo.is_empty() {
        let bodies: Vec<String> = todo.iter().map(|i| serde_json::to_string(i).unwrap_or_default()).collect();
        let mut feeder = Feeder::new(bodies, opts.enqueue_window);
        feeder.top_up(&**work, 0).await.map_err(infra)?;
        let request = FleetRequest {
            run_id: opts.run_id.clone(),
            step: step.name.clone(),
            dagster_run_id: opts.dagster_run_id.clone(),
            capacity: opts.capacity.min(todo.len()).max(1),
            worker: WorkerConfig {
                queue_backend: ctx.backends.queue_kind.clone(),
                work_queue: work.address(),
                callback_queue: callbacks.address(),
                visibility_secs: opts.visibility.as_secs().max(1),
                heartbeat_secs: opts.heartbeat.as_secs().max(1),
                idle_shutdown_secs: opts.idle_shutdown.as_secs().max(1),
                poll_imds: opts.poll_imds,
                scratch_dir: opts.scratch_dir.clone(),
            },
        };
        let fleet = ctx.backends.fleet.launch(&request).await.map_err(infra)?;
        ctx.live.add(fleet.clone());
        info!(fleet = %fleet.id, kind = ctx.backends.fleet.kind(), "fleet launched for step {}", step.name);
        let queues = StepQueues { work: &**work, callbacks, dlq };
        let waited =
            wait_for_items(ctx, step, attempts, &todo, &queues, &mut feeder, &fleet, &request, &mut summary, record)
                .await;
        // The fleet goes whatever happened.
        if let Err(e) = ctx.backends.fleet.delete(&fleet).await {
            warn!(fleet = %fleet.id, "deleting the fleet failed: {e}");
        } else {
            ctx.live.remove(&fleet);
        }
        waited?;
    }
    prune(ctx, step, &items).await?;
    aggregate(ctx, step, &items, &mut summary).await?;
    summary.seconds = started.elapsed().as_secs_f64();
    ctx.observer.step_finished(&step.name, ctx.index, ctx.steps, summary.seconds);
    Ok(summary)
}

/// The queues a step talks to.
#[derive(Clone, Copy)]
struct StepQueues<'a> {
    work: &'a dyn Queue,
    callbacks: &'a dyn Queue,
    dlq: &'a dyn Queue,
}

#[allow(clippy::too_many_arguments)]
async fn wait_for_items(
    ctx: &StepContext<'_>,
    step: &StepSpec,
    attempts: u32,
    todo: &[&WorkItem],
    queues: &StepQueues<'_>,
    feeder: &mut Feeder,
    fleet: &FleetHandle,
    request: &FleetRequest,
    summary: &mut StepSummary,
    record: &mut RunRecord,
) -> Result<(), RunError> {
    let by_id: HashMap<&WorkItemId, &WorkItem> = todo.iter().map(|i| (&i.id, *i)).collect();
    let mut done: BTreeSet<WorkItemId> = BTreeSet::new();
    let mut failures: HashMap<WorkItemId, (u32, String)> = HashMap::new();
    let mut last_maintain = Instant::now();
    let mut last_manifest_check = Instant::now();
    let mut last_heartbeat = Instant::now();
    let StepQueues { work, callbacks, dlq } = *queues;
    ctx.observer.progress(&step.name, ctx.index, ctx.steps, 0, todo.len());
    while done.len() < todo.len() {
        if let Some(deadline) = ctx.deadline
            && Instant::now() > deadline
        {
            return Err(RunError::MaxRuntime(ctx.options.max_runtime.unwrap_or_default()));
        }
        let received = callbacks.receive(10, Duration::from_secs(1), Duration::from_secs(30)).await.map_err(infra)?;
        for message in received {
            let parsed: Option<Callback> = serde_json::from_str(&message.body).ok();
            callbacks.delete(&message.receipt).await.map_err(infra)?;
            let Some(cb) = parsed else {
                warn!("ignoring a malformed callback");
                continue;
            };
            let Some(item) = by_id.get(&cb.item) else {
                continue;
            };
            match cb.outcome {
                Outcome::Succeeded { stats } => {
                    // Callbacks may be duplicated (at-least-once): count each item once.
                    if done.insert(cb.item.clone()) {
                        if let Some(t) = cb.worker.instance_type.clone() {
                            *summary.instance_types.entry(t).or_default() += 1;
                        }
                        summary.peak_rss_bytes = summary.peak_rss_bytes.max(stats.peak_rss_bytes.unwrap_or(0));
                        ctx.observer.progress(&step.name, ctx.index, ctx.steps, done.len(), todo.len());
                    }
                }
                Outcome::Failed { error } => {
                    if done.contains(&cb.item) {
                        continue;
                    }
                    let entry = failures.entry(cb.item.clone()).or_insert((0, String::new()));
                    entry.0 += 1;
                    entry.1 = error.clone();
                    let will_retry = entry.0 < attempts;
                    ctx.observer.item_failed(&step.name, &item.label, entry.0, &error, will_retry);
                    if !will_retry {
                        return Err(RunError::ItemFailed {
                            step: step.name.clone(),
                            item: item.label.clone(),
                            attempts: entry.0,
                            error,
                        });
                    }
                    summary.retries += 1;
                }
                Outcome::Interrupted { reason } => {
                    summary.interruptions += 1;
                    ctx.observer.item_interrupted(&step.name, &item.label, &reason);
                }
            }
        }
        feeder.top_up(work, done.len()).await.map_err(infra)?;
        if last_maintain.elapsed() >= Duration::from_secs(2) {
            last_maintain = Instant::now();
            ctx.backends.fleet.maintain(fleet, request).await.map_err(infra)?;
            // An item delivered too often lands in the dead-letter queue: it will never run.
            for dead in dlq.receive(10, Duration::ZERO, Duration::from_secs(30)).await.map_err(infra)? {
                let item: Option<WorkItem> = serde_json::from_str(&dead.body).ok();
                dlq.delete(&dead.receipt).await.ok();
                if let Some(item) = item.filter(|i| i.run_id == ctx.options.run_id && !done.contains(&i.id)) {
                    let (n, error) = failures.get(&item.id).cloned().unwrap_or((0, "no error was reported".into()));
                    return Err(RunError::ItemFailed {
                        step: step.name.clone(),
                        item: item.label.clone(),
                        attempts: n,
                        error: format!("{error} (the item went to the dead-letter queue after too many deliveries)"),
                    });
                }
            }
        }
        if last_manifest_check.elapsed() >= Duration::from_secs(15) {
            // A callback can be lost for good; the manifest is the source of truth.
            last_manifest_check = Instant::now();
            // Only sent items can have finished; a forced run must not mistake an earlier
            // run's manifest for this one's.
            let sent = &todo[..feeder.sent()];
            let pending: Vec<&WorkItem> = sent.iter().filter(|i| !done.contains(&i.id)).copied().collect();
            for item in pending {
                let Some(manifest) = read_manifest(&ctx.backends.stores, &item.manifest_uri).await else { continue };
                if !ctx.options.force || manifest.run_id.as_ref() == Some(&ctx.options.run_id) {
                    done.insert(item.id.clone());
                }
            }
            ctx.observer.progress(&step.name, ctx.index, ctx.steps, done.len(), todo.len());
        }
        if last_heartbeat.elapsed() >= Duration::from_secs(30) {
            last_heartbeat = Instant::now();
            record.heartbeat = unix_now();
            write_record(&ctx.backends.stores, &ctx.options.state, record).await.ok();
        }
    }
    Ok(())
}

async fn read_manifest(stores: &StoreCache, uri: &str) -> Option<Manifest> {
    stores.read(uri).await.ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// Deletes what earlier versions of this step's items wrote for the run's partitions: items
/// whose inputs or definition changed have new ids, and their old files must not linger.
async fn prune(ctx: &StepContext<'_>, step: &StepSpec, items: &[WorkItem]) -> Result<(), RunError> {
    let current: BTreeSet<&str> = items.iter().map(|i| i.id.0.as_str()).collect();
    for partition in partitions_of(ctx.options) {
        let prefix = plan::manifest_prefix(&ctx.options.state, &ctx.spec.name, &step.name, &slug(&partition));
        let store = ctx.backends.stores.store(&prefix).await.map_err(infra)?;
        for m in store.list(&format!("{}/", prefix.key())).await.map_err(infra)? {
            let Some(id) = m.key.rsplit('/').next().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if current.contains(id) {
                continue;
            }
            let uri = prefix.with_key(m.key.clone()).to_string();
            if let Some(old) = read_manifest(&ctx.backends.stores, &uri).await {
                for file in old.files.values().flatten() {
                    if let Ok(loc) = crate::stores::parse(file)
                        && let Ok(s) = ctx.backends.stores.store(&loc).await
                    {
                        s.delete(loc.key()).await.map_err(infra)?;
                    }
                }
            }
            store.delete(&m.key).await.map_err(infra)?;
            info!(step = %step.name, "pruned outputs of superseded item {id}");
        }
    }
    Ok(())
}

async fn aggregate(
    ctx: &StepContext<'_>,
    step: &StepSpec,
    items: &[WorkItem],
    summary: &mut StepSummary,
) -> Result<(), RunError> {
    for item in items {
        let Some(m) = read_manifest(&ctx.backends.stores, &item.manifest_uri).await else {
            return Err(RunError::Infrastructure(format!(
                "item {} has no manifest after its step finished",
                item.label
            )));
        };
        let s = &m.stats;
        summary.rows_in += s.rows_in.values().sum::<u64>();
        summary.bytes_in += s.bytes_in;
        summary.bytes_out += s.bytes_out;
        summary.rows_dropped += s.rows_dropped.values().sum::<u64>();
        summary.rows_quarantined += s.rows_quarantined.values().sum::<u64>();
        summary.item_seconds += s.wall_seconds;
        summary.peak_rss_bytes = summary.peak_rss_bytes.max(s.peak_rss_bytes.unwrap_or(0));
        let pkey = item.partition.as_ref().map(|p| p.key.clone()).unwrap_or_default();
        for (name, o) in &s.outputs {
            let out = summary.outputs.entry(name.clone()).or_default();
            out.rows += o.rows;
            out.bytes += o.bytes;
            out.files += o.files.len() as u64;
            if out.schema.is_empty() {
                out.schema = o.schema.clone();
            }
            for (k, v) in &o.partitions {
                *out.hive_partitions.entry(k.clone()).or_default() += v;
            }
            *out.rows_by_partition.entry(pkey.clone()).or_default() += o.rows;
            if let Some(loc) = item.outputs.get(name) {
                out.locations.insert(pkey.clone(), loc.clone());
            }
        }
    }
    for name in step.outputs.keys() {
        summary.outputs.entry(name.clone()).or_default();
    }
    Ok(())
}
