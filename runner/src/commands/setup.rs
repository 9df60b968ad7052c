//! What `runner run` and `runner fleet gc` need before they start: the partitions from the
//! command line, the data root and state location resolved, the run's options, and the
//! backends (local or AWS) constructed from the configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use runner_backends::aws::AwsClients;
use runner_backends::fleet::Fleet;
use runner_backends::fleet::ec2::{Ec2Fleet, Ec2Settings};
use runner_backends::fleet::local::LocalFleet;
use runner_backends::lease::{Leases, LocalLeases, S3Leases};
use runner_backends::queue::{LocalQueues, QueueBackend, SqsQueues};
use runner_backends::storage::{Location, StoreCache};
use runner_core::orchestrator::{Backends, RunOptions};
use runner_spec::JobSpec;
use runner_types::{BackendKind, Partition, RunId};

use crate::cli::RunArgs;
use crate::config::{Config, parse_duration};
use crate::settings::Explicit;

pub(super) fn daily_range(text: &str) -> anyhow::Result<Vec<Partition>> {
    let (a, b) = text.split_once("..").context("--partition-range is START..END")?;
    let start = chrono::NaiveDate::parse_from_str(a, "%Y-%m-%d").with_context(|| format!("range start {a:?}"))?;
    let end = chrono::NaiveDate::parse_from_str(b, "%Y-%m-%d").with_context(|| format!("range end {b:?}"))?;
    if end < start {
        bail!("--partition-range ends before it starts");
    }
    start
        .iter_days()
        .take_while(|d| *d <= end)
        .map(|d| Ok(Partition::from_key(&d.format("%Y-%m-%d").to_string())?))
        .collect()
}

pub(super) fn local_dir(loc: &Location) -> Option<PathBuf> {
    match loc {
        Location::Local { root, key } => Some(root.join(key)),
        Location::S3 { .. } => None,
    }
}

/// The queue backend and the fleet of the configured backend. Local workers default to one
/// per core; an EC2 fleet is sized by the work (and `ec2.max_vcpus`), never by this machine.
pub(super) async fn backends(
    config: &Config,
    state: &Location,
    workers: Option<usize>,
    max_runtime: Duration,
    aws: &AwsClients,
) -> anyhow::Result<(Arc<dyn QueueBackend>, Arc<dyn Fleet>)> {
    Ok(match config.backend {
        BackendKind::Local => {
            let dir = local_dir(state).unwrap_or_else(|| std::env::temp_dir().join("spotlake-runner"));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let workers = workers.unwrap_or_else(|| std::thread::available_parallelism().map(usize::from).unwrap_or(2));
            (Arc::new(LocalQueues::new(dir.join("queues.sqlite"))), Arc::new(LocalFleet::new(dir, workers)))
        }
        BackendKind::Aws => {
            let ec2 = config.ec2.clone().context("[ec2] config")?;
            ec2.validate()?;
            let settings = Ec2Settings {
                lifetime: max_runtime + Duration::from_secs(600),
                deployment: config.deployment().to_string(),
            };
            let fleet = Ec2Fleet::new(aws.ec2().await, aws.s3().await, ec2, settings).with_iam(aws.iam().await);
            (Arc::new(SqsQueues::new(aws.sqs().await)), Arc::new(fleet))
        }
    })
}

fn new_run_id() -> String {
    let now = chrono::Utc::now();
    format!("{}-{:04x}", now.format("%Y%m%dT%H%M%S"), (now.timestamp_subsec_nanos() ^ std::process::id()) & 0xffff)
}

/// The leases of the state store: file locks in a local state directory, lease objects in S3.
async fn leases(config: &Config, state: &Location, aws: &AwsClients) -> Arc<dyn Leases> {
    match state {
        Location::Local { root, key } => Arc::new(LocalLeases::new(root.join(key))),
        Location::S3 { bucket, key } => {
            let ttl = Duration::from_secs(config.lease_ttl_secs.unwrap_or(60).max(3));
            Arc::new(S3Leases::new(aws.s3().await, bucket.clone(), key.clone(), ttl))
        }
    }
}

pub(super) struct Prepared {
    pub backends: Backends,
    pub options: RunOptions,
    pub config: Config,
}

pub(super) async fn prepare(
    args: &RunArgs,
    spec: &JobSpec,
    partitions: Vec<Partition>,
    dagster_run: Option<String>,
    aws: Arc<AwsClients>,
) -> anyhow::Result<Prepared> {
    let settings = crate::settings::resolve(Explicit::from(&args.settings), Some((spec, &args.job)))?;
    let config = settings.config;
    if let Some(id) = &args.run_id {
        runner_core::orchestrator::check_run_id(id).map_err(|e| anyhow::anyhow!("--run-id: {e}"))?;
    }
    if config.backend == BackendKind::Aws && config.ec2.is_none() {
        bail!("the aws backend needs an [ec2] table in the runner config (subnets, amis, worker_binaries)");
    }
    let (Some(root), Some(state)) = (settings.root, settings.state) else {
        bail!("no data root: give --root, {} or root in the runner config", crate::settings::ROOT_ENV);
    };
    let (root, state) = (root.value, state.value);
    let max_runtime = match args.max_runtime.as_ref().or(config.max_runtime.as_ref()) {
        Some(t) => parse_duration(t)?,
        None => Duration::from_secs(12 * 3600),
    };
    let stores = Arc::new(StoreCache::new(aws.clone()));
    let workers = args.workers.or(config.workers);
    let (queues, fleet) = backends(&config, &state, workers, max_runtime, &aws).await?;
    let leases = leases(&config, &state, &aws).await;
    let options = RunOptions {
        run_id: RunId::from(args.run_id.clone().unwrap_or_else(new_run_id)),
        root,
        state,
        partitions,
        max_runtime: Some(max_runtime),
        force: args.force,
        dagster_run_id: dagster_run,
        visibility: Duration::from_secs(config.visibility_secs.unwrap_or(60)),
        heartbeat: Duration::from_secs(config.heartbeat_secs.unwrap_or(15)),
        idle_shutdown: Duration::from_secs(config.idle_shutdown_secs.unwrap_or(30)),
        max_attempts: config.max_attempts.unwrap_or(3),
        interruption_allowance: config.interruption_allowance.unwrap_or(10),
        poll_imds: config.poll_imds.unwrap_or(config.backend == BackendKind::Aws),
        scratch_dir: config.scratch_dir.clone(),
        only_steps: args.steps.iter().map(|s| s.as_str().into()).collect(),
        missing_upstream: args.missing_upstream,
        enqueue_window: config.enqueue_window,
        boot_timeout: Duration::from_secs(config.boot_timeout_secs.unwrap_or(300)),
        crash_loop_after: config.crash_loop_after.unwrap_or(3),
        deployment: config.deployment().to_string(),
        lease_wait: Duration::from_secs(config.lease_wait_secs.unwrap_or(0)),
        warm_items: config.warm_items.enabled.then_some(config.warm_items),
    };
    Ok(Prepared { backends: Backends { stores, queues, kind: config.backend, fleet, leases }, options, config })
}
