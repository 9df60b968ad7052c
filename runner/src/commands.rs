//! What each command does: wires configuration, backends and observers to the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tracing::{error, info};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::aws::AwsClients;
use crate::cli::{Cli, Command, ExampleCommand, FleetCommand, RunArgs};
use crate::config::{Backend, Config, parse_duration};
use crate::fleet::{Fleet, WorkerConfig};
use crate::item::RunId;
use crate::orchestrator::{Backends, LiveFleets, RunOptions, RunSummary};
use crate::partition::Partition;
use crate::queue::{LocalQueues, QueueBackend, SqsQueues};
use crate::spec::JobSpec;
use crate::storage::Location;
use crate::stores::StoreCache;

/// Runs the command line.
pub fn main(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Worker(args) => worker(args).await,
            Command::ExecItem(args) => exec_item(&args.item, &args.result, &args.scratch).await,
            Command::Fleet { command: FleetCommand::Gc { config, state, backend } } => {
                gc(config.as_deref(), state, backend).await
            }
            Command::Validate { job } => validate(&job),
            Command::Example { command } => example(command),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(pipes: Option<&dagster_pipes::PipesContext>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNNER_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,aws_sdk_s3=warn")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(ansi);
    let registry = tracing_subscriber::registry().with(filter).with(fmt);
    let _ = match pipes {
        Some(ctx) => registry.with(dagster_pipes::PipesLayer::new(ctx)).try_init(),
        None => registry.try_init(),
    };
}

fn daily_range(text: &str) -> anyhow::Result<Vec<Partition>> {
    let (a, b) = text.split_once("..").context("--partition-range is START..END")?;
    let start = chrono::NaiveDate::parse_from_str(a, "%Y-%m-%d").with_context(|| format!("range start {a:?}"))?;
    let end = chrono::NaiveDate::parse_from_str(b, "%Y-%m-%d").with_context(|| format!("range end {b:?}"))?;
    if end < start {
        bail!("--partition-range ends before it starts");
    }
    Ok(start
        .iter_days()
        .take_while(|d| *d <= end)
        .map(|d| Partition::from_key(&d.format("%Y-%m-%d").to_string()))
        .collect())
}

fn resolve_dir(base: &Path, text: &str) -> anyhow::Result<Location> {
    if let Some(l) = Location::parse_absolute(text) {
        return Ok(l);
    }
    let abs = if Path::new(text).is_absolute() { PathBuf::from(text) } else { base.join(text) };
    let abs = std::path::absolute(&abs).with_context(|| format!("resolving {}", abs.display()))?;
    Location::parse_absolute(&abs.to_string_lossy()).with_context(|| format!("{} is not a usable path", abs.display()))
}

fn local_dir(loc: &Location) -> Option<PathBuf> {
    match loc {
        Location::Local { root, key } => Some(root.join(key)),
        Location::S3 { .. } => None,
    }
}

fn new_run_id() -> String {
    let now = chrono::Utc::now();
    format!("{}-{:04x}", now.format("%Y%m%dT%H%M%S"), (now.timestamp_subsec_nanos() ^ std::process::id()) & 0xffff)
}

struct Prepared {
    backends: Backends,
    options: RunOptions,
    config: Config,
}

async fn prepare(
    args: &RunArgs,
    spec: &JobSpec,
    partitions: Vec<Partition>,
    dagster_run: Option<String>,
    aws: Arc<AwsClients>,
) -> anyhow::Result<Prepared> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(b) = args.backend {
        config.backend = b;
    }
    if config.backend == Backend::Aws && config.ec2.is_none() {
        bail!("the aws backend needs an [ec2] table in the runner config");
    }
    let spec_dir = args.job.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let cwd = std::env::current_dir()?;
    let root = match (&args.root, &config.data_root, &spec.root) {
        (Some(r), _, _) | (None, Some(r), _) => resolve_dir(&cwd, r)?,
        (None, None, Some(r)) => resolve_dir(&spec_dir, r)?,
        (None, None, None) => resolve_dir(&spec_dir, ".")?,
    };
    let state = match (&args.state, &config.state) {
        (Some(s), _) | (None, Some(s)) => resolve_dir(&cwd, s)?,
        _ => root.join("_runner"),
    };
    let max_runtime = match args.max_runtime.as_ref().or(config.max_runtime.as_ref()) {
        Some(t) => parse_duration(t)?,
        None => Duration::from_secs(12 * 3600),
    };
    let stores = Arc::new(StoreCache::new(aws.clone()));
    let (queues, queue_kind, fleet): (Arc<dyn QueueBackend>, &str, Arc<dyn Fleet>) = match config.backend {
        Backend::Local => {
            let dir = local_dir(&state).unwrap_or_else(|| std::env::temp_dir().join("spotlake-runner"));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            (
                Arc::new(LocalQueues::new(dir.join("queues.sqlite"))),
                "local",
                Arc::new(crate::fleet::local::LocalFleet::new(dir)),
            )
        }
        Backend::Aws => {
            let ec2 = config.ec2.clone().context("[ec2] config")?;
            ec2.validate()?;
            (
                Arc::new(SqsQueues::new(aws.sqs().await)),
                "sqs",
                Arc::new(crate::fleet::ec2::Ec2Fleet::new(
                    aws.ec2().await,
                    ec2,
                    max_runtime + Duration::from_secs(600),
                )),
            )
        }
    };
    let capacity = args
        .workers
        .or(config.workers)
        .unwrap_or_else(|| std::thread::available_parallelism().map(usize::from).unwrap_or(2));
    let options = RunOptions {
        run_id: RunId(args.run_id.clone().unwrap_or_else(new_run_id)),
        root,
        state,
        partitions,
        capacity,
        max_runtime: Some(max_runtime),
        force: args.force,
        dagster_run_id: dagster_run,
        visibility: Duration::from_secs(config.visibility_secs.unwrap_or(60)),
        heartbeat: Duration::from_secs(config.heartbeat_secs.unwrap_or(15)),
        idle_shutdown: Duration::from_secs(config.idle_shutdown_secs.unwrap_or(30)),
        max_attempts: config.max_attempts.unwrap_or(3),
        interruption_allowance: config.interruption_allowance.unwrap_or(10),
        poll_imds: config.poll_imds.unwrap_or(config.backend == Backend::Aws),
        scratch_dir: config.scratch_dir.clone(),
        only_steps: args.steps.clone(),
        enqueue_window: config.enqueue_window.unwrap_or_else(|| crate::feed::default_window(capacity)),
    };
    Ok(Prepared { backends: Backends { stores, queues, queue_kind: queue_kind.to_string(), fleet }, options, config })
}

fn print_summary(summary: &RunSummary) {
    eprintln!("\nrun {} finished in {:.1}s", summary.run_id, summary.seconds);
    for s in &summary.steps {
        eprintln!(
            "  {:<20} items {:>5} (already done {:>4})  rows in {:>10}  quarantined {:>6}  retries {:>3}  {:>7.1}s",
            s.name, s.items, s.already_done, s.rows_in, s.rows_quarantined, s.retries, s.seconds
        );
        for (name, o) in &s.outputs {
            let loc = o.locations.values().next().cloned().unwrap_or_default();
            eprintln!("      → {name}: {} rows in {} files at {loc}", o.rows, o.files);
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // Logs should reach Dagster within seconds even over S3; the Dagster client's reader drains
    // every chunk available, so short intervals do not build a backlog.
    let s3 = dagster_pipes::S3Options { upload_interval: Duration::from_secs(2), ..Default::default() };
    let pipes = dagster_pipes::PipesBuilder::new()
        .warn_when_unorchestrated(false)
        .s3_options(s3)
        .open()
        .context("opening the Dagster Pipes session")?;
    let orchestrated = pipes.is_orchestrated();
    init_logging(orchestrated.then_some(&pipes));
    let result = run_inner(&args, &pipes).await;
    if orchestrated {
        let closed = match &result {
            Ok(_) => pipes.close(),
            Err(e) => {
                let chain: Vec<String> = e.chain().skip(1).map(ToString::to_string).collect();
                let mut ex = dagster_pipes::ExceptionInfo::new("RunnerError", e.to_string());
                if !chain.is_empty() {
                    ex.cause = Some(Box::new(dagster_pipes::ExceptionInfo::new("Cause", chain.join(": "))));
                }
                pipes.close_with_exception(&ex)
            }
        };
        if let Err(e) = closed {
            eprintln!("error: closing the Dagster Pipes session: {e}");
            return Ok(ExitCode::FAILURE);
        }
    }
    result
}

async fn run_inner(args: &RunArgs, pipes: &dagster_pipes::PipesContext) -> anyhow::Result<ExitCode> {
    let spec_text =
        std::fs::read_to_string(&args.job).with_context(|| format!("reading job spec {}", args.job.display()))?;
    let spec = JobSpec::parse(&spec_text, &args.job.display().to_string())?;
    let mut partitions: Vec<Partition> = args.partitions.iter().map(|k| Partition::from_key(k)).collect();
    if let Some(r) = &args.partition_range {
        partitions.extend(daily_range(r)?);
    }
    let dagster_run = pipes.is_orchestrated().then(|| pipes.run_id().to_string());
    if pipes.is_orchestrated() && partitions.is_empty() {
        partitions = crate::dagster::partitions(pipes)?;
    }
    let aws = Arc::new(AwsClients::new());
    let prepared = prepare(args, &spec, partitions, dagster_run, aws).await?;
    let Prepared { backends, options, config } = prepared;
    info!(
        run = %options.run_id,
        root = %options.root,
        backend = backends.fleet.kind(),
        partitions = options.partitions.len(),
        "starting job {}",
        spec.name
    );
    let live = LiveFleets::default();
    let backends = Arc::new(backends);
    let task = {
        let (spec, spec_text, options, backends, live) =
            (spec.clone(), spec_text.clone(), options.clone(), backends.clone(), live.clone());
        tokio::spawn(async move {
            let observer = crate::observer::TerminalObserver::default();
            crate::orchestrator::run_job(&spec, &spec_text, &options, &backends, &observer, &live).await
        })
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let abort = task.abort_handle();
    let outcome = tokio::select! {
        joined = task => match joined {
            Ok(r) => r.map_err(anyhow::Error::from),
            Err(e) if e.is_panic() => Err(anyhow::anyhow!("the orchestrator panicked: {e}")),
            Err(e) => Err(anyhow::anyhow!("the orchestrator stopped: {e}")),
        },
        _ = tokio::signal::ctrl_c() => { abort.abort(); Err(anyhow::anyhow!("cancelled by SIGINT")) }
        _ = term.recv() => { abort.abort(); Err(anyhow::anyhow!("cancelled by SIGTERM")) }
    };
    // Whatever ended the run, no fleet outlives it.
    for handle in live.take() {
        match backends.fleet.delete(&handle).await {
            Ok(()) => info!(fleet = %handle.id, "fleet deleted"),
            Err(e) => {
                error!(fleet = %handle.id, "could not delete fleet: {e}; run `runner fleet gc`")
            }
        }
    }
    let summary = outcome?;
    print_summary(&summary);
    let item_seconds: f64 = summary.steps.iter().map(|s| s.item_seconds).sum();
    let cost = config.pricing.unwrap_or_default().estimate(item_seconds);
    let check_data = fetch_check_data(&spec, &summary, &backends.stores).await?;
    let checks = crate::checks::evaluate(&spec, &summary, &|uri| {
        check_data.local.get(uri).cloned().or_else(|| Location::parse_absolute(uri).and_then(|l| local_dir(&l)))
    });
    for c in &checks {
        let verdict = if c.passed { "passed" } else { "FAILED" };
        info!("check {} on {}: {verdict} ({})", c.name, c.output, c.description);
    }
    if let Some(path) = &args.summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if pipes.is_orchestrated() {
        crate::dagster::report(pipes, &spec, &summary, &checks, &cost)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Outputs that checks read, made local: S3 outputs are downloaded to a temporary directory
/// (checks run in the orchestrator; outputs in a directory are read in place).
struct CheckData {
    local: std::collections::HashMap<String, PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

async fn fetch_check_data(spec: &JobSpec, summary: &RunSummary, stores: &StoreCache) -> anyhow::Result<CheckData> {
    use crate::plan::Stores;
    let mut local = std::collections::HashMap::new();
    let mut dir = None;
    let checked: std::collections::BTreeSet<&str> = spec.checks.iter().map(|c| c.output()).collect();
    for step in &summary.steps {
        for (name, out) in &step.outputs {
            if !checked.contains(format!("{}.{name}", step.name).as_str()) {
                continue;
            }
            for uri in out.locations.values() {
                let Some(loc @ Location::S3 { .. }) = Location::parse_absolute(uri) else { continue };
                if local.contains_key(uri) {
                    continue;
                }
                let tmp = match &dir {
                    Some(d) => d,
                    None => dir.insert(tempfile::tempdir().context("a directory for check data")?),
                };
                let target = tmp.path().join(format!("{}", local.len()));
                let store = stores.store(&loc).await?;
                let prefix = format!("{}/", loc.key());
                for object in store.list(&prefix).await? {
                    let rel = object.key.strip_prefix(&prefix).unwrap_or(&object.key);
                    store.get_to_file(&object.key, &target.join(rel)).await?;
                }
                local.insert(uri.clone(), target);
            }
        }
    }
    Ok(CheckData { local, _dir: dir })
}

async fn worker(args: crate::cli::WorkerArgs) -> anyhow::Result<ExitCode> {
    init_logging(None);
    let text = match (&args.config_json, &args.config_file) {
        (Some(j), _) => j.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        (None, None) => bail!("give --config-json or --config-file"),
    };
    let cfg: WorkerConfig = serde_json::from_str(&text).context("parsing the worker configuration")?;
    let exit = crate::worker::run(cfg, Arc::new(AwsClients::new())).await?;
    info!("worker stopped: {exit:?}");
    Ok(ExitCode::SUCCESS)
}

async fn exec_item(item: &Path, result: &Path, scratch: &Path) -> anyhow::Result<ExitCode> {
    init_logging(None);
    let item: crate::item::WorkItem =
        serde_json::from_slice(&std::fs::read(item).with_context(|| format!("reading {}", item.display()))?)
            .context("parsing the work item")?;
    let stores = StoreCache::new(Arc::new(AwsClients::new()));
    let outcome = crate::exec::execute(&item, &stores, scratch).await;
    let (body, code) = match outcome {
        Ok(stats) => (crate::child::ChildResult::Ok(stats), ExitCode::SUCCESS),
        Err(e) => {
            let chain: Vec<String> = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                .map(ToString::to_string)
                .collect();
            (crate::child::ChildResult::Error(chain.join(": ")), ExitCode::FAILURE)
        }
    };
    std::fs::write(result, serde_json::to_vec(&body)?).with_context(|| format!("writing {}", result.display()))?;
    Ok(code)
}

async fn gc(config: Option<&Path>, state: Option<String>, backend: Option<Backend>) -> anyhow::Result<ExitCode> {
    init_logging(None);
    let mut cfg = Config::load(config)?;
    if let Some(b) = backend {
        cfg.backend = b;
    }
    let cwd = std::env::current_dir()?;
    let state = match state.or(cfg.state.clone()) {
        Some(s) => resolve_dir(&cwd, &s)?,
        None => match &cfg.data_root {
            Some(r) => resolve_dir(&cwd, r)?.join("_runner"),
            None => {
                bail!("give --state (or data_root/state in the config) so runs can be looked up")
            }
        },
    };
    let aws = Arc::new(AwsClients::new());
    let stores = StoreCache::new(aws.clone());
    let runs_prefix = state.join("runs");
    let store = crate::plan::Stores::store(&stores, &runs_prefix).await?;
    let mut live = std::collections::BTreeSet::new();
    for m in store.list(&format!("{}/", runs_prefix.key())).await? {
        if let Some(run) = m.key.strip_suffix("/run.json").and_then(|k| k.rsplit('/').next()) {
            let id = RunId(run.to_string());
            if crate::orchestrator::is_run_live(&stores, &state, &id).await {
                live.insert(id);
            }
        }
    }
    let fleet: Box<dyn Fleet> = match cfg.backend {
        Backend::Local => Box::new(crate::fleet::local::LocalFleet::new(
            local_dir(&state).context("a local backend needs local state")?,
        )),
        Backend::Aws => Box::new(crate::fleet::ec2::Ec2Fleet::new(
            aws.ec2().await,
            cfg.ec2.clone().context("[ec2] config")?,
            Duration::from_secs(3600),
        )),
    };
    let deleted = fleet.gc(&|run| live.contains(run)).await?;
    println!(
        "deleted {} fleet(s)/instance(s){}",
        deleted.len(),
        if deleted.is_empty() { String::new() } else { format!(": {}", deleted.join(", ")) }
    );
    Ok(ExitCode::SUCCESS)
}

fn validate(job: &Path) -> anyhow::Result<ExitCode> {
    let spec = JobSpec::load(job)?;
    let order = crate::spec::validate::order(&spec).map_err(anyhow::Error::msg)?;
    println!("{}: {} step(s), valid", spec.name, order.len());
    for (i, s) in order.iter().enumerate() {
        println!(
            "  {}. {} ({} → {})",
            i + 1,
            s.name,
            s.inputs.keys().cloned().collect::<Vec<_>>().join(", "),
            s.outputs.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn example(command: ExampleCommand) -> anyhow::Result<ExitCode> {
    let ExampleCommand::Generate { out, start, days, events_per_day, csv_files, bad_fraction, users, seed } = command;
    let g = crate::example_data::Generate {
        start: chrono::NaiveDate::parse_from_str(&start, "%Y-%m-%d").with_context(|| format!("--start {start:?}"))?,
        days,
        events_per_day,
        csv_files_per_day: csv_files,
        bad_fraction,
        users,
        seed,
    };
    let n = crate::example_data::generate(&out, &g).with_context(|| format!("writing under {}", out.display()))?;
    println!("wrote {n} files under {}", out.join("raw").display());
    Ok(ExitCode::SUCCESS)
}
