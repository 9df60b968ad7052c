//! The orchestrator (`runner run`): for each step in dependency order, run the step driver
//! ([`step`]) and move on; it owns the run's queues, its record, and the fleets that are up.
//! An infrastructure loss is retried freely; a failure of the job itself is retried up to the
//! step's attempts and then fails the step with the item's error.

mod collect;
mod step;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runner_backends::fleet::{Fleet, FleetHandle};
use runner_backends::queue::{QueueBackend, QueueOptions};
use runner_backends::storage::{Location, StoreCache, Stores};
use runner_spec::JobSpec;
use runner_types::{BackendKind, Partition, RunId, StepName};
use tracing::warn;

use crate::observer::Observer;
use crate::plan;
use crate::run_state::{self, RunRecord, RunStatus, unix_now};
use crate::summary::{RunSummary, StepSummary};
use step::{StepContext, StepQueues};

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
        step: StepName,
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
    /// Which backend the queues are, so workers open them the same way.
    pub kind: BackendKind,
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
    pub only_steps: Vec<StepName>,
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
    let spec_loc = run_state::spec_location(&options.state, &options.run_id);
    backends
        .stores
        .write(&spec_loc, spec_text.as_bytes().to_vec())
        .await
        .map_err(|e| RunError::Preflight(format!("cannot write run state at {}: {e}", options.state)))?;
    let mut record = RunRecord::started(options.run_id.clone(), &spec.name);
    record.write(&*backends.stores, &options.state).await.map_err(infra)?;

    let result = run_steps(spec, &spec_loc, options, backends, observer, live, &mut record).await;
    record.status = if result.is_ok() { RunStatus::Succeeded } else { RunStatus::Failed };
    record.error = result.as_ref().err().map(|e| e.to_string());
    record.heartbeat = unix_now();
    if let Err(e) = record.write(&*backends.stores, &options.state).await {
        warn!("could not write the final run record: {e}");
    }
    let steps = result?;
    Ok(RunSummary { run_id: options.run_id.clone(), steps, seconds: started.elapsed().as_secs_f64() })
}

async fn run_steps(
    spec: &JobSpec,
    spec_uri: &Location,
    options: &RunOptions,
    backends: &Backends,
    observer: &dyn Observer,
    live: &LiveFleets,
    record: &mut RunRecord,
) -> Result<Vec<StepSummary>, RunError> {
    let mut order = runner_spec::validate::order(spec).map_err(RunError::Preflight)?;
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
        let queues = StepQueues { work: &work, callbacks: &*callbacks, dlq: &*dlq };
        let result = step::run_step(&ctx, step, attempts, &queues, record).await;
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

/// A queue's name: job and run, made safe for SQS (letters, digits, `-`, `_`; at most 80).
fn queue_name(job: &str, run_id: &RunId, suffix: &str) -> String {
    let base: String = format!("{job}-{run_id}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .collect();
    let base: String = base.chars().take(70).collect();
    format!("{base}-{suffix}")
}
