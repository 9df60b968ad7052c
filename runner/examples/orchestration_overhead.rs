//! Benchmark: orchestration overhead per work item. No-op items go through a queue backend
//! exactly as the orchestrator and workers move them: the orchestrator feeds the work queue
//! through the same `Feeder` and window as `runner run`; workers receive, send a callback and
//! delete; the orchestrator receives, deduplicates and deletes callbacks, topping the work
//! queue up as items finish. Prints milliseconds per item as JSON.
//!
//! Arguments: the backend (`local`, SQLite in a temp dir, or `sqs`, through the standard AWS
//! chain, e.g. moto via `AWS_ENDPOINT_URL`), the item count, the worker tasks, and the window
//! (default: the orchestrator's default for that many workers; 0 enqueues everything at once).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runner_backends::queue::{LocalQueues, QueueBackend, QueueOptions, SqsQueues};
use runner_core::feed::{self, Feeder};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "local".into());
    let items: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let workers: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(4);
    let window = match args.next().and_then(|s| s.parse::<usize>().ok()) {
        None => feed::default_window(workers),
        Some(0) => items,
        Some(w) => w,
    };
    let dir = tempfile::tempdir()?;
    let backend: Arc<dyn QueueBackend> = match kind.as_str() {
        "local" => Arc::new(LocalQueues::new(dir.path().join("q.sqlite"))),
        "sqs" => Arc::new(SqsQueues::new(runner_backends::aws::AwsClients::new().sqs().await)),
        other => anyhow::bail!("unknown backend {other}"),
    };
    let suffix = std::process::id();
    let work = backend.create(&format!("bench-work-{suffix}"), &QueueOptions::default()).await?;
    let callbacks = backend.create(&format!("bench-cb-{suffix}"), &QueueOptions::default()).await?;
    let started = Instant::now();
    let bodies: Vec<String> = (0..items).map(|i| format!(r#"{{"item":"{i:08}","payload":"no-op"}}"#)).collect();
    let mut feeder = Feeder::new(bodies, window);
    feeder.top_up(&*work, 0).await?;
    let enqueued = started.elapsed();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (work, callbacks) = (work.clone(), callbacks.clone());
        handles.push(tokio::spawn(async move {
            let mut idle = 0;
            while idle < 3 {
                let got = work.receive(10, Duration::from_millis(200), Duration::from_secs(60)).await?;
                if got.is_empty() {
                    idle += 1;
                    continue;
                }
                idle = 0;
                // One callback and one delete per item, as the worker loop does.
                for m in got {
                    callbacks.send(&[m.body.replace("no-op", "done")]).await?;
                    work.delete(&m.receipt).await?;
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    let mut done = BTreeSet::new();
    while done.len() < items {
        for m in callbacks.receive(10, Duration::from_secs(1), Duration::from_secs(30)).await? {
            done.insert(m.body.clone());
            callbacks.delete(&m.receipt).await?;
        }
        feeder.top_up(&*work, done.len()).await?;
    }
    let total = started.elapsed();
    for h in handles {
        h.abort();
    }
    let _ = backend.delete(work.name()).await;
    let _ = backend.delete(callbacks.name()).await;
    println!(
        r#"{{"backend": "{kind}", "items": {items}, "workers": {workers}, "window": {window}, "total_seconds": {:.3}, "enqueue_seconds": {:.3}, "ms_per_item": {:.3}}}"#,
        total.as_secs_f64(),
        enqueued.as_secs_f64(),
        total.as_secs_f64() * 1000.0 / items as f64
    );
    Ok(())
}
