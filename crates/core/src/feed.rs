//! Feeds a step's work items to its work queue a window at a time, instead of all at once.
//! Workers never starve as long as the window exceeds the fleet's slots, and the queue holds
//! only what can run soon: a cancelled or failed step leaves little behind, and queue backends
//! whose cost grows with depth (moto scans its whole queue on every receive and delete) stay
//! fast. Real SQS does not care about depth; the window costs it nothing.

use runner_backends::queue::{Queue, QueueError};
use runner_backends::storage::{Location, StorageError, Stores};

use crate::wire::{StoredItem, WorkItem, WorkMessage};

/// An item whose message would be larger than this is stored in the run state and referenced
/// (SQS takes 1 MiB; a quarter of it leaves room for the queue's own attributes and keeps
/// large bodies off the queue).
pub const STORE_ITEMS_ABOVE: usize = 256 * 1024;

/// The message bodies of a step's items: each item as it is, or, when too large for a message,
/// a reference to where it is stored (written here, under the run state, by `store_at`).
pub async fn bodies(
    items: &[&WorkItem],
    stores: &dyn Stores,
    store_at: impl Fn(&WorkItem) -> Location,
) -> Result<Vec<String>, StorageError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        // An item goes as itself (the form `WorkMessage::Item` reads).
        let body = serde_json::to_string(item).unwrap_or_default();
        if body.len() <= STORE_ITEMS_ABOVE {
            out.push(body);
            continue;
        }
        let at = store_at(item);
        tracing::info!(item = %item.label, "the item is {} bytes, over a message's {STORE_ITEMS_ABOVE} bytes: stored at {at}", body.len());
        stores.write(&at, body.into_bytes()).await?;
        let stored = StoredItem { run_id: item.run_id.clone(), id: item.id.clone(), stored_at: at };
        out.push(serde_json::to_string(&WorkMessage::Stored { stored_item: stored }).unwrap_or_default());
    }
    Ok(out)
}

/// The smallest window, whatever the capacity.
pub const MIN_WINDOW: usize = 256;

/// The default window for a fleet of `capacity` slots: four items per slot, so each worker
/// always finds its next item waiting.
pub fn default_window(capacity: usize) -> usize {
    capacity.saturating_mul(4).max(MIN_WINDOW)
}

/// The items of one step, in order, and how many have been sent.
#[derive(Debug)]
pub struct Feeder {
    bodies: Vec<String>,
    sent: usize,
    window: usize,
}

impl Feeder {
    /// Items (serialized messages) to feed, at most `window` outstanding at a time.
    pub fn new(bodies: Vec<String>, window: usize) -> Self {
        Self { bodies, sent: 0, window: window.max(1) }
    }

    /// Sends the next items so that `window` are outstanding, given how many of the sent ones
    /// have `finished`. Returns how many were sent by this call.
    pub async fn top_up(&mut self, queue: &dyn Queue, finished: usize) -> Result<usize, QueueError> {
        let target = finished.saturating_add(self.window).min(self.bodies.len());
        if target <= self.sent {
            return Ok(0);
        }
        queue.send(&self.bodies[self.sent..target]).await?;
        let n = target - self.sent;
        self.sent = target;
        Ok(n)
    }

    /// How many items have been sent: the first `sent()` of the list.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// How many items there are.
    pub fn len(&self) -> usize {
        self.bodies.len()
    }

    /// Whether there is nothing to feed.
    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runner_backends::queue::{LocalQueues, QueueBackend, QueueOptions};
    use std::time::Duration;

    #[tokio::test]
    async fn keeps_at_most_the_window_outstanding_and_sends_everything_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let queues = LocalQueues::new(dir.path().join("q.sqlite"));
        let q = queues.create("feed", &QueueOptions::default()).await.unwrap();
        let bodies: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let mut feeder = Feeder::new(bodies, 4);
        assert_eq!(feeder.top_up(&*q, 0).await.unwrap(), 4);
        assert_eq!(feeder.top_up(&*q, 0).await.unwrap(), 0, "the window is full");
        assert_eq!(q.depth().await.unwrap().visible, 4);
        let mut seen = Vec::new();
        while seen.len() < 10 {
            let got = q.receive(3, Duration::from_millis(50), Duration::from_secs(30)).await.unwrap();
            for m in &got {
                q.delete(&m.receipt).await.unwrap();
                seen.push(m.body.parse::<usize>().unwrap());
            }
            feeder.top_up(&*q, seen.len()).await.unwrap();
            let depth = q.depth().await.unwrap();
            assert!(depth.visible + depth.in_flight <= 4, "{depth:?}");
        }
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(feeder.sent(), feeder.len());
        assert_eq!(default_window(2), MIN_WINDOW);
        assert_eq!(default_window(1_000), 4_000);
    }
}
