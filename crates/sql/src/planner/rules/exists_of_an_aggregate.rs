//! `EXISTS (SELECT max(v) FROM u WHERE u.k = t.k)` is always true: an aggregate without `GROUP
//! BY` returns one row, even over no input. DataFusion's decorrelation makes it a semi join on
//! the correlation, which drops the outer rows with no match (a silent wrong answer). This rule
//! replaces such an `EXISTS` with `true` (`NOT EXISTS` with `false`) first.
//!
//! It applies when the subquery is, under projections, aliases and sorts only, an aggregate
//! with no grouping. A `HAVING` (a filter above the aggregate), a `LIMIT` or an `OFFSET` can
//! remove the one row, so those are left alone.

use datafusion_common::Result;
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_expr::{Expr, LogicalPlan, lit};
use datafusion_optimizer::optimizer::ApplyOrder;
use datafusion_optimizer::{OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub(crate) struct ExistsOfAnAggregate;

impl OptimizerRule for ExistsOfAnAggregate {
    fn name(&self) -> &str {
        "exists_of_an_aggregate"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        plan.map_expressions(|e| {
            e.transform_up(|e| match e {
                Expr::Exists(x) if one_row(&x.subquery.subquery) => Ok(Transformed::yes(lit(!x.negated))),
                other => Ok(Transformed::no(other)),
            })
        })
    }
}

/// True when `plan` always returns exactly one row: an ungrouped aggregate under projections,
/// aliases and sorts.
fn one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Aggregate(a) => a.group_expr.is_empty(),
        LogicalPlan::Projection(p) => one_row(&p.input),
        LogicalPlan::SubqueryAlias(s) => one_row(&s.input),
        LogicalPlan::Sort(s) => s.fetch.is_none_or(|n| n > 0) && one_row(&s.input),
        _ => false,
    }
}
