//! Column data types as users write them in a spec (`i64`, `str`, `datetime`, ...). The engine
//! maps them to Polars types.

/// A declared column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// Text.
    Str,
    /// Boolean.
    Bool,
    /// Signed integers.
    I8,
    /// 16-bit.
    I16,
    /// 32-bit.
    I32,
    /// 64-bit.
    I64,
    /// Unsigned integers.
    U8,
    /// 16-bit.
    U16,
    /// 32-bit.
    U32,
    /// 64-bit.
    U64,
    /// Floats.
    F32,
    /// 64-bit.
    F64,
    /// A calendar date.
    Date,
    /// A timestamp without time zone, microseconds.
    Datetime,
}

/// The names accepted, for error messages.
pub const DTYPE_NAMES: &str = "str, bool, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64, date, datetime";

impl DType {
    /// Parses a dtype name.
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "str" | "string" | "utf8" | "text" => Self::Str,
            "bool" | "boolean" => Self::Bool,
            "i8" | "int8" => Self::I8,
            "i16" | "int16" => Self::I16,
            "i32" | "int32" | "int" => Self::I32,
            "i64" | "int64" | "bigint" => Self::I64,
            "u8" | "uint8" => Self::U8,
            "u16" | "uint16" => Self::U16,
            "u32" | "uint32" => Self::U32,
            "u64" | "uint64" => Self::U64,
            "f32" | "float32" | "float" => Self::F32,
            "f64" | "float64" | "double" => Self::F64,
            "date" => Self::Date,
            "datetime" | "timestamp" => Self::Datetime,
            _ => {
                return Err(format!("unknown dtype {text:?}; expected one of {DTYPE_NAMES}"));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aliases_and_refuses_unknowns() {
        assert_eq!(DType::parse("Int64").unwrap(), DType::I64);
        assert_eq!(DType::parse("timestamp").unwrap(), DType::Datetime);
        let err = DType::parse("decimal").unwrap_err();
        assert!(err.contains("decimal") && err.contains("i64"), "{err}");
    }
}
