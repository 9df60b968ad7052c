//! Finding the Parquet files under a local directory (an item's scratch output, or an output
//! being checked).

use std::path::{Path, PathBuf};

use walkdir::{DirEntry, WalkDir};

/// The Parquet files under `root`, relative to it and sorted. With `skip_hidden`, files and
/// directories whose names start with `.` or `_` (temporary files, `_quarantine`) are left out.
/// A missing `root` has none.
pub fn parquet_files(root: &Path, skip_hidden: bool) -> std::io::Result<Vec<PathBuf>> {
    if !root.exists() {
        return Ok(Vec::new());
    }
    let hidden = |e: &DirEntry| e.depth() > 0 && e.file_name().to_str().is_some_and(|n| n.starts_with(['.', '_']));
    let mut out = Vec::new();
    for entry in WalkDir::new(root).into_iter().filter_entry(|e| !(skip_hidden && hidden(e))) {
        let entry = entry?;
        if entry.file_type().is_file() && entry.file_name().to_string_lossy().ends_with(".parquet") {
            out.push(entry.path().strip_prefix(root).unwrap_or(entry.path()).to_path_buf());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hidden_directories_are_skipped_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        for p in ["day=1/a.parquet", "_quarantine/web/b.parquet", ".tmp/c.parquet", "notes.txt"] {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        let visible = super::parquet_files(dir.path(), true).unwrap();
        assert_eq!(visible, [std::path::PathBuf::from("day=1/a.parquet")]);
        assert_eq!(super::parquet_files(dir.path(), false).unwrap().len(), 3);
    }
}
