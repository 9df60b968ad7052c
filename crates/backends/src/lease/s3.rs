//! Leases in S3: `{prefix}/leases/{name}.json` holds the holder and when its lease expires.
//! Taking one is a put with `If-None-Match: *`; renewing it, or taking over an expired one, is a
//! put with `If-Match` on the ETag last seen, so of two runs racing for it exactly one wins, and
//! a holder that finds its ETag changed knows it lost the lease. Releasing deletes it, again
//! only if the ETag is still the holder's. Expiry is judged from S3's stamp of the last write
//! (the object's `Last-Modified`) plus the lease's time to live, against the reader's clock; not
//! from an expiry the holder computed with its own clock (a holder whose clock runs an hour fast
//! would hold a dead lease an hour longer). The reader's clock still counts: NTP-synchronised
//! hosts are within a second.

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
        h.ttl_secs = Some(self.ttl.as_secs_f64());
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

    /// The lease object, its ETag and whether it has expired, if there is one.
    async fn read_judged(&self, name: &str) -> Result<Option<(Holder, String, bool)>> {
        match self.client.get_object().bucket(&self.bucket).key(self.key(name)).send().await {
            Ok(out) => {
                let etag = out.e_tag().unwrap_or_default().to_string();
                let written = out.last_modified().and_then(|t| t.as_secs_f64().into());
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
                let expired = expired(&holder, written, now());
                Ok(Some((holder, etag, expired)))
            }
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(None),
            Err(e) => Err(Self::fail("read", name, &e)),
        }
    }

    /// The lease object and its ETag, if there is one.
    async fn read(&self, name: &str) -> Result<Option<(Holder, String)>> {
        Ok(self.read_judged(name).await?.map(|(h, etag, _)| (h, etag)))
    }
}

/// Whether a lease has expired at `now` (Unix seconds, this host's clock): `written` (S3's
/// `Last-Modified`, S3's clock) plus its time to live. The holder's own clock plays no part; a
/// lease from an older runner, without a time to live, is judged by its `expires_at`. S3 stamps
/// whole seconds, so a lease is given one more second.
pub(crate) fn expired(holder: &Holder, written: Option<f64>, now: f64) -> bool {
    match (holder.ttl_secs, written) {
        (Some(ttl), Some(written)) => now > written + ttl + 1.0,
        _ => holder.expires_at <= now,
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
            let Some((current, etag, expired)) = self.read_judged(name).await? else { continue };
            if !expired {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(expires_at: f64, ttl_secs: Option<f64>) -> Holder {
        Holder {
            run_id: "r".into(),
            dagster_run_id: None,
            host: "h".into(),
            pid: 1,
            started_at: "2026-12-07T00:00:00Z".into(),
            expires_at,
            ttl_secs,
        }
    }

    #[test]
    fn expiry_is_judged_by_s3s_write_time_not_the_holders_clock() {
        // A holder whose clock ran an hour fast wrote an expiry an hour too late; S3 stamped the
        // write at 1000. With a 30 s lease, it is over at 1031 for every reader.
        let fast = holder(1000.0 + 3600.0 + 30.0, Some(30.0));
        assert!(!expired(&fast, Some(1000.0), 1031.0));
        assert!(expired(&fast, Some(1000.0), 1031.5));
        // One whose clock ran an hour slow can't lose a live lease either.
        let slow = holder(1000.0 - 3600.0 + 30.0, Some(30.0));
        assert!(!expired(&slow, Some(1000.0), 1010.0));
        // A lease from an older runner (no time to live) keeps the old rule.
        assert!(expired(&holder(1030.0, None), Some(1000.0), 1030.0));
        assert!(!expired(&holder(1030.0, None), Some(1000.0), 1029.0));
    }
}
