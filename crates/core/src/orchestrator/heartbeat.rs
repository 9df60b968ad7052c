//! The run's heartbeat: a task of its own that writes the run's [`Heartbeat`] every period from
//! the run's start to its end, whatever the run is doing (planning, waiting on a lease, storing
//! items, deleting a fleet, pruning), so `fleet gc` never judges a live run over. A step's own
//! loop used to write it, and a run busy anywhere else for ten minutes lost its queues.

use std::sync::Arc;
use std::time::Duration;

use runner_backends::storage::{Location, StoreCache};
use runner_types::RunId;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::run_state::{self, Heartbeat, unix_now};

/// The running heartbeat task. [`Beating::stop`] ends it and deletes the heartbeat; dropped
/// without it (the run's future dropped by a signal), the task is aborted and the heartbeat goes
/// stale, as a crashed run's does.
pub(crate) struct Beating {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    stores: Arc<StoreCache>,
    state: Location,
    run_id: RunId,
}

impl Beating {
    /// Writes the first heartbeat (an error: the run can't be seen as live, so it doesn't start)
    /// and starts the task that writes the others.
    pub(crate) async fn start(
        stores: Arc<StoreCache>,
        state: Location,
        run_id: RunId,
        job: &str,
        every: Duration,
    ) -> Result<Self, runner_backends::storage::StorageError> {
        let every = every.max(Duration::from_secs(1));
        let beat =
            Heartbeat { run_id: run_id.clone(), job: job.to_string(), at: unix_now(), every_secs: every.as_secs() };
        beat.write(&*stores, &state).await?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn({
            let (stores, state) = (stores.clone(), state.clone());
            async move {
                let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = ticks.tick() => {}
                        _ = stopped.changed() => return,
                    }
                    let beat = Heartbeat { at: unix_now(), ..beat.clone() };
                    // A failed write is retried at the next period; gc waits several of them.
                    if let Err(e) = beat.write(&*stores, &state).await {
                        warn!("writing the run's heartbeat failed (retried in {every:?}): {e}");
                    }
                }
            }
        });
        Ok(Self { stop, task: Some(task), stores, state, run_id })
    }

    /// Stops the task once its write in flight (if any) has landed, so no heartbeat is written
    /// after this, then deletes the heartbeat: the run is over.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Err(e) = run_state::delete_heartbeat(&*self.stores, &self.state, &self.run_id).await {
            warn!("deleting the run's heartbeat failed ({e}); `runner fleet gc` deletes it once it is stale");
        }
    }
}

impl Drop for Beating {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
