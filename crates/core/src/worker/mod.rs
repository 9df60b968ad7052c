//! The worker loop (`runner worker`): long-poll the work queue for as many items as the
//! machine has free slots ([`capacity`]), and hand each message to an item task
//! ([`item_task`]: the item in a child process while its [`visibility`] is kept, the callback,
//! the message deleted or released). Before its first item it asks again, with backoff, while
//! opening its queues, checking in or receiving fails; a reason no retry fixes is [`Refused`]. On a
//! spot notice or SIGTERM it stops taking work, hands running items back at once, and says so
//! in `interrupted` callbacks; on a rebalance recommendation it finishes what runs and takes
//! nothing new. It exits when idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use runner_backends::aws::AwsClients;
use runner_backends::imds::{self, Notice};
use runner_backends::queue::{LocalQueues, Queue, QueueBackend, QueueError, SqsQueues};
use runner_backends::storage::{StoreCache, Stores};
use runner_types::{BackendKind, Location};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::wire::WorkerInfo;
use capacity::{ItemNeeds, Machine, Packing};
use memory_limit::MemoryLimit;
use notices::{current_notice, signals, wait_terminate};
use retrying::Retrying;
use warm::{WarmBudget, WarmProcesses};

pub mod capacity;
pub mod child;
mod engine_panic;
pub mod exec;
pub mod item_env;
mod item_task;
use item_task::Shared;
pub mod memory_limit;
mod notices;
mod retrying;
pub mod visibility;
pub mod warm;

/// How workers find their queues and behave. The orchestrator writes it; the fleet carries it
/// to every worker as it is (EC2 user data, or a local worker's argument). Holds no secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// vCPUs one item needs: the worker runs its machine's vCPUs ÷ this many items at once.
    #[serde(default = "one")]
    pub vcpus_per_item: usize,
    /// Memory one item needs in MiB (the step's memory limit), which also bounds the slots.
    #[serde(default)]
    pub memory_mib_per_item: Option<u64>,
    /// Items at once, fixed (local workers, which are many processes on one machine, run one
    /// each); unset, the worker divides its machine.
    #[serde(default)]
    pub slots: Option<usize>,
    /// Where the worker checks in (`{prefix}/{worker id}/checked-in.json`) once its queues
    /// answer, so the orchestrator knows instances boot.
    #[serde(default)]
    pub workers_prefix: Option<Location>,
    /// Items in the step, all workers together: a worker gives the cores of slots that no item
    /// can fill to the items that run ([`capacity::Packing::for_step_items`]).
    #[serde(default)]
    pub step_items: Option<usize>,
    /// The job's `[env]`: values, and references each worker resolves itself (never a
    /// secret's value: this config travels in the fleet's user data).
    #[serde(default, skip_serializing_if = "runner_types::ItemEnv::is_empty")]
    pub env: runner_types::ItemEnv,
    /// Let an item process take the next item while its memory stays within this budget
    /// ([`warm`]); unset, every item runs in a fresh process.
    #[serde(default)]
    pub warm_items: Option<WarmBudget>,
    /// Items that run at once on the worker's machine, all its workers together, when the
    /// fleet puts several workers on one machine (local workers); unset, the worker's own
    /// slots. The default memory limit of an item is the machine's share for each of them.
    #[serde(default)]
    pub machine_items: Option<usize>,
}

/// The object a worker writes when it starts, under the workers prefix and its id.
pub const CHECKED_IN: &str = "checked-in.json";

fn one() -> usize {
    1
}

impl WorkerConfig {
    /// How this worker divides the machine it runs on.
    pub fn packing(&self) -> Packing {
        let machine = Machine::read();
        let vcpus = machine.vcpus;
        let packing = match self.slots {
            Some(slots) => Packing { slots: slots.max(1), threads_per_item: (machine.vcpus / slots.max(1)).max(1) },
            None => {
                capacity::pack(machine, ItemNeeds { vcpus: self.vcpus_per_item, memory_mib: self.memory_mib_per_item })
            }
        };
        packing.for_step_items(vcpus, self.step_items)
    }

    /// The memory limit of an item whose step sets none ([`memory_limit`]): a share of the
    /// machine for each item that runs on it at once. A worker runs no more items at once
    /// than the step has, so a step of one item gets its whole share of the machine.
    pub fn default_memory_limit(&self, packing: Packing) -> MemoryLimit {
        MemoryLimit::default_for(Machine::read().memory_mib, self.items_per_machine(packing))
    }

    /// Items that run at once on this worker's machine.
    fn items_per_machine(&self, packing: Packing) -> usize {
        match self.machine_items {
            Some(n) => n,
            None => packing.slots.min(self.step_items.unwrap_or(usize::MAX)),
        }
    }
}

/// How often IMDS is polled for notices.
const NOTICE_POLL: Duration = Duration::from_secs(5);

/// Why the worker stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum WorkerExit {
    /// Nothing to do for the idle timeout.
    Idle,
    /// A signal, or a rebalance recommendation.
    Interrupted(String),
    /// EC2's spot interruption notice: the instance is EC2's to reclaim within two minutes, and
    /// must not power itself off (AWS does not charge an instance it interrupts in its first
    /// hour, but does charge one the user terminates). Its exit code is [`RECLAIMED_EXIT_CODE`].
    Reclaimed(String),
    /// The work queue stayed unreachable for [`QUEUE_PATIENCE`] after the worker had served:
    /// not a boot failure (the boot script tells the two apart by [`LOST_EXIT_CODE`]).
    Lost(String),
}

pub use retrying::QUEUE_PATIENCE;
/// The variable the boot script hands the instance id in.
pub use runner_backends::fleet::boot::INSTANCE_ID_ENV;
/// The exit code of a worker that lost its queue after it had served ([`WorkerExit::Lost`]).
pub use runner_backends::fleet::boot::LOST_EXIT_CODE;

/// Opens a queue by address with the configured backend.
pub async fn open_queue(cfg: &WorkerConfig, address: &str, aws: &AwsClients) -> anyhow::Result<Arc<dyn Queue>> {
    let backend: Box<dyn QueueBackend> = match cfg.backend {
        BackendKind::Local => Box::new(LocalQueues::new("")),
        BackendKind::Aws => Box::new(SqsQueues::new(aws.sqs().await)),
    };
    backend.open(address).await.with_context(|| format!("opening queue {address}"))
}

/// A worker that can't start for a reason no retry fixes (its environment, a secret it can't
/// read): it exits with [`REFUSED_EXIT_CODE`], and the boot script fails the step at once
/// instead of counting one instance's blip.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The exit code of a worker whose instance EC2 is reclaiming ([`WorkerExit::Reclaimed`]).
pub use runner_backends::fleet::boot::RECLAIMED_EXIT_CODE;
/// The exit code of a worker [`Refused`] (`EX_CONFIG`).
pub use runner_backends::fleet::boot::REFUSED_EXIT_CODE;

/// Whether an error's words are a refusal no retry changes: a permission, a KMS key, an
/// address that is no queue (AWS's codes, as the SDK quotes them).
fn refusal(words: &str) -> bool {
    ["AccessDenied", "Forbidden", "KMS.", "KmsAccessDenied", "InvalidAddress", "InvalidSecurity"]
        .iter()
        .any(|w| words.contains(w))
}

/// Opens a queue, asking again with backoff while it fails for a reason a retry may fix. A
/// queue that does not exist, or is refused, is [`Refused`]: at a worker's start the queues of
/// its step exist (a worker booting after its step ended is terminated with its fleet).
async fn open_patiently(cfg: &WorkerConfig, address: &str, aws: &AwsClients) -> anyhow::Result<Arc<dyn Queue>> {
    let mut failing = Retrying::default();
    loop {
        match open_queue(cfg, address, aws).await {
            Ok(q) => return Ok(q),
            Err(e) if matches!(e.downcast_ref(), Some(QueueError::NoSuchQueue(_))) || refusal(&format!("{e:#}")) => {
                return Err(Refused(format!(
                    "{e:#} (check the region, and the worker role's SQS and KMS permissions)"
                ))
                .into());
            }
            Err(e) => match failing.again(Instant::now()) {
                Some(wait) => {
                    warn!("opening the queue failed; trying again in {wait:?}: {e:#}");
                    tokio::time::sleep(wait).await;
                }
                None => return Err(e.context(format!("the queue stayed unreachable for {:?}", retrying::patience()))),
            },
        }
    }
}

/// Runs the worker until idle or interrupted.
pub async fn run(cfg: WorkerConfig, aws: Arc<AwsClients>) -> anyhow::Result<WorkerExit> {
    item_env::check_user_env().map_err(Refused)?;
    // Before anything else: a secret this worker can't read fails it at once, naming the
    // variable and its reference (no retry grants a permission or creates a secret).
    let mut failing = Retrying::default();
    let declared = loop {
        match runner_backends::secrets::resolve(&cfg.env, &aws).await {
            Ok(declared) => break declared,
            Err(e) if !e.transient => return Err(Refused(format!("the job's [env]: {e}")).into()),
            Err(e) => match failing.again(Instant::now()) {
                Some(wait) => {
                    warn!("reading the job's [env] failed; trying again in {wait:?}: {e}");
                    tokio::time::sleep(wait).await;
                }
                None => return Err(e).context(format!("the job's [env], for {:?}", retrying::patience())),
            },
        }
    };
    if !declared.is_empty() {
        info!(variables = ?declared, "resolved the job's environment for its items");
    }
    let work = open_patiently(&cfg, &cfg.work_queue, &aws).await?;
    let callbacks = open_patiently(&cfg, &cfg.callback_queue, &aws).await?;
    let facts = if cfg.poll_imds { imds::facts().await } else { Default::default() };
    let packing = cfg.packing();
    let me = WorkerInfo {
        // Check-ins are matched to instances by this id: the boot script's reading of it is the
        // fallback before a local name, which no instance would match.
        id: facts
            .instance_id
            .clone()
            .or_else(|| std::env::var(INSTANCE_ID_ENV).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| local_worker_id(std::process::id())),
        instance_type: facts.instance_type.clone(),
        availability_zone: facts.availability_zone.clone(),
        arch: std::env::consts::ARCH.to_string(),
        slots: packing.slots,
        booted_at: if cfg.poll_imds { booted_at() } else { None },
    };
    let mut spot = if cfg.poll_imds { Some(imds::watch_notices(NOTICE_POLL)) } else { None };
    let mut sig = signals();
    let scratch_root = cfg.scratch_dir.clone().map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let threads_per_item = std::env::var_os("POLARS_MAX_THREADS").is_none().then_some(packing.threads_per_item);
    let idle_after = Duration::from_secs(cfg.idle_shutdown_secs);
    let item_env = item_env::ItemProcessEnv { threads: threads_per_item, declared };
    let warm = cfg.warm_items.map(|budget| {
        WarmProcesses::new(budget, item_env.clone(), scratch_root.join(format!("runner-worker-{}", std::process::id())))
    });
    let default_limit = cfg.default_memory_limit(packing);
    let stores = StoreCache::new(aws.clone());
    let shared = Arc::new(Shared { cfg, work, callbacks, me, scratch_root, item_env, warm, default_limit, stores });
    let exit = serve(&shared, packing, &mut spot, &mut sig, idle_after).await;
    if let Some(warm) = &shared.warm {
        warm.shutdown().await;
    }
    exit
}

/// Takes items while there is room, until idle or interrupted.
async fn serve(
    shared: &Arc<Shared>,
    packing: Packing,
    spot: &mut Option<watch::Receiver<Notice>>,
    sig: &mut watch::Receiver<Notice>,
    idle_after: Duration,
) -> anyhow::Result<WorkerExit> {
    let me = &shared.me;
    if let Some(prefix) = &shared.cfg.workers_prefix {
        let at = prefix.join(&format!("{}/{CHECKED_IN}", me.id));
        let mut failing = Retrying::default();
        while let Err(e) = shared.stores.write(&at, serde_json::to_vec(me).unwrap_or_default()).await {
            if refusal(&e.to_string()) {
                return Err(Refused(format!("checking in at {at}: {e}")).into());
            }
            let Some(wait) = failing.again(Instant::now()) else {
                return Err(e).with_context(|| format!("checking in at {at} failed for {:?}", retrying::patience()));
            };
            warn!(worker = %me.id, "checking in at {at} failed; trying again in {wait:?}: {e}");
            tokio::time::sleep(wait).await;
        }
    }
    info!(
        worker = %me.id,
        queue = %shared.cfg.work_queue,
        slots = packing.slots,
        threads_per_item = packing.threads_per_item,
        default_item_memory_mib = shared.default_limit.bytes().map(|b| b / (1024 * 1024)),
        "worker started"
    );
    let mut running: JoinSet<anyhow::Result<Option<String>>> = JoinSet::new();
    let mut idle_since = Instant::now();
    // Receives that fail are asked again with backoff; only a worker that never received (its
    // boot is what failed) or that can't reach its queue for QUEUE_PATIENCE gives up.
    let mut received_once = false;
    let mut failing = Retrying::default();
    let mut stopping: Option<String> = None;
    loop {
        match current_notice(spot, sig) {
            // Running items see the same notice and hand themselves back.
            Notice::Terminate(reason) | Notice::Rebalance(reason) if stopping.is_none() => {
                info!(worker = %me.id, running = running.len(), "{reason}: taking no more work");
                stopping = Some(reason);
            }
            _ => {}
        }
        if let Some(reason) = &stopping {
            while let Some(done) = running.join_next().await {
                log_task_end(me, done);
            }
            // EC2's own notice (no signal came): the instance is left for EC2 to reclaim.
            let by_ec2 = *sig.borrow() == Notice::None
                && spot.as_ref().is_some_and(|s| matches!(*s.borrow(), Notice::Terminate(_)));
            return Ok(if by_ec2 {
                WorkerExit::Reclaimed(reason.clone())
            } else {
                WorkerExit::Interrupted(reason.clone())
            });
        }
        if running.is_empty() && idle_since.elapsed() >= idle_after {
            info!(worker = %me.id, "idle, shutting down");
            return Ok(WorkerExit::Idle);
        }
        let free = packing.slots - running.len();
        if free == 0 {
            tokio::select! {
                done = running.join_next() => if let Some(done) = done {
                    if let Some(reason) = log_task_end(me, done) { stopping = Some(reason); }
                    idle_since = Instant::now();
                },
                _ = wait_terminate(spot, sig) => {}
            }
            continue;
        }
        // A receive is never cancelled: the queue may already have handed out messages that a
        // dropped request would leave invisible, unrun, until their visibility timeout (this
        // stalled packed workers for a whole timeout). So while items run it polls briefly,
        // and finished items are reaped after it returns.
        let wait = if running.is_empty() {
            idle_after.saturating_sub(idle_since.elapsed()).clamp(Duration::from_secs(1), Duration::from_secs(5))
        } else {
            Duration::from_secs(1)
        };
        // SQS hands out at most 10 messages per receive.
        let visibility = Duration::from_secs(shared.cfg.visibility_secs);
        // Before the receive: the queue's 12 hours count from a moment at or after this.
        let asked_at = Instant::now();
        let receive = shared.work.receive(free.min(10), wait, visibility);
        let received = if running.is_empty() && shared.cfg.backend == BackendKind::Local {
            // An idle local worker told to stop (its fleet is being deleted at the end of the
            // step) stops now rather than after its poll: waiting cost every local step up to
            // 5 s. Nothing runs, and the local queue is only being deleted or cancelled then.
            tokio::select! {
                received = receive => received,
                _ = wait_terminate(spot, sig) => continue,
            }
        } else {
            receive.await
        };
        let received = match received {
            Ok(r) => {
                received_once = true;
                failing = Retrying::default();
                r
            }
            Err(runner_backends::queue::QueueError::NoSuchQueue(q)) if running.is_empty() => {
                // The step is over: its queue is deleted once its work is done.
                info!(worker = %me.id, "the work queue {q} is gone; stopping");
                return Ok(WorkerExit::Idle);
            }
            Err(e) => match failing.again(Instant::now()) {
                Some(wait) => {
                    warn!(worker = %me.id, "receiving work failed; asking again in {wait:?}: {e}");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = wait_terminate(spot, sig) => {}
                    }
                    Vec::new()
                }
                // A worker that never received: its boot is what failed.
                None if !received_once => {
                    return Err(e).with_context(|| format!("receiving work failed for {:?}", retrying::patience()));
                }
                None => {
                    while let Some(done) = running.join_next().await {
                        log_task_end(me, done);
                    }
                    return Ok(WorkerExit::Lost(format!("the work queue failed for {QUEUE_PATIENCE:?}: {e}")));
                }
            },
        };
        while let Some(done) = running.try_join_next() {
            if let Some(reason) = log_task_end(me, done) {
                stopping = Some(reason);
            }
            idle_since = Instant::now();
        }
        if !received.is_empty() || !running.is_empty() {
            idle_since = Instant::now();
        }
        for message in received {
            let (shared, mut spot, mut sig) = (shared.clone(), spot.clone(), sig.clone());
            running.spawn(async move { item_task::handle(&shared, &message, asked_at, &mut spot, &mut sig).await });
        }
    }
}

/// Logs how an item task ended; returns the reason when the worker must stop.
fn log_task_end(
    me: &WorkerInfo,
    done: Result<anyhow::Result<Option<String>>, tokio::task::JoinError>,
) -> Option<String> {
    match done {
        Ok(Ok(stop)) => stop,
        Ok(Err(e)) => {
            error!(worker = %me.id, "{e:#}");
            None
        }
        Err(e) => {
            error!(worker = %me.id, "an item task ended abnormally: {e}");
            None
        }
    }
}

/// When this machine's kernel started: now less `/proc/uptime`'s first figure, rounded up (a
/// bill never starts before the machine ran).
fn booted_at() -> Option<u64> {
    let uptime: f64 = std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
    Some((now - uptime).max(0.0).ceil() as u64)
}

/// A worker's id off EC2: the one its local fleet knows it by.
fn local_worker_id(pid: u32) -> String {
    runner_backends::fleet::local::worker_id(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(machine_items: Option<usize>, step_items: Option<usize>) -> WorkerConfig {
        let mut cfg: WorkerConfig = serde_json::from_value(serde_json::json!({
            "backend": "local",
            "work_queue": "w",
            "callback_queue": "c",
            "visibility_secs": 30,
            "heartbeat_secs": 10,
            "idle_shutdown_secs": 60,
            "poll_imds": false,
        }))
        .unwrap();
        cfg.machine_items = machine_items;
        cfg.step_items = step_items;
        cfg
    }

    #[test]
    fn the_default_memory_limit_is_shared_by_the_items_that_run_on_the_machine_at_once() {
        let packing = Packing { slots: 8, threads_per_item: 2 };
        assert_eq!(config(None, None).items_per_machine(packing), 8, "an instance's slots");
        assert_eq!(config(None, Some(3)).items_per_machine(packing), 3, "a step of three items fills three slots");
        assert_eq!(config(None, Some(100)).items_per_machine(packing), 8);
        // Local workers of one slot each share the orchestrator's machine.
        let local = Packing { slots: 1, threads_per_item: 8 };
        assert_eq!(config(Some(4), Some(100)).items_per_machine(local), 4);
    }
}
