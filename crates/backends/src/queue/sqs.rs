//! SQS queues. Creation sets the visibility timeout, the largest message (explicitly: the
//! default has changed before) and a redrive policy to the dead-letter queue, and waits out
//! SQS's minute before a deleted name may be used again; receives use long polling and ask for
//! the receive count; listing pages past SQS's 1,000 names.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry};

use super::{Depth, MAX_MESSAGE_BYTES, Queue, QueueBackend, QueueError, QueueOptions, Received, Result, check_size};

/// How long creation waits out SQS's `QueueDeletedRecently` (60 s after a delete, and a margin).
const DELETED_RECENTLY_WAIT: Duration = Duration::from_secs(75);
/// Names per `ListQueues` page (SQS's largest).
const LIST_PAGE: i32 = 1000;

/// The most entries in one `SendMessageBatch`.
const BATCH_ENTRIES: usize = 10;

/// Splits bodies into `SendMessageBatch` calls: at most 10 entries, and at most SQS's message
/// limit in all (a batch's total is capped as one message is).
fn batches(bodies: &[String]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, body) in bodies.iter().enumerate() {
        if i > start && (i - start == BATCH_ENTRIES || bytes + body.len() > MAX_MESSAGE_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += body.len();
    }
    if start < bodies.len() {
        out.push(start..bodies.len());
    }
    out
}

/// Whether SQS refused a name because a queue of that name was deleted in the last minute.
fn deleted_recently<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    e.as_service_error().and_then(ProvideErrorMetadata::code).is_some_and(|c| c.contains("QueueDeletedRecently"))
}

/// Queues in one account and region.
#[derive(Debug, Clone)]
pub struct SqsQueues {
    client: Client,
}

impl SqsQueues {
    /// Queues reached with this client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn fail<E>(queue: &str, operation: &'static str, e: SdkError<E>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = e.as_service_error().and_then(ProvideErrorMetadata::code).unwrap_or_default().to_string();
    if code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist") {
        return QueueError::NoSuchQueue(queue.to_string());
    }
    if code.contains("ReceiptHandleIsInvalid") || code.contains("InvalidParameterValue") && operation != "send" {
        return QueueError::StaleReceipt(queue.to_string());
    }
    QueueError::Backend { queue: queue.to_string(), operation, detail: DisplayErrorContext(&e).to_string() }
}

#[async_trait]
impl QueueBackend for SqsQueues {
    async fn create(&self, name: &str, options: &QueueOptions) -> Result<Arc<dyn Queue>> {
        let mut attributes = vec![
            (QueueAttributeName::VisibilityTimeout, options.visibility.as_secs().to_string()),
            (QueueAttributeName::ReceiveMessageWaitTimeSeconds, "0".to_string()),
            (QueueAttributeName::MaximumMessageSize, MAX_MESSAGE_BYTES.to_string()),
        ];
        if let Some((dlq, max)) = &options.dead_letter {
            let dlq_url = self
                .client
                .get_queue_url()
                .queue_name(dlq)
                .send()
                .await
                .map_err(|e| fail(dlq, "get_queue_url", e))?
                .queue_url
                .unwrap_or_default();
            let attrs = self
                .client
                .get_queue_attributes()
                .queue_url(&dlq_url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(|e| fail(dlq, "get_queue_attributes", e))?;
            let arn =
                attrs.attributes().and_then(|a| a.get(&QueueAttributeName::QueueArn)).cloned().unwrap_or_default();
            let policy = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max}).to_string();
            attributes.push((QueueAttributeName::RedrivePolicy, policy));
        }
        let mut req = self.client.create_queue().queue_name(name);
        for (key, value) in &attributes {
            req = req.attributes(key.clone(), value);
        }
        // A queue of this name is what a crashed attempt of this run left (names hold the
        // deployment and the run id), with its messages: its stale callbacks must not count for
        // this attempt. It goes, and the queue is made anew (after SQS's minute, below).
        if let Ok(out) = self.client.get_queue_url().queue_name(name).send().await
            && let Some(url) = out.queue_url()
        {
            self.client.delete_queue().queue_url(url).send().await.map_err(|e| fail(name, "delete_queue", e))?;
            tracing::info!(
                queue = name,
                "deleted a queue of this name an earlier attempt of this run left; making it anew"
            );
        }
        // SQS refuses a name deleted less than 60 s ago (a run resumed under its own id at once).
        let mut waited = Duration::ZERO;
        let url = loop {
            match req.clone().send().await {
                Ok(out) => break out.queue_url.unwrap_or_default(),
                Err(e) if deleted_recently(&e) && waited < DELETED_RECENTLY_WAIT => {
                    tracing::info!(
                        queue = name,
                        "SQS deleted this queue name less than a minute ago; waiting to make it again"
                    );
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    waited += Duration::from_secs(5);
                }
                Err(e) => return Err(fail(name, "create_queue", e)),
            }
        };
        Ok(Arc::new(SqsQueue { client: self.client.clone(), name: name.to_string(), url }))
    }

    async fn open(&self, address: &str) -> Result<Arc<dyn Queue>> {
        let name = address.rsplit('/').next().unwrap_or(address).to_string();
        self.client
            .get_queue_attributes()
            .queue_url(address)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| fail(address, "open", e))?;
        Ok(Arc::new(SqsQueue { client: self.client.clone(), name, url: address.to_string() }))
    }

    async fn delete(&self, name: &str) -> Result<()> {
        let url = match self.client.get_queue_url().queue_name(name).send().await {
            Ok(out) => out.queue_url.unwrap_or_default(),
            Err(e) => {
                return match fail(name, "get_queue_url", e) {
                    QueueError::NoSuchQueue(_) => Ok(()),
                    other => Err(other),
                };
            }
        };
        self.client.delete_queue().queue_url(url).send().await.map_err(|e| fail(name, "delete_queue", e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        // Without MaxResults, ListQueues returns at most 1,000 names and no next token.
        let mut pages =
            self.client.list_queues().queue_name_prefix(prefix).max_results(LIST_PAGE).into_paginator().send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| fail(prefix, "list_queues", e))?;
            names.extend(page.queue_urls().iter().filter_map(|u| u.rsplit('/').next()).map(String::from));
        }
        names.sort();
        Ok(names)
    }
}

/// One SQS queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    name: String,
    url: String,
}

#[async_trait]
impl Queue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    fn address(&self) -> String {
        self.url.clone()
    }

    async fn send(&self, bodies: &[String]) -> Result<Vec<String>> {
        let mut ids = Vec::with_capacity(bodies.len());
        for range in batches(bodies) {
            let chunk = &bodies[range];
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, body) in chunk.iter().enumerate() {
                check_size(&self.name, body)?;
                entries.push(
                    SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(body).build().map_err(
                        |e| QueueError::Backend { queue: self.name.clone(), operation: "send", detail: e.to_string() },
                    )?,
                );
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| fail(&self.name, "send", e))?;
            if let Some(failed) = out.failed().first() {
                return Err(QueueError::Backend {
                    queue: self.name.clone(),
                    operation: "send",
                    detail: format!("{}: {}", failed.code(), failed.message().unwrap_or_default()),
                });
            }
            let mut ok: Vec<_> = out
                .successful()
                .iter()
                .map(|s| (s.id().parse::<usize>().unwrap_or(0), s.message_id().to_string()))
                .collect();
            ok.sort();
            ids.extend(ok.into_iter().map(|(_, id)| id));
        }
        Ok(ids)
    }

    async fn receive(&self, max: usize, wait: Duration, visibility: Duration) -> Result<Vec<Received>> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .visibility_timeout(visibility.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| fail(&self.name, "receive", e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| Received {
                id: m.message_id().unwrap_or_default().to_string(),
                receipt: m.receipt_handle().unwrap_or_default().to_string(),
                body: m.body().unwrap_or_default().to_string(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
            })
            .collect())
    }

    async fn set_visibility(&self, receipt: &str, visibility: Duration) -> Result<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(visibility.as_secs() as i32)
            .send()
            .await
            .map_err(|e| fail(&self.name, "set_visibility", e))?;
        Ok(())
    }

    async fn delete(&self, receipt: &str) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| fail(&self.name, "delete", e))?;
        Ok(())
    }

    async fn depth(&self) -> Result<Depth> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| fail(&self.name, "depth", e))?;
        let get = |k: QueueAttributeName| {
            out.attributes().and_then(|a| a.get(&k)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        };
        Ok(Depth {
            visible: get(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_ten_entries_and_one_message_size_at_most() {
        let small: Vec<String> = (0..25).map(|i| i.to_string()).collect();
        assert_eq!(batches(&small), [0..10, 10..20, 20..25]);
        // Items of 256 KiB: four make a MiB and the fifth goes to the next batch.
        let big: Vec<String> = (0..9).map(|_| "x".repeat(256 * 1024)).collect();
        assert_eq!(batches(&big), [0..4, 4..8, 8..9]);
        let one_large = vec!["x".repeat(MAX_MESSAGE_BYTES), "y".into()];
        assert_eq!(batches(&one_large), [0..1, 1..2]);
        assert!(batches(&[]).is_empty());
    }
}
