//! Checks before anything is launched, by AWS's own rules: the subnets exist, lie in one VPC
//! and in distinct availability zones (an EC2 Fleet can't span two subnets of one zone), the
//! security groups exist in that VPC, each AMI is of its configured architecture, each worker
//! binary is where the config says, with its sha256, and (where IAM can be read) the instance
//! profile exists with a role, and the fleet's service-linked role is there (made if missing).

use std::collections::BTreeMap;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};

use super::config::Ec2Config;
use super::trouble::fail;
use crate::fleet::boot::WorkerBinary;
use crate::fleet::{FleetError, Result};

/// One subnet as EC2 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subnet {
    pub(crate) id: String,
    pub(crate) zone: String,
    pub(crate) vpc: String,
}

/// Checks the configured subnets against what EC2 knows; returns the zone of each subnet.
pub(crate) fn check_subnets(configured: &[String], known: &[Subnet]) -> Result<BTreeMap<String, String>> {
    let bad = |m: String| Err(FleetError::Config(m));
    let mut zones: BTreeMap<&str, &str> = BTreeMap::new();
    let mut vpcs: BTreeMap<&str, &str> = BTreeMap::new();
    for id in configured {
        let Some(s) = known.iter().find(|s| s.id == *id) else {
            return bad(format!("ec2.subnets: {id} does not exist in this region"));
        };
        if let Some(other) = zones.insert(&s.zone, &s.id) {
            return bad(format!(
                "ec2.subnets: {other} and {id} are both in {}; an EC2 Fleet can't span two subnets of one \
                 availability zone: keep one of them",
                s.zone
            ));
        }
        vpcs.entry(&s.vpc).or_insert(&s.id);
    }
    if vpcs.len() > 1 {
        let list: Vec<String> = vpcs.iter().map(|(vpc, subnet)| format!("{subnet} in {vpc}")).collect();
        return bad(format!("ec2.subnets lie in more than one VPC ({}): use subnets of one VPC", list.join(", ")));
    }
    Ok(configured
        .iter()
        .filter_map(|id| known.iter().find(|s| s.id == *id).map(|s| (s.id.clone(), s.zone.clone())))
        .collect())
}

/// Checks that each security group exists and lies in the subnets' VPC.
pub(crate) fn check_security_groups(configured: &[String], known: &[(String, String)], vpc: &str) -> Result<()> {
    for g in configured {
        match known.iter().find(|(id, _)| id == g) {
            None => return Err(FleetError::Config(format!("ec2.security_groups: {g} does not exist"))),
            Some((_, in_vpc)) if in_vpc != vpc => {
                return Err(FleetError::Config(format!(
                    "ec2.security_groups: {g} is in {in_vpc}, but the subnets are in {vpc}: use a group of {vpc}"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Everything [`super::Ec2Fleet::preflight`] checks; returns each subnet's zone.
pub(crate) async fn preflight(
    client: &Client,
    s3: &aws_sdk_s3::Client,
    iam: Option<&aws_sdk_iam::Client>,
    config: &Ec2Config,
) -> Result<BTreeMap<String, String>> {
    config.validate()?;
    // Reaching EC2 and seeing the subnets proves the endpoint, credentials and region.
    let out = client
        .describe_subnets()
        .set_subnet_ids(Some(config.subnets.clone()))
        .send()
        .await
        .map_err(|e| fail("DescribeSubnets (checking ec2.subnets)", e))?;
    let known: Vec<Subnet> = out
        .subnets()
        .iter()
        .map(|s| Subnet {
            id: s.subnet_id().unwrap_or_default().to_string(),
            zone: s.availability_zone().unwrap_or_default().to_string(),
            vpc: s.vpc_id().unwrap_or_default().to_string(),
        })
        .collect();
    let zones = check_subnets(&config.subnets, &known)?;
    if !config.security_groups.is_empty() {
        let out = client
            .describe_security_groups()
            .set_group_ids(Some(config.security_groups.clone()))
            .send()
            .await
            .map_err(|e| fail("DescribeSecurityGroups (checking ec2.security_groups)", e))?;
        let groups: Vec<(String, String)> = out
            .security_groups()
            .iter()
            .map(|g| (g.group_id().unwrap_or_default().to_string(), g.vpc_id().unwrap_or_default().to_string()))
            .collect();
        let vpc = known.first().map(|s| s.vpc.as_str()).unwrap_or_default();
        check_security_groups(&config.security_groups, &groups, vpc)?;
    }
    for (arch, ami) in &config.amis {
        let image = match client.describe_images().image_ids(ami).send().await {
            Ok(o) => o.images().first().cloned(),
            Err(e) => match e.as_service_error().and_then(ProvideErrorMetadata::code) {
                Some(code) => {
                    let message = e.as_service_error().and_then(ProvideErrorMetadata::message).unwrap_or_default();
                    return Err(ami_error(arch, ami, code, message));
                }
                None => return Err(fail("DescribeImages (checking ec2.amis)", e)),
            },
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
    for (arch, b) in &config.worker_binaries {
        if config.amis.contains_key(arch) {
            check_binary(s3, arch, b).await?;
        }
    }
    if let Some(iam) = iam {
        check_iam(iam, config).await?;
    }
    Ok(zones)
}

/// What a `DescribeImages` error says about a configured AMI, by EC2's codes: only
/// `InvalidAMIID.NotFound` and `InvalidAMIID.Unavailable` mean it is not there; a malformed id
/// is a typo; anything else (a permission, throttling) is the call failing, named as such.
pub(crate) fn ami_error(arch: &str, ami: &str, code: &str, message: &str) -> FleetError {
    match code {
        "InvalidAMIID.NotFound" | "InvalidAMIID.Unavailable" => {
            FleetError::Config(format!("ec2.amis.{arch}: AMI {ami} does not exist in this region ({code})"))
        }
        "InvalidAMIID.Malformed" => {
            FleetError::Config(format!("ec2.amis.{arch}: {ami} is not an AMI id (ami- and hex digits): {message}"))
        }
        _ => FleetError::Provider {
            operation: "DescribeImages (checking ec2.amis)",
            detail: format!("{code}: {message} (AMI {ami} could not be checked; ec2:DescribeImages is needed)"),
        },
    }
}

/// The name of an instance profile given as a name or an ARN
/// (`arn:aws:iam::123456789012:instance-profile/path/name`).
pub(crate) fn profile_name(profile: &str) -> &str {
    if profile.starts_with("arn:") { profile.rsplit('/').next().unwrap_or(profile) } else { profile }
}

/// The role EC2 Fleet launches and terminates instances with.
pub(crate) const FLEET_ROLE: &str = "AWSServiceRoleForEC2Fleet";

/// The service name whose linked role EC2 Fleet uses.
const FLEET_SERVICE: &str = "ec2fleet.amazonaws.com";

/// Checks the instance profile (it must exist and hold a role, or the workers have no
/// credentials) and the fleet's service-linked role, which AWS says must exist before the first
/// fleet is made through the API: a missing one is created, and a caller not allowed to create
/// it is refused naming the command that does. A caller not allowed to read IAM is told so, and
/// the launch goes on: the fleet's history names a missing profile or role within a look.
async fn check_iam(iam: &aws_sdk_iam::Client, config: &Ec2Config) -> Result<()> {
    if let Some(profile) = &config.instance_profile {
        let name = profile_name(profile);
        match iam.get_instance_profile().instance_profile_name(name).send().await {
            Ok(out) => {
                if out.instance_profile().is_none_or(|p| p.roles().is_empty()) {
                    return Err(FleetError::Config(format!(
                        "ec2.instance_profile: {profile} has no role, so its instances would have no credentials: \
                         add the worker role to it (runner/AWS.md)"
                    )));
                }
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => {
                return Err(FleetError::Config(format!(
                    "ec2.instance_profile: {profile} does not exist (IAM has no instance profile named {name})"
                )));
            }
            Err(e) => tracing::warn!(
                "could not check ec2.instance_profile {profile} (needs iam:GetInstanceProfile): {}",
                DisplayErrorContext(&e)
            ),
        }
    }
    match iam.get_role().role_name(FLEET_ROLE).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => {
            let made = iam.create_service_linked_role().aws_service_name(FLEET_SERVICE).send().await;
            match made {
                Ok(_) => {
                    tracing::info!("created the {FLEET_ROLE} service-linked role, which EC2 Fleet launches with");
                    Ok(())
                }
                Err(e) => {
                    let code = e.as_service_error().and_then(ProvideErrorMetadata::code).unwrap_or_default();
                    let message = e.as_service_error().and_then(ProvideErrorMetadata::message).unwrap_or_default();
                    role_not_created(code, message).map_err(FleetError::Config)
                }
            }
        }
        Err(e) => {
            tracing::warn!(
                "could not check the {FLEET_ROLE} service-linked role (needs iam:GetRole): {}",
                DisplayErrorContext(&e)
            );
            Ok(())
        }
    }
}

/// Whether a failed `CreateServiceLinkedRole` leaves the role in place: IAM answers
/// `InvalidInput` ("… has been taken in this account") when another caller made it first
/// (moto, which names the role differently, answers `EntityAlreadyExists`).
pub(crate) fn role_not_created(code: &str, message: &str) -> std::result::Result<(), String> {
    if code == "InvalidInput" && message.contains("has been taken") || code == "EntityAlreadyExists" {
        return Ok(());
    }
    Err(format!(
        "the {FLEET_ROLE} service-linked role does not exist, and AWS says it must before the first EC2 Fleet is made \
         through the API; creating it failed ({code}: {message}). Have an administrator run `aws iam \
         create-service-linked-role --aws-service-name {FLEET_SERVICE}` once per account, or allow \
         iam:CreateServiceLinkedRole for {FLEET_SERVICE} (runner/AWS.md)"
    ))
}

/// Checks that the binary exists and hashes to what the config says.
async fn check_binary(s3: &aws_sdk_s3::Client, arch: &str, b: &WorkerBinary) -> Result<()> {
    use sha2::Digest as _;
    let setting = format!("ec2.worker_binaries.{arch}");
    let (bucket, key) = b.uri.trim_start_matches("s3://").split_once('/').unwrap_or((b.uri.as_str(), ""));
    let got = s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(id: &str, zone: &str, vpc: &str) -> Subnet {
        Subnet { id: id.into(), zone: zone.into(), vpc: vpc.into() }
    }

    #[test]
    fn two_subnets_in_one_zone_are_refused_naming_both() {
        let known = [
            subnet("subnet-a", "us-east-1a", "vpc-1"),
            subnet("subnet-b", "us-east-1a", "vpc-1"),
            subnet("subnet-c", "us-east-1b", "vpc-1"),
        ];
        let e = check_subnets(&["subnet-a".into(), "subnet-b".into()], &known).unwrap_err().to_string();
        assert!(e.contains("subnet-a and subnet-b are both in us-east-1a"), "{e}");
        let zones = check_subnets(&["subnet-a".into(), "subnet-c".into()], &known).unwrap();
        assert_eq!(zones["subnet-c"], "us-east-1b");
    }

    #[test]
    fn only_ec2s_not_found_codes_say_an_ami_does_not_exist() {
        let said = |code: &str| ami_error("x86_64", "ami-0abc", code, "as EC2 says").to_string();
        for code in ["InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"] {
            assert!(said(code).contains("ec2.amis.x86_64: AMI ami-0abc does not exist in this region"), "{code}");
        }
        assert!(said("InvalidAMIID.Malformed").contains("ami-0abc is not an AMI id"));
        for code in ["UnauthorizedOperation", "RequestLimitExceeded", "InternalError"] {
            let e = said(code);
            assert!(!e.contains("does not exist"), "{code}: {e}");
            assert!(e.contains("DescribeImages") && e.contains(code) && e.contains("could not be checked"), "{e}");
        }
    }

    #[test]
    fn a_fleet_role_that_cannot_be_created_is_refused_naming_the_command() {
        // IAM's answer when the role exists already (another caller made it first).
        assert!(role_not_created("InvalidInput", "Service role name AWSServiceRoleForEC2Fleet has been taken in this account, please try a different suffix.").is_ok());
        let e = role_not_created("AccessDenied", "User is not authorized to perform: iam:CreateServiceLinkedRole")
            .unwrap_err();
        assert!(e.contains("AWSServiceRoleForEC2Fleet") && e.contains("AccessDenied"), "{e}");
        assert!(e.contains("aws iam create-service-linked-role --aws-service-name ec2fleet.amazonaws.com"), "{e}");
    }

    #[test]
    fn an_instance_profile_is_named_by_its_name_or_arn() {
        assert_eq!(profile_name("spotlake-worker"), "spotlake-worker");
        assert_eq!(profile_name("arn:aws:iam::123456789012:instance-profile/spotlake-worker"), "spotlake-worker");
        assert_eq!(
            profile_name("arn:aws:iam::123456789012:instance-profile/teams/data/spotlake-worker"),
            "spotlake-worker"
        );
    }

    #[test]
    fn subnets_and_groups_must_share_one_vpc() {
        let known = [subnet("subnet-a", "us-east-1a", "vpc-1"), subnet("subnet-b", "us-east-1b", "vpc-2")];
        let e = check_subnets(&["subnet-a".into(), "subnet-b".into()], &known).unwrap_err().to_string();
        assert!(e.contains("more than one VPC (subnet-a in vpc-1, subnet-b in vpc-2)"), "{e}");
        let e = check_subnets(&["subnet-x".into()], &known).unwrap_err().to_string();
        assert!(e.contains("subnet-x does not exist"), "{e}");
        let groups = [("sg-1".to_string(), "vpc-1".to_string()), ("sg-2".to_string(), "vpc-2".to_string())];
        assert!(check_security_groups(&["sg-1".into()], &groups, "vpc-1").is_ok());
        let e = check_security_groups(&["sg-2".into()], &groups, "vpc-1").unwrap_err().to_string();
        assert!(e.contains("sg-2 is in vpc-2, but the subnets are in vpc-1"), "{e}");
        let e = check_security_groups(&["sg-9".into()], &groups, "vpc-1").unwrap_err().to_string();
        assert!(e.contains("sg-9 does not exist"), "{e}");
    }
}
