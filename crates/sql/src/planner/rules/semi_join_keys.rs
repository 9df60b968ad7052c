//! A semi or anti join whose left side is guessed much smaller than its right (`cardinality`)
//! first keeps, of the right side, the rows whose keys the left side has: a semi join of the
//! right with the left's keys. TPC-H's Q4 tests a quarter's orders (57,000 at scale factor 1)
//! against every late lineitem (3.8 million): the semi join builds its table from the right
//! side, so as written it hashes 1.5 million keys; reduced, it hashes the orders' keys, probes
//! the lineitems once, and builds from the few that match. Q21's semi and anti joins with an
//! inequality take the minimum and maximum per key of the reduced rows only.
//!
//! A right row whose keys no left row has can't make a left row match, so the answer is the
//! same, with the join's own NULL equality. Not for `NOT IN`'s null-aware anti join: a NULL on
//! the right empties its answer, and the reduction would drop it. Runs after `join_order`, on
//! the joins where they will run; the keys' relation is named `__spotlake_left_keys`, and the
//! reduction it adds has a right side smaller than its left, so it isn't reduced again.

use std::sync::Arc;

use datafusion_common::tree_node::Transformed;
use datafusion_common::{Column, Result};
use datafusion_expr::logical_plan::{Join, JoinConstraint};
use datafusion_expr::{Expr, JoinType, LogicalPlan, LogicalPlanBuilder};
use datafusion_optimizer::{OptimizerConfig, OptimizerRule};

use super::super::cardinality;

/// The alias of the left keys' relation.
const KEYS: &str = "__spotlake_left_keys";

/// How much larger (in guessed rows) the right side must be for the reduction.
const RATIO: f64 = 4.0;

#[derive(Debug, Default)]
pub(crate) struct SemiJoinKeys;

impl OptimizerRule for SemiJoinKeys {
    fn name(&self) -> &str {
        "semi_join_keys"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up_with_subqueries(|p| match p {
            LogicalPlan::Join(j)
                if matches!(j.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
                    && !j.null_aware
                    && !j.on.is_empty()
                    && cardinality::rows(&j.left) * RATIO <= cardinality::rows(&j.right) =>
            {
                Ok(Transformed::yes(LogicalPlan::Join(reduced(j)?)))
            }
            other => Ok(Transformed::no(other)),
        })
    }
}

/// `j` with its right side reduced to the rows whose keys its left side has.
fn reduced(j: Join) -> Result<Join> {
    let name = |i: usize| format!("__spotlake_key_{i}");
    let keys: Vec<Expr> = j.on.iter().enumerate().map(|(i, (l, _))| l.clone().alias(name(i))).collect();
    let left_keys = LogicalPlanBuilder::from(j.left.as_ref().clone()).project(keys)?.alias(KEYS)?.build()?;
    let on: Vec<(Expr, Expr)> =
        j.on.iter()
            .enumerate()
            .map(|(i, (_, r))| (r.clone(), Expr::Column(Column::new(Some(KEYS), name(i)))))
            .collect();
    let right = Join::try_new(
        Arc::clone(&j.right),
        Arc::new(left_keys),
        on,
        None,
        JoinType::LeftSemi,
        JoinConstraint::On,
        j.null_equality,
        false,
    )?;
    Join::try_new(
        j.left,
        Arc::new(LogicalPlan::Join(right)),
        j.on,
        j.filter,
        j.join_type,
        j.join_constraint,
        j.null_equality,
        j.null_aware,
    )
}

#[cfg(test)]
mod tests {
    use crate::{TableStats, Tables};
    use arrow_schema::{DataType, Field};

    fn tables() -> Tables {
        let int = |n: &str| Field::new(n, DataType::Int64, true);
        Tables::new()
            .with_table("orders", [int("o_orderkey"), int("o_day")])
            .with_stats("orders", TableStats { rows: 1_500_000, ranges: Default::default() })
            .with_table("lineitem", [int("l_orderkey"), int("l_late"), int("l_suppkey")])
            .with_stats("lineitem", TableStats { rows: 6_000_000, ranges: Default::default() })
    }

    fn plan(sql: &str) -> String {
        crate::plan(sql, &tables()).map(|p| p.display_indent().to_string()).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    #[test]
    fn a_small_left_side_reduces_the_right_to_its_keys() {
        // Q4's shape. Before: `LeftSemi Join: orders.o_orderkey = __correlated_sq_1.l_orderkey`
        // over every lineitem.
        let p = plan(
            "SELECT count(*) FROM orders WHERE o_day BETWEEN 1 AND 90 AND EXISTS \
             (SELECT * FROM lineitem WHERE l_orderkey = o_orderkey AND l_late > 0)",
        );
        assert!(
            p.contains("LeftSemi Join: __correlated_sq_1.l_orderkey = __spotlake_left_keys.__spotlake_key_0"),
            "{p}"
        );
        assert!(p.contains("Projection: orders.o_orderkey AS __spotlake_key_0"), "{p}");
        // The same with NOT EXISTS: an anti join, its right side reduced alike.
        let p = plan(
            "SELECT count(*) FROM orders WHERE o_day BETWEEN 1 AND 90 AND NOT EXISTS \
             (SELECT * FROM lineitem WHERE l_orderkey = o_orderkey AND l_suppkey <> 3)",
        );
        assert!(p.contains("LeftAnti Join") && p.contains("__spotlake_left_keys"), "{p}");
    }

    #[test]
    fn a_semi_join_inside_a_scalar_subquery_is_reduced_too() {
        // The optimizer doesn't walk into a subquery left in a filter for a rule that walks
        // itself; before, this one's semi join kept its whole right side.
        let p = plan(
            "SELECT l_orderkey FROM lineitem WHERE l_late > (SELECT count(*) FROM orders \
             WHERE o_day BETWEEN 1 AND 90 AND EXISTS (SELECT * FROM lineitem WHERE l_orderkey = o_orderkey))",
        );
        assert!(p.contains("__spotlake_left_keys"), "{p}");
    }

    #[test]
    fn a_large_left_side_and_not_in_are_left_alone() {
        let p = plan("SELECT count(*) FROM lineitem WHERE EXISTS (SELECT * FROM orders WHERE o_orderkey = l_orderkey)");
        assert!(!p.contains("__spotlake_left_keys"), "{p}");
        // NOT IN: a NULL among the lineitems' keys empties the answer; the reduction would drop it.
        let p = plan(
            "SELECT count(*) FROM orders WHERE o_day BETWEEN 1 AND 90 AND o_orderkey NOT IN \
             (SELECT l_orderkey FROM lineitem)",
        );
        assert!(!p.contains("__spotlake_left_keys"), "{p}");
    }
}
