//! `x IN (SELECT y …)` anywhere but as a condition of `WHERE` on its own becomes `EXISTS` tests
//! that keep SQL's three values:
//!
//! ```sql
//! CASE WHEN EXISTS (SELECT … WHERE y = x) THEN true
//!      WHEN (x IS NULL AND EXISTS (SELECT …)) OR EXISTS (SELECT … WHERE y IS NULL) THEN NULL
//!      ELSE false END
//! ```
//!
//! DataFusion decorrelates an `IN` that is not a `WHERE` conjunct (under `OR`, `NOT`, `CASE`)
//! as a mark join whose mark is only true or false, so `NOT (x IN (…)) OR c` kept rows where
//! SQL's `IN` is NULL; in the select list it does not decorrelate it at all. The first test's
//! correlation is an equality, so it becomes an equi-join. An `IN` that is a conjunct of `WHERE`
//! stays: there NULL and false both drop the row, and it becomes a semi join (a null-aware anti
//! join for `NOT IN`).

use std::sync::Arc;

use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{Column, DFSchema, ExprSchema, Result, ScalarValue};
use datafusion_expr::expr::{Case, Exists, InSubquery};
use datafusion_expr::expr_rewriter::NamePreserver;
use datafusion_expr::utils::{conjunction, split_conjunction_owned};
use datafusion_expr::{Expr, Filter, LogicalPlan, LogicalPlanBuilder, Subquery, lit};
use datafusion_optimizer::optimizer::ApplyOrder;
use datafusion_optimizer::{OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub(crate) struct InAsExists;

impl OptimizerRule for InAsExists {
    fn name(&self) -> &str {
        "in_as_exists"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let mut outer = DFSchema::empty();
        for input in plan.inputs() {
            outer.merge(input.schema());
        }
        match plan {
            LogicalPlan::Filter(f) => {
                let mut changed = false;
                let mut kept = Vec::new();
                for c in split_conjunction_owned(f.predicate) {
                    if matches!(c, Expr::InSubquery(_)) {
                        kept.push(c);
                    } else {
                        let t = c.transform_up(|e| as_exists(e, &outer))?;
                        changed |= t.transformed;
                        kept.push(t.data);
                    }
                }
                let predicate = conjunction(kept).unwrap_or_else(|| lit(true));
                let filter = LogicalPlan::Filter(Filter::try_new(predicate, f.input)?);
                Ok(if changed { Transformed::yes(filter) } else { Transformed::no(filter) })
            }
            other => {
                let names = NamePreserver::new(&other);
                other.map_expressions(|e| {
                    let saved = names.save(&e);
                    Ok(e.transform_up(|e| as_exists(e, &outer))?.update_data(|e| saved.restore(e)))
                })
            }
        }
    }
}

fn as_exists(e: Expr, outer: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::InSubquery(InSubquery { expr, subquery, negated }) = e else {
        return Ok(Transformed::no(e));
    };
    let sub = subquery.subquery.as_ref();
    let y = Expr::Column(Column::from(sub.schema().qualified_field(0)));
    let x = outer_reference(expr.as_ref().clone(), outer)?;
    let exists = |condition: Option<Expr>| -> Result<Expr> {
        let plan = match condition {
            Some(c) => LogicalPlanBuilder::from(sub.clone()).filter(c)?.build()?,
            None => sub.clone(),
        };
        let outer_ref_columns = plan.all_out_ref_exprs();
        Ok(Expr::Exists(Exists {
            subquery: Subquery { subquery: Arc::new(plan), outer_ref_columns, spans: subquery.spans.clone() },
            negated: false,
        }))
    };
    let found = exists(Some(y.clone().eq(x)))?;
    let unknown = expr.is_null().and(exists(None)?).or(exists(Some(y.is_null()))?);
    let value = Expr::Case(Case {
        expr: None,
        when_then_expr: vec![
            (Box::new(found), Box::new(lit(true))),
            (Box::new(unknown), Box::new(Expr::Literal(ScalarValue::Boolean(None), None))),
        ],
        else_expr: Some(Box::new(lit(false))),
    });
    Ok(Transformed::yes(if negated { Expr::Not(Box::new(value)) } else { value }))
}

/// `e` as the subquery sees it: its columns are the outer query's.
fn outer_reference(e: Expr, outer: &DFSchema) -> Result<Expr> {
    e.transform_up(|e| match e {
        Expr::Column(c) => {
            let field = Arc::clone(outer.field_from_column(&c)?);
            Ok(Transformed::yes(Expr::OuterReferenceColumn(field, c)))
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}
