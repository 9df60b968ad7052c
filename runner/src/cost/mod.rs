//! What a run cost, measured: every instance its fleets had (from running to end, boot and idle
//! included), its public IPv4 address and its root volume, priced as AWS charges them, beside
//! what the same would have cost on EMR (on-demand plus the EMR charge). [`config`] holds the
//! user's settings, [`table`] the on-demand prices shipped with the project, [`prices`] finds
//! each price, [`charges`] states AWS's rules, and [`bill`] adds it up.

pub mod bill;
pub mod charges;
pub mod config;
pub mod prices;
pub mod table;

pub use bill::{Bill, Line, bill};
pub use config::PricingConfig;
pub use prices::{Prices, Source};

use runner_backends::aws::AwsClients;
use runner_backends::fleet::Market;
use runner_core::summary::RunSummary;

/// Each step's bill, in step order (`None` where the step's usage could not be read). Prices
/// are found once for the whole run; AWS is asked about EC2 instances only.
pub async fn step_bills(config: &PricingConfig, summary: &RunSummary, aws: &AwsClients) -> Vec<Option<Bill>> {
    let all: Vec<_> = summary.steps.iter().filter_map(|s| s.usage.as_ref()).flatten().cloned().collect();
    let prices = if all.iter().any(|u| u.market != Market::Local) {
        let ec2 = aws.ec2().await;
        let pricing = aws.pricing().await;
        let region = aws.region().await.unwrap_or_default();
        Prices::resolve(config, &all, Some(prices::Aws { ec2: &ec2, pricing: Some(&pricing), region })).await
    } else {
        Prices::resolve(config, &all, None).await
    };
    summary.steps.iter().map(|s| s.usage.as_ref().map(|u| bill(u, &prices))).collect()
}
