//! The behaviour every fleet must have: checked configuration, launch, instances, delete (and
//! delete again), and garbage collection of fleets whose run is over. Run against local
//! processes and against EC2 on moto.

use super::{Fleet, FleetRequest};
use crate::item::RunId;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!($($msg)*));
        }
    };
}

/// Runs the suite. `request` must be launchable; its run id is varied for the gc check.
pub async fn run_all(fleet: &dyn Fleet, request: &FleetRequest) -> Result<(), String> {
    fleet.preflight().await.map_err(|e| format!("preflight: {e}"))?;
    let handle = fleet.launch(request).await.map_err(|e| format!("launch: {e}"))?;
    ensure!(handle.run_id == request.run_id && handle.step == request.step, "the handle names the run and step");
    let mut instances = Vec::new();
    for _ in 0..50 {
        instances = fleet.instances(&handle).await.map_err(|e| format!("instances: {e}"))?;
        if !instances.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ensure!(!instances.is_empty(), "a launched fleet has instances");
    fleet.delete(&handle).await.map_err(|e| format!("delete: {e}"))?;
    let after = fleet.instances(&handle).await.unwrap_or_default();
    ensure!(after.iter().all(|i| i.state != "running"), "no instance runs after delete: {after:?}");
    fleet.delete(&handle).await.map_err(|e| format!("deleting twice is fine: {e}"))?;

    let mut orphan_request = request.clone();
    orphan_request.run_id = RunId(format!("{}-over", request.run_id));
    let orphan = fleet.launch(&orphan_request).await.map_err(|e| format!("launch: {e}"))?;
    let live = request.run_id.clone();
    let deleted = fleet.gc(&|run: &RunId| *run == live).await.map_err(|e| format!("gc: {e}"))?;
    ensure!(deleted.contains(&orphan.id), "gc deletes the fleet of a finished run: {deleted:?} vs {}", orphan.id);
    let after = fleet.instances(&orphan).await.unwrap_or_default();
    ensure!(after.iter().all(|i| i.state != "running"), "gc leaves nothing running: {after:?}");
    Ok(())
}
