//! Warm item processes (`[warm_items]`, on by default): a process that ran an item takes the
//! next one while its memory stays within the budget. The rows are a fresh-process run's; a
//! process over its budget is replaced; the memory limit and a killed worker behave as with
//! fresh processes.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use polars::prelude::*;

struct Lake {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
}

/// A generated day of raw events and a runner config with `config` in it.
fn lake(config: &str) -> Lake {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let status = Command::new(support::runner_bin())
        .args(["example", "generate", "--days", "1", "--events-per-day", "8000", "--csv-files", "6", "--out"])
        .arg(&root)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let config_path = dir.path().join("runner.toml");
    std::fs::write(&config_path, format!("visibility_secs = 3\nheartbeat_secs = 1\nidle_shutdown_secs = 3\n{config}"))
        .unwrap();
    Lake { _dir: dir, root, config: config_path }
}

fn example_job() -> PathBuf {
    support::workspace().join("runner/examples/events/job.toml")
}

impl Lake {
    fn run(&self, job: &Path, env: &[(&str, &str)]) -> (Output, PathBuf) {
        let summary = self.root.join("summary.json");
        let mut c = Command::new(support::runner_bin());
        c.arg("run").arg(job).arg("--root").arg(&self.root).args(["--workers", "2", "--partition", "2024-01-01"]);
        c.arg("--summary-json").arg(&summary);
        c.env("SPOTLAKE_CONFIG", &self.config).env_remove("DAGSTER_PIPES_CONTEXT").env_remove("DAGSTER_PIPES_MESSAGES");
        for (k, v) in env {
            c.env(k, v);
        }
        (c.output().unwrap(), summary)
    }

    fn summary(&self, job: &Path) -> serde_json::Value {
        let (out, summary) = self.run(job, &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&std::fs::read(summary).unwrap()).unwrap()
    }
}

/// Every row of an output, in a stable order.
fn rows(dir: &Path) -> DataFrame {
    let df = support::output::scan_output(dir).collect().unwrap();
    let columns: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
    df.sort(columns, Default::default()).unwrap()
}

/// What a step wrote, as its summary tells it: rows, files, schema and hive keys per output
/// (not bytes: a group-by's row order, and so its compressed size, may differ run to run).
fn written(step: &serde_json::Value) -> Vec<serde_json::Value> {
    let outputs = step["outputs"].as_object().unwrap();
    outputs.values().map(|o| serde_json::json!([o["rows"], o["files"], o["schema"], o["rows_by_hive_key"]])).collect()
}

const GENEROUS: &str = "[warm_items]\nmax_growth = 1000.0\n";
const FRESH: &str = "[warm_items]\nenabled = false\n";

#[test]
fn warm_processes_take_the_next_item_and_write_the_rows_fresh_ones_do() {
    let fresh = lake(FRESH);
    let fresh_summary = fresh.summary(&example_job());
    let warm = lake(GENEROUS);
    let warm_summary = warm.summary(&example_job());
    let mut warm_started = 0;
    for (f, w) in fresh_summary["steps"].as_array().unwrap().iter().zip(warm_summary["steps"].as_array().unwrap()) {
        assert_eq!(f["items_warm_started"], 0, "fresh processes never start warm: {f}");
        // Each worker's first item starts its process cold; every later one finds it warm.
        let items = w["items"].as_u64().unwrap();
        let workers = w["workers"].as_u64().unwrap();
        assert!(workers >= 1 && items >= workers, "{w}");
        assert_eq!(w["items_warm_started"].as_u64().unwrap(), items - workers, "{w}");
        warm_started += items - workers;
        assert!(w["peak_item_rss_bytes"].as_u64().unwrap() > 0, "each item's own peak is measured: {w}");
        assert_eq!(written(f), written(w), "{}", w["name"]);
    }
    assert!(warm_started >= 14, "the 16 user buckets ran on 2 workers: {warm_started}");
    for output in ["clean", "by_user", "user_daily"] {
        assert!(
            rows(&fresh.root.join(output)).equals_missing(&rows(&warm.root.join(output))),
            "{output}: the same rows"
        );
    }
}

#[test]
fn a_process_over_its_memory_budget_is_replaced_by_a_fresh_one() {
    // No process holds under 1 MiB after an item: every one retires, and each item starts cold.
    let warm = lake("[warm_items]\nmax_rss_after_mib = 1\n");
    let summary = warm.summary(&example_job());
    for step in summary["steps"].as_array().unwrap() {
        assert_eq!(step["items_warm_started"], 0, "{step}");
        assert!(step["items"].as_u64().unwrap() > 0);
    }
    // With no `[warm_items]` at all, processes are kept warm (the default).
    let default = lake("");
    let summary = default.summary(&example_job());
    let reduce = summary["steps"].as_array().unwrap().iter().find(|s| s["name"] == "user_daily").unwrap();
    assert!(reduce["items_warm_started"].as_u64().unwrap() > 0, "warm by default: {reduce}");
    assert!(rows(&default.root.join("user_daily")).equals_missing(&rows(&warm.root.join("user_daily"))));
}

#[test]
fn a_warm_process_over_the_items_memory_limit_is_stopped_and_the_item_fails() {
    let warm = lake(GENEROUS);
    let job = std::fs::read_to_string(example_job()).unwrap().replacen(
        "[[step]]\nname = \"clean\"\n",
        "[[step]]\nname = \"clean\"\nmemory_limit_mb = 1\nmax_attempts = 3\n",
        1,
    );
    assert!(job.contains("memory_limit_mb = 1"), "the example's first step is `clean`");
    let path = warm.root.join("limited.toml");
    std::fs::write(&path, job).unwrap();
    let (out, _) = warm.run(&path, &[("SPOTLAKE_TEST_ITEM_SLEEP_MS", "1000")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("memory limit of 1 MiB"), "{err}");
    // A fresh process held only the item's own memory: another attempt would need the same.
    assert!(err.contains("failed after 1 attempt(s)") && err.contains("not retried"), "{err}");
    assert!(!warm.root.join("clean").exists(), "a stopped item publishes nothing");
}

/// The parent of a process, from `/proc/{pid}/stat` (the field after the state).
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.split_whitespace().nth(1)?.parse().ok()
}

/// The warm item processes (`exec-item --serve`) started under `run`: its descendants only, so
/// tests running beside this one, with processes of their own, don't count.
fn item_processes(run: u32) -> Vec<u32> {
    let exe = support::runner_bin();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let serving =
            args.first().is_some_and(|a| *a == exe.as_os_str().as_encoded_bytes()) && args.contains(&&b"--serve"[..]);
        let mut ancestor = Some(pid);
        while serving && let Some(p) = ancestor.filter(|p| *p > 1) {
            if p == run {
                pids.push(pid);
                break;
            }
            ancestor = parent(p);
        }
    }
    pids
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

#[test]
fn a_killed_run_leaves_no_warm_process_behind() {
    let warm = lake(GENEROUS);
    let mut c = Command::new(support::runner_bin());
    c.arg("run").arg(example_job()).arg("--root").arg(&warm.root).args(["--workers", "2", "--partition", "2024-01-01"]);
    c.env("SPOTLAKE_CONFIG", &warm.config).env("SPOTLAKE_TEST_ITEM_SLEEP_MS", "500").stderr(Stdio::null());
    let mut run = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let started = loop {
        let pids = item_processes(run.id());
        if !pids.is_empty() {
            break pids;
        }
        assert!(Instant::now() < deadline, "no warm item process started");
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: killing the run this test started: its workers and their items die with it.
    unsafe {
        libc::kill(run.id() as i32, libc::SIGKILL);
    }
    run.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Orphaned, they are no longer the run's descendants: follow the ones seen by pid.
    while started.iter().any(|p| alive(*p)) {
        let left: Vec<&u32> = started.iter().filter(|p| alive(**p)).collect();
        assert!(Instant::now() < deadline, "warm item processes outlived their run: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One item per raw CSV file.
const MAP_JOB: &str = r#"
name = "warm_map"
[[step]]
name = "map"
split = "file"
[step.inputs.web]
path = "raw/*/web-*.csv.gz"
format = "csv"
header = false
bad_rows = "skip"
columns = [["event_id", "str"], ["user_id", "str"], ["ts", "datetime"], ["event_type", "str"], ["amount", "f64"], ["country", "str"], ["device", "str"]]
[step.outputs.out]
path = "out"
sql = "SELECT event_id, user_id, event_type, amount FROM web"
"#;

#[test]
fn a_spot_notice_hands_back_the_item_a_warm_process_is_running() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let reference = lake("");
    std::fs::write(reference.root.join("map.toml"), MAP_JOB).unwrap();
    reference.summary(&reference.root.join("map.toml"));
    // Visibility far longer than the run may take: only an immediate hand-back can finish it.
    let warm = lake(GENEROUS);
    std::fs::write(
        &warm.config,
        format!("visibility_secs = 120\nheartbeat_secs = 1\nidle_shutdown_secs = 3\npoll_imds = true\n{GENEROUS}"),
    )
    .unwrap();
    let job = warm.root.join("map.toml");
    std::fs::write(&job, MAP_JOB).unwrap();
    let (armed, served) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let imds = support::imds::serve(support::imds::Identity::default(), armed.clone(), served.clone());
    let summary = warm.root.join("spot.json");
    let mut c = Command::new(support::runner_bin());
    c.arg("run").arg(&job).arg("--root").arg(&warm.root).args(["--workers", "2", "--partition", "2024-01-01"]);
    c.arg("--summary-json").arg(&summary).env("SPOTLAKE_CONFIG", &warm.config).stderr(Stdio::piped());
    c.env("SPOTLAKE_TEST_ITEM_SLEEP_MS", "3000")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds)
        .env("AWS_EC2_METADATA_DISABLED", "false");
    let run = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while item_processes(run.id()).len() < 2 {
        assert!(Instant::now() < deadline, "the workers never started their item processes");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    armed.store(true, Ordering::SeqCst);
    let out = run.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(served.load(Ordering::SeqCst), "a worker read the notice");
    assert!(err.contains("handed back by its worker: spot interruption notice"), "{err}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert!(s["steps"][0]["interruptions_survived"].as_u64().unwrap() >= 1, "{s}");
    assert!(rows(&reference.root.join("out")).equals_missing(&rows(&warm.root.join("out"))), "the same rows");
}
