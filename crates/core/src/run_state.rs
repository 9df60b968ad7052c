//! Run state: what the orchestrator keeps under the state location, and the only module that
//! knows its layout.
//!
//! ```text
//! {state}/runs/{run}/job.toml                      the run's copy of the job spec
//! {state}/runs/{run}/run.json                      the run record (status, heartbeat)
//! {state}/live/{run}.json                          a live run's heartbeat, gone once it ends
//! {state}/items/{job}/{step}/{partition}/{item}.json   an item's commit manifest
//! {state}/items/{job}/{step}/{partition}/_checks/{check}/part-{item}.parquet
//!                                                  an item's distinct keys for a unique check
//! ```
//!
//! It reads and writes run records, finds the items already committed, and prunes what
//! superseded items wrote.

use std::collections::BTreeSet;

use runner_backends::storage::{Location, StorageError, Stores};
use runner_types::{Partition, RunId, StepName, WorkItemId};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::wire::Manifest;

/// Where the run's copy of the job spec goes (workers read the spec from there).
pub fn spec_location(state: &Location, run_id: &RunId) -> Location {
    state.join(&format!("runs/{run_id}/job.toml"))
}

/// Where a step's workers check in, ship their logs and report failed boots, one folder per
/// worker (instance id).
pub fn workers_prefix(state: &Location, run_id: &RunId, step: &StepName) -> Location {
    state.join(&format!("runs/{run_id}/workers/{step}"))
}

/// When each worker of a step said its machine booted (from its check-in), by worker id: where
/// the bill starts an instance's running time.
pub async fn boot_times(stores: &dyn Stores, workers_prefix: &Location) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(store) = stores.store(workers_prefix).await else { return out };
    let base = format!("{}/", workers_prefix.key());
    for object in store.list(&base).await.unwrap_or_default() {
        if !object.key.ends_with(&format!("/{}", crate::worker::CHECKED_IN)) {
            continue;
        }
        let info = store.get_bytes(&object.key).await.ok();
        if let Some(w) = info.and_then(|b| serde_json::from_slice::<crate::wire::WorkerInfo>(&b).ok())
            && let Some(at) = w.booted_at
        {
            out.insert(w.id, at as f64);
        }
    }
    out
}

/// Where a work item too large for a queue message is kept for the run's workers (deleted when
/// its step ends; see [`delete_stored_items`]).
pub fn stored_item_location(state: &Location, run_id: &RunId, step: &StepName, id: &WorkItemId) -> Location {
    state.join(&format!("runs/{run_id}/items/{step}/{id}.json"))
}

/// Where a live run's heartbeat is, so `fleet gc` lists live runs, not every run ever made.
pub fn heartbeat_location(state: &Location, run_id: &RunId) -> Location {
    state.join(&format!("live/{run_id}.json"))
}

/// Where a run's record lives.
pub fn run_record_location(state: &Location, run_id: &RunId) -> Location {
    state.join(&format!("runs/{run_id}/run.json"))
}

/// The folder of a partition's manifests: the key's escaped path form (one folder per key), or
/// `_` for an unpartitioned run (a key `_` has the path form `%5F`).
pub fn partition_folder(partition: Option<&Partition>) -> String {
    partition.map(|p| p.key.path_segment()).unwrap_or_else(|| "_".to_string())
}

/// The prefix holding a step's manifests for one partition.
pub fn manifest_prefix(state: &Location, job: &str, step: &StepName, partition: Option<&Partition>) -> Location {
    state.join(&format!("items/{job}/{step}/{}", partition_folder(partition)))
}

/// Where an item's manifest lives.
pub fn manifest_location(
    state: &Location,
    job: &str,
    step: &StepName,
    partition: Option<&Partition>,
    id: &WorkItemId,
) -> Location {
    manifest_prefix(state, job, step, partition).join(&format!("{id}.json"))
}

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Under way (while its heartbeat is recent).
    Running,
    /// Finished, every step done.
    Succeeded,
    /// Finished with an error.
    Failed,
}

/// The run record, for `fleet gc` and for people.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run.
    pub run_id: RunId,
    /// The job.
    pub job: String,
    /// How it stands.
    pub status: RunStatus,
    /// Unix seconds of the last heartbeat.
    pub heartbeat: u64,
    /// The error, when failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl RunRecord {
    /// A record for a run starting now.
    pub fn started(run_id: RunId, job: &str) -> Self {
        Self { run_id, job: job.to_string(), status: RunStatus::Running, heartbeat: unix_now(), error: None }
    }

    /// Writes the record.
    pub async fn write(&self, stores: &dyn Stores, state: &Location) -> Result<(), StorageError> {
        let body = serde_json::to_vec_pretty(self).unwrap_or_default();
        stores.write(&run_record_location(state, &self.run_id), body).await
    }
}

/// A live run's heartbeat: written by a task of the orchestrator's own every period, through
/// every phase of the run (planning, waiting on a lease, storing items, deleting, pruning), and
/// deleted when the run ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The run.
    pub run_id: RunId,
    /// The job.
    pub job: String,
    /// Unix seconds when it was written (the orchestrator's clock).
    pub at: u64,
    /// How often it is written, in seconds.
    pub every_secs: u64,
}

/// Heartbeat periods a run may miss before `fleet gc` judges it over: a store that stalls for a
/// few writes, or clocks a little apart, never makes a live run look dead.
pub const MISSED_HEARTBEATS: u64 = 10;

impl Heartbeat {
    /// Whether the run still counts as live at `now` (Unix seconds, the reader's clock).
    pub fn is_live_at(&self, now: u64) -> bool {
        now.saturating_sub(self.at) < MISSED_HEARTBEATS * self.every_secs.max(1)
    }

    /// Writes it.
    pub async fn write(&self, stores: &dyn Stores, state: &Location) -> Result<(), StorageError> {
        let body = serde_json::to_vec(self).unwrap_or_default();
        stores.write(&heartbeat_location(state, &self.run_id), body).await
    }
}

/// A run's heartbeat, if it has one that can be read.
pub async fn heartbeat_of(stores: &dyn Stores, state: &Location, run_id: &RunId) -> Option<Heartbeat> {
    let bytes = stores.read(&heartbeat_location(state, run_id)).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Every heartbeat under the state location (one small object per run not yet ended), and the
/// runs whose heartbeat can't be read (counted live: a run is never judged over on a guess).
pub async fn heartbeats(stores: &dyn Stores, state: &Location) -> Result<(Vec<Heartbeat>, Vec<RunId>), StorageError> {
    let prefix = state.join("live");
    let store = stores.store(&prefix).await?;
    let (mut read, mut unreadable) = (Vec::new(), Vec::new());
    for object in store.list(&format!("{}/", prefix.key())).await? {
        let Some(run) = object.key.rsplit('/').next().and_then(|n| n.strip_suffix(".json")).map(RunId::from) else {
            continue;
        };
        match store.get_bytes(&object.key).await {
            Ok(bytes) => match serde_json::from_slice::<Heartbeat>(&bytes) {
                Ok(h) => read.push(h),
                Err(_) => unreadable.push(run),
            },
            // Deleted between the listing and the read: the run ended.
            Err(StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((read, unreadable))
}

/// Deletes a run's heartbeat (the run ended, or `fleet gc` cleaned up after it).
pub async fn delete_heartbeat(stores: &dyn Stores, state: &Location, run_id: &RunId) -> Result<(), StorageError> {
    let at = heartbeat_location(state, run_id);
    stores.store(&at).await?.delete(at.key()).await
}

/// Reads an item's manifest; `None` when it is missing or unreadable.
pub async fn read_manifest(stores: &dyn Stores, location: &Location) -> Option<Manifest> {
    stores.read(location).await.ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// The ids of a step's items committed for one partition (by any run).
pub async fn committed_ids(
    stores: &dyn Stores,
    state: &Location,
    job: &str,
    step: &StepName,
    partition: Option<&Partition>,
) -> Result<BTreeSet<WorkItemId>, StorageError> {
    Ok(manifests(stores, state, job, step, partition).await?.into_iter().map(|(id, _)| id).collect())
}

/// The ids of every committed item of a step, in any partition: what a downstream step may read.
pub async fn committed_ids_of_step(
    stores: &dyn Stores,
    state: &Location,
    job: &str,
    step: &StepName,
) -> Result<BTreeSet<String>, StorageError> {
    let prefix = state.join(&format!("items/{job}/{step}"));
    let store = stores.store(&prefix).await?;
    Ok(store
        .list(&format!("{}/", prefix.key()))
        .await?
        .into_iter()
        .filter_map(|m| m.key.rsplit('/').next().and_then(|n| n.strip_suffix(".json")).map(String::from))
        .filter(|n| !n.starts_with('.'))
        .collect())
}

/// Every manifest of a step for one partition: the item id and where its manifest is.
async fn manifests(
    stores: &dyn Stores,
    state: &Location,
    job: &str,
    step: &StepName,
    partition: Option<&Partition>,
) -> Result<Vec<(WorkItemId, Location)>, StorageError> {
    let prefix = manifest_prefix(state, job, step, partition);
    let store = stores.store(&prefix).await?;
    Ok(store
        .list(&format!("{}/", prefix.key()))
        .await?
        .into_iter()
        .filter_map(|m| {
            let id = m.key.rsplit('/').next().and_then(|n| n.strip_suffix(".json")).map(WorkItemId::from)?;
            Some((id, prefix.with_key(m.key)))
        })
        .collect())
}

/// The manifests of a step's items in these partitions that are not among `current` (the ids
/// of the step's items now): items whose inputs or definition changed have new ids, and what
/// the old ones wrote is superseded. Each comes with where it is.
pub async fn superseded(
    stores: &dyn Stores,
    state: &Location,
    job: &str,
    step: &StepName,
    partitions: &[Option<Partition>],
    current: &BTreeSet<&WorkItemId>,
) -> Result<Vec<(Manifest, Location)>, StorageError> {
    let mut out = Vec::new();
    for partition in partitions {
        for (id, manifest_at) in manifests(stores, state, job, step, partition.as_ref()).await? {
            if current.contains(&id) {
                continue;
            }
            // A manifest is how its item's files are found: one that can't be read stops the
            // caller, and is never deleted blind (its files would be stranded for good).
            let bytes = match stores.read(&manifest_at).await {
                Ok(b) => b,
                Err(StorageError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let old: Manifest = serde_json::from_slice(&bytes).map_err(|e| StorageError::Backend {
                store: manifest_at.to_string(),
                operation: "prune",
                key: manifest_at.key().to_string(),
                detail: format!(
                    "the manifest of superseded item {id} can't be read ({e}), so its outputs can't be found and nothing \
                     of it was deleted; check it, then delete its outputs and the manifest by hand"
                ),
            })?;
            out.push((old, manifest_at));
        }
    }
    Ok(out)
}

/// Deletes what superseded items wrote (see [`superseded`]), and their manifests. A table that
/// listed their files has removed them first.
pub async fn prune(
    stores: &dyn Stores,
    step: &StepName,
    superseded: Vec<(Manifest, Location)>,
) -> Result<(), StorageError> {
    for (old, manifest_at) in superseded {
        for file in old.files.values().flatten() {
            stores.store(file).await?.delete(file.key()).await?;
        }
        stores.store(&manifest_at).await?.delete(manifest_at.key()).await?;
        info!(step = %step, "pruned outputs of superseded item {}", old.item);
    }
    Ok(())
}

/// Deletes files in a step's output directories that the runner wrote (`part-{item id}…`, see
/// [`crate::plan::written_by`]) for an item with no commit manifest: what an item killed between
/// publishing and committing left behind. `dirs` must be exclusive to the leased partitions, as
/// a partition overwrite in Hive or Spark owns its directory; `committed` holds every item id of
/// the step that has a manifest. Returns how many files went.
pub async fn prune_strays(
    stores: &dyn Stores,
    step: &StepName,
    dirs: &[Location],
    committed: &BTreeSet<String>,
) -> Result<usize, StorageError> {
    let mut deleted = 0;
    for dir in dirs {
        let store = stores.store(dir).await?;
        let prefix = format!("{}/", dir.key().trim_end_matches('/'));
        for object in store.list(&prefix).await? {
            let Some(id) = crate::plan::written_by(&object.key) else { continue };
            if committed.contains(id) {
                continue;
            }
            store.delete(&object.key).await?;
            deleted += 1;
            info!(step = %step, "deleted {}: item {id} published it and never committed", dir.with_key(object.key.clone()));
        }
        // Writes an item killed mid-upload never finished (billed until aborted, on S3). Not
        // worth failing a step whose items all committed: said, and left to the bucket's
        // lifecycle rule (runner/AWS.md).
        match store.discard_unfinished(&prefix).await {
            Ok(keys) => {
                for key in keys {
                    info!(step = %step, "discarded an unfinished write of {}: its item was killed while writing it", dir.with_key(key));
                }
            }
            Err(e) => tracing::warn!(step = %step, "could not discard unfinished uploads under {dir}: {e}"),
        }
    }
    Ok(deleted)
}

/// Deletes the work items a run stored for its queues (those too large for a message): of one
/// step once it is over, or of every step (`step` = None) of a run `fleet gc` found dead.
pub async fn delete_stored_items(
    stores: &dyn Stores,
    state: &Location,
    run_id: &RunId,
    step: Option<&StepName>,
) -> Result<usize, StorageError> {
    let prefix = match step {
        Some(step) => state.join(&format!("runs/{run_id}/items/{step}")),
        None => state.join(&format!("runs/{run_id}/items")),
    };
    let store = stores.store(&prefix).await?;
    let objects = store.list(&format!("{}/", prefix.key())).await?;
    for object in &objects {
        store.delete(&object.key).await?;
    }
    Ok(objects.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_counts_as_live_for_ten_heartbeat_periods() {
        let beat = Heartbeat { run_id: RunId::from("r1"), job: "j".into(), at: 1_000, every_secs: 15 };
        assert!(beat.is_live_at(1_000));
        assert!(beat.is_live_at(1_149), "149 s after the last heartbeat: under 10 periods of 15 s");
        assert!(!beat.is_live_at(1_150), "150 s: ten periods missed");
        // A clock behind the writer's never makes a run look dead.
        assert!(beat.is_live_at(900));
        // A period of 0 (never written so) counts as one second.
        let zero = Heartbeat { every_secs: 0, ..beat };
        assert!(zero.is_live_at(1_009) && !zero.is_live_at(1_010));
    }
}
