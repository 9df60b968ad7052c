//! Spot interruption notices from the EC2 instance metadata service (IMDSv2): the
//! instance-action notice (about two minutes before a reclaim) and the rebalance
//! recommendation. `AWS_EC2_METADATA_SERVICE_ENDPOINT` points the client at a stand-in.

use std::time::Duration;

use aws_config::imds::Client;
use tokio::sync::watch;

/// What the instance was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Nothing.
    None,
    /// A rebalance recommendation: stop taking new work, finish what is running.
    Rebalance(String),
    /// The instance will be reclaimed: hand running work back now.
    Terminate(String),
}

/// Facts about the instance, for callbacks and cost reporting.
#[derive(Debug, Clone, Default)]
pub struct InstanceFacts {
    /// Instance id.
    pub instance_id: Option<String>,
    /// Instance type.
    pub instance_type: Option<String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
}

fn client() -> Client {
    Client::builder().connect_timeout(Duration::from_secs(1)).read_timeout(Duration::from_secs(2)).build()
}

/// Reads instance facts (best effort).
pub async fn facts() -> InstanceFacts {
    let c = client();
    let get = |path: &'static str| {
        let c = c.clone();
        async move { c.get(path).await.ok().map(String::from) }
    };
    InstanceFacts {
        instance_id: get("/latest/meta-data/instance-id").await,
        instance_type: get("/latest/meta-data/instance-type").await,
        availability_zone: get("/latest/meta-data/placement/availability-zone").await,
    }
}

/// Polls every `every` until a termination notice arrives; publishes what it sees.
pub fn watch_notices(every: Duration) -> watch::Receiver<Notice> {
    let (tx, rx) = watch::channel(Notice::None);
    tokio::spawn(async move {
        let c = client();
        loop {
            // A 404 (no notice) comes back as an error from the client: that is the quiet case.
            if let Ok(action) = c.get("/latest/meta-data/spot/instance-action").await {
                let _ = tx.send(Notice::Terminate(format!("spot interruption notice: {}", String::from(action))));
                return;
            }
            if let Ok(rebalance) = c.get("/latest/meta-data/events/recommendations/rebalance").await
                && *tx.borrow() == Notice::None
            {
                let _ = tx.send(Notice::Rebalance(format!("rebalance recommendation: {}", String::from(rebalance))));
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    });
    rx
}
