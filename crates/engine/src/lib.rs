//! # runner-engine — one work item, executed with Polars
//!
//! Runs one work item of a step on local files ([`run_item`]): inputs are read lazily (CSV,
//! NDJSON, Parquet with hive keys), bad rows are handled by the input's policy, the
//! outputs' SQL runs over the inputs by name, and outputs are written as Parquet
//! (hive-partitioned when asked) into a scratch directory that the caller publishes. An output
//! kept as a table is cast to types Delta holds exactly, and its files' statistics are read for
//! the table's commit. It also measures the job's asset checks on local Parquet files ([`checks`]).
//!
//! This is the only crate of the runner that compiles Polars. It knows nothing of storage,
//! queues, fleets or Dagster: the worker (`runner-core`) stages inputs, calls it, and publishes
//! what it wrote.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use runner_engine::{ItemRun, LocalFile, run_item};
//!
//! let job = runner_spec::JobSpec::load("job.toml".as_ref())?;
//! let step = job.step("clean").expect("the step exists");
//! let files = vec![LocalFile { path: "raw/a.csv".into(), source: "raw/a.csv".into(), size: 10 }];
//! let stats = run_item(ItemRun {
//!     step,
//!     partition: None,
//!     inputs: BTreeMap::from([("raw".to_string(), files)]),
//!     out_dir: "out".as_ref(),
//!     file_tag: "item1",
//!     checks: &job.checks,
//! })?;
//! println!("{} rows written", stats.outputs.values().map(|o| o.rows).sum::<u64>());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bad_rows;
pub mod checks;
mod dtype;
pub mod extensions;
pub mod files;
mod input_stats;
pub mod lower;
mod ndjson;
mod ops;
mod read;
mod stats;
mod table_columns;
mod temporal;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use polars::prelude::*;

pub use polars;
use runner_spec::StepSpec;
pub use runner_types::{ItemStats, OutputStats};
use runner_types::{Partition, StepName};

/// Engine errors. Each names the input or output, and where it can, the file, row and column.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A row did not fit the declared schema (policy `fail`).
    #[error("input {input:?}: {file}: row {row}, column {column:?}: {detail}")]
    BadRow {
        /// The input.
        input: String,
        /// The file.
        file: String,
        /// 1-based data row (lines after the header).
        row: u64,
        /// The column (or `*` for the whole row).
        column: String,
        /// What was wrong.
        detail: String,
    },
    /// Files of one input disagree on their schema.
    #[error("input {input:?}: schema mismatch: {file} has {found}, but {reference} has {expected}")]
    SchemaMismatch {
        /// The input.
        input: String,
        /// The disagreeing file.
        file: String,
        /// What it has.
        found: String,
        /// The file its schema was compared with.
        reference: String,
        /// What that one has.
        expected: String,
    },
    /// An input matched no files and is required.
    #[error("input {input:?}: no files match {pattern}")]
    NoFiles {
        /// The input.
        input: String,
        /// The pattern.
        pattern: String,
    },
    /// Reading an input failed.
    #[error("input {input:?}: reading {file}: {detail}")]
    Read {
        /// The input.
        input: String,
        /// The file (or files).
        file: String,
        /// Polars' explanation.
        detail: String,
    },
    /// An input operation failed.
    #[error("input {input:?}: op {op}: {detail}")]
    Op {
        /// The input.
        input: String,
        /// The operation.
        op: String,
        /// Why.
        detail: String,
    },
    /// An output's SQL failed.
    #[error("output {output:?}: SQL: {detail}")]
    Sql {
        /// The output.
        output: String,
        /// Polars' explanation.
        detail: String,
    },
    /// An output can't be written as declared (its columns clash with its path).
    #[error("output {output:?}: {detail}")]
    Output {
        /// The output.
        output: String,
        /// What clashes, and how to fix it.
        detail: String,
    },
    /// The query's own computation failed: a division by zero, an overflow, a scalar subquery
    /// of several rows, a value that can't be cast. Another attempt would fail the same way.
    #[error("step {step:?}: {detail}")]
    Compute {
        /// The step.
        step: StepName,
        /// Polars' explanation.
        detail: String,
    },
    /// Computing or writing outputs failed.
    #[error("step {step:?}: {detail}")]
    Execute {
        /// The step.
        step: StepName,
        /// Polars' explanation.
        detail: String,
    },
    /// Local file system trouble in the scratch directory.
    #[error("scratch {path}: {detail}")]
    Scratch {
        /// The path.
        path: String,
        /// The error.
        detail: String,
    },
    /// A template could not be rendered.
    #[error("{0}")]
    Template(String),
    /// One of the binary's own functions panicked, failed, or returned the wrong length or type.
    #[error("step {step:?}: function {function} {detail} (the item's files: {files})")]
    Function {
        /// The step.
        step: StepName,
        /// The function.
        function: String,
        /// What went wrong.
        detail: String,
        /// The item's input files, for finding the rows.
        files: String,
    },
}

impl EngineError {
    /// True when another attempt on the same inputs must fail the same way: bad SQL, a schema
    /// conflict, a row that breaks the `fail` policy, a missing input, a file that can't be
    /// read (corrupt, truncated, not in its declared compression: the worker staged it whole),
    /// a template that can't be rendered, a computation the query makes fail. Writing outputs
    /// and scratch space may be transient (memory, a disk), so they are retried.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::BadRow { .. }
            | Self::SchemaMismatch { .. }
            | Self::NoFiles { .. }
            | Self::Read { .. }
            | Self::Op { .. }
            | Self::Sql { .. }
            | Self::Output { .. }
            | Self::Template(_)
            | Self::Compute { .. }
            | Self::Function { .. } => true,
            Self::Execute { .. } | Self::Scratch { .. } => false,
        }
    }
}

/// One input file as the engine sees it: a local path and where it came from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LocalFile {
    /// The local path to read.
    pub path: PathBuf,
    /// The original URI (for messages).
    pub source: String,
    /// Size in bytes.
    pub size: u64,
}

/// Everything one item needs.
#[derive(Debug)]
pub struct ItemRun<'a> {
    /// The step.
    pub step: &'a StepSpec,
    /// The partition, for templates.
    pub partition: Option<&'a Partition>,
    /// Local files per input name.
    pub inputs: BTreeMap<String, Vec<LocalFile>>,
    /// Scratch directory: outputs are written to `{out_dir}/{output}/...`.
    pub out_dir: &'a Path,
    /// Prefix of written file names (unique per item, so items never collide).
    pub file_tag: &'a str,
    /// The job's checks; those on this step's outputs are measured on the item's rows, with
    /// the keys of `unique` ones written under `{out_dir}/_checks/{output}/{check}/`.
    pub checks: &'a [runner_spec::CheckSpec],
}

/// Where an item writes the keys of a `unique` check on one of its outputs.
pub fn check_keys_dir(out_dir: &Path, output: &str) -> PathBuf {
    out_dir.join("_checks").join(output)
}

/// Where an output's files are written.
pub fn output_dir(out_dir: &Path, output: &str) -> PathBuf {
    out_dir.join(output)
}

/// Where quarantined rows of an input are written.
pub fn quarantine_dir(out_dir: &Path, input: &str) -> PathBuf {
    out_dir.join("_quarantine").join(input)
}

fn polars_err(step: &StepName) -> impl Fn(PolarsError) -> EngineError + '_ {
    move |e| EngineError::Execute { step: step.clone(), detail: e.to_string() }
}

/// The hive keys (`key=` segments) of a path or path template.
pub fn hive_keys(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|segment| segment.split_once('=').map(|(key, _)| key)).filter(|k| !k.is_empty())
}

/// What each extra plan of an item (after the output sinks) counts.
enum Counted {
    Input(String),
    Dropped(String),
    Quarantined(String),
}

/// An item's one query: the output sinks first, then the plans that count what was read and
/// set aside (and write the quarantine). Executed together, they share each input's scan.
struct ItemPlan {
    plans: Vec<DslPlan>,
    counted: Vec<Counted>,
    sink_count: usize,
    output_schemas: BTreeMap<String, SchemaRef>,
    /// The table outputs' casts and schemas.
    tables: BTreeMap<String, table_columns::TableColumns>,
    stats: ItemStats,
    /// Where the binary's functions record the first failure of this item's calls.
    failure: extensions::Failure,
}

/// The item's query as Polars optimizes it (its `explain`): what it reads, and how often.
pub fn explain_item(run: &ItemRun<'_>) -> Result<String, EngineError> {
    let planned = plan_item(run)?;
    LazyFrame::from(DslPlan::SinkMultiple { inputs: planned.plans }).explain(true).map_err(polars_err(&run.step.name))
}

/// Builds the item's query (see [`ItemPlan`]).
fn plan_item(run: &ItemRun<'_>) -> Result<ItemPlan, EngineError> {
    let step = run.step;
    let mut stats = ItemStats::default();
    let mut plans: Vec<DslPlan> = Vec::new();
    let mut counted: Vec<Counted> = Vec::new();
    let brought = extensions::installed();
    let failure = extensions::Failure::default();
    let registry = brought.has_functions().then(|| brought.registry(&failure));
    // Each output is planned in a context of its own over the inputs: Polars keeps a top-level
    // derived table's alias in its context's tables, where a later output's CTE of the same name
    // would find it first.
    let mut frames: Vec<lower::Input> = Vec::new();
    for (name, spec) in &step.inputs {
        let files = run.inputs.get(name).cloned().unwrap_or_default();
        stats.bytes_in += files.iter().map(|f| f.size).sum::<u64>();
        *stats.files_in.entry(name.clone()).or_default() += files.len() as u64;
        let read = read::read_input(name, spec, &files, run.out_dir, run.file_tag)?;
        let facts = input_stats::of_input(spec.format, &files, read.known_rows);
        let frame = ops::apply(name, &spec.ops, read.frame, brought)?;
        if let Some(rows) = read.known_rows {
            *stats.rows_in.entry(name.clone()).or_default() += rows;
        }
        if let Some(counter) = read.counter {
            plans.push(counter.logical_plan);
            counted.push(Counted::Input(name.clone()));
        }
        if let Some(bad) = read.bad {
            plans.push(bad.count.logical_plan.clone());
            counted.push(match bad.quarantine_sink {
                Some(_) => Counted::Quarantined(name.clone()),
                None => Counted::Dropped(name.clone()),
            });
            if let Some(sink) = bad.quarantine_sink {
                plans.push(sink.logical_plan);
            }
        }
        let schema = frame.clone().collect_schema().map_err(|e| read::explain_failure(step, &run.inputs, e))?;
        // An op may make NULLs the footers don't count.
        let never_null = if spec.ops.is_empty() { facts.never_null } else { Default::default() };
        frames.push(lower::Input { name: name.clone(), frame, schema, stats: facts.stats, never_null });
    }

    let mut output_schemas = BTreeMap::new();
    let mut tables = BTreeMap::new();
    let mut sink_count = 0;
    for (name, output) in &step.outputs {
        let sql =
            runner_spec::template::render(&step.output_sql(output), run.partition, runner_spec::template::Context::Sql)
                .map_err(EngineError::Template)?;
        // Planning reads input schemas, so a malformed input can fail here: prefer the error
        // that names the bad row over a generic SQL one.
        let sql_error = |e: PolarsError| match read::explain_failure(step, &run.inputs, e.clone()) {
            bad @ (EngineError::BadRow { .. } | EngineError::Read { .. }) => bad,
            _ => EngineError::Sql { output: name.clone(), detail: e.to_string() },
        };
        let frame = lower::query(&sql, &frames, brought.planner_functions(), registry.as_deref())
            .map_err(|e| EngineError::Sql { output: name.clone(), detail: e.0 })?;
        let schema = frame.clone().collect_schema().map_err(sql_error)?;
        for key in &output.partition_by {
            if schema.get(key).is_none() {
                return Err(EngineError::Sql {
                    output: name.clone(),
                    detail: format!(
                        "partition_by column {key:?} is not in the output; its columns are {:?}",
                        schema.iter_names().collect::<Vec<_>>()
                    ),
                });
            }
        }
        if let Some(key) = hive_keys(&output.path).find(|k| schema.get(k).is_some()) {
            // Hive and Spark refuse this too: a reader with hive = true would hold two values
            // under one name (Polars fails deep in the scan, naming neither).
            return Err(EngineError::Output {
                output: name.clone(),
                detail: format!(
                    "its path {:?} makes {key:?} a hive key, and its SQL returns a column {key:?} too; \
                     rename the column in the SQL or the key in the path",
                    output.path
                ),
            });
        }
        let (frame, schema) = match &output.table {
            None => (frame, schema),
            Some(_) => {
                let layout = runner_spec::TableLayout::of(output)
                    .map_err(|detail| EngineError::Output { output: name.clone(), detail })?;
                let columns = table_columns::plan(name, &schema, &layout)?;
                let frame = if columns.casts.is_empty() { frame } else { frame.with_columns(columns.casts.clone()) };
                let schema = frame.clone().collect_schema().map_err(sql_error)?;
                tables.insert(name.clone(), columns);
                (frame, schema)
            }
        };
        output_schemas.insert(name.clone(), schema);
        let sink = write::sink(frame, output, &output_dir(run.out_dir, name), run.file_tag)
            .map_err(|e| EngineError::Sql { output: name.clone(), detail: e.to_string() })?;
        plans.insert(sink_count, sink.logical_plan);
        sink_count += 1;
    }

    Ok(ItemPlan { plans, counted, sink_count, output_schemas, tables, stats, failure })
}

/// The item's input files, for a message: the first few, and how many more.
fn item_files(inputs: &BTreeMap<String, Vec<LocalFile>>) -> String {
    const SHOWN: usize = 3;
    let all: Vec<&str> = inputs.values().flatten().map(|f| f.source.as_str()).collect();
    let mut text = all.iter().take(SHOWN).copied().collect::<Vec<_>>().join(", ");
    if all.len() > SHOWN {
        text.push_str(&format!(" and {} more", all.len() - SHOWN));
    }
    text
}

/// Runs one work item.
pub fn run_item(run: ItemRun<'_>) -> Result<ItemStats, EngineError> {
    let started = Instant::now();
    let step = run.step;
    let ItemPlan { plans, counted, sink_count, output_schemas, tables, mut stats, failure } = plan_item(&run)?;
    let results = LazyFrame::collect_all_with_engine(plans, Engine::Streaming, OptFlags::default()).map_err(|e| {
        // A function's own failure is the cause, whatever Polars made of it on the way out.
        if let Some((function, detail)) = failure.lock().ok().and_then(|mut f| f.take()) {
            return EngineError::Function { step: step.name.clone(), function, detail, files: item_files(&run.inputs) };
        }
        let message = e.to_string();
        tables
            .iter()
            .find_map(|(output, t)| table_columns::explain_cast_failure(output, &t.strict, &message))
            .unwrap_or_else(|| read::explain_failure(step, &run.inputs, e))
    })?;

    for (what, df) in counted.iter().zip(results.iter().skip(sink_count).filter(|d| d.width() > 0)) {
        match what {
            Counted::Input(name) => {
                *stats.rows_in.entry(name.clone()).or_default() += stats::count_in(df, read::ROWS);
                let n = stats::count_in(df, read::VIOLATIONS);
                if n > 0 {
                    return Err(read::explain_failure(
                        step,
                        &run.inputs,
                        PolarsError::ComputeError(
                            format!("input {name:?}: {n} rows have a null in a required column or too many fields")
                                .into(),
                        ),
                    ));
                }
            }
            Counted::Dropped(name) => *stats.rows_dropped.entry(name.clone()).or_default() += stats::single_count(df),
            Counted::Quarantined(name) => {
                *stats.rows_quarantined.entry(name.clone()).or_default() += stats::single_count(df)
            }
        }
    }
    // Rows that were set aside never reached the outputs but were read.
    for (name, n) in stats.rows_dropped.clone().into_iter().chain(stats.rows_quarantined.clone()) {
        *stats.rows_in.entry(name).or_default() += n;
    }
    for (name, schema) in output_schemas {
        let dir = output_dir(run.out_dir, &name);
        let mut out = stats::output_stats(&dir, &schema).map_err(polars_err(&step.name))?;
        if let (Some(table), Some(output)) = (tables.get(&name), step.outputs.get(&name)) {
            let files = table_columns::table_files(&dir, &out.files, output, &table.schema, run.partition).map_err(
                |detail| EngineError::Execute { step: step.name.clone(), detail: format!("output {name:?}: {detail}") },
            )?;
            out.table = Some(files);
        }
        stats.bytes_out += out.bytes;
        stats.outputs.insert(name, out);
    }
    for check in run.checks.iter().filter(|c| c.output().step == step.name) {
        let output = check.output().output.as_str();
        let part = checks::measure_part(
            check,
            &output_dir(run.out_dir, output),
            &check_keys_dir(run.out_dir, output).join(check.name()).join(format!("{}.parquet", run.file_tag)),
        )
        .map_err(|e| EngineError::Execute {
            step: step.name.clone(),
            detail: format!("check {}: {e}", check.name()),
        })?;
        stats.checks.insert(check.name().to_string(), part);
    }
    stats.wall_seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}
