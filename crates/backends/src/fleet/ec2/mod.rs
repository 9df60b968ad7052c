//! EC2 spot capacity for a step, behind [`Fleet`]: `request` fleets (one-shot: AWS never
//! replaces their instances) sized by the work the orchestrator says remains.
//!
//! Why `request`: the orchestrator knows the remaining work and AWS does not. A `maintain`
//! fleet would relaunch instances for a straggler's tail (each billed a minute at least) and
//! would boot-loop a broken AMI until it expired; shrinking it needs `ModifyFleet`. Instead the
//! orchestrator calls [`Fleet::maintain`] with the items not yet committed, and when the
//! instances up hold fewer, one more `request` fleet adds the difference (a spot reclaim is
//! replaced that way too). Nothing adds capacity beyond the remaining work, and idle workers
//! power off. Worker configuration travels in user data ([`super::boot`]); credentials come
//! from the instance profile. Every fleet expires at the run's deadline, so even an
//! orchestrator that dies outright cannot leave one running for ever.
//!
//! The rooms: [`config`] (the `[ec2]` settings), [`preflight`] (AWS's rules, checked before a
//! launch), [`launch`] (templates and fleets), [`capacity`] (when to add a fleet), [`follow`]
//! (what instances and fleets did since the last look), [`history`] (what went wrong, from the
//! fleets' histories), [`usage`] (the bill's instances),
//! [`cleanup`] (deleting everything, every failure reported), with [`trouble`] sorting AWS's
//! error codes and [`backoff`] pacing the retries. This module only runs the looks.

mod backoff;
mod capacity;
mod cleanup;
pub mod config;
mod follow;
mod history;
mod instances;
mod launch;
mod preflight;
mod tags;
mod trouble;
mod usage;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_sdk_ec2::Client;

pub use config::{Ec2Config, SubnetOverrides};
pub use launch::ITEMS_WANTED_TAG;

use self::backoff::Patience;
use self::capacity::{Capacity, Decision};
use self::cleanup::Failures;
use self::history::{HistoryReader, Problem};
use self::launch::Launcher;
use self::trouble::Trouble;
use self::usage::Ledger;
use super::{Fleet, FleetError, FleetHandle, FleetRequest, FleetState, GcReport, Instance, Result, Usage};
use runner_types::{BackendKind, RunId};

/// What a fleet provider needs besides its configuration.
#[derive(Debug, Clone)]
pub struct Ec2Settings {
    /// How long a fleet may live (the run's max runtime and a margin), from the provider's
    /// making: every fleet, the last top-up included, expires then.
    pub lifetime: Duration,
    /// The deployment whose resources these are (`prod`, `staging`): in every tag and name.
    pub deployment: String,
}

/// Waits before asking again for a step's first fleet when EC2 throttles the request or fails
/// it for a passing reason (about two minutes in all), then the step fails.
const FIRST_LAUNCH_WAITS: [Duration; 6] = [
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
    Duration::from_secs(30),
    Duration::from_secs(60),
];

/// How long describes may go unanswered (not throttled: unanswered) before a step fails.
const UNANSWERED_PATIENCE: Duration = Duration::from_secs(600);

/// One step's fleets as the provider follows them.
#[derive(Debug)]
struct StepFleet {
    capacity: Capacity,
    ledger: Ledger,
    history: HistoryReader,
    patience: Patience,
    /// The last state that could be read, for looks EC2 throttles.
    last: FleetState,
    /// Problems seen, worded for the user (for the starvation message).
    problems: Vec<String>,
    /// Fleets whose activity status was reported as an error.
    status_reported: BTreeSet<String>,
}

impl StepFleet {
    fn new(capacity_wait: Duration) -> Self {
        Self {
            capacity: Capacity::new(capacity_wait, Instant::now()),
            ledger: Ledger::default(),
            history: HistoryReader::default(),
            patience: Patience::new(UNANSWERED_PATIENCE),
            last: FleetState::default(),
            problems: Vec::new(),
            status_reported: BTreeSet::new(),
        }
    }
}

/// Spot capacity per step.
#[derive(Debug)]
pub struct Ec2Fleet {
    client: Client,
    s3: aws_sdk_s3::Client,
    /// IAM, for preflight's checks of the instance profile and the fleet's role.
    iam: Option<aws_sdk_iam::Client>,
    config: Ec2Config,
    settings: Ec2Settings,
    /// When every fleet expires.
    deadline: SystemTime,
    steps: Mutex<HashMap<String, Arc<tokio::sync::Mutex<StepFleet>>>>,
    vcpus_of_type: Mutex<HashMap<String, usize>>,
    /// Each subnet's availability zone, once preflight has read them.
    zones: Mutex<BTreeMap<String, String>>,
    /// Whether `DescribeFleetHistory` answers (moto does not implement it).
    history: AtomicBool,
}

impl Ec2Fleet {
    /// A fleet provider.
    pub fn new(client: Client, s3: aws_sdk_s3::Client, config: Ec2Config, settings: Ec2Settings) -> Self {
        Self {
            client,
            s3,
            iam: None,
            config,
            deadline: SystemTime::now() + settings.lifetime,
            settings,
            steps: Mutex::default(),
            vcpus_of_type: Mutex::default(),
            zones: Mutex::default(),
            history: AtomicBool::new(true),
        }
    }

    /// Deletes a step's launch templates after a launch that failed part-way; what can't be
    /// deleted is said (`fleet gc` deletes it later), not dropped.
    async fn undo_templates(&self, request: &FleetRequest) {
        let mut failures = Failures::default();
        let deployment = &self.settings.deployment;
        cleanup::delete_step_templates(&self.client, deployment, &request.run_id, &request.step, &mut failures).await;
        if !failures.0.is_empty() {
            tracing::warn!("a failed launch left launch templates behind: {}", failures.0.join("; "));
        }
    }

    /// With IAM: preflight also checks the instance profile and the fleet's service-linked role.
    pub fn with_iam(mut self, iam: aws_sdk_iam::Client) -> Self {
        self.iam = Some(iam);
        self
    }

    /// The boot script for a step's instances.
    pub fn user_data(&self, request: &FleetRequest) -> String {
        super::boot::script(&request.worker_config, &request.workers_prefix, &self.config.worker_binaries)
    }

    fn launcher(&self) -> Launcher<'_> {
        Launcher {
            client: &self.client,
            config: &self.config,
            deployment: &self.settings.deployment,
            deadline: self.deadline,
        }
    }

    fn step(&self, handle: &FleetHandle) -> Arc<tokio::sync::Mutex<StepFleet>> {
        let wait = Duration::from_secs(self.config.capacity_wait_secs);
        let mut steps = self.steps.lock().unwrap_or_else(|p| p.into_inner());
        steps
            .entry(handle.id.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(StepFleet::new(wait))))
            .clone()
    }

    /// A problem worded for the user: the fleet, the instance requirements and the advice.
    fn worded(&self, p: &Problem) -> String {
        let advice = p.trouble.advice();
        let advice = if advice.is_empty() { String::new() } else { format!(" ({advice})") };
        format!("fleet {} [{}]: {}{advice}", p.fleet, self.config.requirements_text(), p.text)
    }

    fn zones_text(&self) -> String {
        let zones = self.zones.lock().unwrap_or_else(|p| p.into_inner());
        self.config
            .subnets
            .iter()
            .map(|s| match zones.get(s) {
                Some(z) => format!("{z} ({s})"),
                None => s.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Adds one fleet when the capacity rules say so; a shortage or quota backs off, throttling
    /// waits, anything else fails the step.
    async fn top_up(
        &self,
        s: &mut StepFleet,
        request: &FleetRequest,
        vcpus: usize,
        wanted_items: usize,
        now: Instant,
    ) -> Result<Option<String>> {
        match self.launcher().fleet(request, vcpus, wanted_items, &launch::client_token(request)).await {
            Ok(id) => {
                tracing::info!(fleet = %id, vcpus, wanted_items, "added spot capacity for step {}", request.step);
                s.capacity.launched(id.clone(), vcpus, now);
                s.history.follow(&id, SystemTime::now(), now);
                Ok(None)
            }
            Err((t @ (Trouble::Capacity | Trouble::Quota), e)) => {
                let wait = s.capacity.problem(None, t, now).unwrap_or_default();
                s.capacity.shortage(t);
                let p = Problem { fleet: "(new)".into(), trouble: t, text: format!("{e}; asking again in {wait:?}") };
                Ok(Some(self.worded(&p)))
            }
            Err((t @ (Trouble::Throttled | Trouble::Transient), e)) => {
                let wait = s.capacity.problem(None, t, now).unwrap_or_default();
                tracing::debug!("adding capacity must wait {wait:?}: {e}");
                Ok(None)
            }
            Err((_, e)) => Err(e),
        }
    }

    fn starved(&self, s: &StepFleet, waited: Duration, wanted_items: usize) -> FleetError {
        let said = if s.problems.is_empty() {
            "EC2 reported no error".to_string()
        } else {
            format!("EC2 said: {}", s.problems.join("; "))
        };
        FleetError::NoCapacity(format!(
            "no instance was up for {}s while {wanted_items} item(s) waited (ec2.capacity_wait_secs): requirements \
             [{}], zones {}, at most {} vCPUs (ec2.max_vcpus); {said}. {}",
            waited.as_secs(),
            self.config.requirements_text(),
            self.zones_text(),
            self.config.max_vcpus,
            Trouble::Quota.advice()
        ))
    }
}

#[async_trait]
impl Fleet for Ec2Fleet {
    fn kind(&self) -> BackendKind {
        BackendKind::Aws
    }

    fn max_items(&self) -> usize {
        (self.config.max_vcpus / self.config.vcpus_per_item).max(1)
    }

    fn vcpus_per_item(&self) -> usize {
        self.config.vcpus_per_item
    }

    fn slots_per_worker(&self) -> Option<usize> {
        None
    }

    async fn preflight(&self) -> Result<()> {
        let zones = preflight::preflight(&self.client, &self.s3, self.iam.as_ref(), &self.config).await?;
        *self.zones.lock().unwrap_or_else(|p| p.into_inner()) = zones;
        Ok(())
    }

    async fn launch(&self, request: &FleetRequest, wanted_items: usize) -> Result<FleetHandle> {
        self.config.validate()?;
        let launcher = self.launcher();
        for (arch, ami) in &self.config.amis {
            if let Err(e) = launcher.template(request, arch, ami).await {
                // A second architecture's template failing must not strand the first.
                self.undo_templates(request).await;
                return Err(e);
            }
        }
        let vcpus = (wanted_items.max(1) * self.config.vcpus_per_item).min(self.config.max_vcpus);
        // The first fleet waits out throttling as top-ups do: the account's request rate is
        // shared, and a busy account must not fail the step on its first call.
        let mut waits = FIRST_LAUNCH_WAITS.iter();
        // One token for every try: a try that timed out but reached EC2 made the fleet.
        let token = launch::client_token(request);
        let id = loop {
            match launcher.fleet(request, vcpus, wanted_items, &token).await {
                Ok(id) => break id,
                Err((t @ (Trouble::Throttled | Trouble::Transient), e)) if let Some(wait) = waits.next() => {
                    tracing::info!(?t, "the first fleet must wait {wait:?}: {e}");
                    tokio::time::sleep(*wait).await;
                }
                Err((_, e)) => {
                    self.undo_templates(request).await;
                    return Err(e);
                }
            }
        };
        let handle = FleetHandle { id: id.clone(), run_id: request.run_id.clone(), step: request.step.clone() };
        let step = self.step(&handle);
        let mut s = step.lock().await;
        let now = Instant::now();
        s.capacity.launched(id.clone(), vcpus, now);
        s.history.follow(&id, SystemTime::now(), now);
        Ok(handle)
    }

    async fn maintain(&self, handle: &FleetHandle, request: &FleetRequest, wanted_items: usize) -> Result<FleetState> {
        let step = self.step(handle);
        let mut s = step.lock().await;
        let now = Instant::now();
        let of = tags::of_step(&handle.run_id, &handle.step);
        let listed = match instances::listed(&self.client, &self.settings.deployment, Some(of), true).await {
            Ok(listed) => {
                s.patience.succeeded();
                listed
            }
            Err((t, e)) if s.patience.bear(t, now) => {
                tracing::debug!(?t, "the step's instances can't be read this look; going on with the last: {e}");
                return Ok(FleetState { errors: Vec::new(), ended: Vec::new(), ..s.last.clone() });
            }
            Err((_, e)) => return Err(e),
        };
        let ended = self.follow_instances(&mut s, &listed).await;
        let mut running_vcpus = 0;
        for i in &listed {
            running_vcpus += self.vcpus_of(i).await;
        }
        let listed_ids: BTreeSet<&str> = listed.iter().filter_map(|i| i.instance_id()).collect();
        let (problems, unlisted_vcpus) = self.follow_fleets(&mut s, &listed_ids, now).await;
        running_vcpus += unlisted_vcpus;
        let mut errors = Vec::new();
        for p in problems {
            s.capacity.problem(Some(&p.fleet), p.trouble, now);
            s.capacity.shortage(p.trouble);
            let text = self.worded(&p);
            s.problems.push(p.text.clone());
            errors.push(text);
        }
        let desired = (wanted_items * self.config.vcpus_per_item).min(self.config.max_vcpus);
        match s.capacity.decide(running_vcpus, desired, now) {
            Decision::Wait => {}
            Decision::TopUp(vcpus) => {
                if let Some(problem) = self.top_up(&mut s, request, vcpus, wanted_items, now).await? {
                    s.problems.push(problem.clone());
                    errors.push(problem);
                }
            }
            Decision::Starved(waited) => return Err(self.starved(&s, waited, wanted_items)),
        }
        let state = FleetState {
            capacity_items: (running_vcpus + s.capacity.pending_vcpus(now)) / self.config.vcpus_per_item,
            instances: listed.iter().map(instances::instance).collect(),
            requested: s.capacity.requested(),
            errors,
            ended,
            end_reasons: true,
            waiting_for_capacity: s.capacity.waiting(),
        };
        s.last = state.clone();
        Ok(state)
    }

    async fn instances(&self, handle: &FleetHandle) -> Result<Vec<Instance>> {
        let of = tags::of_step(&handle.run_id, &handle.step);
        let listed = instances::listed(&self.client, &self.settings.deployment, Some(of), true).await;
        Ok(listed.map_err(|(_, e)| e)?.iter().map(instances::instance).collect())
    }

    async fn usage(&self, handle: &FleetHandle) -> Result<Vec<Usage>> {
        // Every state: terminated instances stay listed for about an hour after they end; the
        // ledger holds the ones AWS has forgotten.
        let of = tags::of_step(&handle.run_id, &handle.step);
        let listed = instances::listed(&self.client, &self.settings.deployment, Some(of), false).await;
        let now = follow::unix_now();
        let listed = listed.map_err(|(_, e)| e)?;
        let mut listing = Vec::new();
        for i in &listed {
            let vcpus = self.vcpus_of(i).await;
            listing.push(usage::usage_of(i, vcpus, now));
        }
        let merged = {
            let step = self.step(handle);
            let s = step.lock().await;
            usage::with_step_root_volume(s.ledger.merged(listing))
        };
        // Still unknown (up for less than a look, alone in its step): its AMI's root volume,
        // which the launch template does not change.
        let images: BTreeMap<String, String> =
            listed.iter().filter_map(|i| Some((i.instance_id()?.to_string(), i.image_id()?.to_string()))).collect();
        let wanted: BTreeSet<String> =
            merged.iter().filter(|u| u.root_volume.is_none()).filter_map(|u| images.get(&u.id).cloned()).collect();
        let of_image = self.image_root_volumes(wanted).await;
        Ok(merged
            .into_iter()
            .map(|mut u| {
                if u.root_volume.is_none() {
                    u.root_volume = images.get(&u.id).and_then(|img| of_image.get(img)).cloned();
                }
                u
            })
            .collect())
    }

    async fn delete(&self, handle: &FleetHandle) -> Result<()> {
        let remembered: Vec<String> = {
            let step = self.step(handle);
            let mut s = step.lock().await;
            let ids: Vec<String> = s.capacity.fleets.iter().map(|f| f.id.clone()).collect();
            for id in &ids {
                s.history.forget(id);
            }
            ids
        };
        let failures =
            cleanup::delete_step(&self.client, &self.settings.deployment, &handle.run_id, &handle.step, remembered)
                .await;
        if failures.0.is_empty() { Ok(()) } else { Err(FleetError::Cleanup(failures.0)) }
    }

    async fn gc(&self, is_live: &(dyn for<'r> Fn(&'r RunId) -> bool + Sync), spare_from: SystemTime) -> GcReport {
        let (deleted, failures) = cleanup::gc(&self.client, &self.settings.deployment, is_live, spare_from).await;
        GcReport { deleted, failures: failures.0 }
    }
}
