//! How an output's columns become a Delta table's. Delta has no unsigned integers, no
//! nanosecond or time-of-day types, and reads timestamps as microseconds, so before a table
//! output is written its columns are cast where that keeps every value exact (unsigned to the
//! next signed width, milliseconds to microseconds, categories to text), a `u64` strictly
//! (a value past `i64::MAX` fails the item, naming the column), and the rest is refused by name
//! before anything runs. It also makes the table's schema from the written columns, and what a
//! commit needs of each written file.

use std::path::Path;

use polars::prelude::*;
use runner_spec::{OutputSpec, TableLayout};
use runner_table::schema::{ArrayType, DeltaType, StructField, StructType};
use runner_types::{Partition, TableFile, TableFiles};

use crate::EngineError;

/// What a table output's columns need before they are written.
pub(crate) struct TableColumns {
    /// Replacements for the columns that are cast.
    pub casts: Vec<Expr>,
    /// Columns cast strictly from `u64`: a failed cast is theirs.
    pub strict: Vec<String>,
    /// The table's schema: the written columns, then the path's partition column.
    pub schema: StructType,
}

fn refused(output: &str, column: &str, dtype: &DataType, why: &str) -> EngineError {
    EngineError::Output {
        output: output.to_string(),
        detail: format!(
            "column {column:?} is {dtype}, which a Delta table can't hold exactly: {why}. CAST it in the output's SQL"
        ),
    }
}

/// The casts and schema of a table output whose SQL returns `schema`.
pub(crate) fn plan(output_name: &str, schema: &Schema, layout: &TableLayout) -> Result<TableColumns, EngineError> {
    let mut casts = Vec::new();
    let mut strict = Vec::new();
    let mut fields = Vec::new();
    for (name, dtype) in schema.iter() {
        let target = match dtype {
            DataType::UInt8 => Some(DataType::Int16),
            DataType::UInt16 => Some(DataType::Int32),
            DataType::UInt32 => Some(DataType::Int64),
            DataType::UInt64 => {
                strict.push(name.to_string());
                Some(DataType::Int64)
            }
            DataType::Datetime(TimeUnit::Milliseconds, tz) => {
                Some(DataType::Datetime(TimeUnit::Microseconds, tz.clone()))
            }
            d if d.is_categorical() || d.is_enum() => Some(DataType::String),
            _ => None,
        };
        let written = target.clone().unwrap_or_else(|| dtype.clone());
        fields.push(StructField::nullable(name.as_str(), delta_type(output_name, name, &written)?));
        if let Some(target) = target {
            let c = col(name.as_str());
            casts.push(if dtype == &DataType::UInt64 { c.strict_cast(target) } else { c.cast(target) });
        }
    }
    if let Some(key) = &layout.key_column {
        fields.push(StructField::nullable(key.as_str(), DeltaType::STRING));
    }
    let schema = StructType::try_new(fields).map_err(|e| EngineError::Output {
        output: output_name.to_string(),
        detail: format!("its columns make no table schema: {e}"),
    })?;
    Ok(TableColumns { casts, strict, schema })
}

/// A written column's Delta type; nested types may hold no type that needs a cast.
fn delta_type(output: &str, column: &str, dtype: &DataType) -> Result<DeltaType, EngineError> {
    let nested = "inside a list or struct it is not cast for you";
    Ok(match dtype {
        DataType::Boolean => DeltaType::BOOLEAN,
        DataType::Int8 => DeltaType::BYTE,
        DataType::Int16 => DeltaType::SHORT,
        DataType::Int32 => DeltaType::INTEGER,
        DataType::Int64 => DeltaType::LONG,
        DataType::Float32 => DeltaType::FLOAT,
        DataType::Float64 => DeltaType::DOUBLE,
        DataType::String => DeltaType::STRING,
        DataType::Binary => DeltaType::BINARY,
        DataType::Date => DeltaType::DATE,
        DataType::Datetime(TimeUnit::Microseconds, None) => DeltaType::TIMESTAMP_NTZ,
        DataType::Datetime(TimeUnit::Microseconds, Some(_)) => DeltaType::TIMESTAMP,
        DataType::Datetime(TimeUnit::Nanoseconds, _) => {
            return Err(refused(output, column, dtype, "Delta keeps microseconds, and casting would drop digits"));
        }
        DataType::Decimal(precision, scale) => u8::try_from(*precision)
            .ok()
            .zip(u8::try_from(*scale).ok())
            .and_then(|(p, s)| DeltaType::decimal(p, s).ok())
            .ok_or_else(|| refused(output, column, dtype, "Delta decimals have at most 38 digits"))?,
        DataType::List(inner) => {
            DeltaType::from(ArrayType::new(delta_type(output, &format!("{column}[]"), inner)?, true))
        }
        DataType::Struct(fields) => {
            let inner = fields
                .iter()
                .map(|f| {
                    let path = format!("{column}.{}", f.name());
                    Ok(StructField::nullable(f.name().as_str(), delta_type(output, &path, f.dtype())?))
                })
                .collect::<Result<Vec<_>, EngineError>>()?;
            DeltaType::try_struct_type(inner).map_err(|e| refused(output, column, dtype, &e.to_string()))?
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            return Err(refused(output, column, dtype, &format!("Delta has no unsigned integers, and {nested}")));
        }
        DataType::Datetime(TimeUnit::Milliseconds, _) => return Err(refused(output, column, dtype, nested)),
        DataType::Time => return Err(refused(output, column, dtype, "Delta has no time-of-day type")),
        DataType::Duration(_) => return Err(refused(output, column, dtype, "Delta has no duration type")),
        DataType::Null => {
            return Err(refused(output, column, dtype, "every value is NULL, so it has no type a reader can know"));
        }
        other => return Err(refused(output, column, other, "Delta has no such type")),
    })
}

/// A failed strict cast of one of `strict`'s columns, in words; `None` for any other error.
pub(crate) fn explain_cast_failure(output: &str, strict: &[String], message: &str) -> Option<EngineError> {
    if !message.contains("conversion from `u64` to `i64` failed") {
        return None;
    }
    let named = strict.iter().find(|c| message.contains(&format!("'{c}'")) || message.contains(&format!("\"{c}\"")));
    // Polars names the column; if it did not, one strict column is still the one.
    let column = named.or(if strict.len() == 1 { strict.first() } else { None })?;
    Some(EngineError::Output {
        output: output.to_string(),
        detail: format!(
            "column {column:?} is u64 and holds a value past {} (i64's largest), which a Delta table can't hold: \
             Delta has no unsigned integers. CAST it in the output's SQL (to DECIMAL(20, 0), or a string). Polars said: \
             {message}",
            i64::MAX
        ),
    })
}

/// What a commit needs of the files an item wrote to a table output under `dir`: each file's
/// size, partition values and statistics, in the order of `files` (paths relative to `dir`).
pub(crate) fn table_files(
    dir: &Path,
    files: &[(String, u64)],
    output: &OutputSpec,
    schema: &StructType,
    partition: Option<&Partition>,
) -> Result<TableFiles, String> {
    let layout = TableLayout::of(output)?;
    let mut out = TableFiles {
        schema: runner_table::schema::to_json(schema),
        partition_columns: layout.partition_columns.clone(),
        files: Vec::with_capacity(files.len()),
    };
    for (rel, _) in files {
        let path = dir.join(rel);
        let mut partition_values =
            runner_table::hive::partition_values(rel, &output.partition_by).map_err(|e| e.to_string())?;
        if let Some(key) = &layout.key_column {
            let value = partition.map(|p| p.key.to_string());
            partition_values.insert(key.clone(), value);
        }
        let size = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?.len();
        let stats = runner_table::stats::of_file(&path).map_err(|e| e.to_string())?;
        out.files.push(TableFile { size, partition_values, stats });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(key: Option<&str>) -> TableLayout {
        TableLayout {
            root: "t".into(),
            key_column: key.map(str::to_string),
            partition_columns: key.iter().map(|k| k.to_string()).collect(),
        }
    }

    fn schema(fields: &[(&str, DataType)]) -> Schema {
        Schema::from_iter(fields.iter().map(|(n, t)| Field::new((*n).into(), t.clone())))
    }

    #[test]
    fn unsigned_and_millisecond_columns_are_cast_to_what_delta_holds_exactly() {
        let s = schema(&[
            ("a", DataType::UInt8),
            ("b", DataType::UInt16),
            ("c", DataType::UInt32),
            ("d", DataType::UInt64),
            ("e", DataType::Datetime(TimeUnit::Milliseconds, None)),
            ("f", DataType::Int64),
        ]);
        let t = plan("out", &s, &layout(Some("day"))).unwrap();
        assert_eq!(t.casts.len(), 5, "every column but the i64");
        assert_eq!(t.strict, ["d"]);
        let types: Vec<String> = t.schema.fields().map(|f| runner_table::schema::type_name(f.data_type())).collect();
        assert_eq!(types, ["short", "integer", "long", "long", "timestamp_ntz", "long", "string"]);
        assert_eq!(t.schema.fields().last().map(|f| f.name().as_str()), Some("day"));
    }

    #[test]
    fn types_delta_cannot_hold_are_refused_naming_the_column() {
        let refusal = |dtype: DataType| match plan("out", &schema(&[("x", dtype)]), &layout(None)) {
            Err(EngineError::Output { output, detail }) => {
                assert_eq!(output, "out");
                detail
            }
            other => panic!("expected a refusal, got {:?}", other.map(|t| t.schema)),
        };
        assert!(refusal(DataType::Datetime(TimeUnit::Nanoseconds, None)).starts_with("column \"x\" is datetime[ns]"));
        assert!(refusal(DataType::Time).contains("no time-of-day type"));
        assert!(refusal(DataType::Null).contains("every value is NULL"));
        let nested = refusal(DataType::List(Box::new(DataType::UInt32)));
        assert!(nested.contains("column \"x[]\" is u32") && nested.contains("inside a list or struct"), "{nested}");
    }

    #[test]
    fn a_failed_u64_cast_is_explained_for_its_column_only() {
        let msg = "conversion from `u64` to `i64` failed in column 'big' for 1 out of 1 values: [18446744073709551615]";
        let Some(EngineError::Output { detail, .. }) = explain_cast_failure("out", &["big".into()], msg) else {
            panic!("expected an explanation")
        };
        assert!(detail.starts_with("column \"big\" is u64 and holds a value past 9223372036854775807"), "{detail}");
        assert!(explain_cast_failure("out", &["other".into(), "more".into()], msg).is_none());
        assert!(explain_cast_failure("out", &["big".into()], "division by zero").is_none());
    }
}
