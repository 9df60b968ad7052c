//! A step's leases: one per partition it works on, taken before the step plans (in one order,
//! so two ranged runs can't each hold half of the other's), renewed in the background while it
//! runs, confirmed once more before the step prunes and reports its outputs, and given back
//! when it ends. A lease lost meanwhile stops the step: another run is writing the same
//! partition.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runner_backends::lease::{Holder, Lease, LeaseError, Leases};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// How often a refused lease is asked for again while the run may wait.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// The leases a step holds.
pub(crate) struct StepLeases {
    leases: Arc<dyn Leases>,
    holder: Holder,
    held: Arc<tokio::sync::Mutex<Vec<Lease>>>,
    lost: Arc<Mutex<Option<String>>>,
    renewer: JoinHandle<()>,
}

impl StepLeases {
    /// Takes every lease in `names` (sorted), waiting up to `wait` for each one held by another
    /// run; the error names the holder.
    pub(crate) async fn take(
        leases: Arc<dyn Leases>,
        mut names: Vec<String>,
        holder: Holder,
        wait: Duration,
    ) -> Result<Self, LeaseError> {
        names.sort();
        names.dedup();
        let deadline = Instant::now() + wait;
        let mut held = Vec::new();
        for name in names {
            let lease = loop {
                match leases.acquire(&name, &holder).await {
                    Ok(l) => break l,
                    Err(LeaseError::Held { holder: other, .. }) if Instant::now() < deadline => {
                        info!("waiting for {name}, held by {other}");
                        tokio::time::sleep(RETRY_EVERY).await;
                    }
                    Err(e) => {
                        for l in held {
                            leases.release(l).await.ok();
                        }
                        return Err(e);
                    }
                }
            };
            held.push(lease);
        }
        let held = Arc::new(tokio::sync::Mutex::new(held));
        let lost = Arc::new(Mutex::new(None));
        let renewer = {
            let (leases, held, lost, holder) = (leases.clone(), held.clone(), lost.clone(), holder.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(leases.renew_every()).await;
                    for lease in held.lock().await.iter_mut() {
                        match leases.renew(lease, &holder).await {
                            Ok(()) => {}
                            Err(e @ LeaseError::Lost { .. }) => {
                                *lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                            }
                            // A store that failed once may answer next time; the lease lasts
                            // three renewal periods.
                            Err(e) => warn!("renewing a lease: {e}"),
                        }
                    }
                }
            })
        };
        Ok(Self { leases, holder, held, lost, renewer })
    }

    /// Why a lease was lost, if one was.
    pub(crate) fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Renews every lease now: `Lost` when one was taken over, even since the last renewal in
    /// the background (a third of the lease's life ago, at most), which alone would find it
    /// only after the step had ended as if it still held its partitions.
    pub(crate) async fn confirm(&self) -> Result<(), LeaseError> {
        for lease in self.held.lock().await.iter_mut() {
            if let Err(e) = self.leases.renew(lease, &self.holder).await {
                if matches!(e, LeaseError::Lost { .. }) {
                    *self.lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Gives every lease back.
    pub(crate) async fn give_back(self) {
        self.renewer.abort();
        let held = std::mem::take(&mut *self.held.lock().await);
        for lease in held {
            if let Err(e) = self.leases.release(lease).await {
                warn!("giving a lease back: {e}");
            }
        }
    }
}

impl Drop for StepLeases {
    /// A step dropped mid-way (its run cancelled) stops renewing: its leases then end with the
    /// process (locally) or expire (in S3).
    fn drop(&mut self) {
        self.renewer.abort();
    }
}
