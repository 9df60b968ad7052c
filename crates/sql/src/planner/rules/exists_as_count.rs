//! An `EXISTS (subquery)` outside `WHERE` (in the select list, an aggregate's argument, a join's
//! condition) becomes `(SELECT count(*) FROM (subquery)) > 0`: a scalar subquery of one
//! aggregate, which the planner decorrelates into a left join on the correlation (with count's
//! zero for outer rows that have no match); DataFusion decorrelates `EXISTS` in filters only.
//! In a `WHERE`, an `EXISTS` stays: a conjunct becomes a semi (or anti) join, and one under `OR`,
//! `NOT` or `CASE` a mark join, whose condition may be any comparison.

use std::sync::Arc;

use datafusion_common::Result;
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_expr::expr::Exists;
use datafusion_expr::expr_rewriter::NamePreserver;
use datafusion_expr::{Expr, LogicalPlan, LogicalPlanBuilder, Subquery, lit};
use datafusion_optimizer::optimizer::ApplyOrder;
use datafusion_optimizer::{OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub(crate) struct ExistsAsCount;

impl OptimizerRule for ExistsAsCount {
    fn name(&self) -> &str {
        "exists_as_count"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        match plan {
            LogicalPlan::Filter(_) => Ok(Transformed::no(plan)),
            other => {
                let names = NamePreserver::new(&other);
                other.map_expressions(|e| {
                    let saved = names.save(&e);
                    Ok(e.transform_up(as_count)?.update_data(|e| saved.restore(e)))
                })
            }
        }
    }
}

fn as_count(e: Expr) -> Result<Transformed<Expr>> {
    let Expr::Exists(Exists { subquery, negated }) = e else {
        return Ok(Transformed::no(e));
    };
    let counted = LogicalPlanBuilder::from(subquery.subquery.as_ref().clone())
        .aggregate(Vec::<Expr>::new(), vec![datafusion_functions_aggregate::count::count_all()])?
        .build()?;
    let n = Expr::ScalarSubquery(Subquery {
        subquery: Arc::new(counted),
        outer_ref_columns: subquery.outer_ref_columns,
        spans: subquery.spans,
    });
    Ok(Transformed::yes(if negated { n.eq(lit(0i64)) } else { n.gt(lit(0i64)) }))
}
