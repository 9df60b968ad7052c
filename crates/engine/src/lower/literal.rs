//! The planner's constants as Polars literals, of exactly their SQL type (a decimal keeps its
//! scale; a NULL keeps its type).

use polars::prelude::*;
use runner_sql::datafusion_common::ScalarValue;

pub(crate) use runner_sql::constants::constant;

use super::{LowerError, Result, types, unsupported};

/// A literal of the value's own type.
pub(crate) fn literal(v: &ScalarValue) -> Result<Expr> {
    let ty = types::polars_type(&v.data_type())?;
    if v.is_null() {
        return Ok(lit(NULL).cast(ty));
    }
    Ok(match v {
        ScalarValue::Boolean(Some(b)) => lit(*b),
        ScalarValue::Int8(Some(i)) => lit(*i as i32).cast(ty),
        ScalarValue::Int16(Some(i)) => lit(*i as i32).cast(ty),
        ScalarValue::Int32(Some(i)) => lit(*i).cast(ty),
        ScalarValue::Int64(Some(i)) => lit(*i).cast(ty),
        ScalarValue::UInt8(Some(i)) => lit(*i as u32).cast(ty),
        ScalarValue::UInt16(Some(i)) => lit(*i as u32).cast(ty),
        ScalarValue::UInt32(Some(i)) => lit(*i).cast(ty),
        ScalarValue::UInt64(Some(i)) => lit(*i).cast(ty),
        ScalarValue::Float32(Some(f)) => lit(*f).cast(ty),
        ScalarValue::Float64(Some(f)) => lit(*f).cast(ty),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            lit(s.as_str())
        }
        // Scalars, never a one-row series: a constant computed from a series is an input of its
        // own to Polars, and a filter that reads it is no longer pushed into the scan (which
        // then decodes every column of every row group).
        ScalarValue::Date32(Some(d)) => lit(Scalar::new_date(*d)),
        ScalarValue::Decimal128(Some(x), p, s) if *s >= 0 => lit(Scalar::new_decimal(*x, usize::from(*p), *s as usize)),
        ScalarValue::TimestampMicrosecond(Some(t), None) => lit(Scalar::new_datetime(*t, TimeUnit::Microseconds, None)),
        ScalarValue::TimestampMillisecond(Some(t), None) => {
            lit(Scalar::new_datetime(*t, TimeUnit::Milliseconds, None)).cast(ty)
        }
        ScalarValue::TimestampNanosecond(Some(t), None) => {
            lit(Scalar::new_datetime(*t, TimeUnit::Nanoseconds, None)).cast(ty)
        }
        other => return unsupported(format!("the constant {other} of type {}", other.data_type())),
    })
}

/// Values of one type as a Polars series (for `IN` lists and typed constants).
pub(crate) fn series(values: &[ScalarValue], ty: &DataType) -> Result<Series> {
    let err = |e: PolarsError| LowerError(format!("the constants {values:?} can't be made {ty}: {e}"));
    let s = match ty {
        DataType::Decimal(p, s) => {
            let mut raw = Vec::with_capacity(values.len());
            for v in values {
                let cast = v
                    .cast_to(&runner_sql::arrow_schema::DataType::Decimal128(*p as u8, *s as i8))
                    .map_err(|e| LowerError(format!("the constant {v} can't be a decimal({p}, {s}): {e}")))?;
                raw.push(match cast {
                    ScalarValue::Decimal128(x, _, _) => x,
                    _ => None,
                });
            }
            Int128Chunked::from_iter_options("".into(), raw.into_iter()).into_decimal_unchecked(*p, *s).into_series()
        }
        DataType::Datetime(..) => {
            let mut raw = Vec::with_capacity(values.len());
            for v in values {
                raw.push(match v {
                    ScalarValue::TimestampMicrosecond(x, None) => *x,
                    ScalarValue::TimestampMillisecond(x, None) => x.map(|m| m * 1000),
                    ScalarValue::TimestampNanosecond(x, None) => x.map(|n| n / 1000),
                    _ => return unsupported(format!("the constant {v} among timestamps")),
                });
            }
            Int64Chunked::from_iter_options("".into(), raw.into_iter())
                .into_series()
                .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
                .map_err(err)?
                .cast(ty)
                .map_err(err)?
        }
        _ => {
            let mut parts = Vec::with_capacity(values.len());
            for v in values {
                let one: Series = match v {
                    v if v.is_null() => Series::full_null("".into(), 1, ty),
                    ScalarValue::Boolean(Some(b)) => Series::new("".into(), [*b]),
                    ScalarValue::Int8(Some(i)) => Series::new("".into(), [*i as i32]),
                    ScalarValue::Int16(Some(i)) => Series::new("".into(), [*i as i32]),
                    ScalarValue::Int32(Some(i)) => Series::new("".into(), [*i]),
                    ScalarValue::Int64(Some(i)) => Series::new("".into(), [*i]),
                    ScalarValue::UInt8(Some(i)) => Series::new("".into(), [*i as u32]),
                    ScalarValue::UInt16(Some(i)) => Series::new("".into(), [*i as u32]),
                    ScalarValue::UInt32(Some(i)) => Series::new("".into(), [*i]),
                    ScalarValue::UInt64(Some(i)) => Series::new("".into(), [*i]),
                    ScalarValue::Float32(Some(f)) => Series::new("".into(), [*f]),
                    ScalarValue::Float64(Some(f)) => Series::new("".into(), [*f]),
                    ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
                        Series::new("".into(), [s.as_str()])
                    }
                    ScalarValue::Date32(Some(d)) => Series::new("".into(), [*d]).cast(&DataType::Date).map_err(err)?,
                    other => return unsupported(format!("the constant {other} of type {}", other.data_type())),
                };
                parts.push(one.cast(ty).map_err(err)?);
            }
            let mut all = Series::new_empty("".into(), ty);
            for p in parts {
                all.append(&p).map_err(err)?;
            }
            all
        }
    };
    Ok(s)
}
