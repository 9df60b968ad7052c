//! `runner run` in AWS mode against moto's server: data and state in S3, queues on SQS, a spot
//! fleet created and deleted on EC2. moto cannot boot instances, so this test boots real
//! worker processes from the user data of the fleet's launch templates, as an instance would.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use runner_backends::aws::AwsClients;
use runner_types::BackendKind;

struct Aws {
    moto: support::Moto,
    aws: AwsClients,
    dir: tempfile::TempDir,
    config: PathBuf,
}

async fn setup() -> Aws {
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
        s3.put_object()
            .bucket("lake")
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from_path(&entry).await.unwrap())
            .send()
            .await
            .unwrap();
    }
    let ec2 = aws.ec2().await;
    let (subnets, ami) = support::ec2_network(&ec2, 1, &["us-east-1a", "us-east-1b"]).await;
    let config = dir.path().join("runner.toml");
    std::fs::write(
        &config,
        format!(
            r#"
backend = "aws"
data_root = "s3://lake/data"
state = "s3://lake/state"
visibility_secs = 5
heartbeat_secs = 1
idle_shutdown_secs = 4
[ec2]
subnets = {subnets:?}
amis = {{ x86_64 = "{ami}", arm64 = "{ami}" }}
worker_binaries = {{ x86_64 = "s3://lake/bin/runner-x86_64", arm64 = "s3://lake/bin/runner-aarch64" }}
subnet_overrides = "separate"
"#
        ),
    )
    .unwrap();
    Aws { moto, aws, dir, config }
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
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.moto.env();
        // No metadata service here: fail fast instead of waiting on timeouts.
        env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9".into()));
        env
    }

    fn runner(&self, args: &[&str]) -> Command {
        let mut c = Command::new(support::runner_bin());
        c.args(args).env("RUNNER_CONFIG", &self.config).envs(self.env());
        c
    }

    /// Boots workers for every launch template the fleet created, from its user data.
    async fn boot_workers(&self, booted: &mut BTreeSet<String>, workers: &mut Vec<Child>) {
        let ec2 = self.aws.ec2().await;
        let Ok(templates) = ec2.describe_launch_templates().send().await else { return };
        for t in templates.launch_templates() {
            let name = t.launch_template_name().unwrap_or_default().to_string();
            if !name.starts_with("spotlake-") || !name.ends_with("-x86_64") || booted.contains(&name) {
                continue;
            }
            let versions = ec2.describe_launch_template_versions().launch_template_name(&name).send().await.unwrap();
            let data = versions.launch_template_versions()[0].launch_template_data().unwrap();
            let script =
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data.user_data().unwrap()).unwrap())
                    .unwrap();
            let json = script.split("<<'JSON'\n").nth(1).unwrap().split("\nJSON\n").next().unwrap();
            let path = self.dir.path().join(format!("{name}.json"));
            std::fs::write(&path, json).unwrap();
            for _ in 0..2 {
                workers.push(
                    self.runner(&["worker", "--config-file", &path.to_string_lossy()])
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap(),
                );
            }
            booted.insert(name);
        }
    }

    async fn running_instances(&self) -> usize {
        support::running_instances(&self.aws.ec2().await).await
    }

    async fn live_fleets(&self) -> usize {
        let out = self.aws.ec2().await.describe_fleets().send().await.unwrap();
        out.fleets().iter().filter(|f| !f.fleet_state().is_some_and(|s| s.as_str().starts_with("deleted"))).count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_runs_on_a_spot_fleet_over_s3_and_sqs() {
    let env = setup().await;
    let job = support::workspace().join("runner/examples/events/job.toml");
    let summary = env.dir.path().join("summary.json");
    let mut run = env
        .runner(&[
            "run",
            &job.to_string_lossy(),
            "--partition",
            "2024-01-01",
            "--summary-json",
            &summary.to_string_lossy(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut booted, mut workers) = (BTreeSet::new(), Vec::new());
    let mut saw_instances = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    while run.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the run did not finish");
        env.boot_workers(&mut booted, &mut workers).await;
        saw_instances = saw_instances.max(env.running_instances().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = run.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    for mut w in workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    assert!(status.success(), "{err}");
    assert!(err.contains("check one_row_per_user on user_daily.user_daily: passed"), "checks read S3 outputs: {err}");
    assert!(err.contains("check user_id_present on clean.clean: passed"), "{err}");
    assert_eq!(booted.len(), 3, "one fleet per step: {booted:?}");
    assert!(saw_instances > 0, "the fleets had instances while they ran");
    assert_eq!(env.running_instances().await, 0, "no instance is left running");
    assert_eq!(env.live_fleets().await, 0, "every fleet was deleted");

    // The same data run locally gives the same numbers.
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let rows =
        |s: &serde_json::Value, step: usize, out: &str| s["steps"][step]["outputs"][out]["rows"].as_u64().unwrap();
    let local_root = env.dir.path().join("gen");
    let local_summary = env.dir.path().join("local.json");
    let out = Command::new(support::runner_bin())
        .args(["run", &job.to_string_lossy(), "--partition", "2024-01-01", "--backend", "local", "--root"])
        .arg(&local_root)
        .args(["--summary-json", &local_summary.to_string_lossy()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let l: serde_json::Value = serde_json::from_slice(&std::fs::read(&local_summary).unwrap()).unwrap();
    assert_eq!(rows(&s, 0, "clean"), rows(&l, 0, "clean"));
    assert_eq!(rows(&s, 2, "user_daily"), rows(&l, 2, "user_daily"));
    let listed = env
        .aws
        .s3()
        .await
        .list_objects_v2()
        .bucket("lake")
        .prefix("data/user_daily/day=2024-01-01/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 16, "one file per user bucket in S3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_in_aws_mode_leaves_no_instance_running() {
    let env = setup().await;
    let job = support::workspace().join("runner/examples/events/job.toml");
    let mut run = env
        .runner(&["run", &job.to_string_lossy(), "--partition", "2024-01-01"])
        .env("RUNNER_TEST_ITEM_SLEEP_MS", "30000")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut booted, mut workers) = (BTreeSet::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.running_instances().await == 0 || booted.is_empty() {
        assert!(Instant::now() < deadline, "the fleet never came up");
        env.boot_workers(&mut booted, &mut workers).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // SAFETY: signalling the orchestrator this test started.
    unsafe {
        libc::kill(run.id() as i32, libc::SIGTERM);
    }
    let status = run.wait().unwrap();
    for mut w in workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("fleet deleted"), "{err}");
    assert_eq!(env.running_instances().await, 0, "DescribeInstances shows nothing running");
    assert_eq!(env.live_fleets().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_and_missing_bucket_fail_before_launch() {
    let env = setup().await;
    let job = support::workspace().join("runner/examples/events/job.toml");
    let bad = std::fs::read_to_string(&env.config).unwrap().replace("s3://lake/state", "s3://no-such-bucket/state");
    std::fs::write(&env.config, bad).unwrap();
    let out = env.runner(&["run", &job.to_string_lossy(), "--partition", "2024-01-01"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-bucket"), "{err}");
    assert_eq!(env.live_fleets().await, 0, "nothing was launched");

    let out = env
        .runner(&["run", &job.to_string_lossy(), "--partition", "2024-01-01"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("preflight"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_instance_requirements_fail_before_launch() {
    let env = setup().await;
    let job = support::workspace().join("runner/examples/events/job.toml");
    let bad = std::fs::read_to_string(&env.config).unwrap().replace("[ec2]\n", "[ec2]\nvcpus = [8, 2]\n");
    std::fs::write(&env.config, bad).unwrap();
    let out = env.runner(&["run", &job.to_string_lossy(), "--partition", "2024-01-01"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ec2.vcpus [8, 2]"), "{err}");
    assert_eq!(env.live_fleets().await, 0, "nothing was launched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_gc_deletes_fleets_of_runs_that_are_over() {
    let env = setup().await;
    // A fleet whose orchestrator died: its run has no live record.
    let config: runner::config::Config = toml::from_str(&std::fs::read_to_string(&env.config).unwrap()).unwrap();
    let fleet =
        runner_backends::fleet::ec2::Ec2Fleet::new(env.aws.ec2().await, config.ec2.unwrap(), Duration::from_secs(3600));
    let mut request =
        support::fleet_request("orphaned-run", BackendKind::Aws, "https://example/work", "https://example/cb");
    request.dagster_run_id = None;
    request.capacity = 1;
    use runner_backends::fleet::Fleet;
    fleet.launch(&request).await.unwrap();
    assert_eq!(env.live_fleets().await, 1);
    assert!(env.running_instances().await > 0);
    let out = env.runner(&["fleet", "gc"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(env.live_fleets().await, 0, "the orphaned fleet is gone");
    assert_eq!(env.running_instances().await, 0, "and its instances");
}
