//! Uncorrelated scalar subqueries (`x > (SELECT avg(v) FROM u)`, `(SELECT DISTINCT c FROM u)`):
//! each is planned on its own, checked to give at most one row (several rows fail the item,
//! as in SQL; none gives NULL), and joined onto the rows that use it as a column of one value.
//! Correlated ones are decorrelated into joins by the planner, or refused.

use polars::prelude::*;
use runner_sql::datafusion_common::tree_node::{TreeNode, TreeNodeRecursion};
use runner_sql::datafusion_expr::{Expr as Sql, Subquery};

use super::{LowerError, Lowered, Lowering, Result, unsupported};

impl Lowering<'_> {
    /// Joins onto `input` a column for each uncorrelated scalar subquery in `exprs`, and records
    /// its name, so that lowering the expressions finds it.
    pub(crate) fn scalar_subqueries(&mut self, mut input: Lowered, exprs: &[&Sql]) -> Result<Lowered> {
        let mut found: Vec<Subquery> = Vec::new();
        for e in exprs {
            e.apply(|x| {
                if let Sql::ScalarSubquery(s) = x {
                    if !found.contains(s) {
                        found.push(s.clone());
                    }
                    return Ok(TreeNodeRecursion::Jump);
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .map_err(|e| LowerError(e.to_string()))?;
        }
        for s in found {
            if !s.outer_ref_columns.is_empty() {
                return unsupported("a correlated scalar subquery that is not one aggregate");
            }
            let sub = self.plan(&s.subquery)?;
            let [value] = sub.names.as_slice() else {
                return unsupported("a scalar subquery of several columns");
            };
            let (n, v) = (self.namer.fresh(), self.namer.fresh());
            // The value reads the check, so no optimizer can drop it.
            let one = sub
                .frame
                .select([len().alias(n.clone()), col(value.clone()).first().alias(v.clone())])
                .select([col(v.clone()).filter(at_most_one_row(col(n)).lt_eq(lit(1)))]);
            let keys = (self.namer.fresh(), self.namer.fresh());
            input.frame = super::join::cross_join(input.frame, one, &keys);
            self.scalars.push((s, v));
        }
        Ok(input)
    }
}

/// The count, failing the item if it is over one.
fn at_most_one_row(count: Expr) -> Expr {
    count.map(
        |c| {
            let rows = c.as_materialized_series().cast(&DataType::UInt64)?;
            if rows.u64()?.iter().flatten().any(|n| n > 1) {
                polars_bail!(ComputeError: "a scalar subquery returned more than one row (it must return at most one)");
            }
            Ok(c)
        },
        |_, f| Ok(f.clone()),
    )
}
