//! How much spot capacity a step asks for, and when. The orchestrator says how many items
//! still want a slot; [`Capacity`] compares that with what is up and on its way and decides
//! whether one more `request` fleet is needed. Its rules:
//! - at most one top-up fleet in flight: a fleet younger than [`PENDING_GRACE`] that has not
//!   shown all it asked for, and has reported no problem, is on its way;
//! - a shortage or a quota answer backs the next top-up off (doubling, capped), and capacity
//!   that shows up resets it;
//! - a step that wants capacity and has had no instance up for the configured wait is starved:
//!   the caller fails it.
//!
//! No AWS calls here: the caller makes them and hands in what it saw.

use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::trouble::Trouble;

/// A fleet that has not shown what it asked for counts as capacity on its way this long.
pub(crate) const PENDING_GRACE: Duration = Duration::from_secs(90);

/// A request fleet made for the step.
#[derive(Debug, Clone)]
pub(crate) struct Launched {
    pub(crate) id: String,
    pub(crate) vcpus: usize,
    pub(crate) at: Instant,
    /// The most vCPUs it has shown at once: capacity that showed and went (a reclaim) is not on
    /// its way any more.
    pub(crate) shown: usize,
    /// It reported a problem (a shortage, a quota): nothing more is coming from it.
    pub(crate) failed: bool,
}

/// What to do this look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Enough is up or coming, or a top-up waits for a backoff or the fleet in flight.
    Wait,
    /// Ask for this many more vCPUs.
    TopUp(usize),
    /// No instance has been up for the configured wait while capacity was wanted.
    Starved(Duration),
}

/// One step's capacity.
#[derive(Debug)]
pub(crate) struct Capacity {
    pub(crate) fleets: Vec<Launched>,
    backoff: Backoff,
    starved_since: Option<Instant>,
    wait: Duration,
    running_before: usize,
    /// A shortage or quota answer came since capacity last showed.
    short_of_capacity: bool,
}

impl Capacity {
    /// A step's capacity, starved after `wait` with nothing up.
    pub(crate) fn new(wait: Duration, now: Instant) -> Self {
        Self {
            fleets: Vec::new(),
            backoff: Backoff::new(Duration::from_secs(30), Duration::from_secs(600)),
            starved_since: Some(now),
            wait,
            running_before: 0,
            short_of_capacity: false,
        }
    }

    /// A fleet was made.
    pub(crate) fn launched(&mut self, id: String, vcpus: usize, now: Instant) {
        self.fleets.push(Launched { id, vcpus, at: now, shown: 0, failed: false });
    }

    /// The fleets young enough that their instances may not be in EC2's listings yet.
    pub(crate) fn young(&self, now: Instant) -> Vec<String> {
        self.fleets
            .iter()
            .filter(|f| !f.failed && now.duration_since(f.at) < PENDING_GRACE)
            .map(|f| f.id.clone())
            .collect()
    }

    /// What a fleet has shown (vCPUs of its active instances).
    pub(crate) fn shown(&mut self, fleet: &str, vcpus: usize) {
        if let Some(f) = self.fleets.iter_mut().find(|f| f.id == fleet) {
            f.shown = f.shown.max(vcpus);
        }
    }

    /// Whether a fleet of the step showed no instance and has reported no problem: one EC2 ends
    /// in that state was deleted at once.
    pub(crate) fn showed_nothing(&self, fleet: &str) -> bool {
        self.fleets.iter().any(|f| f.id == fleet && f.shown == 0 && !f.failed)
    }

    /// A problem a fleet (or a `CreateFleet` call, `fleet` = None) reported at `now`: the fleet
    /// is not on its way any more, and the next top-up waits (every kind of problem backs off:
    /// a fleet that failed for a permission or a bad AMI would fail again at once).
    pub(crate) fn problem(&mut self, fleet: Option<&str>, trouble: Trouble, now: Instant) -> Option<Duration> {
        if let Some(f) = fleet.and_then(|id| self.fleets.iter_mut().find(|f| f.id == id)) {
            f.failed = true;
        }
        (trouble != Trouble::NotFound).then(|| self.backoff.failed(now))
    }

    /// Whether the wait is for spot capacity (a shortage or a quota), as opposed to another
    /// problem.
    pub(crate) fn shortage(&mut self, trouble: Trouble) {
        if matches!(trouble, Trouble::Capacity | Trouble::Quota) {
            self.short_of_capacity = true;
        }
    }

    /// Decides at `now`, with the vCPUs up and the vCPUs wanted.
    pub(crate) fn decide(&mut self, running_vcpus: usize, desired_vcpus: usize, now: Instant) -> Decision {
        if running_vcpus > self.running_before {
            // Capacity came: the shortage is over for now.
            self.backoff.succeeded();
            self.short_of_capacity = false;
        }
        self.running_before = running_vcpus;
        if running_vcpus > 0 || desired_vcpus == 0 {
            self.starved_since = None;
        } else {
            let since = *self.starved_since.get_or_insert(now);
            if now.duration_since(since) >= self.wait {
                return Decision::Starved(now.duration_since(since));
            }
        }
        let pending = self.pending_vcpus(now);
        let have = running_vcpus + pending;
        if desired_vcpus <= have || pending > 0 || !self.backoff.ready(now) {
            return Decision::Wait;
        }
        Decision::TopUp(desired_vcpus - have)
    }

    /// vCPUs asked for and not shown yet by fleets on their way.
    pub(crate) fn pending_vcpus(&self, now: Instant) -> usize {
        self.fleets.iter().filter(|f| on_its_way(f, now)).map(|f| f.vcpus.saturating_sub(f.shown)).sum()
    }

    /// vCPUs asked for over every fleet.
    pub(crate) fn requested(&self) -> usize {
        self.fleets.iter().map(|f| f.vcpus).sum()
    }

    /// Whether the step waits for capacity (wanted, and none up): the boot watchdog leaves
    /// such a step to the starvation rule.
    pub(crate) fn waiting(&self) -> bool {
        self.starved_since.is_some() && self.short_of_capacity
    }
}

fn on_its_way(f: &Launched, now: Instant) -> bool {
    !f.failed && f.shown < f.vcpus && now.duration_since(f.at) < PENDING_GRACE
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(1200);

    #[test]
    fn one_top_up_in_flight_at_a_time() {
        let t0 = Instant::now();
        let mut c = Capacity::new(WAIT, t0);
        c.launched("fleet-1".into(), 16, t0);
        // Nothing shown yet: 16 vCPUs on their way, none asked for twice.
        assert_eq!(c.decide(0, 16, t0 + Duration::from_secs(3)), Decision::Wait);
        // Half shown; the rest is still on its way, and more work does not add a fleet.
        c.shown("fleet-1", 8);
        assert_eq!(c.decide(8, 32, t0 + Duration::from_secs(6)), Decision::Wait);
        // Past the grace, what did not show is not coming: one top-up for the gap.
        assert_eq!(c.decide(8, 32, t0 + PENDING_GRACE), Decision::TopUp(24));
        c.launched("fleet-2".into(), 24, t0 + PENDING_GRACE);
        assert_eq!(c.decide(8, 32, t0 + PENDING_GRACE + Duration::from_secs(3)), Decision::Wait);
        assert_eq!(c.pending_vcpus(t0 + PENDING_GRACE), 24, "fleet-2 is on its way; fleet-1 is not");
        assert_eq!(c.requested(), 40);
    }

    #[test]
    fn a_shortage_backs_off_the_next_top_up_until_capacity_comes() {
        let t0 = Instant::now();
        let mut c = Capacity::new(WAIT, t0);
        c.launched("fleet-1".into(), 8, t0);
        // The fleet reports a shortage: it is not on its way any more, and the next top-up
        // waits 30 s, then 60 s after the next shortage.
        assert_eq!(c.problem(Some("fleet-1"), Trouble::Capacity, t0), Some(Duration::from_secs(30)));
        c.shortage(Trouble::Capacity);
        assert_eq!(c.decide(0, 8, t0 + Duration::from_secs(3)), Decision::Wait);
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(c.decide(0, 8, t1), Decision::TopUp(8));
        c.launched("fleet-2".into(), 8, t1);
        assert_eq!(c.problem(None, Trouble::Quota, t1), Some(Duration::from_secs(60)));
        c.shortage(Trouble::Quota);
        assert!(c.waiting());
        assert_eq!(c.decide(0, 8, t1 + Duration::from_secs(59)), Decision::Wait);
        // Capacity comes: the backoff resets.
        c.shown("fleet-2", 4);
        assert_eq!(c.decide(4, 8, t1 + Duration::from_secs(60)), Decision::Wait);
        assert!(!c.waiting());
        let t2 = t1 + PENDING_GRACE;
        assert_eq!(c.decide(4, 8, t2), Decision::TopUp(4));
    }

    #[test]
    fn any_problem_backs_off_the_next_top_up_and_only_shortages_count_as_waiting() {
        // A fleet failing for a permission or a bad AMI must not be followed by a new fleet
        // every look (they would pile up for the whole run).
        let t0 = Instant::now();
        let mut c = Capacity::new(WAIT, t0);
        c.launched("fleet-1".into(), 8, t0);
        for (k, t) in
            [Trouble::Permission, Trouble::Configuration, Trouble::Other, Trouble::Throttled].into_iter().enumerate()
        {
            let at = t0 + Duration::from_secs(100 * k as u64);
            assert!(c.problem(Some("fleet-1"), t, at).is_some(), "{t:?}");
            assert_eq!(c.decide(0, 8, at + Duration::from_secs(3)), Decision::Wait, "{t:?}");
        }
        assert!(!c.waiting(), "not a shortage: the boot watchdog still applies");
        assert_eq!(c.problem(Some("fleet-1"), Trouble::NotFound, t0), None);
        // Young fleets are the ones whose instances may lag in the listing.
        let mut c = Capacity::new(WAIT, t0);
        c.launched("fleet-2".into(), 4, t0);
        c.shown("fleet-2", 4);
        assert_eq!(c.pending_vcpus(t0), 0, "it showed all it asked for");
        assert_eq!(c.young(t0), ["fleet-2"], "but its instances may not be listed yet");
        assert!(c.young(t0 + PENDING_GRACE).is_empty());
    }

    #[test]
    fn a_fleet_ended_before_showing_anything_backs_the_next_one_off_each_time() {
        // EC2 deletes a request over the account's fleet limits at once: the old rule followed
        // it with a new fleet every PENDING_GRACE, with nothing said.
        let t0 = Instant::now();
        let mut c = Capacity::new(WAIT, t0);
        c.launched("fleet-1".into(), 8, t0);
        assert!(c.showed_nothing("fleet-1"));
        assert_eq!(
            c.problem(Some("fleet-1"), Trouble::Other, t0 + Duration::from_secs(3)),
            Some(Duration::from_secs(30))
        );
        assert!(!c.showed_nothing("fleet-1"), "reported once");
        assert_eq!(c.decide(0, 8, t0 + Duration::from_secs(32)), Decision::Wait);
        let t1 = t0 + Duration::from_secs(33);
        assert_eq!(c.decide(0, 8, t1), Decision::TopUp(8));
        c.launched("fleet-2".into(), 8, t1);
        assert_eq!(c.problem(Some("fleet-2"), Trouble::Other, t1), Some(Duration::from_secs(60)), "doubled");
        // One that showed instances and then ended is not such a fleet.
        c.launched("fleet-3".into(), 8, t1);
        c.shown("fleet-3", 8);
        assert!(!c.showed_nothing("fleet-3"));
    }

    #[test]
    fn a_step_with_nothing_up_for_the_wait_is_starved() {
        let t0 = Instant::now();
        let mut c = Capacity::new(WAIT, t0);
        c.launched("fleet-1".into(), 8, t0);
        assert_eq!(c.decide(8, 8, t0 + Duration::from_secs(60)), Decision::Wait);
        // All reclaimed at 100 s: the wait starts again from there.
        let gone = t0 + Duration::from_secs(100);
        assert!(matches!(c.decide(0, 8, gone), Decision::TopUp(8)));
        assert!(matches!(c.decide(0, 8, gone + WAIT - Duration::from_secs(1)), Decision::Wait | Decision::TopUp(_)));
        assert_eq!(c.decide(0, 8, gone + WAIT), Decision::Starved(WAIT));
        // Nothing wanted is never starved.
        let mut idle = Capacity::new(WAIT, t0);
        assert_eq!(idle.decide(0, 0, t0 + WAIT * 2), Decision::Wait);
    }
}
