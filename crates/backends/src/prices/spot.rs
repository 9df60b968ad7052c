//! The spot price history of one instance type in one availability zone, from
//! `DescribeSpotPriceHistory` (Linux/UNIX). AWS answers with the price changes inside the window
//! and the last change before it, so the price in effect at the window's start is known.

use aws_sdk_ec2::error::DisplayErrorContext;
use aws_sdk_ec2::primitives::DateTime;
use aws_sdk_ec2::types::InstanceType;

use super::{PriceError, PricePoint, Result};

/// The price changes of `instance_type` in `zone` that cover `[start, end]` (Unix seconds),
/// oldest first.
pub async fn history(
    ec2: &aws_sdk_ec2::Client,
    instance_type: &str,
    zone: &str,
    start: f64,
    end: f64,
) -> Result<Vec<PricePoint>> {
    let mut pages = ec2
        .describe_spot_price_history()
        .instance_types(InstanceType::from(instance_type))
        .availability_zone(zone)
        .product_descriptions("Linux/UNIX")
        .start_time(DateTime::from_secs_f64(start))
        .end_time(DateTime::from_secs_f64(end))
        .into_paginator()
        .send();
    let mut points = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| PriceError::Provider {
            operation: "DescribeSpotPriceHistory",
            detail: DisplayErrorContext(&e).to_string(),
        })?;
        for p in page.spot_price_history() {
            // Another product's or zone's answer (an endpoint that ignores a filter) is not ours.
            if p.availability_zone().is_some_and(|z| z != zone)
                || p.instance_type().is_some_and(|t| t.as_str() != instance_type)
            {
                continue;
            }
            let (Some(at), Some(price)) = (p.timestamp(), p.spot_price().and_then(|s| s.parse::<f64>().ok())) else {
                continue;
            };
            points.push(PricePoint { from: at.as_secs_f64(), usd_per_hour: price });
        }
    }
    points.sort_by(|a, b| a.from.total_cmp(&b.from));
    Ok(points)
}
