//! The on-demand price table shipped with the runner (`on_demand_us_east_1.toml`, with its
//! source and date), and EMR's pricing rule. It answers only for its own region and for the
//! families it lists: anything else is left unpriced rather than guessed.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// The region its prices are for.
    pub region: String,
    /// When they were read.
    pub as_of: String,
    /// EMR's charge as a share of the on-demand price.
    pub emr_share: f64,
    /// The most EMR charges per instance-hour.
    pub emr_cap_usd_per_hour: f64,
    /// On-demand USD per vCPU-hour, by instance family.
    pub usd_per_vcpu_hour: BTreeMap<String, f64>,
}

const SHIPPED: &str = include_str!("on_demand_us_east_1.toml");

impl Table {
    /// The table shipped with the runner.
    pub fn shipped() -> Self {
        // The file is part of the build and a unit test parses it.
        toml::from_str(SHIPPED).unwrap_or_else(|e| panic!("the shipped price table does not parse: {e}"))
    }

    /// The on-demand price of `instance_type` with `vcpus` vCPUs in `region`, if listed.
    pub fn on_demand(&self, region: &str, instance_type: &str, vcpus: usize) -> Option<f64> {
        if region != self.region {
            return None;
        }
        let (family, size) = instance_type.split_once('.')?;
        // Metal sizes carry no virtualisation and are priced apart; they are not in the table.
        if size.starts_with("metal") {
            return None;
        }
        self.usd_per_vcpu_hour.get(family).map(|p| p * vcpus as f64)
    }

    /// EMR's charge for an instance whose on-demand price is `on_demand`.
    pub fn emr(&self, on_demand: f64) -> f64 {
        (on_demand * self.emr_share).min(self.emr_cap_usd_per_hour)
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn the_shipped_table_prices_a_family_by_its_vcpus() {
        let t = Table::shipped();
        assert_eq!(t.region, "us-east-1");
        let large = t.on_demand("us-east-1", "m6i.large", 2).unwrap();
        assert!((large - 0.096).abs() < 1e-9, "{large}");
        let big = t.on_demand("us-east-1", "m6i.4xlarge", 16).unwrap();
        assert!((big - 0.768).abs() < 1e-9, "{big}");
        assert_eq!(t.on_demand("eu-west-1", "m6i.large", 2), None, "another region is not guessed");
        assert_eq!(t.on_demand("us-east-1", "x2iezn.large", 2), None, "an unlisted family is not guessed");
        assert_eq!(t.on_demand("us-east-1", "m6i.metal", 128), None);
    }

    #[test]
    fn emr_charges_a_quarter_up_to_its_cap() {
        let t = Table::shipped();
        assert!((t.emr(0.096) - 0.024).abs() < 1e-12);
        assert!((t.emr(3.072) - 0.27).abs() < 1e-12, "the largest sizes pay the cap");
    }
}
