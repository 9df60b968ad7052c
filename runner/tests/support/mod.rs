//! Test support: moto's server on 127.0.0.1 (started here, stopped by PID), stand-ins for
//! the instance metadata service and for EC2 instances ([`instances`]), and paths.
#![allow(dead_code)]

pub mod imds;
pub mod instances;
pub mod output;

use std::io::{BufRead, BufReader};

use runner_backends::fleet::FleetRequest;
use runner_core::worker::WorkerConfig;
use runner_types::{BackendKind, RunId};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The runner binary under test.
pub fn runner_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_runner"))
}

/// moto's server, stopped (by PID) on drop.
pub struct Moto {
    pub endpoint: String,
    child: Child,
    // Held open: the server exits when it closes, so it dies with a test process that is killed.
    _lifeline: ChildStdin,
}

impl Moto {
    /// Starts moto's server through `tests/moto_server.py` with the project's venv (`make venv`
    /// installs moto). The server binds a port of its own and prints its endpoint, so the
    /// endpoint belongs to this test's child and no other.
    pub fn start() -> Moto {
        let python =
            std::env::var_os("MOTO_PYTHON").map(PathBuf::from).unwrap_or_else(|| workspace().join(".venv/bin/python"));
        assert!(python.exists(), "{} not found: run `make venv` (or set MOTO_PYTHON)", python.display());
        let mut child = Command::new(&python)
            .arg(workspace().join("tests/moto_server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("moto's server starts");
        let lifeline = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("reading moto's endpoint");
        let endpoint = line.trim().to_string();
        assert!(endpoint.starts_with("http://127.0.0.1:"), "moto's server did not start: {line:?}");
        Moto { endpoint, child, _lifeline: lifeline }
    }

    /// A server for the whole test process (kept in a `static`, which is never dropped): it is
    /// stopped by PID when the process exits, and by its lifeline if the process is killed.
    pub fn start_for_process() -> Moto {
        static PID: AtomicI32 = AtomicI32::new(0);
        extern "C" fn stop() {
            let pid = PID.load(Ordering::SeqCst);
            if pid > 0 {
                // SAFETY: signalling the server this process started.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
        let moto = Moto::start();
        PID.store(moto.child.id() as i32, Ordering::SeqCst);
        // SAFETY: registering a plain function that only sends a signal.
        unsafe {
            libc::atexit(stop);
        }
        moto
    }

    /// Stops the server's process (SIGSTOP): connections are still accepted by the kernel, and
    /// nothing answers, as when S3 or SQS stalls. Its state survives, unlike a restart's.
    pub fn pause(&self) {
        // SAFETY: signalling the server this test started.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGSTOP);
        }
    }

    /// Lets a paused server go on (SIGCONT); it answers what queued up meanwhile.
    pub fn resume(&self) {
        // SAFETY: as above.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGCONT);
        }
    }

    /// Env for child processes that should talk to moto.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // SAFETY: signalling the server this test started (a paused one must go on to exit).
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGCONT);
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// A VPC with one subnet per availability zone, and an AMI moto knows: what an EC2 fleet needs.
pub async fn ec2_network(ec2: &aws_sdk_ec2::Client, second_octet: u8, zones: &[&str]) -> (Vec<String>, String) {
    let vpc = ec2.create_vpc().cidr_block(format!("10.{second_octet}.0.0/16")).send().await.unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let mut subnets = Vec::new();
    for (i, az) in zones.iter().enumerate() {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(format!("10.{second_octet}.{i}.0/24"))
            .availability_zone(*az)
            .send()
            .await
            .unwrap();
        subnets.push(s.subnet().unwrap().subnet_id().unwrap().to_string());
    }
    (subnets, ami(ec2, "x86_64").await)
}

/// An AMI moto knows for an architecture (`x86_64`, `arm64`).
pub async fn ami(ec2: &aws_sdk_ec2::Client, arch: &str) -> String {
    let images = ec2
        .describe_images()
        .filters(aws_sdk_ec2::types::Filter::builder().name("architecture").values(arch).build())
        .send()
        .await
        .unwrap();
    images.images()[0].image_id().unwrap().to_string()
}

/// Uploads a worker "binary" to S3 under its sha256, as `runner dist upload` lays it out, and
/// returns the `worker_binaries.x86_64` TOML entry.
pub async fn upload_worker(s3: &aws_sdk_s3::Client, bucket: &str, bytes: Vec<u8>) -> String {
    use sha2::Digest as _;
    let sha: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("bin/{sha}/runner-x86_64");
    s3.put_object().bucket(bucket).key(&key).body(bytes.into()).send().await.unwrap();
    format!("worker_binaries.x86_64 = {{ uri = \"s3://{bucket}/{key}\", sha256 = \"{sha}\" }}")
}

/// A stand-in for the runner binary that starts the runner under test: the 190 MB debug
/// binary need not travel through moto for every instance, and the boot script still
/// downloads, verifies and runs what it was given.
pub fn worker_launcher() -> Vec<u8> {
    format!("#!/bin/sh\nexec '{}' \"$@\"\n", runner_bin().display()).into_bytes()
}

/// Instances tagged by this tool that are pending or running.
pub async fn running_instances(ec2: &aws_sdk_ec2::Client) -> usize {
    instance_ids(ec2).await.len()
}

/// The ids of the instances tagged by this tool that are pending or running.
pub async fn instance_ids(ec2: &aws_sdk_ec2::Client) -> Vec<String> {
    let out = ec2
        .describe_instances()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag:spotlake:tool").values("runner").build())
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-state-name")
                .values("running")
                .values("pending")
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.reservations().iter().flat_map(|r| r.instances()).filter_map(|i| i.instance_id()).map(String::from).collect()
}

/// A launchable fleet request for tests: two workers of step `clean`, for a Dagster run.
pub fn fleet_request(run: &str, backend: BackendKind, work: &str, callbacks: &str) -> FleetRequest {
    let worker = WorkerConfig {
        backend,
        work_queue: work.into(),
        callback_queue: callbacks.into(),
        visibility_secs: 30,
        heartbeat_secs: 10,
        idle_shutdown_secs: 120,
        poll_imds: false,
        scratch_dir: None,
        vcpus_per_item: 1,
        memory_mib_per_item: None,
        slots: Some(1),
        workers_prefix: None,
        step_items: None,
        warm_items: None,
        env: Default::default(),
        machine_items: None,
    };
    FleetRequest {
        run_id: RunId::from(run),
        step: "clean".into(),
        dagster_run_id: Some("dagster-run-1".into()),
        worker_config: serde_json::to_string(&worker).unwrap(),
        workers_prefix: runner_types::Location::parse_absolute("s3://lake/state/runs/r/workers/clean").unwrap(),
    }
}
