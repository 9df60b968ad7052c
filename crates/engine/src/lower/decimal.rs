//! Decimal products computed as SQL computes them: the unscaled integers multiplied, the scales
//! added, exactly. Polars 0.55 multiplies decimals at the larger input's scale (rescaling both
//! operands, then dividing the 128-bit product by a power of ten for every row), so the plain
//! lowering raised one operand to the result's scale first and cast the product back with a
//! check: four passes and a 128-bit division per row, most of TPC-H Q1's time. This kernel is
//! one pass of one multiplication; a product past the result's precision fails the item, as
//! DuckDB's does.

use polars::prelude::arity::broadcast_try_binary_elementwise;
use polars::prelude::*;
use polars::sql::FunctionOptions;

/// `a * b` of decimals of scales `sa` and `sb`, as a decimal of precision `p` and scale
/// `sa + sb` (the planner's type for it).
pub(crate) fn product(a: Expr, b: Expr, p: usize, scale: usize) -> Expr {
    let output = move |_: &Schema, fields: &[Field]| -> PolarsResult<Field> {
        let name = fields.first().map(|f| f.name().clone()).unwrap_or_else(|| "product".into());
        Ok(Field::new(name, DataType::Decimal(p, scale)))
    };
    let kernel = move |args: &mut [Column]| -> PolarsResult<Column> { multiply(&args[0], &args[1], p, scale) };
    let udf = UserDefinedFunction {
        name: "decimal product".into(),
        fun: new_column_udf(BaseColumnUdf::new(kernel, output)),
        options: FunctionOptions::elementwise(),
    };
    udf.call(vec![a, b])
}

fn multiply(a: &Column, b: &Column, p: usize, scale: usize) -> PolarsResult<Column> {
    let (x, y) = (a.as_materialized_series().decimal()?, b.as_materialized_series().decimal()?);
    // The planner typed the operands; a scale of theirs that differs would misplace the point.
    if x.scale() + y.scale() != scale {
        polars_bail!(ComputeError: "decimal product of scales {} and {} can't have scale {scale}", x.scale(), y.scale());
    }
    let (x, y) = (x.physical(), y.physical());
    let bound = 10i128.pow(p as u32);
    let overflow = |l: i128, r: i128| polars_err!(ComputeError: "decimal overflow: a product of unscaled values {l} and {r} does not fit in DECIMAL({p}, {scale})");
    let exact = |l: i128, r: i128| l.checked_mul(r).filter(|v| v.abs() < bound).ok_or_else(|| overflow(l, r));
    let name = a.name().clone();
    // No NULLs and one buffer each (or a constant): a plain loop, no validity to build.
    let out = match (x.null_count(), y.null_count(), x.cont_slice(), y.cont_slice()) {
        (0, 0, Ok(l), Ok(r)) if l.len() == r.len() => {
            let v: PolarsResult<Vec<i128>> = l.iter().zip(r).map(|(l, r)| exact(*l, *r)).collect();
            Int128Chunked::from_vec(name, v?)
        }
        (0, 0, Ok(l), Ok([r])) => {
            Int128Chunked::from_vec(name, l.iter().map(|l| exact(*l, *r)).collect::<PolarsResult<_>>()?)
        }
        (0, 0, Ok([l]), Ok(r)) => {
            Int128Chunked::from_vec(name, r.iter().map(|r| exact(*l, *r)).collect::<PolarsResult<_>>()?)
        }
        _ => broadcast_try_binary_elementwise(x, y, |l, r| match (l, r) {
            (Some(l), Some(r)) => exact(l, r).map(Some),
            _ => Ok(None),
        })?
        .with_name(name),
    };
    Ok(out.into_decimal_unchecked(p, scale).into_series().into_column())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decimals(name: &str, v: &[Option<i128>], p: usize, s: usize) -> Column {
        Int128Chunked::from_iter_options(name.into(), v.iter().copied())
            .into_decimal_unchecked(p, s)
            .into_series()
            .into_column()
    }

    /// The unscaled values of a decimal column.
    fn raw(c: &Column) -> Vec<Option<i128>> {
        let values = c.as_materialized_series().decimal().expect("decimal").physical().clone();
        (0..values.len()).map(|i| values.get(i)).collect()
    }

    #[test]
    fn a_product_keeps_every_digit_and_nulls_stay_null() {
        // 1.25 × -0.05 = -0.0625; 99.99 × 0.10 = 9.9990; NULL × 2.00 = NULL.
        let a = decimals("a", &[Some(125), Some(9999), None], 15, 2);
        let b = decimals("b", &[Some(-5), Some(10), Some(200)], 15, 2);
        let out = multiply(&a, &b, 31, 4).expect("multiplies");
        assert_eq!(out.dtype(), &DataType::Decimal(31, 4));
        assert_eq!(raw(&out), [Some(-625), Some(99990), None]);
        // A constant operand: 1.25 × 3 and 99.99 × 3.
        let three = decimals("c", &[Some(3)], 10, 0);
        let out = multiply(&a.slice(0, 2), &three, 26, 2).expect("multiplies");
        assert_eq!(raw(&out), [Some(375), Some(29997)]);
    }

    #[test]
    fn a_product_past_its_precision_fails_naming_it() {
        let a = decimals("a", &[Some(99_999)], 5, 0);
        let err = multiply(&a, &a, 9, 0).expect_err("99,999² has ten digits");
        assert!(err.to_string().contains("does not fit in DECIMAL(9, 0)"), "{err}");
    }
}
