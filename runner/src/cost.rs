//! A cost estimate for a run: item time × vCPUs per item × a price per vCPU-hour, for spot and
//! for the EMR on-demand equivalent. It is an estimate from configured rates, not a bill.

use serde::{Deserialize, Serialize};

/// Price assumptions, USD per vCPU-hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    /// Spot price (default: a typical m6i/m7g spot price, $0.0125 per vCPU-hour).
    #[serde(default = "default_spot")]
    pub spot_per_vcpu_hour: f64,
    /// EC2 on-demand plus the EMR charge (default: $0.048 + $0.012 per vCPU-hour).
    #[serde(default = "default_emr")]
    pub emr_per_vcpu_hour: f64,
    /// vCPUs one item uses.
    #[serde(default = "default_vcpus")]
    pub vcpus_per_item: f64,
}

fn default_spot() -> f64 {
    0.0125
}
fn default_emr() -> f64 {
    0.060
}
fn default_vcpus() -> f64 {
    2.0
}

impl Default for Pricing {
    fn default() -> Self {
        Self { spot_per_vcpu_hour: default_spot(), emr_per_vcpu_hour: default_emr(), vcpus_per_item: default_vcpus() }
    }
}

/// The estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// vCPU-hours used by items.
    pub vcpu_hours: f64,
    /// On spot.
    pub spot_usd: f64,
    /// On EMR on-demand.
    pub emr_usd: f64,
}

impl Pricing {
    /// Estimates from the total engine seconds of a run's items.
    pub fn estimate(&self, item_seconds: f64) -> Estimate {
        let vcpu_hours = item_seconds * self.vcpus_per_item / 3600.0;
        Estimate {
            vcpu_hours,
            spot_usd: vcpu_hours * self.spot_per_vcpu_hour,
            emr_usd: vcpu_hours * self.emr_per_vcpu_hour,
        }
    }
}
