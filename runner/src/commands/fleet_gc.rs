//! `runner fleet gc`: deletes what runs that are over left behind in this deployment: fleets,
//! instances, launch templates (the fleet's `gc`) and queues. A run is live while its heartbeat
//! (`{state}/live/{run}.json`, written every `heartbeat_secs` through the whole run) is less than
//! ten periods old; every other run is over. It goes on past every failure and reports them all;
//! another deployment's resources are never touched.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
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
    let (queues, fleet) = backends(&cfg, &state, Some(1), Duration::from_secs(3600), &aws).await?;
    // Queues are listed before the heartbeats are read: a run writes its heartbeat before it
    // makes its queues, so every queue listed belongs to a run whose heartbeat is seen. EC2's
    // resources are listed after, so gc spares what was made after it began (10 s earlier, for
    // AWS's clock and this host's a little apart): that is a run that started meanwhile, and a
    // dead run's resource made in those seconds waits for the next gc.
    let spare_from = SystemTime::now() - Duration::from_secs(10);
    let listed = queues.list(&queue_prefix(cfg.deployment())).await;
    // Only live runs have a heartbeat; one unread is counted live (never judged on a guess).
    let (beats, unreadable) = run_state::heartbeats(&stores, &state)
        .await
        .with_context(|| format!("listing the live runs' heartbeats under {state}; nothing was deleted"))?;
    let now = run_state::unix_now();
    let (live_beats, stale): (Vec<_>, Vec<_>) = beats.into_iter().partition(|b| b.is_live_at(now));
    let live: Vec<RunId> = live_beats.into_iter().map(|b| b.run_id).chain(unreadable).collect();
    let mut report = fleet.gc(&|run| live.contains(run), spare_from).await;
    match listed {
        Ok(names) => {
            for name in names.into_iter().filter(|n| !queue_of_any_run(n, &live)) {
                match queues.delete(&name).await {
                    Ok(()) => report.deleted.push(name),
                    Err(e) => report.failures.push(format!("queue {name}: {e}")),
                }
            }
        }
        Err(e) => report.failures.push(format!("listing queues: {e}")),
    }
    // A dead run's heartbeat goes last, once nothing of it is known to be left: a gc that failed
    // somewhere tries that run again next time.
    if report.failures.is_empty() {
        for beat in stale {
            match run_state::delete_stored_items(&stores, &state, &beat.run_id, None).await {
                Ok(0) => {}
                Ok(n) => report.deleted.push(format!("{n} stored work item(s) of run {}", beat.run_id)),
                Err(e) => {
                    report.failures.push(format!("stored work items of run {}: {e}", beat.run_id));
                    continue;
                }
            }
            match run_state::delete_heartbeat(&stores, &state, &beat.run_id).await {
                Ok(()) => report.deleted.push(format!("heartbeat of run {}", beat.run_id)),
                Err(e) => report.failures.push(format!("heartbeat of run {}: {e}", beat.run_id)),
            }
        }
    }
    println!(
        "deployment {}: deleted {} fleet(s)/instance(s)/template(s)/queue(s)/heartbeat(s){}",
        cfg.deployment(),
        report.deleted.len(),
        if report.deleted.is_empty() { String::new() } else { format!(": {}", report.deleted.join(", ")) }
    );
    if report.failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for failure in &report.failures {
        eprintln!("fleet gc could not delete: {failure}");
    }
    bail!("{} thing(s) could not be deleted (listed above); the next gc tries them again", report.failures.len())
}
