//! `nullif(a, b)` is `CASE WHEN a = b THEN NULL ELSE a END`, as DuckDB and the SQL standard
//! define it: its type is `a`'s (`nullif(0.0, 100.00)` is a `DECIMAL(2,1)`). DataFusion's
//! function coerces both arguments to one type and returns that. Runs in the analyzer, before
//! types are coerced.

use datafusion_common::config::ConfigOptions;
use datafusion_common::tree_node::Transformed;
use datafusion_common::{DFSchema, Result, ScalarValue};
use datafusion_expr::expr::Case;
use datafusion_expr::{Expr, LogicalPlan, lit};
use datafusion_optimizer::analyzer::AnalyzerRule;

#[derive(Debug, Default)]
pub(crate) struct NullifAsCase;

impl AnalyzerRule for NullifAsCase {
    fn name(&self) -> &str {
        "nullif_as_case"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::rewrite_expressions(plan, |_| false, as_case)
    }
}

fn as_case(e: Expr, _schema: &DFSchema) -> Transformed<Expr> {
    match e {
        Expr::ScalarFunction(f) if f.func.name() == "nullif" && f.args.len() == 2 => {
            let mut args = f.args.into_iter();
            let (Some(a), Some(b)) = (args.next(), args.next()) else {
                unreachable!("two arguments, checked above");
            };
            let equal = a.clone().eq(b);
            Transformed::yes(Expr::Case(Case {
                expr: None,
                when_then_expr: vec![(Box::new(equal), Box::new(lit(ScalarValue::Null)))],
                else_expr: Some(Box::new(a)),
            }))
        }
        other => Transformed::no(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field, Schema};
    use datafusion_expr::logical_plan::builder::table_scan;
    use datafusion_expr::{ExprSchemable, col};

    #[test]
    fn nullif_is_a_case_of_the_first_arguments_type() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Decimal128(2, 1), true),
            Field::new("b", DataType::Decimal128(5, 2), true),
        ]);
        let scan = table_scan(Some("t"), &schema, None).unwrap().build().unwrap();
        let nullif = datafusion_functions::core::expr_fn::nullif(col("a"), col("b"));
        let before = datafusion_expr::LogicalPlanBuilder::from(scan).project([nullif]).unwrap().build().unwrap();
        assert!(before.display_indent().to_string().contains("nullif(t.a, t.b)"), "{}", before.display_indent());
        let after = NullifAsCase.analyze(before, &ConfigOptions::default()).unwrap();
        let text = after.display_indent().to_string();
        assert!(text.contains("CASE WHEN t.a = t.b THEN NULL ELSE t.a END AS nullif(t.a,t.b)"), "{text}");
        let LogicalPlan::Projection(p) = &after else { panic!("{text}") };
        let ty = p.expr[0].get_type(p.input.schema()).unwrap();
        assert_eq!(ty, DataType::Decimal128(2, 1));
    }
}
