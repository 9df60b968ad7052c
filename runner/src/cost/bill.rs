//! The bill: every instance's billed seconds priced at what it cost, with its public IPv4
//! address and root volume, grouped by type, zone and market, beside the EMR equivalent of the
//! same (the same instance-hours on-demand plus EMR's charge, and the same addresses and
//! volumes). The rules of what AWS bills are in [`super::charges`]: from running to the end, per
//! second with a one-minute minimum; boot and idle time count, and so does every attempt that
//! ran, failed and interrupted ones too; a spot instance EC2 interrupts in its first hour is
//! free.

use std::collections::{BTreeMap, BTreeSet};

use runner_backends::fleet::{Market, Usage};
use runner_backends::prices::PricePoint;
use serde::Serialize;

use super::charges;
use super::prices::{Prices, Source};

/// The instances of one type, zone and market.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// Instance type (`local` for worker processes).
    pub instance_type: String,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// How they were bought.
    pub market: Market,
    /// How many.
    pub instances: usize,
    /// Billed seconds, summed.
    pub seconds: f64,
    /// Of `instances`, the spot instances EC2 interrupted in their first hour: not charged.
    pub waived: usize,
    /// The public IPv4 addresses' part of `cost_usd`.
    pub public_ipv4_usd: f64,
    /// The root volumes' part of `cost_usd`, if every volume's price was known.
    pub root_volume_usd: Option<f64>,
    /// What they cost, if every price was known.
    pub cost_usd: Option<f64>,
    /// What EMR would have charged for the same instance-hours.
    pub emr_equivalent_usd: Option<f64>,
    /// Where the price came from.
    pub price_source: String,
}

impl Line {
    /// The average price per instance-hour it paid.
    pub fn usd_per_hour(&self) -> Option<f64> {
        self.cost_usd.filter(|_| self.seconds > 0.0).map(|c| c / (self.seconds / 3600.0))
    }
}

/// A step's (or a run's) bill.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bill {
    /// What it cost; `None` when a price is unknown (see `unpriced`).
    pub cost_usd: Option<f64>,
    /// The same instance-hours on on-demand instances plus the EMR charge; `None` when a price
    /// is unknown.
    pub emr_equivalent_usd: Option<f64>,
    /// Billed instance-hours.
    pub instance_hours: f64,
    /// By type, zone and market.
    pub lines: Vec<Line>,
    /// The prices that were not found, each naming the setting that would supply it.
    pub unpriced: BTreeSet<String>,
}

impl Bill {
    /// The share of the EMR equivalent saved: 0.85 means the run cost 15 % of what EMR would.
    /// 0 when there was nothing to compare (no EMR price, or nothing used).
    pub fn saving_ratio(&self) -> Option<f64> {
        match (self.cost_usd, self.emr_equivalent_usd) {
            (Some(c), Some(e)) if e > 0.0 => Some(1.0 - c / e),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        }
    }

    /// This bill scaled by `share` (a part of the work).
    #[must_use]
    pub fn share(&self, share: f64) -> Self {
        let mut b = self.clone();
        b.cost_usd = b.cost_usd.map(|c| c * share);
        b.emr_equivalent_usd = b.emr_equivalent_usd.map(|c| c * share);
        b.instance_hours *= share;
        for l in &mut b.lines {
            l.seconds *= share;
            l.cost_usd = l.cost_usd.map(|c| c * share);
            l.emr_equivalent_usd = l.emr_equivalent_usd.map(|c| c * share);
            l.public_ipv4_usd *= share;
            l.root_volume_usd = l.root_volume_usd.map(|c| c * share);
        }
        b
    }

    /// Adds another bill (another step's) to this one.
    pub fn add(&mut self, other: &Self) {
        let sum = |a: Option<f64>, b: Option<f64>| Some(a? + b?);
        self.cost_usd = sum(self.cost_usd, other.cost_usd);
        self.emr_equivalent_usd = sum(self.emr_equivalent_usd, other.emr_equivalent_usd);
        self.instance_hours += other.instance_hours;
        self.lines.extend(other.lines.iter().cloned());
        self.unpriced.extend(other.unpriced.iter().cloned());
    }
}

/// USD for the hours between `start` and `end` under a price that changes at each point; the
/// first point's price also holds before it.
pub fn integrate(points: &[PricePoint], start: f64, end: f64) -> Option<f64> {
    points.first()?;
    let mut usd = 0.0;
    for (i, p) in points.iter().enumerate() {
        let from = if i == 0 { f64::NEG_INFINITY } else { p.from };
        let until = points.get(i + 1).map_or(f64::INFINITY, |n| n.from);
        let overlap = end.min(until) - start.max(from);
        if overlap > 0.0 {
            usd += overlap / 3600.0 * p.usd_per_hour;
        }
    }
    Some(usd)
}

/// The bill for these instances at these prices.
pub fn bill(usage: &[Usage], prices: &Prices) -> Bill {
    type Key = (String, Option<String>, Market);
    let mut lines: BTreeMap<Key, Line> = BTreeMap::new();
    let mut unpriced = BTreeSet::new();
    for u in usage {
        let seconds = match u.market {
            Market::Local => u.seconds(),
            Market::Spot | Market::OnDemand => charges::instance_seconds(u),
        };
        let hours = seconds / 3600.0;
        // What EMR would have charged for the same running time (nothing is waived there).
        let emr_hours = charges::running_seconds(u).max(charges::MINIMUM_SECONDS) / 3600.0;
        let ipv4 = charges::public_ipv4_usd(u, prices.public_ipv4_hour);
        let volume = charges::root_volume_usd(u, &prices.ebs_gb_month)
            .map_err(|kind| unpriced.insert(format!("EBS price of {kind} volumes (pricing.ebs_gb_month.\"{kind}\")")))
            .ok();
        let (cost, emr, source) = match u.market {
            Market::Local => {
                let cores = u.vcpus as f64;
                (
                    Some(prices.local_core_hour * cores * hours),
                    Some(prices.local_emr_core_hour * cores * hours),
                    "config".to_string(),
                )
            }
            Market::Spot | Market::OnDemand => {
                let on_demand = prices.on_demand.get(&u.instance_type);
                let emr_charge = prices.emr.get(&u.instance_type);
                let zone = u.availability_zone.clone().unwrap_or_default();
                let start = charges::running_from(u);
                let (cost, source) = if u.market == Market::Spot {
                    match prices.spot.get(&(u.instance_type.clone(), zone)) {
                        Some((points, source)) => (integrate(points, start, start + seconds), *source),
                        None => {
                            unpriced.insert(format!(
                                "spot price of {} (pricing.spot.\"{}\")",
                                u.instance_type, u.instance_type
                            ));
                            (None, Source::Config)
                        }
                    }
                } else {
                    (on_demand.map(|p| p.usd_per_hour * hours), on_demand.map_or(Source::Config, |p| p.source))
                };
                if on_demand.is_none() {
                    unpriced.insert(format!(
                        "on-demand price of {} (pricing.on_demand.\"{}\")",
                        u.instance_type, u.instance_type
                    ));
                }
                if emr_charge.is_none() {
                    unpriced.insert(format!("EMR charge of {} (pricing.emr.\"{}\")", u.instance_type, u.instance_type));
                }
                let extras = volume.map(|v| v + ipv4);
                let emr = match (on_demand, emr_charge) {
                    (Some(od), Some(e)) => Some((od.usd_per_hour + e.usd_per_hour) * emr_hours),
                    _ => None,
                };
                let (cost, emr) = (cost.zip(extras).map(|(c, x)| c + x), emr.zip(extras).map(|(e, x)| e + x));
                let mut label = source.to_string();
                if let Some(od) = on_demand.filter(|od| od.source != source) {
                    label = format!("{label}; on-demand: {}", od.source);
                }
                (cost, emr, label)
            }
        };
        let key = (u.instance_type.clone(), u.availability_zone.clone(), u.market);
        let line = lines.entry(key).or_insert_with(|| Line {
            instance_type: u.instance_type.clone(),
            availability_zone: u.availability_zone.clone(),
            market: u.market,
            instances: 0,
            seconds: 0.0,
            waived: 0,
            public_ipv4_usd: 0.0,
            root_volume_usd: Some(0.0),
            cost_usd: Some(0.0),
            emr_equivalent_usd: Some(0.0),
            price_source: source,
        });
        line.instances += 1;
        line.seconds += seconds;
        line.waived += usize::from(u.market == Market::Spot && charges::waived(u));
        line.public_ipv4_usd += ipv4;
        line.root_volume_usd = line.root_volume_usd.zip(volume).map(|(a, b)| a + b);
        line.cost_usd = line.cost_usd.zip(cost).map(|(a, b)| a + b);
        line.emr_equivalent_usd = line.emr_equivalent_usd.zip(emr).map(|(a, b)| a + b);
    }
    let lines: Vec<Line> = lines.into_values().collect();
    Bill {
        cost_usd: lines.iter().map(|l| l.cost_usd).sum(),
        emr_equivalent_usd: lines.iter().map(|l| l.emr_equivalent_usd).sum(),
        instance_hours: lines.iter().map(|l| l.seconds).sum::<f64>() / 3600.0,
        lines,
        unpriced,
    }
}

#[cfg(test)]
mod tests {
    use runner_backends::fleet::{Market, Usage};
    use runner_backends::prices::PricePoint;

    use super::{bill, integrate};
    use crate::cost::prices::{Priced, Prices, Source};

    fn usage(id: &str, t: &str, zone: Option<&str>, market: Market, vcpus: usize, from: f64, to: f64) -> Usage {
        Usage {
            id: id.into(),
            instance_type: t.into(),
            availability_zone: zone.map(String::from),
            market,
            vcpus,
            launched_at: from,
            ended_at: to,
            ended: true,
            interrupted: false,
            public_ipv4: false,
            root_volume: None,
            running_at: None,
        }
    }

    fn cents(x: Option<f64>) -> i64 {
        (x.expect("priced") * 100.0).round() as i64
    }

    fn prices() -> Prices {
        let mut p = Prices::default();
        p.spot.insert(
            ("m6i.large".into(), "us-east-1a".into()),
            (
                vec![PricePoint { from: 0.0, usd_per_hour: 0.04 }, PricePoint { from: 1900.0, usd_per_hour: 0.06 }],
                Source::SpotHistory,
            ),
        );
        p.on_demand.insert("m6i.large".into(), Priced { usd_per_hour: 0.096, source: Source::Table });
        p.emr.insert("m6i.large".into(), Priced { usd_per_hour: 0.024, source: Source::Table });
        p
    }

    #[test]
    fn a_spot_price_change_is_paid_from_its_moment() {
        // 900 s at $0.04 and 900 s at $0.06.
        let usd = integrate(&prices().spot.values().next().unwrap().0, 1000.0, 2800.0).unwrap();
        assert!((usd - (0.01 + 0.015)).abs() < 1e-12, "{usd}");
        // Before the first known change, its price holds.
        let early = integrate(&[PricePoint { from: 5000.0, usd_per_hour: 3.6 }], 0.0, 100.0).unwrap();
        assert!((early - 0.1).abs() < 1e-12, "{early}");
        assert_eq!(integrate(&[], 0.0, 1.0), None);
    }

    #[test]
    fn spot_instances_cost_their_price_history_and_emr_the_same_hours_on_demand() {
        // Two instances: half an hour across the price change, and 10 s billed as a minute
        // (at $0.06, after the change).
        let used = [
            usage("i-1", "m6i.large", Some("us-east-1a"), Market::Spot, 2, 1000.0, 2800.0),
            usage("i-2", "m6i.large", Some("us-east-1a"), Market::Spot, 2, 3000.0, 3010.0),
        ];
        let b = bill(&used, &prices());
        // $0.025 + 60 s at $0.06/h ($0.001) = $0.026; EMR: 1860 s at $0.12/h = $0.062.
        assert!((b.cost_usd.unwrap() - 0.026).abs() < 1e-9, "{b:?}");
        assert!((b.emr_equivalent_usd.unwrap() - 0.062).abs() < 1e-9, "{b:?}");
        assert!((b.instance_hours - 1860.0 / 3600.0).abs() < 1e-12);
        assert!((b.saving_ratio().unwrap() - (1.0 - 0.026 / 0.062)).abs() < 1e-9);
        assert_eq!(b.lines.len(), 1);
        assert_eq!(b.lines[0].instances, 2);
        assert!(b.unpriced.is_empty(), "{:?}", b.unpriced);
    }

    #[test]
    fn the_worked_example_in_docs_architecture() {
        // 12:00:00 is t = 0; the spot price moves from $0.035 to $0.038 at 12:05:00.
        let mut p = prices();
        p.spot.insert(
            ("m6i.large".into(), "us-east-1a".into()),
            (
                vec![
                    PricePoint { from: -3600.0, usd_per_hour: 0.035 },
                    PricePoint { from: 300.0, usd_per_hour: 0.038 },
                ],
                Source::SpotHistory,
            ),
        );
        let zone = Some("us-east-1a");
        let used = [
            usage("i-1", "m6i.large", zone, Market::Spot, 2, 0.0, 600.0),
            usage("i-2", "m6i.large", zone, Market::Spot, 2, 5.0, 575.0),
            usage("i-3", "m6i.large", zone, Market::Spot, 2, 480.0, 520.0),
        ];
        let b = bill(&used, &p);
        assert!((b.cost_usd.unwrap() - 0.0124875).abs() < 1e-12, "{b:?}");
        assert!((b.emr_equivalent_usd.unwrap() - 0.041).abs() < 1e-12, "{b:?}");
        assert!((b.instance_hours * 3600.0 - 1230.0).abs() < 1e-9);
        assert_eq!((b.saving_ratio().unwrap() * 1000.0).round(), 695.0);
    }

    #[test]
    fn the_bill_adds_addresses_and_volumes_and_waives_an_early_interruption() {
        use runner_backends::fleet::Volume;
        let mut p = prices();
        p.public_ipv4_hour = 0.005;
        p.ebs_gb_month.insert("gp3".into(), 0.08);
        let zone = Some("us-east-1a");
        let gp3 = Some(Volume { gib: 8, kind: "gp3".into() });
        let used = [
            // Running 1000..2800 after 20 s pending, with an address and 8 GiB of gp3.
            Usage {
                public_ipv4: true,
                root_volume: gp3.clone(),
                running_at: Some(1000.0),
                ..usage("i-1", "m6i.large", zone, Market::Spot, 2, 980.0, 2800.0)
            },
            // Interrupted by EC2 after 600 s: the instance is free, its volume is not.
            Usage {
                interrupted: true,
                root_volume: gp3,
                ..usage("i-2", "m6i.large", zone, Market::Spot, 2, 3000.0, 3600.0)
            },
        ];
        let b = bill(&used, &p);
        // By hand: i-1's 1800 s are 900 s at $0.04/h and 900 s at $0.06/h: $0.025. Its address
        // for 1820 s at $0.005/h: $0.0025277…; its volume 8 × $0.08 × 1820 / 2,592,000. i-2:
        // $0 for the instance, its volume 8 × $0.08 × 600 / 2,592,000.
        let ipv4 = 1820.0 * 0.005 / 3600.0;
        let ebs = 8.0 * 0.08 * (1820.0 + 600.0) / 2_592_000.0;
        assert!((b.cost_usd.unwrap() - (0.025 + ipv4 + ebs)).abs() < 1e-12, "{b:?}");
        // EMR: both running times (1800 s + 600 s) at $0.12/h, and the same addresses and volumes.
        assert!((b.emr_equivalent_usd.unwrap() - (2400.0 * 0.12 / 3600.0 + ipv4 + ebs)).abs() < 1e-12, "{b:?}");
        let line = &b.lines[0];
        assert_eq!((line.instances, line.waived, line.seconds), (2, 1, 1800.0));
        assert!((line.public_ipv4_usd - ipv4).abs() < 1e-15);
        assert!((line.root_volume_usd.unwrap() - ebs).abs() < 1e-15);
        // A volume type without a price leaves the figure unknown, naming the setting.
        let odd = [Usage {
            root_volume: Some(Volume { gib: 8, kind: "gp9".into() }),
            ..usage("i-3", "m6i.large", zone, Market::Spot, 2, 0.0, 600.0)
        }];
        let b = bill(&odd, &p);
        assert_eq!(b.cost_usd, None);
        assert!(b.unpriced.iter().any(|u| u.contains("pricing.ebs_gb_month.\"gp9\"")), "{:?}", b.unpriced);
    }

    #[test]
    fn local_workers_cost_their_cores_at_the_configured_price() {
        let mut p = Prices { local_core_hour: 0.10, local_emr_core_hour: 0.50, ..Prices::default() };
        p.spot.clear();
        let b = bill(&[usage("local-1", "local", None, Market::Local, 2, 0.0, 1800.0)], &p);
        assert_eq!(cents(b.cost_usd), 10);
        assert_eq!(cents(b.emr_equivalent_usd), 50);
        assert!((b.saving_ratio().unwrap() - 0.8).abs() < 1e-9);
        let free = bill(&[usage("local-1", "local", None, Market::Local, 2, 0.0, 1800.0)], &Prices::default());
        assert_eq!((free.cost_usd, free.saving_ratio()), (Some(0.0), Some(0.0)), "the default local price is 0");
    }

    #[test]
    fn nothing_used_costs_nothing() {
        let b = bill(&[], &prices());
        assert_eq!((b.cost_usd, b.emr_equivalent_usd, b.instance_hours), (Some(0.0), Some(0.0), 0.0));
    }

    #[test]
    fn an_unknown_price_leaves_the_figure_unknown_and_names_the_setting() {
        let used = [usage("i-1", "c7gn.large", Some("us-east-1b"), Market::Spot, 2, 0.0, 600.0)];
        let b = bill(&used, &prices());
        assert_eq!(b.cost_usd, None);
        assert_eq!(b.emr_equivalent_usd, None);
        assert_eq!(b.saving_ratio(), None);
        assert!(b.unpriced.iter().any(|u| u.contains("pricing.spot.\"c7gn.large\"")), "{:?}", b.unpriced);
        assert!(b.unpriced.iter().any(|u| u.contains("pricing.on_demand.\"c7gn.large\"")), "{:?}", b.unpriced);
    }

    #[test]
    fn a_share_scales_every_figure_and_steps_add_up() {
        let used = [usage("i-1", "m6i.large", Some("us-east-1a"), Market::Spot, 2, 1000.0, 2800.0)];
        let whole = bill(&used, &prices());
        let quarter = whole.share(0.25);
        assert!((quarter.cost_usd.unwrap() - 0.00625).abs() < 1e-12);
        assert!((quarter.lines[0].seconds - 450.0).abs() < 1e-9);
        let mut sum = quarter.clone();
        sum.add(&whole.share(0.75));
        assert!((sum.cost_usd.unwrap() - whole.cost_usd.unwrap()).abs() < 1e-12);
        let mut unknown = quarter;
        unknown.add(&bill(&[usage("i-2", "zz.large", Some("us-east-1a"), Market::Spot, 2, 0.0, 60.0)], &prices()));
        assert_eq!(unknown.cost_usd, None, "an unknown part makes the sum unknown");
    }
}
