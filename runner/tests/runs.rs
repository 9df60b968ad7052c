//! `runner run` end to end on the local backends, and the faults it must survive: a worker
//! killed mid-item, a spot notice, a killed and restarted orchestrator, a poison item, SIGTERM,
//! a memory limit, changed inputs. Outputs are compared with a fault-free run's.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use polars::prelude::*;
use support::output::data_files;

const MAP_JOB: &str = r#"
name = "faults"
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
partition_by = ["event_type"]
sql = "SELECT event_id, user_id, event_type, amount FROM web"
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    job: PathBuf,
    config: PathBuf,
}

fn fixture(job: &str, config: &str, csv_files: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let status = Command::new(support::runner_bin())
        .args(["example", "generate", "--days", "1", "--events-per-day", "6000", "--csv-files"])
        .arg(csv_files.to_string())
        .arg("--out")
        .arg(&root)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let job_path = dir.path().join("job.toml");
    std::fs::write(&job_path, job).unwrap();
    let config_path = dir.path().join("runner.toml");
    std::fs::write(&config_path, format!("visibility_secs = 3\nheartbeat_secs = 1\nidle_shutdown_secs = 3\n{config}"))
        .unwrap();
    Fixture { _dir: dir, root, job: job_path, config: config_path }
}

impl Fixture {
    fn command(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(support::runner_bin());
        c.arg("run").arg(&self.job).arg("--root").arg(&self.root);
        if !extra.contains(&"--workers") {
            c.args(["--workers", "2"]);
        }
        c.args(extra);
        c.env("SPOTLAKE_CONFIG", &self.config).env_remove("DAGSTER_PIPES_CONTEXT").env_remove("DAGSTER_PIPES_MESSAGES");
        c
    }

    fn run(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command(extra);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    fn spawn(&self, extra: &[&str], env: &[(&str, &str)]) -> Child {
        let mut c = self.command(extra);
        for (k, v) in env {
            c.env(k, v);
        }
        c.stderr(Stdio::piped()).spawn().unwrap()
    }

    fn state(&self) -> PathBuf {
        self.root.join("_runner")
    }

    fn summary(&self, out: &Output, name: &str) -> serde_json::Value {
        assert!(out.status.success(), "run failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let _ = name;
        serde_json::from_slice(&std::fs::read(self.root.join(format!("{name}.json"))).unwrap()).unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every row of an output, sorted, for comparing runs.
fn rows(dir: &Path) -> DataFrame {
    rows_by(dir, "event_id")
}

fn assert_same_rows(a: &DataFrame, b: &DataFrame) {
    assert_eq!(a.height(), b.height(), "row counts differ");
    let ids = |d: &DataFrame| {
        d.column("event_id").unwrap().str().unwrap().iter().flatten().map(String::from).collect::<Vec<_>>()
    };
    let (ia, ib) = (ids(a), ids(b));
    assert_eq!(ia.iter().collect::<BTreeSet<_>>().len(), ia.len(), "no row is duplicated");
    assert_eq!(ia, ib, "the same rows");
}

fn reference_rows(job: &str) -> DataFrame {
    let f = fixture(job, "", 6);
    let out = f.run(&[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    rows(&f.root.join("out"))
}

fn worker_pids(state: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir(state.join("fleets")).into_iter().flatten().flatten() {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&std::fs::read(e.path()).unwrap_or_default()) {
            pids.extend(v["pids"].as_array().into_iter().flatten().filter_map(|p| p.as_u64()).map(|p| p as u32));
        }
    }
    pids
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

/// A process's children: each thread lists the ones it started (a worker starts its items
/// from its runtime's threads), so all threads are read.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(children.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    out
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill(pid: u32, sig: i32) {
    // SAFETY: signalling a process this test started (or its child).
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

#[test]
fn example_pipeline_runs_and_reruns_idempotently() {
    let job = std::fs::read_to_string(support::workspace().join("runner/examples/events/job.toml")).unwrap();
    let f = fixture(&job, "", 2);
    let out = f.run(&["--partition", "2024-01-01"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = f.run(
        &["--partition", "2024-01-01", "--force", "--summary-json", &f.root.join("first.json").to_string_lossy()],
        &[],
    );
    let first = f.summary(&out, "first");
    let steps = first["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    let clean = &steps[0];
    assert!(clean["rows_quarantined"].as_u64().unwrap() > 0, "the generator's bad rows are quarantined");
    assert_eq!(
        clean["rows_in"].as_u64().unwrap(),
        6000,
        "every generated row is read: good ones cleaned, bad ones set aside"
    );
    let user_daily = &steps[2];
    assert_eq!(user_daily["items"].as_u64().unwrap(), 16, "one item per user bucket");
    let before = rows_count(&f.root.join("user_daily"));

    let again =
        f.run(&["--partition", "2024-01-01", "--summary-json", &f.root.join("second.json").to_string_lossy()], &[]);
    let second = f.summary(&again, "second");
    for s in second["steps"].as_array().unwrap() {
        assert_eq!(s["items_already_committed"], s["items"], "a completed step never reruns: {s}");
        assert_eq!(s["retries"], 0);
    }
    assert_eq!(rows_count(&f.root.join("user_daily")), before, "a rerun neither loses nor duplicates rows");
    let stderr = stderr(&again);
    assert!(stderr.contains("check one_row_per_user on user_daily.user_daily: passed"), "{stderr}");
}

/// Every row of an output sorted by `key`.
fn rows_by(dir: &Path, key: &str) -> DataFrame {
    support::output::scan_output(dir).sort([key], Default::default()).collect().unwrap()
}

#[test]
fn bounded_files_fan_the_map_side_out_and_packed_buckets_give_the_same_rows() {
    let example = std::fs::read_to_string(support::workspace().join("runner/examples/events/job.toml")).unwrap();
    let reference = fixture(&example, "", 2);
    let out = reference.run(&["--partition", "2024-01-01"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The clean step writes files of at most 1,000 rows (the example's 4 M would be one file
    // here), and the reduce packs whole buckets into items of up to 1 MiB (all 16 buckets of
    // this small day fit in one).
    let job = example
        .replace("max_rows_per_file = 4000000", "max_rows_per_file = 1000")
        .replace(r#"split = { partition = "user_bucket" }"#, r#"split = { partition = "user_bucket", size_mb = 1 }"#);
    assert_eq!(job.matches("max_rows_per_file = 1000").count(), 1, "the example bounds its clean files");
    assert!(job.contains("size_mb = 1 }"), "the example splits its reduce by bucket");
    let f = fixture(&job, "", 2);
    let summary = f.root.join("packed.json");
    let out = f.run(&["--partition", "2024-01-01", "--summary-json", &summary.to_string_lossy()], &[]);
    let s = f.summary(&out, "packed");
    let steps = s["steps"].as_array().unwrap();

    let mut clean_files = Vec::new();
    data_files(&f.root.join("clean/day=2024-01-01"), &mut clean_files);
    let clean_rows: Vec<usize> =
        clean_files.iter().map(|p| ParquetReader::new(std::fs::File::open(p).unwrap()).num_rows().unwrap()).collect();
    assert!(clean_rows.iter().all(|&n| n <= 1000), "no file over the bound: {clean_rows:?}");
    let total: usize = clean_rows.iter().sum();
    assert_eq!(clean_files.len(), total.div_ceil(1000), "files of the bound, the last one partial: {clean_rows:?}");
    assert_eq!(
        steps[1]["items"].as_u64().unwrap() as usize,
        clean_files.len(),
        "the shuffle (split by file) has an item per clean file"
    );
    assert_eq!(steps[2]["items"].as_u64().unwrap(), 1, "the 16 small buckets are packed into one item");
    // The same per-user rows as one item per bucket from one file per day. Revenue is a float
    // sum over rows that now arrive in another order, so it is compared to a rounding.
    let (packed, one_per_bucket) =
        (rows_by(&f.root.join("user_daily"), "user_id"), rows_by(&reference.root.join("user_daily"), "user_id"));
    assert_eq!(packed.drop("revenue").unwrap(), one_per_bucket.drop("revenue").unwrap());
    let revenue = |d: &DataFrame| d.column("revenue").unwrap().f64().unwrap().into_no_null_iter().collect::<Vec<_>>();
    for (a, b) in revenue(&packed).iter().zip(revenue(&one_per_bucket)) {
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "revenue {a} against {b}");
    }
}

fn rows_count(dir: &Path) -> usize {
    let mut files = Vec::new();
    data_files(dir, &mut files);
    files.iter().map(|p| ParquetReader::new(std::fs::File::open(p).unwrap()).num_rows().unwrap()).sum()
}

#[test]
fn changed_input_replaces_its_outputs_without_duplicates() {
    let f = fixture(MAP_JOB, "", 3);
    assert!(f.run(&[], &[]).status.success());
    let before = rows(&f.root.join("out"));
    // Regenerate the day with another seed: same file names, different content.
    let status = Command::new(support::runner_bin())
        .args([
            "example",
            "generate",
            "--days",
            "1",
            "--events-per-day",
            "6000",
            "--csv-files",
            "3",
            "--seed",
            "99",
            "--out",
        ])
        .arg(&f.root)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let out = f.run(&[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = rows(&f.root.join("out"));
    let ids = after.column("event_id").unwrap().str().unwrap().iter().flatten().map(String::from).collect::<Vec<_>>();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "old outputs were pruned, nothing duplicated");
    assert_ne!(before.column("user_id").unwrap(), after.column("user_id").unwrap(), "the new content replaced the old");
    assert!(stderr(&out).contains("pruned outputs of superseded item"), "{}", stderr(&out));
}

#[test]
fn a_worker_killed_mid_item_loses_nothing() {
    let reference = reference_rows(MAP_JOB);
    let f = fixture(MAP_JOB, "", 6);
    let mut run = f.spawn(&[], &[("SPOTLAKE_TEST_ITEM_SLEEP_MS", "1500")]);
    // Wait for a worker that is running an item, then kill it hard.
    let mut victim = 0;
    wait_until("a worker running an item", Duration::from_secs(60), || {
        victim = worker_pids(&f.state()).into_iter().find(|p| !children_of(*p).is_empty()).unwrap_or(0);
        victim != 0
    });
    let item_process = children_of(victim)[0];
    kill(victim, libc::SIGKILL);
    wait_until("the killed worker's item process to die with it", Duration::from_secs(10), || !alive(item_process));
    let status = run.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert_same_rows(&rows(&f.root.join("out")), &reference);
}

/// A process's environment variable, from `/proc/{pid}/environ`.
fn env_of(pid: u32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{name}=");
    environ.split(|b| *b == 0).find_map(|kv| String::from_utf8_lossy(kv).strip_prefix(&prefix).map(str::to_string))
}

#[test]
fn a_step_of_fewer_items_than_workers_gives_its_items_every_core() {
    // One file, one item, two workers allowed: the one worker that runs gets the machine, for
    // its item's Polars pool and in the bill (it had been given half, as if two ran).
    let f = fixture(MAP_JOB, "", 1);
    let summary = f.root.join("summary.json");
    let mut run = f.spawn(
        &["--workers", "2", "--summary-json", summary.to_str().unwrap()],
        &[("SPOTLAKE_TEST_ITEM_SLEEP_MS", "1500")],
    );
    // The item's process once it has exec'd: between fork and exec its environment is still
    // the worker's.
    let mut item = 0;
    wait_until("the item's process", Duration::from_secs(60), || {
        item = worker_pids(&f.state()).into_iter().flat_map(children_of).next().unwrap_or(0);
        item != 0
            && std::fs::read(format!("/proc/{item}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"exec-item"))
    });
    let threads = env_of(item, "POLARS_MAX_THREADS");
    let status = run.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    let cores = std::thread::available_parallelism().map(usize::from).unwrap();
    assert_eq!(threads, Some(cores.to_string()), "the item's Polars pool has every core");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let usage = s["steps"][0]["usage"].as_array().unwrap();
    assert_eq!(usage.len(), 1, "one worker for one item: {usage:?}");
    assert_eq!(usage[0]["vcpus"].as_u64(), Some(cores as u64), "billed for the cores it had: {usage:?}");
}

#[test]
fn a_window_of_one_feeds_items_one_at_a_time_and_loses_none() {
    let reference = reference_rows(MAP_JOB);
    let f = fixture(MAP_JOB, "enqueue_window = 1\n", 6);
    let out = f.run(&["--workers", "2", "--summary-json", &f.root.join("s.json").to_string_lossy()], &[]);
    let summary = f.summary(&out, "s");
    assert_eq!(summary["steps"][0]["items"], 6, "{summary}");
    assert_same_rows(&rows(&f.root.join("out")), &reference);
}

fn imds_stand_in(armed: Arc<AtomicBool>, served: Arc<AtomicBool>) -> String {
    support::imds::serve(support::imds::Identity::default(), armed, served)
}

#[test]
fn a_spot_notice_hands_the_item_over_at_once() {
    let reference = reference_rows(MAP_JOB);
    // Visibility is far longer than the run may take: only an immediate release can finish it.
    let f = fixture(MAP_JOB, "poll_imds = true\nmax_runtime = \"50s\"\n", 6);
    std::fs::write(
        &f.config,
        "visibility_secs = 120\nheartbeat_secs = 1\nidle_shutdown_secs = 3\npoll_imds = true\nmax_runtime = \"50s\"\n\
         [pricing]\nlocal_core_hour_usd = 36.0\nlocal_emr_core_hour_usd = 90.0\n",
    )
    .unwrap();
    let (armed, served) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let imds = imds_stand_in(armed.clone(), served.clone());
    let summary = f.root.join("spot.json");
    let mut run = f.spawn(
        &["--summary-json", &summary.to_string_lossy()],
        &[
            ("SPOTLAKE_TEST_ITEM_SLEEP_MS", "4000"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds),
            ("AWS_EC2_METADATA_DISABLED", "false"),
        ],
    );
    wait_until("every worker running an item", Duration::from_secs(60), || {
        let pids = worker_pids(&f.state());
        pids.len() == 2 && pids.iter().all(|p| !children_of(*p).is_empty())
    });
    armed.store(true, Ordering::SeqCst);
    let status = run.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert!(served.load(Ordering::SeqCst), "a worker read the notice");
    assert!(err.contains("handed back by its worker: spot interruption notice"), "{err}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert!(s["steps"][0]["interruptions_survived"].as_u64().unwrap() >= 1);
    assert_same_rows(&rows(&f.root.join("out")), &reference);

    // The handed-back attempts are in the bill: each ran within the billed life of its worker,
    // though that worker ended before the run did.
    let step = &s["steps"][0];
    let usage = step["usage"].as_array().unwrap();
    let lost = step["lost_attempts"].as_array().unwrap();
    assert!(lost.iter().any(|a| a["outcome"] == "interrupted"), "{step}");
    for a in lost {
        let life = usage
            .iter()
            .find(|u| u["id"] == a["worker"])
            .unwrap_or_else(|| panic!("{a} has its worker billed: {usage:?}"));
        let (start, end) = (a["started_at"].as_f64().unwrap(), a["finished_at"].as_f64().unwrap());
        assert!(
            life["launched_at"].as_f64().unwrap() <= start && end <= life["ended_at"].as_f64().unwrap(),
            "{a} in {life}"
        );
    }
    // By hand: each worker's seconds × its cores × $36 per core-hour (a cent a core-second).
    let core_seconds: f64 = usage
        .iter()
        .map(|u| (u["ended_at"].as_f64().unwrap() - u["launched_at"].as_f64().unwrap()) * u["vcpus"].as_f64().unwrap())
        .sum();
    let bill = &s["bills"][0];
    let cents = |x: f64| (x * 100.0).round() as i64;
    assert!(core_seconds > 0.0, "{step}");
    assert_eq!(cents(bill["cost_usd"].as_f64().unwrap()), cents(core_seconds * 0.01), "{bill}");
    assert_eq!(cents(bill["emr_equivalent_usd"].as_f64().unwrap()), cents(core_seconds * 0.025), "{bill}");
}

#[test]
fn a_killed_orchestrator_resumes_without_redoing_committed_items() {
    let f = fixture(MAP_JOB, "", 6);
    let mut run = f.spawn(&["--workers", "1"], &[("SPOTLAKE_TEST_ITEM_SLEEP_MS", "700")]);
    let manifests = |f: &Fixture| {
        let mut out = Vec::new();
        let dir = f.state().join("items/faults/map/_");
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            // A manifest being written sits under a hidden temporary name until it is renamed.
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if let Ok(modified) = e.metadata().and_then(|m| m.modified()) {
                out.push((e.path(), modified));
            }
        }
        out
    };
    wait_until("two committed items", Duration::from_secs(60), || manifests(&f).len() >= 2);
    kill(run.id(), libc::SIGKILL);
    run.wait().unwrap();
    let committed = manifests(&f);
    let summary = f.root.join("resume.json");
    let out = f.run(&["--summary-json", &summary.to_string_lossy()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert!(s["steps"][0]["items_already_committed"].as_u64().unwrap() >= committed.len() as u64, "{s}");
    for (path, mtime) in committed {
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime, "{} was not redone", path.display());
    }
    assert_same_rows(&rows(&f.root.join("out")), &reference_rows(MAP_JOB));
}

#[test]
fn a_poison_item_fails_the_step_with_its_error() {
    let job = MAP_JOB.replace("bad_rows = \"skip\"", "bad_rows = \"fail\"");
    let f = fixture(&job, "max_attempts = 3\n", 2);
    let out = f.run(&[], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    // Bad data fails the same way every time: one attempt, not three on paid instances.
    assert!(err.contains("failed after 1 attempt(s)") && err.contains("not retried"), "{err}");
    assert!(err.contains("row ") && err.contains("column"), "the item's error names row and column: {err}");
}

#[test]
fn an_item_reaching_the_queues_visibility_ceiling_is_stopped_unpublished_and_fails_naming_the_limit() {
    // SQS keeps a message invisible at most 12 hours from its receipt; the failpoint makes the
    // ceiling 8 s so the test reaches it. Items take 30 s: each is stopped 2 s (two heartbeats)
    // before the ceiling, never published, and not retried (a rerun would hit the same limit).
    let f = fixture(MAP_JOB, "max_attempts = 3\n", 1);
    let out = f.run(
        &["--workers", "1"],
        &[("SPOTLAKE_TEST_ITEM_SLEEP_MS", "30000"), ("SPOTLAKE_TEST_VISIBILITY_CEILING_SECS", "8")],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("failed after 1 attempt(s)"), "{err}");
    assert!(
        err.contains("its queue keeps a message invisible at most 8s from its receipt (SQS's limit)")
            && err.contains("split the item"),
        "{err}"
    );
    let published: Vec<_> = walkdir(&f.root.join("out"));
    assert!(published.is_empty(), "nothing of the stopped item is published: {published:?}");
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().flat_map(|e| if e.path().is_dir() { walkdir(&e.path()) } else { vec![e.path()] }).collect()
}

#[test]
fn sql_naming_a_missing_column_fails_at_the_first_attempt_naming_output_and_column() {
    let job = MAP_JOB
        .replace("SELECT event_id, user_id, event_type, amount FROM web", "SELECT event_id, no_such_column FROM web");
    let f = fixture(&job, "max_attempts = 3\n", 2);
    let out = f.run(&[], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("failed after 1 attempt(s)") && err.contains("not retried"), "{err}");
    assert!(err.contains("output \"out\": SQL") && err.contains("no_such_column"), "{err}");
}

#[test]
fn a_worker_crashing_on_an_item_sends_it_to_the_dead_letter_queue() {
    let f = fixture(MAP_JOB, "max_attempts = 1\ninterruption_allowance = 1\n", 1);
    let mut run = f.spawn(&["--workers", "1"], &[("SPOTLAKE_TEST_ITEM_SLEEP_MS", "60000")]);
    // Each time a worker picks the item up, its host "crashes".
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while run.try_wait().unwrap().is_none() && Instant::now() < deadline {
        for p in worker_pids(&f.state()) {
            if alive(p) && !children_of(p).is_empty() {
                kill(p, libc::SIGKILL);
                kills += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = run.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(kills >= 2, "the item was delivered more than once ({kills}): {err}");
    // The bound counts every delivery, and the error says how each ended.
    assert!(
        err.contains(
            "failed after 2 attempt(s): the item went to the dead-letter queue after 2 deliveries: 0 failed, \
             0 handed back by their worker, 2 with no callback"
        ),
        "{err}"
    );
}

#[test]
fn sigterm_deletes_the_fleet() {
    let f = fixture(MAP_JOB, "", 6);
    let mut run = f.spawn(&[], &[("SPOTLAKE_TEST_ITEM_SLEEP_MS", "5000")]);
    let mut pids = Vec::new();
    wait_until("workers", Duration::from_secs(60), || {
        pids = worker_pids(&f.state());
        pids.len() == 2 && pids.iter().all(|p| alive(*p))
    });
    kill(run.id(), libc::SIGTERM);
    let status = run.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "a cancelled run is a failure");
    assert!(err.contains("cancelled by SIGTERM"), "{err}");
    assert!(pids.iter().all(|p| !alive(*p)), "no worker outlives the run");
    assert!(worker_pids(&f.state()).is_empty(), "the fleet record is gone");
}

#[test]
fn an_item_over_its_memory_limit_fails_cleanly() {
    let job = MAP_JOB.replace("split = \"file\"", "split = \"file\"\nmemory_limit_mb = 1\nmax_attempts = 3");
    let f = fixture(&job, "", 1);
    let out = f.run(&[], &[("SPOTLAKE_TEST_ITEM_SLEEP_MS", "1000")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("went over its memory limit of 1 MiB at "), "{err}");
    // The same item needs the same memory: one attempt of the three, and how to give it more.
    assert!(err.contains("failed after 1 attempt(s)") && err.contains("not retried"), "{err}");
    assert!(err.contains("raise `memory_limit_mb` in step \"map\" of the job spec"), "{err}");
    let mut files = Vec::new();
    data_files(&f.root.join("out"), &mut files);
    assert!(files.is_empty(), "a failed item publishes nothing: {files:?}");
}

#[test]
fn an_item_of_a_step_without_a_memory_limit_gets_a_share_of_its_machine() {
    let f = fixture(MAP_JOB, "max_attempts = 3\n", 1);
    // A machine of 2 MiB, as the worker is told: 90% of it, for the one item it runs, is 1 MiB.
    let out = f.run(&["--workers", "1"], &[("SPOTLAKE_MEMORY_MIB", "2"), ("SPOTLAKE_TEST_ITEM_SLEEP_MS", "1000")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "went over its memory limit of 1 MiB (the default: 90% of the machine's 2 MiB, shared by the 1 item(s) it \
             runs at once) at "
        ),
        "{err}"
    );
    assert!(err.contains("set `memory_limit_mb` in step \"map\" of the job spec to what one item needs"), "{err}");
    assert!(err.contains("failed after 1 attempt(s)"), "{err}");
}

#[test]
fn a_panic_inside_polars_fails_the_item_at_once_naming_the_step_the_output_and_where() {
    let f = fixture(MAP_JOB, "max_attempts = 3\n", 1);
    // Polars' Parquet writer panics on a morsel size that is not a number: a real panic, which
    // every attempt would meet again.
    let out = f.run(&[], &[("POLARS_IDEAL_SINK_MORSEL_SIZE_ROWS", "many")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "step \"map\", output \"out\": Polars panicked while running the item: invalid value for \
             POLARS_IDEAL_SINK_MORSEL_SIZE_ROWS: many (at polars-stream-"
        ),
        "{err}"
    );
    assert!(err.contains("failed after 1 attempt(s)") && err.contains("not retried"), "{err}");
}

#[test]
fn bad_configuration_is_refused_before_anything_runs() {
    let f = fixture(MAP_JOB, "", 1);
    std::fs::write(&f.config, "backend = \"aws\"\n").unwrap();
    let out = f.run(&[], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("[ec2]"), "{}", stderr(&out));
    std::fs::write(&f.config, "workers = \"many\"\n").unwrap();
    let out = f.run(&[], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("runner.toml"), "the error names the file: {}", stderr(&out));
    // Polars would panic in every group-by of every item on this; the run refuses it at once.
    std::fs::write(&f.config, "").unwrap();
    let out = f.run(&[], &[("POLARS_HOT_TABLE_SIZE", "100000")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("POLARS_HOT_TABLE_SIZE=\"100000\"") && stderr(&out).contains("power of two"));
    assert!(!f.root.join("out").exists(), "nothing was written");
}

#[test]
fn an_item_that_crashes_fails_with_the_end_of_its_stderr() {
    let f = fixture(MAP_JOB, "max_attempts = 1\n", 1);
    let out = f.run(&["--workers", "1"], &[("SPOTLAKE_TEST_ITEM_ABORT", "native code said: buffer overrun in reader")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    // A crash is the item's own failure (not an interruption to retry for free), and its cause
    // is only in its stderr: that travels in the callback to the orchestrator's log.
    assert!(err.contains("item process crashed with signal 6"), "{err}");
    assert!(err.contains("its stderr ends with:") && err.contains("buffer overrun in reader"), "{err}");
    assert!(err.contains("failed after 1 attempt(s)"), "{err}");
}

/// Five rows no generated file has, gzipped, as a file that lands while a run is going.
fn late_file() -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..5 {
        writeln!(gz, "late-{i},u0000001,2024-01-01 12:00:0{i},click,1.5,SE,desktop").unwrap();
    }
    gz.finish().unwrap()
}

#[test]
fn a_second_run_of_a_partition_being_worked_on_is_refused_and_no_row_is_lost_or_doubled() {
    let reference = reference_rows(MAP_JOB);
    let f = fixture(MAP_JOB, "", 6);
    let mut first = f.spawn(&["--workers", "1"], &[("SPOTLAKE_TEST_ITEM_SLEEP_MS", "1500")]);
    wait_until("the first run's worker running an item", Duration::from_secs(60), || {
        worker_pids(&f.state()).iter().any(|p| !children_of(*p).is_empty())
    });
    // A new raw file lands after the first run planned, and a second run starts.
    let day = std::fs::read_dir(f.root.join("raw")).unwrap().flatten().next().unwrap().path();
    std::fs::write(day.join("web-late.csv.gz"), late_file()).unwrap();
    let second = f.run(&[], &[]);
    assert!(!second.status.success(), "the second run is refused");
    let err = stderr(&second);
    assert!(err.contains("is being worked on by run") && err.contains(&format!("(pid {})", first.id())), "{err}");
    assert!(err.contains("faults/map/_"), "it names the job, step and partition: {err}");
    let status = first.wait().unwrap();
    let mut first_err = String::new();
    std::io::Read::read_to_string(first.stderr.as_mut().unwrap(), &mut first_err).unwrap();
    assert!(status.success(), "{first_err}");
    // Run again once the first is done: it adds the late file's rows, and only those.
    let again = f.run(&[], &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let out = rows(&f.root.join("out"));
    assert_eq!(out.height(), reference.height() + 5, "every row once, the late ones too");
    let ids: Vec<String> = out.column("event_id").unwrap().str().unwrap().iter().flatten().map(String::from).collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "no row is duplicated");
    assert_eq!(ids.iter().filter(|i| i.starts_with("late-")).count(), 5);
}

/// A spawned run's end: its exit, its stderr, and how long it took from `since`.
struct Ended {
    success: bool,
    stderr: String,
    after: Duration,
}

/// Waits for a spawned run on a thread of its own (its stderr is read meanwhile, so a chatty
/// run never blocks on a full pipe).
fn ended(child: Child, since: Instant) -> std::thread::JoinHandle<Ended> {
    std::thread::spawn(move || {
        let out = child.wait_with_output().unwrap();
        Ended { success: out.status.success(), stderr: stderr(&out), after: since.elapsed() }
    })
}

/// The run that committed each of a step's items, from the manifests under the run state.
fn committers(state: &Path, job: &str, step: &str) -> Vec<String> {
    let dir = state.join(format!("items/{job}/{step}/_"));
    let mut runs = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "json") {
            let m: serde_json::Value = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            runs.push(m["run_id"].as_str().unwrap().to_string());
        }
    }
    runs
}

/// The summary a run wrote to `{root}/{run}.json`.
fn summary_of(f: &Fixture, run: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(f.root.join(format!("{run}.json"))).unwrap()).unwrap()
}

#[test]
fn of_two_runs_of_a_partition_started_together_exactly_one_works_and_the_other_fails_at_once_naming_it() {
    let reference = reference_rows(MAP_JOB);
    let f = fixture(MAP_JOB, "", 6);
    let summary = |run: &str| f.root.join(format!("{run}.json")).to_string_lossy().into_owned();
    // Items that take a while, so the winner is still at work when the loser has long ended.
    let slow = [("SPOTLAKE_TEST_ITEM_SLEEP_MS", "2000")];
    let since = Instant::now();
    let a = f.spawn(&["--run-id", "race-a", "--summary-json", &summary("race-a")], &slow);
    let b = f.spawn(&["--run-id", "race-b", "--summary-json", &summary("race-b")], &slow);
    let (a, b) = (ended(a, since), ended(b, since));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert!(a.success != b.success, "exactly one run works:\n--- race-a\n{}\n--- race-b\n{}", a.stderr, b.stderr);
    let ((winner, won), (loser, lost)) =
        if a.success { (("race-a", a), ("race-b", b)) } else { (("race-b", b), ("race-a", a)) };
    assert!(
        lost.stderr.contains(&format!("faults/map/_ is being worked on by run {winner} on ")),
        "the loser names the winner's run: {}",
        lost.stderr
    );
    // At once, not after a wait: it ended before the winner, whose six items of 2 s on two
    // workers take 6 s at least (a waiting run could only end after the lease was given back),
    // and it launched no worker. An order, not a margin: a slow machine makes both later.
    assert!(lost.after < won.after, "{loser} took {:?}, {winner} {:?}", lost.after, won.after);
    assert!(!f.state().join(format!("runs/{loser}/workers")).exists(), "{loser} launched no worker");
    assert!(!f.root.join(format!("{loser}.json")).exists(), "{loser} wrote no summary");
    // The output is the winner's: every row once, each item committed by it.
    assert_same_rows(&rows(&f.root.join("out")), &reference);
    assert_eq!(summary_of(&f, winner)["steps"][0]["outputs"]["out"]["rows"].as_u64(), Some(reference.height() as u64));
    assert_eq!(committers(&f.state(), "faults", "map"), vec![winner.to_string(); 6], "{}", won.stderr);
}

/// `fixture`'s config with `lease_wait_secs` set, in a file of its own.
fn waiting_config(f: &Fixture, secs: u64) -> PathBuf {
    let path = f.root.join(format!("wait-{secs}.toml"));
    let base = std::fs::read_to_string(&f.config).unwrap();
    std::fs::write(&path, format!("{base}lease_wait_secs = {secs}\n")).unwrap();
    path
}

/// The earliest launch and the latest end of a step's workers, from a run's summary.
fn workers_span(summary: &serde_json::Value) -> (f64, f64) {
    let usage = summary["steps"][0]["usage"].as_array().unwrap();
    assert!(!usage.is_empty(), "the step launched workers: {summary}");
    let at = |k: &'static str| usage.iter().map(move |u| u[k].as_f64().unwrap());
    (at("launched_at").fold(f64::INFINITY, f64::min), at("ended_at").fold(0.0, f64::max))
}

#[test]
fn with_lease_wait_secs_a_second_run_waits_for_the_first_and_a_shorter_wait_fails_naming_it() {
    let reference = reference_rows(MAP_JOB);
    let f = fixture(MAP_JOB, "", 6);
    let summary = |run: &str| f.root.join(format!("{run}.json")).to_string_lossy().into_owned();
    // Six items of 3 s on one worker: the holder holds the lease for 18 s at least, far longer
    // than the short run below needs to start, wait its 2 s and fail, even on a busy machine.
    let since = Instant::now();
    let holder = f.spawn(
        &["--workers", "1", "--run-id", "holder", "--summary-json", &summary("holder")],
        &[("SPOTLAKE_TEST_ITEM_SLEEP_MS", "3000")],
    );
    let holder = ended(holder, since);
    wait_until("the holder's worker running an item", Duration::from_secs(60), || {
        worker_pids(&f.state()).iter().any(|p| !children_of(*p).is_empty())
    });
    // A file lands after the holder planned: only a run that plans after it can see it.
    let day = std::fs::read_dir(f.root.join("raw")).unwrap().flatten().next().unwrap().path();
    std::fs::write(day.join("web-late.csv.gz"), late_file()).unwrap();

    // A wait of 2 s runs out while the holder works: the run fails naming it.
    let short = waiting_config(&f, 2);
    let asked = Instant::now();
    let out = f.run(&["--run-id", "short"], &[("SPOTLAKE_CONFIG", &short.to_string_lossy())]);
    let waited = asked.elapsed();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("faults/map/_ is being worked on by run holder on "), "{err}");
    assert!(waited >= Duration::from_secs(2), "it waited its 2 s first: {waited:?}\n{err}");
    assert!(!holder.is_finished(), "the holder was still at work when the short wait ran out");

    // A wait longer than the holder's run: the run waits, then does the work the holder left.
    let long = waiting_config(&f, 120);
    let waiter = f.spawn(
        &["--run-id", "waiter", "--summary-json", &summary("waiter")],
        &[("SPOTLAKE_CONFIG", &long.to_string_lossy())],
    );
    let waiter = ended(waiter, since);
    let (holder, waiter) = (holder.join().unwrap(), waiter.join().unwrap());
    assert!(holder.success, "{}", holder.stderr);
    assert!(waiter.success, "{}", waiter.stderr);
    assert!(waiter.stderr.contains("waiting for faults/map/_, held by run holder on "), "{}", waiter.stderr);
    let (h, w) = (summary_of(&f, "holder"), summary_of(&f, "waiter"));
    // It planned once the holder had committed all six items, and saw the late file: one item
    // of its own, whose worker started after the holder's workers had ended.
    assert_eq!(
        (w["steps"][0]["items"].as_u64(), w["steps"][0]["items_already_committed"].as_u64()),
        (Some(7), Some(6)),
        "{w}"
    );
    let ((_, holder_end), (waiter_start, _)) = (workers_span(&h), workers_span(&w));
    assert!(
        waiter_start >= holder_end,
        "the waiter's worker started at {waiter_start}, the holder's ended at {holder_end}"
    );
    // Every row once: the holder's, and the late file's five.
    let out = rows(&f.root.join("out"));
    assert_eq!(out.height(), reference.height() + 5, "every row once, the late ones too");
    let ids: Vec<String> = out.column("event_id").unwrap().str().unwrap().iter().flatten().map(String::from).collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "no row is duplicated");
    assert_eq!(ids.iter().filter(|i| i.starts_with("late-")).count(), 5);
    let mut committers = committers(&f.state(), "faults", "map");
    committers.sort();
    assert_eq!(committers, [vec!["holder".to_string(); 6], vec!["waiter".to_string()]].concat());
}

/// A job whose input, output and SQL all use the key.
const KEYED_JOB: &str = include_str!("jobs/keyed.toml");

fn keyed_fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir_all(&root).unwrap();
    let job = dir.path().join("job.toml");
    std::fs::write(&job, KEYED_JOB).unwrap();
    (dir, root, job)
}

fn run_keyed(root: &Path, job: &Path, key: &str) -> Output {
    Command::new(support::runner_bin())
        .args(["run"])
        .arg(job)
        .arg("--root")
        .arg(root)
        .args(["--workers", "1", "--partition", key])
        .env_remove("DAGSTER_PIPES_CONTEXT")
        .env_remove("DAGSTER_PIPES_MESSAGES")
        .output()
        .unwrap()
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_partition_keys_are_refused_before_anything_is_written() {
    let (_dir, root, job) = keyed_fixture();
    std::fs::create_dir_all(root.join("in/2024-01-01")).unwrap();
    std::fs::write(root.join("in/2024-01-01/a.csv"), "id,n\nx,1\n").unwrap();
    let before = tree(&root);
    for key in ["a/b", "../x", "/etc", "*", "2024-01-0[1-9]", "s3://other/x", "..", "a\u{1}b", " x", "{partition_key}"]
    {
        let out = run_keyed(&root, &job, key);
        assert!(!out.status.success(), "{key:?} was accepted");
        let err = stderr(&out);
        assert!(err.contains("partition key"), "{key:?}: {err}");
        assert_eq!(tree(&root), before, "{key:?} wrote something");
    }
}

#[test]
fn keys_that_would_share_a_folder_each_keep_their_own_and_quotes_stay_in_their_literal() {
    let (_dir, root, job) = keyed_fixture();
    // The last is the longest accepted: a folder name of 200 bytes.
    let long = format!("long key x{}", "ß".repeat(95));
    let keys = ["a b", "a_b", "a:b", "100%", "o'brien", "' OR '1'='1", "Zürich", long.as_str()];
    for (i, key) in keys.iter().enumerate() {
        let seg = runner_types::PartitionKey::new(*key).unwrap().path_segment();
        std::fs::create_dir_all(root.join("in").join(&seg)).unwrap();
        std::fs::write(root.join("in").join(&seg).join("p.csv"), format!("id,n\nrow-{i},{i}\n")).unwrap();
    }
    for key in keys {
        let out = run_keyed(&root, &job, key);
        assert!(out.status.success(), "{key:?}: {}", stderr(&out));
    }
    // Every key's output survives the others' runs, holds its own row, and the key read back
    // through SQL is the key itself.
    for (i, key) in keys.iter().enumerate() {
        let seg = runner_types::PartitionKey::new(*key).unwrap().path_segment();
        let df = rows_any(&root.join("out").join(format!("k={seg}")));
        assert_eq!(df.height(), 1, "{key:?}");
        assert_eq!(df.column("id").unwrap().str().unwrap().get(0), Some(format!("row-{i}").as_str()), "{key:?}");
        assert_eq!(df.column("key").unwrap().str().unwrap().get(0), Some(*key), "{key:?}");
    }
    let folders: BTreeSet<String> = std::fs::read_dir(root.join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(folders.len(), keys.len(), "one folder per key: {folders:?}");
}

#[test]
fn keys_that_differ_only_in_case_are_refused_naming_both_wherever_the_job_runs() {
    let (_dir, root, job) = keyed_fixture();
    let pairs = [("EU", "eu"), ("Zürich", "ZÜRICH")];
    for key in pairs.iter().flat_map(|(a, b)| [a, b]) {
        let seg = runner_types::PartitionKey::new(*key).unwrap().path_segment();
        std::fs::create_dir_all(root.join("in").join(&seg)).unwrap();
        std::fs::write(root.join("in").join(&seg).join("p.csv"), format!("id,n\n{key},1\n")).unwrap();
    }
    for (first, second) in pairs {
        let out = run_keyed(&root, &job, first);
        assert!(out.status.success(), "{first:?}: {}", stderr(&out));
        let before = tree(&root.join("out"));
        let out = run_keyed(&root, &job, second);
        assert!(!out.status.success(), "{second:?} was accepted beside {first:?}");
        let err = stderr(&out);
        assert!(err.contains(&format!("partition key {second:?} differs only in case from {first:?}")), "{err}");
        assert_eq!(tree(&root.join("out")), before, "{second:?} wrote something");
        // The first keeps its claim: its reruns go on.
        let out = run_keyed(&root, &job, first);
        assert!(out.status.success(), "{first:?} again: {}", stderr(&out));
    }
    let folders: BTreeSet<String> = std::fs::read_dir(root.join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(folders, BTreeSet::from(["k=EU".to_string(), "k=Zürich".to_string()]));
    // Both in one run: refused before any step, naming both.
    let out = Command::new(support::runner_bin())
        .arg("run")
        .arg(&job)
        .arg("--root")
        .arg(&root)
        .args(["--workers", "1", "--partition", "NEW", "--partition", "new"])
        .env_remove("DAGSTER_PIPES_CONTEXT")
        .env_remove("DAGSTER_PIPES_MESSAGES")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains(r#"partition key "new" differs only in case from "NEW""#), "{}", stderr(&out));
    let out = run_keyed(&root, &job, "new");
    assert!(!stderr(&out).contains("differs only in case"), "the refused run claimed nothing: {}", stderr(&out));
}

/// Every row of the Parquet files under `dir`.
fn rows_any(dir: &Path) -> DataFrame {
    let mut files = Vec::new();
    data_files(dir, &mut files);
    assert!(!files.is_empty(), "no output under {}", dir.display());
    let mut all: Option<DataFrame> = None;
    for p in files {
        let df = ParquetReader::new(std::fs::File::open(p).unwrap()).finish().unwrap();
        all = Some(match all {
            Some(a) => a.vstack(&df).unwrap(),
            None => df,
        });
    }
    all.unwrap()
}

#[test]
fn an_s3_that_never_answers_fails_the_run_within_its_bound() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.toml");
    std::fs::write(&job, MAP_JOB).unwrap();
    let started = Instant::now();
    let out = Command::new(support::runner_bin())
        .arg("run")
        .arg(&job)
        .args(["--root", "s3://lake/data", "--state", "s3://lake/state", "--workers", "1"])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("SPOTLAKE_AWS_TIMEOUT_SECS", "0.5")
        .env_remove("DAGSTER_PIPES_CONTEXT")
        .env_remove("DAGSTER_PIPES_MESSAGES")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.to_lowercase().contains("timeout") || err.to_lowercase().contains("timed out"), "{err}");
    // Bound: a few calls' worth of attempts of 1 s each, not forever.
    assert!(started.elapsed() < Duration::from_secs(90), "{:?}\n{err}", started.elapsed());
}

#[test]
fn an_unreadable_manifest_stops_the_prune_and_is_not_deleted() {
    let f = fixture(MAP_JOB, "", 2);
    let first = f.run(&[], &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let before = rows_count(&f.root.join("out"));
    // A superseded item whose manifest is garbage: its files can't be found from it.
    let bad = f.state().join("items/faults/map/_/0123456789abcdef.json");
    std::fs::write(&bad, b"{ not a manifest").unwrap();
    let out = f.run(&[], &[]);
    assert!(!out.status.success(), "the run fails rather than delete blind");
    let err = stderr(&out);
    assert!(err.contains("0123456789abcdef") && err.contains("can't be read") && err.contains("nothing"), "{err}");
    assert!(bad.exists(), "the manifest is left for a person to look at");
    assert_eq!(rows_count(&f.root.join("out")), before, "no output was touched");
}

#[test]
fn checks_are_evaluated_per_partition_on_that_partitions_data_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let status = Command::new(support::runner_bin())
        .args(["example", "generate", "--days", "3", "--events-per-day", "3000", "--out"])
        .arg(&root)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    // The example's checks, and one that must fail: users have many events a day.
    let job = std::fs::read_to_string(support::workspace().join("runner/examples/events/job.toml")).unwrap()
        + "\n[[check]]\nkind = \"unique\"\nname = \"one_event_per_user\"\noutput = \"clean.clean\"\ncolumns = [\"user_id\"]\n";
    let job_path = dir.path().join("job.toml");
    std::fs::write(&job_path, job).unwrap();
    let run = |args: &[&str]| {
        Command::new(support::runner_bin())
            .arg("run")
            .arg(&job_path)
            .arg("--root")
            .arg(&root)
            .args(["--workers", "2"])
            .args(args)
            .env_remove("DAGSTER_PIPES_CONTEXT")
            .env_remove("DAGSTER_PIPES_MESSAGES")
            .output()
            .unwrap()
    };
    // A ranged run: the key is unique per day, not over the three days together.
    let out = run(&["--partition-range", "2024-01-01..2024-01-03"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("check one_row_per_user on user_daily.user_daily: passed (passed in each of 3 partitions)"),
        "{err}"
    );
    assert!(err.contains("check one_event_per_user on clean.clean: FAILED (failed in 3 of 3 partitions"), "{err}");
    // One day: the check reads that day's hive directory, not the days written before.
    let summary = root.join("one.json");
    let out = run(&["--partition", "2024-01-02", "--summary-json", &summary.to_string_lossy()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let day_rows = s["steps"][0]["outputs"]["clean"]["rows"].as_u64().unwrap();
    assert!(err.contains(&format!("0 nulls in \"user_id\" over {day_rows} rows")), "{day_rows} rows: {err}");
}

#[test]
fn a_thirty_day_backfill_in_one_run_passes_its_checks_day_by_day() {
    // Measured before checks were per partition: this run reported one_row_per_user FAILED with
    // tens of thousands of "duplicates", each user's one row a day counted over the month.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let status = Command::new(support::runner_bin())
        .args(["example", "generate", "--days", "30", "--events-per-day", "400", "--csv-files", "1", "--out"])
        .arg(&root)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let summary = root.join("month.json");
    let out = Command::new(support::runner_bin())
        .arg("run")
        .arg(support::workspace().join("runner/examples/events/job.toml"))
        .arg("--root")
        .arg(&root)
        .args(["--workers", "2", "--partition-range", "2024-01-01..2024-01-30", "--summary-json"])
        .arg(&summary)
        .env_remove("DAGSTER_PIPES_CONTEXT")
        .env_remove("DAGSTER_PIPES_MESSAGES")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    for check in [
        "user_id_present on clean.clean",
        "one_row_per_user on user_daily.user_daily",
        "has_users on user_daily.user_daily",
    ] {
        assert!(err.contains(&format!("check {check}: passed (passed in each of 30 partitions)")), "{check}: {err}");
    }
    // Each day's rows are that day's alone: 30 partitions, and they add up to the output.
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let user_daily = &s["steps"][2]["outputs"]["user_daily"];
    let by_day = user_daily["by_partition"].as_object().unwrap();
    assert_eq!(by_day.len(), 30);
    let sum: u64 = by_day.values().map(|v| v["rows"].as_u64().unwrap()).sum();
    assert_eq!(sum, user_daily["rows"].as_u64().unwrap());
    assert_eq!(rows_any(&root.join("user_daily")).height() as u64, sum, "on disk, each row once");
    // And each day's step figures are its own: they add up to the step's.
    // (step, figure, whether days differ in it, so a copied figure could not pass)
    for (step, field, differs) in
        [(0, "rows_in", false), (0, "rows_quarantined", true), (2, "items", false), (2, "rows_in", true)]
    {
        let parts = s["steps"][step]["by_partition"].as_object().unwrap();
        assert_eq!(parts.len(), 30);
        let sum: u64 = parts.values().map(|p| p[field].as_u64().unwrap()).sum();
        assert_eq!(sum, s["steps"][step][field].as_u64().unwrap(), "step {step} {field}");
        let values: BTreeSet<u64> = parts.values().map(|p| p[field].as_u64().unwrap()).collect();
        assert!(field == "rows_quarantined" || !values.contains(&0), "step {step} {field}: {values:?}");
        assert!(!differs || values.len() > 1, "step {step} {field}: {values:?}");
    }
}

/// MAP_JOB, and a step that reads its output directory by glob.
fn two_step_job() -> String {
    format!(
        "{MAP_JOB}\n[[step]]\nname = \"gather\"\nsplit = \"single\"\n[step.inputs.m]\npath = \"out/**/*.parquet\"\nformat = \"parquet\"\n[step.outputs.final]\npath = \"final\"\nsql = \"SELECT event_id FROM m\"\n"
    )
}

/// Parquet files under `dir` and the item id in each name (`part-{16 hex}…`).
fn files_by_item(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    data_files(dir, &mut files);
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let id = name.strip_prefix("part-").and_then(|n| n.get(..16)).unwrap_or_default().to_string();
            (p, id)
        })
        .collect()
}

/// Every committed item id under the run state (`{id}.json` manifests).
fn manifest_ids(state: &Path) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut todo = vec![state.join("items")];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Some(id) = path.file_name().unwrap().to_string_lossy().strip_suffix(".json") {
                ids.insert(id.to_string());
            }
        }
    }
    ids
}

fn parquet_rows(files: &[PathBuf]) -> usize {
    files.iter().map(|p| ParquetReader::new(std::fs::File::open(p).unwrap()).num_rows().unwrap()).sum()
}

#[test]
fn a_file_published_before_a_kill_is_never_read_downstream_and_is_deleted_when_its_step_reruns() {
    let f = fixture(&two_step_job(), "", 3);
    let marker = f.root.join("published-one.marker");
    let mut run = f.spawn(&["--workers", "2"], &[("SPOTLAKE_TEST_HANG_AFTER_PUBLISH", &marker.to_string_lossy())]);
    // One item hangs after its first file; the others commit.
    wait_until("an item's first published file, and another item committed", Duration::from_secs(60), || {
        marker.exists() && !manifest_ids(&f.state()).is_empty()
    });
    // The whole run dies between the item's first file and its manifest.
    kill(run.id(), libc::SIGKILL);
    run.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let committed = manifest_ids(&f.state());
    let (kept, stray): (Vec<_>, Vec<_>) =
        files_by_item(&f.root.join("out")).into_iter().partition(|(_, id)| committed.contains(id));
    let stray: Vec<PathBuf> = stray.into_iter().map(|(p, _)| p).collect();
    let kept: Vec<PathBuf> = kept.into_iter().map(|(p, _)| p).collect();
    assert!(!stray.is_empty(), "the killed item left a published file");
    // The downstream step alone, over what is there: it reads the committed files only.
    let out = f.run(&["--step", "gather"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rows_any(&f.root.join("final")).height(), parquet_rows(&kept), "the stray file is not read");
    // Every input changes (a row more each): every item gets a new id, and the stray file's
    // item is superseded without a manifest to find it by.
    let raw_day = std::fs::read_dir(f.root.join("raw")).unwrap().flatten().next().unwrap().path();
    for e in std::fs::read_dir(&raw_day).unwrap().flatten() {
        let path = e.path();
        if !path.to_string_lossy().contains("web-") {
            continue;
        }
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()),
            &mut text,
        )
        .unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        text.push_str(&format!("extra-{name},u0000001,2024-01-01 12:00:00,click,1.5,SE,desktop\n"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
    }
    let summary = f.root.join("redo.json");
    let out = f.run(&["--summary-json", &summary.to_string_lossy()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let committed_rows = s["steps"][0]["outputs"]["out"]["rows"].as_u64().unwrap() as usize;
    // The redone step swept its directory: the stray file is gone, found by its name.
    assert!(stray.iter().all(|p| !p.exists()), "the stray file was deleted: {stray:?}");
    let on_disk: Vec<PathBuf> = files_by_item(&f.root.join("out")).into_iter().map(|(p, _)| p).collect();
    assert_eq!(parquet_rows(&on_disk), committed_rows, "only committed rows are on disk");
    let gathered = rows_any(&f.root.join("final"));
    assert_eq!(gathered.height(), committed_rows, "downstream read the committed rows, each once");
    let ids: BTreeSet<&str> = gathered.column("event_id").unwrap().str().unwrap().iter().flatten().collect();
    assert_eq!(ids.len(), committed_rows, "no row is duplicated");
}

#[test]
fn a_job_spec_changed_between_runs_replaces_what_the_old_one_wrote() {
    let f = fixture(MAP_JOB, "", 3);
    let out = f.run(&["--summary-json", &f.root.join("old.json").to_string_lossy()], &[]);
    let old = f.summary(&out, "old");
    let rows = old["steps"][0]["outputs"]["out"]["rows"].as_u64().unwrap() as usize;
    let old_files = files_by_item(&f.root.join("out"));
    // The step's SQL changes (a column more, purchases only): every item has a new id.
    std::fs::write(
        &f.job,
        MAP_JOB.replace(
            "sql = \"SELECT event_id, user_id, event_type, amount FROM web\"",
            "sql = \"SELECT event_id, user_id, event_type, amount, country FROM web WHERE event_type = 'purchase'\"",
        ),
    )
    .unwrap();
    let out = f.run(&["--summary-json", &f.root.join("new.json").to_string_lossy()], &[]);
    let new = f.summary(&out, "new");
    assert_eq!(new["steps"][0]["items_already_committed"], 0, "no item of the old spec counts as done");
    assert!(old_files.iter().all(|(p, _)| !p.exists()), "every file of the old spec is gone");
    let now = rows_any(&f.root.join("out"));
    let purchases = new["steps"][0]["outputs"]["out"]["rows"].as_u64().unwrap() as usize;
    assert!(purchases > 0 && purchases < rows, "{purchases} of {rows}");
    assert_eq!(now.height(), purchases, "only the new spec's rows are on disk");
    assert!(now.column("country").is_ok(), "in the new spec's shape");
    let ids: BTreeSet<&str> = now.column("event_id").unwrap().str().unwrap().iter().flatten().collect();
    assert_eq!(ids.len(), purchases, "none twice");
    // And back: the old spec's items are made again, not found half-deleted.
    std::fs::write(&f.job, MAP_JOB).unwrap();
    let out = f.run(&["--summary-json", &f.root.join("back.json").to_string_lossy()], &[]);
    let back = f.summary(&out, "back");
    assert_eq!(back["steps"][0]["outputs"]["out"]["rows"].as_u64().unwrap() as usize, rows);
    assert_eq!(rows_any(&f.root.join("out")).height(), rows);
}

#[test]
fn malformed_work_and_callback_messages_are_dropped_and_nothing_is_lost() {
    use runner_backends::queue::{LocalQueues, QueueBackend};
    let reference = reference_rows(MAP_JOB);
    let f = fixture(MAP_JOB, "", 4);
    let mut run = f.spawn(&["--workers", "1"], &[("SPOTLAKE_TEST_ITEM_SLEEP_MS", "2500")]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let queues = LocalQueues::new(f.state().join("queues.sqlite"));
    let mut names = Vec::new();
    wait_until("the run's work and callback queues", Duration::from_secs(60), || {
        names = rt.block_on(queues.list("")).unwrap_or_default();
        names.iter().any(|n| n.ends_with("map-work")) && names.iter().any(|n| n.ends_with("callbacks"))
    });
    // What a bug elsewhere, or a stranger with access to the queues, might put there.
    let junk: Vec<String> =
        ["not json", "{}", r#"{"item": 5}"#, r#"{"id": "0000000000000000", "step": "map"}"#, "\u{0}\u{1}binary"]
            .into_iter()
            .map(String::from)
            .collect();
    for name in names.iter().filter(|n| n.ends_with("map-work") || n.ends_with("callbacks")) {
        let address = format!("sqlite://{}#{name}", f.state().join("queues.sqlite").display());
        let queue = rt.block_on(queues.open(&address)).unwrap();
        rt.block_on(queue.send(&junk)).unwrap();
    }
    let status = run.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("malformed callback"), "the orchestrator said what it dropped:\n{err}");
    assert_same_rows(&rows(&f.root.join("out")), &reference);
    assert!(rt.block_on(queues.list("")).unwrap().is_empty(), "the run deleted its queues");
}

#[test]
fn checks_are_measured_by_the_items_and_a_rerun_judges_them_without_reading_the_outputs() {
    // Items split by file; users repeat across files, so a unique user_id fails only across
    // items, and event_id is unique everywhere.
    let job = format!(
        "{MAP_JOB}\n[[check]]\nkind = \"unique\"\nname = \"one_event_per_id\"\noutput = \"map.out\"\ncolumns = [\"event_id\"]\n\
         [[check]]\nkind = \"unique\"\nname = \"one_row_per_user\"\noutput = \"map.out\"\ncolumns = [\"user_id\"]\n\
         [[check]]\nkind = \"no_nulls\"\nname = \"user_present\"\noutput = \"map.out\"\ncolumn = \"user_id\"\n"
    );
    let f = fixture(&job, "", 3);
    let out = f.run(&[], &[]);
    let first = stderr(&out);
    assert!(out.status.success(), "{first}");
    let df = rows(&f.root.join("out"));
    let users = df.column("user_id").unwrap().n_unique().unwrap();
    let dupes = df.height() - users;
    assert!(dupes > 0);
    let verdicts = |err: &str| {
        err.lines()
            .filter(|l| l.contains(" check "))
            .map(|l| l.split(" check ").nth(1).unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let expected = [
        format!("one_event_per_id on map.out: passed (0 duplicate keys [\"event_id\"] over {} rows)", df.height()),
        format!("one_row_per_user on map.out: FAILED ({dupes} duplicate keys [\"user_id\"] over {} rows)", df.height()),
        format!("user_present on map.out: passed (0 nulls in \"user_id\" over {} rows)", df.height()),
    ];
    assert_eq!(verdicts(&first), expected, "{first}");
    // The items' distinct keys are in the run state, not among the data.
    let mut keys = Vec::new();
    data_files(&f.state().join("items/faults/map/_/_checks"), &mut keys);
    assert_eq!(keys.len(), 2 * 3, "one file per unique check per item: {keys:?}");
    assert!(!f.root.join("out/_checks").exists());
    // Remove every output file: a rerun finds the items committed and judges the checks from
    // what the items measured.
    let mut outputs = Vec::new();
    data_files(&f.root.join("out"), &mut outputs);
    for p in &outputs {
        std::fs::remove_file(p).unwrap();
    }
    let again = f.run(&[], &[]);
    let second = stderr(&again);
    assert!(again.status.success(), "{second}");
    assert_eq!(verdicts(&second), expected, "{second}");
}

#[test]
fn one_step_with_missing_upstream_runs_the_upstream_steps_only_while_they_have_nothing() {
    let f = fixture(&two_step_job(), "", 2);
    let steps = |name: &str| {
        let path = f.root.join(format!("{name}.json"));
        let out = f.run(&["--step", "gather", "--missing-upstream", "--summary-json", &path.to_string_lossy()], &[]);
        let s = f.summary(&out, name);
        s["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(steps("first"), ["map", "gather"], "nothing of map was committed: it runs first");
    assert_eq!(rows_any(&f.root.join("final")).height(), rows(&f.root.join("out")).height());
    assert_eq!(steps("second"), ["gather"], "map's outputs exist: only the selected step runs");
    // Without the flag, a selected step whose input is missing fails, naming it.
    let g = fixture(&two_step_job(), "", 2);
    let out = g.run(&["--step", "gather"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no files match"), "{}", stderr(&out));
}
