//! What went wrong in a step's fleets, as EC2 records it. `request` fleets report launch
//! errors only in their history (`DescribeFleets`' `Errors` is filled for `instant` fleets), so
//! the [`HistoryReader`] reads `DescribeFleetHistory` for each live fleet, from where its last
//! read stopped, at most every [`READ_EVERY`] per fleet and [`FLEETS_PER_LOOK`] fleets a look.
//! Throttling backs the reader off; only an endpoint that lacks the call (moto) turns it off:
//! one that answered nothing but bare 500s [`BARE_500S_TO_GIVE_UP`] times in a row. A fleet
//! that is over is read for [`HISTORY_LAG`] more, since EC2 writes its events up to 30 s late
//! (the reason a fleet was deleted at once is there).
//! The calls themselves are the caller's: the reader decides what to read and digests answers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ec2::types::{FleetEventType, HistoryRecordEntry};

use super::backoff::Backoff;
use super::trouble::{self, Trouble};

/// How often one fleet's history is read.
pub(crate) const READ_EVERY: Duration = Duration::from_secs(15);
/// The most fleets whose history one look reads.
pub(crate) const FLEETS_PER_LOOK: usize = 4;
/// How long a fleet that is over is still read: EC2 writes history events up to 30 s late.
pub(crate) const HISTORY_LAG: Duration = Duration::from_secs(45);
/// Bare 500s in a row, with no answer ever, after which the endpoint is taken to lack the call.
pub(crate) const BARE_500S_TO_GIVE_UP: u32 = 3;

/// The history events that say a launch went wrong (EC2's `EventInformation` sub types of
/// `error` and `information` events).
const PROBLEM_SUB_TYPES: [&str; 7] = [
    "iamFleetRoleInvalid",
    "allLaunchSpecsTemporarilyBlacklisted",
    "spotInstanceCountLimitExceeded",
    "spotFleetRequestConfigurationInvalid",
    "launchSpecUnusable",
    "launchSpecTemporarilyBlacklisted",
    "fleetProgressHalted",
];

/// One thing a fleet reported going wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) fleet: String,
    pub(crate) trouble: Trouble,
    pub(crate) text: String,
}

/// The problems among a fleet's history records.
pub(crate) fn problems_in(fleet: &str, records: &[HistoryRecordEntry]) -> Vec<Problem> {
    let mut out = Vec::new();
    for r in records {
        let info = r.event_information();
        let sub = info.and_then(|i| i.event_sub_type()).unwrap_or_default();
        let description = info.and_then(|i| i.event_description()).unwrap_or_default();
        let is_problem = r.event_type() == Some(&FleetEventType::ServiceError)
            || PROBLEM_SUB_TYPES.contains(&sub)
            || (r.event_type() == Some(&FleetEventType::FleetChange) && sub == "error");
        if !is_problem {
            continue;
        }
        let sub_text = if sub.is_empty() { "error" } else { sub };
        let text = if description.is_empty() { sub_text.to_string() } else { format!("{sub_text}: {description}") };
        out.push(Problem { fleet: fleet.to_string(), trouble: trouble::of_event(sub, description), text });
    }
    out
}

#[derive(Debug, Clone)]
struct Cursor {
    since: SystemTime,
    next_read: Instant,
    /// When the fleet was seen over; it is forgotten after a read [`HISTORY_LAG`] later.
    over_at: Option<Instant>,
}

/// What to read next and what has been reported.
#[derive(Debug)]
pub(crate) struct HistoryReader {
    cursors: BTreeMap<String, Cursor>,
    throttled: Backoff,
    reported: BTreeSet<(String, String)>,
    /// Round robin over the fleets, so a look past [`FLEETS_PER_LOOK`] fleets reaches them all.
    turn: usize,
    /// Whether the endpoint has ever answered with records.
    answered: bool,
    /// Bare 500s in a row.
    bare_500s: u32,
}

/// What a read of one fleet's history came to.
#[derive(Debug)]
pub(crate) enum Read {
    /// Its records, up to `until`.
    Records { records: Vec<HistoryRecordEntry>, until: Option<SystemTime> },
    /// It failed with this trouble.
    Failed(Trouble),
}

impl Default for HistoryReader {
    fn default() -> Self {
        Self {
            cursors: BTreeMap::new(),
            throttled: Backoff::new(Duration::from_secs(5), Duration::from_secs(120)),
            reported: BTreeSet::new(),
            turn: 0,
            answered: false,
            bare_500s: 0,
        }
    }
}

impl HistoryReader {
    /// A fleet to read from `since` (a minute before it was made, for clock skew).
    pub(crate) fn follow(&mut self, fleet: &str, made: SystemTime, now: Instant) {
        self.cursors.entry(fleet.to_string()).or_insert(Cursor {
            since: made - Duration::from_secs(60),
            next_read: now,
            over_at: None,
        });
    }

    /// A fleet this step deleted: its history is not read again.
    pub(crate) fn forget(&mut self, fleet: &str) {
        self.cursors.remove(fleet);
    }

    /// A fleet seen over at `now` (deleted by EC2, failed, expired): read until [`HISTORY_LAG`]
    /// has passed, then forgotten.
    pub(crate) fn over(&mut self, fleet: &str, now: Instant) {
        if let Some(c) = self.cursors.get_mut(fleet) {
            c.over_at.get_or_insert(now);
        }
    }

    /// The fleets to read at `now`, with where to read from.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<(String, SystemTime)> {
        if !self.throttled.ready(now) || self.cursors.is_empty() {
            return Vec::new();
        }
        let ids: Vec<&String> = self.cursors.keys().collect();
        let n = ids.len();
        let mut out = Vec::new();
        for k in 0..n {
            let id = ids[(self.turn + k) % n];
            let c = &self.cursors[id];
            if c.next_read <= now {
                out.push((id.clone(), c.since));
                if out.len() == FLEETS_PER_LOOK {
                    break;
                }
            }
        }
        self.turn = (self.turn + out.len()) % n.max(1);
        out
    }

    /// Digests one fleet's read at `now`: the problems not reported before, and whether the
    /// endpoint lacks the call (the caller stops reading histories altogether).
    pub(crate) fn record(&mut self, fleet: &str, read: Read, now: Instant) -> (Vec<Problem>, bool) {
        // A fleet over for longer than EC2's lag is read no more, whatever this read came to
        // (one whose reads keep failing must not hold a slot of every look).
        if self.cursors.get(fleet).and_then(|c| c.over_at).is_some_and(|at| now >= at + HISTORY_LAG) {
            self.cursors.remove(fleet);
        }
        match read {
            Read::Failed(Trouble::BareServerError) if !self.answered => {
                self.bare_500s += 1;
                if self.bare_500s >= BARE_500S_TO_GIVE_UP {
                    return (Vec::new(), true);
                }
                if let Some(c) = self.cursors.get_mut(fleet) {
                    c.next_read = now + READ_EVERY;
                }
                (Vec::new(), false)
            }
            Read::Failed(Trouble::Throttled) => {
                let wait = self.throttled.failed(now);
                tracing::debug!(fleet, ?wait, "DescribeFleetHistory was throttled; reading it less often");
                (Vec::new(), false)
            }
            Read::Failed(t) => {
                // Not a reason to stop: read it again at its next turn.
                tracing::debug!(fleet, ?t, "DescribeFleetHistory failed");
                if let Some(c) = self.cursors.get_mut(fleet) {
                    c.next_read = now + READ_EVERY;
                }
                (Vec::new(), false)
            }
            Read::Records { records, until } => {
                self.throttled.succeeded();
                (self.answered, self.bare_500s) = (true, 0);
                if let Some(c) = self.cursors.get_mut(fleet) {
                    c.next_read = now + READ_EVERY;
                    if let Some(u) = until {
                        c.since = u;
                    }
                }
                let fresh = problems_in(fleet, &records)
                    .into_iter()
                    .filter(|p| self.reported.insert((p.fleet.clone(), p.text.clone())))
                    .collect();
                (fresh, false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::EventInformation;

    use super::*;

    fn record(kind: FleetEventType, sub: &str, description: &str) -> HistoryRecordEntry {
        HistoryRecordEntry::builder()
            .event_type(kind)
            .event_information(EventInformation::builder().event_sub_type(sub).event_description(description).build())
            .build()
    }

    #[test]
    fn error_events_are_problems_and_instance_changes_are_not() {
        let records = [
            record(FleetEventType::FleetChange, "submitted", ""),
            record(FleetEventType::FleetChange, "active", ""),
            record(FleetEventType::InstanceChange, "launched", "i-0abc"),
            record(FleetEventType::ServiceError, "spotInstanceCountLimitExceeded", "Max spot instance count exceeded"),
            record(
                FleetEventType::ServiceError,
                "allLaunchSpecsTemporarilyBlacklisted",
                "m6i.large, ami-0abc, Linux/UNIX, us-east-1a: InsufficientInstanceCapacity",
            ),
            record(FleetEventType::ServiceError, "iamFleetRoleInvalid", ""),
        ];
        let problems = problems_in("fleet-1", &records);
        let got: Vec<(Trouble, &str)> = problems.iter().map(|p| (p.trouble, p.text.as_str())).collect();
        assert_eq!(
            got,
            [
                (Trouble::Quota, "spotInstanceCountLimitExceeded: Max spot instance count exceeded"),
                (
                    Trouble::Capacity,
                    "allLaunchSpecsTemporarilyBlacklisted: m6i.large, ami-0abc, Linux/UNIX, us-east-1a: \
                     InsufficientInstanceCapacity"
                ),
                (Trouble::Permission, "iamFleetRoleInvalid"),
            ]
        );
    }

    #[test]
    fn each_problem_is_reported_once_and_the_cursor_moves_on() {
        let t0 = Instant::now();
        let made = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut r = HistoryReader::default();
        r.follow("fleet-1", made, t0);
        assert_eq!(r.due(t0), vec![("fleet-1".to_string(), made - Duration::from_secs(60))]);
        let read = || Read::Records {
            records: vec![record(FleetEventType::ServiceError, "spotInstanceCountLimitExceeded", "")],
            until: Some(made + Duration::from_secs(30)),
        };
        let (p, off) = r.record("fleet-1", read(), t0);
        assert_eq!((p.len(), off), (1, false));
        // Not due again before READ_EVERY; then read from where the last read stopped.
        assert!(r.due(t0 + Duration::from_secs(1)).is_empty());
        let later = t0 + READ_EVERY;
        assert_eq!(r.due(later), vec![("fleet-1".to_string(), made + Duration::from_secs(30))]);
        let (p, _) = r.record("fleet-1", read(), later);
        assert!(p.is_empty(), "reported twice: {p:?}");
        r.forget("fleet-1");
        assert!(r.due(later + READ_EVERY).is_empty());
    }

    #[test]
    fn throttling_backs_off_and_only_a_missing_call_turns_the_reader_off() {
        let t0 = Instant::now();
        let mut r = HistoryReader::default();
        r.follow("fleet-1", SystemTime::now(), t0);
        let mut now = t0;
        let mut reads = 0;
        // 40 throttled reads in a row, looking every 3 s for 10 minutes: the reader asks ever
        // less often, and never turns off.
        for _ in 0..200 {
            for (id, _) in r.due(now) {
                reads += 1;
                let (_, off) = r.record(&id, Read::Failed(Trouble::Throttled), now);
                assert!(!off);
            }
            now += Duration::from_secs(3);
        }
        // 5 + 10 + 20 + 40 + 80 + 120 + 120 + 120 ... seconds apart.
        assert_eq!(reads, 9, "reads in 10 minutes of throttling");
        for t in [Trouble::Permission, Trouble::Transient, Trouble::Other] {
            assert!(!r.record("fleet-1", Read::Failed(t), now).1, "{t:?}");
        }
        // An endpoint that never answered, with three bare 500s in a row: it lacks the call.
        let bare = Read::Failed(Trouble::BareServerError);
        assert!(!r.record("fleet-1", Read::Failed(Trouble::BareServerError), now).1);
        assert!(!r.record("fleet-1", Read::Failed(Trouble::BareServerError), now).1);
        assert!(r.record("fleet-1", bare, now).1);
    }

    #[test]
    fn a_bare_500_from_an_endpoint_that_answered_before_is_only_asked_again() {
        // AWS's server errors carry a code; a bare 500 there is rare and passing, and must not
        // turn the reader off for the rest of the run.
        let t0 = Instant::now();
        let mut r = HistoryReader::default();
        r.follow("fleet-1", SystemTime::now(), t0);
        assert!(!r.record("fleet-1", Read::Failed(Trouble::BareServerError), t0).1, "one bare 500 is not enough");
        r.record("fleet-1", Read::Records { records: vec![], until: None }, t0);
        for k in 0..10 {
            let (_, off) = r.record("fleet-1", Read::Failed(Trouble::BareServerError), t0 + READ_EVERY * k);
            assert!(!off, "the endpoint answered once: it has the call");
        }
        assert_eq!(r.due(t0 + READ_EVERY * 10).len(), 1, "and the fleet is read again");
    }

    #[test]
    fn a_fleet_seen_over_is_read_until_ec2s_history_lag_has_passed() {
        // EC2 deletes a request over the account's limits at once and writes why in its
        // history up to 30 s later: the fleet must still be read then.
        let t0 = Instant::now();
        let mut r = HistoryReader::default();
        r.follow("fleet-1", SystemTime::now(), t0);
        r.over("fleet-1", t0);
        let empty = || Read::Records { records: vec![], until: None };
        r.record("fleet-1", empty(), t0);
        let t1 = t0 + READ_EVERY;
        assert_eq!(r.due(t1).len(), 1, "still read 15 s after it was seen over");
        let late = Read::Records {
            records: vec![record(FleetEventType::ServiceError, "spotInstanceCountLimitExceeded", "over the limit")],
            until: None,
        };
        let (found, _) = r.record("fleet-1", late, t1);
        assert_eq!(found.len(), 1, "the late reason is reported: {found:?}");
        let t2 = t0 + HISTORY_LAG;
        assert_eq!(r.due(t2).len(), 1);
        r.record("fleet-1", empty(), t2);
        assert!(r.due(t2 + READ_EVERY).is_empty(), "forgotten after a read past the lag");
    }

    #[test]
    fn a_look_reads_a_bounded_number_of_fleets_and_reaches_them_all_in_turn() {
        let t0 = Instant::now();
        let mut r = HistoryReader::default();
        for i in 0..10 {
            r.follow(&format!("fleet-{i:02}"), SystemTime::now(), t0);
        }
        let first: Vec<String> = r.due(t0).into_iter().map(|(id, _)| id).collect();
        assert_eq!(first, ["fleet-00", "fleet-01", "fleet-02", "fleet-03"]);
        for id in &first {
            r.record(id, Read::Records { records: vec![], until: None }, t0);
        }
        let second: Vec<String> = r.due(t0).into_iter().map(|(id, _)| id).collect();
        assert_eq!(second, ["fleet-04", "fleet-05", "fleet-06", "fleet-07"]);
    }
}
