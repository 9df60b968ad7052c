//! Where workers run, behind one trait: local worker processes, or EC2 spot instances. The
//! orchestrator launches a fleet per step, tells it every few seconds how many items still
//! want a slot (the fleet adds capacity up to that and never beyond it; idle workers exit on
//! their own), and deletes it when the step ends, whatever the ending. `conformance` holds the
//! suite both implementations pass.

pub mod boot;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod ec2;
pub mod local;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use runner_types::{BackendKind, Location, RunId, StepName};

/// The tag every resource of this tool carries.
pub const TOOL_TAG: (&str, &str) = ("spotlake:tool", "runner");
/// Tag keys.
pub const RUN_TAG: &str = "spotlake:run-id";
/// The step tag.
pub const STEP_TAG: &str = "spotlake:step";
/// The deployment tag: `fleet gc` for one deployment never touches another's resources.
pub const DEPLOYMENT_TAG: &str = "spotlake:deployment";
/// The Dagster run tag.
pub const DAGSTER_RUN_TAG: &str = "dagster:run-id";

/// Fleet errors.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The request is invalid (caught before anything is launched).
    #[error("invalid fleet configuration: {0}")]
    Config(String),
    /// The provider refused or failed.
    #[error("{operation}: {detail}")]
    Provider {
        /// What was being done.
        operation: &'static str,
        /// The provider's explanation.
        detail: String,
    },
    /// Workers keep dying right after they start.
    #[error("workers keep failing to start ({0}); see their output above")]
    CrashLoop(String),
    /// No capacity came for the configured wait.
    #[error("no spot capacity: {0}")]
    NoCapacity(String),
    /// A clean-up that could not delete everything (every failure, each tried).
    #[error("the clean-up left {} thing(s) behind: {}", .0.len(), .0.join("; "))]
    Cleanup(Vec<String>),
}

/// Result alias.
pub type Result<T, E = FleetError> = std::result::Result<T, E>;

/// What to launch.
#[derive(Debug, Clone)]
pub struct FleetRequest {
    /// The run.
    pub run_id: RunId,
    /// The step.
    pub step: StepName,
    /// The Dagster run, when launched by Dagster.
    pub dagster_run_id: Option<String>,
    /// The workers' configuration (JSON), handed to each worker as it is: as `runner worker
    /// --config-json` locally, in the user data on EC2. The fleet does not read it; it must
    /// hold no secrets.
    pub worker_config: String,
    /// Where the step's workers check in, ship their logs and report a failed boot.
    pub workers_prefix: Location,
}

/// What a fleet has, as seen by [`Fleet::maintain`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetState {
    /// Instances (or processes) up now: pending or running.
    pub instances: Vec<Instance>,
    /// Items the capacity up or on its way can run at once.
    pub capacity_items: usize,
    /// Capacity units requested so far, over every launch of this fleet (vCPUs on EC2,
    /// processes locally).
    pub requested: usize,
    /// What the provider reported going wrong (launch errors), oldest first.
    pub errors: Vec<String>,
    /// Instances seen ending since the last look, with why where the provider says.
    pub ended: Vec<Ended>,
    /// Whether the provider says why instances end (EC2 does, a look or two after; local
    /// processes don't): a watchdog then waits a little for the reason of an instance gone.
    pub end_reasons: bool,
    /// The fleet waits for spot capacity (a shortage or a quota): its own wait applies, not
    /// the boot watchdog's.
    pub waiting_for_capacity: bool,
}

/// An instance that ended, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Instance id.
    pub id: String,
    /// Why, as far as the provider says.
    pub why: EndReason,
}

/// Why an instance ended, as far as it counts for a crash loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The provider took it (a spot reclaim, a capacity or internal error): not the worker's
    /// doing.
    Provider,
    /// It shut down or was terminated otherwise: a crash is among the reasons.
    Own,
}

impl EndReason {
    /// EC2's state reason code: `Server.*` codes (`Server.SpotInstanceTermination`,
    /// `Server.InsufficientInstanceCapacity`, `Server.InternalError`, ...) are the provider's;
    /// `Client.*` codes and none at all count as the instance's own.
    pub fn of_ec2_code(code: Option<&str>) -> Self {
        match code {
            Some(c) if c.starts_with("Server.") => Self::Provider,
            _ => Self::Own,
        }
    }
}

/// A launched fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetHandle {
    /// Provider id (EC2 fleet id, or a local id).
    pub id: String,
    /// The run it serves.
    pub run_id: RunId,
    /// The step it serves.
    pub step: StepName,
}

/// One worker host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Instance id or process id.
    pub id: String,
    /// `running`, `pending`, `terminated`, ...
    pub state: String,
    /// EC2 instance type.
    pub instance_type: Option<String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
}

/// How an instance was bought: the price that applies to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Market {
    /// An EC2 spot instance: the spot price of its type and zone over its life.
    Spot,
    /// An EC2 on-demand instance.
    OnDemand,
    /// A worker process on this machine: the configured price per core-hour.
    Local,
}

impl std::fmt::Display for Market {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Spot => "spot",
            Self::OnDemand => "on-demand",
            Self::Local => "local",
        })
    }
}

/// One instance's (or worker process's) life, as the provider records it: what the bill is
/// made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Instance id, or the local worker's id.
    pub id: String,
    /// EC2 instance type; `local` for a worker process.
    pub instance_type: String,
    /// Availability zone (EC2 only).
    pub availability_zone: Option<String>,
    /// How it was bought.
    pub market: Market,
    /// Its vCPUs (locally: the cores its worker was given).
    pub vcpus: usize,
    /// When it was launched (Unix seconds).
    pub launched_at: f64,
    /// When it ended (Unix seconds): its termination, or the moment of asking for one still up.
    pub ended_at: f64,
    /// Whether `ended_at` is its recorded end rather than the moment of asking.
    pub ended: bool,
    /// EC2 interrupted it (a spot interruption): AWS does not charge a Linux spot instance it
    /// interrupts in its first hour.
    #[serde(default)]
    pub interrupted: bool,
    /// It had a public IPv4 address, charged per address-hour since February 2024.
    #[serde(default)]
    pub public_ipv4: bool,
    /// Its root volume, where EC2 said: charged per GB-month while it exists.
    #[serde(default)]
    pub root_volume: Option<Volume>,
    /// When it started running, where known (its worker read its kernel's start): EC2 bills
    /// from there, not from the launch (time pending is not billed).
    #[serde(default)]
    pub running_at: Option<f64>,
}

/// An EBS volume as EC2 describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Its size in GiB.
    pub gib: u32,
    /// Its type (`gp3`, `gp2`, ...).
    pub kind: String,
}

impl Usage {
    /// Seconds between launch and end.
    pub fn seconds(&self) -> f64 {
        (self.ended_at - self.launched_at).max(0.0)
    }
}

/// What a `gc` did: each thing it deleted, and each failure in words (it went on past them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// What went (fleet ids, instance ids, template names, queue names).
    pub deleted: Vec<String>,
    /// What could not be listed or deleted, and why.
    pub failures: Vec<String>,
}

/// A place to run workers.
#[async_trait]
pub trait Fleet: Send + Sync + std::fmt::Debug {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// The most items the fleet runs at once (its cap), so the orchestrator keeps that many
    /// queued.
    fn max_items(&self) -> usize;

    /// vCPUs one item is given.
    fn vcpus_per_item(&self) -> usize;

    /// Items each worker runs at once when the fleet decides it (local workers are processes on
    /// one machine: one each); `None` when each worker divides its own machine.
    fn slots_per_worker(&self) -> Option<usize>;

    /// Checks the configuration and everything a launch would need, without launching.
    async fn preflight(&self) -> Result<()>;

    /// Launches capacity for `wanted_items` items at once (capped by the fleet's own limit).
    async fn launch(&self, request: &FleetRequest, wanted_items: usize) -> Result<FleetHandle>;

    /// Called every few seconds while work remains, with the items not yet committed: adds
    /// capacity when what is up (or coming) holds fewer, never more than that. Capacity
    /// beyond it is not removed: idle workers exit by themselves.
    async fn maintain(&self, handle: &FleetHandle, request: &FleetRequest, wanted_items: usize) -> Result<FleetState>;

    /// The fleet's instances.
    async fn instances(&self, handle: &FleetHandle) -> Result<Vec<Instance>>;

    /// Every instance the fleet ever had for this handle, ended or not, with its life: what
    /// the bill is made from. Meant to be read after [`Fleet::delete`], when every end is known.
    async fn usage(&self, handle: &FleetHandle) -> Result<Vec<Usage>>;

    /// Deletes the fleet, terminates its instances and removes what was made for it (launch
    /// templates). Idempotent.
    async fn delete(&self, handle: &FleetHandle) -> Result<()>;

    /// Deletes every fleet (and instance and launch template) of this tool and this
    /// deployment whose run is not live, going on past every failure, and sparing what was
    /// made at or after `spare_from` (a run that started after its caller read which runs are
    /// live). Returns what it deleted and what it could not.
    async fn gc(
        &self,
        is_live: &(dyn for<'r> Fn(&'r RunId) -> bool + Sync),
        spare_from: std::time::SystemTime,
    ) -> GcReport;
}
