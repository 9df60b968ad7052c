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

use super::setup::backends;
use crate::logging::init_logging;
use crate::settings::{Explicit, STATE_ENV};

pub(super) async fn gc(
    config: Option<&Path>,
    state: Option<String>,
    backend: Option<BackendKind>,
) -> anyhow::Result<ExitCode> {
    init_logging(None);
    let explicit = Explicit { config, backend, root: None, state: state.as_deref() };
    let settings = crate::settings::resolve(explicit, None)?;
    let cfg = settings.config;
    let Some(state) = settings.state.map(|s| s.value) else {
        bail!("give --state (or {}, or root or state in the runner config) so runs can be looked up", STATE_ENV)
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
