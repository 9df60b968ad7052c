//! Where a double meets a decimal in one value (`coalesce(sum(x), 0.0)`, the branches of a
//! `CASE`, `greatest`, `least`, a column of a `UNION`), the value is a double, as in
//! DuckDB. DataFusion makes it a `DECIMAL(30,15)`, which rounds the double and fails past 15
//! digits. Runs in the analyzer, before types are coerced, and casts the decimal operands (a
//! union's decimal inputs' columns) to doubles.

use std::sync::Arc;

use arrow_schema::DataType;
use datafusion_common::config::ConfigOptions;
use datafusion_common::tree_node::{Transformed, TransformedResult};
use datafusion_common::{DFSchema, Result};
use datafusion_expr::expr::{Case, ScalarFunction};
use datafusion_expr::{Expr, ExprSchemable, LogicalPlan, Projection, Union, cast};
use datafusion_optimizer::analyzer::AnalyzerRule;

#[derive(Debug, Default)]
pub(crate) struct FloatsOverDecimals;

impl AnalyzerRule for FloatsOverDecimals {
    fn name(&self) -> &str {
        "floats_over_decimals"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::rewrite_expressions(plan, |_| false, doubled)?.transform_up_with_subqueries(union_doubled).data()
    }
}

/// A `UNION` column that is a double in one input and a decimal in another: each input where it
/// is a decimal projects it as a double, under its own name.
fn union_doubled(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Union(u) = plan else { return Ok(Transformed::no(plan)) };
    let width = u.schema.fields().len();
    let mixed: Vec<usize> = (0..width)
        .filter(|&i| {
            let types = || u.inputs.iter().filter_map(|p| p.schema().fields().get(i).map(|f| f.data_type().clone()));
            types().any(|t| t.is_floating()) && types().any(|t| matches!(t, DataType::Decimal128(..)))
        })
        .collect();
    if mixed.is_empty() {
        return Ok(Transformed::no(LogicalPlan::Union(u)));
    }
    let mut inputs = Vec::with_capacity(u.inputs.len());
    for input in u.inputs {
        let schema = Arc::clone(input.schema());
        let decimal = |i: usize| matches!(schema.field(i).data_type(), DataType::Decimal128(..));
        if !mixed.iter().any(|&i| decimal(i)) {
            inputs.push(input);
            continue;
        }
        let columns = schema.columns().into_iter().enumerate().map(|(i, c)| {
            let column = Expr::Column(c);
            match mixed.contains(&i) && decimal(i) {
                true => cast(column, DataType::Float64).alias(schema.field(i).name()),
                false => column,
            }
        });
        inputs.push(Arc::new(LogicalPlan::Projection(Projection::try_new(columns.collect(), input)?)));
    }
    Ok(Transformed::yes(LogicalPlan::Union(Union::try_new_with_loose_types(inputs)?)))
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
            if matches!(f.func.name(), "coalesce" | "greatest" | "least")
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
