//! The memory limit an item runs under, and what an item is told when memory ends it. The limit
//! is the step's `memory_limit_mb`, or else the worker's default: a share of its machine's
//! memory, split among the items that run on it at once, so that a runaway item is stopped and
//! named before the kernel's OOM killer ends it (or its worker) with no word. An item over its
//! limit, or ended by the OOM killer all the same, fails without a retry: the same item needs
//! the same memory. The one exception is an item that started in a warm process, which still
//! held what earlier items left: a fresh process may fit it, so that failure counts against the
//! item's attempts.

use crate::wire::WorkItem;

/// The share of the machine's memory (in percent) that the items on it may use together; the
/// rest is the OS's, the worker's, and slack for the 100 ms between two reads of an item's size.
pub const MACHINE_SHARE_PERCENT: u64 = 90;

/// An item's memory limit, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimit {
    /// The step's `memory_limit_mb`.
    Step(u64),
    /// The worker's default, for a step that sets none: [`MACHINE_SHARE_PERCENT`] of the
    /// machine's memory over the items that run on it at once.
    Default {
        /// The limit in MiB.
        mib: u64,
        /// The machine's memory in MiB.
        machine_mib: u64,
        /// Items that run on the machine at once.
        items: usize,
    },
    /// None: the step sets none and the machine's memory is unknown.
    Unlimited,
}

impl MemoryLimit {
    /// The default limit of a machine of `machine_mib` (`None`: unknown) that runs `items` items
    /// at once; never under 1 MiB.
    pub fn default_for(machine_mib: Option<u64>, items: usize) -> Self {
        match machine_mib {
            Some(machine_mib) => {
                let items = items.max(1);
                let mib = (machine_mib * MACHINE_SHARE_PERCENT / 100 / items as u64).max(1);
                Self::Default { mib, machine_mib, items }
            }
            None => Self::Unlimited,
        }
    }

    /// The limit of `item`: its step's, else `default`.
    pub fn of(item: &WorkItem, default: Self) -> Self {
        item.memory_limit_mb.map_or(default, Self::Step)
    }

    /// The limit in bytes, if there is one.
    pub fn bytes(self) -> Option<u64> {
        match self {
            Self::Step(mib) | Self::Default { mib, .. } => Some(mib * 1024 * 1024),
            Self::Unlimited => None,
        }
    }

    /// The limit as the item is told it.
    fn describe(self) -> String {
        match self {
            Self::Step(mib) => format!("its memory limit of {mib} MiB"),
            Self::Default { mib, machine_mib, items } => format!(
                "its memory limit of {mib} MiB (the default: {MACHINE_SHARE_PERCENT}% of the machine's \
                 {machine_mib} MiB, shared by the {items} item(s) it runs at once)"
            ),
            Self::Unlimited => "no memory limit".into(),
        }
    }
}

/// What to change, naming the step.
fn advice(item: &WorkItem, limit: MemoryLimit) -> String {
    let step = &item.step;
    match limit {
        MemoryLimit::Step(_) => format!(
            "if the item needs more, raise `memory_limit_mb` in step {step:?} of the job spec (a worker \
             on EC2 then runs only as many items at once as its instance holds), or make the step's items smaller"
        ),
        MemoryLimit::Default { .. } | MemoryLimit::Unlimited => format!(
            "set `memory_limit_mb` in step {step:?} of the job spec to what one item needs (a worker \
             on EC2 then runs only as many items at once as its instance holds), or make the step's items smaller"
        ),
    }
}

fn mib(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}

/// The error of an item stopped above its limit, at `rss` bytes.
pub(super) fn over_limit(item: &WorkItem, limit: MemoryLimit, rss: u64) -> String {
    format!(
        "item {} went over {} at {} MiB resident and was stopped; {}",
        item.label,
        limit.describe(),
        mib(rss),
        advice(item, limit)
    )
}

/// The error of an item the kernel's OOM killer ended, at a peak of `peak` bytes if known.
pub(super) fn killed_by_kernel(item: &WorkItem, limit: MemoryLimit, peak: Option<u64>) -> String {
    let reached = match peak {
        Some(bytes) if bytes > 0 => format!(" after reaching {} MiB resident", mib(bytes)),
        _ => String::new(),
    };
    let under = match limit {
        MemoryLimit::Unlimited => " with no memory limit".to_string(),
        _ => format!(", under {}: the machine ran out first", limit.describe()),
    };
    format!(
        "item {} was killed by the kernel for lack of memory (the OOM killer){reached}{under}; {}",
        item.label,
        advice(item, limit)
    )
}

/// The kernel's count of processes its OOM killer ended (`oom_kill` in `/proc/vmstat`, Linux
/// 4.13 on), read before an item starts: an item process that then ends by SIGKILL with no
/// result, while the count rose, was ended for memory, not stopped by a person or a shutdown.
#[derive(Debug, Clone, Copy)]
pub(super) struct OomKills(Option<u64>);

impl OomKills {
    /// The count now (none where it can't be read: then no SIGKILL is taken for the OOM killer).
    pub(super) fn now() -> Self {
        Self(std::fs::read_to_string("/proc/vmstat").ok().as_deref().and_then(oom_kills))
    }

    /// Whether the OOM killer ended a process since this count was read.
    pub(super) fn rose(self) -> bool {
        matches!((self.0, Self::now().0), (Some(before), Some(after)) if after > before)
    }
}

fn oom_kills(vmstat: &str) -> Option<u64> {
    vmstat.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(memory_limit_mb: Option<u64>) -> WorkItem {
        let at = |path: &str| runner_types::Location::parse_absolute(path).unwrap();
        WorkItem {
            run_id: "r1".into(),
            job: "tpch".into(),
            spec_uri: at("/tmp/job.toml"),
            step: "q18".into(),
            id: "i1".into(),
            label: "q18/part-3".into(),
            partition: None,
            inputs: Default::default(),
            outputs: Default::default(),
            manifest_uri: at("/tmp/m.json"),
            memory_limit_mb,
        }
    }

    #[test]
    fn the_default_is_a_share_of_the_machine_split_among_its_items() {
        assert_eq!(
            MemoryLimit::default_for(Some(16384), 4),
            MemoryLimit::Default { mib: 3686, machine_mib: 16384, items: 4 }
        );
        assert_eq!(MemoryLimit::default_for(Some(2), 1).bytes(), Some(1024 * 1024), "never under 1 MiB");
        assert_eq!(MemoryLimit::default_for(Some(8192), 0).bytes(), Some(7372 * 1024 * 1024), "at least one item");
        assert_eq!(MemoryLimit::default_for(None, 4), MemoryLimit::Unlimited);
        let default = MemoryLimit::default_for(Some(16384), 4);
        assert_eq!(MemoryLimit::of(&item(Some(500)), default), MemoryLimit::Step(500), "the step's limit wins");
        assert_eq!(MemoryLimit::of(&item(None), default), default);
    }

    #[test]
    fn an_item_over_its_limit_is_told_the_limit_and_how_to_set_it() {
        let said = over_limit(&item(Some(1)), MemoryLimit::Step(1), 3 * 1024 * 1024 + 5);
        assert_eq!(
            said,
            "item q18/part-3 went over its memory limit of 1 MiB at 3 MiB resident and was stopped; if the item \
             needs more, raise `memory_limit_mb` in step \"q18\" of the job spec (a worker on EC2 then runs only \
             as many items at once as its instance holds), or make the step's items smaller"
        );
        let said = over_limit(&item(None), MemoryLimit::default_for(Some(8192), 2), 4000 * 1024 * 1024);
        assert!(
            said.starts_with(
                "item q18/part-3 went over its memory limit of 3686 MiB (the default: 90% of the machine's \
                 8192 MiB, shared by the 2 item(s) it runs at once) at 4000 MiB resident and was stopped; set \
                 `memory_limit_mb` in step \"q18\" of the job spec to what one item needs"
            ),
            "{said}"
        );
    }

    #[test]
    fn an_item_the_oom_killer_ended_is_told_what_it_reached() {
        let said = killed_by_kernel(&item(None), MemoryLimit::Unlimited, Some(20 * 1024 * 1024 * 1024));
        assert!(
            said.starts_with(
                "item q18/part-3 was killed by the kernel for lack of memory (the OOM killer) after reaching 20480 MiB \
                 resident with no memory limit; set `memory_limit_mb` in step \"q18\" of the job spec"
            ),
            "{said}"
        );
        let said = killed_by_kernel(&item(Some(4096)), MemoryLimit::Step(4096), None);
        assert!(
            said.starts_with(
                "item q18/part-3 was killed by the kernel for lack of memory (the OOM killer), under its memory limit \
                 of 4096 MiB: the machine ran out first; if the item needs more"
            ),
            "{said}"
        );
    }

    #[test]
    fn the_oom_kill_count_is_read_from_vmstat() {
        assert_eq!(oom_kills("pgfault 10\noom_kill 3\nnr_foo 1\n"), Some(3));
        assert_eq!(oom_kills("pgfault 10\n"), None, "a kernel before 4.13");
        assert!(!OomKills(None).rose(), "unknown: not taken for an OOM kill");
        assert!(!OomKills(Some(u64::MAX)).rose());
    }
}
