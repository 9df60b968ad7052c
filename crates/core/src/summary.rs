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

/// One output's totals over all of a step's items, and each run partition's part of them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OutputSummary {
    /// The output directory per run partition (the key is empty for an unpartitioned run).
    pub locations: BTreeMap<String, Location>,
    /// What all the items wrote.
    #[serde(flatten)]
    pub whole: OutputFigures,
    /// What each run partition's items wrote (the key is a Dagster partition key; empty for
    /// an unpartitioned run): what a ranged run reports for each partition.
    pub by_partition: BTreeMap<String, OutputFigures>,
    /// The output's table after the step's commit, when it is kept as one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableSummary>,
}

/// An output's table after its step's commit: what Dagster shows of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableSummary {
    /// Its name: `database.table` when it is in a catalog, else the table's own name.
    pub name: String,
    /// Its root (`s3://bucket/prefix/table`, or a local path).
    pub uri: String,
    /// The table's version once the step committed (or found nothing to commit).
    pub version: u64,
    /// The step made that version; otherwise the table held its files already.
    pub new_version: bool,
    /// Files the commit added.
    pub files_added: usize,
    /// Files it removed (the ones its files replace).
    pub files_removed: usize,
    /// Columns added to the table's schema.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns_added: Vec<String>,
    /// Columns and their Delta types.
    pub schema: Vec<(String, String)>,
    /// Rows the table holds for each run partition (the key is empty for an unpartitioned
    /// run), from its files' statistics.
    pub rows_by_partition: BTreeMap<String, u64>,
    /// Where it is registered (`glue`), if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
}

/// What some items wrote to an output. Field names are the Dagster metadata keys they are
/// reported under.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OutputFigures {
    /// Rows.
    pub rows: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Files.
    pub files: u64,
    /// Columns and types, as the first item wrote them.
    pub schema: Vec<(String, String)>,
    /// Rows per hive key of the output (`day=2024-01-02`): its directories, not Dagster
    /// partitions. A partition's keys are what a check of that partition reads.
    pub rows_by_hive_key: BTreeMap<String, u64>,
}

impl OutputFigures {
    fn add(&mut self, o: &runner_types::OutputStats) {
        self.rows += o.rows;
        self.bytes_out += o.bytes;
        self.files += o.files.len() as u64;
        if self.schema.is_empty() {
            self.schema = o.schema.clone();
        }
        for (k, v) in &o.rows_by_hive_key {
            *self.rows_by_hive_key.entry(k.clone()).or_default() += v;
        }
    }
}

/// One run partition's part of a step: its items and what they read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepPart {
    /// Items.
    pub items: usize,
    /// Items committed by an earlier run.
    pub items_already_committed: usize,
    /// Rows read.
    pub rows_in: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Rows dropped by `skip`.
    pub rows_dropped: u64,
    /// Rows quarantined.
    pub rows_quarantined: u64,
    /// Seconds of every attempt this run made (committed, failed or handed back): how a
    /// ranged run's bill is split.
    pub attempt_seconds: f64,
    /// The ids of the items whose commits make its outputs (an id follows the step's
    /// definition and its inputs' versions): its own data version, whatever range it ran in.
    #[serde(skip)]
    pub committed_items: std::collections::BTreeSet<String>,
}

/// What a step did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepSummary {
    /// The step.
    pub name: StepName,
    /// Items in the step.
    pub items: usize,
    /// Items committed by an earlier run.
    pub items_already_committed: usize,
    /// Failed attempts that were retried.
    pub retries: u32,
    /// Items handed back by a worker (spot notices, shutdowns) and run again.
    pub interruptions_survived: u32,
    /// Seconds the step took.
    pub seconds: f64,
    /// Sum of the items' engine time.
    pub item_seconds: f64,
    /// The largest item's peak resident size.
    pub peak_item_rss_bytes: u64,
    /// Items this run committed in a warm process, one that had run an item before.
    #[serde(default)]
    pub items_warm_started: usize,
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
    /// The step's figures for each run partition (the key is empty for an unpartitioned run).
    #[serde(default)]
    pub by_partition: BTreeMap<String, StepPart>,
    /// Attempts that committed nothing (failed, or handed back), with the worker that ran
    /// them: their time is in the bill all the same.
    #[serde(default)]
    pub lost_attempts: Vec<LostAttempt>,
    /// Per output.
    pub outputs: BTreeMap<String, OutputSummary>,
    /// What the items measured for each check (by check name, then run partition).
    #[serde(skip)]
    pub check_parts: BTreeMap<String, BTreeMap<String, CheckParts>>,
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
            let rows_in = s.rows_in.values().sum::<u64>();
            let rows_dropped = s.rows_dropped.values().sum::<u64>();
            let rows_quarantined = s.rows_quarantined.values().sum::<u64>();
            self.rows_in += rows_in;
            self.bytes_in += s.bytes_in;
            self.bytes_out += s.bytes_out;
            self.rows_dropped += rows_dropped;
            self.rows_quarantined += rows_quarantined;
            self.item_seconds += s.wall_seconds;
            self.peak_item_rss_bytes = self.peak_item_rss_bytes.max(s.peak_rss_bytes.unwrap_or(0));
            let pkey = item.partition.as_ref().map(|p| p.key.to_string()).unwrap_or_default();
            let part = self.by_partition.entry(pkey.clone()).or_default();
            part.items += 1;
            part.rows_in += rows_in;
            part.bytes_in += s.bytes_in;
            part.rows_dropped += rows_dropped;
            part.rows_quarantined += rows_quarantined;
            part.committed_items.insert(item.id.to_string());
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
                out.whole.add(o);
                out.by_partition.entry(pkey.clone()).or_default().add(o);
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
