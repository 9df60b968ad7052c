//! Reading what a run wrote: an output's data files (not `_`-prefixed quarantine or check
//! folders, nor hidden scratch), scanned with their hive keys.

use std::path::{Path, PathBuf};

use polars::prelude::*;

/// The Parquet data files under `dir`.
pub fn data_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            data_files(&entry.path(), out);
        } else if name.ends_with(".parquet") {
            out.push(entry.path());
        }
    }
}

/// Every row of an output, hive keys included.
pub fn scan_output(dir: &Path) -> LazyFrame {
    let mut files = Vec::new();
    data_files(dir, &mut files);
    assert!(!files.is_empty(), "no output files under {}", dir.display());
    let paths: Vec<PlRefPath> = files.iter().map(|p| PlRefPath::new(p.to_string_lossy().as_ref())).collect();
    LazyFrame::scan_parquet_files(
        paths.into(),
        ScanArgsParquet { hive_options: HiveOptions::new_enabled(), ..Default::default() },
    )
    .unwrap()
}
