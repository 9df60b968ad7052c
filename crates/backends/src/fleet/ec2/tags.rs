//! How the fleet names and tags what it makes, and finds it again: every launch template,
//! fleet, instance and volume carries the tool, deployment, run and step tags, so a step's
//! clean-up and `fleet gc` find them whatever the process that made them remembers.

use aws_sdk_ec2::types::{Filter, Tag};

use crate::fleet::{DAGSTER_RUN_TAG, DEPLOYMENT_TAG, RUN_TAG, STEP_TAG, TOOL_TAG};
use runner_types::RunId;

/// The tags of a step's resources.
pub(crate) fn tags(deployment: &str, run: &RunId, step: &str, dagster: Option<&str>) -> Vec<Tag> {
    let mut t = vec![
        Tag::builder().key(TOOL_TAG.0).value(TOOL_TAG.1).build(),
        Tag::builder().key(DEPLOYMENT_TAG).value(deployment).build(),
        Tag::builder().key(RUN_TAG).value(run.as_str()).build(),
        Tag::builder().key(STEP_TAG).value(step).build(),
    ];
    if let Some(d) = dagster {
        t.push(Tag::builder().key(DAGSTER_RUN_TAG).value(d).build());
    }
    t
}

/// A step's launch template name for one architecture (EC2 allows 128 characters of
/// letters, digits and `-_.()/`).
pub(crate) fn template_name(deployment: &str, run: &RunId, step: &str, arch: &str) -> String {
    let raw = format!("spotlake-{deployment}-{run}-{step}-{arch}");
    raw.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.()/".contains(c) { c } else { '-' }).take(128).collect()
}

/// Filters for this tool's resources of one deployment.
pub(crate) fn ours(deployment: &str) -> [Filter; 2] {
    [
        Filter::builder().name(format!("tag:{}", TOOL_TAG.0)).values(TOOL_TAG.1).build(),
        Filter::builder().name(format!("tag:{DEPLOYMENT_TAG}")).values(deployment).build(),
    ]
}

/// Filters for one run's step.
pub(crate) fn of_step(run: &RunId, step: &str) -> [Filter; 2] {
    [
        Filter::builder().name(format!("tag:{RUN_TAG}")).values(run.as_str()).build(),
        Filter::builder().name(format!("tag:{STEP_TAG}")).values(step).build(),
    ]
}

/// A tag's value.
pub(crate) fn tag_of<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}
