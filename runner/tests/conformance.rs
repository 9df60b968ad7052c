//! One conformance suite per backend trait, run against every implementation: the local ones
//! in-process, the AWS ones over the wire against moto's server.

mod support;

use std::sync::Arc;

use runner::aws::AwsClients;
use runner::fleet::{FleetRequest, WorkerConfig};
use runner::item::RunId;
use runner::queue::{LocalQueues, QueueBackend, QueueOptions, SqsQueues};
use runner::storage::{LocalStorage, S3Storage, Storage};

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_local() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path().to_path_buf()).unwrap());
    runner::storage::conformance::run_all(store, "suite").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_s3_on_moto() {
    let moto = support::Moto::start();
    let aws = AwsClients::for_endpoint(&moto.endpoint, "us-east-1").await;
    let client = aws.s3().await;
    client.create_bucket().bucket("conformance").send().await.unwrap();
    // A small multipart threshold exercises the multipart path with a modest file.
    let store: Arc<dyn Storage> = Arc::new(
        S3Storage::new(client, "conformance".into(), "prefix/inside".into())
            .with_multipart(6 * 1024 * 1024, 5 * 1024 * 1024),
    );
    runner::storage::conformance::run_all(store, "suite").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_local() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalQueues::new(dir.path().join("q.sqlite"));
    runner::queue::conformance::run_all(&backend, "t").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_sqs_on_moto() {
    let moto = support::Moto::start();
    let aws = AwsClients::for_endpoint(&moto.endpoint, "us-east-1").await;
    let backend = SqsQueues::new(aws.sqs().await);
    runner::queue::conformance::run_all(&backend, &unique("t")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_queue_survives_a_reopen() {
    // A crashed orchestrator finds its messages where they were.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite");
    let address = {
        let q = LocalQueues::new(&path).create("persist", &QueueOptions::default()).await.unwrap();
        q.send(&["kept".to_string()]).await.unwrap();
        q.address()
    };
    let reopened = LocalQueues::new("").open(&address).await.unwrap();
    let got = reopened.receive(1, std::time::Duration::from_secs(1), std::time::Duration::from_secs(30)).await.unwrap();
    assert_eq!(got[0].body, "kept");
}

fn fleet_request(work: String, callbacks: String, backend: &str) -> FleetRequest {
    FleetRequest {
        run_id: RunId(unique("run-")),
        step: "clean".into(),
        dagster_run_id: Some("dagster-run-1".into()),
        capacity: 2,
        worker: WorkerConfig {
            queue_backend: backend.into(),
            work_queue: work,
            callback_queue: callbacks,
            visibility_secs: 30,
            heartbeat_secs: 10,
            idle_shutdown_secs: 120,
            poll_imds: false,
            scratch_dir: None,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_local() {
    let dir = tempfile::tempdir().unwrap();
    let queues = LocalQueues::new(dir.path().join("q.sqlite"));
    let work = queues.create("work", &QueueOptions::default()).await.unwrap();
    let cb = queues.create("callbacks", &QueueOptions::default()).await.unwrap();
    // Local workers are `runner worker` processes: point the fleet at the built binary.
    let fleet = runner::fleet::local::LocalFleet::new(dir.path().to_path_buf()).with_executable(support::runner_bin());
    runner::fleet::conformance::run_all(&fleet, &fleet_request(work.address(), cb.address(), "local")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_ec2_on_moto() {
    let moto = support::Moto::start();
    let aws = AwsClients::for_endpoint(&moto.endpoint, "us-east-1").await;
    let ec2 = aws.ec2().await;
    let (subnets, ami) = support::ec2_network(&ec2, 0, &["us-east-1a", "us-east-1b", "us-east-1c"]).await;
    let config: runner::fleet::ec2::Ec2Config = toml::from_str(&format!(
        r#"
subnets = {subnets:?}
amis = {{ x86_64 = "{ami}", arm64 = "{ami}" }}
worker_binaries = {{ x86_64 = "s3://bin/runner-x86_64", arm64 = "s3://bin/runner-aarch64" }}
vcpus = [2, 8]
memory_mib = [4096, 32768]
subnet_overrides = "separate"
"#
    ))
    .unwrap();
    let fleet = runner::fleet::ec2::Ec2Fleet::new(ec2.clone(), config, std::time::Duration::from_secs(3600));
    let request = fleet_request("https://sqs/work".into(), "https://sqs/cb".into(), "sqs");
    runner::fleet::conformance::run_all(&fleet, &request).await.unwrap();
    // Nothing tagged with this tool is left running.
    assert_eq!(support::running_instances(&ec2).await, 0, "instances left running");
}
