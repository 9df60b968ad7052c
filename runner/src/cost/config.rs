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
        ];
        for (name, v) in named {
            anyhow::ensure!(
                v.is_finite() && v >= 0.0,
                "pricing.{name} = {v}: a price is a number of dollars, 0 or more"
            );
        }
        for (table, prices) in [("spot", &self.spot), ("on_demand", &self.on_demand), ("emr", &self.emr)] {
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
