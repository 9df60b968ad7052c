//! A local directory as an object store. Publishing writes a hidden temporary file next to the
//! target and renames it into place, so readers never see a partial object; conditional
//! creation uses `link(2)`, which fails if the target exists.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;

use super::{ObjectMeta, Result, Storage, StorageError, check_key};

/// A store rooted at a directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// A store rooted at `root` (created if missing).
    pub fn new(root: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&root).map_err(|e| StorageError::Backend {
            store: root.display().to_string(),
            operation: "create",
            key: String::new(),
            detail: e.to_string(),
        })?;
        Ok(Self { root })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    fn err(&self, operation: &'static str, key: &str, e: std::io::Error) -> StorageError {
        if e.kind() == std::io::ErrorKind::NotFound {
            StorageError::NotFound { store: self.describe(), key: key.to_string() }
        } else {
            StorageError::Backend { store: self.describe(), operation, key: key.to_string(), detail: e.to_string() }
        }
    }

    fn temp_for(dst: &Path) -> PathBuf {
        let name = dst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let nanos = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        dst.with_file_name(format!(".{name}.tmp-{}-{nanos}", std::process::id()))
    }

    /// Writes `fill` into a synced temporary file beside `dst` and returns its path.
    fn stage(dst: &Path, fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> std::io::Result<PathBuf> {
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = Self::temp_for(dst);
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            fill(&mut file)?;
            file.sync_all()
        })();
        match result {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    fn publish(dst: &Path, fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> std::io::Result<()> {
        let tmp = Self::stage(dst, fill)?;
        std::fs::rename(&tmp, dst).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    fn meta(key: String, md: &std::fs::Metadata) -> ObjectMeta {
        let mtime =
            md.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
        ObjectMeta { key, size: md.len(), version: format!("{}-{mtime}", md.len()) }
    }

    /// Every object under `dir` whose key starts with `prefix`, descending only into
    /// directories that can hold such keys. Names starting with `.` (temporary files of
    /// in-flight writes) are not objects.
    fn walk(&self, dir: &Path, prefix: &str) -> std::io::Result<Vec<ObjectMeta>> {
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let key_of = |path: &Path| path.strip_prefix(&self.root).unwrap_or(path).to_string_lossy().into_owned();
        let relevant = |e: &walkdir::DirEntry| {
            if e.depth() == 0 {
                return true;
            }
            if e.file_name().to_string_lossy().starts_with('.') {
                return false;
            }
            let key = key_of(e.path());
            !e.file_type().is_dir() || prefix.starts_with(&format!("{key}/")) || key.starts_with(prefix)
        };
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(dir).into_iter().filter_entry(relevant) {
            let entry = entry?;
            let key = key_of(entry.path());
            if entry.file_type().is_file() && key.starts_with(prefix) {
                out.push(Self::meta(key, &entry.metadata()?));
            }
        }
        Ok(out)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[async_trait]
impl Storage for LocalStorage {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn uri(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }

    async fn put_file(&self, key: &str, src: &Path) -> Result<()> {
        let dst = self.path(key)?;
        let src = src.to_path_buf();
        blocking(move || {
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // On the same file system, link the finished file in under a hidden name and
            // rename it into place: as atomic as a copy, without copying the bytes.
            let tmp = Self::temp_for(&dst);
            if std::fs::hard_link(&src, &tmp).is_ok() {
                return std::fs::rename(&tmp, &dst).inspect_err(|_| {
                    let _ = std::fs::remove_file(&tmp);
                });
            }
            Self::publish(&dst, |f| {
                let mut input = std::fs::File::open(&src)?;
                std::io::copy(&mut input, f).map(|_| ())
            })
        })
        .await
        .map_err(|e| self.err("put", key, e))
    }

    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let dst = self.path(key)?;
        blocking(move || Self::publish(&dst, |f| f.write_all(&bytes))).await.map_err(|e| self.err("put", key, e))
    }

    async fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let dst = self.path(key)?;
        let result = blocking(move || {
            let tmp = Self::stage(&dst, |f| f.write_all(&bytes))?;
            let linked = std::fs::hard_link(&tmp, &dst);
            let _ = std::fs::remove_file(&tmp);
            linked
        })
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StorageError::AlreadyExists { store: self.describe(), key: key.to_string() })
            }
            Err(e) => Err(self.err("put_if_absent", key, e)),
        }
    }

    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        blocking(move || std::fs::read(path)).await.map_err(|e| self.err("get", key, e))
    }

    async fn get_to_file(&self, key: &str, dst: &Path) -> Result<()> {
        let src = self.path(key)?;
        let dst = dst.to_path_buf();
        blocking(move || {
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(src, dst).map(|_| ())
        })
        .await
        .map_err(|e| self.err("get", key, e))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path(key)?;
        match blocking(move || std::fs::metadata(path)).await {
            Ok(md) if md.is_file() => Ok(Some(Self::meta(key.to_string(), &md))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err("head", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let this = self.clone();
        let p = prefix.to_string();
        let mut out = blocking(move || {
            let start = match p.rfind('/') {
                Some(i) => this.root.join(&p[..i]),
                None => this.root.clone(),
            };
            this.walk(&start, &p)
        })
        .await
        .map_err(|e| self.err("list", prefix, e))?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match blocking(move || std::fs::remove_file(path)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err("delete", key, e)),
        }
    }

    async fn discard_unfinished(&self, prefix: &str) -> Result<Vec<String>> {
        let this = self.clone();
        let p = prefix.to_string();
        blocking(move || {
            let start = match p.rfind('/') {
                Some(i) => this.root.join(&p[..i]),
                None => this.root.clone(),
            };
            let mut discarded = Vec::new();
            if !start.exists() {
                return Ok(discarded);
            }
            for entry in walkdir::WalkDir::new(&start) {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy();
                // `temp_for`'s names: `.{name}.tmp-{pid}-{nanos}`.
                let Some(target) = name.strip_prefix('.').and_then(|n| n.rsplit_once(".tmp-")).map(|(t, _)| t) else {
                    continue;
                };
                let key = entry.path().with_file_name(target);
                let key = key.strip_prefix(&this.root).unwrap_or(&key).to_string_lossy().into_owned();
                if entry.file_type().is_file() && key.starts_with(&p) {
                    std::fs::remove_file(entry.path())?;
                    discarded.push(key);
                }
            }
            Ok(discarded)
        })
        .await
        .map_err(|e: std::io::Error| self.err("discard_unfinished", prefix, e))
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path(key).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unfinished_writes_under_a_prefix_are_discarded_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStorage::new(dir.path().to_path_buf()).unwrap();
        store.put_bytes("out/p=1/part-a.parquet", b"done".to_vec()).await.unwrap();
        // What a writer killed between creating its temporary file and renaming it leaves.
        let dead = LocalStorage::temp_for(&dir.path().join("out/p=1/part-b.parquet"));
        std::fs::write(&dead, b"half").unwrap();
        let elsewhere = LocalStorage::temp_for(&dir.path().join("out/p=2/part-c.parquet"));
        std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
        std::fs::write(&elsewhere, b"half").unwrap();
        assert_eq!(store.discard_unfinished("out/p=1/").await.unwrap(), ["out/p=1/part-b.parquet"]);
        assert!(!dead.exists() && elsewhere.exists());
        assert_eq!(store.get_bytes("out/p=1/part-a.parquet").await.unwrap(), b"done");
    }
}
