//! `runner run` in AWS mode against moto's server: data and state in S3, queues on SQS, spot
//! fleets created and deleted on EC2. moto never boots an instance, so the stand-in
//! (`support::instances`) runs each instance's real user data: the boot script downloads the
//! worker with the real AWS CLI, checks its sha256, runs it, ships its log and powers off.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use polars::prelude::{ParquetReader, SerReader};
use runner_backends::aws::AwsClients;
use runner_backends::fleet::Fleet;
use runner_backends::fleet::ec2::{Ec2Fleet, Ec2Settings};
use runner_types::BackendKind;
use support::instances::StandIns;

/// At most two stand-in instances per step (moto launches one per unit of capacity).
const SMALL: &str = "vcpus_per_item = 1\nmax_vcpus = 2";

struct Aws {
    moto: support::Moto,
    aws: AwsClients,
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// The example's raw data for a day, in S3 under `data/`, and a config for a fleet whose
/// workers are the runner under test.
async fn setup(ec2_extra: &str) -> Aws {
    let moto = support::Moto::start();
    let aws = AwsClients::for_endpoint(&moto.endpoint, "us-east-1").await;
    let s3 = aws.s3().await;
    s3.create_bucket().bucket("lake").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("gen");
    let status = Command::new(support::runner_bin())
        .args(["example", "generate", "--days", "1", "--events-per-day", "4000", "--out"])
        .arg(&local)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    for entry in walk(&local.join("raw")) {
        let key = format!("data/{}", entry.strip_prefix(&local).unwrap().display());
        put(&s3, &key, std::fs::read(&entry).unwrap()).await;
    }
    let binary = support::upload_worker(&s3, "lake", support::worker_launcher()).await;
    let ec2 = aws.ec2().await;
    let (subnets, ami) = support::ec2_network(&ec2, 1, &["us-east-1a", "us-east-1b"]).await;
    let config = dir.path().join("runner.toml");
    std::fs::write(
        &config,
        format!(
            r#"
backend = "aws"
deployment = "test"
root = "s3://lake/data"
state = "s3://lake/state"
visibility_secs = 5
heartbeat_secs = 1
idle_shutdown_secs = 4
boot_timeout_secs = 60
[ec2]
subnets = {subnets:?}
amis = {{ x86_64 = "{ami}" }}
{binary}
subnet_overrides = "separate"
{ec2_extra}
"#
        ),
    )
    .unwrap();
    Aws { moto, aws, dir, config }
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, bytes: Vec<u8>) {
    s3.put_object().bucket("lake").key(key).body(bytes.into()).send().await.unwrap();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

impl Aws {
    /// The orchestrator's env: moto, and no metadata service (it does not run on EC2).
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.moto.env();
        env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9".into()));
        env
    }

    fn runner(&self, args: &[&str]) -> Command {
        let mut c = Command::new(support::runner_bin());
        c.args(args).env("SPOTLAKE_CONFIG", &self.config).envs(self.env());
        c
    }

    /// Starts `runner` with its stderr in a file, so a test that times out can show it.
    fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        self.spawn_logged("orchestrator", args, env)
    }

    /// Starts `runner` with its stderr in `{log}.log`, for tests that run several at once.
    fn spawn_logged(&self, log: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
        let file = std::fs::File::create(self.dir.path().join(format!("{log}.log"))).unwrap();
        self.runner(args).envs(env.iter().copied()).stderr(file).spawn().unwrap()
    }

    fn orchestrator_log(&self) -> String {
        self.log("orchestrator")
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Adds top-level settings to the runner config (`setup`'s extra goes under `[ec2]`).
    fn configure(&self, settings: &str) {
        let config = std::fs::read_to_string(&self.config).unwrap();
        std::fs::write(&self.config, format!("{settings}\n{config}")).unwrap();
    }

    fn stand_ins(&self) -> StandIns {
        StandIns::new(&self.dir.path().join("instances"), self.moto.env())
    }

    fn job(&self) -> String {
        support::workspace().join("runner/examples/events/job.toml").to_string_lossy().into_owned()
    }

    /// Boots what the fleets launch until `done` holds, failing with `what` and the logs after
    /// `limit`.
    async fn tick_until(
        &self,
        stand_ins: &mut StandIns,
        limit: Duration,
        what: &str,
        done: impl Fn(&StandIns) -> bool,
    ) {
        let ec2 = self.aws.ec2().await;
        let deadline = Instant::now() + limit;
        while !done(stand_ins) {
            assert!(Instant::now() < deadline, "{what}\n{}\n{}", self.orchestrator_log(), stand_ins.consoles());
            stand_ins.tick(&ec2).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs the orchestrator to its end while the stand-in boots what the fleets launch.
    async fn drive(&self, mut run: Child, stand_ins: &mut StandIns, limit: Duration) -> (ExitStatus, String) {
        let ec2 = self.aws.ec2().await;
        let deadline = Instant::now() + limit;
        while run.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the run did not finish\n{}\n{}",
                self.orchestrator_log(),
                stand_ins.consoles()
            );
            stand_ins.tick(&ec2).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let status = run.wait().unwrap();
        stand_ins.tick(&ec2).await;
        (status, self.orchestrator_log())
    }

    /// Runs several orchestrators to their ends while the stand-in boots what their fleets
    /// launch; each one's exit and how long after `since` it came. Each is waited for on a
    /// thread of its own: the stand-in's tick can block for seconds stopping an instance.
    async fn drive_all(
        &self,
        runs: Vec<Child>,
        stand_ins: &mut StandIns,
        since: Instant,
        limit: Duration,
    ) -> Vec<(ExitStatus, Duration)> {
        let ec2 = self.aws.ec2().await;
        let waits: Vec<_> = runs
            .into_iter()
            .map(|mut run| std::thread::spawn(move || (run.wait().unwrap(), since.elapsed())))
            .collect();
        while !waits.iter().all(|w| w.is_finished()) {
            assert!(since.elapsed() < limit, "the runs did not finish\n{}", stand_ins.consoles());
            stand_ins.tick(&ec2).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stand_ins.tick(&ec2).await;
        waits.into_iter().map(|w| w.join().unwrap()).collect()
    }

    /// The run id each fleet on the server was launched for.
    async fn fleet_runs(&self) -> Vec<String> {
        let out = self.aws.ec2().await.describe_fleets().send().await.unwrap();
        out.fleets()
            .iter()
            .flat_map(|f| f.tags().iter().filter(|t| t.key() == Some("spotlake:run-id")).filter_map(|t| t.value()))
            .map(String::from)
            .collect()
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        let out = self.aws.s3().await.get_object().bucket("lake").key(key).send().await.unwrap();
        out.body.collect().await.unwrap().to_vec()
    }

    /// The `id` of every row of the Parquet files under a prefix, sorted.
    async fn ids(&self, prefix: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for key in self.keys(prefix).await {
            let df = ParquetReader::new(std::io::Cursor::new(self.get(&key).await)).finish().unwrap();
            ids.extend(df.column("id").unwrap().str().unwrap().iter().flatten().map(String::from));
        }
        ids.sort();
        ids
    }

    /// The run that committed each item under a prefix of manifests, sorted.
    async fn committers(&self, prefix: &str) -> Vec<String> {
        let mut runs = Vec::new();
        for key in self.keys(prefix).await {
            let manifest: serde_json::Value = serde_json::from_slice(&self.get(&key).await).unwrap();
            runs.push(manifest["run_id"].as_str().unwrap().to_string());
        }
        runs.sort();
        runs
    }

    async fn running_instances(&self) -> usize {
        support::running_instances(&self.aws.ec2().await).await
    }

    /// Fleets as moto reports them: (state, target capacity, items-wanted tag).
    async fn fleets(&self) -> Vec<(String, i32, usize)> {
        let out = self.aws.ec2().await.describe_fleets().send().await.unwrap();
        out.fleets()
            .iter()
            .map(|f| {
                let wanted = f.tags().iter().find(|t| t.key() == Some("spotlake:items-wanted")).and_then(|t| t.value());
                (
                    f.fleet_state().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    f.target_capacity_specification().and_then(|t| t.total_target_capacity()).unwrap_or(0),
                    wanted.and_then(|w| w.parse().ok()).unwrap_or(0),
                )
            })
            .collect()
    }

    async fn live_fleets(&self) -> usize {
        self.fleets().await.iter().filter(|(state, _, _)| !state.starts_with("deleted")).count()
    }

    /// Launch templates and queues left on the server.
    async fn leftovers(&self) -> (Vec<String>, Vec<String>) {
        let templates = self.aws.ec2().await.describe_launch_templates().send().await.unwrap();
        let queues = self.aws.sqs().await.list_queues().send().await.unwrap();
        (
            templates.launch_templates().iter().filter_map(|t| t.launch_template_name()).map(String::from).collect(),
            queues.queue_urls().to_vec(),
        )
    }

    async fn assert_nothing_left(&self) {
        assert_eq!(self.running_instances().await, 0, "no instance is left running");
        assert_eq!(self.live_fleets().await, 0, "every fleet was deleted");
        assert_eq!(self.leftovers().await, (vec![], vec![]), "no launch template or queue is left");
    }

    async fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self.aws.s3().await.list_objects_v2().bucket("lake").prefix(prefix).send().await.unwrap();
        out.contents().iter().filter_map(|o| o.key()).map(String::from).collect()
    }
}

fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_runs_on_spot_instances_booted_from_their_user_data() {
    let env = setup(SMALL).await;
    // What an item killed mid-upload leaves in a partition's output directory (an incomplete
    // multipart upload, billed until aborted), and one outside every output, for scope.
    let s3 = env.aws.s3().await;
    for key in ["data/by_user/day=2024-01-01/part-killed.parquet", "data/raw/elsewhere.bin"] {
        let upload = s3.create_multipart_upload().bucket("lake").key(key).send().await.unwrap();
        let part = s3.upload_part().bucket("lake").key(key).upload_id(upload.upload_id().unwrap()).part_number(1);
        part.body(vec![7u8; 1024].into()).send().await.unwrap();
    }
    let summary_path = env.dir.path().join("summary.json");
    let run = env.spawn(
        &["run", &env.job(), "--partition", "2024-01-01", "--summary-json", &summary_path.to_string_lossy()],
        &[],
    );
    let mut stand_ins = env.stand_ins();
    let (status, err) = env.drive(run, &mut stand_ins, Duration::from_secs(240)).await;
    assert!(status.success(), "{err}\n{}", stand_ins.consoles());
    assert!(
        err.contains("check one_row_per_user on user_daily.user_daily: passed"),
        "checks from what the items measured: {err}"
    );
    assert!(!stand_ins.booted.is_empty(), "instances booted");
    env.assert_nothing_left().await;
    let uploads = s3.list_multipart_uploads().bucket("lake").send().await.unwrap();
    let left: Vec<&str> = uploads.uploads().iter().filter_map(|u| u.key()).collect();
    assert_eq!(left, ["data/raw/elsewhere.bin"], "the shuffle step aborted the upload in its partition's directory");
    assert!(
        err.contains("discarded an unfinished write of s3://lake/data/by_user/day=2024-01-01/part-killed.parquet"),
        "{err}"
    );

    // Every instance shipped its log under the run, even one terminated while it booted; the
    // workers of each step checked in next to their logs.
    let s = summary(&summary_path);
    let run_id = s["run_id"].as_str().unwrap();
    let logs = env.keys(&format!("state/runs/{run_id}/workers/")).await;
    for id in stand_ins.booted.keys() {
        assert!(logs.iter().any(|k| k.ends_with(&format!("/{id}/worker.log"))), "{id} shipped its log: {logs:?}");
    }
    for step in ["clean", "shuffle", "user_daily"] {
        let prefix = format!("state/runs/{run_id}/workers/{step}/");
        assert!(logs.iter().any(|k| k.starts_with(&prefix) && k.ends_with("/checked-in.json")), "{step}: {logs:?}");
    }
    assert!(s["steps"][0]["worker_logs"].as_str().unwrap().ends_with(&format!("runs/{run_id}/workers/clean")));
    // The worker saw its instance's identity through the metadata service.
    assert!(s["steps"][0]["instance_types"]["m6i.large"].as_u64().unwrap() >= 1, "{s}");
    // With no prices set, the spot price comes from moto's DescribeSpotPriceHistory, and the
    // on-demand one from the shipped table (moto has no Price List): m6i.large at $0.096 an
    // hour plus EMR's $0.024, for every billed second, and each instance's root volume at the
    // shipped us-east-1 prices over a 30-day month. moto gives an instance an 8 GiB gp2 volume
    // (read while it is up) but says its AMI's is 15 GiB `standard` (what an instance never
    // seen up is given): each instance's volume is one of the two.
    let prices = [("gp2", 0.10), ("standard", 0.05)];
    for (step, bill) in s["bills"].as_array().unwrap().iter().enumerate() {
        let line = &bill["lines"][0];
        assert_eq!(line["price_source"], "spot price history; on-demand: shipped table", "{bill}");
        let seconds: f64 = bill["lines"].as_array().unwrap().iter().map(|l| l["seconds"].as_f64().unwrap()).sum();
        assert!(seconds >= 60.0, "{bill}");
        let mut volumes = 0.0;
        for u in s["steps"][step]["usage"].as_array().unwrap() {
            let (gib, kind) = (u["root_volume"]["gib"].as_f64().unwrap(), u["root_volume"]["kind"].as_str().unwrap());
            assert!([(8.0, "gp2"), (15.0, "standard")].contains(&(gib, kind)), "{u}");
            let price = prices.iter().find(|(k, _)| *k == kind).unwrap().1;
            let life = (u["ended_at"].as_f64().unwrap() - u["launched_at"].as_f64().unwrap()).max(60.0);
            volumes += gib * price * life / 2_592_000.0;
        }
        assert!((line["root_volume_usd"].as_f64().unwrap() - volumes).abs() < 1e-12, "{bill}");
        let emr = seconds * 0.12 / 3600.0 + volumes;
        assert!((bill["emr_equivalent_usd"].as_f64().unwrap() - emr).abs() < 1e-9, "{bill}");
        assert!(bill["cost_usd"].as_f64().unwrap() > 0.0, "{bill}");
    }

    // The same data run locally gives the same numbers.
    let rows = |s: &serde_json::Value, step: usize, out: &str| s["steps"][step]["outputs"][out]["rows"].as_u64();
    let local_summary = env.dir.path().join("local.json");
    let out = Command::new(support::runner_bin())
        .args(["run", &env.job(), "--partition", "2024-01-01", "--backend", "local", "--root"])
        .arg(env.dir.path().join("gen"))
        .args(["--summary-json", &local_summary.to_string_lossy()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let l = summary(&local_summary);
    assert_eq!(rows(&s, 0, "clean"), rows(&l, 0, "clean"));
    assert_eq!(rows(&s, 2, "user_daily"), rows(&l, 2, "user_daily"));
    assert_eq!(env.keys("data/user_daily/day=2024-01-01/").await.len(), 16, "one file per user bucket in S3");
    let keys = env.keys("state/items/events/user_daily/2024-01-01/_checks/one_row_per_user/").await;
    assert_eq!(keys.len(), 16, "each bucket's distinct users for one_row_per_user, in the run state: {keys:?}");
}

/// A step of `n` one-file items.
async fn items(env: &Aws, n: usize) -> PathBuf {
    let s3 = env.aws.s3().await;
    for i in 0..n {
        put(&s3, &format!("data/many/2024-01-01/part-{i}.csv"), format!("id,n\na{i},{i}\n").into_bytes()).await;
    }
    support::workspace().join("runner/tests/jobs/one_file_items.toml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_8_vcpu_instance_runs_8_items_at_once_and_loses_no_delivery() {
    // One instance (the fleet's cap is below one instance), of a type with 8 vCPUs, and items
    // of one vCPU: its worker has 8 slots.
    let env = setup("template_instance_types = { x86_64 = \"m6i.2xlarge\" }\nvcpus_per_item = 1\nmax_vcpus = 1").await;
    // Twice its slots: the second round is received while the first still runs.
    let job = items(&env, 16).await;
    let summary_path = env.dir.path().join("packed.json");
    let run = env.spawn(
        &[
            "run",
            &job.to_string_lossy(),
            "--partition",
            "2024-01-01",
            "--summary-json",
            &summary_path.to_string_lossy(),
        ],
        &[("SPOTLAKE_TEST_ITEM_SLEEP_MS", "3000")],
    );
    let mut stand_ins = env.stand_ins().with_env("SPOTLAKE_TEST_ITEM_SLEEP_MS", "3000");
    let (status, err) = env.drive(run, &mut stand_ins, Duration::from_secs(180)).await;
    assert!(status.success(), "{err}\n{}", stand_ins.consoles());
    let s = summary(&summary_path);
    assert_eq!(stand_ins.booted.len(), 1, "one instance: {s}");
    assert_eq!(s["steps"][0]["workers"], 1, "{s}");
    assert_eq!(s["steps"][0]["peak_items_per_worker"], 8, "its 8 slots ran at once: {s}");
    let console = stand_ins.consoles();
    assert!(console.contains("slots=8") && console.contains("threads_per_item=1"), "{console}");
    // Every item ran on its first delivery: no receive was dropped with messages in it.
    assert_eq!(console.matches("attempt=1").count(), 16, "{console}");
    assert!(!console.contains("attempt=2"), "{console}");
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_of_10000_input_files_travels_by_reference_and_runs() {
    // 10,000 files make a message of over 1 MiB: more than SQS takes.
    const FILES: usize = 10_000;
    let env = setup("").await;
    let s3 = env.aws.s3().await;
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..FILES {
        let s3 = s3.clone();
        puts.spawn(async move {
            put(&s3, &format!("data/many/2024-01-01/part-{i:05}.csv"), format!("id,n\na{i},{i}\n").into_bytes()).await
        });
        if puts.len() >= 64 {
            puts.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(done) = puts.join_next().await {
        done.unwrap();
    }
    let job = support::workspace().join("runner/tests/jobs/one_item_many_files.toml");
    let summary_path = env.dir.path().join("wide.json");
    let run = env.spawn(
        &[
            "run",
            &job.to_string_lossy(),
            "--partition",
            "2024-01-01",
            "--run-id",
            "wide1",
            "--summary-json",
            &summary_path.to_string_lossy(),
        ],
        &[],
    );
    let mut stand_ins = env.stand_ins();
    let (status, err) = env.drive(run, &mut stand_ins, Duration::from_secs(600)).await;
    assert!(status.success(), "{err}\n{}", stand_ins.consoles());
    let s = summary(&summary_path);
    assert_eq!(s["steps"][0]["items"], 1, "{s}");
    // 0..9999 has 3,334 multiples of 3: every file was read.
    assert_eq!(s["steps"][0]["outputs"]["out"]["rows"].as_u64(), Some(3334), "{s}");
    // The item went by reference, over what one SQS message holds; the stored copy went when
    // the step ended.
    let said = err.lines().find(|l| l.contains("over a message's 262144 bytes: stored at")).unwrap_or_default();
    let len: usize =
        said.split("the item is ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(len > 1024 * 1024, "{len} bytes: more than one SQS message holds\n{err}");
    assert!(said.contains("s3://lake/state/runs/wide1/items/thirds/"), "{said}");
    assert!(env.keys("state/runs/wide1/items/").await.is_empty(), "stored items are deleted with their step");
    env.assert_nothing_left().await;
}

/// Prices set for the bill test: a cent a second on spot, so cents mean something.
const PRICES: &str = r#"
[pricing]
spot = { "m6i.large" = 36.0 }
on_demand = { "m6i.large" = 72.0 }
emr = { "m6i.large" = 18.0 }
ebs_gb_month = { gp2 = 2592.0 }
"#;

/// Every instance of a run as moto records it: (id, launch, end), in Unix seconds.
async fn lives(ec2: &aws_sdk_ec2::Client, run_id: &str) -> Vec<(String, f64, f64)> {
    let out = ec2
        .describe_instances()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag:spotlake:run-id").values(run_id).build())
        .send()
        .await
        .unwrap();
    let mut lives = Vec::new();
    for i in out.reservations().iter().flat_map(|r| r.instances()) {
        let reason = i.state_transition_reason().unwrap_or_default();
        let stamp = reason.split_once('(').and_then(|(_, r)| r.split_once(' '));
        let (day, rest) = stamp.unwrap_or_else(|| panic!("{reason:?} has the end"));
        let end = chrono::NaiveDateTime::parse_from_str(&format!("{day} {}", &rest[..8]), "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp() as f64;
        lives.push((i.instance_id().unwrap().to_string(), i.launch_time().unwrap().as_secs_f64(), end));
    }
    lives
}

fn cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_follows_the_remaining_work_and_the_bill_counts_every_instance() {
    // Items of 1 vCPU; the cap (16 vCPUs) is above the work (3 items). (moto launches an
    // instance per unit of capacity, so the work is kept small.)
    let env = setup(&format!("vcpus_per_item = 1\nmax_vcpus = 16\n{PRICES}")).await;
    let ec2 = env.aws.ec2().await;
    let job = items(&env, 3).await;
    let summary_path = env.dir.path().join("reclaimed.json");
    let args =
        ["run", &job.to_string_lossy(), "--partition", "2024-01-01", "--summary-json", &summary_path.to_string_lossy()];
    let run = env.spawn(&args, &[("SPOTLAKE_TEST_ITEM_SLEEP_MS", "4000")]);
    let mut stand_ins = env.stand_ins().with_env("SPOTLAKE_TEST_ITEM_SLEEP_MS", "4000");
    // Every instance is reclaimed once its worker has checked in, as a spot reclaim would.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no worker checked in\n{}", stand_ins.consoles());
        stand_ins.tick(&ec2).await;
        if env.keys("state/runs/").await.iter().any(|k| k.ends_with("checked-in.json")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = env.fleets().await;
    let committed = env.keys("state/items/many/copy/").await.len();
    let reclaimed = support::instance_ids(&ec2).await;
    for id in &reclaimed {
        stand_ins.reclaim(&ec2, id).await;
    }
    let (status, err) = env.drive(run, &mut stand_ins, Duration::from_secs(180)).await;
    assert!(status.success(), "{err}\n{}", stand_ins.consoles());
    // The first fleet asked for the work (3 items × 1 vCPU), not for this machine's cores.
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!((first[0].1, first[0].2), (3, 3), "{first:?}");
    // After the reclaim, the orchestrator replaced what was lost, for the work left only; and
    // nothing was launched for the tail.
    let fleets = env.fleets().await;
    assert!(fleets.len() >= 2, "the lost capacity was replaced: {fleets:?}\n{err}\n{}", stand_ins.consoles());
    for (_, target, wanted) in &fleets[1..] {
        assert!(*wanted <= 3 - committed && *target as usize <= *wanted, "{fleets:?} ({committed} committed)");
    }
    assert!(fleets.len() <= 3, "no churn at the tail: {fleets:?}");
    env.assert_nothing_left().await;

    // The bill, by hand from what moto recorded: every instance from launch to end (no worker
    // here reads a running time apart from its launch), a minute at least, at a cent a second;
    // its root volume (moto's 8 GiB gp2) at $2,592 a GB-month, $0.001 a GiB-second, a minute
    // at least. EMR: $90 an hour for the same seconds, and the same volumes. (moto gives fleet
    // instances no public address, whatever the subnet says: that rule is tested by hand.)
    let s = summary(&summary_path);
    let lives = lives(&ec2, s["run_id"].as_str().unwrap()).await;
    assert!(lives.len() > reclaimed.len(), "the replacements are billed too: {lives:?}");
    let billed: f64 = lives.iter().map(|(_, launch, end)| (end - launch).max(60.0)).sum();
    let extras = billed * 8.0 * 0.001;
    let bill = &s["bills"][0];
    assert_eq!(cents(bill["cost_usd"].as_f64().unwrap()), cents(billed * 0.01 + extras), "{bill}\n{lives:?}");
    assert_eq!(cents(bill["emr_equivalent_usd"].as_f64().unwrap()), cents(billed * 0.025 + extras), "{bill}");
    assert!((bill["instance_hours"].as_f64().unwrap() - billed / 3600.0).abs() < 1e-6, "{bill}");
    assert_eq!(cents(bill["lines"][0]["root_volume_usd"].as_f64().unwrap()), cents(extras), "{bill}");
    // The reclaimed instances, where the interrupted first attempts ran, are in it.
    let used: Vec<&str> =
        s["steps"][0]["usage"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
    for id in &reclaimed {
        assert!(used.contains(&id.as_str()), "reclaimed {id} is billed: {used:?}");
    }

    // A rerun finds every item committed: it launches nothing and costs nothing.
    let rerun_path = env.dir.path().join("rerun.json");
    let out = env
        .runner(&[
            "run",
            &job.to_string_lossy(),
            "--partition",
            "2024-01-01",
            "--summary-json",
            &rerun_path.to_string_lossy(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = summary(&rerun_path);
    assert_eq!(again["bills"][0]["cost_usd"].as_f64(), Some(0.0), "{again}");
    assert_eq!(again["bills"][0]["instance_hours"].as_f64(), Some(0.0), "{again}");
    assert_eq!(env.fleets().await.len(), fleets.len(), "no fleet for a rerun with nothing to do");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_at_boot_on_every_instance_is_a_crash_loop_with_its_reason_and_leaves_nothing() {
    let env = setup(SMALL).await;
    // Both instances of the fleet are the crash loop.
    env.configure("crash_loop_after = 2");
    // A worker that can't start: it says why on stderr and exits 3 (not the exit code of a
    // refusal, so each instance counts it as its own trouble).
    let binary = support::upload_worker(
        &env.aws.s3().await,
        "lake",
        b"#!/bin/sh\necho 'cannot open /dev/fuse: the AMI lacks it' >&2\nexit 3\n".to_vec(),
    )
    .await;
    let config = std::fs::read_to_string(&env.config).unwrap();
    let old = config.lines().find(|l| l.starts_with("worker_binaries.x86_64")).unwrap().to_string();
    std::fs::write(&env.config, config.replace(&old, &binary)).unwrap();
    let run = env.spawn(&["run", &env.job(), "--partition", "2024-01-01"], &[]);
    let mut stand_ins = env.stand_ins();
    let (status, err) = env.drive(run, &mut stand_ins, Duration::from_secs(120)).await;
    assert!(!status.success(), "{err}");
    assert!(err.contains("2 instances ended without their worker checking in"), "{err}");
    assert!(err.contains("the worker exited with status 3") && err.contains("cannot open /dev/fuse"), "{err}");
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_boot_script_refuses_a_binary_whose_sha256_differs_and_one_that_is_missing() {
    // The boot script's own checks, past the orchestrator's preflight: a fleet launched
    // directly, whose binary is then replaced, and one whose binary is then deleted.
    let env = setup("").await;
    let config: runner::config::Config = toml::from_str(&std::fs::read_to_string(&env.config).unwrap()).unwrap();
    let ec2_config = config.ec2.unwrap();
    let uri = ec2_config.worker_binaries["x86_64"].uri.clone();
    let key = uri.trim_start_matches("s3://lake/").to_string();
    let settings = Ec2Settings { lifetime: Duration::from_secs(600), deployment: "test".into() };
    let fleet = Ec2Fleet::new(env.aws.ec2().await, env.aws.s3().await, ec2_config, settings);
    fleet.preflight().await.unwrap();
    let s3 = env.aws.s3().await;
    let ec2 = env.aws.ec2().await;
    for (case, tamper) in [("sha256", true), ("missing", false)] {
        if tamper {
            put(&s3, &key, b"#!/bin/sh\necho planted\n".to_vec()).await;
        } else {
            s3.delete_object().bucket("lake").key(&key).send().await.unwrap();
        }
        let prefix = runner_types::Location::parse_absolute(&format!("s3://lake/state/{case}/workers/clean")).unwrap();
        let mut request = support::fleet_request(&format!("run-{case}"), BackendKind::Aws, "unused", "unused");
        request.workers_prefix = prefix;
        let handle = fleet.launch(&request, 1).await.unwrap();
        let mut stand_ins = env.stand_ins();
        // Generous: the boot script runs the real AWS CLI, whose start alone took most of a
        // minute on a loaded 2-core machine, where 60 s ran out before the first line.
        let deadline = Instant::now() + Duration::from_secs(180);
        let failed = loop {
            assert!(Instant::now() < deadline, "no boot failure was reported\n{}", stand_ins.consoles());
            stand_ins.tick(&ec2).await;
            let keys = env.keys(&format!("state/{case}/workers/clean/")).await;
            if let Some(k) = keys.iter().find(|k| k.ends_with("boot-failed.txt")) {
                let got = s3.get_object().bucket("lake").key(k).send().await.unwrap();
                break String::from_utf8(got.body.collect().await.unwrap().to_vec()).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if tamper {
            assert!(failed.contains("has sha256") && failed.contains("but ec2.worker_binaries says"), "{failed}");
        } else {
            assert!(failed.contains("downloading the runner from s3://lake/"), "{failed}");
        }
        // The boot script powered the instance off: it is terminated, and ran no worker.
        let deadline = Instant::now() + Duration::from_secs(30);
        while support::running_instances(&ec2).await > 0 {
            assert!(Instant::now() < deadline, "the instance powered off\n{}", stand_ins.consoles());
            stand_ins.tick(&ec2).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(!stand_ins.consoles().contains("worker started"), "{}", stand_ins.consoles());
        fleet.delete(&handle).await.unwrap();
    }
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_in_aws_mode_leaves_no_instance_template_or_queue() {
    let env = setup(SMALL).await;
    let mut run =
        env.spawn(&["run", &env.job(), "--partition", "2024-01-01"], &[("SPOTLAKE_TEST_ITEM_SLEEP_MS", "30000")]);
    let ec2 = env.aws.ec2().await;
    let mut stand_ins = env.stand_ins().with_env("SPOTLAKE_TEST_ITEM_SLEEP_MS", "30000");
    let deadline = Instant::now() + Duration::from_secs(60);
    while stand_ins.booted.is_empty() {
        assert!(Instant::now() < deadline, "the fleet never came up");
        stand_ins.tick(&ec2).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // SAFETY: signalling the orchestrator this test started.
    unsafe {
        libc::kill(run.id() as i32, libc::SIGTERM);
    }
    let status = run.wait().unwrap();
    let err = env.orchestrator_log();
    assert!(!status.success(), "{err}");
    assert!(err.contains("fleet deleted") && err.contains("queue deleted"), "{err}");
    env.assert_nothing_left().await;
}

/// A SIGTERM that lands mid-launch, once the launch template exists and before the fleet's
/// handle is back, still leaves nothing: the run sweeps what it never registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_the_launch_leaves_no_template_or_fleet() {
    let env = setup(SMALL).await;
    let mut run = env.spawn(&["run", &env.job(), "--partition", "2024-01-01"], &[]);
    // Polled back to back: from the template to the fleet's handle is a few tens of milliseconds
    // on moto, and the signal often lands in between (without the sweep, 2 of 3 runs left a
    // fleet and its instance; the other runs test the ordinary clean-up).
    let ec2 = env.aws.ec2().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ec2.describe_launch_templates().send().await.unwrap().launch_templates().is_empty() {
        assert!(Instant::now() < deadline, "no launch template was ever made");
        assert!(run.try_wait().unwrap().is_none(), "the run ended before it launched: {}", env.orchestrator_log());
    }
    // SAFETY: signalling the orchestrator this test started.
    unsafe {
        libc::kill(run.id() as i32, libc::SIGTERM);
    }
    let status = run.wait().unwrap();
    let err = env.orchestrator_log();
    assert!(!status.success(), "{err}");
    assert!(err.contains("cancelled by SIGTERM"), "{err}");
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_the_setting_before_anything_is_launched() {
    let env = setup("").await;
    let config = std::fs::read_to_string(&env.config).unwrap();
    let arm = support::ami(&env.aws.ec2().await, "arm64").await;
    let x86 = support::ami(&env.aws.ec2().await, "x86_64").await;
    let sha = config.split("sha256 = \"").nth(1).unwrap()[..64].to_string();
    // An instance profile without a role: its instances would have no credentials.
    env.aws.iam().await.create_instance_profile().instance_profile_name("empty-profile").send().await.unwrap();
    let cases: Vec<(String, String)> = vec![
        (config.replace("s3://lake/state", "s3://no-such-bucket/state"), "no-such-bucket".into()),
        (config.replace("[ec2]\n", "[ec2]\nvcpus = [8, 2]\n"), "ec2.vcpus [8, 2]".into()),
        (config.replace(&x86, &arm), "ec2.amis.x86_64: AMI".into()),
        (config.replace(&x86, "ami-00000000"), "ami-00000000 does not exist".into()),
        (
            config.replace(&format!("sha256 = \"{sha}\""), &format!("sha256 = \"{}\"", "0".repeat(64))),
            format!(
                "ec2.worker_binaries.x86_64: s3://lake/bin/{sha}/runner-x86_64 has sha256 {sha}, but the config says 0000"
            ),
        ),
        (
            config.replace("/runner-x86_64\"", "/gone\""),
            "ec2.worker_binaries.x86_64: cannot read s3://lake/bin/".into(),
        ),
        (config.replace("[ec2]\n", "[ec2]\nsecurity_groups = [\"sg-12345678\"]\n"), "sg-12345678".into()),
        (
            config.replace("[ec2]\n", "[ec2]\ninstance_profile = \"no-such-profile\"\n"),
            "ec2.instance_profile: no-such-profile does not exist".into(),
        ),
        (
            config.replace("[ec2]\n", "[ec2]\ninstance_profile = \"empty-profile\"\n"),
            "ec2.instance_profile: empty-profile has no role".into(),
        ),
        (
            config.replace(&format!("x86_64 = \"{x86}\""), &format!("x86_64 = \"{x86}\", arm64 = \"{arm}\"")),
            "arm64".into(),
        ),
    ];
    for (bad, expected) in cases {
        std::fs::write(&env.config, bad).unwrap();
        let out = env.runner(&["run", &env.job(), "--partition", "2024-01-01"]).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&expected), "expected {expected:?} in: {err}");
        assert!(env.fleets().await.is_empty(), "nothing was launched for {expected:?}");
        assert_eq!(env.leftovers().await, (vec![], vec![]), "{expected:?}");
    }
    std::fs::write(&env.config, config).unwrap();
    let out = env
        .runner(&["run", &env.job(), "--partition", "2024-01-01"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("preflight"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_of_one_deployment_leaves_another_deployments_resources_alone() {
    let env = setup("").await;
    let config: runner::config::Config = toml::from_str(&std::fs::read_to_string(&env.config).unwrap()).unwrap();
    let ec2_config = config.ec2.unwrap();
    let fleet_of = |deployment: &str| {
        let settings = Ec2Settings { lifetime: Duration::from_secs(3600), deployment: deployment.into() };
        let aws = &env.aws;
        let c = ec2_config.clone();
        async move { Ec2Fleet::new(aws.ec2().await, aws.s3().await, c, settings) }
    };
    // Two orphaned runs (no live record), one per deployment, each with a fleet and a queue.
    let (prod, staging) = (fleet_of("prod").await, fleet_of("staging").await);
    prod.launch(&support::fleet_request("orphan-a", BackendKind::Aws, "w", "c"), 1).await.unwrap();
    staging.launch(&support::fleet_request("orphan-b", BackendKind::Aws, "w", "c"), 1).await.unwrap();
    let sqs = env.aws.sqs().await;
    for name in ["spotlake-prod-job-orphan-a-callbacks", "spotlake-staging-job-orphan-b-callbacks"] {
        sqs.create_queue().queue_name(name).send().await.unwrap();
    }
    assert_eq!(env.live_fleets().await, 2);
    // gc spares what was made in the 10 s before it began (a run starting meanwhile).
    tokio::time::sleep(Duration::from_secs(11)).await;

    let out = env.runner(&["fleet", "gc"]).env("SPOTLAKE_DEPLOYMENT", "staging").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("deployment staging") && said.contains("orphan-b"), "{said}");
    assert!(!said.contains("orphan-a"), "staging's gc never touches prod: {said}");
    assert_eq!(env.live_fleets().await, 1, "prod's fleet is still up");
    let (templates, queues) = env.leftovers().await;
    assert!(templates.iter().all(|t| t.starts_with("spotlake-prod-")) && !templates.is_empty(), "{templates:?}");
    assert!(queues.len() == 1 && queues[0].ends_with("spotlake-prod-job-orphan-a-callbacks"), "{queues:?}");

    let out = env.runner(&["fleet", "gc"]).env("SPOTLAKE_DEPLOYMENT", "prod").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_ip_false_gives_the_template_an_interface_without_an_address_and_with_the_groups() {
    let env = setup("").await;
    let config: runner::config::Config = toml::from_str(&std::fs::read_to_string(&env.config).unwrap()).unwrap();
    let ec2 = env.aws.ec2().await;
    let mut c = config.ec2.unwrap();
    let vpc = ec2.describe_subnets().subnet_ids(&c.subnets[0]).send().await.unwrap().subnets()[0]
        .vpc_id()
        .unwrap()
        .to_string();
    let sg = ec2.create_security_group().group_name("workers").description("w").vpc_id(vpc).send().await.unwrap();
    c.security_groups = vec![sg.group_id().unwrap().to_string()];
    c.public_ip = Some(false);
    let settings = Ec2Settings { lifetime: Duration::from_secs(3600), deployment: "test".into() };
    let fleet = Ec2Fleet::new(ec2.clone(), env.aws.s3().await, c.clone(), settings);
    let handle = fleet.launch(&support::fleet_request("noip", BackendKind::Aws, "w", "c"), 1).await.unwrap();
    let versions = ec2.describe_launch_template_versions().launch_template_name("spotlake-test-noip-clean-x86_64");
    let versions = versions.send().await.unwrap();
    let data = versions.launch_template_versions()[0].launch_template_data().unwrap();
    let nic = &data.network_interfaces()[0];
    assert_eq!((nic.device_index(), nic.associate_public_ip_address()), (Some(0), Some(false)), "{data:?}");
    assert_eq!(nic.groups(), c.security_groups.as_slice(), "the groups go on the interface: {data:?}");
    assert!(data.security_group_ids().is_empty(), "and not beside it, which EC2 refuses: {data:?}");
    fleet.delete(&handle).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_goes_on_past_an_ec2_failure_deletes_the_queues_and_fails_naming_what_it_could_not_do() {
    let env = setup("").await;
    let sqs = env.aws.sqs().await;
    sqs.create_queue().queue_name("spotlake-test-orphan-c-callbacks").send().await.unwrap();
    // EC2 unreachable (nothing listens on port 9); S3 and SQS are moto.
    let out = env.runner(&["fleet", "gc"]).env("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:9").output().unwrap();
    let (said, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{said}\n{err}");
    assert!(said.contains("spotlake-test-orphan-c-callbacks"), "the queue went: {said}");
    for what in ["listing fleets", "DescribeFleets", "listing instances", "listing launch templates"] {
        assert!(err.contains(what), "{what} is reported: {err}");
    }
    assert!(env.leftovers().await.1.is_empty(), "the orphan's queue is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_architectures_template_failing_deletes_the_first_and_the_queues() {
    let env = setup(SMALL).await;
    let ec2 = env.aws.ec2().await;
    // Both architectures: arm64's template is made first, then x86_64's.
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    let (x86, arm) = (support::ami(&ec2, "x86_64").await, support::ami(&ec2, "arm64").await);
    config = config.replace(&format!("x86_64 = \"{x86}\""), &format!("x86_64 = \"{x86}\", arm64 = \"{arm}\""));
    let x86_binary = config.lines().find(|l| l.starts_with("worker_binaries.x86_64")).unwrap().to_string();
    config = config.replace(
        &x86_binary,
        &format!("{x86_binary}\n{}", x86_binary.replace("worker_binaries.x86_64", "worker_binaries.arm64")),
    );
    std::fs::write(&env.config, config).unwrap();
    // A template already holds the name of the run's x86_64 template, so creating it fails.
    let taken = "spotlake-test-r1-clean-x86_64";
    ec2.create_launch_template()
        .launch_template_name(taken)
        .launch_template_data(aws_sdk_ec2::types::RequestLaunchTemplateData::builder().image_id(&x86).build())
        .send()
        .await
        .unwrap();
    let out = env.runner(&["run", &env.job(), "--partition", "2024-01-01", "--run-id", "r1"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("CreateLaunchTemplate") || err.contains("AlreadyExists"), "the error says what failed: {err}");
    // The arm64 template made first is gone, and so are the queues; only the test's own is left.
    let (templates, queues) = env.leftovers().await;
    assert_eq!(templates, vec![taken.to_string()], "{err}");
    assert!(queues.is_empty(), "{queues:?}");
    assert_eq!(env.live_fleets().await, 0);
    assert_eq!(env.running_instances().await, 0);
}

/// How many times each key under a prefix was written (its versions, in a versioned bucket).
async fn writes(env: &Aws, prefix: &str) -> std::collections::BTreeMap<String, usize> {
    let s3 = env.aws.s3().await;
    let out = s3.list_object_versions().bucket("lake").prefix(prefix).send().await.unwrap();
    assert!(!out.is_truncated().unwrap_or(false), "{prefix} has more versions than one page");
    let mut counts = std::collections::BTreeMap::new();
    for v in out.versions() {
        *counts.entry(v.key().unwrap().to_string()).or_insert(0) += 1;
    }
    counts
}

/// S3, SQS and EC2 stop answering for 30 s while an item waits to publish (moto paused). The
/// bounds are chosen so that the run rides the silence out and its two hazards happen every
/// time: a lease renewal times out in the silence and lands after it, and the item's delivery
/// outlives its visibility, so a worker with a free slot is given it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sqs_and_ec2_silent_for_30_seconds_mid_run_lose_and_double_nothing() {
    let env = setup(SMALL).await;
    // Renewed every 8 s: a renewal starts in the silence's first 8 s, and its first attempt
    // times out (20 s, below) before the silence ends.
    env.configure("lease_ttl_secs = 24");
    // One item in the queue at a time: the one in flight is the only one there to be given
    // again, and the two after it keep the step going well past that attempt's end.
    env.configure("enqueue_window = 1");
    // No heartbeat in the silence to extend a delivery: each one in flight outlives its 10 s.
    let config = std::fs::read_to_string(&env.config).unwrap();
    let config = config.replace("visibility_secs = 5\nheartbeat_secs = 1", "visibility_secs = 10\nheartbeat_secs = 60");
    std::fs::write(&env.config, config).unwrap();
    // Every write counted: each is a version of its key.
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    let s3 = env.aws.s3().await;
    s3.put_bucket_versioning().bucket("lake").versioning_configuration(enabled).send().await.unwrap();
    // Three items on two workers of two slots: three slots are free, and ask for work through
    // the silence.
    let n = 3;
    let job = items(&env, n).await;
    let summary_path = env.dir.path().join("paused.json");
    // A response is waited for 20 s: an attempt sent in the silence times out in it, and a call's
    // next attempt is waiting when it ends. Items sleep 5 s before they publish.
    let bounds = [("SPOTLAKE_TEST_ITEM_SLEEP_MS", "5000"), ("SPOTLAKE_AWS_TIMEOUT_SECS", "20")];
    let mut run = env.spawn(
        &[
            "run",
            &job.to_string_lossy(),
            "--partition",
            "2024-01-01",
            "--summary-json",
            &summary_path.to_string_lossy(),
        ],
        &bounds,
    );
    let mut stand_ins = env.stand_ins();
    for (k, v) in bounds {
        stand_ins = stand_ins.with_env(k, v);
    }
    let ec2 = env.aws.ec2().await;
    // Until both workers are up and the first item runs.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let consoles = stand_ins.consoles();
        if consoles.matches("worker started").count() == 2 && consoles.contains("running item=") {
            break;
        }
        assert!(Instant::now() < deadline, "the items never ran\n{}\n{consoles}", env.orchestrator_log());
        assert!(run.try_wait().unwrap().is_none(), "the run ended early\n{}", env.orchestrator_log());
        stand_ins.tick(&ec2).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The silence begins while the item sleeps, past its reads and before its writes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(env.keys("state/items/many/copy/").await.is_empty(), "no item committed before the silence");
    env.moto.pause();
    tokio::time::sleep(Duration::from_secs(30)).await;
    env.moto.resume();
    let (status, err) = env.drive(run, &mut stand_ins, Duration::from_secs(180)).await;
    let consoles = stand_ins.consoles();
    assert!(status.success(), "{err}\n{consoles}");
    let s = summary(&summary_path);
    assert_eq!((s["steps"][0]["items"].as_u64(), s["steps"][0]["retries"].as_u64()), (Some(3), Some(0)), "{s}");
    // The renewal that timed out in the silence kept the lease: the run never lost it, and
    // released it as its own (a release over a stale ETag would have left it). Its two attempts
    // reach moto together when the silence ends, on two connections that moto serves on two
    // threads: usually the first lands and the retry's If-Match fails (the run then says once
    // that its renewal landed unheard; without that branch it would call the lease lost), but
    // now and then the retry lands first and the first attempt's If-Match fails unheard, and
    // there is nothing to say. The branch itself is tested exactly, on moto's S3 and on the
    // local backend, by the lease conformance suite (`a_renewal_that_landed_unheard_keeps_the_lease`).
    let unheard = err
        .matches("a renewal of the lease on many/copy/2024-01-01 landed unheard; the lease is still this run's")
        .count();
    assert!(unheard <= 1, "{err}");
    assert!(!err.contains("was lost"), "{err}");
    assert_eq!(env.keys(LEASE).await, Vec::<String>::new(), "the lease was released");
    // The item was given once more; that attempt found it committed and published nothing:
    // every output file and every manifest was written once, and each row is there once.
    assert_eq!(consoles.matches("running item=copy[2024-01-01] part-0.csv attempt=2").count(), 1, "{consoles}");
    assert_eq!(consoles.matches("attempt=2").count(), 1, "{consoles}");
    assert_eq!(
        consoles.matches("another attempt of this run committed the item; not publishing again").count(),
        1,
        "{consoles}"
    );
    let (files, manifests) = (writes(&env, "data/many_out/").await, writes(&env, "state/items/many/copy/").await);
    assert_eq!((files.len(), manifests.len()), (n, n), "{files:?} {manifests:?}");
    let once = vec![1; n];
    assert_eq!(files.values().copied().collect::<Vec<_>>(), once, "{files:?}\n{consoles}");
    assert_eq!(manifests.values().copied().collect::<Vec<_>>(), once, "{manifests:?}\n{consoles}");
    assert_eq!(env.ids("data/many_out/").await, item_ids(0..n));
    env.assert_nothing_left().await;
}

/// The rows `a{i}` of `items`' files, sorted as `Aws::ids` sorts them.
fn item_ids(range: std::ops::Range<usize>) -> Vec<String> {
    let mut ids: Vec<String> = range.map(|i| format!("a{i}")).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_runs_of_a_partition_started_together_in_s3_exactly_one_works_and_the_other_fails_at_once_naming_it() {
    let env = setup(SMALL).await;
    let n = 4;
    let job = items(&env, n).await;
    let job = job.to_string_lossy();
    let slow = ("SPOTLAKE_TEST_ITEM_SLEEP_MS", "3000");
    let names = ["race-a", "race-b"];
    let since = Instant::now();
    let runs =
        names.map(|run| env.spawn_logged(run, &["run", &job, "--partition", "2024-01-01", "--run-id", run], &[slow]));
    let mut stand_ins = env.stand_ins().with_env(slow.0, slow.1);
    let ended = env.drive_all(runs.into(), &mut stand_ins, since, Duration::from_secs(180)).await;
    let worked: Vec<usize> = (0..2).filter(|i| ended[*i].0.success()).collect();
    let logs = format!("--- race-a\n{}\n--- race-b\n{}", env.log("race-a"), env.log("race-b"));
    assert_eq!(worked.len(), 1, "exactly one run works:\n{logs}\n{}", stand_ins.consoles());
    let (w, l) = (worked[0], 1 - worked[0]);
    let (winner, loser) = (names[w], names[l]);
    assert!(
        env.log(loser).contains(&format!("many/copy/2024-01-01 is being worked on by run {winner} on ")),
        "the loser names the winner's run:\n{logs}"
    );
    // At once, not after a wait: before the winner, whose items sleep 3 s each (a waiting run
    // could only end after it gave the lease back), and having launched nothing: the one fleet
    // is the winner's. An order, not a margin: a slow machine makes both later.
    assert!(ended[l].1 < ended[w].1, "{loser} ended after {:?}, {winner} after {:?}", ended[l].1, ended[w].1);
    assert_eq!(env.fleet_runs().await, vec![winner.to_string()], "{logs}");
    // The output is the winner's: each row once, each item committed by it.
    assert_eq!(env.ids("data/many_out/").await, item_ids(0..n));
    assert_eq!(env.keys("data/many_out/").await.len(), n);
    assert_eq!(env.committers("state/items/many/copy/2024-01-01/").await, vec![winner.to_string(); n]);
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_gc_leaves_alone_a_run_that_waits_on_a_lease_longer_than_gcs_threshold() {
    let env = setup(SMALL).await;
    // `heartbeat_secs = 1` (see `setup`): gc judges a run over after 10 s without a heartbeat.
    // The second run waits up to two minutes for the first run's lease.
    env.configure("lease_wait_secs = 120");
    let job = items(&env, 2).await;
    let job = job.to_string_lossy();
    let slow = ("SPOTLAKE_TEST_ITEM_SLEEP_MS", "30000");
    let run = |name: &str| ["run", &*job, "--partition", "2024-01-01", "--run-id", name].map(String::from);
    let holder = env.spawn_logged("holder", &run("holder").each_ref().map(String::as_str), &[slow]);
    let mut stand_ins = env.stand_ins().with_env(slow.0, slow.1);
    let started = |s: &StandIns| s.consoles().contains("running item=copy[2024-01-01]");
    env.tick_until(&mut stand_ins, Duration::from_secs(120), "the items never ran", started).await;
    let waiter = env.spawn_logged("waiter", &run("waiter").each_ref().map(String::as_str), &[]);
    let waits = |_: &StandIns| env.log("waiter").contains("waiting for many/copy/2024-01-01, held by run holder");
    env.tick_until(&mut stand_ins, Duration::from_secs(120), "the second run never waited", waits).await;
    // Fifteen heartbeat periods into the wait, in which the waiting run does nothing else.
    let waiting = Instant::now();
    env.tick_until(&mut stand_ins, Duration::from_secs(60), "", |_| waiting.elapsed() >= Duration::from_secs(15)).await;
    assert_eq!(env.keys("state/live/").await, ["state/live/holder.json", "state/live/waiter.json"]);
    let out = env.runner(&["fleet", "gc"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("deleted 0 "), "both runs are live: {said}");
    let (_, queues) = env.leftovers().await;
    for run in ["holder", "waiter"] {
        let of_run = queues.iter().filter(|q| q.contains(&format!("-{run}-"))).count();
        assert_eq!(of_run, 3, "{run}'s dead-letter, callback and work queues survive gc: {queues:?}");
    }
    let ended = env.drive_all(vec![holder, waiter], &mut stand_ins, waiting, Duration::from_secs(180)).await;
    let logs = format!("--- holder\n{}\n--- waiter\n{}", env.log("holder"), env.log("waiter"));
    assert!(ended.iter().all(|(status, _)| status.success()), "{logs}");
    // The waiter found the holder's items committed once it had the lease.
    assert_eq!(env.committers("state/items/many/copy/2024-01-01/").await, ["holder", "holder"]);
    assert!(env.keys("state/live/").await.is_empty(), "each run deletes its heartbeat when it ends");
    env.assert_nothing_left().await;
    // AWS wants EC2 Fleet's service-linked role before the first fleet made through the API:
    // the first run's preflight made it, the second found it made.
    let iam = env.aws.iam().await;
    let roles = iam.list_roles().path_prefix("/aws-service-role/ec2fleet.amazonaws.com/").send().await.unwrap();
    assert_eq!(roles.roles().len(), 1, "{roles:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_id_reused_after_a_crash_takes_over_its_own_template_and_queues() {
    let env = setup(SMALL).await;
    // The crashed attempt's lease runs out 3 s after its last renewal; the resumed one waits.
    env.configure("lease_ttl_secs = 3\nlease_wait_secs = 60");
    let job = items(&env, 2).await;
    let job = job.to_string_lossy();
    let args = ["run", &*job, "--partition", "2024-01-01", "--run-id", "again"];
    // Items long enough to be still running when the resumed attempt starts, so it launches.
    let slow = ("SPOTLAKE_TEST_ITEM_SLEEP_MS", "30000");
    let mut crashed = env.spawn_logged("crashed", &args, &[slow]);
    let mut stand_ins = env.stand_ins().with_env(slow.0, slow.1);
    let started = |s: &StandIns| s.consoles().contains("running item=copy[2024-01-01]");
    env.tick_until(&mut stand_ins, Duration::from_secs(120), "the items never ran", started).await;
    // The orchestrator dies outright: its template, queues and fleet stay.
    crashed.kill().unwrap();
    crashed.wait().unwrap();
    let (templates, queues) = env.leftovers().await;
    assert_eq!(templates.len(), 1, "{templates:?}");
    assert_eq!(queues.len(), 3, "{queues:?}");
    // Resumed under the same id, with another visibility: SQS's CreateQueue refuses the work
    // queue's name with other attributes, and EC2 refuses the template's name.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, config.replace("visibility_secs = 5", "visibility_secs = 7")).unwrap();
    // At once, its heartbeat still looks live: the id is refused, and nothing of the crashed
    // attempt is touched.
    let early = env.runner(&args).output().unwrap();
    let said = String::from_utf8_lossy(&early.stderr);
    assert!(!early.status.success() && said.contains("run again is live (its heartbeat is"), "{said}");
    assert_eq!(env.leftovers().await, (templates, queues.clone()));
    // Ten heartbeat periods (1 s) after the crash, it resumes.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let resumed = env.spawn_logged("resumed", &args, &[]);
    let ended = env.drive_all(vec![resumed], &mut stand_ins, Instant::now(), Duration::from_secs(180)).await;
    let log = env.log("resumed");
    assert!(ended[0].0.success(), "{log}\n{}", stand_ins.consoles());
    assert!(log.contains("replaced the launch template an earlier attempt of this run left"), "{log}");
    assert!(log.contains("deleted a queue of this name an earlier attempt of this run left"), "{log}");
    assert_eq!(env.ids("data/many_out/").await, item_ids(0..2));
    env.assert_nothing_left().await;
}

/// Every `boot-failed.txt` of a run's step: (instance, text).
async fn boot_failures(env: &Aws, run: &str, step: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in env.keys(&format!("state/runs/{run}/workers/{step}/")).await {
        if let Some(rest) = key.strip_suffix("/boot-failed.txt") {
            let id = rest.rsplit('/').next().unwrap_or_default().to_string();
            out.push((id, String::from_utf8_lossy(&env.get(&key).await).into_owned()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_that_cannot_reach_its_queue_retires_and_the_step_runs_on_the_others() {
    let env = setup(SMALL).await;
    let job = items(&env, 2).await;
    let job = job.to_string_lossy();
    // The first instance's worker can't reach SQS (nothing listens there): it asks again for 3 s
    // (the patience, shortened), exits 1, and its boot says so as this instance's trouble.
    // The other's items take 20 s, so the step is still on when the first boot fails.
    let mut stand_ins = env
        .stand_ins()
        .with_env_for_first(1, "AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9")
        .with_env("SPOTLAKE_TEST_QUEUE_PATIENCE_SECS", "3")
        .with_env("SPOTLAKE_TEST_ITEM_SLEEP_MS", "20000");
    let run = env.spawn(&["run", &job, "--partition", "2024-01-01", "--run-id", "blip"], &[]);
    let (status, err) = env.drive(run, &mut stand_ins, Duration::from_secs(240)).await;
    assert!(status.success(), "{err}\n{}", stand_ins.consoles());
    let failed = boot_failures(&env, "blip", "copy").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    let (id, text) = &failed[0];
    assert!(text.starts_with(&format!("transient: instance {id}: the worker exited with status 1")), "{text}");
    assert!(text.contains("opening the queue") || text.contains("unreachable"), "{text}");
    assert!(err.contains("an instance's boot failed"), "{err}");
    assert_eq!(env.ids("data/many_out/").await, item_ids(0..2));
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_that_all_fail_to_boot_are_a_crash_loop_naming_what_each_said() {
    let env = setup(SMALL).await;
    env.configure("crash_loop_after = 2");
    let job = items(&env, 2).await;
    let job = job.to_string_lossy();
    let mut stand_ins = env
        .stand_ins()
        .with_env("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9")
        .with_env("SPOTLAKE_TEST_QUEUE_PATIENCE_SECS", "3");
    let run = env.spawn(&["run", &job, "--partition", "2024-01-01", "--run-id", "loop"], &[]);
    let (status, err) = env.drive(run, &mut stand_ins, Duration::from_secs(240)).await;
    assert!(!status.success(), "{err}");
    let failed = boot_failures(&env, "loop", "copy").await;
    assert_eq!(failed.len(), 2, "{failed:?}\n{err}");
    assert!(err.contains("2 instances ended without their worker checking in"), "{err}");
    for (id, _) in &failed {
        assert!(err.contains(&format!("instance {id}: the worker exited with status 1")), "{id}: {err}");
    }
    env.assert_nothing_left().await;
}

/// Where a run holds its lease on the one-file-items step's partition.
const LEASE: &str = "state/leases/many/copy/2024-01-01.json";

/// Takes the lease over as another run does once it expired: a new object naming that run,
/// whose ETag is not the holder's.
async fn take_over_the_lease(env: &Aws, thief: &str) {
    let expires_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let holder = serde_json::json!({
        "run_id": thief,
        "dagster_run_id": null,
        "host": "elsewhere",
        "pid": 1,
        "started_at": "2026-12-01T00:00:00Z",
        "expires_at": expires_at as f64,
    });
    put(&env.aws.s3().await, LEASE, serde_json::to_vec(&holder).unwrap()).await;
}

async fn lease_holder(env: &Aws) -> String {
    let holder: serde_json::Value = serde_json::from_slice(&env.get(LEASE).await).unwrap();
    holder["run_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_s3_lease_is_taken_over_mid_step_stops_it_and_its_uncommitted_items_publish_nothing() {
    let env = setup(SMALL).await;
    // Renewed every second: a holder learns of a takeover within a second or two.
    env.configure("lease_ttl_secs = 3");
    let job = items(&env, 2).await;
    let job = job.to_string_lossy();
    let first = env.spawn(&["run", &job, "--partition", "2024-01-01", "--run-id", "first"], &[]);
    let (status, err) = env.drive(first, &mut env.stand_ins(), Duration::from_secs(120)).await;
    assert!(status.success(), "{err}");
    let (files, manifests) = (env.keys("data/many_out/").await, env.keys("state/items/many/copy/").await);
    assert_eq!((files.len(), manifests.len()), (2, 2), "{files:?} {manifests:?}");

    // Two more files: the holder's run has two items to do, which sleep 20 s before publishing.
    let s3 = env.aws.s3().await;
    for i in 2..4 {
        put(&s3, &format!("data/many/2024-01-01/part-{i}.csv"), format!("id,n\na{i},{i}\n").into_bytes()).await;
    }
    let slow = ("SPOTLAKE_TEST_ITEM_SLEEP_MS", "20000");
    let mut run = env.spawn(&["run", &job, "--partition", "2024-01-01", "--run-id", "holder"], &[slow]);
    let mut stand_ins = env.stand_ins().with_env(slow.0, slow.1);
    let ec2 = env.aws.ec2().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(2..4).all(|i| stand_ins.consoles().contains(&format!("running item=copy[2024-01-01] part-{i}.csv"))) {
        assert!(Instant::now() < deadline, "the items never ran\n{}\n{}", env.orchestrator_log(), stand_ins.consoles());
        assert!(run.try_wait().unwrap().is_none(), "the run ended early\n{}", env.orchestrator_log());
        stand_ins.tick(&ec2).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    take_over_the_lease(&env, "thief").await;
    let taken = Instant::now();
    let ended = env.drive_all(vec![run], &mut stand_ins, taken, Duration::from_secs(60)).await;
    let err = env.orchestrator_log();
    let (status, _) = ended[0];
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("step \"copy\": the lease on many/copy/2024-01-01 was lost to run thief on elsewhere (pid 1)"),
        "{err}"
    );
    // Stopped before its items' 20 s were up: had it gone on, they would have published, and
    // the listings below would show it. (No bound on `after`: a slow machine makes it longer.)
    // Nothing of its two items was published or committed; the first run's are untouched.
    assert_eq!(env.keys("data/many_out/").await, files, "{}", stand_ins.consoles());
    assert_eq!(env.keys("state/items/many/copy/").await, manifests);
    assert_eq!(env.ids("data/many_out/").await, item_ids(0..2));
    // Its release left the new holder's lease alone.
    assert_eq!(lease_holder(&env).await, "thief");
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_s3_lease_is_taken_over_before_its_first_renewal_fails_without_pruning_or_reporting() {
    let env = setup(SMALL).await;
    // Renewed every 100 s: the step is over before the holder renews, and only a check at its
    // end can find the takeover.
    env.configure("lease_ttl_secs = 300");
    items(&env, 2).await;
    // The output in a folder of the partition's own, which the step sweeps for files no
    // committed item wrote.
    let job = env.dir.path().join("keyed.toml");
    let text = std::fs::read_to_string(support::workspace().join("runner/tests/jobs/one_file_items.toml")).unwrap();
    std::fs::write(&job, text.replace("path = \"many_out\"", "path = \"many_out/day={partition_key}\"")).unwrap();
    let summary_path = env.dir.path().join("holder.json");
    let mut run = env.spawn(
        &[
            "run",
            &job.to_string_lossy(),
            "--partition",
            "2024-01-01",
            "--run-id",
            "holder",
            "--summary-json",
            &summary_path.to_string_lossy(),
        ],
        &[],
    );
    let mut stand_ins = env.stand_ins();
    let ec2 = env.aws.ec2().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.keys(LEASE).await.is_empty() {
        assert!(Instant::now() < deadline, "the run never took its lease\n{}", env.orchestrator_log());
        assert!(run.try_wait().unwrap().is_none(), "the run ended early\n{}", env.orchestrator_log());
        stand_ins.tick(&ec2).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // As soon as the holder has the lease, another run takes it over and publishes a file of an
    // item it has not committed yet.
    take_over_the_lease(&env, "thief").await;
    let theirs = "data/many_out/day=2024-01-01/part-00000000000000ff.parquet";
    put(&env.aws.s3().await, theirs, b"the thief's, not yet committed".to_vec()).await;
    let (status, err) = env.drive(run, &mut stand_ins, Duration::from_secs(120)).await;
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("step \"copy\": the lease on many/copy/2024-01-01 was lost to run thief on elsewhere (pid 1)"),
        "{err}"
    );
    // Its items committed before it knew; it swept nothing of the thief's and reported nothing.
    assert_eq!(env.committers("state/items/many/copy/").await, vec!["holder".to_string(); 2]);
    let files = env.keys("data/many_out/").await;
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files.contains(&theirs.to_string()), "the thief's file is still there: {files:?}\n{err}");
    assert!(!summary_path.exists(), "no summary of a step whose lease was lost");
    assert_eq!(lease_holder(&env).await, "thief");
    env.assert_nothing_left().await;
}
