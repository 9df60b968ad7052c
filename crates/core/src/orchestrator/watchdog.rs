//! The fleet watchdog: fails a step in minutes, with the reason, when its workers cannot start,
//! instead of letting a misconfigured fleet boot-loop until the run's maximum runtime. It reads
//! what the boot script and the workers leave under the step's workers prefix (a check-in per
//! worker, a `boot-failed.txt` when a boot fails) and what the fleet reports (its instances and
//! errors).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use runner_backends::fleet::FleetState;
use runner_backends::fleet::boot::BOOT_FAILED;
use runner_backends::storage::{Location, Stores};

use crate::worker::CHECKED_IN;

/// Why the watchdog stopped a step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootError {
    /// A boot script said why it failed.
    #[error("a worker failed to boot: {0}")]
    Failed(String),
    /// Instances came up, but no worker checked in.
    #[error(
        "no worker checked in within {waited:?} of the first instance starting ({instances}); \
         check the AMI, the instance profile and the network{errors}"
    )]
    NoCheckIn {
        /// How long it waited.
        waited: Duration,
        /// Instances seen.
        instances: String,
        /// The fleet's errors, if any.
        errors: String,
    },
    /// No instance came up at all.
    #[error("the fleet started no instance within {waited:?}{errors}")]
    NoInstance {
        /// How long it waited.
        waited: Duration,
        /// The fleet's errors, if any.
        errors: String,
    },
    /// Instances keep ending before their worker checks in.
    #[error("{count} instances ended without their worker checking in ({ids}): a crash loop{errors}")]
    CrashLoop {
        /// How many.
        count: usize,
        /// Which.
        ids: String,
        /// The fleet's errors, if any.
        errors: String,
    },
}

/// Watches one step's fleet.
#[derive(Debug)]
pub(crate) struct Watchdog {
    prefix: Location,
    boot_timeout: Duration,
    crash_loop_after: usize,
    launched: Instant,
    first_instance: Option<Instant>,
    seen: BTreeSet<String>,
    checked_in: BTreeSet<String>,
    ended_silent: BTreeSet<String>,
    errors: Vec<String>,
}

impl Watchdog {
    pub(crate) fn new(prefix: Location, boot_timeout: Duration, crash_loop_after: usize) -> Self {
        Self {
            prefix,
            boot_timeout,
            crash_loop_after: crash_loop_after.max(1),
            launched: Instant::now(),
            first_instance: None,
            seen: BTreeSet::new(),
            checked_in: BTreeSet::new(),
            ended_silent: BTreeSet::new(),
            errors: Vec::new(),
        }
    }

    fn errors_text(&self) -> String {
        if self.errors.is_empty() { String::new() } else { format!("; the fleet reported: {}", self.errors.join("; ")) }
    }

    /// Looks at the fleet and the prefix; an error ends the step.
    pub(crate) async fn check(&mut self, stores: &dyn Stores, fleet: &FleetState) -> Result<(), BootError> {
        self.errors.extend(fleet.errors.iter().cloned());
        let store = stores.store(&self.prefix).await.map_err(|e| BootError::Failed(e.to_string()))?;
        let base = self.prefix.key().to_string();
        let listed = store.list(&base).await.unwrap_or_default();
        for object in &listed {
            let rel = object.key.strip_prefix(&base).unwrap_or(&object.key).trim_start_matches('/');
            let Some((worker, file)) = rel.split_once('/') else { continue };
            if file == CHECKED_IN {
                self.checked_in.insert(worker.to_string());
            } else if file == BOOT_FAILED {
                let text = store.get_bytes(&object.key).await.unwrap_or_default();
                return Err(BootError::Failed(String::from_utf8_lossy(&text).trim().to_string()));
            }
        }
        let now: BTreeSet<String> = fleet.instances.iter().map(|i| i.id.clone()).collect();
        if !now.is_empty() && self.first_instance.is_none() {
            self.first_instance = Some(Instant::now());
        }
        for gone in self.seen.difference(&now) {
            if !self.checked_in.contains(gone) {
                self.ended_silent.insert(gone.clone());
            }
        }
        self.seen.extend(now.iter().cloned());
        if self.ended_silent.len() >= self.crash_loop_after {
            return Err(BootError::CrashLoop {
                count: self.ended_silent.len(),
                ids: self.ended_silent.iter().cloned().collect::<Vec<_>>().join(", "),
                errors: self.errors_text(),
            });
        }
        if !self.checked_in.is_empty() {
            return Ok(());
        }
        match self.first_instance {
            Some(t) if t.elapsed() > self.boot_timeout => Err(BootError::NoCheckIn {
                waited: self.boot_timeout,
                instances: self.seen.iter().cloned().collect::<Vec<_>>().join(", "),
                errors: self.errors_text(),
            }),
            None if self.launched.elapsed() > self.boot_timeout => {
                Err(BootError::NoInstance { waited: self.boot_timeout, errors: self.errors_text() })
            }
            _ => Ok(()),
        }
    }
}
