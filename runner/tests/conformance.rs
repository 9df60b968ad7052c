//! The backend conformance suites (`runner-backends`, feature `conformance`), one test per
//! behaviour and backend, so a failure names both: the local backends in-process, the AWS ones
//! over the wire against moto's server. Storage and queue tests share one server per test
//! process (each works under names of its own); each EC2 fleet test has its own, since `gc`
//! sees every fleet on the server.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use runner_backends::aws::AwsClients;
use runner_backends::fleet::conformance as fleet_suite;
use runner_backends::fleet::ec2::{Ec2Config, Ec2Fleet, Ec2Settings};
use runner_backends::fleet::local::LocalFleet;
use runner_backends::lease::conformance as lease_suite;
use runner_backends::lease::{Leases, LocalLeases, S3Leases};
use runner_backends::queue::conformance as queue_suite;
use runner_backends::queue::{LocalQueues, QueueBackend, QueueOptions, SqsQueues};
use runner_backends::storage::conformance as storage_suite;
use runner_backends::storage::{LocalStorage, S3Storage, Storage};
use runner_types::BackendKind;

/// A name no other test uses: the counter tells this process's parallel tests apart, the time
/// tells processes apart.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000;
    format!("{prefix}{nanos}-{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// moto's server for this test process's storage and queue tests.
fn shared_moto() -> &'static support::Moto {
    static MOTO: OnceLock<support::Moto> = OnceLock::new();
    MOTO.get_or_init(support::Moto::start_for_process)
}

async fn s3_store(bucket: &str) -> Arc<dyn Storage> {
    let aws = AwsClients::for_endpoint(&shared_moto().endpoint, "us-east-1").await;
    let client = aws.s3().await;
    client.create_bucket().bucket(bucket).send().await.unwrap();
    // A small multipart threshold exercises the multipart path with a modest file.
    Arc::new(
        S3Storage::new(client, bucket.into(), "prefix/inside".into()).with_multipart(6 * 1024 * 1024, 5 * 1024 * 1024),
    )
}

macro_rules! storage_tests {
    ($($behaviour:ident),* $(,)?) => {
        mod storage_local {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let dir = tempfile::tempdir().unwrap();
                    let store: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path().to_path_buf()).unwrap());
                    storage_suite::$behaviour(&store, "suite").await.unwrap();
                }
            )*
        }
        mod storage_s3_on_moto {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let store = s3_store(&unique("conformance-")).await;
                    storage_suite::$behaviour(&store, "suite").await.unwrap();
                }
            )*
        }
    };
}

storage_tests!(
    put_get_overwrite,
    not_found,
    list_by_prefix,
    unicode_and_odd_keys,
    delete_is_idempotent,
    invalid_keys,
    put_if_absent_has_one_winner,
    files_round_trip,
    readers_never_see_partial_objects,
);

macro_rules! queue_tests {
    ($($behaviour:ident),* $(,)?) => {
        mod queue_local {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let dir = tempfile::tempdir().unwrap();
                    let backend = LocalQueues::new(dir.path().join("q.sqlite"));
                    queue_suite::$behaviour(&backend, "t").await.unwrap();
                }
            )*
        }
        mod queue_sqs_on_moto {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let aws = AwsClients::for_endpoint(&shared_moto().endpoint, "us-east-1").await;
                    let backend = SqsQueues::new(aws.sqs().await);
                    queue_suite::$behaviour(&backend, &unique("t")).await.unwrap();
                }
            )*
        }
    };
}

queue_tests!(
    send_receive_delete,
    visibility_hides_and_returns,
    heartbeat_and_release,
    dead_letter_after_max_receives,
    create_over_a_leftover_makes_it_anew,
    long_poll_waits_for_a_message,
    many_messages_each_delivered_once,
    size_limit,
    list_finds_queues_by_prefix,
);

/// SQS returns at most 1,000 names, and a next token only when asked for pages (`MaxResults`):
/// `fleet gc` must see the 1,001st queue. moto answers as SQS does here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_lists_queues_past_the_first_thousand() {
    let aws = AwsClients::for_endpoint(&shared_moto().endpoint, "us-east-1").await;
    let sqs = aws.sqs().await;
    let prefix = unique("many");
    for i in 0..1001 {
        sqs.create_queue().queue_name(format!("{prefix}-{i:04}")).send().await.unwrap();
    }
    let names = SqsQueues::new(sqs).list(&prefix).await.unwrap();
    assert_eq!(names.len(), 1001);
    assert_eq!(names.last().map(String::as_str), Some(format!("{prefix}-1000").as_str()));
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

macro_rules! fleet_tests {
    ($($behaviour:ident),* $(,)?) => {
        mod fleet_local {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let dir = tempfile::tempdir().unwrap();
                    let queues = LocalQueues::new(dir.path().join("q.sqlite"));
                    let work = queues.create("work", &QueueOptions::default()).await.unwrap();
                    let cb = queues.create("callbacks", &QueueOptions::default()).await.unwrap();
                    // Local workers are `runner worker` processes: point the fleet at the built binary.
                    let fleet = LocalFleet::new(dir.path().to_path_buf(), 4).with_executable(support::runner_bin());
                    let request =
                        support::fleet_request(&unique("run-"), BackendKind::Local, &work.address(), &cb.address());
                    fleet_suite::$behaviour(&fleet, &request).await.unwrap();
                }
            )*
        }
        mod fleet_ec2_on_moto {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let moto = support::Moto::start();
                    let aws = AwsClients::for_endpoint(&moto.endpoint, "us-east-1").await;
                    let ec2 = aws.ec2().await;
                    let s3 = aws.s3().await;
                    let settings = Ec2Settings { lifetime: std::time::Duration::from_secs(3600), deployment: "suite".into() };
                    let fleet = Ec2Fleet::new(ec2.clone(), s3.clone(), ec2_config(&ec2, &s3).await, settings);
                    let request =
                        support::fleet_request(&unique("run-"), BackendKind::Aws, "https://sqs/work", "https://sqs/cb");
                    fleet_suite::$behaviour(&fleet, &request).await.unwrap();
                    // Nothing tagged with this tool is left running.
                    assert_eq!(support::running_instances(&ec2).await, 0, "instances left running");
                }
            )*
        }
    };
}

fleet_tests!(
    launch_then_delete,
    delete_is_idempotent,
    gc_deletes_only_fleets_of_runs_that_are_over,
    maintain_adds_capacity_up_to_the_remaining_work,
    usage_accounts_for_every_instance,
);

async fn ec2_config(ec2: &aws_sdk_ec2::Client, s3: &aws_sdk_s3::Client) -> Ec2Config {
    let (subnets, ami) = support::ec2_network(ec2, 0, &["us-east-1a", "us-east-1b", "us-east-1c"]).await;
    s3.create_bucket().bucket("bin").send().await.unwrap();
    let binary = support::upload_worker(s3, "bin", support::worker_launcher()).await;
    toml::from_str(&format!(
        r#"
subnets = {subnets:?}
amis = {{ x86_64 = "{ami}" }}
{binary}
vcpus = [2, 8]
memory_mib = [4096, 32768]
subnet_overrides = "separate"
"#
    ))
    .unwrap()
}

macro_rules! lease_tests {
    ($($behaviour:ident),* $(,)?) => {
        mod lease_local {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let dir = tempfile::tempdir().unwrap();
                    let path = dir.path().to_path_buf();
                    let open = move || Box::new(LocalLeases::new(path.clone())) as Box<dyn Leases>;
                    // A local lease dies with its holder: no time to wait.
                    lease_suite::$behaviour(&open, "job/step/2024-01-02", std::time::Duration::ZERO).await.unwrap();
                }
            )*
        }
        mod lease_s3_on_moto {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let aws = AwsClients::for_endpoint(&shared_moto().endpoint, "us-east-1").await;
                    let client = aws.s3().await;
                    let bucket = unique("leases-");
                    client.create_bucket().bucket(&bucket).send().await.unwrap();
                    let lifetime = std::time::Duration::from_secs(2);
                    let open = move || Box::new(S3Leases::new(client.clone(), bucket.clone(), "state", lifetime)) as Box<dyn Leases>;
                    lease_suite::$behaviour(&open, "job/step/2024-01-02", lifetime).await.unwrap();
                }
            )*
        }
    };
}

lease_tests!(
    a_held_lease_is_refused_naming_its_holder,
    leases_of_other_names_are_independent,
    renewing_keeps_the_lease,
    a_gone_holders_lease_is_taken_over,
    a_renewal_that_landed_unheard_keeps_the_lease,
    of_runs_racing_for_a_lease_exactly_one_wins,
);

/// An S3 lease taken over after its holder stopped renewing is lost to that holder: its next
/// renewal says so, naming the new holder. (A local lease can't be lost: it lasts as long as its
/// process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_lease_taken_over_is_lost_to_its_old_holder() {
    let aws = AwsClients::for_endpoint(&shared_moto().endpoint, "us-east-1").await;
    let client = aws.s3().await;
    let bucket = unique("leases-");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let leases = S3Leases::new(client, bucket, "state", std::time::Duration::from_secs(1));
    let (a, b) = (lease_suite::holder("run-a"), lease_suite::holder("run-b"));
    let mut first = leases.acquire("j/s/p", &a).await.unwrap();
    // Past its second, and the one S3's whole-second stamps add.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let second = leases.acquire("j/s/p", &b).await.expect("an expired lease is taken over");
    let lost = leases.renew(&mut first, &a).await.expect_err("the old holder has lost it");
    assert!(lost.to_string().contains("lost") && lost.to_string().contains("run-b"), "{lost}");
    // Its release does not free the new holder's lease.
    leases.release(first).await.unwrap();
    let third = leases.acquire("j/s/p", &lease_suite::holder("run-c")).await;
    assert!(matches!(third, Err(runner_backends::lease::LeaseError::Held { .. })), "{third:?}");
    leases.release(second).await.unwrap();
}

/// A holder whose clock runs an hour fast writes an expiry an hour late; S3's own clock (the
/// object's `Last-Modified` and the lease's time to live) is what says the lease is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_lease_expires_by_s3s_clock_whatever_its_holders_clock_said() {
    let aws = AwsClients::for_endpoint(&shared_moto().endpoint, "us-east-1").await;
    let client = aws.s3().await;
    let bucket = unique("leases-");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let mut fast = lease_suite::holder("run-fast-clock");
    (fast.expires_at, fast.ttl_secs) = (now + 3600.0 + 1.0, Some(1.0));
    let body = serde_json::to_vec(&fast).unwrap();
    client.put_object().bucket(&bucket).key("state/leases/j/s/p.json").body(body.into()).send().await.unwrap();
    let leases = S3Leases::new(client, bucket, "state", std::time::Duration::from_secs(1));
    let held = leases.acquire("j/s/p", &lease_suite::holder("run-b")).await;
    assert!(matches!(held, Err(runner_backends::lease::LeaseError::Held { .. })), "live at first: {held:?}");
    // S3 stamps whole seconds, and a lease gets one more: 3 s is past it by S3's clock.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let taken = leases.acquire("j/s/p", &lease_suite::holder("run-b")).await;
    assert!(taken.is_ok(), "over by S3's clock an hour before the holder's expiry: {taken:?}");
    leases.release(taken.unwrap()).await.unwrap();
}
