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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use runner_backends::aws::AwsClients;
    use runner_backends::fleet::Instance;
    use runner_backends::storage::StoreCache;

    use super::*;

    fn fleet(ids: &[&str]) -> FleetState {
        FleetState {
            instances: ids
                .iter()
                .map(|id| Instance {
                    id: id.to_string(),
                    state: "running".into(),
                    instance_type: None,
                    availability_zone: None,
                })
                .collect(),
            errors: vec![],
            ..Default::default()
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        prefix: Location,
        stores: StoreCache,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Location::parse_absolute(&dir.path().join("workers/clean").to_string_lossy()).unwrap();
        Setup { _dir: dir, prefix, stores: StoreCache::new(Arc::new(AwsClients::new())) }
    }

    impl Setup {
        async fn put(&self, worker: &str, file: &str, text: &str) {
            self.stores.write(&self.prefix.join(&format!("{worker}/{file}")), text.as_bytes().to_vec()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_boot_failure_ends_the_step_with_what_the_boot_script_said() {
        let s = setup();
        let mut dog = Watchdog::new(s.prefix.clone(), Duration::from_secs(300), 3);
        dog.check(&s.stores, &fleet(&["i-1"])).await.unwrap();
        s.put("i-1", BOOT_FAILED, "instance i-1: the runner at s3://b/r has sha256 ab, but ...").await;
        let e = dog.check(&s.stores, &fleet(&["i-1"])).await.unwrap_err();
        assert!(matches!(&e, BootError::Failed(t) if t.contains("has sha256 ab")), "{e}");
    }

    #[tokio::test]
    async fn instances_that_end_without_checking_in_are_a_crash_loop() {
        let s = setup();
        let mut dog = Watchdog::new(s.prefix.clone(), Duration::from_secs(300), 3);
        let mut state = fleet(&["i-1", "i-2"]);
        state.errors = vec!["fleet f: InsufficientInstanceCapacity: none left".into()];
        dog.check(&s.stores, &state).await.unwrap();
        // i-2 checked in and then exited idle: not a crash.
        s.put("i-2", CHECKED_IN, "{}").await;
        dog.check(&s.stores, &fleet(&["i-3"])).await.unwrap();
        dog.check(&s.stores, &fleet(&["i-4"])).await.unwrap();
        let e = dog.check(&s.stores, &fleet(&[])).await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, BootError::CrashLoop { count: 3, .. }), "{text}");
        assert!(text.contains("i-1, i-3, i-4") && !text.contains("i-2"), "{text}");
        assert!(text.contains("InsufficientInstanceCapacity"), "the fleet's errors are part of it: {text}");
    }

    #[tokio::test]
    async fn no_check_in_within_the_bound_fails_and_a_check_in_clears_it() {
        let s = setup();
        let mut dog = Watchdog::new(s.prefix.clone(), Duration::from_secs(1), 3);
        dog.check(&s.stores, &fleet(&["i-1"])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let e = dog.check(&s.stores, &fleet(&["i-1"])).await.unwrap_err();
        assert!(matches!(&e, BootError::NoCheckIn { instances, .. } if instances == "i-1"), "{e}");
        s.put("i-1", CHECKED_IN, "{}").await;
        dog.check(&s.stores, &fleet(&["i-1"])).await.unwrap();
    }

    #[tokio::test]
    async fn a_fleet_that_starts_no_instance_fails_after_the_bound() {
        let s = setup();
        let mut dog = Watchdog::new(s.prefix.clone(), Duration::from_millis(1), 3);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let e = dog.check(&s.stores, &fleet(&[])).await.unwrap_err();
        assert!(matches!(e, BootError::NoInstance { .. }), "{e}");
    }
}
