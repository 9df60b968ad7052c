//! What an answer from EC2 means for the fleet. Each error code (or, in a fleet's history, each
//! event's words) is sorted into a [`Trouble`]: ask again later, back off, tell the user, or
//! stop asking. The codes are EC2's documented ones; moto's gaps are named where they differ.

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::fleet::FleetError;

/// What kind of trouble an answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Trouble {
    /// The account's request rate (`RequestLimitExceeded`): wait and ask again; never a reason
    /// to fail by itself.
    Throttled,
    /// No answer, a timeout or a server error: ask again for a while.
    Transient,
    /// No spot capacity for the requirements just now.
    Capacity,
    /// An account limit: spot vCPUs or instances.
    Quota,
    /// A permission, an instance profile or the fleet's service-linked role is missing.
    Permission,
    /// The AMI, the launch template or the request is unusable as configured.
    Configuration,
    /// A bare HTTP 500 with no error code. AWS's own server errors carry one (`InternalError`,
    /// `Unavailable`), so this is rare there and transient; moto answers an action it lacks so.
    BareServerError,
    /// The resource is gone already.
    NotFound,
    /// Anything else.
    Other,
}

impl Trouble {
    /// What a user should do about it, in words (empty when a retry is the whole answer).
    pub(crate) fn advice(self) -> &'static str {
        match self {
            Self::Capacity => {
                "no spot capacity matches the requirements in these zones just now; widen ec2.vcpus, \
                               ec2.memory_mib or ec2.cpu_manufacturers, or add subnets in more zones"
            }
            Self::Quota => {
                "the account's spot quota is reached (Service Quotas: EC2 'All Standard (A, C, D, H, I, M, \
                            R, T, Z) Spot Instance Requests', L-34B43A08, counted in vCPUs); ask for more or lower \
                            ec2.max_vcpus"
            }
            Self::Permission => {
                "check ec2.instance_profile, the caller's IAM policy (runner/AWS.md) and the \
                                 AWSServiceRoleForEC2Fleet service-linked role"
            }
            Self::Configuration => "check ec2.amis, ec2.subnets and ec2.security_groups",
            _ => "",
        }
    }
}

/// The trouble an error code names.
pub(crate) fn of_code(code: &str) -> Trouble {
    let c = code.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| c.contains(w));
    if has(&["requestlimitexceeded", "throttl", "toomanyrequests", "slowdown"]) {
        Trouble::Throttled
    } else if has(&["notimplemented"]) {
        Trouble::BareServerError
    } else if has(&["insufficientinstancecapacity", "insufficientcapacity", "unfulfillable", "spotmaxpricetoolow"]) {
        Trouble::Capacity
    } else if has(&["maxspotinstancecountexceeded", "vcpulimitexceeded", "instancelimitexceeded", "countlimitexceeded"])
    {
        Trouble::Quota
    } else if has(&["unauthorized", "accessdenied", "authfailure", "iamfleetroleinvalid", "optinrequired"]) {
        Trouble::Permission
    } else if has(&["notfound", "doesnotexist", "notexist"]) {
        Trouble::NotFound
    } else if has(&["internalerror", "internalfailure", "serviceunavailable", "unavailable", "unexpectederror"]) {
        Trouble::Transient
    } else if has(&[
        "invalidami",
        "invalidparameter",
        "invalidsubnet",
        "invalidgroup",
        "configurationinvalid",
        "blacklisted",
        "unusable",
    ]) {
        Trouble::Configuration
    } else {
        Trouble::Other
    }
}

/// The trouble in a fleet-history event's words (its sub type and description, which quote
/// the launch's own error code where there is one).
pub(crate) fn of_event(sub_type: &str, description: &str) -> Trouble {
    let d = description.to_ascii_lowercase();
    // The description is more precise than the sub type ("allLaunchSpecsTemporarilyBlacklisted"
    // says only that every launch failed; its description says why).
    let from_words = if d.contains("capacity") {
        Trouble::Capacity
    } else if d.contains("limit") || d.contains("quota") {
        Trouble::Quota
    } else if d.contains("not authorized") || d.contains("permission") || d.contains("iaminstanceprofile") {
        Trouble::Permission
    } else if d.contains("ami") || d.contains("image") {
        Trouble::Configuration
    } else {
        Trouble::Other
    };
    let code = description.split(|c: char| !c.is_ascii_alphanumeric() && c != '.').find_map(|w| match of_code(w) {
        Trouble::Other | Trouble::NotFound | Trouble::Transient => None,
        t => Some(t),
    });
    code.or(if from_words == Trouble::Other { None } else { Some(from_words) }).unwrap_or_else(|| of_code(sub_type))
}

/// The error code of a failed call, if the service sent one.
pub(crate) fn code<E: ProvideErrorMetadata>(e: &SdkError<E>) -> Option<&str> {
    e.as_service_error().and_then(ProvideErrorMetadata::code)
}

/// The trouble of a failed call.
pub(crate) fn of_error<E: ProvideErrorMetadata>(e: &SdkError<E>) -> Trouble {
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => Trouble::Transient,
        _ => match code(e) {
            Some(c) => of_code(c),
            // No code: told apart from coded server errors, so a caller that sees nothing else
            // from an endpoint can conclude it lacks the call (see `history`).
            None if e.raw_response().is_some_and(|r| r.status().as_u16() == 500) => Trouble::BareServerError,
            None if e.raw_response().is_some_and(|r| r.status().is_server_error()) => Trouble::Transient,
            None => Trouble::Other,
        },
    }
}

/// A failed call as a fleet error.
pub(crate) fn fail<E>(operation: &'static str, e: SdkError<E>) -> FleetError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    FleetError::Provider { operation, detail: DisplayErrorContext(&e).to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_sort_into_what_the_fleet_does_about_them() {
        for (code, want) in [
            ("RequestLimitExceeded", Trouble::Throttled),
            ("Throttling", Trouble::Throttled),
            ("InsufficientInstanceCapacity", Trouble::Capacity),
            ("Server.InsufficientInstanceCapacity", Trouble::Capacity),
            ("MaxSpotInstanceCountExceeded", Trouble::Quota),
            ("VcpuLimitExceeded", Trouble::Quota),
            ("UnauthorizedOperation", Trouble::Permission),
            ("InvalidAMIID.NotFound", Trouble::NotFound),
            ("InvalidAMIID.Malformed", Trouble::Configuration),
            ("fleetIdDoesNotExist", Trouble::NotFound),
            ("InvalidLaunchTemplateName.NotFoundException", Trouble::NotFound),
            ("unexpectedError", Trouble::Transient),
            ("InternalError", Trouble::Transient),
            ("fleetIdMalformed", Trouble::Other),
        ] {
            assert_eq!(of_code(code), want, "{code}");
        }
    }

    #[test]
    fn history_events_are_read_by_their_words() {
        // Sub types and descriptions as EC2's EventInformation documents them.
        assert_eq!(of_event("spotInstanceCountLimitExceeded", ""), Trouble::Quota);
        assert_eq!(of_event("iamFleetRoleInvalid", ""), Trouble::Permission);
        assert_eq!(
            of_event(
                "allLaunchSpecsTemporarilyBlacklisted",
                "m6i.large, ami-0abc, Linux/UNIX, us-east-1a: InsufficientInstanceCapacity"
            ),
            Trouble::Capacity
        );
        assert_eq!(
            of_event("launchSpecUnusable", "c5.large, ami-0abc, Linux/UNIX: There is no Spot capacity available"),
            Trouble::Capacity
        );
        assert_eq!(
            of_event("spotFleetRequestConfigurationInvalid", "The image id '[ami-0abc]' does not exist"),
            Trouble::Configuration
        );
        assert_eq!(of_event("allLaunchSpecsTemporarilyBlacklisted", "VcpuLimitExceeded"), Trouble::Quota);
    }
}
