//! A written file's statistics as a Delta log keeps them (`numRecords`, `minValues`,
//! `maxValues`, `nullCount`), read from its Parquet footer: readers skip files by them, so each
//! bound must hold for every value in the file.
//!
//! A column's bounds are the row groups' bounds combined; a column gets none when a row group
//! with values has no bound, and no null count when a row group has none. Timestamps are kept to
//! the millisecond, as Delta's format has them: the lower bound rounds down and the upper bound
//! up, so they still hold. Columns inside lists and maps, binary and decimal columns, and NaN
//! bounds get no bounds (readers then read the file). A string bound is taken as the footer has
//! it: Parquet's bounds are bounds even when a writer truncated them (it rounds a maximum up).

use std::path::Path;

use chrono::{DateTime, NaiveDate};
use deltalake_core::parquet::basic::{LogicalType, TimeUnit, Type as PhysicalType};
use deltalake_core::parquet::file::metadata::ParquetMetaData;
use deltalake_core::parquet::file::reader::{FileReader, SerializedFileReader};
use deltalake_core::parquet::file::statistics::Statistics;
use deltalake_core::parquet::schema::types::ColumnDescriptor;
use serde_json::{Map, Value};

/// Why a file's statistics could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading the Parquet footer of {path}: {detail}")]
pub struct StatsError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub detail: String,
}

/// The statistics JSON of the Parquet file at `path`.
pub fn of_file(path: &Path) -> Result<String, StatsError> {
    let err = |detail: String| StatsError { path: path.display().to_string(), detail };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let reader = SerializedFileReader::new(file).map_err(|e| err(e.to_string()))?;
    Ok(of_footer(reader.metadata()).to_string())
}

/// The statistics of a file from its footer.
pub fn of_footer(meta: &ParquetMetaData) -> Value {
    let (mut mins, mut maxes, mut nulls) = (Map::new(), Map::new(), Map::new());
    let schema = meta.file_metadata().schema_descr();
    for (i, column) in schema.columns().iter().enumerate() {
        // A leaf under a list or a map repeats: its footer bounds are not a column's.
        if column.max_rep_level() > 0 {
            continue;
        }
        let path = column.path().parts();
        let chunks: Vec<(i64, Option<&Statistics>)> =
            meta.row_groups().iter().map(|rg| (rg.num_rows(), rg.column(i).statistics())).collect();
        let null_count: Option<u64> = chunks.iter().map(|(_, s)| s.and_then(|s| s.null_count_opt())).sum();
        if let Some(n) = null_count {
            insert(&mut nulls, path, Value::from(n));
        }
        if let Some((lo, hi)) = bounds(column, &chunks) {
            insert(&mut mins, path, lo);
            insert(&mut maxes, path, hi);
        }
    }
    serde_json::json!({
        "numRecords": meta.file_metadata().num_rows(),
        "minValues": mins,
        "maxValues": maxes,
        "nullCount": nulls,
    })
}

/// Puts a value at a column's path (`["s", "x"]` → `{"s": {"x": v}}`).
fn insert(map: &mut Map<String, Value>, path: &[String], value: Value) {
    match path {
        [] => {}
        [leaf] => {
            map.insert(leaf.clone(), value);
        }
        [head, rest @ ..] => {
            let inner = map.entry(head.clone()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = inner {
                insert(inner, rest, value);
            }
        }
    }
}

/// A bound's place in an order: which of two values is lower.
#[derive(Clone, Copy)]
enum Side {
    Low,
    High,
}

/// The column's bounds over all row groups, as Delta's JSON values.
fn bounds(column: &ColumnDescriptor, chunks: &[(i64, Option<&Statistics>)]) -> Option<(Value, Value)> {
    let mut lo: Option<Value> = None;
    let mut hi: Option<Value> = None;
    for (rows, stats) in chunks {
        let stats = (*stats)?;
        let (min, max) = match (json_bound(column, stats, Side::Low), json_bound(column, stats, Side::High)) {
            (Some(min), Some(max)) => (min, max),
            // No bounds and every row null: the row group says nothing about the bounds.
            _ if stats.null_count_opt() == Some(*rows as u64) => continue,
            _ => return None,
        };
        lo = Some(match lo {
            Some(cur) => pick(column, cur, min, Side::Low)?,
            None => min,
        });
        hi = Some(match hi {
            Some(cur) => pick(column, cur, max, Side::High)?,
            None => max,
        });
    }
    Some((lo?, hi?))
}

/// The lower (or higher) of two values of one column.
fn pick(column: &ColumnDescriptor, a: Value, b: Value, side: Side) -> Option<Value> {
    use std::cmp::Ordering;
    let order = match (&a, &b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?)?,
        },
        // Dates and millisecond timestamps in one fixed format order as text; so do UTF-8
        // strings, byte by byte, which is how Parquet orders them.
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => {
            tracing::debug!(column = %column.path(), "row groups disagree on a bound's kind");
            return None;
        }
    };
    Some(match (side, order) {
        (Side::Low, Ordering::Greater) | (Side::High, Ordering::Less) => b,
        _ => a,
    })
}

/// One row group's min (or max) as Delta's JSON.
fn json_bound(column: &ColumnDescriptor, stats: &Statistics, side: Side) -> Option<Value> {
    let logical = column.logical_type_ref();
    match stats {
        Statistics::Boolean(s) => pick_side(s.min_opt(), s.max_opt(), side).map(|b| Value::Bool(*b)),
        Statistics::Int32(s) => {
            let v = *pick_side(s.min_opt(), s.max_opt(), side)?;
            match logical {
                Some(LogicalType::Date) => date(v),
                Some(LogicalType::Decimal(_)) => None,
                Some(LogicalType::Integer(t)) if !t.is_signed => Some(Value::from(v as u32)),
                _ => Some(Value::from(v)),
            }
        }
        Statistics::Int64(s) => {
            let v = *pick_side(s.min_opt(), s.max_opt(), side)?;
            match logical {
                Some(LogicalType::Timestamp(t)) => timestamp(v, &t.unit, t.is_adjusted_to_u_t_c, side),
                Some(LogicalType::Decimal(_)) => None,
                // Past i64's range a Delta `long` can't hold it: no bound rather than a wrong one.
                Some(LogicalType::Integer(t)) if !t.is_signed => (v >= 0).then(|| Value::from(v)),
                Some(LogicalType::Time(_)) => None,
                _ => Some(Value::from(v)),
            }
        }
        Statistics::Float(s) => float(f64::from(*pick_side(s.min_opt(), s.max_opt(), side)?)),
        Statistics::Double(s) => float(*pick_side(s.min_opt(), s.max_opt(), side)?),
        Statistics::ByteArray(s) => {
            let is_text = matches!(logical, Some(LogicalType::String | LogicalType::Enum | LogicalType::Json))
                || column.physical_type() == PhysicalType::BYTE_ARRAY
                    && column.converted_type() == deltalake_core::parquet::basic::ConvertedType::UTF8;
            let bytes = pick_side(s.min_opt(), s.max_opt(), side)?;
            is_text.then(|| bytes.as_utf8().ok().map(|t| Value::String(t.to_string()))).flatten()
        }
        Statistics::Int96(_) | Statistics::FixedLenByteArray(_) => None,
    }
}

fn pick_side<'a, T>(min: Option<&'a T>, max: Option<&'a T>, side: Side) -> Option<&'a T> {
    match side {
        Side::Low => min,
        Side::High => max,
    }
}

fn float(v: f64) -> Option<Value> {
    serde_json::Number::from_f64(v).map(Value::Number)
}

fn date(days: i32) -> Option<Value> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let day = epoch.checked_add_signed(chrono::Duration::days(i64::from(days)))?;
    Some(Value::String(day.format("%Y-%m-%d").to_string()))
}

/// A timestamp bound to the millisecond: down for a lower bound, up for an upper one. UTC
/// timestamps end in `Z`; timestamps without a zone (`timestamp_ntz`) have none.
fn timestamp(v: i64, unit: &TimeUnit, utc: bool, side: Side) -> Option<Value> {
    let per_ms: i64 = match unit {
        TimeUnit::MILLIS => 1,
        TimeUnit::MICROS => 1_000,
        TimeUnit::NANOS => 1_000_000,
    };
    let ms = match side {
        Side::Low => v.div_euclid(per_ms),
        Side::High => v.div_euclid(per_ms) + i64::from(v.rem_euclid(per_ms) != 0),
    };
    let at = DateTime::from_timestamp_millis(ms)?.naive_utc();
    let text = if utc {
        at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    } else {
        at.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
    };
    Some(Value::String(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_outwards_to_the_millisecond() {
        let micros = TimeUnit::MICROS;
        // 2024-01-02 03:04:05.006007
        let v = 1_704_164_645_006_007;
        assert_eq!(timestamp(v, &micros, false, Side::Low).unwrap(), "2024-01-02T03:04:05.006");
        assert_eq!(timestamp(v, &micros, false, Side::High).unwrap(), "2024-01-02T03:04:05.007");
        assert_eq!(timestamp(v - 7, &micros, true, Side::High).unwrap(), "2024-01-02T03:04:05.006Z");
        // Before 1970 the lower bound still rounds down.
        assert_eq!(timestamp(-1, &micros, false, Side::Low).unwrap(), "1969-12-31T23:59:59.999");
        assert_eq!(timestamp(-1, &micros, false, Side::High).unwrap(), "1970-01-01T00:00:00.000");
    }

    #[test]
    fn nested_paths_make_nested_objects() {
        let mut m = Map::new();
        insert(&mut m, &["s".into(), "x".into()], Value::from(1));
        insert(&mut m, &["s".into(), "y".into()], Value::from(2));
        insert(&mut m, &["a".into()], Value::from(3));
        assert_eq!(Value::Object(m), serde_json::json!({"s": {"x": 1, "y": 2}, "a": 3}));
    }

    #[test]
    fn dates_and_floats() {
        assert_eq!(date(19_723).unwrap(), "2024-01-01");
        assert_eq!(date(-1).unwrap(), "1969-12-31");
        assert!(float(f64::NAN).is_none());
        assert_eq!(float(-0.5).unwrap(), serde_json::json!(-0.5));
    }
}
