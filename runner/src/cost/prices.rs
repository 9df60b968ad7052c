//! Finds the price of every instance a run used, each from the best source there is: the
//! user's `[pricing]` first, then AWS (the spot price history of the instance's type and zone
//! over its life; the Price List for on-demand and EMR prices), then the shipped table. A price
//! none of them has stays unknown, and the bill says so.

use std::collections::BTreeMap;

use runner_backends::fleet::{Market, Usage};
use runner_backends::prices::{PricePoint, price_list, spot};
use tracing::warn;

use super::config::PricingConfig;
use super::table::Table;

/// Where a price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The `[pricing]` configuration.
    Config,
    /// `DescribeSpotPriceHistory`.
    SpotHistory,
    /// AWS's Price List API.
    PriceList,
    /// The table shipped with the runner.
    Table,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Config => "config",
            Self::SpotHistory => "spot price history",
            Self::PriceList => "price list",
            Self::Table => "shipped table",
        })
    }
}

/// A price per instance-hour and its source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Priced {
    /// USD per instance-hour.
    pub usd_per_hour: f64,
    /// Where it came from.
    pub source: Source,
}

/// The prices a bill needs.
#[derive(Debug, Clone, Default)]
pub struct Prices {
    /// Spot price changes by (type, zone), oldest first, and their source.
    pub spot: BTreeMap<(String, String), (Vec<PricePoint>, Source)>,
    /// On-demand price by type.
    pub on_demand: BTreeMap<String, Priced>,
    /// EMR charge by type.
    pub emr: BTreeMap<String, Priced>,
    /// USD per local core-hour, and what EMR would charge for it.
    pub local_core_hour: f64,
    /// What EMR would charge per local core-hour.
    pub local_emr_core_hour: f64,
    /// USD per public IPv4 address-hour.
    pub public_ipv4_hour: f64,
    /// USD per GB-month of EBS by volume type.
    pub ebs_gb_month: BTreeMap<String, f64>,
}

/// What AWS access the resolution may use.
pub struct Aws<'a> {
    /// For the spot price history.
    pub ec2: &'a aws_sdk_ec2::Client,
    /// For the Price List, when it may be asked.
    pub pricing: Option<&'a aws_sdk_pricing::Client>,
    /// The fleet's region.
    pub region: String,
}

impl Prices {
    /// The prices of everything in `usage`.
    pub async fn resolve(config: &PricingConfig, usage: &[Usage], aws: Option<Aws<'_>>) -> Self {
        let mut ebs: BTreeMap<String, f64> =
            super::charges::EBS_USD_PER_GB_MONTH.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        ebs.extend(config.ebs_gb_month.clone());
        let mut prices = Self {
            local_core_hour: config.local_core_hour_usd,
            local_emr_core_hour: config.local_emr_core_hour_usd,
            public_ipv4_hour: config.public_ipv4_hour_usd.unwrap_or(super::charges::PUBLIC_IPV4_USD_PER_HOUR),
            ebs_gb_month: ebs,
            ..Self::default()
        };
        // Each spot (type, zone), over the span of its instances' lives.
        let mut spans: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
        let mut types: BTreeMap<String, usize> = BTreeMap::new();
        for u in usage.iter().filter(|u| u.market != Market::Local) {
            types.insert(u.instance_type.clone(), u.vcpus);
            if u.market == Market::Spot {
                let zone = u.availability_zone.clone().unwrap_or_default();
                let span = spans.entry((u.instance_type.clone(), zone)).or_insert((u.launched_at, u.ended_at));
                span.0 = span.0.min(u.launched_at);
                // The minimum billed minute may run past the recorded end.
                span.1 = span.1.max(u.ended_at).max(u.launched_at + 60.0);
            }
        }
        for ((t, zone), (start, end)) in spans {
            let points = if let Some(p) = config.spot_for(&t, Some(zone.as_str()).filter(|z| !z.is_empty())) {
                Some((vec![PricePoint { from: start, usd_per_hour: p }], Source::Config))
            } else if let Some(aws) = &aws {
                match spot::history(aws.ec2, &t, &zone, start, end).await {
                    Ok(p) if !p.is_empty() => Some((p, Source::SpotHistory)),
                    Ok(_) => {
                        warn!("AWS has no spot price for {t} in {zone}; set pricing.spot.\"{t}\"");
                        None
                    }
                    Err(e) => {
                        warn!("reading the spot price of {t} in {zone}: {e}; set pricing.spot.\"{t}\"");
                        None
                    }
                }
            } else {
                None
            };
            if let Some(p) = points {
                prices.spot.insert((t, zone), p);
            }
        }
        let table = Table::shipped();
        let mut price_list = aws.as_ref().and_then(|a| a.pricing.filter(|_| config.price_list));
        let region = aws.as_ref().map(|a| a.region.clone()).unwrap_or_default();
        for (t, vcpus) in types {
            let listed = match price_list {
                Some(client) => match listed_prices(client, &region, &t).await {
                    Ok(found) => found,
                    Err(e) => {
                        // One failure says the Price List can't be reached from here: stop asking.
                        warn!(
                            "the Price List API can't be asked ({e}); using the shipped table of {} prices",
                            table.as_of
                        );
                        price_list = None;
                        (None, None)
                    }
                },
                None => (None, None),
            };
            let on_demand = config
                .on_demand
                .get(&t)
                .map(|p| Priced { usd_per_hour: *p, source: Source::Config })
                .or(listed.0.map(|p| Priced { usd_per_hour: p, source: Source::PriceList }))
                .or_else(|| {
                    table.on_demand(&region, &t, vcpus).map(|p| Priced { usd_per_hour: p, source: Source::Table })
                });
            let emr = config
                .emr
                .get(&t)
                .map(|p| Priced { usd_per_hour: *p, source: Source::Config })
                .or(listed.1.map(|p| Priced { usd_per_hour: p, source: Source::PriceList }))
                .or_else(|| {
                    on_demand.map(|od| Priced { usd_per_hour: table.emr(od.usd_per_hour), source: Source::Table })
                });
            if let Some(p) = on_demand {
                prices.on_demand.insert(t.clone(), p);
            }
            if let Some(p) = emr {
                prices.emr.insert(t, p);
            }
        }
        prices
    }
}

/// The Price List's on-demand and EMR prices of a type; an error only when the Price List
/// itself can't be asked (a type it does not list is `None`).
async fn listed_prices(
    client: &aws_sdk_pricing::Client,
    region: &str,
    t: &str,
) -> Result<(Option<f64>, Option<f64>), runner_backends::prices::PriceError> {
    use runner_backends::prices::PriceError::NotListed;
    let od = match price_list::on_demand(client, region, t).await {
        Ok(p) => Some(p),
        Err(NotListed { .. }) => None,
        Err(e) => return Err(e),
    };
    let emr = match price_list::emr(client, region, t).await {
        Ok(p) => Some(p),
        Err(NotListed { .. }) => None,
        Err(e) => return Err(e),
    };
    Ok((od, emr))
}
