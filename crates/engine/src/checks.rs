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
    let measured = dirs
        .map_err(|e| polars_err!(ComputeError: "{e}"))
        .and_then(|dirs| scan(&dirs))
        .and_then(|frame| measure(check, frame, None));
    verdict(check, measured)
}

fn count(df: &DataFrame) -> u64 {
    df.columns()
        .first()
        .and_then(|c| c.cast(&DataType::UInt64).ok())
        .and_then(|c| c.u64().ok().and_then(|v| v.get(0)))
        .unwrap_or(0)
}

/// Measures `frame` for a check: its rows, and the nulls or distinct keys the check is about.
/// With `keys`, a `unique` check's distinct keys are also written there.
fn measure(check: &CheckSpec, frame: LazyFrame, keys: Option<&std::path::Path>) -> PolarsResult<CheckPart> {
    let rows = count(&frame.clone().select([len()]).collect()?);
    let mut part = CheckPart { rows, ..Default::default() };
    match check {
        CheckSpec::RowCount { .. } => {}
        CheckSpec::NoNulls { column, .. } => {
            part.nulls =
                Some(if rows == 0 { 0 } else { count(&frame.select([col(column.as_str()).null_count()]).collect()?) });
        }
        CheckSpec::Unique { columns, .. } => {
            let key_cols: Vec<Expr> = columns.iter().map(|c| col(c.as_str())).collect();
            let mut distinct = match rows {
                0 => DataFrame::empty(),
                _ => frame.select(key_cols).unique(None, UniqueKeepStrategy::Any).collect()?,
            };
            part.distinct_keys = Some(distinct.height() as u64);
            if let Some(keys) = keys.filter(|_| distinct.height() > 0) {
                std::fs::create_dir_all(keys.parent().unwrap_or(keys))?;
                ParquetWriter::new(std::fs::File::create(keys)?).finish(&mut distinct)?;
            }
        }
    }
    Ok(part)
}

/// Measures one item's share of a check on the output it wrote under `dir`; a `unique` check's
/// distinct keys are written to `keys` (a Parquet file of the key columns).
pub fn measure_part(check: &CheckSpec, dir: &std::path::Path, keys: &std::path::Path) -> PolarsResult<CheckPart> {
    measure(check, scan(&[dir.to_path_buf()])?, Some(keys))
}

/// A partition's verdict from its items' parts. `key_files` holds the distinct keys each item
/// wrote for a `unique` check; they are read only when more than one item has keys.
pub fn evaluate_parts(check: &CheckSpec, parts: &[CheckPart], key_files: &[PathBuf]) -> CheckResult {
    let sum = |f: fn(&CheckPart) -> Option<u64>| parts.iter().filter_map(f).sum::<u64>();
    let distinct = match (check, key_files.len()) {
        (CheckSpec::Unique { .. }, 2..) => {
            let files: Vec<PlRefPath> =
                key_files.iter().map(|f| PlRefPath::new(f.to_string_lossy().as_ref())).collect();
            LazyFrame::scan_parquet_files(files.into(), ScanArgsParquet::default())
                .and_then(|f| f.unique(None, UniqueKeepStrategy::Any).select([len()]).collect())
                .map(|df| Some(count(&df)))
        }
        _ => Ok(Some(sum(|p| p.distinct_keys))),
    };
    let measured = distinct.map(|distinct_keys| CheckPart {
        rows: sum(|p| Some(p.rows)),
        nulls: Some(sum(|p| p.nulls)),
        distinct_keys,
    });
    verdict(check, measured)
}

/// Whether `rows` is within bounds.
fn within(rows: u64, min: Option<u64>, max: Option<u64>) -> bool {
    min.is_none_or(|m| rows >= m) && max.is_none_or(|m| rows <= m)
}

fn bounds(min: Option<u64>, max: Option<u64>) -> String {
    let text = |b: Option<u64>| b.map_or("-".into(), |v| v.to_string());
    format!("between {} and {}", text(min), text(max))
}

/// The check's verdict on what was measured. A failure has the check's severity, except a row
/// count within its hard bounds but outside its softer ones (`warn_min`, `warn_max`): a warning.
fn verdict(check: &CheckSpec, measured: PolarsResult<CheckPart>) -> CheckResult {
    let mut severity = check.severity();
    let (passed, observed, description) = match measured {
        Err(e) => (false, BTreeMap::new(), format!("the check could not be evaluated: {e}")),
        Ok(CheckPart { rows, nulls, distinct_keys }) => {
            let mut observed = BTreeMap::from([("rows".to_string(), rows as f64)]);
            match check {
                CheckSpec::RowCount { min, max, warn_min, warn_max, .. } => {
                    let hard = within(rows, *min, *max);
                    let soft = within(rows, *warn_min, *warn_max);
                    let mut text = format!("{rows} rows; expected {}", bounds(*min, *max));
                    if warn_min.is_some() || warn_max.is_some() {
                        text.push_str(&format!(", warns outside {}", bounds(*warn_min, *warn_max)));
                    }
                    if hard && !soft {
                        severity = Severity::Warn;
                    }
                    (hard && soft, observed, text)
                }
                CheckSpec::NoNulls { column, .. } => {
                    let nulls = nulls.unwrap_or(0);
                    observed.insert("nulls".into(), nulls as f64);
                    (nulls == 0, observed, format!("{nulls} nulls in {column:?} over {rows} rows"))
                }
                CheckSpec::Unique { columns, .. } => {
                    let dupes = rows.saturating_sub(distinct_keys.unwrap_or(0));
                    observed.insert("duplicates".into(), dupes as f64);
                    (dupes == 0, observed, format!("{dupes} duplicate keys {columns:?} over {rows} rows"))
                }
            }
        }
    };
    CheckResult {
        name: check.name().to_string(),
        output: check.output().clone(),
        passed,
        severity,
        observed,
        description,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_count(severity: Option<&str>, warn_min: Option<u64>) -> CheckSpec {
        CheckSpec::RowCount {
            name: "rows".into(),
            output: OutputRef::new("s", "o"),
            severity: severity.map(String::from),
            min: Some(10),
            max: Some(1000),
            warn_min,
            warn_max: Some(500),
        }
    }

    fn rows(check: &CheckSpec, n: u64) -> (bool, Severity, String) {
        let r = evaluate_parts(check, &[CheckPart { rows: n, nulls: Some(0), distinct_keys: None }], &[]);
        (r.passed, r.severity, r.description)
    }

    #[test]
    fn a_row_count_fails_warns_or_passes_by_which_bound_it_breaks() {
        let check = row_count(None, Some(100));
        let expect = ", warns outside between 100 and 500";
        assert_eq!(rows(&check, 9), (false, Severity::Error, format!("9 rows; expected between 10 and 1000{expect}")));
        assert_eq!(rows(&check, 1001).1, Severity::Error);
        assert_eq!(rows(&check, 10), (false, Severity::Warn, format!("10 rows; expected between 10 and 1000{expect}")));
        assert!(!rows(&check, 99).0);
        assert_eq!(rows(&check, 501).1, Severity::Warn);
        assert_eq!(
            rows(&check, 100),
            (true, Severity::Error, format!("100 rows; expected between 10 and 1000{expect}"))
        );
        assert!(rows(&check, 500).0);
        // Without softer bounds a check fails at its own severity.
        let plain = CheckSpec::RowCount {
            name: "rows".into(),
            output: OutputRef::new("s", "o"),
            severity: Some("WARN".into()),
            min: Some(10),
            max: None,
            warn_min: None,
            warn_max: None,
        };
        assert_eq!(rows(&plain, 9), (false, Severity::Warn, "9 rows; expected between 10 and -".to_string()));
    }
}
