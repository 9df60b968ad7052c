//! Row-level validation of CSV input. Every field is read as text (plus one sentinel column
//! that is only filled when a row has too many fields), then cast to its declared type; a row
//! is bad when a non-empty field does not parse, when it has too many fields, or when a
//! `required` column is missing. Each bad row keeps its file, row number and the reason.

use std::sync::Arc;

use polars::prelude::*;

use super::dtype::PolarsType;
use super::temporal::Formats;
use super::{EngineError, LocalFile};
use runner_spec::{ColumnSpec, DType, InputSpec};

/// Why a row is bad (null for good rows).
pub(super) const REASON: &str = "__reason";
/// The column a bad row failed on.
pub(super) const BAD_COLUMN: &str = "__bad_column";
const EXTRA: &str = "__extra_fields";
const ROW: &str = "__row";
const FILE: &str = "__file";
/// What a lossy read puts where bytes were not UTF-8.
const NOT_UTF8_MARK: &str = "\u{FFFD}";

fn raw(name: &str) -> String {
    format!("__raw_{name}")
}

/// The typed value of a column read as text; null when it does not parse.
fn typed(name: &str, dtype: DType, format: Option<&str>) -> Expr {
    let text = col(raw(name));
    match dtype {
        DType::Str => text,
        DType::Bool => {
            when(text.clone().is_in(lit(Series::new("t".into(), ["true", "True", "TRUE", "1"])).implode(false), false))
                .then(lit(true))
                .when(text.is_in(lit(Series::new("f".into(), ["false", "False", "FALSE", "0"])).implode(false), false))
                .then(lit(false))
                .otherwise(lit(NULL).cast(DataType::Boolean))
        }
        DType::Date | DType::Datetime => super::temporal::parse(text, dtype, format, false),
        numeric => text.str().strip_chars(lit(NULL)).cast(numeric.polars()),
    }
}

/// Reads the files as text with the checks attached: raw columns, the typed values, the row
/// number and file, and `__reason` / `__bad_column` for bad rows.
pub(super) fn csv_checked(
    spec: &InputSpec,
    columns: &[ColumnSpec],
    formats: &Formats,
    files: &[LocalFile],
) -> PolarsResult<LazyFrame> {
    let frames = files.iter().map(|f| csv_checked_file(spec, columns, formats, f)).collect::<PolarsResult<Vec<_>>>()?;
    concat(frames, UnionArgs { rechunk: false, parallel: true, ..Default::default() })
}

fn csv_checked_file(
    spec: &InputSpec,
    columns: &[ColumnSpec],
    formats: &Formats,
    file: &LocalFile,
) -> PolarsResult<LazyFrame> {
    // With a header, the file's own column order: declared columns by name, the rest read
    // and dropped. Without one, the declared order.
    let mut schema: Schema = match spec.header {
        true => super::read::csv_header(spec, file)
            .map_err(|e| polars_err!(ComputeError: "{}: {e}", file.source))?
            .iter()
            .enumerate()
            .map(|(i, h)| match columns.iter().find(|c| c.name() == h) {
                Some(c) => Field::new(raw(c.name()).into(), DataType::String),
                None => Field::new(format!("__unused_{i}").into(), DataType::String),
            })
            .collect(),
        false => columns.iter().map(|c| Field::new(raw(c.name()).into(), DataType::String)).collect(),
    };
    schema.with_column(EXTRA.into(), DataType::String);
    let mut reader = super::read::csv_reader(spec, super::read::sources(std::slice::from_ref(file)))
        .with_truncate_ragged_lines(true)
        .with_missing_is_null(true)
        // Bytes that are not UTF-8 become U+FFFD, and the row holding them is set aside below
        // (a strict read would fail the whole file over one bad line).
        .with_encoding(CsvEncoding::LossyUtf8)
        .with_row_index(Some(RowIndex { name: ROW.into(), offset: 1 }));
    reader = if spec.header {
        // The header was read above; the rows are read as text in its order.
        reader.with_skip_rows(1).with_has_header(false).with_schema(Some(Arc::new(schema)))
    } else {
        reader.with_schema(Some(Arc::new(schema)))
    };
    let frame = reader.finish()?.with_column(lit(file.source.clone()).alias(FILE));
    let mut typed_cols: Vec<Expr> = columns
        .iter()
        .map(|c| {
            let format = formats.get(c.name()).map(String::as_str);
            typed(c.name(), c.dtype().unwrap_or(DType::Str), format).alias(c.name())
        })
        .collect();
    typed_cols.push(col(EXTRA));
    let with_typed = frame.with_columns(typed_cols);
    // Checks in column order, so the first failing column is the one reported.
    let mut reason = lit(NULL).cast(DataType::String);
    let mut bad_column = lit(NULL).cast(DataType::String);
    for c in columns.iter().rev() {
        let dtype = c.dtype().unwrap_or(DType::Str);
        let unparsable = col(raw(c.name())).is_not_null().and(col(c.name()).is_null());
        let missing = if c.required() { col(c.name()).is_null() } else { lit(false) };
        let message = concat_str(
            [lit("cannot parse "), col(raw(c.name())).fill_null(lit("")), lit(format!(" as {}", dtype_name(dtype)))],
            "",
            true,
        );
        reason = when(unparsable.clone())
            .then(message)
            .when(missing.clone())
            .then(lit("a required value is missing"))
            .otherwise(reason);
        bad_column = when(unparsable.or(missing)).then(lit(c.name().to_string())).otherwise(bad_column);
    }
    let too_many = col(EXTRA).is_not_null();
    reason = when(too_many.clone())
        .then(lit(format!("more fields than the {} declared columns", columns.len())))
        .otherwise(reason);
    bad_column = when(too_many).then(lit("*")).otherwise(bad_column);
    // Not UTF-8 outranks every other reason: the row's text can't be trusted.
    for c in columns.iter().rev() {
        let replaced = col(raw(c.name())).str().contains_literal(lit(NOT_UTF8_MARK));
        reason = when(replaced.clone())
            .then(lit("not UTF-8 (the bytes that are not are shown as U+FFFD)"))
            .otherwise(reason);
        bad_column = when(replaced).then(lit(c.name().to_string())).otherwise(bad_column);
    }
    // One column set and order for every file, whatever its header, so the files concatenate.
    let mut keep = vec![col(ROW)];
    keep.extend(columns.iter().map(|c| col(raw(c.name()))));
    keep.extend([col(EXTRA), col(FILE)]);
    keep.extend(columns.iter().map(|c| col(c.name())));
    keep.extend([reason.alias(REASON), bad_column.alias(BAD_COLUMN)]);
    Ok(with_typed.select(keep))
}

fn dtype_name(d: DType) -> String {
    format!("{d:?}").to_lowercase()
}

/// The typed columns of good rows, in declared order.
pub(super) fn typed_columns(columns: &[ColumnSpec]) -> Vec<Expr> {
    columns.iter().map(|c| col(c.name())).collect()
}

/// What a quarantined row keeps: where it came from, why, and its raw text fields.
pub(super) fn quarantine_columns(columns: &[ColumnSpec]) -> Vec<Expr> {
    let mut out =
        vec![col(FILE).alias("file"), col(ROW).cast(DataType::UInt64).alias("row"), col(REASON).alias("reason")];
    out.extend(columns.iter().map(|c| col(raw(c.name())).alias(c.name())));
    out
}

/// The first row of any file that does not fit, as an error.
pub(super) fn first_bad_csv_row(input: &str, spec: &InputSpec, files: &[LocalFile]) -> Option<EngineError> {
    let columns = spec.columns.as_deref()?;
    // The same formats as the failed read, so both judge a row alike.
    let formats = super::temporal::csv_formats(input, spec, files).ok()?;
    for f in files {
        let checked = csv_checked_file(spec, columns, &formats, f).ok()?;
        let first = checked
            .filter(col(REASON).is_not_null())
            .select([col(ROW).cast(DataType::UInt64), col(BAD_COLUMN), col(REASON)])
            .limit(1)
            .collect()
            .ok()?;
        if first.height() == 1 {
            let get = |name: &str| first.column(name).ok().and_then(|c| c.get(0).ok()).map(|v| v.to_string());
            let row = first.column(ROW).ok()?.u64().ok()?.get(0)?;
            return Some(EngineError::BadRow {
                input: input.to_string(),
                file: f.source.clone(),
                row,
                column: get(BAD_COLUMN).unwrap_or_default().trim_matches('"').to_string(),
                detail: get(REASON).unwrap_or_default().trim_matches('"').to_string(),
            });
        }
    }
    None
}
