//! What a step's EC2 instances used, for the bill: each instance's type, zone and market, from
//! its launch to its end. AWS records no end time as such; a terminated or stopped instance's
//! state-transition reason carries it ("User initiated (2026-11-26 12:00:00 GMT)").
//!
//! AWS lists a terminated instance for about an hour only, so the bill can't be read once at
//! the end of a long step: the [`Ledger`] writes down every instance as the fleet sees it while
//! it runs (and its end, read while AWS still lists it), and the final listing is merged into it.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{InstanceLifecycleType, InstanceStateName};
use chrono::NaiveDateTime;

use crate::fleet::{Market, Usage};

/// The end time in a state-transition reason, in Unix seconds.
pub(super) fn end_in_reason(reason: &str) -> Option<f64> {
    let inside = reason.split_once('(')?.1.split_once(')')?.0;
    let stamp = inside.trim_end_matches(" GMT").trim_end_matches(" UTC");
    let at = NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S").ok()?;
    Some(at.and_utc().timestamp() as f64)
}

/// One instance's usage; `now` ends an instance that is still up or whose end is not recorded.
pub(super) fn usage_of(i: &aws_sdk_ec2::types::Instance, vcpus: usize, now: f64) -> Usage {
    let up = matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Pending | InstanceStateName::Running));
    let recorded_end = if up { None } else { i.state_transition_reason().and_then(end_in_reason) };
    let launched_at = i.launch_time().map(|t| t.as_secs_f64()).unwrap_or(now);
    Usage {
        id: i.instance_id().unwrap_or_default().to_string(),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        availability_zone: i.placement().and_then(|p| p.availability_zone()).map(String::from),
        market: match i.instance_lifecycle() {
            Some(InstanceLifecycleType::Spot) => Market::Spot,
            _ => Market::OnDemand,
        },
        vcpus,
        launched_at,
        // A clock skew between AWS's two stamps must not make a negative life.
        ended_at: recorded_end.unwrap_or(now).max(launched_at),
        ended: recorded_end.is_some(),
        interrupted: end_reason(i).is_some_and(|c| is_spot_interruption(&c)),
        // Released at termination: what an instance up shows is kept by the ledger.
        public_ipv4: i.public_ip_address().is_some(),
        root_volume: None,
        running_at: None,
    }
}

/// Whether EC2's state reason code is a spot interruption (`Server.SpotInstanceTermination`,
/// `Server.SpotInstanceShutdown`): EC2 took the instance, which AWS does not charge in its
/// first hour.
pub(super) fn is_spot_interruption(code: &str) -> bool {
    code.starts_with("Server.SpotInstance")
}

/// The id of an instance's root volume, from its block device mappings.
pub(super) fn root_volume_id(i: &aws_sdk_ec2::types::Instance) -> Option<String> {
    let root = i.root_device_name()?;
    i.block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some(root))
        .and_then(|m| m.ebs())
        .and_then(|e| e.volume_id())
        .map(String::from)
}

/// Whether an instance is up (pending or running).
pub(super) fn is_up(i: &aws_sdk_ec2::types::Instance) -> bool {
    matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Pending | InstanceStateName::Running))
}

/// Why an instance ended, as EC2 words it (`Server.SpotInstanceTermination`,
/// `Client.InstanceInitiatedShutdown`, ...): the state reason's code.
pub(super) fn end_reason(i: &aws_sdk_ec2::types::Instance) -> Option<String> {
    i.state_reason().and_then(|r| r.code()).map(String::from)
}

/// Fills in the root volume of instances whose volume was never read (up for less than a look:
/// EC2 deletes a root volume with its instance) from the others: a step's instances boot from
/// its launch templates, so they share one root volume. Left unknown when the known ones differ.
pub(crate) fn with_step_root_volume(mut usage: Vec<Usage>) -> Vec<Usage> {
    let mut known = usage.iter().filter_map(|u| u.root_volume.clone());
    let Some(first) = known.next() else { return usage };
    if known.any(|v| v != first) {
        return usage;
    }
    for u in usage.iter_mut().filter(|u| u.root_volume.is_none()) {
        u.root_volume = Some(first.clone());
    }
    usage
}

/// Every instance a step's fleet has seen, with its life as far as it is known.
#[derive(Debug, Default, Clone)]
pub(crate) struct Ledger {
    lives: BTreeMap<String, Life>,
}

#[derive(Debug, Clone)]
struct Life {
    usage: Usage,
    /// When the fleet first saw it gone from the instances up, before its end was read.
    gone_at: Option<f64>,
    /// EC2 no longer lists it: its end will never be read, so it is not asked for again.
    forgotten: bool,
}

impl Ledger {
    /// An instance seen up at `now` (its usage as read then).
    pub(crate) fn saw_up(&mut self, usage: Usage) {
        self.record(usage);
    }

    /// An instance whose end is recorded (read while AWS still lists it).
    pub(crate) fn saw_end(&mut self, usage: Usage) {
        if usage.ended {
            self.record(usage);
        }
    }

    /// Records a newer reading of an instance, keeping what only an earlier one could show: a
    /// public address and a root volume are gone once it is terminated.
    fn record(&mut self, mut usage: Usage) {
        if let Some(before) = self.lives.get(&usage.id) {
            usage.public_ipv4 |= before.usage.public_ipv4;
            usage.root_volume = usage.root_volume.or_else(|| before.usage.root_volume.clone());
        }
        let id = usage.id.clone();
        self.lives.insert(id, Life { usage, gone_at: None, forgotten: false });
    }

    /// Whether an instance's root volume is still to be read.
    pub(crate) fn lacks_volume(&self, id: &str) -> bool {
        self.lives.get(id).is_none_or(|l| l.usage.root_volume.is_none())
    }

    /// Instances gone whose end EC2 no longer has: counted up to when they were seen gone.
    pub(crate) fn forgotten(&mut self, ids: &[String]) {
        for id in ids {
            if let Some(life) = self.lives.get_mut(id) {
                life.forgotten = true;
            }
        }
    }

    /// Instances seen up before and not up now, whose end is not yet read: they are marked gone
    /// at `now` and returned, so their end can be read.
    pub(crate) fn gone(&mut self, up: &[&str], now: f64) -> Vec<String> {
        let mut out = Vec::new();
        for (id, life) in &mut self.lives {
            if !life.usage.ended && !life.forgotten && !up.contains(&id.as_str()) {
                life.gone_at.get_or_insert(now);
                out.push(id.clone());
            }
        }
        out
    }

    /// The bill's instances: the final listing, and every instance the ledger holds that the
    /// listing lacks (AWS forgot it). An instance whose end was never read is counted up to the
    /// moment it was first seen gone: at most one look late, never short.
    pub(crate) fn merged(&self, listing: Vec<Usage>) -> Vec<Usage> {
        let mut out: BTreeMap<String, Usage> = BTreeMap::new();
        for (id, life) in &self.lives {
            let mut u = life.usage.clone();
            if let Some(gone) = life.gone_at
                && !u.ended
            {
                u.ended_at = gone.max(u.launched_at);
            }
            out.insert(id.clone(), u);
        }
        for u in listing {
            // A listing without a recorded end (one whose reason can't be read) does not undo an
            // end, or a time seen gone, the ledger has.
            let seen_gone = self.lives.get(&u.id).is_some_and(|l| l.gone_at.is_some());
            let keep_ledger = out.get(&u.id).is_some_and(|known| (known.ended || seen_gone) && !u.ended);
            if !keep_ledger {
                let mut u = u;
                if let Some(known) = out.get(&u.id) {
                    u.public_ipv4 |= known.public_ipv4;
                    u.interrupted |= known.interrupted;
                    u.root_volume = u.root_volume.or_else(|| known.root_volume.clone());
                }
                out.insert(u.id.clone(), u);
            }
        }
        out.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Market;

    fn life(id: &str, launched_at: f64, ended_at: f64, ended: bool) -> Usage {
        Usage {
            id: id.into(),
            instance_type: "m6i.large".into(),
            availability_zone: Some("us-east-1a".into()),
            market: Market::Spot,
            vcpus: 2,
            launched_at,
            ended_at,
            ended,
            interrupted: false,
            public_ipv4: false,
            root_volume: None,
            running_at: None,
        }
    }

    #[test]
    fn an_instance_whose_volume_was_never_read_has_its_steps() {
        let gp3 = |gib| Some(crate::fleet::Volume { gib, kind: "gp3".into() });
        let filled = with_step_root_volume(vec![
            Usage { root_volume: gp3(8), ..life("i-1", 0.0, 10.0, true) },
            life("i-2", 0.0, 2.0, true),
        ]);
        assert_eq!(filled[1].root_volume, gp3(8));
        // Two different volumes among the known: the unknown one stays unknown.
        let mixed = with_step_root_volume(vec![
            Usage { root_volume: gp3(8), ..life("i-1", 0.0, 10.0, true) },
            Usage { root_volume: gp3(30), ..life("i-2", 0.0, 10.0, true) },
            life("i-3", 0.0, 2.0, true),
        ]);
        assert_eq!(mixed[2].root_volume, None);
    }

    #[test]
    fn what_only_an_instance_up_shows_stays_on_its_bill() {
        // EC2 releases the public address and deletes the root volume at termination: the end
        // read later shows neither.
        let mut ledger = Ledger::default();
        let up = Usage {
            public_ipv4: true,
            root_volume: Some(crate::fleet::Volume { gib: 8, kind: "gp3".into() }),
            ..life("i-1", 0.0, 100.0, false)
        };
        ledger.saw_up(up);
        assert!(!ledger.lacks_volume("i-1") && ledger.lacks_volume("i-2"));
        ledger.saw_end(Usage { interrupted: true, ..life("i-1", 0.0, 150.0, true) });
        let bill = ledger.merged(vec![life("i-1", 0.0, 150.0, true)]);
        assert!(bill[0].public_ipv4 && bill[0].interrupted, "{bill:?}");
        assert_eq!(bill[0].root_volume.as_ref().map(|v| v.gib), Some(8));
        assert!(is_spot_interruption("Server.SpotInstanceTermination"));
        assert!(!is_spot_interruption("Client.UserInitiatedShutdown"));
    }

    #[test]
    fn instances_aws_no_longer_lists_stay_on_the_bill() {
        let mut ledger = Ledger::default();
        // Seen up at t=100: i-1 (reclaimed early, its end read at once), i-2 (gone, its end never
        // read: AWS forgot it before the next look), i-3 (up to the end).
        ledger.saw_up(life("i-1", 0.0, 100.0, false));
        ledger.saw_up(life("i-2", 10.0, 100.0, false));
        ledger.saw_up(life("i-3", 20.0, 100.0, false));
        assert_eq!(ledger.gone(&["i-2", "i-3"], 200.0), vec!["i-1".to_string()]);
        ledger.saw_end(life("i-1", 0.0, 150.0, true));
        assert_eq!(ledger.gone(&["i-3"], 300.0), vec!["i-2".to_string()]);
        // Two hours later, the final listing has i-3 only.
        let bill = ledger.merged(vec![life("i-3", 20.0, 7300.0, true)]);
        let lives: Vec<(&str, f64, f64)> = bill.iter().map(|u| (u.id.as_str(), u.launched_at, u.ended_at)).collect();
        assert_eq!(lives, [("i-1", 0.0, 150.0), ("i-2", 10.0, 300.0), ("i-3", 20.0, 7300.0)]);
        let seconds: f64 = bill.iter().map(Usage::seconds).sum();
        assert_eq!(seconds, 150.0 + 290.0 + 7280.0);
    }

    #[test]
    fn a_recorded_end_is_not_undone_by_a_later_look() {
        let mut ledger = Ledger::default();
        ledger.saw_up(life("i-1", 0.0, 50.0, false));
        ledger.saw_end(life("i-1", 0.0, 60.0, true));
        // A late listing that still shows it up (eventual consistency) does not extend its life.
        let bill = ledger.merged(vec![life("i-1", 0.0, 500.0, false)]);
        assert_eq!(bill[0].ended_at, 60.0);
        // Seen gone at 300, and listed at the end without a readable end: counted to 300.
        let mut ledger = Ledger::default();
        ledger.saw_up(life("i-2", 0.0, 100.0, false));
        assert_eq!(ledger.gone(&[], 300.0), vec!["i-2".to_string()]);
        ledger.forgotten(&["i-2".to_string()]);
        assert!(ledger.gone(&[], 400.0).is_empty(), "not asked for again");
        assert_eq!(ledger.merged(vec![life("i-2", 0.0, 9000.0, false)])[0].ended_at, 300.0);
        // An instance seen ended only in the final listing is taken from it.
        let bill = Ledger::default().merged(vec![life("i-9", 5.0, 65.0, true)]);
        assert_eq!(bill.len(), 1);
        assert_eq!(bill[0].seconds(), 60.0);
    }

    #[test]
    fn the_end_is_read_from_the_transition_reason() {
        // 2026-11-26 12:00:00 UTC
        assert_eq!(end_in_reason("User initiated (2026-11-26 12:00:00 GMT)"), Some(1_795_694_400.0));
        assert_eq!(end_in_reason("User initiated (2026-11-26 12:00:00 UTC)"), Some(1_795_694_400.0));
        assert_eq!(end_in_reason("Server.SpotInstanceTermination"), None);
        assert_eq!(end_in_reason(""), None);
        assert_eq!(end_in_reason("User initiated (soon)"), None);
    }
}
