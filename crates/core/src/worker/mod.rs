//! The worker loop (`runner worker`): long-poll the work queue, run each item in a child
//! process while heartbeating its visibility, send the callback, then delete the message (or
//! release it for a retry). On a spot notice or SIGTERM it stops taking work, hands running
//! items back at once, and says so in an `interrupted` callback. It exits when idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use runner_backends::aws::AwsClients;
use runner_backends::imds::{self, Notice};
use runner_backends::queue::{LocalQueues, Queue, QueueBackend, Received, SqsQueues};
use runner_types::BackendKind;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::wire::{Callback, Outcome, WorkItem, WorkerInfo};
use child::{ChildOutcome, run_item_process};

pub mod child;
pub mod exec;

/// How workers find their queues and behave. The orchestrator writes it; the fleet carries it
/// to every worker as it is (EC2 user data, or a local worker's argument). Holds no secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// Which backend the queues are.
    pub backend: BackendKind,
    /// Where work items are received.
    pub work_queue: String,
    /// Where callbacks are sent.
    pub callback_queue: String,
    /// Visibility timeout of a received item, in seconds.
    pub visibility_secs: u64,
    /// How often a running item's visibility is extended, in seconds.
    pub heartbeat_secs: u64,
    /// A worker with nothing to do for this long exits.
    pub idle_shutdown_secs: u64,
    /// Poll the instance metadata service for spot interruption notices.
    pub poll_imds: bool,
    /// Where items keep scratch files (default: the system temp dir).
    #[serde(default)]
    pub scratch_dir: Option<String>,
}

/// How often IMDS is polled for notices.
const NOTICE_POLL: Duration = Duration::from_secs(5);

/// Why the worker stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum WorkerExit {
    /// Nothing to do for the idle timeout.
    Idle,
    /// A spot notice or a signal.
    Interrupted(String),
}

/// Opens a queue by address with the configured backend.
pub async fn open_queue(cfg: &WorkerConfig, address: &str, aws: &AwsClients) -> anyhow::Result<Arc<dyn Queue>> {
    let backend: Box<dyn QueueBackend> = match cfg.backend {
        BackendKind::Local => Box::new(LocalQueues::new("")),
        BackendKind::Aws => Box::new(SqsQueues::new(aws.sqs().await)),
    };
    backend.open(address).await.with_context(|| format!("opening queue {address}"))
}

fn signals() -> watch::Receiver<Notice> {
    let (tx, rx) = watch::channel(Notice::None);
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()),
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()),
        ) else {
            return;
        };
        let which = tokio::select! { _ = term.recv() => "SIGTERM", _ = int.recv() => "SIGINT" };
        let _ = tx.send(Notice::Terminate(format!("worker received {which}")));
    });
    rx
}

/// Runs the worker until idle or interrupted.
pub async fn run(cfg: WorkerConfig, aws: Arc<AwsClients>) -> anyhow::Result<WorkerExit> {
    let work = open_queue(&cfg, &cfg.work_queue, &aws).await?;
    let callbacks = open_queue(&cfg, &cfg.callback_queue, &aws).await?;
    let facts = if cfg.poll_imds { imds::facts().await } else { Default::default() };
    let me = WorkerInfo {
        id: facts.instance_id.clone().unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id())),
        instance_type: facts.instance_type.clone(),
        availability_zone: facts.availability_zone.clone(),
        arch: std::env::consts::ARCH.to_string(),
    };
    let mut spot = if cfg.poll_imds { Some(imds::watch_notices(NOTICE_POLL)) } else { None };
    let mut sig = signals();
    let visibility = Duration::from_secs(cfg.visibility_secs);
    let scratch_root = cfg.scratch_dir.clone().map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let mut idle_since = Instant::now();
    info!(worker = %me.id, queue = %cfg.work_queue, "worker started");
    loop {
        let notice = current_notice(&spot, &sig);
        match &notice {
            Notice::Terminate(reason) | Notice::Rebalance(reason) => {
                info!(worker = %me.id, "{reason}: taking no more work");
                return Ok(WorkerExit::Interrupted(reason.clone()));
            }
            Notice::None => {}
        }
        let idle_left = Duration::from_secs(cfg.idle_shutdown_secs).saturating_sub(idle_since.elapsed());
        if idle_left.is_zero() {
            info!(worker = %me.id, "idle, shutting down");
            return Ok(WorkerExit::Idle);
        }
        let wait = idle_left.min(Duration::from_secs(5));
        let received = tokio::select! {
            r = work.receive(1, wait, visibility) => r.context("receiving work")?,
            _ = wait_terminate(&mut spot, &mut sig) => continue,
        };
        let Some(message) = received.into_iter().next() else {
            continue;
        };
        let outcome = handle(&cfg, &work, &*callbacks, &me, &message, &scratch_root, &mut spot, &mut sig).await;
        if let Err(e) = &outcome {
            error!(worker = %me.id, "{e:#}");
        }
        idle_since = Instant::now();
        if let Ok(Some(reason)) = outcome {
            return Ok(WorkerExit::Interrupted(reason));
        }
    }
}

fn current_notice(spot: &Option<watch::Receiver<Notice>>, sig: &watch::Receiver<Notice>) -> Notice {
    let s = sig.borrow().clone();
    if s != Notice::None {
        return s;
    }
    spot.as_ref().map(|r| r.borrow().clone()).unwrap_or(Notice::None)
}

/// Resolves when a termination notice (spot or signal) arrives.
async fn wait_terminate(spot: &mut Option<watch::Receiver<Notice>>, sig: &mut watch::Receiver<Notice>) -> String {
    loop {
        let notice = current_notice(spot, sig);
        if let Notice::Terminate(reason) = notice {
            return reason;
        }
        tokio::select! {
            r = sig.changed() => if r.is_err() { std::future::pending::<()>().await },
            r = async { match spot { Some(s) => s.changed().await, None => std::future::pending().await } } => {
                if r.is_err() { *spot = None; }
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Handles one message. Returns `Some(reason)` when the worker must stop.
#[allow(clippy::too_many_arguments)]
async fn handle(
    cfg: &WorkerConfig,
    work: &Arc<dyn Queue>,
    callbacks: &dyn Queue,
    me: &WorkerInfo,
    message: &Received,
    scratch_root: &std::path::Path,
    spot: &mut Option<watch::Receiver<Notice>>,
    sig: &mut watch::Receiver<Notice>,
) -> anyhow::Result<Option<String>> {
    let item: WorkItem = match serde_json::from_str(&message.body) {
        Ok(i) => i,
        Err(e) => {
            // Not ours to retry: nothing can ever run it.
            error!("dropping a malformed work message {}: {e}", message.id);
            work.delete(&message.receipt).await.ok();
            return Ok(None);
        }
    };
    info!(item = %item.label, attempt = message.receive_count, "running");
    let scratch =
        tempfile::Builder::new().prefix("runner-item-").tempdir_in(scratch_root).context("creating scratch space")?;
    let heartbeat = {
        let work = work.clone();
        let receipt = message.receipt.clone();
        let every = Duration::from_secs(cfg.heartbeat_secs.max(1));
        let visibility = Duration::from_secs(cfg.visibility_secs);
        let label = item.label.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = work.set_visibility(&receipt, visibility).await {
                    warn!(item = %label, "heartbeat failed: {e}");
                }
            }
        })
    };
    let outcome = run_item_process(&item, scratch.path(), wait_terminate(spot, sig)).await;
    heartbeat.abort();
    let (outcome, stop) = match outcome.context("starting the item process")? {
        ChildOutcome::Succeeded(stats) => (Outcome::Succeeded { stats }, None),
        ChildOutcome::Failed(error) => (Outcome::Failed { error }, None),
        ChildOutcome::Killed(reason) => (Outcome::Interrupted { reason: reason.clone() }, Some(reason)),
    };
    // Hand the item back before anything else when it did not succeed: another worker can
    // start at once.
    if !matches!(outcome, Outcome::Succeeded { .. }) {
        work.set_visibility(&message.receipt, Duration::ZERO).await.ok();
    }
    match &outcome {
        Outcome::Succeeded { .. } => info!(item = %item.label, "done"),
        Outcome::Failed { error } => {
            warn!(item = %item.label, attempt = message.receive_count, "failed: {error}")
        }
        Outcome::Interrupted { reason } => warn!(item = %item.label, "handed back: {reason}"),
    }
    let succeeded = matches!(outcome, Outcome::Succeeded { .. });
    let callback = Callback {
        run_id: item.run_id.clone(),
        step: item.step.clone(),
        item: item.id.clone(),
        receive_count: message.receive_count,
        worker: me.clone(),
        outcome,
    };
    let sent = callbacks.send(&[serde_json::to_string(&callback).unwrap_or_default()]).await;
    match (sent, succeeded) {
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
