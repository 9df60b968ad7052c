//! How many items a worker runs at once, and how many threads each item's Polars pool gets. A
//! worker reads its machine (cores, memory) and divides it by what one item needs, so a
//! 16-vCPU instance does the work of eight 2-vCPU ones instead of idling 14 paid vCPUs.

/// What the worker's machine holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// Cores the worker may use.
    pub vcpus: usize,
    /// Memory in MiB (`None` when it cannot be read).
    pub memory_mib: Option<u64>,
}

/// Overrides what the machine reports: a container whose limits the runner can't see, or a
/// test stand-in playing an instance of some size.
pub const VCPUS_ENV: &str = "SPOTLAKE_VCPUS";
/// As [`VCPUS_ENV`], for memory in MiB.
pub const MEMORY_ENV: &str = "SPOTLAKE_MEMORY_MIB";

impl Machine {
    /// Reads this machine, with the env overrides on top.
    pub fn read() -> Self {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<u64>().ok()).filter(|v| *v > 0);
        let vcpus = env(VCPUS_ENV)
            .map(|v| v as usize)
            .unwrap_or_else(|| std::thread::available_parallelism().map(usize::from).unwrap_or(1));
        let memory_mib = env(MEMORY_ENV).or_else(total_memory_mib);
        Machine { vcpus, memory_mib }
    }
}

#[cfg(target_os = "linux")]
fn total_memory_mib() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

#[cfg(not(target_os = "linux"))]
fn total_memory_mib() -> Option<u64> {
    None
}

/// What one item needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemNeeds {
    /// vCPUs per item.
    pub vcpus: usize,
    /// Memory per item in MiB (the step's memory limit), if known.
    pub memory_mib: Option<u64>,
}

/// How a worker divides its machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    /// Items run at once.
    pub slots: usize,
    /// Threads for each item's Polars pool.
    pub threads_per_item: usize,
}

/// The memory the OS and the worker itself keep, out of what items may use.
const RESERVED_MIB: u64 = 512;

/// Slots: the machine's vCPUs over the item's, bounded by memory; always at least one, so an
/// item bigger than the machine still runs (and its memory limit decides).
pub fn pack(machine: Machine, needs: ItemNeeds) -> Packing {
    let by_cpu = machine.vcpus / needs.vcpus.max(1);
    let by_memory = match (machine.memory_mib, needs.memory_mib) {
        (Some(total), Some(per)) if per > 0 => (total.saturating_sub(RESERVED_MIB) / per) as usize,
        _ => usize::MAX,
    };
    let slots = by_cpu.min(by_memory).max(1);
    Packing { slots, threads_per_item: (machine.vcpus / slots).max(1) }
}

impl Packing {
    /// The threads per item when the step has only `items` items in all. A worker never runs
    /// more than that many at once, so the cores of slots they can't fill go to the items that
    /// run: one item on a 16-vCPU instance gets 16 threads, not the 1 of a 16-slot packing.
    pub fn for_step_items(self, vcpus: usize, items: Option<usize>) -> Packing {
        let Some(items) = items else { return self };
        let busy = self.slots.min(items).max(1);
        Packing { slots: self.slots, threads_per_item: (vcpus / busy).max(self.threads_per_item) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_of_few_items_gives_them_the_cores_of_the_slots_they_cannot_fill() {
        let p = pack(m(16, 65536), ItemNeeds { vcpus: 1, memory_mib: None });
        assert_eq!(p, Packing { slots: 16, threads_per_item: 1 });
        assert_eq!(p.for_step_items(16, Some(1)), Packing { slots: 16, threads_per_item: 16 });
        assert_eq!(p.for_step_items(16, Some(3)), Packing { slots: 16, threads_per_item: 5 });
        assert_eq!(p.for_step_items(16, Some(100)), p, "enough items fill every slot");
        assert_eq!(p.for_step_items(16, None), p, "unknown: the packing as it is");
        let big = pack(m(2, 4096), ItemNeeds { vcpus: 4, memory_mib: None });
        assert_eq!(big.for_step_items(2, Some(1)), big, "never fewer threads than the packing gave");
    }

    fn m(vcpus: usize, memory_mib: u64) -> Machine {
        Machine { vcpus, memory_mib: Some(memory_mib) }
    }

    #[test]
    fn a_16_vcpu_instance_runs_eight_2_vcpu_items_with_two_threads_each() {
        let p = pack(m(16, 65536), ItemNeeds { vcpus: 2, memory_mib: None });
        assert_eq!(p, Packing { slots: 8, threads_per_item: 2 });
    }

    #[test]
    fn memory_bounds_the_slots() {
        // 16 GiB less the reserve holds three 4.5 GiB items, though the cores would take eight.
        let p = pack(m(16, 16384), ItemNeeds { vcpus: 2, memory_mib: Some(4608) });
        assert_eq!(p.slots, 3);
        assert_eq!(p.threads_per_item, 5);
    }

    #[test]
    fn an_item_bigger_than_the_machine_still_gets_one_slot() {
        let p = pack(m(2, 4096), ItemNeeds { vcpus: 4, memory_mib: Some(8192) });
        assert_eq!(p, Packing { slots: 1, threads_per_item: 2 });
    }

    #[test]
    fn unknown_memory_leaves_the_cores_to_decide() {
        let p = pack(Machine { vcpus: 8, memory_mib: None }, ItemNeeds { vcpus: 1, memory_mib: Some(1 << 20) });
        assert_eq!(p.slots, 8);
    }
}
