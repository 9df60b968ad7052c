//! Finding the Parquet files under a local directory (an item's scratch output, or an output
//! being checked).

use std::path::{Path, PathBuf};

/// Parquet files under `root`, as paths relative to it, sorted. With `skip_hidden`, anything
/// under a name starting with `.` or `_` (temporary files, `_quarantine/`) is left out.
pub fn parquet_files(root: &Path, skip_hidden: bool) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(root, root, skip_hidden, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(root: &Path, dir: &Path, skip_hidden: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if skip_hidden && (name.starts_with('.') || name.starts_with('_')) {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, skip_hidden, out)?;
        } else if name.ends_with(".parquet") {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
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
