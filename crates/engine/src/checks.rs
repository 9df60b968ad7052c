//! Asset checks declared in the job spec, measured on an output's Parquet files in local
//! directories: row count bounds, no nulls in a column, a unique key. Which directories belong
//! to a run, and fetching them from S3, is the caller's business.

use std::collections::BTreeMap;
use std::path::PathBuf;

use polars::prelude::*;
use runner_spec::CheckSpec;
use runner_types::{OutputRef, Severity};

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
