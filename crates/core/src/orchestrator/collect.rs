//! The collector: turns what comes back from a step's workers into events. Callbacks say how
//! each attempt ended; the dead-letter queue holds items delivered too often to ever run; and
//! manifests are the source of truth when a callback is lost. It decides nothing: the step
//! driver counts the events against the step's attempts.

use std::collections::HashMap;
use std::time::Duration;

use runner_backends::queue::{Queue, QueueError};
use runner_backends::storage::Stores;
use runner_types::{RunId, WorkItemId};
use tracing::warn;

use crate::run_state::read_manifest;
use crate::wire::{Callback, Outcome, WorkItem, WorkMessage};

/// Something that happened to one of the step's items.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// An attempt committed the item.
    Succeeded {
        /// The item.
        item: &'a WorkItem,
        /// The EC2 instance type it ran on, if any.
        instance_type: Option<String>,
        /// The peak resident size of its process.
        peak_rss_bytes: Option<u64>,
        /// It ran in a warm process.
        warm_start: bool,
        /// The worker that ran it.
        worker: String,
        /// When the attempt started and ended (Unix seconds, the worker's clock).
        span: (f64, f64),
    },
    /// An attempt failed in the job itself.
    Failed {
        /// The item.
        item: &'a WorkItem,
        /// The error.
        error: String,
        /// A retry must fail the same way.
        permanent: bool,
        /// The worker that ran it.
        worker: String,
        /// When the attempt started and ended.
        span: (f64, f64),
    },
    /// A worker handed the item back (spot notice, shutdown).
    Interrupted {
        /// The item.
        item: &'a WorkItem,
        /// Why.
        reason: String,
        /// The worker that ran it.
        worker: String,
        /// When the attempt started and ended.
        span: (f64, f64),
    },
    /// The item reached the dead-letter queue: it will never run.
    DeadLettered {
        /// The item.
        item: &'a WorkItem,
    },
    /// The item's manifest is there, though no callback said so.
    ManifestFound {
        /// The item.
        item: &'a WorkItem,
    },
}

/// Reads a step's callback and dead-letter queues and its items' manifests.
pub(crate) struct Collector<'a> {
    run_id: &'a RunId,
    by_id: HashMap<&'a WorkItemId, &'a WorkItem>,
    callbacks: &'a dyn Queue,
    dlq: &'a dyn Queue,
}

/// How long a received callback stays invisible before it is deleted (it is deleted at once).
const RECEIVE_VISIBILITY: Duration = Duration::from_secs(30);

impl<'a> Collector<'a> {
    /// A collector for these items of the run.
    pub(crate) fn new(run_id: &'a RunId, items: &[&'a WorkItem], callbacks: &'a dyn Queue, dlq: &'a dyn Queue) -> Self {
        Self { run_id, by_id: items.iter().map(|i| (&i.id, *i)).collect(), callbacks, dlq }
    }

    /// Callbacks that arrive within `wait`, for this step's items. Malformed and foreign
    /// callbacks are dropped.
    pub(crate) async fn callbacks(&self, wait: Duration) -> Result<Vec<Event<'a>>, QueueError> {
        let mut events = Vec::new();
        for message in self.callbacks.receive(10, wait, RECEIVE_VISIBILITY).await? {
            let parsed: Option<Callback> = serde_json::from_str(&message.body).ok();
            self.callbacks.delete(&message.receipt).await?;
            let Some(cb) = parsed else {
                warn!("ignoring a malformed callback");
                continue;
            };
            let Some(item) = self.by_id.get(&cb.item).copied() else {
                continue;
            };
            let span = (cb.started_at, cb.finished_at);
            events.push(match cb.outcome {
                Outcome::Succeeded { stats } => Event::Succeeded {
                    item,
                    instance_type: cb.worker.instance_type,
                    peak_rss_bytes: stats.peak_rss_bytes,
                    warm_start: stats.warm_start,
                    worker: cb.worker.id,
                    span,
                },
                Outcome::Failed { error, permanent } => {
                    Event::Failed { item, error, permanent, worker: cb.worker.id, span }
                }
                Outcome::Interrupted { reason } => Event::Interrupted { item, reason, worker: cb.worker.id, span },
            });
        }
        Ok(events)
    }

    /// Items of this step that reached the dead-letter queue.
    pub(crate) async fn dead_letters(&self) -> Result<Vec<Event<'a>>, QueueError> {
        let mut events = Vec::new();
        for dead in self.dlq.receive(10, Duration::ZERO, RECEIVE_VISIBILITY).await? {
            let message: Option<WorkMessage> = serde_json::from_str(&dead.body).ok();
            self.dlq.delete(&dead.receipt).await.ok();
            let ids = message.as_ref().map(WorkMessage::ids);
            if let Some(item) =
                ids.filter(|(run, _)| *run == self.run_id).and_then(|(_, id)| self.by_id.get(id).copied())
            {
                events.push(Event::DeadLettered { item });
            }
        }
        Ok(events)
    }

    /// Items among `pending` whose manifest exists. A forced run counts only manifests its own
    /// run wrote, so it never mistakes an earlier run's commit for its own.
    pub(crate) async fn manifests(&self, stores: &dyn Stores, pending: &[&'a WorkItem], force: bool) -> Vec<Event<'a>> {
        let mut events = Vec::new();
        for item in pending {
            let Some(manifest) = read_manifest(stores, &item.manifest_uri).await else { continue };
            if !force || manifest.run_id.as_ref() == Some(self.run_id) {
                events.push(Event::ManifestFound { item });
            }
        }
        events
    }
}
