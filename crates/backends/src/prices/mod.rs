//! Prices from AWS, as AWS publishes them: the spot price history of an instance type in one
//! zone ([`spot`]), and the on-demand and EMR prices of a type in a region from the Price List
//! API ([`price_list`]). What to do with them (the bill, the fallbacks, the overrides) is the
//! runner's business.

pub mod price_list;
pub mod spot;

/// Why a price could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// AWS refused or could not be reached.
    #[error("{operation}: {detail}")]
    Provider {
        /// The call.
        operation: &'static str,
        /// AWS's explanation.
        detail: String,
    },
    /// AWS answered, without this price.
    #[error("the Price List has no {what} price for {instance_type} in {region}")]
    NotListed {
        /// `on-demand` or `EMR`.
        what: &'static str,
        /// The instance type.
        instance_type: String,
        /// The region.
        region: String,
    },
}

/// Result alias.
pub type Result<T, E = PriceError> = std::result::Result<T, E>;

/// A price in effect from a moment on, in USD per instance-hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PricePoint {
    /// From when (Unix seconds).
    pub from: f64,
    /// USD per instance-hour.
    pub usd_per_hour: f64,
}
