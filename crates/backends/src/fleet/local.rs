//! Local worker processes as a fleet: `runner worker` children of the orchestrator. Their pids
//! are recorded under the state directory so that `runner fleet gc` can find them from another
//! process.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Fleet, FleetError, FleetHandle, FleetRequest, FleetState, GcReport, Instance, Market, Result, Usage};
use runner_types::{BackendKind, RunId, StepName};

/// How many times one fleet may replace workers that died within seconds of starting.
const MAX_EARLY_DEATHS: usize = 8;

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    run_id: RunId,
    step: StepName,
    pids: Vec<u32>,
}

/// A worker process, when it started, and the cores it is billed for.
#[derive(Debug)]
struct Worker {
    child: Child,
    started: Instant,
    started_unix: f64,
    vcpus: usize,
}

#[derive(Debug, Default)]
struct Live {
    children: Vec<Worker>,
    early_deaths: usize,
    spawned: usize,
    /// The workers this fleet runs at most: the configured count, or fewer when the step has
    /// fewer items. The machine's cores are shared among these, not among the configured
    /// count, so a step of one item gets every core.
    workers: usize,
}

/// Worker processes on this machine.
#[derive(Debug)]
pub struct LocalFleet {
    records: PathBuf,
    executable: Option<PathBuf>,
    /// The most worker processes at once.
    workers: usize,
    live: Mutex<HashMap<String, Live>>,
    /// Workers that have ended, per fleet, kept after the fleet is deleted: the bill reads them.
    ended: Mutex<HashMap<String, Vec<Usage>>>,
}

/// A local worker's id, which the worker itself reports (`runner worker` without an instance
/// identity): the orchestrator matches check-ins to processes by it.
pub fn worker_id(pid: u32) -> String {
    format!("local-{pid}")
}

impl LocalFleet {
    /// A fleet of at most `workers` processes whose records live in `state_dir/fleets`.
    pub fn new(state_dir: PathBuf, workers: usize) -> Self {
        Self {
            records: state_dir.join("fleets"),
            executable: None,
            workers: workers.max(1),
            live: Mutex::new(HashMap::new()),
            ended: Mutex::new(HashMap::new()),
        }
    }

    /// Runs workers from another `runner` executable (tests, where this process is not it).
    #[must_use]
    pub fn with_executable(mut self, exe: PathBuf) -> Self {
        self.executable = Some(exe);
        self
    }

    fn spawn(&self, request: &FleetRequest, fleet_workers: usize) -> std::io::Result<Child> {
        let config = &request.worker_config;
        let exe = match &self.executable {
            Some(e) => e.clone(),
            None => std::env::current_exe()?,
        };
        let mut cmd = Command::new(exe);
        cmd.arg("worker").arg("--config-json").arg(config).stdin(Stdio::null());
        if let Some(threads) = polars_threads_per_worker(fleet_workers) {
            cmd.env("POLARS_MAX_THREADS", threads.to_string());
        }
        // The worker ends with the orchestrator, so a killed orchestrator leaves no local
        // workers behind.
        crate::process::die_with_parent(&mut cmd, libc::SIGTERM);
        cmd.spawn()
    }

    fn write_record(&self, handle: &FleetHandle, pids: Vec<u32>) {
        let _ = std::fs::create_dir_all(&self.records);
        let record = Record { run_id: handle.run_id.clone(), step: handle.step.clone(), pids };
        let path = self.records.join(format!("{}.json", handle.id));
        let tmp = path.with_extension("json.tmp");
        if std::fs::write(&tmp, serde_json::to_vec(&record).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(tmp, path);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn usage_of(&self, worker: &Worker, ended: bool) -> Usage {
        Usage {
            id: worker_id(worker.child.id()),
            instance_type: "local".into(),
            availability_zone: None,
            market: Market::Local,
            vcpus: worker.vcpus,
            launched_at: worker.started_unix,
            ended_at: unix_now(),
            ended,
            interrupted: false,
            public_ipv4: false,
            root_volume: None,
            running_at: None,
        }
    }

    fn record_ended(&self, handle: &str, usage: Vec<Usage>) {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).entry(handle.to_string()).or_default().extend(usage);
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The workers a fleet for `wanted_items` items runs: no more than it has items for.
fn fleet_workers(wanted_items: usize, configured: usize) -> usize {
    wanted_items.clamp(1, configured.max(1))
}

/// The cores each of a fleet's `workers` is billed for: its share of this machine.
fn cores_per_worker(workers: usize) -> usize {
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    (cores / workers.max(1)).max(1)
}

/// Each of `workers` local workers gets its share of the cores for its items' Polars pool.
/// Without it every item sizes its pool to the whole machine, and `workers` pools
/// oversubscribe the cores (measured: 9 % slower with 2 workers on 2 cores). A
/// `POLARS_MAX_THREADS` the user set wins. One worker keeps Polars' own default. Rounded up:
/// a slight oversubscription costs less than idle cores.
fn polars_threads_per_worker(workers: usize) -> Option<usize> {
    if workers <= 1 || std::env::var_os("POLARS_MAX_THREADS").is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    Some(cores.div_ceil(workers))
}

/// Whether a worker process is running. Linux reads its state, since a zombie (exited, not yet
/// reaped) still has a /proc entry; elsewhere, signal 0 says whether it exists.
#[cfg(target_os = "linux")]
fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; its state is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|rest| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[cfg(not(target_os = "linux"))]
fn alive(pid: u32) -> bool {
    crate::process::exists(pid)
}

fn instance(pid: u32) -> Instance {
    Instance {
        id: worker_id(pid),
        state: if alive(pid) { "running" } else { "terminated" }.to_string(),
        instance_type: None,
        availability_zone: None,
    }
}

fn terminate(pids: &[u32]) {
    for pid in pids {
        // SAFETY: signalling processes this tool started.
        unsafe {
            libc::kill(*pid as libc::pid_t, libc::SIGTERM);
        }
    }
    // Polled every millisecond for the first 200 ms (a read of /proc each): a worker with
    // nothing running stops within milliseconds, and each run waits for its workers before it
    // ends (doubling pauses had a one-item run wait ~6 ms past its worker's exit).
    let start = Instant::now();
    let deadline = start + Duration::from_secs(10);
    let mut pause = Duration::from_millis(1);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(pause);
        if start.elapsed() > Duration::from_millis(200) {
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
    for pid in pids.iter().filter(|p| alive(**p)) {
        // SAFETY: as above; the worker did not stop in time.
        unsafe {
            libc::kill(*pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

#[async_trait]
impl Fleet for LocalFleet {
    fn kind(&self) -> BackendKind {
        BackendKind::Local
    }

    fn max_items(&self) -> usize {
        self.workers
    }

    fn vcpus_per_item(&self) -> usize {
        1
    }

    fn slots_per_worker(&self) -> Option<usize> {
        Some(1)
    }

    async fn preflight(&self) -> Result<()> {
        std::env::current_exe()
            .map(|_| ())
            .map_err(|e| FleetError::Config(format!("cannot find the runner executable: {e}")))
    }

    async fn launch(&self, request: &FleetRequest, wanted_items: usize) -> Result<FleetHandle> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let handle = FleetHandle {
            id: format!("local-{}-{nanos:x}", std::process::id()),
            run_id: request.run_id.clone(),
            step: request.step.clone(),
        };
        let workers = fleet_workers(wanted_items, self.workers);
        self.lock().insert(handle.id.clone(), Live { workers, ..Live::default() });
        self.maintain(&handle, request, wanted_items).await?;
        Ok(handle)
    }

    async fn maintain(&self, handle: &FleetHandle, request: &FleetRequest, wanted_items: usize) -> Result<FleetState> {
        let mut exited = Vec::new();
        let mut map = self.lock();
        let Some(live) = map.get_mut(&handle.id) else {
            return Ok(FleetState::default());
        };
        let mut kept = Vec::new();
        for mut w in live.children.drain(..) {
            match w.child.try_wait() {
                Ok(None) => kept.push(w),
                Ok(Some(status)) => {
                    if !status.success() && w.started.elapsed() < Duration::from_secs(3) {
                        live.early_deaths += 1;
                    }
                    exited.push(self.usage_of(&w, true));
                }
                Err(_) => exited.push(self.usage_of(&w, true)),
            }
        }
        live.children = kept;
        let crash_loop = live.early_deaths > MAX_EARLY_DEATHS;
        let mut spawn_error = None;
        while !crash_loop && live.children.len() < wanted_items.min(live.workers) {
            match self.spawn(request, live.workers) {
                Ok(child) => {
                    let vcpus = cores_per_worker(live.workers);
                    live.children.push(Worker { child, started: Instant::now(), started_unix: unix_now(), vcpus });
                    live.spawned += 1;
                }
                Err(e) => {
                    spawn_error = Some(e);
                    break;
                }
            }
        }
        let state = FleetState {
            instances: live.children.iter().map(|w| instance(w.child.id())).collect(),
            capacity_items: live.children.len(),
            requested: live.spawned,
            ..Default::default()
        };
        // Written under the lock: `delete` removes the fleet, then its record, each under
        // the lock, so a maintain racing a delete can't put the record back afterwards.
        self.write_record(handle, live.children.iter().map(|w| w.child.id()).collect());
        let early = live.early_deaths;
        drop(map);
        self.record_ended(&handle.id, std::mem::take(&mut exited));
        if crash_loop {
            return Err(FleetError::CrashLoop(format!("{early} early exits")));
        }
        if let Some(e) = spawn_error {
            return Err(FleetError::Provider { operation: "spawn worker", detail: e.to_string() });
        }
        Ok(state)
    }

    async fn instances(&self, handle: &FleetHandle) -> Result<Vec<Instance>> {
        let map = self.lock();
        Ok(map
            .get(&handle.id)
            .map(|live| live.children.iter().map(|w| instance(w.child.id())).collect())
            .unwrap_or_default())
    }

    async fn usage(&self, handle: &FleetHandle) -> Result<Vec<Usage>> {
        let mut out = self.ended.lock().unwrap_or_else(|p| p.into_inner()).get(&handle.id).cloned().unwrap_or_default();
        if let Some(live) = self.lock().get(&handle.id) {
            out.extend(live.children.iter().map(|w| self.usage_of(w, false)));
        }
        Ok(out)
    }

    async fn delete(&self, handle: &FleetHandle) -> Result<()> {
        let children = self.lock().remove(&handle.id).map(|l| l.children).unwrap_or_default();
        let pids: Vec<u32> = children.iter().map(|w| w.child.id()).collect();
        let waited = tokio::task::spawn_blocking(move || {
            terminate(&pids);
            children
                .into_iter()
                .map(|mut w| {
                    let _ = w.child.wait();
                    w
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| FleetError::Provider { operation: "delete", detail: e.to_string() })?;
        let ended = waited.iter().map(|w| self.usage_of(w, true)).collect();
        self.record_ended(&handle.id, ended);
        // Under the lock, so a `maintain` that began before the fleet was removed has written
        // its record by now (see there), and one that begins after finds no fleet.
        let _live = self.lock();
        let _ = std::fs::remove_file(self.records.join(format!("{}.json", handle.id)));
        Ok(())
    }

    async fn gc(
        &self,
        is_live: &(dyn for<'r> Fn(&'r RunId) -> bool + Sync),
        spare_from: std::time::SystemTime,
    ) -> GcReport {
        let mut report = GcReport::default();
        let entries = match std::fs::read_dir(&self.records) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return report,
            Err(e) => {
                report.failures.push(format!("listing {}: {e}", self.records.display()));
                return report;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Some(record) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Record>(&b).ok()) else {
                continue;
            };
            // A record written at or after `spare_from` is a run that started later.
            let recent = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= spare_from);
            if is_live(&record.run_id) || recent {
                continue;
            }
            let pids = record.pids.clone();
            tokio::task::spawn_blocking(move || terminate(&pids)).await.ok();
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    report.deleted.push(path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())
                }
                Err(e) => report.failures.push(format!("deleting {}: {e}", path.display())),
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::{cores_per_worker, fleet_workers, polars_threads_per_worker};

    #[test]
    fn a_fleet_runs_no_more_workers_than_its_items_and_shares_the_cores_among_those() {
        assert_eq!(fleet_workers(1, 4), 1);
        assert_eq!(fleet_workers(3, 4), 3);
        assert_eq!(fleet_workers(100, 4), 4);
        assert_eq!(fleet_workers(0, 4), 1);
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        assert_eq!(cores_per_worker(fleet_workers(1, 4)), cores, "one item: the whole machine");
        assert_eq!(cores_per_worker(cores * 2), 1);
    }

    #[test]
    fn workers_share_the_cores_between_their_polars_pools() {
        if std::env::var_os("POLARS_MAX_THREADS").is_some() {
            assert_eq!(polars_threads_per_worker(2), None, "the user's setting wins");
            return;
        }
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        assert_eq!(polars_threads_per_worker(1), None);
        assert_eq!(polars_threads_per_worker(2), Some(cores.div_ceil(2)));
        assert_eq!(polars_threads_per_worker(cores * 4), Some(1));
    }
}
