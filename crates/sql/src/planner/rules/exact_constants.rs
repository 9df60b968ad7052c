//! A constant the lowering would compute exactly (an exact cast of a literal: `DATE '1995-09-01'`,
//! `CAST(1 AS DECIMAL)`; a constant date moved by a constant interval) is made a literal before
//! DataFusion's rules run. Otherwise its `common_sub_expression_eliminate` hoists a constant used
//! twice (TPC-H's `o_orderdate >= DATE 'd' AND o_orderdate < DATE 'd' + INTERVAL '3' MONTH`) into
//! a projected column, and the filter that reads that column is no longer pushed into Polars'
//! Parquet scan: every row is decoded and the interval is added per row. The values are
//! `crate::constants`', the lowering's own, so no answer changes.

use datafusion_common::tree_node::Transformed;
use datafusion_common::{Result, ScalarValue};
use datafusion_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion_optimizer::{OptimizerConfig, OptimizerRule};

use crate::constants::{constant, moved_date};

#[derive(Debug, Default)]
pub(crate) struct ExactConstants;

impl OptimizerRule for ExactConstants {
    fn name(&self) -> &str {
        "exact_constants"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let before = plan.clone();
        let after = super::rewrite_expressions(plan, |_| false, |e, _| folded(e))?;
        Ok(if after == before { Transformed::no(after) } else { Transformed::yes(after) })
    }
}

/// `e` as a literal when it is a constant that isn't one yet.
fn folded(e: Expr) -> Transformed<Expr> {
    match &e {
        Expr::Cast(_) => match constant(&e) {
            Some(v) => Transformed::yes(Expr::Literal(v, None)),
            None => Transformed::no(e),
        },
        Expr::BinaryExpr(BinaryExpr { left, op: op @ (Operator::Plus | Operator::Minus), right }) => {
            let (
                Expr::Literal(ScalarValue::Date32(Some(day)), _),
                Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(i)), _),
            ) = (left.as_ref(), right.as_ref())
            else {
                return Transformed::no(e);
            };
            if i.nanoseconds != 0 {
                return Transformed::no(e);
            }
            let sign = if *op == Operator::Minus { -1 } else { 1 };
            match moved_date(*day, sign * i.months, sign * i.days) {
                Some(d) => Transformed::yes(Expr::Literal(ScalarValue::Date32(Some(d)), None)),
                None => Transformed::no(e),
            }
        }
        _ => Transformed::no(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tables;
    use arrow_schema::{DataType, Field};

    fn plan(sql: &str) -> String {
        let tables = Tables::new().with_table(
            "orders",
            [
                Field::new("o_orderdate", DataType::Date32, true),
                Field::new("o_price", DataType::Decimal128(15, 2), true),
            ],
        );
        crate::plan(sql, &tables).map(|p| p.display_indent().to_string()).unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn a_date_used_twice_stays_a_literal_in_the_filter() {
        let p = plan(
            "SELECT count(*) FROM orders WHERE o_orderdate >= DATE '1993-07-01' \
             AND o_orderdate < DATE '1993-07-01' + INTERVAL '3' MONTH",
        );
        // Before the rule: `Projection: CAST(Utf8("1993-07-01") AS Date32) AS __common_expr_…`
        // under a filter reading that column.
        assert!(!p.contains("__common_expr"), "{p}");
        assert!(
            p.contains("orders.o_orderdate >= Date32(\"1993-07-01\") AND orders.o_orderdate < Date32(\"1993-10-01\")"),
            "{p}"
        );
    }

    #[test]
    fn a_month_added_to_a_months_last_day_clamps() {
        // 2024-01-31 (day 19753) plus a month is 2024-02-29.
        let e = Expr::Literal(ScalarValue::Date32(Some(19753)), None)
            + Expr::Literal(ScalarValue::new_interval_mdn(1, 0, 0), None);
        assert_eq!(folded(e).data, Expr::Literal(ScalarValue::Date32(Some(19753 + 29)), None));
    }

    #[test]
    fn inexact_casts_and_intervals_of_a_time_of_day_are_left() {
        let kept = plan("SELECT CAST(o_price AS INT), DATE '2024-01-31' + INTERVAL '1' HOUR FROM orders");
        assert!(kept.contains("Date32(\"2024-01-31\") + IntervalMonthDayNano"), "{kept}");
        let cast = datafusion_expr::cast(datafusion_expr::lit(2.5f64), DataType::Int32);
        assert!(!folded(cast).transformed);
    }
}
