//! Where a double meets a decimal in one value (`coalesce(sum(x), 0.0)`, the branches of a
//! `CASE`, `nullif`, `greatest`, `least`), the value is a double, as in DuckDB. DataFusion makes
//! it a `DECIMAL(30,15)`, which rounds the double and fails past 15 digits. Runs in the
//! analyzer, before types are coerced, and casts the decimal operands to doubles.

use arrow_schema::DataType;
use datafusion_common::config::ConfigOptions;
use datafusion_common::tree_node::Transformed;
use datafusion_common::{DFSchema, Result};
use datafusion_expr::expr::{Case, ScalarFunction};
use datafusion_expr::{Expr, ExprSchemable, LogicalPlan, cast};
use datafusion_optimizer::analyzer::AnalyzerRule;

#[derive(Debug, Default)]
pub(crate) struct FloatsOverDecimals;

impl AnalyzerRule for FloatsOverDecimals {
    fn name(&self) -> &str {
        "floats_over_decimals"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::rewrite_expressions(plan, |_| false, doubled)
    }
}

fn doubled(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    let kind = |x: &Expr| x.get_type(schema).ok();
    let mixed = |xs: &[&Expr]| {
        let types: Vec<Option<DataType>> = xs.iter().map(|x| kind(x)).collect();
        types.iter().any(|t| matches!(t, Some(t) if t.is_floating()))
            && types.iter().any(|t| matches!(t, Some(DataType::Decimal128(..))))
    };
    let fix = |x: Expr| match x.get_type(schema) {
        Ok(DataType::Decimal128(..)) => cast(x, DataType::Float64),
        _ => x,
    };
    match e {
        Expr::ScalarFunction(f)
            if matches!(f.func.name(), "coalesce" | "nullif" | "greatest" | "least")
                && mixed(&f.args.iter().collect::<Vec<_>>()) =>
        {
            let args = f.args.into_iter().map(fix).collect();
            Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(f.func, args)))
        }
        Expr::Case(c) => {
            let mut values: Vec<&Expr> = c.when_then_expr.iter().map(|(_, t)| t.as_ref()).collect();
            if let Some(e) = &c.else_expr {
                values.push(e);
            }
            if !mixed(&values) {
                return Transformed::no(Expr::Case(c));
            }
            let when_then = c.when_then_expr.into_iter().map(|(w, t)| (w, Box::new(fix(*t)))).collect();
            let otherwise = c.else_expr.map(|e| Box::new(fix(*e)));
            Transformed::yes(Expr::Case(Case { expr: c.expr, when_then_expr: when_then, else_expr: otherwise }))
        }
        other => Transformed::no(other),
    }
}
