//! Where DataFusion's typing and DuckDB's differ, the planner follows DuckDB (the engine the
//! differential tests compare with, and the one most of our users check numbers in):
//! - `/` of integers or decimals divides doubles (`-7 / 2` is `-3.5`; `//` divides integers,
//!   truncating);
//! - `date ± n` (an integer) moves the date by n days, and is a date;
//! - `avg` is a double, whatever it averages; `median` and `percentile_cont` (`quantile_cont`)
//!   are doubles over integers and doubles, and keep a decimal's type;
//! - `floor`, `ceil` and `trunc` of a decimal are decimals of scale 0.

use std::sync::Arc;

use arrow_schema::DataType;
use datafusion_common::{DFSchema, Result, not_impl_err, plan_err};
use datafusion_expr::function::AccumulatorArgs;
use datafusion_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion_expr::{
    Accumulator, AggregateUDFImpl, BinaryExpr, ColumnarValue, Expr, ExprSchemable, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility, cast,
};
use sqlparser::ast::BinaryOperator;

/// DuckDB's arithmetic: `a / b` over exact numbers divides doubles, `//` truncates, and a date
/// plus or minus an integer counts days.
#[derive(Debug, Default)]
pub(crate) struct DuckDbArithmetic;

impl ExprPlanner for DuckDbArithmetic {
    fn plan_binary_op(&self, expr: RawBinaryExpr, schema: &DFSchema) -> Result<PlannerResult<RawBinaryExpr>> {
        let exact = |e: &Expr| {
            e.get_type(schema).map(|t| t.is_integer() || matches!(t, DataType::Decimal128(..) | DataType::Null))
        };
        if expr.op == BinaryOperator::DuckIntegerDivide {
            let integer = |e: &Expr| e.get_type(schema).map(|t| t.is_integer() || t.is_null());
            if !(integer(&expr.left)? && integer(&expr.right)?) {
                return plan_err!("`//` divides integers (truncating); cast its operands, or use `/`");
            }
            // DataFusion's `/` of integers is SQL's integer division.
            let planned = BinaryExpr::new(Box::new(expr.left), Operator::Divide, Box::new(expr.right));
            return Ok(PlannerResult::Planned(Expr::BinaryExpr(planned)));
        }
        if matches!(expr.op, BinaryOperator::Plus | BinaryOperator::Minus)
            && expr.left.get_type(schema)? == DataType::Date32
            && expr.right.get_type(schema)?.is_integer()
        {
            // Days since the epoch, moved, and a date again (DataFusion makes n an interval).
            let op = if expr.op == BinaryOperator::Plus { Operator::Plus } else { Operator::Minus };
            let days = BinaryExpr::new(
                Box::new(cast(expr.left, DataType::Int32)),
                op,
                Box::new(cast(expr.right, DataType::Int32)),
            );
            return Ok(PlannerResult::Planned(cast(Expr::BinaryExpr(days), DataType::Date32)));
        }
        if expr.op != BinaryOperator::Divide {
            return Ok(PlannerResult::Original(expr));
        }
        if exact(&expr.left)? && exact(&expr.right)? {
            let l = cast(expr.left, DataType::Float64);
            let r = cast(expr.right, DataType::Float64);
            return Ok(PlannerResult::Planned(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(l),
                Operator::Divide,
                Box::new(r),
            ))));
        }
        Ok(PlannerResult::Original(expr))
    }
}

/// `avg(x)`: the mean of `x` as a double (DataFusion's keeps a decimal's type). A decimal
/// argument stays a decimal, so that the lowering takes its exact sum over its count (one
/// division a group) instead of converting every row to a double; other numbers are doubles.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Avg {
    signature: Signature,
    aliases: Vec<String>,
}

impl Avg {
    pub(crate) fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable), aliases: vec!["mean".into()] }
    }
}

impl AggregateUDFImpl for Avg {
    fn name(&self) -> &str {
        "avg"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t @ DataType::Decimal128(..)] => Ok(vec![t.clone()]),
            [t] if t.is_numeric() || t.is_null() => Ok(vec![DataType::Float64]),
            [t] => plan_err!("avg of a value of type {t} is not supported (only of numbers)"),
            _ => plan_err!("avg takes one value"),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        // Planning only: Polars computes the mean.
        not_impl_err!("avg is computed by Polars")
    }
}

/// `median(x)` and `percentile_cont(x, q)` (also `quantile_cont`, and `percentile_cont(q) WITHIN
/// GROUP (ORDER BY x)`): interpolated between the two nearest values, so a double over integers
/// (DataFusion's keeps the integer type, which would truncate the interpolation).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Quantile {
    name: &'static str,
    signature: Signature,
    aliases: Vec<String>,
}

impl Quantile {
    pub(crate) fn median() -> Self {
        Self { name: "median", signature: Signature::any(1, Volatility::Immutable), aliases: vec![] }
    }

    pub(crate) fn percentile_cont() -> Self {
        Self {
            name: "percentile_cont",
            signature: Signature::any(2, Volatility::Immutable),
            aliases: vec!["quantile_cont".into()],
        }
    }
}

impl AggregateUDFImpl for Quantile {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn supports_within_group_clause(&self) -> bool {
        self.name == "percentile_cont"
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(t @ DataType::Decimal128(..)) => Ok(t.clone()),
            Some(t) if t.is_numeric() || t.is_null() => Ok(DataType::Float64),
            Some(t) => plan_err!("{} of a value of type {t} is not supported (only of numbers)", self.name),
            None => plan_err!("{} takes the values to interpolate", self.name),
        }
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        // Planning only: Polars computes the quantile.
        not_impl_err!("{} is computed by Polars", self.name)
    }
}

/// `floor(x)`, `ceil(x)` and `trunc(x)` of a decimal `x`: a decimal of `x`'s precision and scale 0
/// (DataFusion's keeps `x`'s scale: `floor(2.50)` would be `2.00`, a `DECIMAL(3,2)`). Any other
/// call (of a double, or `trunc(x, n)`) is typed as DataFusion's function types it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Integral(pub(crate) Arc<ScalarUDF>);

impl ScalarUDFImpl for Integral {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn aliases(&self) -> &[String] {
        self.0.aliases()
    }

    fn signature(&self) -> &Signature {
        self.0.signature()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.0.coerce_types(arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Decimal128(precision, _)] => Ok(DataType::Decimal128(*precision, 0)),
            _ => self.0.return_type(arg_types),
        }
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Planning only: Polars computes it.
        not_impl_err!("{} is computed by Polars", self.0.name())
    }
}
