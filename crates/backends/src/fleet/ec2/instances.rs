//! Reading a step's (or the deployment's) instances from EC2, by tag, every page.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::Filter;

use super::tags::{ours, tag_of};
use super::trouble::{self, Trouble, fail};
use crate::fleet::{FleetError, Instance, RUN_TAG};
use runner_types::RunId;

/// A failed read, with its trouble.
pub(crate) type Failed = (Trouble, FleetError);

/// This deployment's instances, optionally of one run and step, and only those up (pending or
/// running) when `up` says so.
pub(crate) async fn listed(
    client: &Client,
    deployment: &str,
    of: Option<[Filter; 2]>,
    up: bool,
) -> Result<Vec<aws_sdk_ec2::types::Instance>, Failed> {
    let [tool, dep] = ours(deployment);
    let mut req = client.describe_instances().filters(tool).filters(dep);
    if up {
        req = req.filters(Filter::builder().name("instance-state-name").values("pending").values("running").build());
    }
    if let Some([run, step]) = of {
        req = req.filters(run).filters(step);
    }
    let mut pages = req.into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| (trouble::of_error(&e), fail("DescribeInstances", e)))?;
        out.extend(page.reservations().iter().flat_map(|r| r.instances()).cloned());
    }
    Ok(out)
}

/// Instances by id, whatever their state (those EC2 no longer lists are left out).
pub(crate) async fn by_ids(client: &Client, ids: &[String]) -> Result<Vec<aws_sdk_ec2::types::Instance>, Failed> {
    let mut out = Vec::new();
    for chunk in ids.chunks(200) {
        let filter = Filter::builder().name("instance-id").set_values(Some(chunk.to_vec())).build();
        let mut pages = client.describe_instances().filters(filter).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| (trouble::of_error(&e), fail("DescribeInstances", e)))?;
            out.extend(page.reservations().iter().flat_map(|r| r.instances()).cloned());
        }
    }
    Ok(out)
}

/// An instance as the fleet trait shows it.
pub(crate) fn instance(i: &aws_sdk_ec2::types::Instance) -> Instance {
    Instance {
        id: i.instance_id().unwrap_or_default().to_string(),
        state: i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default(),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()),
        availability_zone: i.placement().and_then(|p| p.availability_zone()).map(String::from),
    }
}

/// The run an instance belongs to.
pub(crate) fn run_of(i: &aws_sdk_ec2::types::Instance) -> RunId {
    RunId::from(tag_of(i.tags(), RUN_TAG).unwrap_or_default())
}
