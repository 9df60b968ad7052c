//! `INTERSECT ALL` and `EXCEPT ALL` keep the counts of duplicates: a row that is `m` times on
//! the left and `n` times on the right is `min(m, n)` times in the intersection and
//! `max(m - n, 0)` times in the difference. DataFusion plans both as a semi or anti join of all
//! columns, which keeps every copy of a matched row (or drops every copy). This rule numbers the
//! copies of each row on both sides (`row_number()` partitioned by every column) and joins on the
//! columns and the copy's number, so that copy `i` of a row meets copy `i` on the other side.
//!
//! Which joins came from `ALL` set operations is told by the query's text, not guessed from the
//! plan's shape (a user's `EXISTS` can make the same join): `syntax` names the right side of each
//! such operation [`MARKER`], and this rule finds the joins over it. Runs in the analyzer, after
//! types are coerced.

use std::sync::Arc;

use datafusion_common::config::ConfigOptions;
use datafusion_common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion_common::{NullEquality, Result};
use datafusion_expr::{Expr, ExprFunctionExt, Join, JoinType, LogicalPlan, LogicalPlanBuilder, col};
use datafusion_optimizer::analyzer::AnalyzerRule;

/// The alias `syntax` gives the right side of an `INTERSECT ALL` or `EXCEPT ALL`.
pub(crate) const MARKER: &str = "__spotlake_multiset";

#[derive(Debug, Default)]
pub(crate) struct MultisetSetOperations;

impl AnalyzerRule for MultisetSetOperations {
    fn name(&self) -> &str {
        "multiset_set_operations"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| match p {
            LogicalPlan::Join(j) if is_multiset(&j) => numbered_join(j).map(Transformed::yes),
            other => Ok(Transformed::no(other)),
        })
        .data()
    }
}

/// A semi or anti join of all columns whose right side `syntax` marked.
fn is_multiset(j: &Join) -> bool {
    if !matches!(j.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
        || j.null_equality != NullEquality::NullEqualsNull
        || j.filter.is_some()
    {
        return false;
    }
    // The marked side is `SELECT * FROM (…) AS marker`: a projection over the alias, which the
    // planner may alias again (as `right`) when both sides share names.
    let mut side = j.right.as_ref();
    loop {
        match side {
            LogicalPlan::SubqueryAlias(a) if a.alias.table() == MARKER => return true,
            LogicalPlan::SubqueryAlias(a) => side = a.input.as_ref(),
            LogicalPlan::Projection(p) => side = p.input.as_ref(),
            _ => return false,
        }
    }
}

/// The join with each side's copies numbered, the numbers joined too, and only the left
/// side's columns kept.
fn numbered_join(j: Join) -> Result<LogicalPlan> {
    let kept: Vec<Expr> = j.left.schema().columns().into_iter().map(Expr::Column).collect();
    let left = numbered(Arc::unwrap_or_clone(j.left), "__spotlake_left_copy")?;
    let right = numbered(Arc::unwrap_or_clone(j.right), "__spotlake_right_copy")?;
    let (mut lkeys, mut rkeys): (Vec<Expr>, Vec<Expr>) = j.on.into_iter().unzip();
    lkeys.push(col("__spotlake_left_copy"));
    rkeys.push(col("__spotlake_right_copy"));
    LogicalPlanBuilder::from(left)
        .join_with_expr_keys(right, j.join_type, (lkeys, rkeys), None)?
        .project(kept)?
        .build()
        .and_then(with_nulls_equal)
}

/// `plan` with a column `name`: the number of the row among the rows equal to it (1, 2, …).
fn numbered(plan: LogicalPlan, name: &str) -> Result<LogicalPlan> {
    let columns: Vec<Expr> = plan.schema().columns().into_iter().map(Expr::Column).collect();
    let copy = datafusion_functions_window::expr_fn::row_number().partition_by(columns.clone()).build()?;
    let copy_name = copy.schema_name().to_string();
    let mut out = columns;
    out.push(col(copy_name).alias(name));
    LogicalPlanBuilder::from(plan).window(vec![copy])?.project(out)?.build()
}

/// The join under the projection `plan`, with NULL keys equal (set operations compare rows as
/// `IS NOT DISTINCT FROM` does).
fn with_nulls_equal(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_down(|p| match p {
        LogicalPlan::Join(mut j) => {
            j.null_equality = NullEquality::NullEqualsNull;
            Ok(Transformed::new(LogicalPlan::Join(j), true, datafusion_common::tree_node::TreeNodeRecursion::Stop))
        }
        other => Ok(Transformed::no(other)),
    })
    .data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field, Schema};
    use datafusion_expr::logical_plan::builder::table_scan;

    fn scan(name: &str) -> LogicalPlanBuilder {
        let schema = Schema::new(vec![Field::new("k", DataType::Int32, true)]);
        table_scan(Some(name), &schema, None).unwrap()
    }

    fn except_all(marked: bool) -> LogicalPlan {
        let right = scan("u").alias(if marked { MARKER } else { "u2" }).unwrap().build().unwrap();
        scan("t")
            .join_detailed(right, JoinType::LeftAnti, (vec!["k"], vec!["k"]), None, NullEquality::NullEqualsNull)
            .unwrap()
            .build()
            .unwrap()
    }

    #[test]
    fn a_marked_anti_join_numbers_the_copies_of_each_row() {
        let before = except_all(true);
        let after = MultisetSetOperations.analyze(before, &ConfigOptions::default()).unwrap();
        let text = after.display_indent().to_string();
        assert!(text.contains("LeftAnti Join"), "{text}");
        assert!(text.contains("__spotlake_left_copy = __spotlake_right_copy"), "the copies are joined:\n{text}");
        assert_eq!(text.matches("WindowAggr").count(), 2, "one numbering per side:\n{text}");
        let names: Vec<&str> = after.schema().fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["k"], "only the left side's columns are kept");
        let LogicalPlan::Projection(p) = &after else { panic!("{text}") };
        let LogicalPlan::Join(j) = p.input.as_ref() else { panic!("{text}") };
        assert_eq!(j.null_equality, NullEquality::NullEqualsNull);
    }

    #[test]
    fn an_unmarked_join_is_left_alone() {
        let before = except_all(false);
        let after = MultisetSetOperations.analyze(before.clone(), &ConfigOptions::default()).unwrap();
        assert_eq!(after, before);
    }
}
