//! Measuring what an item did: counts from the extra plans the engine runs beside the output
//! sinks, and each written output's rows, bytes, files and schema.

use std::path::Path;

use polars::prelude::*;
use runner_types::OutputStats;

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
            *out.rows_by_hive_key.entry(partition.to_string()).or_default() += rows;
        }
        out.files.push((rel, rows));
    }
    Ok(out)
}
