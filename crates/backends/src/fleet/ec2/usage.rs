//! What a step's EC2 instances used, for the bill: each instance's type, zone and market, from
//! its launch to its end. AWS records no end time as such; a terminated or stopped instance's
//! state-transition reason carries it ("User initiated (2026-11-26 12:00:00 GMT)").

use aws_sdk_ec2::types::{InstanceLifecycleType, InstanceStateName};
use chrono::NaiveDateTime;

use crate::fleet::{Market, Usage};

/// The end time in a state-transition reason, in Unix seconds.
pub(super) fn end_in_reason(reason: &str) -> Option<f64> {
    let inside = reason.split_once('(')?.1.split_once(')')?.0;
    let stamp = inside.trim_end_matches(" GMT").trim_end_matches(" UTC");
    let at = NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S").ok()?;
    Some(at.and_utc().timestamp() as f64)
}

/// One instance's usage; `now` ends an instance that is still up or whose end is not recorded.
pub(super) fn usage_of(i: &aws_sdk_ec2::types::Instance, vcpus: usize, now: f64) -> Usage {
    let up = matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Pending | InstanceStateName::Running));
    let recorded_end = if up { None } else { i.state_transition_reason().and_then(end_in_reason) };
    let launched_at = i.launch_time().map(|t| t.as_secs_f64()).unwrap_or(now);
    Usage {
        id: i.instance_id().unwrap_or_default().to_string(),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        availability_zone: i.placement().and_then(|p| p.availability_zone()).map(String::from),
        market: match i.instance_lifecycle() {
            Some(InstanceLifecycleType::Spot) => Market::Spot,
            _ => Market::OnDemand,
        },
        vcpus,
        launched_at,
        // A clock skew between AWS's two stamps must not make a negative life.
        ended_at: recorded_end.unwrap_or(now).max(launched_at),
        ended: recorded_end.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::end_in_reason;

    #[test]
    fn the_end_is_read_from_the_transition_reason() {
        // 2026-11-26 12:00:00 UTC
        assert_eq!(end_in_reason("User initiated (2026-11-26 12:00:00 GMT)"), Some(1_795_694_400.0));
        assert_eq!(end_in_reason("User initiated (2026-11-26 12:00:00 UTC)"), Some(1_795_694_400.0));
        assert_eq!(end_in_reason("Server.SpotInstanceTermination"), None);
        assert_eq!(end_in_reason(""), None);
        assert_eq!(end_in_reason("User initiated (soon)"), None);
    }
}
