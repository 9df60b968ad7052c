//! One received message: its item run in a process of its own (or a warm one) while a
//! [`Keeper`] holds the message invisible, then the callback, then the message deleted (done,
//! or failed for good) or handed back (interrupted, lost, or failed where a retry may help).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use runner_backends::imds::Notice;
use runner_backends::queue::{Queue, Received};
use runner_backends::storage::{StoreCache, Stores};
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::child::{ChildOutcome, run_item_process};
use super::memory_limit::MemoryLimit;
use super::notices::wait_terminate;
use super::retrying::Retrying;
use super::visibility::{Keeper, Loss};
use super::warm::WarmProcesses;
use super::{WorkerConfig, item_env};
use crate::wire::{Callback, Outcome, WorkItem, WorkMessage, WorkerInfo};

/// What every item task of a worker shares.
pub(super) struct Shared {
    pub(super) cfg: WorkerConfig,
    pub(super) work: Arc<dyn Queue>,
    pub(super) callbacks: Arc<dyn Queue>,
    pub(super) me: WorkerInfo,
    pub(super) scratch_root: std::path::PathBuf,
    /// What each item process starts with: its pool's threads (unless the user set
    /// `POLARS_MAX_THREADS`) and the job's resolved `[env]`.
    pub(super) item_env: item_env::ItemProcessEnv,
    /// Idle warm item processes, when the budget allows them.
    pub(super) warm: Option<WarmProcesses>,
    /// The memory limit of an item whose step sets none.
    pub(super) default_limit: MemoryLimit,
    /// Storage: check-ins, and work items too large for a message.
    pub(super) stores: StoreCache,
}

/// Handles one message. Returns `Some(reason)` when the worker must stop.
pub(super) async fn handle(
    shared: &Shared,
    message: &Received,
    received_at: Instant,
    spot: &mut Option<watch::Receiver<Notice>>,
    sig: &mut watch::Receiver<Notice>,
) -> anyhow::Result<Option<String>> {
    let Shared { cfg, work, callbacks, me, scratch_root, item_env, warm, default_limit, stores } = shared;
    let item: WorkItem = match serde_json::from_str(&message.body) {
        Ok(WorkMessage::Item(i)) => *i,
        Ok(WorkMessage::Stored { stored_item }) => {
            // Too large for a message: the orchestrator stored it. A read that fails leaves the
            // message to come back (a retry may reach the store).
            let bytes = stores
                .read(&stored_item.stored_at)
                .await
                .with_context(|| format!("reading the stored work item {}", stored_item.stored_at))?;
            serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing the stored work item {}", stored_item.stored_at))?
        }
        Err(e) => {
            // Not ours to retry: nothing can ever run it.
            error!("dropping a malformed work message {}: {e}", message.id);
            work.delete(&message.receipt).await.ok();
            return Ok(None);
        }
    };
    info!(item = %item.label, attempt = message.receive_count, "running");
    let started_at = unix_seconds();
    let scratch =
        tempfile::Builder::new().prefix("runner-item-").tempdir_in(scratch_root).context("creating scratch space")?;
    // Stopped when dropped, so no return path leaves it extending a message's visibility.
    let keeper = Keeper::start(
        work.clone(),
        message.receipt.clone(),
        tokio::time::Instant::from_std(received_at),
        Duration::from_secs(cfg.visibility_secs),
        Duration::from_secs(cfg.heartbeat_secs.max(1)),
        item.label.clone(),
    );
    let cancel = {
        let lost = keeper.lost();
        async move {
            tokio::select! {
                reason = wait_terminate(spot, sig) => reason,
                loss = lost => loss.to_string(),
            }
        }
    };
    let limit = MemoryLimit::of(&item, *default_limit);
    let outcome = match warm {
        Some(warm) => warm.run(&item, scratch.path(), limit, cancel).await,
        None => run_item_process(&item, scratch.path(), item_env, limit, cancel).await,
    };
    let (outcome, stop) = match outcome.context("starting the item process")? {
        ChildOutcome::Succeeded(stats) => (Outcome::Succeeded { stats }, None),
        ChildOutcome::Failed { error, permanent } => (Outcome::Failed { error, permanent }, None),
        // Stopped by its keeper: not a reason for the worker to stop.
        ChildOutcome::Killed(reason) => match keeper.loss() {
            Some(Loss::Ceiling(error)) => (Outcome::Failed { error, permanent: true }, None),
            Some(lost @ Loss::Lost(_)) => (Outcome::Interrupted { reason: lost.to_string() }, None),
            None => (Outcome::Interrupted { reason: reason.clone() }, Some(reason)),
        },
    };
    // Hand the item back before anything else when it did not succeed and a retry may help:
    // another worker can start at once. A permanent failure is not run again; its message is
    // deleted once the orchestrator has been told.
    let permanent = matches!(outcome, Outcome::Failed { permanent: true, .. });
    if !matches!(outcome, Outcome::Succeeded { .. }) && !permanent {
        keeper.stop();
        work.set_visibility(&message.receipt, Duration::ZERO).await.ok();
    }
    match &outcome {
        Outcome::Succeeded { .. } => info!(item = %item.label, "done"),
        Outcome::Failed { error, permanent } => {
            let retry = if *permanent { " (no retry can fix it)" } else { "" };
            warn!(item = %item.label, attempt = message.receive_count, "failed{retry}: {error}")
        }
        Outcome::Interrupted { reason } => warn!(item = %item.label, "handed back: {reason}"),
    }
    let succeeded = matches!(outcome, Outcome::Succeeded { .. });
    if succeeded {
        callback_delay_failpoint().await;
    }
    let callback = Callback {
        run_id: item.run_id.clone(),
        step: item.step.clone(),
        item: item.id.clone(),
        receive_count: message.receive_count,
        worker: me.clone(),
        started_at,
        finished_at: unix_seconds(),
        outcome,
    };
    let body = serde_json::to_string(&callback).unwrap_or_default();
    let mut failing = Retrying::default();
    let sent = loop {
        match callbacks.send(std::slice::from_ref(&body)).await {
            Ok(ids) => break Ok(ids),
            Err(e) => match failing.again(Instant::now()) {
                Some(wait) => {
                    warn!(item = %item.label, "sending the callback failed; trying again in {wait:?}: {e}");
                    tokio::time::sleep(wait).await;
                }
                None => break Err(e),
            },
        }
    };
    // The heartbeat kept the message invisible while the callback was retried: no other worker
    // runs the item again meanwhile.
    keeper.stop();
    match (sent, succeeded || permanent) {
        (Ok(_), true) => work.delete(&message.receipt).await.context("deleting a finished item")?,
        (Err(e), true) => {
            // Without a callback the orchestrator would wait: let the item come back; the
            // redo finds the same outputs and commits again.
            work.set_visibility(&message.receipt, Duration::ZERO).await.ok();
            return Err(e).context("sending the callback");
        }
        (Err(e), false) => return Err(e).context("sending the callback"),
        (Ok(_), false) => {}
    }
    Ok(stop)
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Test-only failpoint: `SPOTLAKE_TEST_CALLBACK_DELAY_MS` holds a success's callback after its
/// manifest is written, so a test sees the orchestrator find the commit before the callback.
async fn callback_delay_failpoint() {
    if let Some(ms) = std::env::var("SPOTLAKE_TEST_CALLBACK_DELAY_MS").ok().and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
