//! AWS clients from the standard chains: credentials (env, profile, SSO, web identity,
//! container, IMDS), region, and endpoints (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, ...).
//! The configuration is loaded once, on first use, so local runs never touch it.
//!
//! Every call has a bound: an endpoint that accepts a connection and never answers fails the
//! call instead of hanging it. `SPOTLAKE_AWS_TIMEOUT_SECS` (default 60) is the longest wait for
//! a response; one attempt may take twice that, a call with its retries five times.

use std::time::Duration;

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

/// The longest wait for a response, from `SPOTLAKE_AWS_TIMEOUT_SECS` (default 60 s: above SQS's
/// 20 s long poll).
pub fn response_timeout() -> Duration {
    std::env::var("SPOTLAKE_AWS_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(60), Duration::from_secs_f64)
}

/// Bounds for every call: connecting, waiting for a response, one attempt, and the call with
/// its retries.
fn timeouts() -> aws_config::timeout::TimeoutConfig {
    let wait = response_timeout();
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5).min(wait))
        .read_timeout(wait)
        .operation_attempt_timeout(wait * 2)
        .operation_timeout(wait * 5)
        .build()
}

/// Lazily built AWS clients sharing one configuration.
#[derive(Debug, Default)]
pub struct AwsClients {
    config: OnceCell<SdkConfig>,
}

impl AwsClients {
    /// Nothing is loaded until a client is asked for.
    pub fn new() -> Self {
        Self::default()
    }

    /// Clients for an explicit endpoint with static credentials (tests against moto).
    pub async fn for_endpoint(endpoint: &str, region: &str) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(timeouts())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(region.to_string()))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "static"))
            .load()
            .await;
        let cell = OnceCell::new();
        let _ = cell.set(config);
        Self { config: cell }
    }

    pub(crate) async fn sdk(&self) -> &SdkConfig {
        self.config
            .get_or_init(|| async {
                aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts()).load().await
            })
            .await
    }

    /// True when a custom endpoint is configured (moto, MinIO, LocalStack...).
    pub async fn custom_endpoint(&self) -> bool {
        self.sdk().await.endpoint_url().is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL").is_some()
    }

    /// The endpoint S3 requests go to when it is not AWS's own: `AWS_ENDPOINT_URL_S3`, then the
    /// configuration's (`AWS_ENDPOINT_URL`, or the one given to [`Self::for_endpoint`]).
    pub async fn s3_endpoint(&self) -> Option<String> {
        match std::env::var("AWS_ENDPOINT_URL_S3") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => self.sdk().await.endpoint_url().map(str::to_string),
        }
    }

    /// The credentials chain's provider, for clients that are not the SDK's (`object_store`).
    pub async fn credentials_provider(&self) -> Option<aws_credential_types::provider::SharedCredentialsProvider> {
        self.sdk().await.credentials_provider()
    }

    /// A Glue Data Catalog client (registering tables for Athena).
    pub async fn glue(&self) -> aws_sdk_glue::Client {
        aws_sdk_glue::Client::new(self.sdk().await)
    }

    /// The configured region, if any.
    pub async fn region(&self) -> Option<String> {
        self.sdk().await.region().map(|r| r.to_string())
    }

    /// An S3 client; path-style addressing when the endpoint is custom (S3-compatible stores
    /// need it).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let path_style = self.custom_endpoint().await;
        let conf = aws_sdk_s3::config::Builder::from(self.sdk().await).force_path_style(path_style).build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// An SQS client.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(self.sdk().await)
    }

    /// A Price List client (pinned to `us-east-1`, where the Price List is served).
    pub async fn pricing(&self) -> aws_sdk_pricing::Client {
        crate::prices::price_list::client(self.sdk().await)
    }

    /// An EC2 client.
    pub async fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(self.sdk().await)
    }

    /// An IAM client (preflight reads the instance profile and the fleet's role).
    pub async fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(self.sdk().await)
    }
}
