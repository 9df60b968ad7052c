//! S3 (or any S3-compatible store) as an object store. A `PutObject` or a completed multipart
//! upload is atomic: readers see the old object or the whole new one. Conditional creation uses
//! `If-None-Match: *`.

use std::path::Path;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::{ObjectMeta, Result, Storage, StorageError, check_key};

/// Files above this size are uploaded in parts.
const MULTIPART_THRESHOLD: u64 = 64 * 1024 * 1024;
const PART_SIZE: u64 = 32 * 1024 * 1024;

/// How long `put_if_absent` waits before each retry of a 409 `ConditionalRequestConflict`.
const CONFLICT_RETRY_WAITS: [std::time::Duration; 5] = [
    std::time::Duration::from_millis(50),
    std::time::Duration::from_millis(100),
    std::time::Duration::from_millis(200),
    std::time::Duration::from_millis(400),
    std::time::Duration::from_millis(800),
];

/// Whether S3 refused a conditional write because another one to the key was in flight (409
/// `ConditionalRequestConflict`): AWS says to retry it. A 412 (the key exists) is an answer.
pub(crate) fn conditional_conflict(code: Option<&str>, status: Option<u16>) -> bool {
    code == Some("ConditionalRequestConflict") || (code.is_none() && status == Some(409))
}

/// A store rooted at a bucket (and an optional key prefix).
#[derive(Debug, Clone)]
pub struct S3Storage {
    client: Client,
    bucket: String,
    prefix: String,
    multipart_threshold: u64,
    part_size: u64,
}

impl S3Storage {
    /// A store over `s3://bucket/prefix`.
    pub fn new(client: Client, bucket: String, prefix: String) -> Self {
        let prefix = prefix.trim_matches('/').to_string();
        Self { client, bucket, prefix, multipart_threshold: MULTIPART_THRESHOLD, part_size: PART_SIZE }
    }

    /// Uploads files above `threshold` bytes in parts of `part_size` (S3's minimum is 5 MiB).
    #[must_use]
    pub fn with_multipart(mut self, threshold: u64, part_size: u64) -> Self {
        self.multipart_threshold = threshold;
        self.part_size = part_size.max(5 * 1024 * 1024);
        self
    }

    fn full_key(&self, key: &str) -> Result<String> {
        check_key(key)?;
        Ok(if self.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.prefix) })
    }

    fn strip(&self, full: &str) -> String {
        if self.prefix.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(&format!("{}/", self.prefix)).unwrap_or(full).to_string()
        }
    }

    fn fail<E>(&self, operation: &'static str, key: &str, e: SdkError<E>) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let code = e.as_service_error().and_then(ProvideErrorMetadata::code).unwrap_or_default().to_string();
        let status = e.raw_response().map(|r| r.status().as_u16());
        if matches!(code.as_str(), "NoSuchKey" | "NotFound") || status == Some(404) {
            return StorageError::NotFound { store: self.describe(), key: key.to_string() };
        }
        if code == "PreconditionFailed" || status == Some(412) {
            return StorageError::AlreadyExists { store: self.describe(), key: key.to_string() };
        }
        StorageError::Backend {
            store: self.describe(),
            operation,
            key: key.to_string(),
            detail: DisplayErrorContext(&e).to_string(),
        }
    }

    fn io(&self, operation: &'static str, key: &str, e: impl std::fmt::Display) -> StorageError {
        StorageError::Backend { store: self.describe(), operation, key: key.to_string(), detail: e.to_string() }
    }

    /// One `PutObject`, replacing any object there.
    async fn put(&self, key: &str, full: &str, body: ByteStream) -> Result<()> {
        let request = self.client.put_object().bucket(&self.bucket).key(full).body(body);
        request.send().await.map_err(|e| self.fail("put", key, e)).map(|_| ())
    }

    async fn get(&self, key: &str) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput> {
        let full = self.full_key(key)?;
        self.client.get_object().bucket(&self.bucket).key(&full).send().await.map_err(|e| self.fail("get", key, e))
    }

    async fn multipart(&self, key: &str, full: &str, src: &Path, size: u64) -> Result<()> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .send()
            .await
            .map_err(|e| self.fail("create_multipart_upload", key, e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_string();
        let result = async {
            let mut parts = Vec::new();
            let mut offset = 0;
            let mut number = 1;
            while offset < size {
                let len = self.part_size.min(size - offset);
                let body = ByteStream::read_from()
                    .path(src)
                    .offset(offset)
                    .length(aws_sdk_s3::primitives::Length::Exact(len))
                    .build()
                    .await
                    .map_err(|e| self.io("upload_part", key, e))?;
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(full)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| self.fail("upload_part", key, e))?;
                parts.push(CompletedPart::builder().part_number(number).set_e_tag(part.e_tag).build());
                offset += len;
                number += 1;
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map_err(|e| self.fail("complete_multipart_upload", key, e))
                .map(|_| ())
        }
        .await;
        if result.is_err() {
            // An abandoned upload is invisible to readers but still billed: abort it, and say
            // so when that fails too (a missing s3:AbortMultipartUpload, say): the bucket's
            // lifecycle rule is then what removes it (runner/AWS.md).
            if let Err(e) =
                self.client.abort_multipart_upload().bucket(&self.bucket).key(full).upload_id(&upload_id).send().await
            {
                tracing::warn!(
                    bucket = %self.bucket,
                    key = %full,
                    "aborting a failed multipart upload failed too; it stays billed until the bucket's lifecycle \
                     rule aborts it: {}",
                    DisplayErrorContext(&e)
                );
            }
        }
        result
    }
}

#[async_trait]
impl Storage for S3Storage {
    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    fn uri(&self, key: &str) -> String {
        format!("{}/{key}", self.describe())
    }

    async fn put_file(&self, key: &str, src: &Path) -> Result<()> {
        let full = self.full_key(key)?;
        let size = tokio::fs::metadata(src).await.map_err(|e| self.io("put", key, e))?.len();
        if size > self.multipart_threshold {
            return self.multipart(key, &full, src, size).await;
        }
        let body = ByteStream::from_path(src).await.map_err(|e| self.io("put", key, e))?;
        self.put(key, &full, body).await
    }

    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let full = self.full_key(key)?;
        self.put(key, &full, ByteStream::from(bytes)).await
    }

    async fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let full = self.full_key(key)?;
        // S3 answers 409 ConditionalRequestConflict while a conflicting write to the key is in
        // flight, and says to retry: the retry gets the write through or a 412 (it exists).
        let mut waits = CONFLICT_RETRY_WAITS.iter();
        loop {
            let sent = self.client.put_object().bucket(&self.bucket).key(&full).if_none_match("*");
            match sent.body(ByteStream::from(bytes.clone())).send().await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    let code = e.as_service_error().and_then(ProvideErrorMetadata::code).map(str::to_string);
                    let status = e.raw_response().map(|r| r.status().as_u16());
                    match (conditional_conflict(code.as_deref(), status), waits.next()) {
                        (true, Some(wait)) => tokio::time::sleep(*wait).await,
                        _ => return Err(self.fail("put_if_absent", key, e)),
                    }
                }
            }
        }
    }

    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>> {
        let out = self.get(key).await?;
        let data = out.body.collect().await.map_err(|e| self.io("get", key, e))?;
        Ok(data.into_bytes().to_vec())
    }

    async fn get_to_file(&self, key: &str, dst: &Path) -> Result<()> {
        let out = self.get(key).await?;
        if let Some(parent) = dst.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| self.io("get", key, e))?;
        }
        let mut file = tokio::fs::File::create(dst).await.map_err(|e| self.io("get", key, e))?;
        let mut reader = out.body.into_async_read();
        tokio::io::copy(&mut reader, &mut file).await.map_err(|e| self.io("get", key, e))?;
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let full = self.full_key(key)?;
        match self.client.head_object().bucket(&self.bucket).key(&full).send().await {
            Ok(out) => Ok(Some(ObjectMeta {
                key: key.to_string(),
                size: out.content_length().unwrap_or(0).max(0) as u64,
                version: out.e_tag().unwrap_or_default().trim_matches('"').to_string(),
            })),
            Err(e) => match self.fail("head", key, e) {
                StorageError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let full_prefix = if self.prefix.is_empty() { prefix.to_string() } else { format!("{}/{prefix}", self.prefix) };
        let mut out = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(&full_prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.fail("list", prefix, e))?;
            for obj in page.contents() {
                let Some(k) = obj.key() else { continue };
                out.push(ObjectMeta {
                    key: self.strip(k),
                    size: obj.size().unwrap_or(0).max(0) as u64,
                    version: obj.e_tag().unwrap_or_default().trim_matches('"').to_string(),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn discard_unfinished(&self, prefix: &str) -> Result<Vec<String>> {
        let full_prefix = if self.prefix.is_empty() { prefix.to_string() } else { format!("{}/{prefix}", self.prefix) };
        let mut discarded = Vec::new();
        // Paged by markers (the SDK has no paginator for this call).
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| self.fail("list_multipart_uploads", prefix, e))?;
            for upload in page.uploads() {
                let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else { continue };
                let aborted =
                    self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(id).send().await;
                match aborted {
                    Ok(_) => discarded.push(self.strip(key)),
                    // Completed or aborted meanwhile: nothing is left of it.
                    Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {}
                    Err(e) => return Err(self.fail("abort_multipart_upload", &self.strip(key), e)),
                }
            }
            if !page.is_truncated().unwrap_or(false) {
                break;
            }
            key_marker = page.next_key_marker().map(String::from);
            id_marker = page.next_upload_id_marker().map(String::from);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(discarded)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let full = self.full_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| self.fail("delete", key, e))
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::conditional_conflict;

    #[test]
    fn a_conditional_write_conflict_is_retried_and_an_existing_key_is_an_answer() {
        // S3's documented answers to `PutObject` with `If-None-Match: *`.
        assert!(conditional_conflict(Some("ConditionalRequestConflict"), Some(409)));
        assert!(conditional_conflict(None, Some(409)), "a 409 without a body is the same answer");
        assert!(!conditional_conflict(Some("PreconditionFailed"), Some(412)));
        assert!(!conditional_conflict(Some("OperationAborted"), Some(409)), "another 409 is not this one");
        assert!(!conditional_conflict(Some("AccessDenied"), Some(403)));
    }
}
