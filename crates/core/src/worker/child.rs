//! Runs each work item in a child process (`runner exec-item`), so all of the item's memory
//! goes back to the OS when it ends. The parent watches the child's resident size, stops it
//! above the item's limit ([`super::memory_limit`]), and reads its peak from `wait4`. What an
//! item's process reports, and how that becomes an outcome, is shared with warm processes
//! ([`super::warm`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use runner_types::ItemStats;

use super::memory_limit::{self, MemoryLimit, OomKills};
use crate::wire::WorkItem;

/// What the child writes to its result file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildResult {
    /// Committed.
    Ok(ItemStats),
    /// Failed, with the error chain; a retry may succeed.
    Error(String),
    /// Failed in a way no retry can fix (bad SQL, a schema conflict), with the error chain.
    Permanent(String),
}

/// How a child ended, from the parent's side.
#[derive(Debug)]
pub enum ChildOutcome {
    /// Committed.
    Succeeded(ItemStats),
    /// The job failed; `permanent` when no retry can fix it.
    Failed {
        /// The error.
        error: String,
        /// Whether a retry must fail the same way.
        permanent: bool,
    },
    /// The child was stopped from outside (by us on a spot notice, or by a signal).
    Killed(String),
}

/// The child's resident size, from `/proc` (Linux). Elsewhere there is none, and the memory
/// limit is not enforced while the item runs.
#[cfg(target_os = "linux")]
pub(super) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(not(target_os = "linux"))]
pub(super) fn rss_bytes(_pid: u32) -> Option<u64> {
    None
}

/// Writes the item where its process reads it, and clears its result file.
pub(super) fn write_item(item: &WorkItem, scratch: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(scratch)?;
    let item_path = scratch.join("item.json");
    let result_path = scratch.join("result.json");
    std::fs::write(&item_path, serde_json::to_vec(item).map_err(std::io::Error::other)?)?;
    let _ = std::fs::remove_file(&result_path);
    Ok((item_path, result_path))
}

/// The result an item process wrote, if it wrote one.
pub(super) fn read_result(path: &Path) -> Option<ChildResult> {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice::<ChildResult>(&b).ok())
}

/// How an item ended, from its result file and its process's exit status (`code`, 128+signal
/// when killed; 0 for a warm process that answered), with its peak resident size.
pub(super) fn outcome(result: Option<ChildResult>, code: i32, peak: u64, stderr: &str) -> ChildOutcome {
    match (result, code) {
        (Some(ChildResult::Ok(mut stats)), 0) => {
            stats.peak_rss_bytes = Some(peak);
            ChildOutcome::Succeeded(stats)
        }
        (Some(ChildResult::Error(error)), _) => ChildOutcome::Failed { error, permanent: false },
        (Some(ChildResult::Permanent(error)), _) => ChildOutcome::Failed { error, permanent: true },
        // Killed or terminated from outside (a shutdown; the OOM killer is told apart before
        // this): not the job's fault as far as we can tell. Any other signal is a crash of the
        // item itself.
        (_, code) if code == 128 + libc::SIGKILL || code == 128 + libc::SIGTERM => {
            ChildOutcome::Killed(format!("item process killed by signal {}", code - 128))
        }
        // A panic that could not unwind (one in a destructor, or in Polars' runtime where it
        // aborts on purpose) prints where it happened, then aborts: the same item panics again.
        (_, code) if code == 128 + libc::SIGABRT && stderr.contains("' panicked at ") => ChildOutcome::Failed {
            error: with_stderr("item process aborted after a panic".into(), stderr),
            permanent: true,
        },
        (_, code) if code > 128 => ChildOutcome::Failed {
            error: with_stderr(format!("item process crashed with signal {}", code - 128), stderr),
            permanent: false,
        },
        (_, code) => ChildOutcome::Failed {
            error: with_stderr(format!("item process exited with status {code} without a result"), stderr),
            permanent: false,
        },
    }
}

/// Runs the item in a child process of its own with the environment `env`, stopped above
/// `limit`. `cancel` resolving stops it (SIGKILL) and
/// reports Killed.
pub async fn run_item_process(
    item: &WorkItem,
    scratch: &Path,
    env: &super::item_env::ItemProcessEnv,
    limit: MemoryLimit,
    cancel: impl std::future::Future<Output = String>,
) -> std::io::Result<ChildOutcome> {
    let (item_path, result_path) = write_item(item, scratch)?;
    let oom_kills = OomKills::now();
    let stderr_path = scratch.join("stderr.log");
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    // The item dies with its worker, so a worker killed mid-item leaves no process still
    // writing that item's outputs.
    runner_backends::process::die_with_parent(&mut cmd, libc::SIGKILL);
    env.apply(&mut cmd);
    let child = cmd
        .arg("exec-item")
        .arg("--item")
        .arg(&item_path)
        .arg("--result")
        .arg(&result_path)
        .arg("--scratch")
        .arg(scratch.join("work"))
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path)?)
        .spawn()?;
    let pid = child.id();
    let limit_bytes = limit.bytes();
    // The child is reaped by `wait4` below, not through `Child`.
    std::mem::forget(child);
    let waiter = tokio::task::spawn_blocking(move || wait(pid));
    tokio::pin!(waiter);
    tokio::pin!(cancel);
    let mut over: Option<u64> = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let (status, peak) = loop {
        tokio::select! {
            done = &mut waiter => break done.map_err(std::io::Error::other)??,
            reason = &mut cancel => {
                kill(pid);
                let _ = (&mut waiter).await;
                return Ok(ChildOutcome::Killed(reason));
            }
            _ = ticker.tick() => {
                if let (Some(limit), Some(rss)) = (limit_bytes, rss_bytes(pid))
                    && rss > limit
                    && over.is_none()
                {
                    over = Some(rss);
                    kill(pid);
                }
            }
        }
    };
    let stderr = forward_stderr(&stderr_path, 0);
    // A fresh process holds only this item's memory: another attempt would need the same.
    if let Some(rss) = over {
        return Ok(ChildOutcome::Failed { error: memory_limit::over_limit(item, limit, rss), permanent: true });
    }
    let result = read_result(&result_path);
    if result.is_none() && status == 128 + libc::SIGKILL && oom_kills.rose() {
        let error = memory_limit::killed_by_kernel(item, limit, Some(peak));
        return Ok(ChildOutcome::Failed { error, permanent: true });
    }
    Ok(outcome(result, status, peak, &stderr))
}

/// How much of a failed item's stderr travels in its callback: the end is where the cause is.
const STDERR_TAIL: usize = 4000;

/// Copies the item's stderr (what its process wrote from byte `from` on) into the worker's own
/// (its log), and returns it.
pub(super) fn forward_stderr(path: &Path, from: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[from..]).into_owned();
    if !text.is_empty() {
        use std::io::Write;
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
    text
}

/// An error with the tail of the process's stderr (a panic or an abort says why only there).
fn with_stderr(error: String, stderr: &str) -> String {
    let stderr = stderr.trim_end();
    if stderr.is_empty() {
        return error;
    }
    let cut = stderr.len().saturating_sub(STDERR_TAIL);
    let start = (cut..=stderr.len()).find(|i| stderr.is_char_boundary(*i)).unwrap_or(stderr.len());
    format!("{error}; its stderr ends with:\n{}", &stderr[start..])
}

fn kill(pid: u32) {
    // SAFETY: sending a signal to our own child.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// Waits for the child; returns its exit status (128+signal when killed) and peak RSS in bytes.
fn wait(pid: u32) -> std::io::Result<(i32, u64)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, filled by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting on our own child with valid out-pointers.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r >= 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    // `ru_maxrss` is in KiB on Linux and in bytes on macOS.
    let unit = if cfg!(target_os = "macos") { 1 } else { 1024 };
    Ok((code, usage.ru_maxrss as u64 * unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(outcome: ChildOutcome) -> (String, bool) {
        match outcome {
            ChildOutcome::Failed { error, permanent } => (error, permanent),
            other => panic!("not a failure: {other:?}"),
        }
    }

    #[test]
    fn a_panic_that_aborted_the_process_fails_the_item_for_good() {
        let stderr = "thread 'polars-1' panicked at polars-core/src/x.rs:10:5:\nnot implemented for dtype Int128\n";
        let (error, permanent) = failed(outcome(None, 128 + libc::SIGABRT, 0, stderr));
        assert_eq!(
            error,
            "item process aborted after a panic; its stderr ends with:\n\
             thread 'polars-1' panicked at polars-core/src/x.rs:10:5:\nnot implemented for dtype Int128"
        );
        assert!(permanent, "it would panic again");
    }

    #[test]
    fn other_crashes_may_be_retried_and_a_kill_from_outside_is_an_interruption() {
        let (error, permanent) = failed(outcome(None, 128 + libc::SIGABRT, 0, "native code said: buffer overrun\n"));
        assert_eq!(
            error,
            "item process crashed with signal 6; its stderr ends with:\nnative code said: buffer overrun"
        );
        assert!(!permanent);
        let (error, permanent) = failed(outcome(None, 128 + libc::SIGSEGV, 0, "thread 'a' panicked at x.rs:1:1:\n"));
        assert!(error.starts_with("item process crashed with signal 11"), "{error}");
        assert!(!permanent, "only an abort follows a panic");
        let killed = outcome(None, 128 + libc::SIGKILL, 0, "");
        assert!(matches!(&killed, ChildOutcome::Killed(r) if r == "item process killed by signal 9"), "{killed:?}");
    }
}
