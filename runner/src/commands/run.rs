//! `runner run`: opens the Pipes session (when Dagster launched it), runs the orchestrator
//! until the job ends or a signal cancels it, deletes every fleet still up, then evaluates the
//! checks and reports to Dagster.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use runner_backends::aws::AwsClients;
use runner_core::orchestrator::{self, LiveResources, RunError};
use runner_core::summary::RunSummary;

use crate::cost::Bill;
use runner_spec::JobSpec;
use runner_types::{Partition, RunId};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

use super::setup::{Prepared, daily_range, prepare};
use crate::cli::RunArgs;
use crate::logging::init_logging;

fn print_summary(summary: &RunSummary, bills: &[Option<Bill>]) {
    eprintln!("\nrun {} finished in {:.1}s", summary.run_id, summary.seconds);
    for (s, bill) in summary.steps.iter().zip(bills) {
        eprintln!(
            "  {:<20} items {:>5} (already done {:>4})  rows in {:>10}  quarantined {:>6}  retries {:>3}  {:>7.1}s",
            s.name, s.items, s.items_already_committed, s.rows_in, s.rows_quarantined, s.retries, s.seconds
        );
        for (name, o) in &s.outputs {
            let loc = o.locations.values().next().map(ToString::to_string).unwrap_or_default();
            eprintln!("      → {name}: {} rows in {} files at {loc}", o.whole.rows, o.whole.files);
            if let Some(t) = &o.table {
                let change = if t.new_version {
                    format!("committed +{} −{} files", t.files_added, t.files_removed)
                } else {
                    "nothing to commit".to_string()
                };
                eprintln!("        table {} at {}: version {} ({change})", t.name, t.uri, t.version);
            }
        }
        eprintln!("      {}", describe_bill(bill.as_ref()));
    }
}

fn describe_bill(bill: Option<&Bill>) -> String {
    let Some(b) = bill else {
        return "cost unknown: the fleet's usage could not be read".into();
    };
    let usd = |x: Option<f64>| x.map_or("unknown".to_string(), |v| format!("${v:.4}"));
    let mut line = format!(
        "cost {} for {:.3} instance-hours; on EMR {}",
        usd(b.cost_usd),
        b.instance_hours,
        usd(b.emr_equivalent_usd)
    );
    if let Some(r) = b.saving_ratio().filter(|_| b.emr_equivalent_usd.is_some_and(|e| e > 0.0)) {
        line.push_str(&format!(" (saved {:.0} %)", r * 100.0));
    }
    if !b.unpriced.is_empty() {
        line.push_str(&format!("; no price for: {}", b.unpriced.iter().cloned().collect::<Vec<_>>().join(", ")));
    }
    line
}

/// What `--summary-json` writes: the run's summary and each step's bill.
#[derive(serde::Serialize)]
struct SummaryFile<'a> {
    #[serde(flatten)]
    summary: &'a RunSummary,
    bills: &'a [Option<Bill>],
}

pub(super) async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
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
    let mut partitions: Vec<Partition> =
        args.partitions.iter().map(|k| Partition::from_key(k)).collect::<Result<_, _>>().context("--partition")?;
    if let Some(r) = &args.partition_range {
        partitions.extend(daily_range(r)?);
    }
    let dagster_run = pipes.is_orchestrated().then(|| pipes.run_id().to_string());
    if pipes.is_orchestrated() && partitions.is_empty() {
        partitions = crate::dagster::partitions(pipes)?;
    }
    let aws = Arc::new(AwsClients::new());
    let prepared = prepare(args, &spec, partitions, dagster_run, aws.clone()).await?;
    let Prepared { backends, options, config } = prepared;
    info!(
        run = %options.run_id,
        root = %options.root,
        backend = %backends.fleet.kind(),
        partitions = options.partitions.len(),
        "starting job {}",
        spec.name
    );
    let live = LiveResources::default();
    let backends = Arc::new(backends);
    // Both handlers exist before the orchestrator starts: a signal that came before them
    // would kill the process with whatever it had made still standing.
    let (mut int, mut term) = (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?);
    let mut task = {
        let (spec, spec_text, options, backends, live) =
            (spec.clone(), spec_text.clone(), options.clone(), backends.clone(), live.clone());
        tokio::spawn(async move {
            let observer = crate::progress::TerminalObserver::default();
            orchestrator::run_job(&spec, &spec_text, &options, &backends, &observer, &live).await
        })
    };
    let outcome = tokio::select! {
        joined = &mut task => match joined {
            Ok(r) => r.map_err(anyhow::Error::from),
            Err(e) if e.is_panic() => Err(anyhow::anyhow!("the orchestrator panicked: {e}")),
            Err(e) => Err(anyhow::anyhow!("the orchestrator stopped: {e}")),
        },
        _ = int.recv() => Err(anyhow::anyhow!("cancelled by SIGINT")),
        _ = term.recv() => Err(anyhow::anyhow!("cancelled by SIGTERM")),
    };
    if !task.is_finished() {
        // An abort takes effect at the orchestrator's next await, on another thread; until then
        // it may be registering a fleet it has just launched. Wait, so the clean-up sees it.
        task.abort();
        let _ = task.await;
    }
    // Whatever ended the run, no fleet outlives it.
    for handle in live.take_fleets() {
        match backends.fleet.delete(&handle).await {
            Ok(()) => info!(fleet = %handle.id, "fleet deleted"),
            Err(e) => {
                error!(fleet = %handle.id, "could not delete fleet: {e}; run `runner fleet gc`")
            }
        }
    }
    for queue in live.take_queues() {
        match backends.queues.delete(&queue).await {
            Ok(()) => info!(queue, "queue deleted"),
            Err(e) => error!(queue, "could not delete queue: {e}; run `runner fleet gc`"),
        }
    }
    // A refusal before anything was launched (a preflight, such as a run id in use by a live
    // run) has nothing of its own to sweep, and must not touch what that run made.
    let refused_at_preflight = outcome
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<RunError>())
        .is_some_and(|e| matches!(e, RunError::Preflight(_)));
    if outcome.is_err() && !refused_at_preflight {
        sweep_unregistered(&*backends.fleet, &options.run_id).await;
    }
    let summary = outcome?;
    let bills = crate::cost::step_bills(&config.pricing.clone().unwrap_or_default(), &summary, &aws).await;
    print_summary(&summary, &bills);
    let checks = crate::checks::run_checks(&spec, &summary, &backends.stores).await?;
    for c in checks.iter().map(|c| &c.result) {
        let verdict = if c.passed { "passed" } else { "FAILED" };
        info!("check {} on {}: {verdict} ({})", c.name, c.output, c.description);
    }
    if let Some(path) = &args.summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(&SummaryFile { summary: &summary, bills: &bills })?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if pipes.is_orchestrated() {
        crate::dagster::report(pipes, &spec, &summary, &bills, &checks)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// After a run that ended badly, deletes the fleets of this run the orchestrator never
/// registered: a cancellation or a panic can land while a launch is in flight, after the launch
/// template is made or the fleet requested, before the handle comes back. The fleet's `gc` finds them by their run id, as
/// `runner fleet gc` does for runs that are over. (Queues need no sweep: a queue is registered
/// before it is created.)
async fn sweep_unregistered(fleet: &dyn runner_backends::fleet::Fleet, run: &RunId) {
    // Everything of this run goes, however recent (it was made moments ago).
    let report = fleet.gc(&|r| r != run, std::time::SystemTime::now() + std::time::Duration::from_secs(86_400)).await;
    if !report.deleted.is_empty() {
        info!(deleted = ?report.deleted, "deleted the run's unregistered fleets");
    }
    for failure in &report.failures {
        error!("could not sweep the run's unregistered fleets: {failure}; run `runner fleet gc`");
    }
}
