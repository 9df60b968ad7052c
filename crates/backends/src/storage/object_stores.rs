//! Locations as the `object_store` crate's stores, for the libraries that speak it (the Delta
//! log): the local file system rooted at `/`, or an S3 bucket signed with the runner's own AWS
//! configuration (its credentials chain with profiles and SSO, its region and endpoint), so a
//! table commit reaches the same bucket with the same identity as every other request.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials as _;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::local::LocalFileSystem;
use object_store::{CredentialProvider, ObjectStore};
use url::Url;

use super::{Location, StorageError};
use crate::aws::AwsClients;

/// A location's store, rooted at its scheme's root (the bucket, or `/`), and the location as a
/// URL into it.
pub async fn object_store_for(
    aws: &Arc<AwsClients>,
    location: &Location,
) -> Result<(Arc<dyn ObjectStore>, Url), StorageError> {
    let bad = |detail: String| StorageError::Backend {
        store: location.to_string(),
        operation: "open as an object store",
        key: location.key().to_string(),
        detail,
    };
    match location {
        Location::Local { root, key } => {
            let dir = std::path::absolute(root.join(key)).map_err(|e| bad(e.to_string()))?;
            let url = Url::from_directory_path(&dir)
                .map_err(|()| bad(format!("{} is not a directory path", dir.display())))?;
            Ok((Arc::new(LocalFileSystem::new()), url))
        }
        Location::S3 { bucket, key } => {
            let url =
                Url::parse(&format!("s3://{bucket}/{}", key.trim_matches('/'))).map_err(|e| bad(e.to_string()))?;
            let mut builder = AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(aws.region().await.unwrap_or_else(|| "us-east-1".into()))
                .with_credentials(Arc::new(SdkCredentials { aws: aws.clone(), cached: Default::default() }));
            if let Some(endpoint) = aws.s3_endpoint().await {
                builder = builder.with_allow_http(endpoint.starts_with("http://")).with_endpoint(endpoint);
            }
            let store = builder.build().map_err(|e| bad(e.to_string()))?;
            Ok((Arc::new(store), url))
        }
    }
}

/// Credentials kept until five minutes before they expire: the chain behind them (SSO, a role)
/// may take a request of its own to renew them.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The runner's AWS credentials chain, as `object_store` asks for credentials.
#[derive(Debug)]
struct SdkCredentials {
    aws: Arc<AwsClients>,
    cached: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

#[async_trait::async_trait]
impl CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((credential, expiry)) = &*cached
            && expiry.is_none_or(|at| at > SystemTime::now() + RENEW_BEFORE)
        {
            return Ok(credential.clone());
        }
        let generic = |detail: String| object_store::Error::Generic { store: "S3", source: detail.into() };
        let provider = self
            .aws
            .credentials_provider()
            .await
            .ok_or_else(|| generic("no AWS credentials are configured (the standard chain found none)".into()))?;
        let found =
            provider.provide_credentials().await.map_err(|e| generic(format!("reading AWS credentials: {e}")))?;
        let credential = Arc::new(AwsCredential {
            key_id: found.access_key_id().to_string(),
            secret_key: found.secret_access_key().to_string(),
            token: found.session_token().map(str::to_string),
        });
        *cached = Some((credential.clone(), found.expiry()));
        Ok(credential)
    }
}
