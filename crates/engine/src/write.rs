//! Output sinks: Parquet with the spec's compression and row-group size, one file per item, or
//! hive-partitioned (`key=value/` directories, keys kept out of the files as Hive does); either
//! way split into files of at most `max_rows_per_file` rows when the spec sets it.

use std::path::Path;
use std::sync::Arc;

use polars::polars_utils::compression::{GzipLevel, ZstdLevel};
use polars::prelude::*;

use runner_spec::{OutputCompression, OutputSpec};

fn options(output: Option<&OutputSpec>) -> PolarsResult<ParquetWriteOptions> {
    let mut o = ParquetWriteOptions::default();
    if let Some(output) = output {
        let level = output.compression_level;
        o.compression = match output.compression {
            OutputCompression::Zstd => ParquetCompression::Zstd(level.map(ZstdLevel::try_new).transpose()?),
            OutputCompression::Gzip => {
                ParquetCompression::Gzip(level.map(|l| GzipLevel::try_new(l as u8)).transpose()?)
            }
            OutputCompression::Snappy => ParquetCompression::Snappy,
            OutputCompression::Lz4 => ParquetCompression::Lz4Raw,
            OutputCompression::Uncompressed => ParquetCompression::Uncompressed,
        };
        o.row_group_size = output.row_group_size;
    }
    Ok(o)
}

/// A plan that writes `frame` to one Parquet file.
pub(super) fn sink_file(frame: LazyFrame, path: &Path) -> PolarsResult<LazyFrame> {
    frame.sink(
        SinkDestination::File { target: SinkTarget::Path(PlRefPath::new(path.to_string_lossy().as_ref())) },
        FileWriteFormat::Parquet(Arc::new(options(None)?)),
        UnifiedSinkArgs { mkdir: true, ..Default::default() },
    )
}

/// A plan that writes an output under `dir`.
pub(super) fn sink(frame: LazyFrame, output: &OutputSpec, dir: &Path, file_tag: &str) -> PolarsResult<LazyFrame> {
    let format = FileWriteFormat::Parquet(Arc::new(options(Some(output))?));
    let args = UnifiedSinkArgs { mkdir: true, ..Default::default() };
    let max_rows_per_file = match output.max_rows_per_file {
        Some(n) => IdxSize::try_from(n).unwrap_or(IdxSize::MAX),
        None => IdxSize::MAX,
    };
    if output.partition_by.is_empty() && output.max_rows_per_file.is_none() {
        let path = dir.join(format!("{file_tag}.parquet"));
        return frame.sink(
            SinkDestination::File { target: SinkTarget::Path(PlRefPath::new(path.to_string_lossy().as_ref())) },
            format,
            args,
        );
    }
    // With no keys, Polars' file-size strategy is a partitioning into files of bounded size.
    let partition_strategy = if output.partition_by.is_empty() {
        PartitionStrategy::FileSize
    } else {
        PartitionStrategy::Keyed {
            keys: output.partition_by.iter().map(|k| col(k.as_str())).collect(),
            include_keys: false,
            keys_pre_grouped: false,
        }
    };
    let dest = SinkDestination::Partitioned {
        base_path: PlRefPath::new(dir.to_string_lossy().as_ref()),
        file_path_provider: None,
        partition_strategy,
        max_rows_per_file,
        approximate_bytes_per_file: u64::MAX,
    };
    frame.sink(dest, format, args)
}
