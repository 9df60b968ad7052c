//! An integer literal that fits in 32 bits is an `INTEGER`, as in DuckDB (DataFusion reads every
//! integer literal as a `BIGINT`): `i + 1` of an `INTEGER` column stays an `INTEGER`, and
//! overflows as DuckDB's does (the item fails) instead of widening silently. Runs in the
//! analyzer, before types are coerced.

use datafusion_common::config::ConfigOptions;
use datafusion_common::tree_node::Transformed;
use datafusion_common::{Result, ScalarValue};
#[cfg(test)]
use datafusion_expr::ExprSchemable;
use datafusion_expr::{Expr, LogicalPlan};
use datafusion_optimizer::analyzer::AnalyzerRule;

#[derive(Debug, Default)]
pub(crate) struct IntegerLiterals;

impl AnalyzerRule for IntegerLiterals {
    fn name(&self) -> &str {
        "integer_literals"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        // A LIMIT's count is not a value of the query: leave it.
        super::rewrite_expressions(plan, |p| matches!(p, LogicalPlan::Limit(_)), |e, _| narrowed(e))
    }
}

fn narrowed(e: Expr) -> Transformed<Expr> {
    match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), m) if i32::try_from(v).is_ok() => {
            Transformed::yes(Expr::Literal(ScalarValue::Int32(Some(v as i32)), m))
        }
        other => Transformed::no(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::DataType;

    #[test]
    fn literals_that_fit_become_integers_and_others_stay_bigints() {
        let small = narrowed(Expr::Literal(ScalarValue::Int64(Some(7)), None)).data;
        assert_eq!(small, Expr::Literal(ScalarValue::Int32(Some(7)), None));
        let big = Expr::Literal(ScalarValue::Int64(Some(1 << 40)), None);
        assert_eq!(narrowed(big.clone()).data, big);
        let edge = narrowed(Expr::Literal(ScalarValue::Int64(Some(i64::from(i32::MIN))), None)).data;
        assert_eq!(edge.get_type(&datafusion_common::DFSchema::empty()).ok(), Some(DataType::Int32));
    }
}
