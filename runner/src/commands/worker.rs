//! `runner worker` (the worker loop) and the hidden `runner exec-item` (one item, in the
//! process the worker started for it).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use runner_backends::aws::AwsClients;
use runner_backends::process;
use runner_backends::storage::StoreCache;
use runner_core::worker::child::ChildResult;
use runner_core::worker::{self, WorkerConfig};
use tracing::info;

use crate::logging::init_logging;

pub(super) async fn worker(args: crate::cli::WorkerArgs) -> anyhow::Result<ExitCode> {
    init_logging(None);
    // A local worker ends with its orchestrator (a SIGTERM hands its items back).
    process::watch_parent(libc::SIGTERM);
    let text = match (&args.config_json, &args.config_file) {
        (Some(j), _) => j.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        (None, None) => bail!("give --config-json or --config-file"),
    };
    let cfg: WorkerConfig = serde_json::from_str(&text).context("parsing the worker configuration")?;
    let exit = worker::run(cfg, Arc::new(AwsClients::new())).await?;
    info!("worker stopped: {exit:?}");
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn exec_item(item: &Path, result: &Path, scratch: &Path) -> anyhow::Result<ExitCode> {
    init_logging(None);
    // An item ends with its worker.
    process::watch_parent(libc::SIGKILL);
    let item: runner_core::wire::WorkItem =
        serde_json::from_slice(&std::fs::read(item).with_context(|| format!("reading {}", item.display()))?)
            .context("parsing the work item")?;
    let stores = StoreCache::new(Arc::new(AwsClients::new()));
    let outcome = worker::exec::execute(&item, &stores, scratch).await;
    let (body, code) = match outcome {
        Ok(stats) => (ChildResult::Ok(stats), ExitCode::SUCCESS),
        Err(e) => {
            let chain: Vec<String> = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                .map(ToString::to_string)
                .collect();
            let error = chain.join(": ");
            let body = if e.is_permanent() { ChildResult::Permanent(error) } else { ChildResult::Error(error) };
            (body, ExitCode::FAILURE)
        }
    };
    std::fs::write(result, serde_json::to_vec(&body)?).with_context(|| format!("writing {}", result.display()))?;
    Ok(code)
}
