//! Leases in S3: `{prefix}/leases/{name}.json` holds the holder and when its lease expires.
//! Taking one is a put with `If-None-Match: *`; renewing it, or taking over an expired one, is a
//! put with `If-Match` on the ETag last seen, so of two runs racing for it exactly one wins, and
//! a holder that finds its ETag changed knows it lost the lease. Releasing deletes it, again
//! only if the ETag is still the holder's.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use super::{Holder, Lease, LeaseError, Leases, Result};

/// Leases as objects under an S3 prefix.
#[derive(Debug)]
pub struct S3Leases {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    ttl: Duration,
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// What a conditional call came to.
enum Put {
    Done(String),
    Conflict,
}

impl S3Leases {
    /// Leases under `s3://bucket/prefix/leases/`, each lasting `ttl` unless renewed.
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self { client, bucket: bucket.into(), prefix: prefix.into().trim_matches('/').to_string(), ttl }
    }

    fn key(&self, name: &str) -> String {
        let rel = format!("leases/{name}.json");
        if self.prefix.is_empty() { rel } else { format!("{}/{rel}", self.prefix) }
    }

    fn body(&self, holder: &Holder) -> Vec<u8> {
        let mut h = holder.clone();
        h.expires_at = now() + self.ttl.as_secs_f64();
        serde_json::to_vec(&h).unwrap_or_default()
    }

    fn fail<E>(operation: &'static str, name: &str, e: &SdkError<E>) -> LeaseError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        LeaseError::Backend { operation, name: name.to_string(), detail: DisplayErrorContext(e).to_string() }
    }

    fn conflict<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
        let status = e.raw_response().map(|r| r.status().as_u16());
        // 412: the condition failed; 409: a concurrent conditional write won; 404: an
        // `If-Match` on an object that is gone.
        matches!(status, Some(412 | 409 | 404))
            || e.as_service_error()
                .and_then(ProvideErrorMetadata::code)
                .is_some_and(|c| matches!(c, "PreconditionFailed" | "ConditionalRequestConflict" | "NoSuchKey"))
    }

    /// A put: new (`If-None-Match: *`) when `if_match` is `None`, else over that ETag.
    async fn put(&self, name: &str, body: Vec<u8>, if_match: Option<&str>) -> Result<Put> {
        let mut req = self.client.put_object().bucket(&self.bucket).key(self.key(name)).body(ByteStream::from(body));
        req = match if_match {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        match req.send().await {
            Ok(out) => Ok(Put::Done(out.e_tag().unwrap_or_default().to_string())),
            Err(e) if Self::conflict(&e) => Ok(Put::Conflict),
            Err(e) => Err(Self::fail("put", name, &e)),
        }
    }

    /// The lease object and its ETag, if there is one.
    async fn read(&self, name: &str) -> Result<Option<(Holder, String)>> {
        match self.client.get_object().bucket(&self.bucket).key(self.key(name)).send().await {
            Ok(out) => {
                let etag = out.e_tag().unwrap_or_default().to_string();
                let bytes = out.body.collect().await.map_err(|e| LeaseError::Backend {
                    operation: "read",
                    name: name.to_string(),
                    detail: e.to_string(),
                })?;
                let holder = serde_json::from_slice(&bytes.into_bytes()).map_err(|e| LeaseError::Backend {
                    operation: "read",
                    name: name.to_string(),
                    detail: format!("the lease object is not a holder: {e}"),
                })?;
                Ok(Some((holder, etag)))
            }
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(None),
            Err(e) => Err(Self::fail("read", name, &e)),
        }
    }
}

#[async_trait]
impl Leases for S3Leases {
    async fn acquire(&self, name: &str, holder: &Holder) -> Result<Lease> {
        // Twice at most: a lease released or expired between our read and our put is tried
        // once more, then whoever holds it is named.
        for _ in 0..3 {
            if let Put::Done(version) = self.put(name, self.body(holder), None).await? {
                return Ok(Lease { name: name.to_string(), version });
            }
            let Some((current, etag)) = self.read(name).await? else { continue };
            if current.expires_at > now() {
                return Err(LeaseError::Held { name: name.to_string(), holder: Box::new(current) });
            }
            // Its holder stopped renewing: take it over, unless someone else just did.
            tracing::warn!("taking over the expired lease on {name} from {current}");
            if let Put::Done(version) = self.put(name, self.body(holder), Some(&etag)).await? {
                return Ok(Lease { name: name.to_string(), version });
            }
        }
        match self.read(name).await? {
            Some((current, _)) => Err(LeaseError::Held { name: name.to_string(), holder: Box::new(current) }),
            None => Err(LeaseError::Backend {
                operation: "acquire",
                name: name.to_string(),
                detail: "the lease kept changing under three attempts".into(),
            }),
        }
    }

    async fn renew(&self, lease: &mut Lease, holder: &Holder) -> Result<()> {
        match self.put(&lease.name, self.body(holder), Some(&lease.version)).await? {
            Put::Done(version) => {
                lease.version = version;
                Ok(())
            }
            Put::Conflict => match self.read(&lease.name).await? {
                // Our own write changed the ETag: an attempt that timed out on our side while
                // S3 stalled, and landed later (then the retry's If-Match failed). Still ours.
                Some((current, etag)) if current.same_holder(holder) => {
                    tracing::info!(
                        "a renewal of the lease on {} landed unheard; the lease is still this run's",
                        lease.name
                    );
                    lease.version = etag;
                    Ok(())
                }
                now_held => Err(LeaseError::Lost {
                    name: lease.name.clone(),
                    holder: now_held.map_or("nobody".to_string(), |(h, _)| h.to_string()),
                }),
            },
        }
    }

    async fn release(&self, lease: Lease) -> Result<()> {
        let req = self.client.delete_object().bucket(&self.bucket).key(self.key(&lease.name)).if_match(&lease.version);
        match req.send().await {
            Ok(_) => Ok(()),
            // Someone took it over: it is theirs to release.
            Err(e) if Self::conflict(&e) => Ok(()),
            Err(e) => Err(Self::fail("release", &lease.name, &e)),
        }
    }

    fn renew_every(&self) -> Duration {
        self.ttl / 3
    }
}
