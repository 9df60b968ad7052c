//! `runner worker` (the worker loop) and the hidden `runner exec-item` (one item, in the
//! process the worker started for it; or with `--serve`, items one after another in a warm
//! process).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use runner_backends::aws::AwsClients;
use runner_backends::process;
use runner_backends::storage::StoreCache;
use runner_core::worker::child::ChildResult;
use runner_core::worker::warm::{ServeReport, ServeRequest};
use runner_core::worker::{self, WorkerConfig};
use tracing::info;

use crate::logging::init_logging;
use crate::memory;

pub(super) async fn worker(args: crate::cli::WorkerArgs) -> anyhow::Result<ExitCode> {
    init_logging(None);
    // A local worker ends with its orchestrator (a SIGTERM hands its items back).
    process::watch_parent(libc::SIGTERM);
    let text = match (&args.config_json, &args.config_file) {
        (Some(j), _) => j.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        (None, None) => bail!("give --config-json or --config-file"),
    };
    let cfg: WorkerConfig = match serde_json::from_str(&text) {
        Ok(cfg) => cfg,
        Err(e) => return Ok(refused(&format!("parsing the worker configuration: {e}"))),
    };
    let exit = match worker::run(cfg, Arc::new(AwsClients::new())).await {
        Ok(exit) => exit,
        Err(e) if e.is::<worker::Refused>() => return Ok(refused(&format!("{e:#}"))),
        Err(e) => return Err(e),
    };
    info!("worker stopped: {exit:?}");
    Ok(match exit {
        worker::WorkerExit::Lost(_) => ExitCode::from(worker::LOST_EXIT_CODE),
        worker::WorkerExit::Reclaimed(_) => ExitCode::from(worker::RECLAIMED_EXIT_CODE),
        _ => ExitCode::SUCCESS,
    })
}

/// A worker that can't start for a reason no retry fixes says so and exits with the code the
/// boot script reads as such.
fn refused(why: &str) -> ExitCode {
    tracing::error!("the worker can't start (no retry fixes this): {why}");
    ExitCode::from(worker::REFUSED_EXIT_CODE)
}

pub(super) async fn exec_item(args: &crate::cli::ExecItemArgs) -> anyhow::Result<ExitCode> {
    init_logging(None);
    // An item ends with its worker.
    process::watch_parent(libc::SIGKILL);
    let stores = StoreCache::new(Arc::new(AwsClients::new()));
    if args.serve {
        return serve_items(&stores).await;
    }
    let (Some(item), Some(result), Some(scratch)) = (&args.item, &args.result, &args.scratch) else {
        bail!("give --item, --result and --scratch, or --serve");
    };
    let ok = run_one(item, result, scratch, &stores).await?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Runs one item and writes its result file; true when it committed.
async fn run_one(item: &Path, result: &Path, scratch: &Path, stores: &StoreCache) -> anyhow::Result<bool> {
    let item: runner_core::wire::WorkItem =
        serde_json::from_slice(&std::fs::read(item).with_context(|| format!("reading {}", item.display()))?)
            .context("parsing the work item")?;
    let outcome = worker::exec::execute(&item, stores, scratch).await;
    let ok = outcome.is_ok();
    let body = match outcome {
        Ok(stats) => ChildResult::Ok(stats),
        Err(e) => {
            let chain: Vec<String> = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                .map(ToString::to_string)
                .collect();
            let error = chain.join(": ");
            if e.is_permanent() { ChildResult::Permanent(error) } else { ChildResult::Error(error) }
        }
    };
    std::fs::write(result, serde_json::to_vec(&body)?).with_context(|| format!("writing {}", result.display()))?;
    Ok(ok)
}

/// `exec-item --serve`: items one after another, one request per line on stdin, one report
/// per line on stdout (see `runner_core::worker::warm`), until stdin closes.
async fn serve_items(stores: &StoreCache) -> anyhow::Result<ExitCode> {
    use std::io::{BufRead, Write};
    let mut requests = std::io::stdin().lock().lines();
    // Waiting for the next item blocks this thread only: the runtime has others.
    while let Some(line) = tokio::task::block_in_place(|| requests.next()) {
        let request: ServeRequest =
            serde_json::from_str(&line.context("reading a request")?).context("parsing a request")?;
        memory::reset_peak();
        run_one(&request.item, &request.result, &request.scratch, stores).await?;
        let peak_rss_bytes = memory::peak_rss_bytes();
        memory::release();
        let report = ServeReport { rss_after_bytes: memory::rss_bytes(), peak_rss_bytes };
        let mut answer = serde_json::to_vec(&report)?;
        answer.push(b'\n');
        let mut out = std::io::stdout().lock();
        out.write_all(&answer).and_then(|()| out.flush()).context("answering")?;
    }
    Ok(ExitCode::SUCCESS)
}
