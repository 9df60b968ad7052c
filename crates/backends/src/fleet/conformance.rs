//! The behaviour every fleet must have: one public function per behaviour, each run against
//! local processes and against EC2 on moto as a test of its own. `request` must be launchable.

use std::time::Duration;

use runner_types::RunId;

use runner_types::BackendKind;

use super::{Fleet, FleetHandle, FleetRequest, Instance, Market};

macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!($($msg)*));
        }
    };
}

/// The fleet's instances once it has any (a fleet may take a moment to list them).
async fn wait_for_instances(fleet: &dyn Fleet, handle: &FleetHandle) -> Result<Vec<Instance>, String> {
    for _ in 0..50 {
        let instances = fleet.instances(handle).await.map_err(|e| format!("instances: {e}"))?;
        if !instances.is_empty() {
            return Ok(instances);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("a launched fleet has instances".into())
}

async fn nothing_runs(fleet: &dyn Fleet, handle: &FleetHandle, after: &str) -> Result<(), String> {
    let left = fleet.instances(handle).await.unwrap_or_default();
    ensure!(left.iter().all(|i| i.state != "running"), "no instance runs after {after}: {left:?}");
    Ok(())
}

/// A preflight passes, a launch names its run and step and has instances, and a delete stops
/// every instance.
pub async fn launch_then_delete(fleet: &dyn Fleet, request: &FleetRequest) -> Result<(), String> {
    fleet.preflight().await.map_err(|e| format!("preflight: {e}"))?;
    let handle = fleet.launch(request, 2).await.map_err(|e| format!("launch: {e}"))?;
    ensure!(handle.run_id == request.run_id && handle.step == request.step, "the handle names the run and step");
    wait_for_instances(fleet, &handle).await?;
    fleet.delete(&handle).await.map_err(|e| format!("delete: {e}"))?;
    nothing_runs(fleet, &handle, "delete").await
}

/// Deleting a fleet twice succeeds.
pub async fn delete_is_idempotent(fleet: &dyn Fleet, request: &FleetRequest) -> Result<(), String> {
    let handle = fleet.launch(request, 2).await.map_err(|e| format!("launch: {e}"))?;
    fleet.delete(&handle).await.map_err(|e| format!("delete: {e}"))?;
    fleet.delete(&handle).await.map_err(|e| format!("deleting twice is fine: {e}"))?;
    nothing_runs(fleet, &handle, "two deletes").await
}

/// `gc` deletes the fleet of a run that is over, and leaves a live run's fleet alone.
pub async fn gc_deletes_only_fleets_of_runs_that_are_over(
    fleet: &dyn Fleet,
    request: &FleetRequest,
) -> Result<(), String> {
    let live = fleet.launch(request, 2).await.map_err(|e| format!("launch: {e}"))?;
    let mut over = request.clone();
    over.run_id = RunId::from(format!("{}-over", request.run_id));
    let orphan = fleet.launch(&over, 2).await.map_err(|e| format!("launch: {e}"))?;
    let live_run = request.run_id.clone();
    let report = fleet.gc(&|run: &RunId| *run == live_run, std::time::SystemTime::now()).await;
    ensure!(report.failures.is_empty(), "gc fails nothing here: {:?}", report.failures);
    let deleted = report.deleted;
    ensure!(deleted.contains(&orphan.id), "gc deletes the fleet of a finished run: {deleted:?} vs {}", orphan.id);
    ensure!(!deleted.contains(&live.id), "gc leaves the live run's fleet: {deleted:?}");
    nothing_runs(fleet, &orphan, "gc").await?;
    let still = wait_for_instances(fleet, &live).await?;
    ensure!(still.iter().any(|i| i.state == "running" || i.state == "pending"), "the live fleet runs: {still:?}");
    fleet.delete(&live).await.map_err(|e| format!("delete: {e}"))?;
    Ok(())
}

/// Capacity follows the remaining work: nothing is added without work, what is added for more
/// work never exceeds it, and capacity already up is not requested twice.
pub async fn maintain_adds_capacity_up_to_the_remaining_work(
    fleet: &dyn Fleet,
    request: &FleetRequest,
) -> Result<(), String> {
    let handle = fleet.launch(request, 1).await.map_err(|e| format!("launch: {e}"))?;
    wait_for_instances(fleet, &handle).await?;
    let first = fleet.maintain(&handle, request, 1).await.map_err(|e| format!("maintain: {e}"))?;
    ensure!(first.requested > 0 && first.capacity_items >= 1, "a launched fleet has capacity: {first:?}");
    let idle = fleet.maintain(&handle, request, 0).await.map_err(|e| format!("maintain: {e}"))?;
    ensure!(idle.requested == first.requested, "no work, no new capacity: {idle:?} after {first:?}");
    let more = fleet.maintain(&handle, request, 3).await.map_err(|e| format!("maintain: {e}"))?;
    let per_item = fleet.vcpus_per_item().max(1);
    ensure!(
        more.requested - first.requested <= 3 * per_item,
        "capacity added for 3 items is at most 3 items' worth: {more:?} after {first:?}"
    );
    wait_for_instances(fleet, &handle).await?;
    let again = fleet.maintain(&handle, request, 3).await.map_err(|e| format!("maintain: {e}"))?;
    ensure!(
        again.capacity_items >= 3.min(fleet.max_items()) || again.requested == more.requested,
        "the capacity for the same work is not requested twice: {again:?} after {more:?}"
    );
    ensure!(again.requested == more.requested, "nothing more is requested for the same work: {again:?} after {more:?}");
    fleet.delete(&handle).await.map_err(|e| format!("delete: {e}"))?;
    nothing_runs(fleet, &handle, "delete").await
}

/// After a delete, the fleet accounts for every instance it had: its type, its market, and a
/// recorded life from launch to end that lies within the test.
pub async fn usage_accounts_for_every_instance(fleet: &dyn Fleet, request: &FleetRequest) -> Result<(), String> {
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    // Launch stamps may be whole seconds.
    let before = now().floor() - 1.0;
    let handle = fleet.launch(request, 2).await.map_err(|e| format!("launch: {e}"))?;
    let seen = wait_for_instances(fleet, &handle).await?;
    fleet.delete(&handle).await.map_err(|e| format!("delete: {e}"))?;
    let after = now() + 1.0;
    let usage = fleet.usage(&handle).await.map_err(|e| format!("usage: {e}"))?;
    for i in &seen {
        ensure!(usage.iter().any(|u| u.id == i.id), "instance {} is in the usage: {usage:?}", i.id);
    }
    let market = match fleet.kind() {
        BackendKind::Local => Market::Local,
        BackendKind::Aws => Market::Spot,
    };
    for u in &usage {
        ensure!(u.ended, "a deleted fleet's instances have recorded ends: {u:?}");
        ensure!(
            before <= u.launched_at && u.launched_at <= u.ended_at && u.ended_at <= after,
            "the life lies within the test ({before}..{after}): {u:?}"
        );
        ensure!(!u.instance_type.is_empty() && u.vcpus >= 1, "type and vCPUs are known: {u:?}");
        ensure!(u.market == market, "bought as {market}: {u:?}");
    }
    Ok(())
}
