//! The `[pricing]` section of the runner's configuration: prices the user sets, which win over
//! what AWS publishes, and the price of a local core.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Pricing settings. Every price is USD per instance-hour unless its name says core-hour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingConfig {
    /// What a local worker's core costs per hour (default 0: the demo shows the fields, at 0).
    #[serde(default)]
    pub local_core_hour_usd: f64,
    /// What EMR would charge per core-hour for the same local work (default 0).
    #[serde(default)]
    pub local_emr_core_hour_usd: f64,
    /// Spot prices by type (`"m6i.large"`) or by type in a zone (`"m6i.large@us-east-1a"`, which
    /// wins); they replace AWS's spot price history for those instances.
    #[serde(default)]
    pub spot: BTreeMap<String, f64>,
    /// On-demand prices by type; they win over the Price List and the shipped table.
    #[serde(default)]
    pub on_demand: BTreeMap<String, f64>,
    /// EMR charges by type (on top of the on-demand price); they win over the Price List and
    /// the shipped rule.
    #[serde(default)]
    pub emr: BTreeMap<String, f64>,
    /// Whether to ask AWS's Price List API for on-demand and EMR prices (default true; the
    /// shipped table answers when it can't be reached).
    #[serde(default = "yes")]
    pub price_list: bool,
    /// The price of a public IPv4 address per hour (default AWS's $0.005).
    #[serde(default)]
    pub public_ipv4_hour_usd: Option<f64>,
    /// EBS prices per GB-month by volume type (`gp3`, `gp2`, ...); they win over the shipped
    /// us-east-1 prices.
    #[serde(default)]
    pub ebs_gb_month: BTreeMap<String, f64>,
}

fn yes() -> bool {
    true
}

impl PricingConfig {
    /// Checks that every price is a finite amount of at least 0, naming the one that is not.
    pub fn validate(&self) -> anyhow::Result<()> {
        let named = [
            ("local_core_hour_usd", self.local_core_hour_usd),
            ("local_emr_core_hour_usd", self.local_emr_core_hour_usd),
            ("public_ipv4_hour_usd", self.public_ipv4_hour_usd.unwrap_or(0.0)),
        ];
        for (name, v) in named {
            anyhow::ensure!(
                v.is_finite() && v >= 0.0,
                "pricing.{name} = {v}: a price is a number of dollars, 0 or more"
            );
        }
        let tables = [
            ("spot", &self.spot),
            ("on_demand", &self.on_demand),
            ("emr", &self.emr),
            ("ebs_gb_month", &self.ebs_gb_month),
        ];
        for (table, prices) in tables {
            for (key, v) in prices {
                anyhow::ensure!(
                    v.is_finite() && *v >= 0.0,
                    "pricing.{table}.\"{key}\" = {v}: a price is a number of dollars per instance-hour, 0 or more"
                );
            }
        }
        Ok(())
    }

    /// The spot price set for an instance type in a zone, if any.
    pub fn spot_for(&self, instance_type: &str, zone: Option<&str>) -> Option<f64> {
        zone.and_then(|z| self.spot.get(&format!("{instance_type}@{z}")))
            .or_else(|| self.spot.get(instance_type))
            .copied()
    }
}
