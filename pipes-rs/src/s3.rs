//! S3 access for the context loader and the chunked writer. Requests run on a private
//! single-threaded runtime on their own thread, so callers need no runtime and may even be
//! inside one.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;

use crate::S3Options;
use crate::error::{PipesError, Result};

/// Builds a client from the standard credential, region and endpoint chain
/// (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, profiles, IMDS, ...).
pub(crate) async fn client(options: &S3Options) -> Client {
    let wait = options.response_timeout;
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5).min(wait))
        .read_timeout(wait)
        .operation_attempt_timeout(wait * 2)
        .operation_timeout(wait * 5)
        .build();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts).load().await;
    // A custom endpoint is almost always an S3-compatible store (MinIO, moto, Ceph) that only
    // understands path-style requests; AWS itself accepts them too.
    let endpoint_is_custom = sdk.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let path_style = options.force_path_style.unwrap_or(endpoint_is_custom);
    let config = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(path_style).build();
    Client::from_conf(config)
}

pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// Runs `f` to completion on a fresh thread with its own runtime.
fn on_private_runtime<T, F, Fut>(f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: std::future::Future<Output = Result<T>>,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = runtime().map_err(PipesError::Write)?;
                rt.block_on(f())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(PipesError::InvalidValue {
                    what: "S3 request".into(),
                    detail: "the request thread panicked".into(),
                })
            })
    })
}

/// Downloads one object.
pub(crate) fn get_object(options: &S3Options, bucket: &str, key: &str) -> Result<Vec<u8>> {
    on_private_runtime(|| async {
        let fail = |detail: String| PipesError::S3 {
            operation: "GetObject",
            bucket: bucket.to_string(),
            key: key.to_string(),
            detail,
        };
        let client = client(options).await;
        let object = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| fail(DisplayErrorContext(&e).to_string()))?;
        let body = object.body.collect().await.map_err(|e| fail(e.to_string()))?;
        Ok(body.into_bytes().to_vec())
    })
}

/// Uploads one object.
pub(crate) async fn put_object(client: &Client, bucket: &str, key: &str, body: Vec<u8>) -> Result<()> {
    client.put_object().bucket(bucket).key(key).body(ByteStream::from(body)).send().await.map(|_| ()).map_err(|e| {
        PipesError::S3 {
            operation: "PutObject",
            bucket: bucket.to_string(),
            key: key.to_string(),
            detail: DisplayErrorContext(&e).to_string(),
        }
    })
}
