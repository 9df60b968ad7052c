//! EC2 spot capacity for a step: one launch template per architecture (the AMI decides it), and
//! `request` fleets (one-shot: AWS never replaces their instances) whose overrides are
//! instance *requirements* (vCPU and memory ranges, CPU makers, no accelerators) across every
//! subnet, spot capacity allocated `price-capacity-optimized` and counted in vCPUs.
//!
//! Why `request`: the orchestrator knows the remaining work and AWS does not. A `maintain`
//! fleet would relaunch instances for a straggler's tail (each billed a minute at least) and
//! would boot-loop a broken AMI until it expired; shrinking it needs `ModifyFleet`. Instead the
//! orchestrator calls [`Fleet::maintain`] with the items not yet committed, and when the
//! instances up hold fewer, one more `request` fleet adds the difference (a spot reclaim is
//! replaced that way too). Nothing adds capacity beyond the remaining work, and idle workers
//! power off. Worker configuration travels in user data ([`super::boot`]); credentials come
//! from the instance profile. Every fleet expires at the run's maximum runtime, so even an
//! orchestrator that dies outright cannot leave one running for ever.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    AcceleratorCountRequest, CpuManufacturer, DefaultTargetCapacityType, Filter, FleetEventType,
    FleetLaunchTemplateConfigRequest, FleetLaunchTemplateOverridesRequest, FleetLaunchTemplateSpecificationRequest,
    FleetType, InstanceRequirementsRequest, LaunchTemplateHttpTokensState,
    LaunchTemplateIamInstanceProfileSpecificationRequest, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateTagSpecificationRequest, MemoryMiBRequest, RequestLaunchTemplateData, ResourceType, ShutdownBehavior,
    SpotAllocationStrategy, SpotOptionsRequest, Tag, TagSpecification, TargetCapacitySpecificationRequest,
    TargetCapacityUnitType, VCpuCountRangeRequest,
};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

mod usage;

use super::boot::{self, WorkerBinary};
use super::{
    DAGSTER_RUN_TAG, DEPLOYMENT_TAG, Fleet, FleetError, FleetHandle, FleetRequest, FleetState, Instance, RUN_TAG,
    Result, STEP_TAG, TOOL_TAG, Usage,
};
use runner_types::{BackendKind, RunId, StepName};

/// The EC2 side of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Config {
    /// Subnets, one per availability zone you want to use (all of them, for spot depth).
    pub subnets: Vec<String>,
    /// Security groups of the workers.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// The instance profile (name or ARN) whose role the workers use: no keys travel.
    #[serde(default)]
    pub instance_profile: Option<String>,
    /// AMI per architecture (`x86_64`, `arm64`); both give the widest spot choice.
    pub amis: BTreeMap<String, String>,
    /// The runner binary per architecture, with its sha256, fetched and checked at boot
    /// (`runner dist upload` prints the entry).
    pub worker_binaries: BTreeMap<String, WorkerBinary>,
    /// A concrete instance type per architecture for the launch template. The fleet's
    /// requirements override it on AWS; moto needs it.
    #[serde(default = "default_template_types")]
    pub template_instance_types: BTreeMap<String, String>,
    /// vCPUs per instance: `[min, max]`.
    #[serde(default = "default_vcpus")]
    pub vcpus: [i32; 2],
    /// Memory per instance in MiB: `[min, max]` (0 for no maximum).
    #[serde(default = "default_memory")]
    pub memory_mib: [i32; 2],
    /// CPU makers: `intel`, `amd`, `amazon-web-services`.
    #[serde(default = "default_makers")]
    pub cpu_manufacturers: Vec<String>,
    /// Upper bound on the fleet's vCPUs.
    #[serde(default = "default_max_vcpus")]
    pub max_vcpus: usize,
    /// vCPUs to give each work item.
    #[serde(default = "default_vcpus_per_item")]
    pub vcpus_per_item: usize,
    /// `joined`: one override per architecture listing every subnet (what AWS documents for
    /// maintain fleets, and within its guidance of at most 4 requirement blocks); `separate`:
    /// one override per architecture and subnet (what moto understands).
    #[serde(default)]
    pub subnet_overrides: SubnetOverrides,
}

/// How subnets are spread over the fleet's overrides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubnetOverrides {
    /// One override per architecture, subnets comma-joined.
    #[default]
    Joined,
    /// One override per architecture and subnet.
    Separate,
}

fn default_template_types() -> BTreeMap<String, String> {
    [("x86_64".to_string(), "m6i.large".to_string()), ("arm64".to_string(), "m7g.large".to_string())].into()
}
fn default_vcpus() -> [i32; 2] {
    [2, 16]
}
fn default_memory() -> [i32; 2] {
    [4096, 0]
}
fn default_makers() -> Vec<String> {
    vec!["intel".into(), "amd".into(), "amazon-web-services".into()]
}
fn default_max_vcpus() -> usize {
    256
}
fn default_vcpus_per_item() -> usize {
    2
}

impl Ec2Config {
    /// Checks the configuration; every error is found before anything is launched.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(FleetError::Config(m));
        if self.subnets.is_empty() {
            return bad("ec2.subnets is empty: list a subnet in each availability zone to use".into());
        }
        if self.amis.is_empty() {
            return bad("ec2.amis is empty: give an AMI for x86_64 and/or arm64".into());
        }
        for arch in self.amis.keys() {
            if arch != "x86_64" && arch != "arm64" {
                return bad(format!("ec2.amis: unknown architecture {arch:?} (x86_64 or arm64)"));
            }
            if !self.worker_binaries.contains_key(arch) {
                return bad(format!(
                    "ec2.amis has an {arch} AMI but ec2.worker_binaries has no runner binary for {arch}: \
                     build and upload one (see AWS.md), or drop the {arch} AMI"
                ));
            }
            if !self.template_instance_types.contains_key(arch) {
                return bad(format!("ec2.template_instance_types has no type for {arch}"));
            }
        }
        let [lo, hi] = self.vcpus;
        if lo < 1 || hi < lo {
            return bad(format!("ec2.vcpus [{lo}, {hi}] is not a valid range (1 <= min <= max)"));
        }
        let [mlo, mhi] = self.memory_mib;
        if mlo < 1 || (mhi != 0 && mhi < mlo) {
            return bad(format!("ec2.memory_mib [{mlo}, {mhi}] is not a valid range"));
        }
        for m in &self.cpu_manufacturers {
            if !["intel", "amd", "amazon-web-services"].contains(&m.as_str()) {
                return bad(format!("ec2.cpu_manufacturers: unknown maker {m:?} (intel, amd, amazon-web-services)"));
            }
        }
        if self.vcpus_per_item == 0 || self.max_vcpus == 0 {
            return bad("ec2.vcpus_per_item and ec2.max_vcpus must be positive".into());
        }
        for (arch, b) in &self.worker_binaries {
            if !b.uri.starts_with("s3://") {
                return bad(format!("ec2.worker_binaries.{arch}.uri {:?} is not an s3:// URI", b.uri));
            }
            if b.sha256.len() != 64 || !b.sha256.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
                return bad(format!("ec2.worker_binaries.{arch}.sha256 {:?} is not 64 lowercase hex digits", b.sha256));
            }
        }
        Ok(())
    }
}

/// What a fleet provider needs besides its configuration.
#[derive(Debug, Clone)]
pub struct Ec2Settings {
    /// How long a fleet may live (the run's max runtime and a margin).
    pub lifetime: Duration,
    /// The deployment whose resources these are (`prod`, `staging`): in every tag and name.
    pub deployment: String,
}

/// A request fleet launched for a step.
#[derive(Debug, Clone)]
struct Launched {
    id: String,
    vcpus: usize,
    at: Instant,
    /// The most vCPUs it has shown at once: capacity that showed and went (a reclaim) is not
    /// on its way any more.
    shown: usize,
}

/// What one step's capacity is made of.
#[derive(Debug, Default)]
struct Group {
    fleets: Vec<Launched>,
    /// Fleet errors already reported.
    seen_errors: BTreeSet<String>,
}

/// A fleet that has not shown an instance yet counts as capacity on its way this long.
const PENDING_GRACE: Duration = Duration::from_secs(90);
/// User data may hold at most this many bytes (before base64).
const USER_DATA_MAX: usize = 16 * 1024;

/// Spot capacity per step.
#[derive(Debug)]
pub struct Ec2Fleet {
    client: Client,
    s3: aws_sdk_s3::Client,
    config: Ec2Config,
    settings: Ec2Settings,
    groups: Mutex<HashMap<String, Group>>,
    vcpus_of_type: Mutex<HashMap<String, usize>>,
    /// Whether `DescribeFleetHistory` answers (moto does not implement it).
    history: AtomicBool,
}

fn fail<E>(operation: &'static str, e: SdkError<E>) -> FleetError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    FleetError::Provider { operation, detail: DisplayErrorContext(&e).to_string() }
}

fn not_found<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    e.as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|c| c.contains("NotFound") || c.contains("NotExist"))
}

fn tag_of<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

impl Ec2Fleet {
    /// A fleet provider.
    pub fn new(client: Client, s3: aws_sdk_s3::Client, config: Ec2Config, settings: Ec2Settings) -> Self {
        Self {
            client,
            s3,
            config,
            settings,
            groups: Mutex::default(),
            vcpus_of_type: Mutex::default(),
            history: AtomicBool::new(true),
        }
    }

    fn tags(&self, run: &RunId, step: &str, dagster: Option<&str>) -> Vec<Tag> {
        let mut t = vec![
            Tag::builder().key(TOOL_TAG.0).value(TOOL_TAG.1).build(),
            Tag::builder().key(DEPLOYMENT_TAG).value(&self.settings.deployment).build(),
            Tag::builder().key(RUN_TAG).value(run.as_str()).build(),
            Tag::builder().key(STEP_TAG).value(step).build(),
        ];
        if let Some(d) = dagster {
            t.push(Tag::builder().key(DAGSTER_RUN_TAG).value(d).build());
        }
        t
    }

    fn template_name(&self, run: &RunId, step: &str, arch: &str) -> String {
        let raw = format!("spotlake-{}-{run}-{step}-{arch}", self.settings.deployment);
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.()/".contains(c) { c } else { '-' }).take(128).collect()
    }

    /// Filters for this tool's resources of this deployment.
    fn ours(&self) -> [Filter; 2] {
        [
            Filter::builder().name(format!("tag:{}", TOOL_TAG.0)).values(TOOL_TAG.1).build(),
            Filter::builder().name(format!("tag:{DEPLOYMENT_TAG}")).values(&self.settings.deployment).build(),
        ]
    }

    /// The boot script for a step's instances.
    pub fn user_data(&self, request: &FleetRequest) -> String {
        boot::script(&request.worker_config, &request.workers_prefix, &self.config.worker_binaries)
    }

    async fn create_template(&self, request: &FleetRequest, arch: &str, ami: &str) -> Result<String> {
        let name = self.template_name(&request.run_id, &request.step, arch);
        let t = self.tags(&request.run_id, &request.step, request.dagster_run_id.as_deref());
        let user_data = self.user_data(request);
        if user_data.len() > USER_DATA_MAX {
            return Err(FleetError::Config(format!(
                "the boot script is {} bytes, over EC2's {USER_DATA_MAX}-byte user data limit",
                user_data.len()
            )));
        }
        let mut data = RequestLaunchTemplateData::builder()
            .image_id(ami)
            .instance_type(self.config.template_instance_types[arch].as_str().into())
            .user_data(base64::engine::general_purpose::STANDARD.encode(user_data))
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .metadata_options(
                LaunchTemplateInstanceMetadataOptionsRequest::builder()
                    .http_tokens(LaunchTemplateHttpTokensState::Required)
                    .build(),
            )
            .tag_specifications(
                LaunchTemplateTagSpecificationRequest::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(t.clone()))
                    .build(),
            )
            .tag_specifications(
                LaunchTemplateTagSpecificationRequest::builder()
                    .resource_type(ResourceType::Volume)
                    .set_tags(Some(t.clone()))
                    .build(),
            );
        for sg in &self.config.security_groups {
            data = data.security_group_ids(sg);
        }
        if let Some(profile) = &self.config.instance_profile {
            let spec = if profile.starts_with("arn:") {
                LaunchTemplateIamInstanceProfileSpecificationRequest::builder().arn(profile).build()
            } else {
                LaunchTemplateIamInstanceProfileSpecificationRequest::builder().name(profile).build()
            };
            data = data.iam_instance_profile(spec);
        }
        self.client
            .create_launch_template()
            .launch_template_name(&name)
            .launch_template_data(data.build())
            .tag_specifications(
                TagSpecification::builder().resource_type(ResourceType::LaunchTemplate).set_tags(Some(t)).build(),
            )
            .send()
            .await
            .map_err(|e| fail("CreateLaunchTemplate", e))?;
        Ok(name)
    }

    fn requirements(&self) -> InstanceRequirementsRequest {
        let [lo, hi] = self.config.vcpus;
        let [mlo, mhi] = self.config.memory_mib;
        let mut memory = MemoryMiBRequest::builder().min(mlo);
        if mhi > 0 {
            memory = memory.max(mhi);
        }
        let mut r = InstanceRequirementsRequest::builder()
            .v_cpu_count(VCpuCountRangeRequest::builder().min(lo).max(hi).build())
            .memory_mib(memory.build())
            .accelerator_count(AcceleratorCountRequest::builder().max(0).build());
        for m in &self.config.cpu_manufacturers {
            r = r.cpu_manufacturers(CpuManufacturer::from(m.as_str()));
        }
        r.build()
    }

    /// One request fleet of `vcpus` over the step's templates.
    async fn create_fleet(&self, request: &FleetRequest, vcpus: usize, wanted_items: usize) -> Result<String> {
        let subnet_groups: Vec<String> = match self.config.subnet_overrides {
            SubnetOverrides::Joined => vec![self.config.subnets.join(",")],
            SubnetOverrides::Separate => self.config.subnets.clone(),
        };
        let mut configs = Vec::new();
        for arch in self.config.amis.keys() {
            let mut config = FleetLaunchTemplateConfigRequest::builder().launch_template_specification(
                FleetLaunchTemplateSpecificationRequest::builder()
                    .launch_template_name(self.template_name(&request.run_id, &request.step, arch))
                    .version("$Latest")
                    .build(),
            );
            for subnets in &subnet_groups {
                config = config.overrides(
                    FleetLaunchTemplateOverridesRequest::builder()
                        .subnet_id(subnets)
                        .instance_requirements(self.requirements())
                        .build(),
                );
            }
            configs.push(config.build());
        }
        let until = std::time::SystemTime::now() + self.settings.lifetime;
        let mut t = self.tags(&request.run_id, &request.step, request.dagster_run_id.as_deref());
        // What the orchestrator asked for when this fleet was made: the audit trail of sizing.
        t.push(Tag::builder().key(ITEMS_WANTED_TAG).value(wanted_items.to_string()).build());
        let created = self
            .client
            .create_fleet()
            .r#type(FleetType::Request)
            .set_launch_template_configs(Some(configs))
            .target_capacity_specification(
                TargetCapacitySpecificationRequest::builder()
                    .total_target_capacity(vcpus as i32)
                    .default_target_capacity_type(DefaultTargetCapacityType::Spot)
                    .target_capacity_unit_type(TargetCapacityUnitType::Vcpu)
                    .build(),
            )
            .spot_options(
                SpotOptionsRequest::builder()
                    .allocation_strategy(SpotAllocationStrategy::PriceCapacityOptimized)
                    .build(),
            )
            .valid_until(aws_sdk_ec2::primitives::DateTime::from(until))
            .terminate_instances_with_expiration(true)
            .tag_specifications(
                TagSpecification::builder().resource_type(ResourceType::Fleet).set_tags(Some(t)).build(),
            )
            .send()
            .await
            .map_err(|e| fail("CreateFleet", e))?;
        created.fleet_id().map(String::from).ok_or_else(|| FleetError::Provider {
            operation: "CreateFleet",
            detail: "the answer has no fleet id".into(),
        })
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
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
        let v = found.unwrap_or(self.config.vcpus_per_item);
        self.vcpus_of_type.lock().unwrap_or_else(|p| p.into_inner()).insert(instance_type.to_string(), v);
        v
    }

    /// `DescribeInstances` for this deployment's instances, optionally of one run and step, and
    /// only those up (pending or running) when `up` says so.
    fn describe_ours(
        &self,
        of: Option<(&RunId, &str)>,
        up: bool,
    ) -> aws_sdk_ec2::operation::describe_instances::builders::DescribeInstancesFluentBuilder {
        let [tool, deployment] = self.ours();
        let mut req = self.client.describe_instances().filters(tool).filters(deployment);
        if up {
            req =
                req.filters(Filter::builder().name("instance-state-name").values("pending").values("running").build());
        }
        if let Some((run, step)) = of {
            req = req
                .filters(Filter::builder().name(format!("tag:{RUN_TAG}")).values(run.as_str()).build())
                .filters(Filter::builder().name(format!("tag:{STEP_TAG}")).values(step).build());
        }
        req
    }

    /// This deployment's instances that are pending or running, optionally of one run and step.
    async fn our_instances(&self, of: Option<(&RunId, &str)>) -> Result<Vec<(Instance, RunId)>> {
        let mut pages = self.describe_ours(of, true).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| fail("DescribeInstances", e))?;
            for r in page.reservations() {
                for i in r.instances() {
                    let instance = Instance {
                        id: i.instance_id().unwrap_or_default().to_string(),
                        state: i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default(),
                        instance_type: i.instance_type().map(|t| t.as_str().to_string()),
                        availability_zone: i.placement().and_then(|p| p.availability_zone()).map(String::from),
                    };
                    out.push((instance, RunId::from(tag_of(i.tags(), RUN_TAG).unwrap_or_default())));
                }
            }
        }
        Ok(out)
    }

    async fn step_instances(&self, run: &RunId, step: &str) -> Result<Vec<Instance>> {
        Ok(self.our_instances(Some((run, step))).await?.into_iter().map(|(i, _)| i).collect())
    }

    /// Errors the fleets report: `DescribeFleets` errors, and `DescribeFleetHistory`'s
    /// service errors where the endpoint implements it.
    async fn fleet_errors(&self, ids: &[String], since: std::time::SystemTime) -> Vec<String> {
        let mut errors = Vec::new();
        if ids.is_empty() {
            return errors;
        }
        if let Ok(out) = self.client.describe_fleets().set_fleet_ids(Some(ids.to_vec())).send().await {
            for f in out.fleets() {
                for e in f.errors() {
                    errors.push(format!(
                        "fleet {}: {}: {}",
                        f.fleet_id().unwrap_or_default(),
                        e.error_code().unwrap_or("error"),
                        e.error_message().unwrap_or_default()
                    ));
                }
            }
        }
        if !self.history.load(Ordering::Relaxed) {
            return errors;
        }
        for id in ids {
            let history = self
                .client
                .describe_fleet_history()
                .fleet_id(id)
                .start_time(aws_sdk_ec2::primitives::DateTime::from(since))
                .event_type(FleetEventType::ServiceError)
                .send()
                .await;
            match history {
                Ok(out) => {
                    for r in out.history_records() {
                        let info = r.event_information();
                        errors.push(format!(
                            "fleet {id}: {}{}",
                            info.and_then(|i| i.event_sub_type()).unwrap_or("service-error"),
                            info.and_then(|i| i.event_description()).map(|d| format!(": {d}")).unwrap_or_default()
                        ));
                    }
                }
                Err(e) => {
                    // An endpoint without it (moto) answers with an error: stop asking.
                    tracing::debug!("DescribeFleetHistory is not available here: {}", DisplayErrorContext(&e));
                    self.history.store(false, Ordering::Relaxed);
                    break;
                }
            }
        }
        errors
    }

    /// Deletes the step's launch templates, found by tag (so only ones that exist are asked
    /// for: moto answers a delete of a missing name with a parameter error).
    async fn delete_templates(&self, run: &RunId, step: &str) -> Result<()> {
        let [tool, deployment] = self.ours();
        let found = self
            .client
            .describe_launch_templates()
            .filters(tool)
            .filters(deployment)
            .filters(Filter::builder().name(format!("tag:{RUN_TAG}")).values(run.as_str()).build())
            .filters(Filter::builder().name(format!("tag:{STEP_TAG}")).values(step).build())
            .send()
            .await
            .map_err(|e| fail("DescribeLaunchTemplates", e))?;
        for t in found.launch_templates() {
            let Some(id) = t.launch_template_id() else { continue };
            if let Err(e) = self.client.delete_launch_template().launch_template_id(id).send().await
                && !not_found(&e)
            {
                return Err(fail("DeleteLaunchTemplate", e));
            }
        }
        Ok(())
    }

    /// Every fleet of this tool and deployment that is not deleted, with its run and step.
    async fn live_fleets(&self) -> Result<Vec<(String, RunId, StepName)>> {
        let mut pages = self.client.describe_fleets().into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| fail("DescribeFleets", e))?;
            for f in page.fleets() {
                let tags = f.tags();
                if tag_of(tags, TOOL_TAG.0) != Some(TOOL_TAG.1)
                    || tag_of(tags, DEPLOYMENT_TAG) != Some(self.settings.deployment.as_str())
                    || f.fleet_state().is_some_and(|s| s.as_str().starts_with("deleted"))
                {
                    continue;
                }
                out.push((
                    f.fleet_id().unwrap_or_default().to_string(),
                    RunId::from(tag_of(tags, RUN_TAG).unwrap_or_default()),
                    StepName::from(tag_of(tags, STEP_TAG).unwrap_or_default()),
                ));
            }
        }
        Ok(out)
    }

    async fn delete_fleets(&self, ids: &[String]) -> Result<()> {
        // At most 100 non-instant fleets per call.
        for chunk in ids.chunks(100) {
            let sent =
                self.client.delete_fleets().set_fleet_ids(Some(chunk.to_vec())).terminate_instances(true).send().await;
            let out = match sent {
                Ok(out) => out,
                // moto refuses to terminate the instances of a fleet that has none left ("No
                // instances specified"); there is nothing to terminate, so delete it without.
                Err(e)
                    if e.as_service_error().and_then(ProvideErrorMetadata::code)
                        == Some("InvalidParameterCombination") =>
                {
                    self.client
                        .delete_fleets()
                        .set_fleet_ids(Some(chunk.to_vec()))
                        .terminate_instances(false)
                        .send()
                        .await
                        .map_err(|e| fail("DeleteFleets", e))?
                }
                Err(e) => return Err(fail("DeleteFleets", e)),
            };
            if let Some(err) = out.unsuccessful_fleet_deletions().first() {
                let code = err.error().and_then(|e| e.code()).map(|c| c.as_str().to_string()).unwrap_or_default();
                if !code.contains("NotFound") {
                    return Err(FleetError::Provider {
                        operation: "DeleteFleets",
                        detail: format!("{code}: {:?}", err.error()),
                    });
                }
            }
        }
        Ok(())
    }

    async fn terminate(&self, ids: Vec<String>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.client
            .terminate_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .map_err(|e| fail("TerminateInstances", e))?;
        Ok(())
    }

    /// Checks that the binary exists and hashes to what the config says.
    async fn check_binary(&self, arch: &str, b: &WorkerBinary) -> Result<()> {
        use sha2::Digest as _;
        let setting = format!("ec2.worker_binaries.{arch}");
        let (bucket, key) = b.uri.trim_start_matches("s3://").split_once('/').unwrap_or((b.uri.as_str(), ""));
        let got = self.s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| {
            let why = match e.as_service_error() {
                Some(s) if s.is_no_such_key() => "it does not exist".to_string(),
                Some(s) => format!("{}: {}", s.code().unwrap_or("error"), s.message().unwrap_or_default()),
                None => DisplayErrorContext(&e).to_string(),
            };
            FleetError::Config(format!("{setting}: cannot read {}: {why}", b.uri))
        })?;
        let mut body = got.body;
        let mut hasher = sha2::Sha256::new();
        while let Some(chunk) =
            body.try_next().await.map_err(|e| FleetError::Config(format!("{setting}: reading {}: {e}", b.uri)))?
        {
            hasher.update(&chunk);
        }
        let hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if hex != b.sha256 {
            return Err(FleetError::Config(format!(
                "{setting}: {} has sha256 {hex}, but the config says {} (upload it again with `runner dist upload`)",
                b.uri, b.sha256
            )));
        }
        Ok(())
    }
}

/// The tag on each fleet with the items the orchestrator wanted room for when it was made.
pub const ITEMS_WANTED_TAG: &str = "spotlake:items-wanted";

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
        self.config.validate()?;
        // Reaching EC2 and seeing the subnets proves the endpoint, credentials and region.
        let out = self
            .client
            .describe_subnets()
            .set_subnet_ids(Some(self.config.subnets.clone()))
            .send()
            .await
            .map_err(|e| fail("DescribeSubnets (checking ec2.subnets)", e))?;
        if out.subnets().len() != self.config.subnets.len() {
            return Err(FleetError::Config(format!(
                "ec2.subnets lists {} subnets but EC2 knows {}",
                self.config.subnets.len(),
                out.subnets().len()
            )));
        }
        if !self.config.security_groups.is_empty() {
            let out = self
                .client
                .describe_security_groups()
                .set_group_ids(Some(self.config.security_groups.clone()))
                .send()
                .await
                .map_err(|e| fail("DescribeSecurityGroups (checking ec2.security_groups)", e))?;
            let known: Vec<&str> = out.security_groups().iter().filter_map(|g| g.group_id()).collect();
            if let Some(missing) = self.config.security_groups.iter().find(|g| !known.contains(&g.as_str())) {
                return Err(FleetError::Config(format!("ec2.security_groups: {missing} does not exist")));
            }
        }
        for (arch, ami) in &self.config.amis {
            let image = match self.client.describe_images().image_ids(ami).send().await {
                Ok(o) => o.images().first().cloned(),
                Err(e) if e.as_service_error().and_then(ProvideErrorMetadata::code).is_some() => None,
                Err(e) => return Err(fail("DescribeImages (checking ec2.amis)", e)),
            };
            let Some(image) = image else {
                return Err(FleetError::Config(format!("ec2.amis.{arch}: AMI {ami} does not exist in this region")));
            };
            let has = image.architecture().map(|a| a.as_str().to_string()).unwrap_or_default();
            if has != *arch {
                return Err(FleetError::Config(format!(
                    "ec2.amis.{arch}: AMI {ami} is for {has}, not {arch}: its instances could not run the runner"
                )));
            }
        }
        for (arch, b) in &self.config.worker_binaries {
            if self.config.amis.contains_key(arch) {
                self.check_binary(arch, b).await?;
            }
        }
        Ok(())
    }

    async fn launch(&self, request: &FleetRequest, wanted_items: usize) -> Result<FleetHandle> {
        self.config.validate()?;
        for (arch, ami) in &self.config.amis {
            if let Err(e) = self.create_template(request, arch, ami).await {
                // A second architecture's template failing must not strand the first.
                self.delete_templates(&request.run_id, &request.step).await.ok();
                return Err(e);
            }
        }
        let vcpus = (wanted_items.max(1) * self.config.vcpus_per_item).min(self.config.max_vcpus);
        let id = match self.create_fleet(request, vcpus, wanted_items).await {
            Ok(id) => id,
            Err(e) => {
                self.delete_templates(&request.run_id, &request.step).await.ok();
                return Err(e);
            }
        };
        let handle = FleetHandle { id: id.clone(), run_id: request.run_id.clone(), step: request.step.clone() };
        self.groups().insert(
            handle.id.clone(),
            Group { fleets: vec![Launched { id, vcpus, at: Instant::now(), shown: 0 }], ..Default::default() },
        );
        Ok(handle)
    }

    async fn maintain(&self, handle: &FleetHandle, request: &FleetRequest, wanted_items: usize) -> Result<FleetState> {
        let started = std::time::SystemTime::now();
        let instances = self.step_instances(&handle.run_id, &handle.step).await?;
        let mut running_vcpus = 0;
        for i in &instances {
            running_vcpus += match &i.instance_type {
                Some(t) => self.vcpus(t).await,
                None => self.config.vcpus_per_item,
            };
        }
        let (fleets, first_launch) = {
            let groups = self.groups();
            let fleets = groups.get(&handle.id).map(|g| g.fleets.clone()).unwrap_or_default();
            let first = fleets.iter().map(|f| f.at).min();
            (fleets, first)
        };
        // Capacity on its way: what young fleets asked for and have not shown yet (request
        // fleets fill asynchronously, so a partly filled one must not be asked for twice).
        let mut pending_vcpus = 0;
        let mut shown_now = Vec::new();
        for f in fleets.iter().filter(|f| f.at.elapsed() < PENDING_GRACE) {
            let mut shown = 0;
            if let Ok(out) = self.client.describe_fleet_instances().fleet_id(&f.id).send().await {
                for i in out.active_instances() {
                    shown += match i.instance_type() {
                        Some(t) => self.vcpus(t).await,
                        None => self.config.vcpus_per_item,
                    };
                }
            }
            let shown = shown.max(f.shown);
            shown_now.push((f.id.clone(), shown));
            pending_vcpus += f.vcpus.saturating_sub(shown);
        }
        if let Some(g) = self.groups().get_mut(&handle.id) {
            for f in &mut g.fleets {
                if let Some((_, shown)) = shown_now.iter().find(|(id, _)| *id == f.id) {
                    f.shown = *shown;
                }
            }
        }
        let ids: Vec<String> = fleets.iter().map(|f| f.id.clone()).collect();
        let since = started - first_launch.map(|t| t.elapsed()).unwrap_or_default() - Duration::from_secs(60);
        let errors = self.fleet_errors(&ids, since).await;
        let desired = (wanted_items * self.config.vcpus_per_item).min(self.config.max_vcpus);
        let have = running_vcpus + pending_vcpus;
        if wanted_items > 0 && have < desired {
            let vcpus = desired - have;
            let id = self.create_fleet(request, vcpus, wanted_items).await?;
            tracing::info!(fleet = %id, vcpus, wanted_items, "added spot capacity for step {}", handle.step);
            if let Some(g) = self.groups().get_mut(&handle.id) {
                g.fleets.push(Launched { id, vcpus, at: Instant::now(), shown: 0 });
            }
        }
        let mut groups = self.groups();
        let group = groups.entry(handle.id.clone()).or_default();
        let errors = errors.into_iter().filter(|e| group.seen_errors.insert(e.clone())).collect();
        Ok(FleetState {
            capacity_items: have / self.config.vcpus_per_item,
            instances,
            requested: group.fleets.iter().map(|f| f.vcpus).sum(),
            errors,
        })
    }

    async fn instances(&self, handle: &FleetHandle) -> Result<Vec<Instance>> {
        self.step_instances(&handle.run_id, &handle.step).await
    }

    async fn usage(&self, handle: &FleetHandle) -> Result<Vec<Usage>> {
        // Every state: terminated instances stay listed for about an hour after they end.
        let mut pages = self.describe_ours(Some((&handle.run_id, handle.step.as_str())), false).into_paginator().send();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| fail("DescribeInstances", e))?;
            for i in page.reservations().iter().flat_map(|r| r.instances()) {
                let vcpus = match i.instance_type() {
                    Some(t) => self.vcpus(t.as_str()).await,
                    None => self.config.vcpus_per_item,
                };
                out.push(usage::usage_of(i, vcpus, now));
            }
        }
        Ok(out)
    }

    async fn delete(&self, handle: &FleetHandle) -> Result<()> {
        // Every fleet of the step, found by tag as well as remembered: a top-up made by a
        // process that died is found too.
        let mut ids: Vec<String> = self
            .live_fleets()
            .await?
            .into_iter()
            .filter(|(_, run, step)| *run == handle.run_id && *step == handle.step)
            .map(|(id, _, _)| id)
            .collect();
        if let Some(group) = self.groups().remove(&handle.id) {
            ids.extend(group.fleets.into_iter().map(|f| f.id));
        }
        ids.sort();
        ids.dedup();
        self.delete_fleets(&ids).await?;
        let stray = self.step_instances(&handle.run_id, &handle.step).await?;
        self.terminate(stray.into_iter().map(|i| i.id).collect()).await?;
        self.delete_templates(&handle.run_id, &handle.step).await
    }

    async fn gc(&self, is_live: &(dyn for<'r> Fn(&'r RunId) -> bool + Sync)) -> Result<Vec<String>> {
        let mut deleted = Vec::new();
        let dead: Vec<String> =
            self.live_fleets().await?.into_iter().filter(|(_, run, _)| !is_live(run)).map(|(id, _, _)| id).collect();
        self.delete_fleets(&dead).await?;
        deleted.extend(dead);
        // Instances of this tool left behind by anything else (a fleet deleted without
        // terminating them, say).
        let stray: Vec<String> =
            self.our_instances(None).await?.into_iter().filter(|(_, run)| !is_live(run)).map(|(i, _)| i.id).collect();
        self.terminate(stray.clone()).await?;
        deleted.extend(stray);
        // Launch templates of runs that are over.
        let [tool, deployment] = self.ours();
        let mut pages =
            self.client.describe_launch_templates().filters(tool).filters(deployment).into_paginator().send();
        let mut templates = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| fail("DescribeLaunchTemplates", e))?;
            for t in page.launch_templates() {
                let run = RunId::from(tag_of(t.tags(), RUN_TAG).unwrap_or_default());
                if !is_live(&run)
                    && let Some(name) = t.launch_template_name()
                {
                    templates.push(name.to_string());
                }
            }
        }
        for name in templates {
            if let Err(e) = self.client.delete_launch_template().launch_template_name(&name).send().await
                && !not_found(&e)
            {
                return Err(fail("DeleteLaunchTemplate", e));
            }
            deleted.push(name);
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Ec2Config {
        toml::from_str(
            r#"
subnets = ["subnet-a", "subnet-b"]
amis = { x86_64 = "ami-x", arm64 = "ami-a" }
worker_binaries.x86_64 = { uri = "s3://b/runner-x86_64", sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
worker_binaries.arm64 = { uri = "s3://b/runner-aarch64", sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
"#,
        )
        .unwrap()
    }

    #[test]
    fn validation_catches_bad_requirements() {
        assert!(config().validate().is_ok());
        let mut c = config();
        c.vcpus = [8, 2];
        assert!(c.validate().unwrap_err().to_string().contains("vcpus"));
        let mut c = config();
        c.cpu_manufacturers = vec!["via".into()];
        assert!(c.validate().unwrap_err().to_string().contains("via"));
        let mut c = config();
        c.subnets.clear();
        assert!(c.validate().unwrap_err().to_string().contains("subnets"));
        let mut c = config();
        c.worker_binaries.remove("arm64");
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("arm64 AMI") && e.contains("no runner binary for arm64"), "{e}");
        let mut c = config();
        c.worker_binaries.get_mut("x86_64").unwrap().sha256 = "ABC".into();
        assert!(c.validate().unwrap_err().to_string().contains("ec2.worker_binaries.x86_64.sha256"));
    }
}
