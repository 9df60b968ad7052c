//! What a partition of a run is on its own: its data version, made from its own committed items
//! alone, and its share of its step's bill. A ranged run (a single-run backfill) reports these
//! for each partition, so a day shows the same version and the same kind of cost whether it ran
//! alone or in any range.

use std::collections::{BTreeMap, BTreeSet};

use runner_core::summary::StepSummary;

use crate::cost::Bill;

/// The data version of what an asset's items committed: what was committed, not when. A rerun
/// that commits nothing new keeps it; a changed input or step (new item ids) changes it. Items
/// are the ones of one partition (or of the whole run when it has none), so a partition's
/// version never depends on its neighbours.
pub fn data_version<'a>(asset: &str, items: impl IntoIterator<Item = &'a String>) -> String {
    let ids: BTreeSet<&str> = items.into_iter().map(String::as_str).collect();
    runner_types::stable_hash(&[asset, &ids.into_iter().collect::<Vec<_>>().join(",")])
}

/// Each partition's share of a step's bill, by the seconds its attempts ran: a partition with
/// nothing to do costs nothing, and the shares add up to the bill. When no attempt ran at all
/// (a rerun of committed work) the bill, whatever it is, is split evenly, so it still adds up.
pub fn bills(step: &StepSummary, bill: &Bill) -> BTreeMap<String, Bill> {
    let total: f64 = step.by_partition.values().map(|p| p.attempt_seconds).sum();
    let n = step.by_partition.len() as f64;
    step.by_partition
        .iter()
        .map(|(p, part)| {
            let share = if total > 0.0 { part.attempt_seconds / total } else { 1.0 / n };
            (p.clone(), bill.share(share))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use runner_core::summary::StepPart;

    use super::*;

    fn step(seconds: &[(&str, f64)]) -> StepSummary {
        let mut s = StepSummary::default();
        for (p, secs) in seconds {
            s.by_partition.insert((*p).to_string(), StepPart { attempt_seconds: *secs, ..StepPart::default() });
        }
        s
    }

    fn bill(usd: f64, hours: f64) -> Bill {
        Bill { cost_usd: Some(usd), emr_equivalent_usd: Some(usd * 4.0), instance_hours: hours, ..Bill::default() }
    }

    #[test]
    fn shares_follow_attempt_seconds_and_add_up() {
        let s = step(&[("2024-01-01", 30.0), ("2024-01-02", 10.0), ("2024-01-03", 0.0)]);
        let b = bills(&s, &bill(2.0, 8.0));
        let cost = |p: &str| b[p].cost_usd.unwrap();
        assert_eq!(cost("2024-01-01"), 1.5);
        assert_eq!(cost("2024-01-02"), 0.5);
        assert_eq!(cost("2024-01-03"), 0.0, "a partition with nothing to do costs nothing");
        assert_eq!(b["2024-01-01"].instance_hours, 6.0);
        assert_eq!(b["2024-01-02"].emr_equivalent_usd, Some(2.0));
        assert_eq!(b.values().map(|x| x.cost_usd.unwrap()).sum::<f64>(), 2.0);
    }

    #[test]
    fn a_run_with_no_attempts_splits_its_bill_evenly() {
        let s = step(&[("a", 0.0), ("b", 0.0)]);
        let free = bills(&s, &bill(0.0, 0.0));
        assert_eq!(free.len(), 2, "every partition gets a bill, not `unknown`");
        assert!(free.values().all(|b| b.cost_usd == Some(0.0) && b.instance_hours == 0.0), "{free:?}");
        // A fleet that booted and found everything committed still cost something: shared.
        let booted = bills(&s, &bill(0.3, 1.0));
        assert_eq!(booted["a"].cost_usd, Some(0.15));
        assert_eq!(booted["b"].instance_hours, 0.5);
    }

    #[test]
    fn an_unknown_price_stays_unknown_in_every_share() {
        let s = step(&[("a", 1.0), ("b", 3.0)]);
        let b = bills(&s, &Bill { cost_usd: None, unpriced: ["c7g.large spot".to_string()].into(), ..bill(0.0, 2.0) });
        assert_eq!(b["b"].cost_usd, None);
        assert_eq!(b["b"].instance_hours, 1.5);
        assert_eq!(b["a"].unpriced.len(), 1);
    }

    #[test]
    fn a_version_is_its_items_in_any_order_and_names_its_asset() {
        let (x, y, z) = ("item-x".to_string(), "item-y".to_string(), "item-z".to_string());
        assert_eq!(data_version("a", [&x, &y]), data_version("a", [&y, &x]));
        assert_ne!(data_version("a", [&x, &y]), data_version("b", [&x, &y]));
        assert_ne!(data_version("a", [&x, &y]), data_version("a", [&x, &z]));
        assert_eq!(data_version("a", [&x]), runner_types::stable_hash(&["a", "item-x"]));
    }
}
