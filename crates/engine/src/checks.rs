//! Asset checks declared in the job spec: row count bounds, no nulls in a column, a unique key.
//! Each item measures its own rows where it wrote them ([`measure_part`]); a partition's verdict
//! sums its items' parts ([`evaluate_parts`]), reading only the distinct keys of a `unique`
//! check when several items wrote it. [`evaluate`] measures whole output directories, for items
//! committed before parts existed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use polars::prelude::*;
use runner_spec::CheckSpec;
use runner_types::{CheckPart, OutputRef, Severity};

/// One evaluated check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// The output it checked.
    pub output: OutputRef,
    /// Whether it passed.
    pub passed: bool,
    /// How much a failure matters.
    pub severity: Severity,
    /// What was measured.
    pub observed: BTreeMap<String, f64>,
    /// A sentence for people.
    pub description: String,
}

fn scan(dirs: &[PathBuf]) -> PolarsResult<LazyFrame> {
    let mut files = Vec::new();
    for dir in dirs {
        for rel in crate::files::parquet_files(dir, true)? {
            files.push(PlRefPath::new(dir.join(rel).to_string_lossy().as_ref()));
        }
    }
    if files.is_empty() {
        return Ok(DataFrame::empty().lazy());
    }
    LazyFrame::scan_parquet_files(
        files.into(),
        ScanArgsParquet { hive_options: HiveOptions::new_enabled(), ..Default::default() },
    )
}

/// Evaluates a check over the Parquet files under `dirs` (hidden and `_` directories, such as
/// `_quarantine`, are not read). `dirs` is `Err` when the output could not be made local; the
/// check then fails, saying why.
pub fn evaluate(check: &CheckSpec, dirs: Result<Vec<PathBuf>, String>) -> CheckResult {
    let result = dirs
        .map_err(|e| polars_err!(ComputeError: "{e}"))
        .and_then(|dirs| scan(&dirs))
        .and_then(|frame| measure(check, frame));
    let (passed, observed, description) = match result {
        Ok(measured) => measured,
        Err(e) => (false, BTreeMap::new(), format!("the check could not be evaluated: {e}")),
    };
    CheckResult {
        name: check.name().to_string(),
        output: check.output().clone(),
        passed,
        severity: check.severity(),
        observed,
        description,
    }
}

fn count(df: &DataFrame) -> f64 {
    df.columns()
        .first()
        .and_then(|c| c.cast(&DataType::Float64).ok())
        .and_then(|c| c.f64().ok().and_then(|v| v.get(0)))
        .unwrap_or(0.0)
}
fn measure(check: &CheckSpec, frame: LazyFrame) -> PolarsResult<(bool, BTreeMap<String, f64>, String)> {
    let rows = count(&frame.clone().select([len()]).collect()?);
    let mut observed = BTreeMap::from([("rows".to_string(), rows)]);
    Ok(match check {
        CheckSpec::RowCount { min, max, .. } => {
            let ok = min.is_none_or(|m| rows >= m as f64) && max.is_none_or(|m| rows <= m as f64);
            (
                ok,
                observed,
                format!(
                    "{rows} rows; expected between {} and {}",
                    min.map_or("-".into(), |v| v.to_string()),
                    max.map_or("-".into(), |v| v.to_string())
                ),
            )
        }
        CheckSpec::NoNulls { column, .. } => {
            let nulls =
                if rows == 0.0 { 0.0 } else { count(&frame.select([col(column.as_str()).null_count()]).collect()?) };
            observed.insert("nulls".into(), nulls);
            (nulls == 0.0, observed, format!("{nulls} nulls in {column:?} over {rows} rows"))
        }
        CheckSpec::Unique { columns, .. } => {
            let dupes = if rows == 0.0 {
                0.0
            } else {
                let keys: Vec<Expr> = columns.iter().map(|c| col(c.as_str())).collect();
                let distinct =
                    count(&frame.select(keys).unique(None, UniqueKeepStrategy::Any).select([len()]).collect()?);
                rows - distinct
            };
            observed.insert("duplicates".into(), dupes);
            (dupes == 0.0, observed, format!("{dupes} duplicate keys {columns:?} over {rows} rows"))
        }
    })
}

/// Measures one item's share of a check on the output it wrote under `dir`; a `unique` check's
/// distinct keys are written to `keys` (a Parquet file of the key columns).
pub fn measure_part(check: &CheckSpec, dir: &std::path::Path, keys: &std::path::Path) -> PolarsResult<CheckPart> {
    let frame = scan(&[dir.to_path_buf()])?;
    let rows = count(&frame.clone().select([len()]).collect()?) as u64;
    let mut part = CheckPart { rows, ..Default::default() };
    match check {
        CheckSpec::RowCount { .. } => {}
        CheckSpec::NoNulls { column, .. } => {
            part.nulls = Some(if rows == 0 {
                0
            } else {
                count(&frame.select([col(column.as_str()).null_count()]).collect()?) as u64
            });
        }
        CheckSpec::Unique { columns, .. } => {
            let key_cols: Vec<Expr> = columns.iter().map(|c| col(c.as_str())).collect();
            let distinct = if rows == 0 {
                DataFrame::empty()
            } else {
                frame.select(key_cols).unique(None, UniqueKeepStrategy::Any).collect()?
            };
            part.distinct_keys = Some(distinct.height() as u64);
            if distinct.height() > 0 {
                std::fs::create_dir_all(keys.parent().unwrap_or(keys))?;
                let mut distinct = distinct;
                ParquetWriter::new(std::fs::File::create(keys)?).finish(&mut distinct)?;
            }
        }
    }
    Ok(part)
}

/// A partition's verdict from its items' parts. `key_files` holds the distinct keys each item
/// wrote for a `unique` check; they are read only when more than one item has keys.
pub fn evaluate_parts(check: &CheckSpec, parts: &[CheckPart], key_files: &[PathBuf]) -> CheckResult {
    let rows: u64 = parts.iter().map(|p| p.rows).sum();
    let mut observed = BTreeMap::from([("rows".to_string(), rows as f64)]);
    let measured: PolarsResult<(bool, String)> = match check {
        CheckSpec::RowCount { min, max, .. } => Ok((
            min.is_none_or(|m| rows >= m) && max.is_none_or(|m| rows <= m),
            format!(
                "{rows} rows; expected between {} and {}",
                min.map_or("-".into(), |v| v.to_string()),
                max.map_or("-".into(), |v| v.to_string())
            ),
        )),
        CheckSpec::NoNulls { column, .. } => {
            let nulls: u64 = parts.iter().map(|p| p.nulls.unwrap_or(0)).sum();
            observed.insert("nulls".into(), nulls as f64);
            Ok((nulls == 0, format!("{nulls} nulls in {column:?} over {rows} rows")))
        }
        CheckSpec::Unique { columns, .. } => {
            let in_items: u64 = parts.iter().map(|p| p.distinct_keys.unwrap_or(0)).sum();
            let distinct = match key_files.len() {
                0 | 1 => Ok(in_items),
                _ => {
                    let files: Vec<PlRefPath> =
                        key_files.iter().map(|f| PlRefPath::new(f.to_string_lossy().as_ref())).collect();
                    LazyFrame::scan_parquet_files(files.into(), ScanArgsParquet::default())
                        .and_then(|f| f.unique(None, UniqueKeepStrategy::Any).select([len()]).collect())
                        .map(|df| count(&df) as u64)
                }
            };
            distinct.map(|distinct| {
                let dupes = rows.saturating_sub(distinct);
                observed.insert("duplicates".into(), dupes as f64);
                (dupes == 0, format!("{dupes} duplicate keys {columns:?} over {rows} rows"))
            })
        }
    };
    let (passed, description) = measured.unwrap_or_else(|e| (false, format!("the check could not be evaluated: {e}")));
    CheckResult {
        name: check.name().to_string(),
        output: check.output().clone(),
        passed,
        severity: check.severity(),
        observed,
        description,
    }
}
