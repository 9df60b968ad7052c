//! Deleting what a step (or a dead run) left: fleets, instances, launch templates. Every part
//! is tried whatever the others did, and every failure is kept and reported at the end, so one
//! fleet EC2 can't delete never strands the instances and templates after it. Listings page
//! through everything.

use std::time::{Duration, SystemTime};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{DeleteFleetErrorCode, DeleteFleetErrorItem, Filter};

use super::instances;
use super::tags::{of_step, ours, tag_of};
use super::trouble::{self, Trouble, fail};
use crate::fleet::{DEPLOYMENT_TAG, RUN_TAG, STEP_TAG, TOOL_TAG};
use runner_types::{RunId, StepName};

/// What a clean-up could not do, in words (one entry per thing left behind).
#[derive(Debug, Default)]
pub(crate) struct Failures(pub(crate) Vec<String>);

impl Failures {
    pub(crate) fn add(&mut self, what: impl Into<String>) {
        self.0.push(what.into());
    }
}

/// How `DeleteFleets` judged one fleet it could not delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Undeleted {
    /// Gone already, or already being deleted: nothing to do.
    Gone,
    /// Worth asking again (EC2's `unexpectedError`).
    Retry(String),
    /// It stays: this is why.
    Failed(String),
}

/// Judges `DeleteFleets`' unsuccessful deletions, every one of them (EC2's codes:
/// `fleetIdDoesNotExist`, `fleetIdMalformed`, `fleetNotInDeletableState`, `unexpectedError`).
pub(crate) fn judge(unsuccessful: &[DeleteFleetErrorItem]) -> Vec<Undeleted> {
    unsuccessful
        .iter()
        .map(|item| {
            let id = item.fleet_id().unwrap_or("(no id)").to_string();
            let code = item.error().and_then(|e| e.code());
            let message = item.error().and_then(|e| e.message()).unwrap_or_default();
            match code {
                // A fleet not in a deletable state is deleted or being deleted already; its
                // instances are terminated by tag after this in any case.
                Some(DeleteFleetErrorCode::FleetIdDoesNotExist | DeleteFleetErrorCode::FleetNotInDeletableState) => {
                    Undeleted::Gone
                }
                Some(DeleteFleetErrorCode::UnexpectedError) => Undeleted::Retry(id),
                Some(c) => Undeleted::Failed(format!("fleet {id}: {}: {message}", c.as_str())),
                None => Undeleted::Failed(format!("fleet {id}: {message}")),
            }
        })
        .collect()
}

/// Deletes fleets (terminating their instances), 100 a call, asking once more for those EC2
/// had an unexpected error with.
pub(crate) async fn delete_fleets(client: &Client, ids: &[String], failures: &mut Failures) {
    for chunk in ids.chunks(100) {
        let mut todo = chunk.to_vec();
        for attempt in 0..2 {
            let mut retry = Vec::new();
            match delete_chunk(client, &todo).await {
                Ok(unsuccessful) => {
                    for u in judge(&unsuccessful) {
                        match u {
                            Undeleted::Gone => {}
                            Undeleted::Retry(id) if attempt == 0 => retry.push(id),
                            Undeleted::Retry(id) => failures.add(format!("fleet {id}: unexpectedError twice")),
                            Undeleted::Failed(why) => failures.add(why),
                        }
                    }
                }
                Err(e) => failures.add(format!("fleets {}: {e}", todo.join(", "))),
            }
            if retry.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            todo = retry;
        }
    }
}

async fn delete_chunk(client: &Client, ids: &[String]) -> Result<Vec<DeleteFleetErrorItem>, crate::fleet::FleetError> {
    let sent = client.delete_fleets().set_fleet_ids(Some(ids.to_vec())).terminate_instances(true).send().await;
    let out = match sent {
        Ok(out) => out,
        // moto refuses to terminate the instances of a fleet that has none left ("No instances
        // specified"); there is nothing to terminate, so delete it without.
        Err(e) if trouble::code(&e) == Some("InvalidParameterCombination") => client
            .delete_fleets()
            .set_fleet_ids(Some(ids.to_vec()))
            .terminate_instances(false)
            .send()
            .await
            .map_err(|e| fail("DeleteFleets", e))?,
        Err(e) => return Err(fail("DeleteFleets", e)),
    };
    Ok(out.unsuccessful_fleet_deletions().to_vec())
}

/// Terminates instances, 500 a call.
pub(crate) async fn terminate(client: &Client, ids: &[String], failures: &mut Failures) {
    for chunk in ids.chunks(500) {
        if let Err(e) = client.terminate_instances().set_instance_ids(Some(chunk.to_vec())).send().await
            && trouble::of_error(&e) != Trouble::NotFound
        {
            failures.add(format!("instances {}: {}", chunk.join(", "), fail("TerminateInstances", e)));
        }
    }
}

/// Launch templates of this deployment (optionally of one run's step): (id, name, run).
pub(crate) async fn templates(
    client: &Client,
    deployment: &str,
    of: Option<[Filter; 2]>,
) -> Result<Vec<(String, String, RunId, Option<aws_sdk_ec2::primitives::DateTime>)>, crate::fleet::FleetError> {
    let [tool, dep] = ours(deployment);
    let mut req = client.describe_launch_templates().filters(tool).filters(dep);
    if let Some([run, step]) = of {
        req = req.filters(run).filters(step);
    }
    let mut pages = req.into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| fail("DescribeLaunchTemplates", e))?;
        for t in page.launch_templates() {
            if let (Some(id), Some(name)) = (t.launch_template_id(), t.launch_template_name()) {
                out.push((
                    id.to_string(),
                    name.to_string(),
                    RunId::from(tag_of(t.tags(), RUN_TAG).unwrap_or_default()),
                    t.create_time().copied(),
                ));
            }
        }
    }
    Ok(out)
}

/// Deletes launch templates by id (a missing one is deleted already).
pub(crate) async fn delete_templates(client: &Client, ids: &[(String, String)], failures: &mut Failures) {
    for (id, name) in ids {
        if let Err(e) = client.delete_launch_template().launch_template_id(id).send().await
            && trouble::of_error(&e) != Trouble::NotFound
        {
            failures.add(format!("launch template {name}: {}", fail("DeleteLaunchTemplate", e)));
        }
    }
}

/// Every fleet of this tool and deployment that is not deleted, with its run, step and when it
/// was made.
pub(crate) async fn live_fleets(
    client: &Client,
    deployment: &str,
) -> Result<Vec<(String, RunId, StepName, Option<aws_sdk_ec2::primitives::DateTime>)>, crate::fleet::FleetError> {
    let mut pages = client.describe_fleets().into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| fail("DescribeFleets", e))?;
        for f in page.fleets() {
            let tags = f.tags();
            if tag_of(tags, TOOL_TAG.0) != Some(TOOL_TAG.1)
                || tag_of(tags, DEPLOYMENT_TAG) != Some(deployment)
                || f.fleet_state().is_some_and(|s| s.as_str().starts_with("deleted"))
            {
                continue;
            }
            out.push((
                f.fleet_id().unwrap_or_default().to_string(),
                RunId::from(tag_of(tags, RUN_TAG).unwrap_or_default()),
                StepName::from(tag_of(tags, STEP_TAG).unwrap_or_default()),
                f.create_time().copied(),
            ));
        }
    }
    Ok(out)
}

/// Deletes everything of one run's step: its fleets (found by tag, and the `remembered` ones a
/// tag listing might miss), its instances still up, its launch templates. Each part is tried
/// whatever the others did; what could not be done is returned.
pub(crate) async fn delete_step(
    client: &Client,
    deployment: &str,
    run: &RunId,
    step: &StepName,
    remembered: Vec<String>,
) -> Failures {
    let mut failures = Failures::default();
    // Found by tag as well as remembered: a top-up made by a process that died is found too.
    let mut ids: Vec<String> = match live_fleets(client, deployment).await {
        Ok(live) => live.into_iter().filter(|(_, r, s, _)| r == run && s == step).map(|(id, _, _, _)| id).collect(),
        Err(e) => {
            failures.add(format!("listing the step's fleets: {e}"));
            Vec::new()
        }
    };
    ids.extend(remembered);
    ids.sort();
    ids.dedup();
    delete_fleets(client, &ids, &mut failures).await;
    match instances::listed(client, deployment, Some(of_step(run, step)), true).await {
        Ok(stray) => {
            let ids: Vec<String> = stray.iter().filter_map(|i| i.instance_id().map(String::from)).collect();
            terminate(client, &ids, &mut failures).await;
        }
        Err((_, e)) => failures.add(format!("listing the step's instances: {e}")),
    }
    delete_step_templates(client, deployment, run, step, &mut failures).await;
    failures
}

/// Deletes a step's launch templates, found by tag (so only ones that exist are asked for:
/// moto answers a delete of a missing name with a parameter error).
pub(crate) async fn delete_step_templates(
    client: &Client,
    deployment: &str,
    run: &RunId,
    step: &str,
    failures: &mut Failures,
) {
    match templates(client, deployment, Some(of_step(run, step))).await {
        Ok(found) => {
            let ids: Vec<(String, String)> = found.into_iter().map(|(id, name, _, _)| (id, name)).collect();
            delete_templates(client, &ids, failures).await;
        }
        Err(e) => failures.add(format!("listing the step's launch templates: {e}")),
    }
}

/// Deletes every fleet, instance and launch template of this deployment whose run is not
/// live. Returns what it deleted and what it could not.
pub(crate) async fn gc(
    client: &Client,
    deployment: &str,
    is_live: &(dyn for<'r> Fn(&'r RunId) -> bool + Sync),
    spare_from: SystemTime,
) -> (Vec<String>, Failures) {
    let mut failures = Failures::default();
    let mut deleted = Vec::new();
    // Made before `spare_from` (AWS's stamps): what a run that started later made is its own.
    // A resource without a stamp (moto gives fleets none) is judged by its run alone.
    let old = |made: Option<&aws_sdk_ec2::primitives::DateTime>| {
        made.and_then(|t| SystemTime::try_from(*t).ok()).is_none_or(|t| t < spare_from)
    };
    match live_fleets(client, deployment).await {
        Ok(live) => {
            let dead: Vec<String> = live
                .into_iter()
                .filter(|(_, run, _, made)| !is_live(run) && old(made.as_ref()))
                .map(|(id, _, _, _)| id)
                .collect();
            let before = failures.0.len();
            delete_fleets(client, &dead, &mut failures).await;
            if failures.0.len() == before {
                deleted.extend(dead);
            }
        }
        Err(e) => failures.add(format!("listing fleets: {e}")),
    }
    // Instances of this tool left behind by anything else (a fleet deleted without
    // terminating them, say).
    match instances::listed(client, deployment, None, true).await {
        Ok(all) => {
            let stray: Vec<String> = all
                .iter()
                .filter(|i| !is_live(&instances::run_of(i)) && old(i.launch_time()))
                .filter_map(|i| i.instance_id().map(String::from))
                .collect();
            let before = failures.0.len();
            terminate(client, &stray, &mut failures).await;
            if failures.0.len() == before {
                deleted.extend(stray);
            }
        }
        Err((_, e)) => failures.add(format!("listing instances: {e}")),
    }
    // Launch templates of runs that are over.
    match templates(client, deployment, None).await {
        Ok(all) => {
            let dead: Vec<(String, String)> = all
                .into_iter()
                .filter(|(_, _, run, made)| !is_live(run) && old(made.as_ref()))
                .map(|(id, name, _, _)| (id, name))
                .collect();
            let before = failures.0.len();
            delete_templates(client, &dead, &mut failures).await;
            if failures.0.len() == before {
                deleted.extend(dead.into_iter().map(|(_, name)| name));
            }
        }
        Err(e) => failures.add(format!("listing launch templates: {e}")),
    }
    (deleted, failures)
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::DeleteFleetError;

    use super::*;

    fn item(id: &str, code: DeleteFleetErrorCode) -> DeleteFleetErrorItem {
        DeleteFleetErrorItem::builder()
            .fleet_id(id)
            .error(DeleteFleetError::builder().code(code).message("as EC2 says").build())
            .build()
    }

    #[test]
    fn every_unsuccessful_deletion_is_judged_by_ec2s_codes() {
        // One of three fleets does not exist: the others are judged too, and the missing one is
        // no failure (the old rule looked for "NotFound" in the first entry only).
        let got = judge(&[
            item("fleet-1", DeleteFleetErrorCode::FleetIdDoesNotExist),
            item("fleet-2", DeleteFleetErrorCode::FleetIdMalformed),
            item("fleet-3", DeleteFleetErrorCode::UnexpectedError),
            item("fleet-4", DeleteFleetErrorCode::FleetNotInDeletableState),
        ]);
        assert_eq!(
            got,
            [
                Undeleted::Gone,
                Undeleted::Failed("fleet fleet-2: fleetIdMalformed: as EC2 says".into()),
                Undeleted::Retry("fleet-3".into()),
                Undeleted::Gone,
            ]
        );
        assert!(judge(&[]).is_empty());
    }
}
