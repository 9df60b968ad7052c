//! Asset checks declared in the job spec, evaluated on an output's data for the run's
//! partitions: row count bounds, no nulls in a column, a unique key.

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::orchestrator::RunSummary;
use crate::spec::{CheckSpec, JobSpec};

/// One evaluated check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// The `step.output` it checked.
    pub output: String,
    /// Whether it passed.
    pub passed: bool,
    /// `WARN` or `ERROR`.
    pub severity: String,
    /// What was measured.
    pub observed: BTreeMap<String, f64>,
    /// A sentence for people.
    pub description: String,
}

fn files_of(summary: &RunSummary, output: &str) -> Vec<String> {
    let Some((step, out)) = output.split_once('.') else {
        return Vec::new();
    };
    summary
        .steps
        .iter()
        .filter(|s| s.name == step)
        .flat_map(|s| s.outputs.get(out))
        .flat_map(|o| o.locations.values().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn scan(dirs: &[String], local: &dyn Fn(&str) -> Option<std::path::PathBuf>) -> PolarsResult<LazyFrame> {
    let mut files = Vec::new();
    for d in dirs {
        let path = local(d).ok_or_else(|| polars_err!(ComputeError: "cannot read {d} locally"))?;
        for rel in crate::files::parquet_files(&path, true)? {
            files.push(PlRefPath::new(path.join(rel).to_string_lossy().as_ref()));
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

/// Evaluates every check of the job against the outputs of a run. `local` maps an output URI
/// to a local directory (S3 outputs are downloaded by the caller).
pub fn evaluate(
    job: &JobSpec,
    summary: &RunSummary,
    local: &dyn Fn(&str) -> Option<std::path::PathBuf>,
) -> Vec<CheckResult> {
    let ran: std::collections::BTreeSet<&str> = summary.steps.iter().map(|s| s.name.as_str()).collect();
    job.checks
        .iter()
        // A check on a step this run did not execute is not this run's to report.
        .filter(|check| check.output().split_once('.').is_some_and(|(step, _)| ran.contains(step)))
        .map(|check| {
            let severity = check.severity().unwrap_or("ERROR").to_string();
            let dirs = files_of(summary, check.output());
            let result = scan(&dirs, local).and_then(|frame| measure(check, frame));
            match result {
                Ok((passed, observed, description)) => CheckResult {
                    name: check.name().to_string(),
                    output: check.output().to_string(),
                    passed,
                    severity,
                    observed,
                    description,
                },
                Err(e) => CheckResult {
                    name: check.name().to_string(),
                    output: check.output().to_string(),
                    passed: false,
                    severity,
                    observed: BTreeMap::new(),
                    description: format!("the check could not be evaluated: {e}"),
                },
            }
        })
        .collect()
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
