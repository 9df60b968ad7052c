//! Arrow types (the planner's) and Polars types, both ways. A type with no exact counterpart is
//! refused by name, never approximated.

use polars::prelude::{DataType, TimeUnit};
use runner_sql::arrow_schema::{DataType as ArrowType, Field, TimeUnit as ArrowUnit};

use super::{LowerError, Result};

/// The Polars type of a planner type.
pub(crate) fn polars_type(t: &ArrowType) -> Result<DataType> {
    Ok(match t {
        ArrowType::Null => DataType::Null,
        ArrowType::Boolean => DataType::Boolean,
        ArrowType::Int8 => DataType::Int8,
        ArrowType::Int16 => DataType::Int16,
        ArrowType::Int32 => DataType::Int32,
        ArrowType::Int64 => DataType::Int64,
        ArrowType::UInt8 => DataType::UInt8,
        ArrowType::UInt16 => DataType::UInt16,
        ArrowType::UInt32 => DataType::UInt32,
        ArrowType::UInt64 => DataType::UInt64,
        ArrowType::Float32 => DataType::Float32,
        ArrowType::Float64 => DataType::Float64,
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => DataType::String,
        ArrowType::Binary | ArrowType::LargeBinary | ArrowType::BinaryView => DataType::Binary,
        ArrowType::Date32 => DataType::Date,
        ArrowType::Timestamp(unit, tz) => {
            if tz.is_some() {
                return Err(LowerError(format!("the type {t} (a timestamp with a time zone) is not supported")));
            }
            DataType::Datetime(polars_unit(unit), None)
        }
        ArrowType::Duration(unit) => DataType::Duration(polars_unit(unit)),
        ArrowType::Decimal128(p, s) if *s >= 0 => DataType::Decimal(usize::from(*p), *s as usize),
        other => return Err(LowerError(format!("the type {other} is not supported"))),
    })
}

/// The type a `sum` of result type `out` adds in: one size wider than the result, so that a sum
/// past the result's range fails when it is cast back instead of wrapping.
pub(crate) fn sum_type(out: &ArrowType) -> Result<DataType> {
    Ok(match out {
        ArrowType::Int64 | ArrowType::UInt64 => DataType::Int128,
        ArrowType::Decimal128(_, s) if *s >= 0 => DataType::Decimal(38, *s as usize),
        other => polars_type(other)?,
    })
}

fn polars_unit(u: &ArrowUnit) -> TimeUnit {
    match u {
        ArrowUnit::Second | ArrowUnit::Millisecond => TimeUnit::Milliseconds,
        ArrowUnit::Microsecond => TimeUnit::Microseconds,
        ArrowUnit::Nanosecond => TimeUnit::Nanoseconds,
    }
}

/// An input column as the planner sees it, or `None` for a type it can't (the column can't be
/// read by SQL; a query naming it fails as an unknown column would).
pub fn arrow_field(name: &str, t: &DataType) -> Option<Field> {
    let ty = match t {
        DataType::Null => ArrowType::Null,
        DataType::Boolean => ArrowType::Boolean,
        DataType::Int8 => ArrowType::Int8,
        DataType::Int16 => ArrowType::Int16,
        DataType::Int32 => ArrowType::Int32,
        DataType::Int64 => ArrowType::Int64,
        DataType::UInt8 => ArrowType::UInt8,
        DataType::UInt16 => ArrowType::UInt16,
        DataType::UInt32 => ArrowType::UInt32,
        DataType::UInt64 => ArrowType::UInt64,
        DataType::Float32 => ArrowType::Float32,
        DataType::Float64 => ArrowType::Float64,
        DataType::String => ArrowType::Utf8,
        DataType::Binary => ArrowType::Binary,
        DataType::Date => ArrowType::Date32,
        DataType::Datetime(u, None) => ArrowType::Timestamp(arrow_unit(*u), None),
        DataType::Duration(u) => ArrowType::Duration(arrow_unit(*u)),
        DataType::Decimal(p, s) => ArrowType::Decimal128(u8::try_from(*p).ok()?, i8::try_from(*s).ok()?),
        _ => return None,
    };
    Some(Field::new(name, ty, true))
}

fn arrow_unit(u: TimeUnit) -> ArrowUnit {
    match u {
        TimeUnit::Milliseconds => ArrowUnit::Millisecond,
        TimeUnit::Microseconds => ArrowUnit::Microsecond,
        TimeUnit::Nanoseconds => ArrowUnit::Nanosecond,
    }
}
