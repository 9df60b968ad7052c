//! Opens the store behind any location, once: one local store for the file system and one S3
//! store per bucket.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::aws::AwsClients;
use crate::plan::Stores;
use crate::storage::{LocalStorage, Location, S3Storage, Storage, StorageError};

/// A cache of open stores.
#[derive(Debug)]
pub struct StoreCache {
    aws: Arc<AwsClients>,
    open: Mutex<HashMap<String, Arc<dyn Storage>>>,
}

impl StoreCache {
    /// A cache using these AWS clients for S3.
    pub fn new(aws: Arc<AwsClients>) -> Self {
        Self { aws, open: Mutex::new(HashMap::new()) }
    }

    /// Reads a whole object by URI.
    pub async fn read(&self, uri: &str) -> Result<Vec<u8>, StorageError> {
        let loc = parse(uri)?;
        self.store(&loc).await?.get_bytes(loc.key()).await
    }

    /// Writes a whole object by URI.
    pub async fn write(&self, uri: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let loc = parse(uri)?;
        self.store(&loc).await?.put_bytes(loc.key(), bytes).await
    }
}

/// Parses an absolute URI (as items carry them).
pub fn parse(uri: &str) -> Result<Location, StorageError> {
    Location::parse_absolute(uri)
        .ok_or_else(|| StorageError::InvalidKey { key: uri.to_string(), reason: "not an absolute path or s3:// URI" })
}

#[async_trait::async_trait]
impl Stores for StoreCache {
    async fn store(&self, location: &Location) -> Result<Arc<dyn Storage>, StorageError> {
        let key = match location {
            Location::Local { root, .. } => format!("file:{}", root.display()),
            Location::S3 { bucket, .. } => format!("s3:{bucket}"),
        };
        let mut open = self.open.lock().await;
        if let Some(s) = open.get(&key) {
            return Ok(s.clone());
        }
        let store: Arc<dyn Storage> = match location {
            Location::Local { root, .. } => Arc::new(LocalStorage::new(root.clone())?),
            Location::S3 { bucket, .. } => Arc::new(S3Storage::new(self.aws.s3().await, bucket.clone(), String::new())),
        };
        open.insert(key, store.clone());
        Ok(store)
    }
}
