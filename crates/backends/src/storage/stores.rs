//! Opens the store behind any location, once: one local store for the file system and one S3
//! store per bucket.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::{LocalStorage, Location, S3Storage, Storage, StorageError};
use crate::aws::AwsClients;

/// Opens stores by location, so that S3 clients are made once per bucket.
#[async_trait::async_trait]
pub trait Stores: Send + Sync {
    /// The store a location is in.
    async fn store(&self, location: &Location) -> Result<Arc<dyn Storage>, StorageError>;

    /// Reads a whole object.
    async fn read(&self, location: &Location) -> Result<Vec<u8>, StorageError> {
        self.store(location).await?.get_bytes(location.key()).await
    }

    /// Writes a whole object, atomically.
    async fn write(&self, location: &Location, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.store(location).await?.put_bytes(location.key(), bytes).await
    }
}

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

    /// The AWS clients behind its S3 stores (for the services that sit beside them: Glue).
    pub fn aws(&self) -> &Arc<AwsClients> {
        &self.aws
    }
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
