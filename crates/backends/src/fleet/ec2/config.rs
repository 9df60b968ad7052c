//! The `[ec2]` configuration: where instances may run (subnets, security groups, AMIs, the
//! binaries they boot), what they may be (vCPU and memory ranges, CPU makers) and how long a
//! step waits for spot capacity. Everything here is checked before anything is launched.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fleet::boot::WorkerBinary;
use crate::fleet::{FleetError, Result};

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
    /// Whether instances get a public IPv4 address: unset, the subnet's default (on in a
    /// default VPC; $0.005 an address-hour); `false`, none (the subnets then need a NAT gateway
    /// or VPC endpoints for S3, SQS and, with `[env]` secrets, Secrets Manager and SSM).
    #[serde(default)]
    pub public_ip: Option<bool>,
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
    /// How long a step that wants capacity may go with no instance up before it fails for
    /// want of spot capacity (naming the requirements, the zones and what AWS said).
    #[serde(default = "default_capacity_wait_secs")]
    pub capacity_wait_secs: u64,
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
fn default_capacity_wait_secs() -> u64 {
    1200
}

impl Ec2Config {
    /// The instance requirements in words, for messages: what a shortage is a shortage of.
    pub fn requirements_text(&self) -> String {
        let [lo, hi] = self.vcpus;
        let [mlo, mhi] = self.memory_mib;
        let memory = if mhi > 0 { format!("{mlo}-{mhi} MiB") } else { format!("at least {mlo} MiB") };
        let arches: Vec<&str> = self.amis.keys().map(String::as_str).collect();
        format!(
            "{lo}-{hi} vCPUs, {memory}, CPUs by {}, no accelerators, {} (spot)",
            self.cpu_manufacturers.join("/"),
            arches.join(" or ")
        )
    }

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
        if self.capacity_wait_secs == 0 {
            return bad("ec2.capacity_wait_secs must be positive".into());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requirements_read_as_words() {
        let mut c = config();
        assert_eq!(
            c.requirements_text(),
            "2-16 vCPUs, at least 4096 MiB, CPUs by intel/amd/amazon-web-services, no accelerators, arm64 or x86_64 (spot)"
        );
        c.memory_mib = [8192, 65536];
        c.cpu_manufacturers = vec!["amd".into()];
        assert!(c.requirements_text().contains("8192-65536 MiB, CPUs by amd,"), "{}", c.requirements_text());
    }

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
