//! A condition `c IS TRUE` of a `WHERE` (a conjunct) is `c`: a filter keeps the rows where its
//! condition is true, and drops those where it is false or NULL, either way. DataFusion writes
//! `x > ANY (subquery)` as `EXISTS (… WHERE (x > y) IS TRUE)`; bare, `x = y` is a key the
//! decorrelated join can hash on, where `IS TRUE` made it a condition tried on every pair.

use datafusion_common::Result;
use datafusion_common::tree_node::Transformed;
use datafusion_expr::utils::{conjunction, split_conjunction_owned};
use datafusion_expr::{Expr, Filter, LogicalPlan, lit};
use datafusion_optimizer::{OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub(crate) struct IsTrueConditions;

impl OptimizerRule for IsTrueConditions {
    fn name(&self) -> &str {
        "is_true_conditions"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    /// Every filter of the plan, those of its subqueries too (an `EXISTS` in the select list
    /// keeps its filter inside, where the optimizer's own walk does not go).
    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up_with_subqueries(bare_conditions)
    }
}

fn bare_conditions(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Filter(f) = plan else {
        return Ok(Transformed::no(plan));
    };
    let conjuncts = split_conjunction_owned(f.predicate);
    let changed = conjuncts.iter().any(|c| matches!(c, Expr::IsTrue(_)));
    let bare: Vec<Expr> = conjuncts
        .into_iter()
        .map(|c| match c {
            Expr::IsTrue(inner) => *inner,
            other => other,
        })
        .collect();
    let filter = LogicalPlan::Filter(Filter::try_new(conjunction(bare).unwrap_or_else(|| lit(true)), f.input)?);
    Ok(if changed { Transformed::yes(filter) } else { Transformed::no(filter) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field, Schema};
    use datafusion_expr::col;
    use datafusion_expr::logical_plan::builder::table_scan;
    use datafusion_optimizer::OptimizerContext;

    #[test]
    fn a_conjunct_is_true_is_bare_and_a_nested_one_stays() {
        let schema = Schema::new(vec![Field::new("a", DataType::Int32, true), Field::new("b", DataType::Int32, true)]);
        let scan = table_scan(Some("t"), &schema, None).unwrap();
        let before = scan
            .filter(Expr::IsTrue(Box::new(col("a").eq(col("b")))).and(Expr::IsTrue(Box::new(col("a").gt(lit(1))))))
            .unwrap()
            .filter(Expr::IsTrue(Box::new(col("a").eq(lit(2)))).or(col("b").eq(lit(3))))
            .unwrap()
            .build()
            .unwrap();
        let after = IsTrueConditions.rewrite(before, &OptimizerContext::new()).unwrap();
        assert!(after.transformed);
        let LogicalPlan::Filter(top) = after.data else { panic!() };
        assert!(
            matches!(&top.predicate, Expr::BinaryExpr(b) if matches!(b.left.as_ref(), Expr::IsTrue(_))),
            "the OR's IS TRUE is not a conjunct: it stays: {}",
            top.predicate
        );
        let LogicalPlan::Filter(below) = top.input.as_ref() else { panic!() };
        assert_eq!(below.predicate, col("t.a").eq(col("t.b")).and(col("t.a").gt(lit(1))));
    }
}
