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
//! launch), [`launch`] (templates and fleets), [`capacity`] (when to add a fleet), [`history`]
//! (what went wrong, from the fleets' histories), [`usage`] (the bill's instances),
//! [`cleanup`] (deleting everything, every failure reported), with [`trouble`] sorting AWS's
//! error codes and [`backoff`] pacing the retries. This module only runs the looks.

mod backoff;
mod capacity;
mod cleanup;
pub mod config;
mod history;
mod instances;
mod launch;
mod preflight;
mod tags;
mod trouble;
mod usage;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{FleetActivityStatus, HistoryRecordEntry};

pub use config::{Ec2Config, SubnetOverrides};
pub use launch::ITEMS_WANTED_TAG;

use self::backoff::Patience;
use self::capacity::{Capacity, Decision};
use self::cleanup::Failures;
use self::history::{HistoryReader, Problem, Read};
use self::launch::Launcher;
use self::trouble::Trouble;
use self::usage::Ledger;
use super::{
    EndReason, Ended, Fleet, FleetError, FleetHandle, FleetRequest, FleetState, GcReport, Instance, Result, Usage,
};
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

fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64()
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

    /// vCPUs of an instance type (cached; `DescribeInstanceTypes`).
    async fn vcpus(&self, instance_type: &str) -> usize {
        if let Some(v) = self.vcpus_of_type.lock().unwrap_or_else(|p| p.into_inner()).get(instance_type) {
            return *v;
        }
        let found = self
            .client
            .describe_instance_types()
            .instance_types(instance_type.into())
            .send()
            .await
            .ok()
            .and_then(|o| o.instance_types().first().and_then(|t| t.v_cpu_info()).and_then(|v| v.default_v_cpus()))
            .map(|v| v.max(1) as usize);
        match found {
            Some(v) => {
                self.vcpus_of_type.lock().unwrap_or_else(|p| p.into_inner()).insert(instance_type.to_string(), v);
                v
            }
            // Not cached: a throttled answer must not make a 16-vCPU type count as 2 for good.
            None => self.config.vcpus_per_item,
        }
    }

    async fn vcpus_of(&self, i: &aws_sdk_ec2::types::Instance) -> usize {
        match i.instance_type() {
            Some(t) => self.vcpus(t.as_str()).await,
            None => self.config.vcpus_per_item,
        }
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

    /// Records what the step's instances did since the last look: each one up, and the end of
    /// each one gone (read while AWS still lists it). Returns the ones that ended.
    async fn follow_instances(&self, s: &mut StepFleet, listed: &[aws_sdk_ec2::types::Instance]) -> Vec<Ended> {
        let now = unix_now();
        for i in listed {
            let vcpus = self.vcpus_of(i).await;
            s.ledger.saw_up(usage::usage_of(i, vcpus, now));
        }
        let up: Vec<&str> = listed.iter().filter_map(|i| i.instance_id()).collect();
        let gone = s.ledger.gone(&up, now);
        let mut ended = Vec::new();
        if gone.is_empty() {
            return ended;
        }
        match instances::by_ids(&self.client, &gone).await {
            Ok(found) => {
                let listed: BTreeSet<&str> = found.iter().filter_map(|i| i.instance_id()).collect();
                let forgotten: Vec<String> = gone.iter().filter(|id| !listed.contains(id.as_str())).cloned().collect();
                s.ledger.forgotten(&forgotten);
                for i in found.iter().filter(|i| !usage::is_up(i)) {
                    let vcpus = self.vcpus_of(i).await;
                    s.ledger.saw_end(usage::usage_of(i, vcpus, now));
                    let why = EndReason::of_ec2_code(usage::end_reason(i).as_deref());
                    ended.push(Ended { id: i.instance_id().unwrap_or_default().to_string(), why });
                }
            }
            Err((t, e)) => tracing::debug!(?t, "reading the end of instances {}: {e}", gone.join(", ")),
        }
        ended
    }

    /// What the step's fleets show and say: each young fleet is asked what it has shown, each
    /// fleet's state and activity is read, and due histories are read. Returns new problems,
    /// and the vCPUs of instances young fleets show that the tagged listing does not have yet
    /// (EC2's listings are eventually consistent: counting them as up keeps a fleet that has
    /// just filled from being asked for twice).
    async fn follow_fleets(&self, s: &mut StepFleet, listed: &BTreeSet<&str>, now: Instant) -> (Vec<Problem>, usize) {
        let mut problems = Vec::new();
        let mut unlisted_vcpus = 0;
        for id in s.capacity.young(now) {
            if let Ok(out) = self.client.describe_fleet_instances().fleet_id(&id).send().await {
                let mut shown = 0;
                for i in out.active_instances() {
                    let vcpus = match i.instance_type() {
                        Some(t) => self.vcpus(t).await,
                        None => self.config.vcpus_per_item,
                    };
                    shown += vcpus;
                    if i.instance_id().is_some_and(|i| !listed.contains(i)) {
                        unlisted_vcpus += vcpus;
                    }
                }
                s.capacity.shown(&id, shown);
            }
        }
        let ids: Vec<String> = s.capacity.fleets.iter().map(|f| f.id.clone()).collect();
        let history_works = self.history.load(Ordering::Relaxed);
        let mut over = Vec::new();
        if !ids.is_empty()
            && let Ok(out) = self.client.describe_fleets().set_fleet_ids(Some(ids)).send().await
        {
            for f in out.fleets() {
                let id = f.fleet_id().unwrap_or_default().to_string();
                let state = f.fleet_state().map(|s| s.as_str()).unwrap_or_default();
                if state.starts_with("deleted") || state == "failed" || state == "expired" {
                    // Its history is read a while longer: why it ended is written there late.
                    over.push(id.clone());
                    if s.capacity.showed_nothing(&id) {
                        problems.push(ended_empty(&id, state));
                    }
                }
                // `Errors` is filled for instant fleets only; kept for an endpoint that fills it.
                for e in f.errors() {
                    let code = e.error_code().unwrap_or("error");
                    problems.push(Problem {
                        fleet: id.clone(),
                        trouble: trouble::of_code(code),
                        text: format!("{code}: {}", e.error_message().unwrap_or_default()),
                    });
                }
                // Where the history can't be read, an activity status of `error` is all there is.
                if !history_works
                    && f.activity_status() == Some(&FleetActivityStatus::Error)
                    && s.status_reported.insert(id.clone())
                {
                    problems.push(Problem {
                        fleet: id.clone(),
                        trouble: Trouble::Other,
                        text: "its activity status is error (its history, which says why, can't be read here)".into(),
                    });
                }
            }
        }
        if history_works {
            for (id, since) in s.history.due(now) {
                let read = self.read_history(&id, since).await;
                let (found, off) = s.history.record(&id, read, now);
                if off {
                    tracing::debug!("DescribeFleetHistory is not implemented by this endpoint: not reading it again");
                    self.history.store(false, Ordering::Relaxed);
                    break;
                }
                problems.extend(found);
            }
        }
        for id in over {
            s.history.over(&id, now);
        }
        (problems, unlisted_vcpus)
    }

    async fn read_history(&self, fleet: &str, since: SystemTime) -> Read {
        let mut records: Vec<HistoryRecordEntry> = Vec::new();
        let mut token: Option<String> = None;
        let mut until = None;
        loop {
            let sent = self
                .client
                .describe_fleet_history()
                .fleet_id(fleet)
                .start_time(aws_sdk_ec2::primitives::DateTime::from(since))
                .set_next_token(token.take())
                .send()
                .await;
            match sent {
                Ok(out) => {
                    records.extend(out.history_records().iter().cloned());
                    until = out.last_evaluated_time().and_then(|t| SystemTime::try_from(*t).ok()).or(until);
                    match out.next_token() {
                        Some(t) if !t.is_empty() => token = Some(t.to_string()),
                        _ => break,
                    }
                }
                Err(e) => return Read::Failed(trouble::of_error(&e)),
            }
        }
        Read::Records { records, until }
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
        match self.launcher().fleet(request, vcpus, wanted_items).await {
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

/// A fleet EC2 ended before any instance of it showed: a problem, so the next fleet backs off
/// and the user reads why (EC2 deletes a request over the account's fleet limits at once).
fn ended_empty(fleet: &str, state: &str) -> Problem {
    Problem {
        fleet: fleet.to_string(),
        trouble: Trouble::Other,
        text: format!(
            "EC2 ended the fleet ({state}) before any instance of it showed (a request over the account's EC2 Fleet \
             limits is deleted at once; the reason, when EC2 gives one, follows from its history within a minute)"
        ),
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
        let id = match launcher.fleet(request, vcpus, wanted_items).await {
            Ok(id) => id,
            Err((_, e)) => {
                self.undo_templates(request).await;
                return Err(e);
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
        let now = unix_now();
        let mut listing = Vec::new();
        for i in &listed.map_err(|(_, e)| e)? {
            let vcpus = self.vcpus_of(i).await;
            listing.push(usage::usage_of(i, vcpus, now));
        }
        let step = self.step(handle);
        let s = step.lock().await;
        Ok(s.ledger.merged(listing))
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

    async fn gc(&self, is_live: &(dyn for<'r> Fn(&'r RunId) -> bool + Sync)) -> GcReport {
        let (deleted, failures) = cleanup::gc(&self.client, &self.settings.deployment, is_live).await;
        GcReport { deleted, failures: failures.0 }
    }
}
