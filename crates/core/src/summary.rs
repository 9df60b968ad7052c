//! Summaries: what a step and a run did, added up from the committed items' manifests. They
//! are what the binary prints, writes as `--summary-json`, checks and reports to Dagster.

use std::collections::BTreeMap;

use runner_backends::fleet::Usage;
use runner_backends::storage::{Location, Stores};
use runner_spec::StepSpec;
use runner_types::{RunId, StepName};
use serde::{Deserialize, Serialize};

use crate::run_state::read_manifest;
use crate::wire::WorkItem;

/// Why a summary could not be made.
#[derive(Debug, thiserror::Error)]
#[error("item {item} has no manifest after its step finished")]
pub struct MissingManifest {
    /// The item's label.
    pub item: String,
}

/// One output's totals over all of a step's items.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OutputSummary {
    /// The output directory per run partition (the key is empty for an unpartitioned run).
    pub locations: BTreeMap<String, Location>,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// Files.
    pub files: u64,
    /// Columns and types.
    pub schema: Vec<(String, String)>,
    /// Rows per hive directory (`day=2024-01-02`).
    pub hive_partitions: BTreeMap<String, u64>,
    /// Rows per run partition (the Dagster partition key).
    pub rows_by_partition: BTreeMap<String, u64>,
    /// Bytes written per run partition.
    #[serde(default)]
    pub bytes_by_partition: BTreeMap<String, u64>,
    /// The hive directories (`day=2024-01-02`) each run partition's items wrote: what a check
    /// of that partition reads, rather than every partition ever written.
    #[serde(default)]
    pub hive_dirs_by_partition: BTreeMap<String, std::collections::BTreeSet<String>>,
}

/// What a step did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepSummary {
    /// The step.
    pub name: StepName,
    /// Items in the step.
    pub items: usize,
    /// Items committed by an earlier run.
    pub already_done: usize,
    /// Failed attempts that were retried.
    pub retries: u32,
    /// Items handed back by a worker (spot notices, shutdowns).
    pub interruptions: u32,
    /// Seconds the step took.
    pub seconds: f64,
    /// Sum of the items' engine time.
    pub item_seconds: f64,
    /// Largest item process.
    pub peak_rss_bytes: u64,
    /// Rows read.
    pub rows_in: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Rows dropped by `skip`.
    pub rows_dropped: u64,
    /// Rows quarantined.
    pub rows_quarantined: u64,
    /// Instance types that ran items (with items each).
    pub instance_types: BTreeMap<String, u64>,
    /// Workers that committed items.
    #[serde(default)]
    pub workers: usize,
    /// The most items one worker ran at once (its packing, as it happened).
    #[serde(default)]
    pub peak_items_per_worker: usize,
    /// Capacity units the fleet requested over the step (vCPUs on EC2, processes locally).
    #[serde(default)]
    pub fleet_requested: usize,
    /// Where the step's workers checked in and shipped their logs.
    #[serde(default)]
    pub worker_logs: Option<Location>,
    /// Every instance (or local worker) the step's fleet had, with its life: what the bill is
    /// made from. `None` when the fleet could not be asked (the bill is then unknown, not 0);
    /// empty when nothing was launched.
    #[serde(default)]
    pub usage: Option<Vec<Usage>>,
    /// Seconds of every attempt this run made (committed, failed or handed back) per run
    /// partition (the key is empty for an unpartitioned run): how a ranged run's bill is split.
    #[serde(default)]
    pub attempt_seconds_by_partition: BTreeMap<String, f64>,
    /// Attempts that committed nothing (failed, or handed back), with the worker that ran
    /// them: their time is in the bill all the same.
    #[serde(default)]
    pub lost_attempts: Vec<LostAttempt>,
    /// Per output.
    pub outputs: BTreeMap<String, OutputSummary>,
    /// What the items measured for each check (by check name, then run partition).
    #[serde(skip)]
    pub check_parts: BTreeMap<String, BTreeMap<String, CheckParts>>,
    /// Items per run partition, so a check can tell whether every item measured it.
    #[serde(skip)]
    pub items_by_partition: BTreeMap<String, usize>,
    /// The ids of the items whose commits make the step's outputs for the run's partitions (an
    /// id follows the step's definition and its inputs' versions): the outputs' data version.
    #[serde(skip)]
    pub committed_items: std::collections::BTreeSet<String>,
}

/// A check's parts in one partition: each item's measure, and where the items published the
/// distinct keys of a `unique` check.
#[derive(Debug, Clone, Default)]
pub struct CheckParts {
    /// One per item that measured the check.
    pub parts: Vec<runner_types::CheckPart>,
    /// The items' distinct-key files.
    pub key_files: Vec<Location>,
}

/// An attempt that committed nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LostAttempt {
    /// The item's label.
    pub item: String,
    /// The worker (instance id, or local worker id) that ran it.
    pub worker: String,
    /// `failed` or `interrupted`.
    pub outcome: String,
    /// When it started (Unix seconds, the worker's clock).
    pub started_at: f64,
    /// When it ended.
    pub finished_at: f64,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run.
    pub run_id: RunId,
    /// Steps in order.
    pub steps: Vec<StepSummary>,
    /// Seconds.
    pub seconds: f64,
}

impl StepSummary {
    /// Adds up the manifests of a step's items (all of them: committed by this run or an
    /// earlier one), and lists every output of the step even when it wrote nothing.
    pub async fn add_items(
        &mut self,
        stores: &dyn Stores,
        step: &StepSpec,
        items: &[WorkItem],
    ) -> Result<(), MissingManifest> {
        for item in items {
            let Some(m) = read_manifest(stores, &item.manifest_uri).await else {
                return Err(MissingManifest { item: item.label.clone() });
            };
            let s = &m.stats;
            self.rows_in += s.rows_in.values().sum::<u64>();
            self.bytes_in += s.bytes_in;
            self.bytes_out += s.bytes_out;
            self.rows_dropped += s.rows_dropped.values().sum::<u64>();
            self.rows_quarantined += s.rows_quarantined.values().sum::<u64>();
            self.item_seconds += s.wall_seconds;
            self.peak_rss_bytes = self.peak_rss_bytes.max(s.peak_rss_bytes.unwrap_or(0));
            let pkey = item.partition.as_ref().map(|p| p.key.to_string()).unwrap_or_default();
            *self.items_by_partition.entry(pkey.clone()).or_default() += 1;
            self.committed_items.insert(item.id.to_string());
            for (check, part) in &s.checks {
                let parts = self.check_parts.entry(check.clone()).or_default().entry(pkey.clone()).or_default();
                parts.parts.push(part.clone());
                let marker = format!("/_checks/{check}/");
                parts.key_files.extend(
                    m.files
                        .iter()
                        .filter(|(k, _)| k.starts_with("_checks/"))
                        .flat_map(|(_, files)| files)
                        .filter(|f| f.key().contains(&marker))
                        .cloned(),
                );
            }
            for (name, o) in &s.outputs {
                let out = self.outputs.entry(name.clone()).or_default();
                out.rows += o.rows;
                out.bytes += o.bytes;
                out.files += o.files.len() as u64;
                if out.schema.is_empty() {
                    out.schema = o.schema.clone();
                }
                for (k, v) in &o.partitions {
                    *out.hive_partitions.entry(k.clone()).or_default() += v;
                    out.hive_dirs_by_partition.entry(pkey.clone()).or_default().insert(k.clone());
                }
                *out.rows_by_partition.entry(pkey.clone()).or_default() += o.rows;
                *out.bytes_by_partition.entry(pkey.clone()).or_default() += o.bytes;
                if let Some(loc) = item.outputs.get(name) {
                    out.locations.insert(pkey.clone(), loc.clone());
                }
            }
        }
        for name in step.outputs.keys() {
            self.outputs.entry(name.clone()).or_default();
        }
        Ok(())
    }
}
