//! Object storage behind one trait, with a local-directory and an S3 implementation. Every
//! input, output, manifest and piece of run state goes through it, so the same job runs on a
//! laptop and on a fleet. `conformance` holds the test suite both backends must pass.

#[cfg(feature = "conformance")]
pub mod conformance;
mod glob;
mod local;
mod object_stores;
mod s3;
mod stores;

use std::fmt;
use std::path::Path;

use async_trait::async_trait;

pub use glob::GlobMatcher;
pub use local::LocalStorage;
pub use object_stores::object_store_for;
pub use runner_types::Location;
pub use s3::S3Storage;
pub use stores::{StoreCache, Stores};

/// Storage errors. Each names the object.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object does not exist.
    #[error("{store}: {key} does not exist")]
    NotFound {
        /// The store (`/data`, `s3://bucket/prefix`).
        store: String,
        /// The key.
        key: String,
    },
    /// A conditional create found the object already there.
    #[error("{store}: {key} already exists")]
    AlreadyExists {
        /// The store.
        store: String,
        /// The key.
        key: String,
    },
    /// Any other failure, with the backend's explanation.
    #[error("{store}: {operation} {key}: {detail}")]
    Backend {
        /// The store.
        store: String,
        /// What was being done.
        operation: &'static str,
        /// The key.
        key: String,
        /// The backend's error (with its causes).
        detail: String,
    },
    /// A key that cannot be stored (empty, absolute, `..`).
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why.
        reason: &'static str,
    },
}

/// Result alias.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What a listing returns for each object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key, relative to the store's root, `/`-separated.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Changes whenever the content changes (S3 ETag; size and mtime locally).
    pub version: String,
}

/// An object store rooted at a directory or a bucket prefix.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// Where this store is, for messages (`/data/lake`, `s3://bucket/prefix`).
    fn describe(&self) -> String;

    /// The URI of a key in this store.
    fn uri(&self, key: &str) -> String;

    /// Publishes a local file under `key`, replacing any object there. Readers see the old
    /// object or the whole new one, never a partial one.
    async fn put_file(&self, key: &str, src: &Path) -> Result<()>;

    /// Publishes bytes under `key`, replacing any object there, atomically.
    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<()>;

    /// Creates `key` only if it does not exist; `AlreadyExists` otherwise. Two racing writers:
    /// exactly one wins.
    async fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<()>;

    /// Reads a whole object.
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>>;

    /// Downloads an object to a local file (created with its parents).
    async fn get_to_file(&self, key: &str, dst: &Path) -> Result<()>;

    /// Metadata of one object, or `None`.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>>;

    /// Every object whose key starts with `prefix`, recursively, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Deletes an object. Deleting a missing object succeeds.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Discards the writes under `prefix` that a killed writer never finished (S3's incomplete
    /// multipart uploads, billed until aborted; a local directory's hidden temporary files).
    /// Only for prefixes no one is writing to. Returns the keys they were for.
    async fn discard_unfinished(&self, prefix: &str) -> Result<Vec<String>>;

    /// A local path for the key, when the store is a local directory: readers can then use
    /// the file in place instead of downloading it.
    fn local_path(&self, _key: &str) -> Option<std::path::PathBuf> {
        None
    }
}

/// Checks a key: relative, `/`-separated, no empty, `.` or `..` components.
pub fn check_key(key: &str) -> Result<()> {
    let bad = |reason| Err(StorageError::InvalidKey { key: key.to_string(), reason });
    if key.is_empty() {
        return bad("it is empty");
    }
    if key.starts_with('/') {
        return bad("it starts with `/`");
    }
    if key.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return bad("it has an empty, `.` or `..` component");
    }
    Ok(())
}
