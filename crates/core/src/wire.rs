//! The wire types: work items (orchestrator → queue → worker), callbacks (worker → queue →
//! orchestrator) and manifests (an item's commit record in storage). An item's id is a hash of everything
//! that decides its output (the step's definition, the partition, and each input object with
//! its version), so a committed item is never redone and a changed input makes a new item.

use std::collections::BTreeMap;

pub use runner_types::{ItemStats, RunId, WorkItemId};
use runner_types::{Location, Partition, PartitionKey, StepName};
use serde::{Deserialize, Serialize};

/// One input object of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputObject {
    /// Where it is (`/data/raw/x.csv`, `s3://bucket/raw/x.csv`).
    pub uri: Location,
    /// Size in bytes.
    pub size: u64,
    /// Content version (ETag, or size and mtime).
    pub version: String,
}

/// A unit of work: one step, one partition, a set of input objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    /// The run it belongs to.
    pub run_id: RunId,
    /// The job's name.
    pub job: String,
    /// Where the job spec of the run is stored.
    pub spec_uri: Location,
    /// The step.
    pub step: StepName,
    /// The item's id.
    pub id: WorkItemId,
    /// A readable label for logs (`clean[2024-01-02] part-0003.csv.gz`).
    pub label: String,
    /// The partition.
    pub partition: Option<Partition>,
    /// Input objects by input name.
    pub inputs: BTreeMap<String, Vec<InputObject>>,
    /// Output directory URI, by output name (templates already rendered).
    pub outputs: BTreeMap<String, Location>,
    /// Where the item's commit manifest goes.
    pub manifest_uri: Location,
    /// Stop the item's process above this resident size.
    #[serde(default)]
    pub memory_limit_mb: Option<u64>,
}

/// Where a work item too large for a queue message is kept: the message carries this instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredItem {
    /// The run it belongs to.
    pub run_id: RunId,
    /// The item's id.
    pub id: WorkItemId,
    /// Where the item's JSON is, in the run state.
    pub stored_at: Location,
}

/// What a work message holds: the item itself, or where it is stored when it is too large for
/// a message (an item listing thousands of input files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WorkMessage {
    /// The item.
    Item(Box<WorkItem>),
    /// Where the item is.
    Stored {
        /// The reference.
        stored_item: StoredItem,
    },
}

impl WorkMessage {
    /// The run and item a message is about, without fetching a stored item.
    pub fn ids(&self) -> (&RunId, &WorkItemId) {
        match self {
            Self::Item(i) => (&i.run_id, &i.id),
            Self::Stored { stored_item } => (&stored_item.run_id, &stored_item.id),
        }
    }
}

impl WorkItem {
    /// Where the item publishes the distinct keys of the `unique` checks on its outputs: beside
    /// its manifest in the run state, under `_checks/` (never where readers of the data look).
    pub fn check_keys_location(&self) -> Location {
        let key = self.manifest_uri.key();
        let dir = key.rsplit_once('/').map_or("", |(dir, _)| dir);
        self.manifest_uri.with_key(format!("{dir}/_checks"))
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Outputs are published and the manifest written.
    Succeeded {
        /// What the item did.
        stats: ItemStats,
    },
    /// The job itself failed (bad data, SQL error, memory limit): counts against the item.
    Failed {
        /// The error, with its causes.
        error: String,
        /// A retry must fail the same way (bad SQL, a schema conflict): the step fails at once.
        #[serde(default)]
        permanent: bool,
    },
    /// The worker lost the item through no fault of the job (spot reclaim, shutdown): does not
    /// count against the item.
    Interrupted {
        /// Why.
        reason: String,
    },
}

/// Where a worker runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Worker id (instance id, or host and pid).
    pub id: String,
    /// EC2 instance type, when on EC2.
    #[serde(default)]
    pub instance_type: Option<String>,
    /// Availability zone, when on EC2.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// CPU architecture.
    pub arch: String,
    /// Items the worker runs at once.
    #[serde(default = "one_slot")]
    pub slots: usize,
    /// When its machine's kernel started (Unix seconds, rounded up; EC2 only): about when the
    /// instance began running, where EC2's billing starts.
    #[serde(default)]
    pub booted_at: Option<u64>,
}

fn one_slot() -> usize {
    1
}

/// What a worker sends back after each attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    /// The run.
    pub run_id: RunId,
    /// The step.
    pub step: StepName,
    /// The item.
    pub item: WorkItemId,
    /// How many times the item's message had been received.
    pub receive_count: u32,
    /// The worker.
    pub worker: WorkerInfo,
    /// When the attempt started (Unix seconds, the worker's clock).
    #[serde(default)]
    pub started_at: f64,
    /// When it ended.
    #[serde(default)]
    pub finished_at: f64,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The commit record of an item, written after its outputs are published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The item.
    pub item: WorkItemId,
    /// The run that committed it.
    #[serde(default)]
    pub run_id: Option<RunId>,
    /// The step.
    pub step: StepName,
    /// The partition key.
    pub partition: Option<PartitionKey>,
    /// Every object the item published, by output name.
    pub files: BTreeMap<String, Vec<Location>>,
    /// What the item did.
    pub stats: ItemStats,
}

pub use runner_types::stable_hash;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_separates_parts() {
        assert_eq!(stable_hash(&["a", "b"]), stable_hash(&["a", "b"]));
        assert_ne!(stable_hash(&["ab", ""]), stable_hash(&["a", "b"]));
        assert_eq!(stable_hash(&[]).len(), 16);
    }
}
