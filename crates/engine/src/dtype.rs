//! The Polars type of each column type a spec can declare.

use polars::prelude::{DataType, TimeUnit};
use runner_spec::DType;

/// A spec type's Polars equivalent.
pub(crate) trait PolarsType {
    /// The Polars type.
    fn polars(self) -> DataType;
}

impl PolarsType for DType {
    fn polars(self) -> DataType {
        match self {
            Self::Str => DataType::String,
            Self::Bool => DataType::Boolean,
            Self::I8 => DataType::Int8,
            Self::I16 => DataType::Int16,
            Self::I32 => DataType::Int32,
            Self::I64 => DataType::Int64,
            Self::U8 => DataType::UInt8,
            Self::U16 => DataType::UInt16,
            Self::U32 => DataType::UInt32,
            Self::U64 => DataType::UInt64,
            Self::F32 => DataType::Float32,
            Self::F64 => DataType::Float64,
            Self::Date => DataType::Date,
            Self::Datetime => DataType::Datetime(TimeUnit::Microseconds, None),
        }
    }
}
