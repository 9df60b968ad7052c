//! Making a step's capacity: one launch template per architecture (the AMI decides it, the boot
//! script travels in its user data), and `request` fleets whose overrides are instance
//! *requirements* across the subnets, spot capacity allocated `price-capacity-optimized` and
//! counted in vCPUs. Every fleet expires at the run's deadline (its maximum runtime and a
//! margin), the top-ups made late in a run included.

use std::time::{Duration, SystemTime};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    AcceleratorCountRequest, CpuManufacturer, DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest,
    FleetLaunchTemplateOverridesRequest, FleetLaunchTemplateSpecificationRequest, FleetType,
    InstanceRequirementsRequest, LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataOptionsRequest, LaunchTemplateInstanceNetworkInterfaceSpecificationRequest,
    LaunchTemplateTagSpecificationRequest, MemoryMiBRequest, RequestLaunchTemplateData, ResourceType, ShutdownBehavior,
    SpotAllocationStrategy, SpotOptionsRequest, Tag, TagSpecification, TargetCapacitySpecificationRequest,
    TargetCapacityUnitType, VCpuCountRangeRequest,
};
use base64::Engine as _;

use super::cleanup;
use super::config::{Ec2Config, SubnetOverrides};
use super::tags::{of_step, tags, template_name};
use super::trouble::{self, Trouble, fail};
use crate::fleet::{FleetError, FleetRequest, Result, boot};

/// The tag on each fleet with the items the orchestrator wanted room for when it was made.
pub const ITEMS_WANTED_TAG: &str = "spotlake:items-wanted";
/// User data may hold at most this many bytes (before base64).
const USER_DATA_MAX: usize = 16 * 1024;
/// Waits before asking again for a fleet whose launch template EC2 does not show yet (a
/// template just made is eventually consistent).
const TEMPLATE_VISIBLE_WAITS: [Duration; 4] =
    [Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4), Duration::from_secs(8)];

/// What launching needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Launcher<'a> {
    pub(crate) client: &'a Client,
    pub(crate) config: &'a Ec2Config,
    pub(crate) deployment: &'a str,
    /// When every fleet expires.
    pub(crate) deadline: SystemTime,
}

impl Launcher<'_> {
    fn tags(&self, request: &FleetRequest) -> Vec<Tag> {
        tags(self.deployment, &request.run_id, &request.step, request.dagster_run_id.as_deref())
    }

    /// The launch template for one architecture.
    pub(crate) async fn template(&self, request: &FleetRequest, arch: &str, ami: &str) -> Result<String> {
        let name = template_name(self.deployment, &request.run_id, &request.step, arch);
        let t = self.tags(request);
        let user_data = boot::script(&request.worker_config, &request.workers_prefix, &self.config.worker_binaries);
        if user_data.len() > USER_DATA_MAX {
            return Err(FleetError::Config(format!(
                "the boot script is {} bytes, over EC2's {USER_DATA_MAX}-byte user data limit",
                user_data.len()
            )));
        }
        let tagged = |kind: ResourceType| {
            LaunchTemplateTagSpecificationRequest::builder().resource_type(kind).set_tags(Some(t.clone())).build()
        };
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
            .tag_specifications(tagged(ResourceType::Instance))
            .tag_specifications(tagged(ResourceType::Volume));
        match self.config.public_ip {
            // The address is a property of the network interface, which then carries the
            // security groups too (EC2 refuses them in both places); the fleet's override gives
            // its subnet.
            Some(public) => {
                let mut nic = LaunchTemplateInstanceNetworkInterfaceSpecificationRequest::builder()
                    .device_index(0)
                    .associate_public_ip_address(public);
                for sg in &self.config.security_groups {
                    nic = nic.groups(sg);
                }
                data = data.network_interfaces(nic.build());
            }
            None => {
                for sg in &self.config.security_groups {
                    data = data.security_group_ids(sg);
                }
            }
        }
        if let Some(profile) = &self.config.instance_profile {
            let spec = if profile.starts_with("arn:") {
                LaunchTemplateIamInstanceProfileSpecificationRequest::builder().arn(profile).build()
            } else {
                LaunchTemplateIamInstanceProfileSpecificationRequest::builder().name(profile).build()
            };
            data = data.iam_instance_profile(spec);
        }
        let create = self
            .client
            .create_launch_template()
            .launch_template_name(&name)
            .launch_template_data(data.build())
            .tag_specifications(
                TagSpecification::builder().resource_type(ResourceType::LaunchTemplate).set_tags(Some(t)).build(),
            );
        match create.clone().send().await {
            Ok(_) => Ok(name),
            Err(e) if trouble::code(&e).is_some_and(|c| c.contains("AlreadyExists")) => {
                // A run resumed under its own id after a crash finds its own template: it is
                // replaced (this attempt's boot script may differ). Anyone else's is refused.
                let ours =
                    cleanup::templates(self.client, self.deployment, Some(of_step(&request.run_id, &request.step)))
                        .await?
                        .into_iter()
                        .find(|(_, n, _, _)| *n == name);
                let Some((id, _, _, _)) = ours else { return Err(fail("CreateLaunchTemplate", e)) };
                self.client
                    .delete_launch_template()
                    .launch_template_id(&id)
                    .send()
                    .await
                    .map_err(|e| fail("DeleteLaunchTemplate (an earlier attempt's)", e))?;
                tracing::info!(template = %name, "replaced the launch template an earlier attempt of this run left");
                create.send().await.map_err(|e| fail("CreateLaunchTemplate", e))?;
                Ok(name)
            }
            Err(e) => Err(fail("CreateLaunchTemplate", e)),
        }
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

    fn template_configs(&self, request: &FleetRequest) -> Vec<FleetLaunchTemplateConfigRequest> {
        let subnet_groups: Vec<String> = match self.config.subnet_overrides {
            SubnetOverrides::Joined => vec![self.config.subnets.join(",")],
            SubnetOverrides::Separate => self.config.subnets.clone(),
        };
        let mut configs = Vec::new();
        for arch in self.config.amis.keys() {
            let mut config = FleetLaunchTemplateConfigRequest::builder().launch_template_specification(
                FleetLaunchTemplateSpecificationRequest::builder()
                    .launch_template_name(template_name(self.deployment, &request.run_id, &request.step, arch))
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
        configs
    }

    /// One request fleet of `vcpus` over the step's templates. A failure comes with its
    /// trouble, so a shortage or a quota can back off and the rest fail the step.
    pub(crate) async fn fleet(
        &self,
        request: &FleetRequest,
        vcpus: usize,
        wanted_items: usize,
        token: &str,
    ) -> std::result::Result<String, (Trouble, FleetError)> {
        let mut t = self.tags(request);
        // What the orchestrator asked for when this fleet was made: the audit trail of sizing.
        t.push(Tag::builder().key(ITEMS_WANTED_TAG).value(wanted_items.to_string()).build());
        let mut waits = TEMPLATE_VISIBLE_WAITS.iter();
        loop {
            let sent = self
                .client
                .create_fleet()
                .r#type(FleetType::Request)
                // Retries of this call (the SDK's, and the first launch's after a timeout whose
                // request went through) send the same token, so EC2 makes the fleet once.
                .client_token(token)
                .set_launch_template_configs(Some(self.template_configs(request)))
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
                .valid_until(aws_sdk_ec2::primitives::DateTime::from(self.deadline))
                .terminate_instances_with_expiration(true)
                .tag_specifications(
                    TagSpecification::builder().resource_type(ResourceType::Fleet).set_tags(Some(t.clone())).build(),
                )
                .send()
                .await;
            match sent {
                Ok(created) => {
                    return created.fleet_id().map(String::from).ok_or_else(|| {
                        (
                            Trouble::Other,
                            FleetError::Provider {
                                operation: "CreateFleet",
                                detail: "the answer has no fleet id".into(),
                            },
                        )
                    });
                }
                Err(e) => {
                    let code = trouble::code(&e).unwrap_or_default().to_string();
                    if template_not_visible(&code)
                        && let Some(wait) = waits.next()
                    {
                        tracing::debug!(?wait, "CreateFleet: the launch template is not visible yet ({code})");
                        tokio::time::sleep(*wait).await;
                        continue;
                    }
                    return Err((trouble::of_error(&e), fail("CreateFleet", e)));
                }
            }
        }
    }
}

/// A `CreateFleet` idempotency token (at most 64 ASCII characters): the run, the moment and a
/// sequence number, distinct for every fleet this process asks for.
pub(crate) fn client_token(request: &FleetRequest) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let run: String = request.run_id.as_str().chars().filter(char::is_ascii_alphanumeric).take(24).collect();
    format!("{run}-{nanos:x}-{n:x}")
}

/// Whether a `CreateFleet` error code says a launch template is not found (EC2's codes for
/// a name and an id).
pub(crate) fn template_not_visible(code: &str) -> bool {
    code.starts_with("InvalidLaunchTemplateName.NotFound") || code.starts_with("InvalidLaunchTemplateId.NotFound")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_not_yet_visible_is_asked_for_again() {
        assert!(template_not_visible("InvalidLaunchTemplateName.NotFoundException"));
        assert!(template_not_visible("InvalidLaunchTemplateId.NotFound"));
        assert!(!template_not_visible("InvalidLaunchTemplateName.AlreadyExistsException"));
        assert!(!template_not_visible("InsufficientInstanceCapacity"));
        // Four waits, 15 s in all: long enough for EC2's consistency, short enough to fail a
        // real mistake quickly.
        assert_eq!(TEMPLATE_VISIBLE_WAITS.iter().sum::<Duration>(), Duration::from_secs(15));
    }
}
