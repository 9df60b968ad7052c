//! The behaviour every lease store must have: one public function per behaviour, each run
//! against a local state directory and against S3 on moto as a test of its own. Each gets
//! `open`, which opens the store as a new process would (dropping it is that process's end),
//! and `lifetime`, how long a lease outlives a holder that stopped renewing it.

use std::time::Duration;

use super::{Holder, LeaseError, Leases};

macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!($($msg)*));
        }
    };
}

/// Opens the store as a new process would.
pub type Open<'a> = &'a (dyn Fn() -> Box<dyn Leases> + Sync);

/// A holder named after a run.
pub fn holder(run: &str) -> Holder {
    Holder {
        run_id: run.into(),
        dagster_run_id: Some(format!("dagster-{run}")),
        host: "test-host".into(),
        pid: std::process::id(),
        started_at: "2026-11-26T12:00:00Z".into(),
        expires_at: 0.0,
        ttl_secs: None,
    }
}

/// A second run is refused while the first holds the lease, with the holder named; once it is
/// released, the second gets it.
pub async fn a_held_lease_is_refused_naming_its_holder(open: Open<'_>, name: &str, _: Duration) -> Result<(), String> {
    let leases = open();
    let (a, b) = (holder("run-a"), holder("run-b"));
    let first = leases.acquire(name, &a).await.map_err(|e| format!("acquire: {e}"))?;
    match leases.acquire(name, &b).await {
        Err(LeaseError::Held { holder, .. }) => {
            ensure!(holder.run_id == "run-a", "the holder is named: {holder:?}");
            let said = LeaseError::Held { name: name.into(), holder }.to_string();
            ensure!(said.contains("run-a") && said.contains("dagster-run-a") && said.contains("test-host"), "{said}");
        }
        Err(e) => return Err(format!("a held lease is refused as held, not {e}")),
        Ok(_) => return Err("a held lease was given to a second run".into()),
    }
    leases.release(first).await.map_err(|e| format!("release: {e}"))?;
    let second = leases.acquire(name, &b).await.map_err(|e| format!("a released lease can be taken: {e}"))?;
    leases.release(second).await.map_err(|e| format!("release: {e}"))
}

/// Leases of different names do not exclude each other.
pub async fn leases_of_other_names_are_independent(open: Open<'_>, name: &str, _: Duration) -> Result<(), String> {
    let leases = open();
    let one = leases.acquire(&format!("{name}/one"), &holder("run-a")).await.map_err(|e| format!("acquire: {e}"))?;
    let two =
        leases.acquire(&format!("{name}/two"), &holder("run-b")).await.map_err(|e| format!("another name: {e}"))?;
    leases.release(one).await.map_err(|e| format!("release: {e}"))?;
    leases.release(two).await.map_err(|e| format!("release: {e}"))
}

/// A holder that keeps renewing keeps its lease past the time it would have expired.
pub async fn renewing_keeps_the_lease(open: Open<'_>, name: &str, lifetime: Duration) -> Result<(), String> {
    let leases = open();
    // A store whose leases never expire is checked over a second.
    let lifetime = lifetime.max(Duration::from_secs(1));
    let a = holder("run-a");
    let mut lease = leases.acquire(name, &a).await.map_err(|e| format!("acquire: {e}"))?;
    let until = std::time::Instant::now() + lifetime * 2;
    while std::time::Instant::now() < until {
        tokio::time::sleep(lifetime / 4).await;
        leases.renew(&mut lease, &a).await.map_err(|e| format!("renew: {e}"))?;
    }
    let other = leases.acquire(name, &holder("run-b")).await;
    ensure!(matches!(other, Err(LeaseError::Held { .. })), "a renewed lease stays held: {other:?}");
    leases.release(lease).await.map_err(|e| format!("release: {e}"))
}

/// A lease whose holder is gone (its process ended, or it stopped renewing for `lifetime`) is
/// taken over. `open` makes the store as a fresh process would; dropping it is the holder's end.
pub async fn a_gone_holders_lease_is_taken_over(open: Open<'_>, name: &str, lifetime: Duration) -> Result<(), String> {
    let first = open();
    let held = first.acquire(name, &holder("run-a")).await.map_err(|e| format!("acquire: {e}"))?;
    std::mem::forget(held);
    drop(first);
    // S3 stamps writes to the whole second, and a lease there gets one second more for it.
    tokio::time::sleep(lifetime + Duration::from_millis(1500)).await;
    let second = open();
    let lease = second
        .acquire(name, &holder("run-b"))
        .await
        .map_err(|e| format!("a gone holder's lease is taken over: {e}"))?;
    second.release(lease).await.map_err(|e| format!("release: {e}"))
}

/// A renewal that landed without its holder hearing (it timed out while the store stalled, and
/// the store applied it later) leaves the holder a stale view of its lease; the next renewal
/// still keeps it, and the lease stays refused to others.
pub async fn a_renewal_that_landed_unheard_keeps_the_lease(
    open: Open<'_>,
    name: &str,
    _: Duration,
) -> Result<(), String> {
    let leases = open();
    let a = holder("run-a");
    let mut heard = leases.acquire(name, &a).await.map_err(|e| format!("acquire: {e}"))?;
    let mut stale = heard.clone();
    // The renewal the holder never heard back from.
    leases.renew(&mut heard, &a).await.map_err(|e| format!("renew: {e}"))?;
    leases.renew(&mut stale, &a).await.map_err(|e| format!("a renewal over the holder's own write: {e}"))?;
    let other = leases.acquire(name, &holder("run-b")).await;
    ensure!(matches!(other, Err(LeaseError::Held { .. })), "the lease is still held: {other:?}");
    leases.release(stale).await.map_err(|e| format!("release: {e}"))?;
    let after = leases.acquire(name, &holder("run-b")).await.map_err(|e| format!("released, it can be taken: {e}"))?;
    leases.release(after).await.map_err(|e| format!("release: {e}"))
}

/// How many runs race for one lease in [`of_runs_racing_for_a_lease_exactly_one_wins`].
pub const RACERS: usize = 8;

/// Of runs racing for one lease (each through a store of its own, as separate processes would
/// be, released at the same moment), exactly one gets it, and every other is refused naming
/// that one. Once the winner releases it, a newcomer gets it.
pub async fn of_runs_racing_for_a_lease_exactly_one_wins(
    open: Open<'_>,
    name: &str,
    _: Duration,
) -> Result<(), String> {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut racers = Vec::new();
    for i in 0..RACERS {
        let (leases, start, name) = (open(), start.clone(), name.to_string());
        racers.push(tokio::spawn(async move {
            start.wait().await;
            let got = leases.acquire(&name, &holder(&format!("run-{i}"))).await;
            (format!("run-{i}"), leases, got)
        }));
    }
    let mut won = Vec::new();
    let mut refused = Vec::new();
    for racer in racers {
        let (run, leases, got) = racer.await.map_err(|e| format!("a racer panicked: {e}"))?;
        match got {
            Ok(lease) => won.push((run, leases, lease)),
            Err(LeaseError::Held { holder, .. }) => refused.push((run, holder.run_id)),
            Err(e) => return Err(format!("{run} was neither given the lease nor refused it as held: {e}")),
        }
    }
    ensure!(won.len() == 1, "exactly one run gets the lease: {:?}", won.iter().map(|w| &w.0).collect::<Vec<_>>());
    let (winner, leases, lease) = won.remove(0);
    ensure!(refused.len() == RACERS - 1, "every other run is refused: {refused:?}");
    for (run, named) in &refused {
        ensure!(*named == winner, "{run} is refused naming the winner {winner}, not {named:?}");
    }
    leases.release(lease).await.map_err(|e| format!("release: {e}"))?;
    let after = open();
    let lease =
        after.acquire(name, &holder("run-late")).await.map_err(|e| format!("released, it can be taken: {e}"))?;
    after.release(lease).await.map_err(|e| format!("release: {e}"))
}
