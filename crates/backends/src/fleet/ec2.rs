//! An EC2 spot fleet: one launch template per architecture (the AMI decides it), a `maintain`
//! fleet whose overrides are instance *requirements* (vCPU and memory ranges, CPU makers, no
//! accelerators) across every subnet, spot capacity allocated `price-capacity-optimized` and
//! counted in vCPUs. Worker configuration travels in user data; credentials come from the
//! instance profile. The fleet expires at the run's maximum runtime, so even an orchestrator
//! that dies outright cannot leave it running for ever.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    AcceleratorCountRequest, CpuManufacturer, DefaultTargetCapacityType, Filter, FleetLaunchTemplateConfigRequest,
    FleetLaunchTemplateOverridesRequest, FleetLaunchTemplateSpecificationRequest, FleetType,
    InstanceRequirementsRequest, LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataOptionsRequest, LaunchTemplateTagSpecificationRequest, MemoryMiBRequest,
    RequestLaunchTemplateData, ResourceType, ShutdownBehavior, SpotAllocationStrategy, SpotOptionsRequest, Tag,
    TagSpecification, TargetCapacitySpecificationRequest, TargetCapacityUnitType, VCpuCountRangeRequest,
};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{
    DAGSTER_RUN_TAG, Fleet, FleetError, FleetHandle, FleetRequest, Instance, RUN_TAG, Result, STEP_TAG, TOOL_TAG,
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
    /// The runner binary per architecture (`s3://...`), fetched by the user data at boot.
    pub worker_binaries: BTreeMap<String, String>,
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
                return bad(format!("ec2.worker_binaries has no runner binary for {arch}"));
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
        Ok(())
    }
}

/// A spot fleet per step.
#[derive(Debug, Clone)]
pub struct Ec2Fleet {
    client: Client,
    config: Ec2Config,
    /// How long a fleet may live (the run's max runtime).
    lifetime: Duration,
}

fn fail<E>(operation: &'static str, e: SdkError<E>) -> FleetError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    FleetError::Provider { operation, detail: DisplayErrorContext(&e).to_string() }
}

fn tags(request_run: &RunId, step: &str, dagster: Option<&str>) -> Vec<Tag> {
    let mut t = vec![
        Tag::builder().key(TOOL_TAG.0).value(TOOL_TAG.1).build(),
        Tag::builder().key(RUN_TAG).value(request_run.as_str()).build(),
        Tag::builder().key(STEP_TAG).value(step).build(),
    ];
    if let Some(d) = dagster {
        t.push(Tag::builder().key(DAGSTER_RUN_TAG).value(d).build());
    }
    t
}

fn template_name(run: &RunId, step: &str, arch: &str) -> String {
    let raw = format!("spotlake-{run}-{step}-{arch}");
    raw.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.()/".contains(c) { c } else { '-' }).take(128).collect()
}

impl Ec2Fleet {
    /// A fleet provider.
    pub fn new(client: Client, config: Ec2Config, lifetime: Duration) -> Self {
        Self { client, config, lifetime }
    }

    /// The boot script: write the worker config, fetch the runner for this architecture, run
    /// it, and power off (the instance terminates) when it exits.
    pub fn user_data(&self, request: &FleetRequest) -> String {
        let config = &request.worker_config;
        let bin = |arch: &str| self.config.worker_binaries.get(arch).cloned().unwrap_or_default();
        format!(
            "#!/bin/bash\nset -uo pipefail\nmkdir -p /opt/spotlake\ncat > /opt/spotlake/worker.json <<'JSON'\n{config}\nJSON\n\
             case \"$(uname -m)\" in aarch64) BIN='{arm}' ;; *) BIN='{x86}' ;; esac\n\
             aws s3 cp \"$BIN\" /opt/spotlake/runner && chmod +x /opt/spotlake/runner\n\
             /opt/spotlake/runner worker --config-file /opt/spotlake/worker.json\n\
             shutdown -h now\n",
            arm = bin("arm64"),
            x86 = bin("x86_64"),
        )
    }

    async fn create_template(&self, request: &FleetRequest, arch: &str, ami: &str) -> Result<String> {
        let name = template_name(&request.run_id, &request.step, arch);
        let t = tags(&request.run_id, &request.step, request.dagster_run_id.as_deref());
        let mut data = RequestLaunchTemplateData::builder()
            .image_id(ami)
            .instance_type(self.config.template_instance_types[arch].as_str().into())
            .user_data(base64::engine::general_purpose::STANDARD.encode(self.user_data(request)))
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

    async fn delete_templates(&self, run: &RunId, step: &str) {
        for arch in self.config.amis.keys() {
            let _ =
                self.client.delete_launch_template().launch_template_name(template_name(run, step, arch)).send().await;
        }
    }
}

#[async_trait]
impl Fleet for Ec2Fleet {
    fn kind(&self) -> BackendKind {
        BackendKind::Aws
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
        Ok(())
    }

    async fn launch(&self, request: &FleetRequest) -> Result<FleetHandle> {
        self.config.validate()?;
        let mut configs = Vec::new();
        let subnet_groups: Vec<String> = match self.config.subnet_overrides {
            SubnetOverrides::Joined => vec![self.config.subnets.join(",")],
            SubnetOverrides::Separate => self.config.subnets.clone(),
        };
        for (arch, ami) in &self.config.amis {
            let name = self.create_template(request, arch, ami).await?;
            let mut config = FleetLaunchTemplateConfigRequest::builder().launch_template_specification(
                FleetLaunchTemplateSpecificationRequest::builder()
                    .launch_template_name(name)
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
        let vcpus =
            (request.capacity * self.config.vcpus_per_item).clamp(self.config.vcpus[0] as usize, self.config.max_vcpus);
        let until = std::time::SystemTime::now() + self.lifetime;
        let t = tags(&request.run_id, &request.step, request.dagster_run_id.as_deref());
        let created = self
            .client
            .create_fleet()
            .r#type(FleetType::Maintain)
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
            .await;
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                self.delete_templates(&request.run_id, &request.step).await;
                return Err(fail("CreateFleet", e));
            }
        };
        let id = created.fleet_id().unwrap_or_default().to_string();
        Ok(FleetHandle { id, run_id: request.run_id.clone(), step: request.step.clone() })
    }

    async fn maintain(&self, _handle: &FleetHandle, _request: &FleetRequest) -> Result<()> {
        // A maintain fleet replaces reclaimed spot capacity by itself.
        Ok(())
    }

    async fn instances(&self, handle: &FleetHandle) -> Result<Vec<Instance>> {
        let out = self
            .client
            .describe_fleet_instances()
            .fleet_id(&handle.id)
            .send()
            .await
            .map_err(|e| fail("DescribeFleetInstances", e))?;
        Ok(out
            .active_instances()
            .iter()
            .map(|i| Instance {
                id: i.instance_id().unwrap_or_default().to_string(),
                state: "running".into(),
                instance_type: i.instance_type().map(String::from),
                availability_zone: None,
            })
            .collect())
    }

    async fn delete(&self, handle: &FleetHandle) -> Result<()> {
        // Deleting is idempotent: a fleet that is already gone (or going) needs nothing more.
        let described = self.client.describe_fleets().fleet_ids(&handle.id).send().await;
        let gone = match &described {
            Ok(out) => out.fleets().iter().all(|f| f.fleet_state().is_some_and(|s| s.as_str().starts_with("deleted"))),
            Err(e) => e.as_service_error().and_then(ProvideErrorMetadata::code).is_some_and(|c| c.contains("NotFound")),
        };
        if gone {
            self.delete_templates(&handle.run_id, &handle.step).await;
            return Ok(());
        }
        let out = self
            .client
            .delete_fleets()
            .fleet_ids(&handle.id)
            .terminate_instances(true)
            .send()
            .await
            .map_err(|e| fail("DeleteFleets", e))?;
        if let Some(err) = out.unsuccessful_fleet_deletions().first() {
            let code = err.error().and_then(|e| e.code()).map(|c| c.as_str().to_string()).unwrap_or_default();
            if !code.contains("NotFound") {
                return Err(FleetError::Provider {
                    operation: "DeleteFleets",
                    detail: format!("{code}: {:?}", err.error()),
                });
            }
        }
        self.delete_templates(&handle.run_id, &handle.step).await;
        Ok(())
    }

    async fn gc(&self, is_live: &(dyn for<'r> Fn(&'r RunId) -> bool + Sync)) -> Result<Vec<String>> {
        let mut deleted = Vec::new();
        let mut pages = self.client.describe_fleets().into_paginator().send();
        let mut dead: Vec<(String, RunId, StepName)> = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| fail("DescribeFleets", e))?;
            for f in page.fleets() {
                let tag =
                    |k: &str| f.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(String::from);
                if tag(TOOL_TAG.0).as_deref() != Some(TOOL_TAG.1) {
                    continue;
                }
                let state = f.fleet_state().map(|s| s.as_str().to_string()).unwrap_or_default();
                if state.starts_with("deleted") {
                    continue;
                }
                let run = RunId::from(tag(RUN_TAG).unwrap_or_default());
                if !is_live(&run) {
                    dead.push((
                        f.fleet_id().unwrap_or_default().to_string(),
                        run,
                        StepName::from(tag(STEP_TAG).unwrap_or_default()),
                    ));
                }
            }
        }
        for (id, run_id, step) in dead {
            self.delete(&FleetHandle { id: id.clone(), run_id, step }).await?;
            deleted.push(id);
        }
        // Instances of this tool left behind by anything else (a fleet deleted without
        // terminating them, say).
        let mut stray = Vec::new();
        let mut pages = self
            .client
            .describe_instances()
            .filters(Filter::builder().name(format!("tag:{}", TOOL_TAG.0)).values(TOOL_TAG.1).build())
            .filters(Filter::builder().name("instance-state-name").values("pending").values("running").build())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| fail("DescribeInstances", e))?;
            for r in page.reservations() {
                for i in r.instances() {
                    let run =
                        i.tags().iter().find(|t| t.key() == Some(RUN_TAG)).and_then(|t| t.value()).unwrap_or_default();
                    if !is_live(&RunId::from(run)) {
                        stray.push(i.instance_id().unwrap_or_default().to_string());
                    }
                }
            }
        }
        if !stray.is_empty() {
            self.client
                .terminate_instances()
                .set_instance_ids(Some(stray.clone()))
                .send()
                .await
                .map_err(|e| fail("TerminateInstances", e))?;
            deleted.extend(stray);
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
worker_binaries = { x86_64 = "s3://b/runner-x86_64", arm64 = "s3://b/runner-aarch64" }
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
        assert!(c.validate().unwrap_err().to_string().contains("arm64"));
    }
}
