//! Warm item processes: a process that ran an item may take the next one, so the common case
//! pays no cold start (the first touch of every page Polars uses), while memory stays bounded
//! across any number of items.
//!
//! The guarantee of a process per item is that an item's memory goes back to the OS. A warm
//! process keeps it only while its resident set after an item, once it has freed what it can,
//! stays under a budget: an absolute ceiling, and a multiple of what it held after its first
//! item (growth past that is a leak or fragmentation). Past the budget it exits and the next
//! item starts a fresh one. An item that fails, goes over its memory limit, crashes or is
//! handed back also retires its process: only a clean, successful item leaves one warm.
//!
//! The process (`runner exec-item --serve`) takes one request per line on stdin and answers
//! one report per line on stdout, after writing the item's result file as a fresh process does.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::Mutex;
use tracing::{debug, info};

use super::child::{self, ChildOutcome, ChildResult};
use super::item_env::ItemProcessEnv;
use super::memory_limit::{self, MemoryLimit, OomKills};
use crate::wire::WorkItem;

/// When a process may take another item. On by default, because `make bench` measured warm
/// processes faster in every row at about the same peak RSS (the table in bench/README.md);
/// `enabled = false` runs a fresh process per item.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmBudget {
    /// Whether item processes are kept warm at all.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Keep a process while its resident set after an item stays under this many MiB.
    #[serde(default)]
    pub max_rss_after_mib: Option<u64>,
    /// ... and under this multiple of its resident set after its first item.
    #[serde(default = "default_growth")]
    pub max_growth: f64,
}

fn default_growth() -> f64 {
    2.0
}

fn default_enabled() -> bool {
    true
}

impl Default for WarmBudget {
    fn default() -> Self {
        Self { enabled: default_enabled(), max_rss_after_mib: None, max_growth: default_growth() }
    }
}

impl WarmBudget {
    /// Whether a process that holds `rss_after` after an item, and held `first` after its first,
    /// may take another.
    pub fn allows(&self, rss_after: u64, first: u64) -> bool {
        let under_ceiling = self.max_rss_after_mib.is_none_or(|mib| rss_after <= mib * 1024 * 1024);
        under_ceiling && (rss_after as f64) <= self.max_growth * first.max(1) as f64
    }
}

/// One item for a serving process.
#[derive(Debug, Serialize, Deserialize)]
pub struct ServeRequest {
    /// The work item (JSON).
    pub item: PathBuf,
    /// Where to write the result (JSON).
    pub result: PathBuf,
    /// Scratch directory.
    pub scratch: PathBuf,
}

/// What a serving process says after an item.
#[derive(Debug, Serialize, Deserialize)]
pub struct ServeReport {
    /// Its resident set after the item, once freed memory went back to the OS.
    pub rss_after_bytes: u64,
    /// Its peak resident set during the item.
    pub peak_rss_bytes: u64,
}

/// A running `exec-item --serve` process.
struct Warm {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: PathBuf,
    items: u32,
    first_rss_after: u64,
}

/// The worker's idle warm processes, one per slot at most.
pub struct WarmProcesses {
    budget: WarmBudget,
    env: ItemProcessEnv,
    dir: PathBuf,
    idle: Mutex<Vec<Warm>>,
}

impl WarmProcesses {
    /// Processes started with the environment `env`, with their stderr under `dir`.
    pub fn new(budget: WarmBudget, env: ItemProcessEnv, dir: PathBuf) -> Self {
        Self { budget, env, dir, idle: Mutex::new(Vec::new()) }
    }

    fn spawn(&self) -> std::io::Result<Warm> {
        std::fs::create_dir_all(&self.dir)?;
        let stderr = tempfile::Builder::new().prefix("item-process-").suffix(".log").tempfile_in(&self.dir)?;
        let (file, stderr) = stderr.keep().map_err(|e| e.error)?;
        let mut cmd = std::process::Command::new(std::env::current_exe()?);
        runner_backends::process::die_with_parent(&mut cmd, libc::SIGKILL);
        self.env.apply(&mut cmd);
        cmd.args(["exec-item", "--serve"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(file);
        let mut child = tokio::process::Command::from(cmd).kill_on_drop(true).spawn()?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("the item process has no stdin or stdout"));
        };
        debug!(pid, "started a warm item process");
        Ok(Warm { child, pid, stdin, stdout: BufReader::new(stdout).lines(), stderr, items: 0, first_rss_after: 0 })
    }

    /// Runs the item in an idle warm process, or a new one, as [`child::run_item_process`] does
    /// in a fresh process. Its stats say whether it started warm.
    pub async fn run(
        &self,
        item: &WorkItem,
        scratch: &Path,
        limit: MemoryLimit,
        cancel: impl std::future::Future<Output = String>,
    ) -> std::io::Result<ChildOutcome> {
        let (item_path, result_path) = child::write_item(item, scratch)?;
        let idle = self.idle.lock().await.pop();
        let mut warm = match idle {
            Some(w) => w,
            None => self.spawn()?,
        };
        let request = ServeRequest { item: item_path, result: result_path.clone(), scratch: scratch.join("work") };
        let mut line = serde_json::to_vec(&request).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // Where this item's part of the process's stderr begins.
        let mut stderr_from = std::fs::metadata(&warm.stderr).map(|m| m.len()).unwrap_or(0);
        if let Err(e) = warm.stdin.write_all(&line).await {
            // It died while idle (the OOM killer, a signal): a fresh one takes the item.
            let was_fresh = warm.items == 0;
            self.retire(warm).await;
            if was_fresh {
                return Err(e);
            }
            warm = self.spawn()?;
            stderr_from = 0;
            warm.stdin.write_all(&line).await?;
        }
        warm.stdin.flush().await?;
        let started_warm = warm.items > 0;
        // A process that ran items before still holds some of their memory, so an item that
        // runs out of memory in it may fit in a fresh one: then the failure may be retried.
        let permanent = !started_warm;
        let oom_kills = OomKills::now();
        let limit_bytes = limit.bytes();
        // The largest resident size seen while the item ran (a killed process reports no peak).
        let mut seen_rss = 0;
        tokio::pin!(cancel);
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        let report = loop {
            tokio::select! {
                answer = warm.stdout.next_line() => break answer,
                reason = &mut cancel => {
                    self.retire(warm).await;
                    return Ok(ChildOutcome::Killed(reason));
                }
                _ = ticker.tick() => {
                    let Some(rss) = child::rss_bytes(warm.pid) else { continue };
                    seen_rss = seen_rss.max(rss);
                    if limit_bytes.is_some_and(|limit| rss > limit) {
                        self.retire(warm).await;
                        let error = memory_limit::over_limit(item, limit, rss);
                        return Ok(ChildOutcome::Failed { error, permanent });
                    }
                }
            }
        };
        let stderr = child::forward_stderr(&warm.stderr, stderr_from);
        let report: Option<ServeReport> = report.ok().flatten().and_then(|l| serde_json::from_str(&l).ok());
        let Some(report) = report else {
            // It ended without a report: what its exit status says, as for a fresh process.
            let code = exit_code(warm.child.wait().await?);
            let result = child::read_result(&result_path);
            if result.is_none() && code == 128 + libc::SIGKILL && oom_kills.rose() {
                let error = memory_limit::killed_by_kernel(item, limit, Some(seen_rss));
                return Ok(ChildOutcome::Failed { error, permanent });
            }
            return Ok(child::outcome(result, code, 0, &stderr));
        };
        let result = child::read_result(&result_path);
        let succeeded = matches!(result, Some(ChildResult::Ok(_)));
        let mut outcome = child::outcome(result, 0, report.peak_rss_bytes, &stderr);
        if let ChildOutcome::Succeeded(stats) = &mut outcome {
            stats.warm_start = started_warm;
        }
        warm.items += 1;
        if warm.items == 1 {
            warm.first_rss_after = report.rss_after_bytes;
        }
        if succeeded && self.budget.allows(report.rss_after_bytes, warm.first_rss_after) {
            self.idle.lock().await.push(warm);
        } else {
            if succeeded {
                info!(
                    pid = warm.pid,
                    items = warm.items,
                    rss_after_mib = report.rss_after_bytes / (1024 * 1024),
                    first_rss_after_mib = warm.first_rss_after / (1024 * 1024),
                    "item process over its memory budget: a fresh one takes the next item"
                );
            }
            self.retire(warm).await;
        }
        Ok(outcome)
    }

    /// Ends a process (idle or not) and removes its log.
    async fn retire(&self, mut warm: Warm) {
        let _ = warm.child.start_kill();
        let _ = warm.child.wait().await;
        let _ = std::fs::remove_file(&warm.stderr);
    }

    /// Ends every idle process (the worker is stopping).
    pub async fn shutdown(&self) {
        let idle: Vec<Warm> = std::mem::take(&mut *self.idle.lock().await);
        for mut warm in idle {
            drop(warm.stdin);
            let _ = warm.child.wait().await;
            let _ = std::fs::remove_file(&warm.stderr);
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
