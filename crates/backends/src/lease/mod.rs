//! Leases: at most one run at a time works on a (job, step, partition). A run takes the lease
//! before it plans the step and holds it until the step ends; a second run is refused with the
//! holder's name (its run, Dagster run, host, pid and start), or waits for it.
//!
//! Two implementations behind one trait: a file lock in a local state directory, which dies
//! with its process, and a lease object in S3, created with a conditional put and renewed by
//! its holder (`If-Match` on its ETag) before it expires, so a holder that died is taken over
//! once its lease runs out. `conformance` holds the suite both pass.

#[cfg(feature = "conformance")]
pub mod conformance;
mod local;
mod s3;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use local::LocalLeases;
pub use s3::S3Leases;

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    /// The runner run.
    pub run_id: String,
    /// The Dagster run, when Dagster launched it.
    pub dagster_run_id: Option<String>,
    /// The machine.
    pub host: String,
    /// The orchestrator's process.
    pub pid: u32,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// Until when the lease holds unless renewed (Unix seconds by the holder's clock; S3 only).
    /// For people: expiry is judged from S3's stamp of the write (`Last-Modified`) and
    /// `ttl_secs`, against the reader's clock.
    #[serde(default)]
    pub expires_at: f64,
    /// How long the lease holds after each write unless renewed (S3 only; absent in leases
    /// written by older runners, judged by `expires_at` then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<f64>,
}

impl Holder {
    /// The same holder, whatever the expiry each copy carries.
    pub fn same_holder(&self, other: &Holder) -> bool {
        let bare = |h: &Holder| Holder { expires_at: 0.0, ttl_secs: None, ..h.clone() };
        bare(self) == bare(other)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run {}", self.run_id)?;
        if let Some(d) = &self.dagster_run_id {
            write!(f, " (Dagster run {d})")?;
        }
        write!(f, " on {} (pid {}), started {}", self.host, self.pid, self.started_at)
    }
}

/// Lease errors.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another run holds it.
    #[error("{name} is being worked on by {holder}; wait for it, or stop it")]
    Held {
        /// The lease.
        name: String,
        /// Its holder.
        holder: Box<Holder>,
    },
    /// A held lease was taken over (its holder stopped renewing it for too long).
    #[error("the lease on {name} was lost to {holder}")]
    Lost {
        /// The lease.
        name: String,
        /// Who has it now, when known.
        holder: String,
    },
    /// The store failed.
    #[error("{operation} lease {name}: {detail}")]
    Backend {
        /// What was being done.
        operation: &'static str,
        /// The lease.
        name: String,
        /// The store's explanation.
        detail: String,
    },
}

/// Result alias.
pub type Result<T, E = LeaseError> = std::result::Result<T, E>;

/// A lease this process holds. A clone is the same lease as this process last saw it (a
/// renewal that timed out but landed leaves the holder with such a stale copy).
#[derive(Debug, Clone)]
pub struct Lease {
    /// Its name (`job/step/partition`).
    pub name: String,
    /// The version of the lease object this process wrote last (S3); empty locally.
    version: String,
}

/// The leases of one state store.
#[async_trait]
pub trait Leases: Send + Sync + std::fmt::Debug {
    /// Takes the lease `name` for `holder`, taking over one whose holder is gone (its process
    /// died, or its lease expired); `Held` naming the holder otherwise.
    async fn acquire(&self, name: &str, holder: &Holder) -> Result<Lease>;

    /// Extends a held lease; `Lost` when another run has taken it over meanwhile.
    async fn renew(&self, lease: &mut Lease, holder: &Holder) -> Result<()>;

    /// Gives a lease up (if it is still this process's).
    async fn release(&self, lease: Lease) -> Result<()>;

    /// How often a holder must renew.
    fn renew_every(&self) -> Duration;
}

/// The name of the lease on a step's partition.
pub fn lease_name(job: &str, step: &str, partition_folder: &str) -> String {
    format!("{job}/{step}/{partition_folder}")
}
