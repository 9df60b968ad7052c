//! What one work item did, as structured data: rows and bytes in and out, rows set aside, time,
//! memory, and for each output its files, schema and per-hive-directory row counts. The engine
//! fills it, the worker sends it back in its callback, and the manifest keeps it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an item did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemStats {
    /// Rows read per input (set-aside rows included).
    pub rows_in: BTreeMap<String, u64>,
    /// Files read per input.
    pub files_in: BTreeMap<String, u64>,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Rows dropped per input (`skip`).
    pub rows_dropped: BTreeMap<String, u64>,
    /// Rows quarantined per input.
    pub rows_quarantined: BTreeMap<String, u64>,
    /// Per output.
    pub outputs: BTreeMap<String, OutputStats>,
    /// Engine time.
    pub wall_seconds: f64,
    /// Peak resident size of the item's process (filled by the worker).
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
    /// The item ran in a warm process, one that had run an item before (filled by the worker).
    #[serde(default)]
    pub warm_start: bool,
    /// What each of the job's checks on this step's outputs measured on this item's rows, by
    /// check name: checks are summed over a partition's items where the data was written,
    /// instead of reading the outputs again.
    #[serde(default)]
    pub checks: BTreeMap<String, CheckPart>,
}

/// One item's share of a check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckPart {
    /// Rows the item wrote to the checked output.
    pub rows: u64,
    /// Nulls in the checked column (`no_nulls`).
    #[serde(default)]
    pub nulls: Option<u64>,
    /// Distinct keys among the item's rows (`unique`); the distinct keys themselves (the key
    /// columns only) are published beside the output under `_checks/{check}/`, so keys repeated
    /// across items are found without reading the output.
    #[serde(default)]
    pub distinct_keys: Option<u64>,
}

/// What an item wrote to one output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputStats {
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// Files (relative path, or URI once published) and their rows.
    pub files: Vec<(String, u64)>,
    /// Columns and their types.
    pub schema: Vec<(String, String)>,
    /// Rows per hive key of the output (`day=2024-01-02`): its directories, not Dagster
    /// partitions. (Manifests written before the rename call it `partitions`.)
    #[serde(alias = "partitions")]
    pub rows_by_hive_key: BTreeMap<String, u64>,
    /// For an output kept as a table: what its commit needs of the files, read where they were
    /// written. Left out when the output is no table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableFiles>,
}

/// What a table commit needs of one item's files of an output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableFiles {
    /// The table schema the files make, partition columns included, as Delta's schema JSON.
    pub schema: String,
    /// The partition columns, in order.
    pub partition_columns: Vec<String>,
    /// One per file, in the order of [`OutputStats::files`].
    pub files: Vec<TableFile>,
}

/// One written file, as a table's log lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableFile {
    /// Bytes.
    pub size: u64,
    /// Its partition values (null for a null key), as Delta writes them.
    pub partition_values: BTreeMap<String, Option<String>>,
    /// Delta's per-file statistics JSON (`numRecords`, `minValues`, `maxValues`, `nullCount`),
    /// from the file's Parquet footer.
    pub stats: String,
}
