//! The behaviour every queue backend must have: one public function per behaviour, each run
//! against the local queue and SQS on moto as a test of its own, so a failure names the
//! behaviour and the backend. Each function names its queues with `prefix`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{QueueBackend, QueueError, QueueOptions};

macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!($($msg)*));
        }
    };
}

fn e(what: &str) -> impl Fn(QueueError) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// A sent message is received once (count 1), gone once deleted, and its queue opens by address.
pub async fn send_receive_delete(b: &dyn QueueBackend, prefix: &str) -> Result<(), String> {
    let q = b.create(&format!("{prefix}-basic"), &QueueOptions::default()).await.map_err(e("create"))?;
    let ids = q.send(&["hello".to_string()]).await.map_err(e("send"))?;
    ensure!(ids.len() == 1, "one id per message");
    let got = q.receive(10, Duration::from_secs(2), Duration::from_secs(30)).await.map_err(e("receive"))?;
    ensure!(got.len() == 1 && got[0].body == "hello", "receives the message: {got:?}");
    ensure!(got[0].receive_count == 1, "first receive counts 1, got {}", got[0].receive_count);
    q.delete(&got[0].receipt).await.map_err(e("delete"))?;
    let again = q.receive(10, Duration::from_secs(0), Duration::from_secs(30)).await.map_err(e("receive"))?;
    ensure!(again.is_empty(), "a deleted message is gone");
    let reopened = b.open(&q.address()).await.map_err(e("open by address"))?;
    ensure!(reopened.name() == q.name(), "open by address finds the same queue");
    Ok(())
}

/// An in-flight message is invisible until its timeout, then returns with count 2 and a new receipt.
pub async fn visibility_hides_and_returns(b: &dyn QueueBackend, prefix: &str) -> Result<(), String> {
    let q = b.create(&format!("{prefix}-vis"), &QueueOptions::default()).await.map_err(e("create"))?;
    q.send(&["m".to_string()]).await.map_err(e("send"))?;
    let first = q.receive(1, Duration::from_secs(2), Duration::from_secs(2)).await.map_err(e("receive"))?;
    ensure!(first.len() == 1, "received");
    let hidden = q.receive(1, Duration::from_secs(0), Duration::from_secs(2)).await.map_err(e("receive"))?;
    ensure!(hidden.is_empty(), "an in-flight message is invisible");
    let depth = q.depth().await.map_err(e("depth"))?;
    ensure!(depth.in_flight == 1 && depth.visible == 0, "depth counts it in flight: {depth:?}");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let back = q.receive(1, Duration::from_secs(2), Duration::from_secs(30)).await.map_err(e("receive"))?;
    ensure!(back.len() == 1 && back[0].receive_count == 2, "it returns after the timeout, count 2: {back:?}");
    ensure!(back[0].receipt != first[0].receipt, "each delivery has its own receipt");
    Ok(())
}

/// Heartbeats keep a message hidden past its timeout; visibility 0 releases it at once.
pub async fn heartbeat_and_release(b: &dyn QueueBackend, prefix: &str) -> Result<(), String> {
    let q = b.create(&format!("{prefix}-hb"), &QueueOptions::default()).await.map_err(e("create"))?;
    q.send(&["m".to_string()]).await.map_err(e("send"))?;
    let got = q.receive(1, Duration::from_secs(2), Duration::from_secs(2)).await.map_err(e("receive"))?;
    ensure!(got.len() == 1, "received");
    // Heartbeats keep it hidden past the original timeout.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        q.set_visibility(&got[0].receipt, Duration::from_secs(2)).await.map_err(e("heartbeat"))?;
    }
    let hidden = q.receive(1, Duration::from_secs(0), Duration::from_secs(2)).await.map_err(e("receive"))?;
    ensure!(hidden.is_empty(), "heartbeats extend the visibility");
    // Visibility 0 releases it at once.
    q.set_visibility(&got[0].receipt, Duration::ZERO).await.map_err(e("release"))?;
    let started = Instant::now();
    let back = q.receive(1, Duration::from_secs(5), Duration::from_secs(30)).await.map_err(e("receive"))?;
    ensure!(back.len() == 1, "a released message is received again");
    ensure!(started.elapsed() < Duration::from_secs(2), "released at once, not after a timeout");
    Ok(())
}

/// After its maximum receives a message moves to the dead-letter queue.
pub async fn dead_letter_after_max_receives(b: &dyn QueueBackend, prefix: &str) -> Result<(), String> {
    let dlq_name = format!("{prefix}-dlq");
    let dlq = b.create(&dlq_name, &QueueOptions::default()).await.map_err(e("create dlq"))?;
    let q = b
        .create(&format!("{prefix}-poison"), &QueueOptions { dead_letter: Some((dlq_name, 2)), ..Default::default() })
        .await
        .map_err(e("create"))?;
    q.send(&["poison".to_string()]).await.map_err(e("send"))?;
    for attempt in 1..=2 {
        let got = q.receive(1, Duration::from_secs(2), Duration::from_secs(30)).await.map_err(e("receive"))?;
        ensure!(got.len() == 1 && got[0].receive_count == attempt, "attempt {attempt}: {got:?}");
        q.set_visibility(&got[0].receipt, Duration::ZERO).await.map_err(e("release"))?;
    }
    let third = q.receive(1, Duration::from_secs(1), Duration::from_secs(30)).await.map_err(e("receive"))?;
    ensure!(third.is_empty(), "after max receives the message is not delivered again: {third:?}");
    let dead = dlq.receive(1, Duration::from_secs(3), Duration::from_secs(30)).await.map_err(e("receive dlq"))?;
    ensure!(dead.len() == 1 && dead[0].body == "poison", "it is in the dead-letter queue: {dead:?}");
    Ok(())
}

/// Creating a queue whose name a leftover holds (a run resumed under its own id after a crash)
/// makes it anew: empty (the crashed attempt's messages are not this attempt's), with the new
/// options.
pub async fn create_over_a_leftover_makes_it_anew(b: &dyn QueueBackend, prefix: &str) -> Result<(), String> {
    let name = format!("{prefix}-left");
    let left = b
        .create(&name, &QueueOptions { visibility: Duration::from_secs(30), dead_letter: None })
        .await
        .map_err(e("create"))?;
    left.send(&["stale".to_string()]).await.map_err(e("send"))?;
    let dlq_name = format!("{prefix}-left-dlq");
    let dlq = b.create(&dlq_name, &QueueOptions::default()).await.map_err(e("create dlq"))?;
    let options = QueueOptions { visibility: Duration::from_secs(60), dead_letter: Some((dlq_name, 1)) };
    let q = b.create(&name, &options).await.map_err(e("create over the leftover"))?;
    let stale = q.receive(10, Duration::from_secs(1), Duration::from_secs(30)).await.map_err(e("receive"))?;
    ensure!(stale.is_empty(), "the leftover's messages are gone: {stale:?}");
    // The new dead-letter setting holds: one receive, and the message is dead.
    q.send(&["m".to_string()]).await.map_err(e("send"))?;
    let got = q.receive(1, Duration::from_secs(2), Duration::from_secs(30)).await.map_err(e("receive"))?;
    ensure!(got.len() == 1, "received: {got:?}");
    q.set_visibility(&got[0].receipt, Duration::ZERO).await.map_err(e("release"))?;
    let again = q.receive(1, Duration::from_secs(1), Duration::from_secs(30)).await.map_err(e("receive"))?;
    ensure!(again.is_empty(), "after one receive the message is not delivered again: {again:?}");
    let dead = dlq.receive(1, Duration::from_secs(3), Duration::from_secs(30)).await.map_err(e("receive dlq"))?;
    ensure!(dead.len() == 1 && dead[0].body == "m", "it is in the new dead-letter queue: {dead:?}");
    Ok(())
}

/// An empty long poll waits, and returns a message sent while it waits.
pub async fn long_poll_waits_for_a_message(b: &dyn QueueBackend, prefix: &str) -> Result<(), String> {
    let q = b.create(&format!("{prefix}-poll"), &QueueOptions::default()).await.map_err(e("create"))?;
    let started = Instant::now();
    let none = q.receive(1, Duration::from_secs(1), Duration::from_secs(30)).await.map_err(e("receive"))?;
    ensure!(none.is_empty() && started.elapsed() >= Duration::from_millis(900), "an empty long poll waits");
    let sender = q.clone();
    let send = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        sender.send(&["late".to_string()]).await
    });
    let got = q.receive(1, Duration::from_secs(5), Duration::from_secs(30)).await.map_err(e("receive"))?;
    ensure!(got.len() == 1 && got[0].body == "late", "a long poll returns a message sent while it waits");
    send.await.map_err(|x| x.to_string())?.map_err(e("send"))?;
    Ok(())
}

/// Many messages arrive, none twice while in flight.
pub async fn many_messages_each_delivered_once(b: &dyn QueueBackend, prefix: &str) -> Result<(), String> {
    let q = b.create(&format!("{prefix}-many"), &QueueOptions::default()).await.map_err(e("create"))?;
    let bodies: Vec<String> = (0..35).map(|i| format!("m{i}")).collect();
    q.send(&bodies).await.map_err(e("send"))?;
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < bodies.len() && Instant::now() < deadline {
        for m in q.receive(10, Duration::from_secs(1), Duration::from_secs(60)).await.map_err(e("receive"))? {
            ensure!(seen.insert(m.body.clone()), "{} delivered twice while in flight", m.body);
            q.delete(&m.receipt).await.map_err(e("delete"))?;
        }
    }
    ensure!(seen.len() == bodies.len(), "all {} messages arrive, got {}", bodies.len(), seen.len());
    Ok(())
}

/// A message over the size limit is refused before it is sent.
pub async fn size_limit(b: &dyn QueueBackend, prefix: &str) -> Result<(), String> {
    let q = b.create(&format!("{prefix}-size"), &QueueOptions::default()).await.map_err(e("create"))?;
    match q.send(&["x".repeat(super::MAX_MESSAGE_BYTES + 1)]).await {
        Err(QueueError::TooLarge { .. }) => Ok(()),
        other => Err(format!("an oversized message is refused before sending: {other:?}")),
    }
}

/// `list` finds exactly the queues whose name starts with the prefix, and no deleted one.
pub async fn list_finds_queues_by_prefix(b: &dyn QueueBackend, prefix: &str) -> Result<(), String> {
    let mine = [format!("{prefix}-listed-a"), format!("{prefix}-listed-b")];
    for name in &mine {
        b.create(name, &QueueOptions::default()).await.map_err(e("create"))?;
    }
    b.create(&format!("{prefix}-other"), &QueueOptions::default()).await.map_err(e("create"))?;
    let listed = b.list(&format!("{prefix}-listed-")).await.map_err(e("list"))?;
    ensure!(listed == mine, "lists the two queues with the prefix, sorted: {listed:?}");
    b.delete(&mine[0]).await.map_err(e("delete"))?;
    let listed = b.list(&format!("{prefix}-listed-")).await.map_err(e("list"))?;
    ensure!(listed == mine[1..], "a deleted queue is not listed: {listed:?}");
    Ok(())
}
