//! Work and callback queues behind one trait, with a local implementation (a SQLite file, so
//! it survives a crashed orchestrator and is shared by worker processes) and SQS. Both have
//! SQS's semantics: at-least-once delivery, a visibility timeout that heartbeats extend and
//! that 0 releases at once, a receive count, long polling, and a dead-letter queue after N
//! receives. `conformance` holds the suite both pass.

#[cfg(feature = "conformance")]
pub mod conformance;
mod local;
mod sqs;

use std::time::Duration;

use async_trait::async_trait;

pub use local::{LocalQueue, LocalQueues};
pub use sqs::{SqsQueue, SqsQueues};

/// Queue errors.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue does not exist.
    #[error("queue {0} does not exist")]
    NoSuchQueue(String),
    /// A message above the size limit.
    #[error("message of {size} bytes is above the {limit}-byte limit of queue {queue}")]
    TooLarge {
        /// The queue.
        queue: String,
        /// The message size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A receipt that is no longer valid (the message was received again, or deleted).
    #[error("receipt for message {0} is stale: the message was received by someone else or deleted")]
    StaleReceipt(String),
    /// Any other failure.
    #[error("queue {queue}: {operation}: {detail}")]
    Backend {
        /// The queue.
        queue: String,
        /// What was being done.
        operation: &'static str,
        /// The backend's explanation.
        detail: String,
    },
}

/// Result alias.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// The largest message body both backends accept (SQS's limit).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Stable id of the message.
    pub id: String,
    /// Handle for extending, releasing or deleting this delivery.
    pub receipt: String,
    /// The body.
    pub body: String,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
}

/// How a queue is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    /// Visibility timeout of a received message unless the receiver asks otherwise.
    pub visibility: Duration,
    /// Move a message to this dead-letter queue once it has been received this many times.
    pub dead_letter: Option<(String, u32)>,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self { visibility: Duration::from_secs(30), dead_letter: None }
    }
}

/// Approximate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Depth {
    /// Messages ready to be received.
    pub visible: u64,
    /// Messages received and not yet deleted or released.
    pub in_flight: u64,
}

/// One queue.
#[async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug {
    /// The queue's name.
    fn name(&self) -> &str;

    /// A string a worker elsewhere can open the queue with (a path or a URL).
    fn address(&self) -> String;

    /// Sends messages (batched by the backend). Returns their ids.
    async fn send(&self, bodies: &[String]) -> Result<Vec<String>>;

    /// Receives up to `max` messages (1–10), waiting up to `wait` (≤ 20 s) for the first.
    /// Each stays invisible to others for `visibility`.
    async fn receive(&self, max: usize, wait: Duration, visibility: Duration) -> Result<Vec<Received>>;

    /// Sets the remaining visibility of a delivery: a heartbeat extends it, 0 releases the
    /// message for redelivery now.
    async fn set_visibility(&self, receipt: &str, visibility: Duration) -> Result<()>;

    /// Deletes a delivered message.
    async fn delete(&self, receipt: &str) -> Result<()>;

    /// Approximate numbers of visible and in-flight messages.
    async fn depth(&self) -> Result<Depth>;
}

/// Creates, opens and deletes queues of one backend.
#[async_trait]
pub trait QueueBackend: Send + Sync + std::fmt::Debug {
    /// Creates a queue; one of that name (a leftover of an earlier attempt of the run) is
    /// replaced by a new, empty one with these options.
    async fn create(&self, name: &str, options: &QueueOptions) -> Result<std::sync::Arc<dyn Queue>>;

    /// Opens a queue by the address another process was given.
    async fn open(&self, address: &str) -> Result<std::sync::Arc<dyn Queue>>;

    /// Deletes a queue and its messages.
    async fn delete(&self, name: &str) -> Result<()>;

    /// The names of the queues whose name starts with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
}

/// Checks a body against the size limit.
pub fn check_size(queue: &str, body: &str) -> Result<()> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(QueueError::TooLarge { queue: queue.to_string(), size: body.len(), limit: MAX_MESSAGE_BYTES });
    }
    Ok(())
}
