//! `runner fleet gc`: deletes what runs that are over left behind in this deployment: fleets,
//! instances, launch templates (the fleet's `gc`) and queues. A run is over when its record
//! says so or its heartbeat has stopped; another deployment's resources are never touched.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use runner_backends::aws::AwsClients;
use runner_backends::storage::StoreCache;
use runner_core::orchestrator::{queue_of_any_run, queue_prefix};
use runner_core::run_state;
use runner_types::{BackendKind, RunId};

use super::setup::{backends, resolve_dir};
use crate::config::Config;
use crate::logging::init_logging;

pub(super) async fn gc(
    config: Option<&Path>,
    state: Option<String>,
    backend: Option<BackendKind>,
) -> anyhow::Result<ExitCode> {
    init_logging(None);
    let mut cfg = Config::load(config)?;
    if let Some(b) = backend {
        cfg.backend = b;
    }
    let cwd = std::env::current_dir()?;
    let state = match state.or(cfg.state.clone()) {
        Some(s) => resolve_dir(&cwd, &s)?,
        None => match &cfg.root {
            Some(r) => resolve_dir(&cwd, r)?.join("_runner"),
            None => {
                bail!("give --state (or root/state in the config) so runs can be looked up")
            }
        },
    };
    let aws = Arc::new(AwsClients::new());
    let stores = StoreCache::new(aws.clone());
    let mut live: Vec<RunId> = Vec::new();
    for id in run_state::recorded_runs(&stores, &state).await? {
        if run_state::is_run_live(&stores, &state, &id).await {
            live.push(id);
        }
    }
    let (queues, fleet) = backends(&cfg, &state, Some(1), Duration::from_secs(3600), &aws).await?;
    let mut deleted = fleet.gc(&|run| live.contains(run)).await?;
    for name in queues.list(&queue_prefix(cfg.deployment())).await? {
        if !queue_of_any_run(&name, &live) {
            queues.delete(&name).await?;
            deleted.push(name);
        }
    }
    println!(
        "deployment {}: deleted {} fleet(s)/instance(s)/template(s)/queue(s){}",
        cfg.deployment(),
        deleted.len(),
        if deleted.is_empty() { String::new() } else { format!(": {}", deleted.join(", ")) }
    );
    Ok(ExitCode::SUCCESS)
}
