//! `runner fleet gc`: deletes the fleets (and instances) of runs that are over.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use runner_backends::aws::AwsClients;
use runner_backends::fleet::Fleet;
use runner_backends::fleet::ec2::Ec2Fleet;
use runner_backends::fleet::local::LocalFleet;
use runner_backends::storage::StoreCache;
use runner_core::run_state;
use runner_types::BackendKind;

use super::setup::{local_dir, resolve_dir};
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
        None => match &cfg.data_root {
            Some(r) => resolve_dir(&cwd, r)?.join("_runner"),
            None => {
                bail!("give --state (or data_root/state in the config) so runs can be looked up")
            }
        },
    };
    let aws = Arc::new(AwsClients::new());
    let stores = StoreCache::new(aws.clone());
    let mut live = std::collections::BTreeSet::new();
    for id in run_state::recorded_runs(&stores, &state).await? {
        if run_state::is_run_live(&stores, &state, &id).await {
            live.insert(id);
        }
    }
    let fleet: Box<dyn Fleet> = match cfg.backend {
        BackendKind::Local => {
            Box::new(LocalFleet::new(local_dir(&state).context("a local backend needs local state")?))
        }
        BackendKind::Aws => Box::new(Ec2Fleet::new(
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
