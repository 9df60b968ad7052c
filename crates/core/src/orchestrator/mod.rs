//! The orchestrator (`runner run`): for each step in dependency order, run the step driver
//! ([`step`]) and move on; it owns the run's queues, its record, and the fleets that are up.
//! An infrastructure loss is retried freely; a failure of the job itself is retried up to the
//! step's attempts and then fails the step with the item's error.

mod collect;
mod context;
mod heartbeat;
mod leases;
mod step;
mod tables;
mod wait;
mod watchdog;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runner_backends::fleet::{Fleet, FleetHandle};
use runner_backends::lease::Leases;
use runner_backends::queue::{QueueBackend, QueueOptions};
use runner_backends::storage::{Location, StoreCache, Stores};
use runner_spec::{JobSpec, StepSpec};
use runner_types::{BackendKind, Partition, RunId, StepName};
use tracing::{info, warn};

use crate::observer::Observer;
use crate::plan;
use crate::run_state::{self, RunRecord, RunStatus, unix_now};
use crate::summary::{RunSummary, StepSummary};
use context::{StepContext, StepQueues};

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
    /// The step's workers could not start (the fleet watchdog).
    #[error("step {step:?}: {error}")]
    Boot {
        /// The step.
        step: StepName,
        /// Why.
        error: String,
    },
    /// Another run works on the same partition.
    #[error("step {step:?}: {error}")]
    Busy {
        /// The step.
        step: StepName,
        /// Who holds it.
        error: String,
    },
    /// The run went over its maximum runtime.
    #[error("the run went over its maximum runtime of {0:?}")]
    MaxRuntime(Duration),
    /// A table can't take the step's files (its schema, its partition columns): a rerun can't
    /// fix it.
    #[error("step {step:?}: {error}")]
    Table {
        /// The step.
        step: StepName,
        /// What the table refused, naming the output and the columns.
        error: String,
    },
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
    /// One run at a time per (job, step, partition).
    pub leases: Arc<dyn Leases>,
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
    /// With `only_steps`: also run the steps upstream of them with nothing committed for one
    /// of the run's partitions.
    pub missing_upstream: bool,
    /// Work items kept in a step's queue at a time (see `feed`); by default 4 per item the
    /// fleet runs at once.
    pub enqueue_window: Option<usize>,
    /// A step fails when no worker checks in this long after its first instance starts (or no
    /// instance starts this long after the launch).
    pub boot_timeout: Duration,
    /// A step fails when this many instances end without their worker checking in.
    pub crash_loop_after: usize,
    /// The deployment (`prod`, `staging`) whose queues these are.
    pub deployment: String,
    /// How long a step waits for another run of the same partition to finish (0: it fails at
    /// once, naming that run).
    pub lease_wait: Duration,
    /// Let an item process take the next item within this memory budget (unset: a fresh
    /// process per item).
    pub warm_items: Option<crate::worker::warm::WarmBudget>,
}

/// Fleets and queues that exist, so they can be deleted whatever ends the run (a signal that
/// drops the orchestrator's future, a panic).
#[derive(Debug, Clone, Default)]
pub struct LiveResources {
    fleets: Arc<Mutex<Vec<FleetHandle>>>,
    queues: Arc<Mutex<Vec<String>>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LiveResources {
    fn add_fleet(&self, h: FleetHandle) {
        locked(&self.fleets).push(h);
    }
    fn remove_fleet(&self, h: &FleetHandle) {
        locked(&self.fleets).retain(|x| x != h);
    }
    fn add_queue(&self, name: &str) {
        locked(&self.queues).push(name.to_string());
    }
    fn remove_queue(&self, name: &str) {
        locked(&self.queues).retain(|x| x != name);
    }
    /// Takes every fleet still up.
    pub fn take_fleets(&self) -> Vec<FleetHandle> {
        std::mem::take(&mut *locked(&self.fleets))
    }
    /// Takes every queue still there.
    pub fn take_queues(&self) -> Vec<String> {
        std::mem::take(&mut *locked(&self.queues))
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
    live: &LiveResources,
) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    // A run id in use by a live run is refused: this run would make anew (and later delete)
    // that run's queues and launch templates.
    if let Some(beat) = run_state::heartbeat_of(&*backends.stores, &options.state, &options.run_id).await
        && beat.is_live_at(unix_now())
    {
        return Err(RunError::Preflight(format!(
            "run {} is live (its heartbeat is {} s old): give another --run-id, or resume it {} s after it stopped",
            options.run_id,
            unix_now().saturating_sub(beat.at),
            run_state::MISSED_HEARTBEATS * beat.every_secs.max(1)
        )));
    }
    tables::check_roots(spec, &options.root).map_err(RunError::Preflight)?;
    backends.fleet.preflight().await.map_err(|e| RunError::Preflight(e.to_string()))?;
    let spec_loc = run_state::spec_location(&options.state, &options.run_id);
    backends
        .stores
        .write(&spec_loc, spec_text.as_bytes().to_vec())
        .await
        .map_err(|e| RunError::Preflight(format!("cannot write run state at {}: {e}", options.state)))?;
    crate::key_claims::claim(&*backends.stores, &options.state, &spec.name, &options.partitions).await.map_err(
        |e| match e {
            crate::key_claims::KeyClaimError::Clash { .. } => RunError::Preflight(e.to_string()),
            crate::key_claims::KeyClaimError::Store { .. } => infra(e),
        },
    )?;
    let mut record = RunRecord::started(options.run_id.clone(), &spec.name);
    record.write(&*backends.stores, &options.state).await.map_err(infra)?;
    let beating = heartbeat::Beating::start(
        backends.stores.clone(),
        options.state.clone(),
        options.run_id.clone(),
        &spec.name,
        options.heartbeat,
    )
    .await;
    let beating = match beating {
        Ok(b) => b,
        Err(e) => {
            let error = RunError::Preflight(format!("cannot write the run's heartbeat at {}: {e}", options.state));
            (record.status, record.error) = (RunStatus::Failed, Some(error.to_string()));
            record.write(&*backends.stores, &options.state).await.ok();
            return Err(error);
        }
    };

    let result = run_steps(spec, &spec_loc, options, backends, observer, live).await;
    record.status = if result.is_ok() { RunStatus::Succeeded } else { RunStatus::Failed };
    record.error = result.as_ref().err().map(|e| e.to_string());
    record.heartbeat = unix_now();
    if let Err(e) = record.write(&*backends.stores, &options.state).await {
        warn!("could not write the final run record: {e}");
    }
    // After the final record: a gc between the two finds a live heartbeat, never a run that
    // looks over while its record still says running.
    beating.stop().await;
    let steps = result?;
    Ok(RunSummary { run_id: options.run_id.clone(), steps, seconds: started.elapsed().as_secs_f64() })
}

/// The selected steps, and, walking up from them, each upstream step that has committed
/// nothing for one of the run's partitions (a step whose outputs exist stops the walk).
async fn with_missing_upstream(
    spec: &JobSpec,
    order: &[&StepSpec],
    mut needed: BTreeSet<StepName>,
    options: &RunOptions,
    stores: &dyn Stores,
) -> Result<BTreeSet<StepName>, RunError> {
    let partitions: Vec<Option<&Partition>> =
        if options.partitions.is_empty() { vec![None] } else { options.partitions.iter().map(Some).collect() };
    for step in order.iter().rev() {
        if !needed.contains(&step.name) {
            continue;
        }
        let upstream = spec.steps.iter().filter(|o| {
            o.name != step.name
                && step
                    .inputs
                    .values()
                    .any(|i| o.outputs.values().any(|out| runner_spec::validate::overlaps(&out.path, &i.path)))
        });
        for up in upstream {
            if needed.contains(&up.name) {
                continue;
            }
            for partition in &partitions {
                let committed = run_state::committed_ids(stores, &options.state, &spec.name, &up.name, *partition)
                    .await
                    .map_err(infra)?;
                if committed.is_empty() {
                    info!(step = %up.name, "running upstream step {}: it has nothing committed for a partition of this run", up.name);
                    needed.insert(up.name.clone());
                    break;
                }
            }
        }
    }
    Ok(needed)
}

async fn run_steps(
    spec: &JobSpec,
    spec_uri: &Location,
    options: &RunOptions,
    backends: &Backends,
    observer: &dyn Observer,
    live: &LiveResources,
) -> Result<Vec<StepSummary>, RunError> {
    let mut order = runner_spec::validate::order(spec).map_err(RunError::Preflight)?;
    if !options.only_steps.is_empty() {
        for name in &options.only_steps {
            if spec.step(name).is_none() {
                return Err(RunError::Preflight(format!("--step {name:?}: the job has no such step")));
            }
        }
        let mut needed: BTreeSet<StepName> = options.only_steps.iter().cloned().collect();
        if options.missing_upstream {
            needed = with_missing_upstream(spec, &order, needed, options, &*backends.stores).await?;
        }
        order.retain(|s| needed.contains(&s.name));
    }
    let name = |suffix: &str| queue_name(&options.deployment, &spec.name, &options.run_id, suffix);
    let dlq_name = name("dlq");
    let create = |queue: String, opts: QueueOptions| async move {
        // Recorded before it exists: a signal between the two must not leave it behind.
        live.add_queue(&queue);
        backends.queues.create(&queue, &opts).await.map_err(infra)
    };
    let dlq = create(dlq_name.clone(), QueueOptions::default()).await?;
    let callbacks = create(name("callbacks"), QueueOptions::default()).await?;
    let mut summaries = Vec::new();
    let deadline = options.max_runtime.map(|d| Instant::now() + d);
    let mut outcome = Ok(());
    for (i, step) in order.iter().enumerate() {
        let attempts = step.max_attempts.unwrap_or(options.max_attempts);
        let work = create(
            name(&format!("{}-work", step.name)),
            QueueOptions {
                visibility: options.visibility,
                dead_letter: Some((dlq_name.clone(), attempts + options.interruption_allowance)),
            },
        )
        .await?;
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
        let result = step::run_step(&ctx, step, attempts, &queues).await;
        delete_queue(backends, live, work.name()).await;
        // Its items are over (done, or the step failed): the ones stored for the queue go too.
        if let Err(e) =
            run_state::delete_stored_items(&*backends.stores, &options.state, &options.run_id, Some(&step.name)).await
        {
            warn!(step = %step.name, "deleting the step's stored work items failed ({e}); they stay under runs/{}/items", options.run_id);
        }
        match result {
            Ok(summary) => summaries.push(summary),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    delete_queue(backends, live, callbacks.name()).await;
    delete_queue(backends, live, dlq.name()).await;
    outcome.map(|()| summaries)
}

async fn delete_queue(backends: &Backends, live: &LiveResources, name: &str) {
    match backends.queues.delete(name).await {
        Ok(()) => live.remove_queue(name),
        Err(e) => warn!("deleting queue {name} failed: {e}; `runner fleet gc` deletes it later"),
    }
}

/// The prefix of every queue of a deployment, which `runner fleet gc` lists.
pub fn queue_prefix(deployment: &str) -> String {
    // Deployment names are letters and digits (see `check_deployment`), so no deployment's
    // prefix is the start of another's.
    format!("spotlake-{deployment}-")
}

/// Checks a deployment name: 1 to 16 lowercase letters and digits.
pub fn check_deployment(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 16 || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(format!("deployment {name:?} must be 1 to 16 lowercase letters and digits (like prod, staging2)"));
    }
    Ok(())
}

fn safe(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

/// The longest run id a queue name holds whole (SQS names are at most 80 characters).
pub const MAX_RUN_ID_LEN: usize = 40;

/// Checks a run id given on the command line: 1 to 40 letters, digits, `-` and `_`, so that
/// every queue, tag and key made from it holds it whole.
pub fn check_run_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > MAX_RUN_ID_LEN
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "run id {id:?} must be 1 to {MAX_RUN_ID_LEN} letters, digits, '-' and '_' (it names the run's queues)"
        ));
    }
    Ok(())
}

/// A short, stable hash of a queue's own part (FNV-1a, 32 bits shown): two steps whose names
/// agree in their first characters, or differ only in characters SQS does not allow, still get
/// two queues.
fn short_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", (h ^ (h >> 32)) as u32)
}

/// A queue's name: deployment, run, a hash of the job and the queue's own part, then as much
/// of the job and that part as fits, made safe for SQS (letters, digits, `-`, `_`; at most 80).
/// The run id is whole in it, so `gc` can tell whose it is; the hash keeps names distinct
/// where the readable part is cut.
pub fn queue_name(deployment: &str, job: &str, run_id: &RunId, suffix: &str) -> String {
    let name = format!(
        "{}{}-{}-{}-{}",
        queue_prefix(deployment),
        safe(run_id.as_str()),
        short_hash(&format!("{job}\u{0}{suffix}")),
        safe(job),
        safe(suffix)
    );
    name.chars().take(80).collect()
}

/// Whether a queue of this deployment belongs to one of these runs (`gc` deletes the others).
pub fn queue_of_any_run(name: &str, runs: &[RunId]) -> bool {
    runs.iter().any(|r| name.contains(&format!("-{}-", safe(r.as_str()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_carry_the_deployment_and_the_whole_run_id() {
        let run = RunId::from("20240101T000000-ab12");
        let name = queue_name("prod", "a job/with spaces and a long name", &run, "callbacks");
        assert!(name.starts_with(&queue_prefix("prod")), "{name}");
        assert!(!name.starts_with(&queue_prefix("prod2")), "{name}");
        assert!(name.len() <= 80 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert!(queue_of_any_run(&name, std::slice::from_ref(&run)));
        assert!(!queue_of_any_run(&name, &[RunId::from("20240101T000000-ab1")]));
    }

    #[test]
    fn queue_names_stay_distinct_where_their_readable_part_is_cut() {
        let run = RunId::from("20240101T000000-ab12");
        let job = "a-sixteen-char-j";
        // Two steps whose names share their first 40 characters, and two that differ only in a
        // character SQS does not allow: four queues.
        let long = "normalise_events_by_session_and_country_";
        let names: BTreeSet<String> =
            [format!("{long}eu-work"), format!("{long}us-work"), "a b-work".into(), "a/b-work".into()]
                .iter()
                .map(|step| queue_name("production2026ab", job, &run, step))
                .collect();
        assert_eq!(names.len(), 4, "{names:?}");
        for n in &names {
            assert!(n.len() <= 80 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{n}");
            assert!(queue_of_any_run(n, std::slice::from_ref(&run)), "{n}");
        }
        // The longest run id allowed is whole in the name, with the hash after it.
        let longest = RunId::from("r".repeat(MAX_RUN_ID_LEN).as_str());
        let n = queue_name("production2026ab", job, &longest, "dlq");
        assert!(n.contains(&format!("-{}-{}", longest.as_str(), short_hash(&format!("{job}\u{0}dlq")))), "{n}");
        // Stable across releases: the name of a run's queue must not change under it.
        // (FNV-1a of "job\0dlq", folded to 32 bits, worked out by hand in Python.)
        assert_eq!(queue_name("prod", "job", &run, "dlq"), "spotlake-prod-20240101T000000-ab12-5de07e71-job-dlq");
    }

    #[test]
    fn run_ids_given_are_checked() {
        assert!(check_run_id("20240101T000000-ab12").is_ok());
        assert!(check_run_id(&"r".repeat(MAX_RUN_ID_LEN)).is_ok());
        assert!(check_run_id(&"r".repeat(MAX_RUN_ID_LEN + 1)).unwrap_err().contains("1 to 40"));
        assert!(check_run_id("a/b").is_err());
        assert!(check_run_id("").is_err());
    }

    #[test]
    fn deployment_names_are_checked() {
        assert!(check_deployment("prod").is_ok());
        assert!(check_deployment("prod-eu").unwrap_err().contains("prod-eu"));
        assert!(check_deployment("").is_err());
    }
}
