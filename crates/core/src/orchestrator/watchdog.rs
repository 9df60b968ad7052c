//! The fleet watchdog: fails a step in minutes, with the reason, when its workers cannot start,
//! instead of letting a misconfigured fleet boot-loop until the run's maximum runtime. It reads
//! what the boot script and the workers leave under the step's workers prefix (a check-in per
//! worker, a `boot-failed.txt` when a boot fails) and what the fleet reports (its instances,
//! why they ended, and errors).
//!
//! A boot that failed for a reason every instance would meet (the script says `permanent`) fails
//! the step at once; one that failed for this instance's own trouble (`transient`) retires that
//! instance, a new one replaces it, and only a crash loop fails the step, naming what each boot
//! said. A crash loop is counted from instances that ended before their worker checked in for
//! their own reasons, within [`CRASH_LOOP_WINDOW`]: a spot reclaim or a capacity error during boot
//! is the provider's doing and never counts, and a long step does not fail for three unlucky
//! boots hours apart.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use runner_backends::fleet::boot::BOOT_FAILED;
use runner_backends::fleet::{EndReason, FleetState};
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
    #[error("{count} instances ended without their worker checking in ({ids}): a crash loop{reasons}{errors}")]
    CrashLoop {
        /// How many.
        count: usize,
        /// Which.
        ids: String,
        /// What their boots said, if any did.
        reasons: String,
        /// The fleet's errors, if any.
        errors: String,
    },
}

/// How long the watchdog waits for the fleet to say why an instance ended.
pub(crate) const UNDECIDED_FOR: Duration = Duration::from_secs(30);

/// How long an instance that ended without checking in counts towards a crash loop.
pub(crate) const CRASH_LOOP_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Watches one step's fleet.
#[derive(Debug)]
pub(crate) struct Watchdog {
    prefix: Location,
    boot_timeout: Duration,
    crash_loop_after: usize,
    launched: Instant,
    first_instance: Option<Instant>,
    seen: BTreeSet<String>,
    /// The instances up at the last look.
    up_before: BTreeSet<String>,
    checked_in: BTreeSet<String>,
    /// Instances that ended before checking in, for their own reasons, and when that was seen.
    ended_silent: BTreeMap<String, Instant>,
    /// Instances gone before checking in whose reason the fleet has not said yet.
    undecided: BTreeMap<String, Instant>,
    /// What each instance whose boot failed for a transient reason said (it retires itself; a
    /// new instance replaces it).
    boot_failures: BTreeMap<String, String>,
    errors: Vec<String>,
}

/// How a boot failed, from the first word the boot script wrote (`fail permanent|transient`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BootFailure {
    /// The same on every instance: the step fails at once.
    Permanent(String),
    /// This instance's trouble: it counts towards a crash loop.
    Transient(String),
}

impl BootFailure {
    /// Reads a `boot-failed.txt` (one without a class, from an older boot script: permanent).
    pub(crate) fn parse(text: &str) -> Self {
        let text = text.trim();
        match text.split_once(": ") {
            Some(("transient", rest)) => Self::Transient(rest.to_string()),
            Some(("permanent", rest)) => Self::Permanent(rest.to_string()),
            _ => Self::Permanent(text.to_string()),
        }
    }
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
            up_before: BTreeSet::new(),
            checked_in: BTreeSet::new(),
            ended_silent: BTreeMap::new(),
            undecided: BTreeMap::new(),
            boot_failures: BTreeMap::new(),
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
            } else if file == BOOT_FAILED && !self.boot_failures.contains_key(worker) {
                // Read again at the next look when the read fails: no reason is no verdict.
                let Ok(text) = store.get_bytes(&object.key).await else { continue };
                match BootFailure::parse(&String::from_utf8_lossy(&text)) {
                    BootFailure::Permanent(why) => return Err(BootError::Failed(why)),
                    BootFailure::Transient(why) => {
                        tracing::warn!("an instance's boot failed ({why}); it retires and a new one replaces it");
                        self.boot_failures.insert(worker.to_string(), why);
                        self.ended_silent.entry(worker.to_string()).or_insert_with(Instant::now);
                    }
                }
            }
        }
        let now: BTreeSet<String> = fleet.instances.iter().map(|i| i.id.clone()).collect();
        if !now.is_empty() && self.first_instance.is_none() {
            self.first_instance = Some(Instant::now());
        }
        let at = Instant::now();
        let why: BTreeMap<&str, EndReason> = fleet.ended.iter().map(|e| (e.id.as_str(), e.why)).collect();
        for gone in self.up_before.difference(&now) {
            if !self.checked_in.contains(gone) {
                self.undecided.entry(gone.clone()).or_insert(at);
            }
        }
        // Each instance gone before checking in is judged by why it ended, when the fleet says
        // (a reclaim is the provider's doing); a fleet that can't say, or hasn't within
        // UNDECIDED_FOR, has it counted as the instance's own end.
        let undecided = std::mem::take(&mut self.undecided);
        for (id, since) in undecided {
            match why.get(id.as_str()) {
                Some(EndReason::Provider) => {}
                Some(EndReason::Own) => {
                    self.ended_silent.entry(id).or_insert(since);
                }
                None if !fleet.end_reasons || at.duration_since(since) >= UNDECIDED_FOR => {
                    self.ended_silent.entry(id).or_insert(since);
                }
                None => {
                    self.undecided.insert(id, since);
                }
            }
        }
        // An instance is judged once, when it is first seen missing.
        self.up_before = now.clone();
        self.seen.extend(now.iter().cloned());
        self.ended_silent.retain(|_, seen| at.duration_since(*seen) < CRASH_LOOP_WINDOW);
        if self.ended_silent.len() >= self.crash_loop_after {
            let said: Vec<String> =
                self.ended_silent.keys().filter_map(|id| self.boot_failures.get(id).cloned()).collect();
            return Err(BootError::CrashLoop {
                count: self.ended_silent.len(),
                ids: self.ended_silent.keys().cloned().collect::<Vec<_>>().join(", "),
                reasons: if said.is_empty() {
                    String::new()
                } else {
                    format!("; their boots said: {}", said.join("; "))
                },
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
            // A fleet waiting out a spot shortage or a quota has its own, longer wait
            // (`ec2.capacity_wait_secs`), which names the requirements and zones.
            None if self.launched.elapsed() > self.boot_timeout && !fleet.waiting_for_capacity => {
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
    use runner_backends::fleet::{Ended, Instance};
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
        s.put("i-1", BOOT_FAILED, "permanent: instance i-1: the runner at s3://b/r has sha256 ab, but ...").await;
        let e = dog.check(&s.stores, &fleet(&["i-1"])).await.unwrap_err();
        assert!(matches!(&e, BootError::Failed(t) if t.contains("has sha256 ab")), "{e}");
    }

    #[tokio::test]
    async fn a_transient_boot_failure_retires_one_instance_and_only_a_crash_loop_fails_the_step() {
        let s = setup();
        let mut dog = Watchdog::new(s.prefix.clone(), Duration::from_secs(300), 2);
        dog.check(&s.stores, &fleet(&["i-1"])).await.unwrap();
        s.put("i-1", BOOT_FAILED, "transient: instance i-1: the worker exited with status 1; ... unreachable\n").await;
        dog.check(&s.stores, &fleet(&["i-1"])).await.expect("one instance's blip is not the step's failure");
        // It powers off, and its replacement boots and checks in: the step goes on.
        dog.check(&s.stores, &fleet(&["i-2"])).await.unwrap();
        s.put("i-2", CHECKED_IN, "{}").await;
        dog.check(&s.stores, &fleet(&["i-2"])).await.unwrap();
        // A second instance's boot fails too: two in the window make a crash loop, with their words.
        s.put("i-3", BOOT_FAILED, "transient: instance i-3: downloading the runner failed 4 times: timeout\n").await;
        let e = dog.check(&s.stores, &fleet(&["i-2", "i-3"])).await.unwrap_err().to_string();
        assert!(e.contains("2 instances ended") && e.contains("i-1, i-3"), "{e}");
        assert!(e.contains("their boots said: instance i-1: the worker exited with status 1; ... unreachable; instance i-3: downloading"), "{e}");
    }

    #[test]
    fn a_boot_failure_is_read_by_its_class_and_an_unclassed_one_is_permanent() {
        assert_eq!(
            BootFailure::parse("transient: instance i-1: x\n"),
            BootFailure::Transient("instance i-1: x".into())
        );
        assert_eq!(BootFailure::parse("permanent: instance i-1: x"), BootFailure::Permanent("instance i-1: x".into()));
        assert_eq!(BootFailure::parse("instance i-1: x"), BootFailure::Permanent("instance i-1: x".into()));
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
    async fn spot_reclaims_during_boot_are_no_crash_loop() {
        let s = setup();
        let mut dog = Watchdog::new(s.prefix.clone(), Duration::from_secs(300), 3);
        dog.check(&s.stores, &fleet(&["i-1", "i-2", "i-3"])).await.unwrap();
        // All three go before checking in: two reclaimed by EC2 (Server.* reasons), one crashed.
        let mut state = fleet(&["i-4"]);
        state.end_reasons = true;
        state.ended = vec![
            Ended { id: "i-1".into(), why: EndReason::Provider },
            Ended { id: "i-2".into(), why: EndReason::of_ec2_code(Some("Server.InsufficientInstanceCapacity")) },
            Ended { id: "i-3".into(), why: EndReason::of_ec2_code(Some("Client.InstanceInitiatedShutdown")) },
        ];
        dog.check(&s.stores, &state).await.unwrap();
        // Two more own ends make three: now it is a crash loop, naming only those.
        dog.check(&s.stores, &fleet(&["i-5"])).await.unwrap();
        let e = dog.check(&s.stores, &fleet(&[])).await.unwrap_err().to_string();
        assert!(e.contains("3 instances ended") && e.contains("i-3, i-4, i-5"), "{e}");
        assert!(!e.contains("i-1") && !e.contains("i-2"), "{e}");
    }

    #[tokio::test]
    async fn a_reason_read_a_look_late_still_counts_and_none_at_all_counts_as_own() {
        let s = setup();
        let mut dog = Watchdog::new(s.prefix.clone(), Duration::from_secs(300), 2);
        let ec2 = |ids: &[&str], ended: Vec<Ended>| FleetState { end_reasons: true, ended, ..fleet(ids) };
        dog.check(&s.stores, &ec2(&["i-1", "i-2"], vec![])).await.unwrap();
        // Both go; the fleet can't read why yet (a throttled describe).
        dog.check(&s.stores, &ec2(&[], vec![])).await.unwrap();
        assert!(dog.ended_silent.is_empty(), "not judged before the reason has had time to come");
        // A look later: i-1 was a spot reclaim. i-2's reason never comes.
        dog.check(&s.stores, &ec2(&[], vec![Ended { id: "i-1".into(), why: EndReason::Provider }])).await.unwrap();
        assert!(dog.ended_silent.is_empty());
        for since in dog.undecided.values_mut() {
            *since -= UNDECIDED_FOR;
        }
        dog.check(&s.stores, &ec2(&[], vec![])).await.unwrap();
        assert_eq!(dog.ended_silent.keys().collect::<Vec<_>>(), ["i-2"]);
        assert!(dog.undecided.is_empty());
    }

    #[tokio::test]
    async fn own_ends_older_than_the_window_are_forgotten() {
        let s = setup();
        let mut dog = Watchdog::new(s.prefix.clone(), Duration::from_secs(300), 3);
        dog.check(&s.stores, &fleet(&["i-1", "i-2"])).await.unwrap();
        dog.check(&s.stores, &fleet(&["i-3"])).await.unwrap();
        // Two silent ends, seen over the window ago (a long step).
        for seen in dog.ended_silent.values_mut() {
            *seen -= CRASH_LOOP_WINDOW;
        }
        // A third, now: one in the window, not three.
        dog.check(&s.stores, &fleet(&[])).await.unwrap();
        assert_eq!(dog.ended_silent.keys().collect::<Vec<_>>(), ["i-3"]);
    }

    #[tokio::test]
    async fn a_fleet_waiting_for_capacity_is_left_to_its_own_wait() {
        let s = setup();
        let mut dog = Watchdog::new(s.prefix.clone(), Duration::from_millis(1), 3);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut state = fleet(&[]);
        state.waiting_for_capacity = true;
        dog.check(&s.stores, &state).await.unwrap();
        let e = dog.check(&s.stores, &fleet(&[])).await.unwrap_err();
        assert!(matches!(e, BootError::NoInstance { .. }), "{e}");
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
