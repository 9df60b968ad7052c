//! How AWS charges one EC2 instance, rule by rule, as its pricing pages state them: the
//! instance from when it runs (time pending is not billed) to its end, per second with a
//! one-minute minimum, and nothing for a Linux spot instance EC2 interrupts in its first hour;
//! its public IPv4 address per address-hour (since February 2024); its root EBS volume per
//! GB-month, prorated per second with a one-minute minimum. [`super::bill`] prices what these
//! rules count.

use std::collections::BTreeMap;

use runner_backends::fleet::Usage;

/// EC2's (and EBS's) minimum billed time.
pub const MINIMUM_SECONDS: f64 = 60.0;
/// A spot instance EC2 interrupts within this long of running is not charged.
pub const FREE_INTERRUPTION_SECONDS: f64 = 3600.0;
/// The month an EBS GB-month price is prorated over, as AWS's EBS pricing example does it (a
/// 2,000 GB volume for 43,200 seconds "in a 30 day month").
pub const EBS_MONTH_SECONDS: f64 = 30.0 * 86_400.0;
/// The public IPv4 price per address-hour, the same in every commercial region.
pub const PUBLIC_IPV4_USD_PER_HOUR: f64 = 0.005;

/// EBS prices per GB-month by volume type, us-east-1, from AWS's EBS pricing page (transcribed
/// by hand on 2026-12-07; other regions differ a little: set `pricing.ebs_gb_month`).
pub const EBS_USD_PER_GB_MONTH: [(&str, f64); 7] =
    [("gp3", 0.08), ("gp2", 0.10), ("io1", 0.125), ("io2", 0.125), ("st1", 0.045), ("sc1", 0.015), ("standard", 0.05)];

/// When the instance started running: its worker's reading when there is one (never before the
/// launch nor after the end), else the launch (an upper bound of the billed time).
pub fn running_from(u: &Usage) -> f64 {
    u.running_at.map_or(u.launched_at, |r| r.clamp(u.launched_at, u.ended_at.max(u.launched_at)))
}

/// Seconds it ran.
pub fn running_seconds(u: &Usage) -> f64 {
    (u.ended_at - running_from(u)).max(0.0)
}

/// Whether AWS waives the instance's charge: a spot instance EC2 interrupted in its first hour.
pub fn waived(u: &Usage) -> bool {
    u.interrupted && running_seconds(u) < FREE_INTERRUPTION_SECONDS
}

/// Seconds the instance itself is billed for: from running to its end, at least a minute; none
/// when waived.
pub fn instance_seconds(u: &Usage) -> f64 {
    if waived(u) { 0.0 } else { running_seconds(u).max(MINIMUM_SECONDS) }
}

/// USD for its public IPv4 address, held from the launch to the end (no minimum).
pub fn public_ipv4_usd(u: &Usage, usd_per_hour: f64) -> f64 {
    if u.public_ipv4 { u.seconds() / 3600.0 * usd_per_hour } else { 0.0 }
}

/// USD for its root volume, which exists from the launch to the end (at least a minute), at its
/// type's price; `Err` names the type whose price is unknown. No known root volume costs 0.
pub fn root_volume_usd(u: &Usage, usd_per_gb_month: &BTreeMap<String, f64>) -> Result<f64, String> {
    let Some(v) = &u.root_volume else { return Ok(0.0) };
    let price = usd_per_gb_month.get(&v.kind).ok_or_else(|| v.kind.clone())?;
    Ok(f64::from(v.gib) * price * u.seconds().max(MINIMUM_SECONDS) / EBS_MONTH_SECONDS)
}

#[cfg(test)]
mod tests {
    use runner_backends::fleet::{Market, Volume};

    use super::*;

    fn spot(launched_at: f64, ended_at: f64) -> Usage {
        Usage {
            id: "i-1".into(),
            instance_type: "m6i.large".into(),
            availability_zone: Some("us-east-1a".into()),
            market: Market::Spot,
            vcpus: 2,
            launched_at,
            ended_at,
            ended: true,
            interrupted: false,
            public_ipv4: false,
            root_volume: None,
            running_at: None,
        }
    }

    #[test]
    fn an_instance_is_billed_from_running_with_a_minute_minimum() {
        // Launched at 0, running at 25 (pending 25 s), ended at 625: 600 s billed.
        let u = Usage { running_at: Some(25.0), ..spot(0.0, 625.0) };
        assert_eq!(instance_seconds(&u), 600.0);
        // Unknown running time: from the launch.
        assert_eq!(instance_seconds(&spot(0.0, 625.0)), 625.0);
        // 20 s of running is billed as a minute.
        assert_eq!(instance_seconds(&Usage { running_at: Some(5.0), ..spot(0.0, 25.0) }), 60.0);
        // A reading outside the life is clamped to it.
        assert_eq!(instance_seconds(&Usage { running_at: Some(-100.0), ..spot(0.0, 625.0) }), 625.0);
    }

    #[test]
    fn a_spot_instance_ec2_interrupts_in_its_first_hour_is_not_charged() {
        // AWS: "If your Spot Instance is interrupted by Amazon EC2 in the first instance hour,
        // you are not charged for that usage" (Linux); after the first hour, per second.
        let early = Usage { interrupted: true, running_at: Some(30.0), ..spot(0.0, 3629.0) };
        assert!(waived(&early));
        assert_eq!(instance_seconds(&early), 0.0);
        let late = Usage { interrupted: true, running_at: Some(30.0), ..spot(0.0, 3630.0) };
        assert!(!waived(&late), "3,600 s of running: the first hour is over");
        assert_eq!(instance_seconds(&late), 3600.0);
        // Terminated by the user (a worker powering off), it is charged.
        assert_eq!(instance_seconds(&spot(0.0, 600.0)), 600.0);
    }

    #[test]
    fn public_ipv4_and_the_root_volume_are_charged_from_launch_to_end() {
        // An address for 2 hours: 2 × $0.005 = $0.01.
        let u = Usage { public_ipv4: true, ..spot(0.0, 7200.0) };
        assert!((public_ipv4_usd(&u, PUBLIC_IPV4_USD_PER_HOUR) - 0.01).abs() < 1e-12);
        assert_eq!(public_ipv4_usd(&spot(0.0, 7200.0), PUBLIC_IPV4_USD_PER_HOUR), 0.0);
        // 8 GiB of gp3 for 12 hours: 8 × $0.08 × 43,200 / 2,592,000 = $0.010666…
        let prices: BTreeMap<String, f64> = EBS_USD_PER_GB_MONTH.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let v = Usage { root_volume: Some(Volume { gib: 8, kind: "gp3".into() }), ..spot(0.0, 43_200.0) };
        assert!((root_volume_usd(&v, &prices).unwrap() - 8.0 * 0.08 * 43_200.0 / 2_592_000.0).abs() < 1e-12);
        // AWS's own example: 2,000 GB at $0.10 for 43,200 s in a 30-day month is $3.33.
        let example = Usage { root_volume: Some(Volume { gib: 2000, kind: "gp2".into() }), ..spot(0.0, 43_200.0) };
        assert_eq!((root_volume_usd(&example, &prices).unwrap() * 100.0).round(), 333.0);
        // A volume for 10 s is charged a minute; one of a type without a price is named.
        let short = Usage { root_volume: Some(Volume { gib: 30, kind: "gp3".into() }), ..spot(0.0, 10.0) };
        assert!((root_volume_usd(&short, &prices).unwrap() - 30.0 * 0.08 * 60.0 / 2_592_000.0).abs() < 1e-15);
        let odd = Usage { root_volume: Some(Volume { gib: 8, kind: "gp9".into() }), ..spot(0.0, 10.0) };
        assert_eq!(root_volume_usd(&odd, &prices), Err("gp9".to_string()));
        // An interrupted instance's address and volume are still charged: only the instance is waived.
        let waived_one = Usage { interrupted: true, public_ipv4: true, ..spot(0.0, 1800.0) };
        assert!(waived(&waived_one));
        assert!((public_ipv4_usd(&waived_one, PUBLIC_IPV4_USD_PER_HOUR) - 0.0025).abs() < 1e-12);
    }
}
