//! Per-item statistics, returned as structured data: rows and bytes in and out, rows set aside,
//! time, memory, and for each output its files, schema and per-partition row counts.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

/// What one item did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemStats {
    /// Rows read, per input.
    pub rows_in: BTreeMap<String, u64>,
    /// Files read, per input.
    pub files_in: BTreeMap<String, u64>,
    /// Bytes read (file sizes, compressed).
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Rows dropped by the `skip` policy, per input.
    pub rows_dropped: BTreeMap<String, u64>,
    /// Rows set aside by the `quarantine` policy, per input.
    pub rows_quarantined: BTreeMap<String, u64>,
    /// Per output.
    pub outputs: BTreeMap<String, OutputStats>,
    /// Time spent in the engine.
    pub wall_seconds: f64,
    /// Peak resident memory of the item's process, when measured.
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
}

/// What one item wrote to one output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputStats {
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files, relative to the output directory, with their rows.
    pub files: Vec<(String, u64)>,
    /// Column names and types.
    pub schema: Vec<(String, String)>,
    /// Rows per hive partition directory (`day=2024-01-02`), when partitioned.
    pub partitions: BTreeMap<String, u64>,
}

/// The value of a one-row count column; 0 when the column is absent.
pub(super) fn count_in(df: &DataFrame, column: &str) -> u64 {
    df.column(column).ok().and_then(|c| c.get(0).ok()).and_then(|v| v.extract::<u64>()).unwrap_or(0)
}

pub(super) fn single_count(df: &DataFrame) -> u64 {
    df.columns().first().and_then(|c| c.get(0).ok()).and_then(|v| v.extract::<u64>()).unwrap_or(0)
}

/// Reads back what was written (Parquet footers only).
pub(super) fn output_stats(dir: &Path, schema: &Schema) -> PolarsResult<OutputStats> {
    let mut out = OutputStats {
        schema: schema.iter().map(|(n, d)| (n.to_string(), d.to_string())).collect(),
        ..Default::default()
    };
    for rel in crate::files::parquet_files(dir, false)? {
        let rel = rel.to_string_lossy().into_owned();
        let path = dir.join(&rel);
        let mut file = std::fs::File::open(&path)?;
        let rows = ParquetReader::new(&mut file).num_rows()? as u64;
        out.bytes += std::fs::metadata(&path)?.len();
        out.rows += rows;
        if let Some((partition, _)) = rel.rsplit_once('/') {
            *out.partitions.entry(partition.to_string()).or_default() += rows;
        }
        out.files.push((rel, rows));
    }
    Ok(out)
}
