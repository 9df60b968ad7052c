//! Where workers run, behind one trait: local worker processes, or an EC2 spot fleet. The
//! orchestrator launches a fleet per step and deletes it when the step ends, whatever the
//! ending. `conformance` holds the suite both implementations pass.

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod ec2;
pub mod local;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use runner_types::{BackendKind, RunId, StepName};

/// The tag every resource of this tool carries.
pub const TOOL_TAG: (&str, &str) = ("spotlake:tool", "runner");
/// Tag keys.
pub const RUN_TAG: &str = "spotlake:run-id";
/// The step tag.
pub const STEP_TAG: &str = "spotlake:step";
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
    /// How many workers (local) or vCPUs (EC2) to aim for.
    pub capacity: usize,
    /// The workers' configuration (JSON), handed to each worker as it is: as `runner worker
    /// --config-json` locally, in the user data on EC2. The fleet does not read it; it must
    /// hold no secrets.
    pub worker_config: String,
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
    /// `running`, `terminated`, ...
    pub state: String,
    /// EC2 instance type.
    pub instance_type: Option<String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
}

/// A place to run workers.
#[async_trait]
pub trait Fleet: Send + Sync + std::fmt::Debug {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// Checks the configuration without launching anything.
    async fn preflight(&self) -> Result<()>;

    /// Launches workers.
    async fn launch(&self, request: &FleetRequest) -> Result<FleetHandle>;

    /// Keeps capacity up while work remains (local: replace exited workers; EC2's maintain
    /// fleets replace reclaimed instances themselves).
    async fn maintain(&self, handle: &FleetHandle, request: &FleetRequest) -> Result<()>;

    /// The fleet's instances.
    async fn instances(&self, handle: &FleetHandle) -> Result<Vec<Instance>>;

    /// Deletes the fleet and terminates its instances. Idempotent.
    async fn delete(&self, handle: &FleetHandle) -> Result<()>;

    /// Deletes every fleet of this tool whose run is not live. Returns the deleted ids.
    async fn gc(&self, is_live: &(dyn for<'r> Fn(&'r RunId) -> bool + Sync)) -> Result<Vec<String>>;
}
