//! # runner-spec — the job spec
//!
//! A job spec is a TOML file that describes a pipeline as steps with named inputs and outputs.
//! This crate owns the format: its types and parsing with line/column errors (here), the rules
//! that span fields ([`validate`]), `{partition_key}`-style placeholders ([`template`]), the
//! column types users write ([`dtype`]), and which tables an output's SQL reads ([`sql`]).
//!
//! It does not read data, plan work or talk to any backend: `runner-engine` executes a step
//! with Polars, and `runner-core` plans and runs it.
//!
//! ```toml
//! name = "events"
//!
//! [[step]]
//! name = "clean"
//! split = "file"
//!
//! [step.inputs.raw]
//! path = "raw/{partition_key}/*.csv.gz"
//! format = "csv"
//! header = false
//! columns = [["event_id", "str"], ["ts", "datetime"], ["amount", "f64"]]
//! bad_rows = "quarantine"
//!
//! [step.outputs.clean]
//! path = "clean"
//! partition_by = ["day"]
//! sql = "SELECT *, CAST(ts AS DATE) AS day FROM raw"
//! ```

pub mod describe;
pub mod dtype;
pub mod extensions;
mod ops;
pub mod sql;
pub mod table;
pub mod template;
pub mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use runner_types::{AssetKey, OutputRef, Severity, StepName};
use serde::{Deserialize, Serialize};

pub use dtype::DType;
pub use ops::{BUILTIN_OPS, BuiltinOp, CustomOp, OpSpec};
pub use table::{SchemaChanges, TableFormat, TableLayout, TableSpec};

/// Errors in a job spec. Each says where: the file, the step, the input or output, the field.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("reading job spec {path}: {source}")]
    Read {
        /// The spec file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML did not parse or did not match the format (unknown field, wrong type).
    #[error("{path}: {message}")]
    Parse {
        /// The spec file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A rule that spans fields was broken.
    #[error("{path}: {location}: {message}")]
    Invalid {
        /// The spec file.
        path: String,
        /// `step "clean" › input "raw" › columns[2]`
        location: String,
        /// What is wrong.
        message: String,
    },
}

/// A whole job.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The job's name: it prefixes run state and fleet tags.
    pub name: String,
    /// Where relative paths are resolved: a local directory or `s3://bucket/prefix`. Defaults
    /// to the runner's configured data root.
    #[serde(default)]
    pub root: Option<String>,
    /// The steps, in any order: dependencies come from paths.
    #[serde(rename = "step", default)]
    pub steps: Vec<StepSpec>,
    /// Asset checks evaluated on outputs after the job.
    #[serde(rename = "check", default)]
    pub checks: Vec<CheckSpec>,
    /// `[env]`: the environment of the job's items: plain values, and secrets each worker
    /// reads for itself (Secrets Manager, Parameter Store).
    #[serde(default, skip_serializing_if = "runner_types::ItemEnv::is_empty")]
    pub env: runner_types::ItemEnv,
}

/// How a step splits into work items. Read through [`SplitText`], so that a misspelt key is an
/// error naming it rather than a silently different split.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged, try_from = "SplitText")]
pub enum Split {
    /// `"file"` (one item per input file) or `"single"` (one item for everything).
    Simple(SimpleSplit),
    /// One item per value of a hive key found in the input paths, or, with `size_mb`, items of
    /// whole values packed up to about that size.
    Partition {
        /// The hive key, e.g. `user_bucket` for `.../user_bucket=07/...`.
        partition: String,
        /// Pack several values into one item while their files add up to at most this many MiB.
        /// A value is never split: one bigger than this is an item of its own. Only for SQL
        /// that is right over any union of whole values (a GROUP BY on a column that determines
        /// the key). Left out of the serialized step when unset, so that steps without it keep
        /// their item ids.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_mb: Option<u64>,
    },
    /// Groups of input files of about this many megabytes.
    Size {
        /// Target group size in MiB.
        size_mb: u64,
    },
}

/// The keyword splits.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SimpleSplit {
    /// One item per input file (of the first input).
    File,
    /// One item for the whole step.
    Single,
}

impl Default for Split {
    fn default() -> Self {
        Self::Simple(SimpleSplit::File)
    }
}

/// A split as written: a word, or a table of keys.
#[derive(Deserialize)]
#[serde(untagged)]
enum SplitText {
    Word(String),
    Table(BTreeMap<String, toml::Value>),
}

impl TryFrom<SplitText> for Split {
    type Error = String;

    fn try_from(text: SplitText) -> Result<Self, String> {
        const FORMS: &str =
            r#""file", "single", { partition = "key" }, { partition = "key", size_mb = N } or { size_mb = N }"#;
        let table = match text {
            SplitText::Word(w) if w == "file" => return Ok(Split::Simple(SimpleSplit::File)),
            SplitText::Word(w) if w == "single" => return Ok(Split::Simple(SimpleSplit::Single)),
            SplitText::Word(w) => return Err(format!("unknown split {w:?}; it is one of {FORMS}")),
            SplitText::Table(table) => table,
        };
        if let Some(key) = table.keys().find(|k| *k != "partition" && *k != "size_mb") {
            return Err(format!("unknown key {key:?} in split; it is one of {FORMS}"));
        }
        let size_mb = match table.get("size_mb") {
            None => None,
            Some(toml::Value::Integer(n)) if *n >= 0 => Some(*n as u64),
            Some(other) => return Err(format!("split's size_mb must be a whole number of MiB, got {other}")),
        };
        match (table.get("partition"), size_mb) {
            (Some(toml::Value::String(key)), size_mb) => Ok(Split::Partition { partition: key.clone(), size_mb }),
            (Some(other), _) => Err(format!("split's partition must be a hive key's name, got {other}")),
            (None, Some(size_mb)) => Ok(Split::Size { size_mb }),
            (None, None) => Err(format!("an empty split; it is one of {FORMS}")),
        }
    }
}

/// One step.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Unique within the job.
    pub name: StepName,
    /// How the step splits into work items. The split applies to the first input in name
    /// order unless `split_input` names another; other inputs are read whole by every item.
    #[serde(default)]
    pub split: Split,
    /// Which input the split applies to.
    #[serde(default)]
    pub split_input: Option<String>,
    /// Attempts per item before a failure in the job itself fails the step.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// An item whose process grows beyond this resident size is stopped and failed.
    #[serde(default)]
    pub memory_limit_mb: Option<u64>,
    /// Named inputs; their names are the SQL table names.
    pub inputs: BTreeMap<String, InputSpec>,
    /// Named outputs.
    pub outputs: BTreeMap<String, OutputSpec>,
}

/// Input file formats.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Delimited text.
    Csv,
    /// One JSON document per line.
    Ndjson,
    /// Parquet, optionally hive-partitioned.
    Parquet,
}

/// What to do with a row that does not fit the declared schema.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BadRows {
    /// Fail the item with an error naming the file, row and column (the default).
    #[default]
    Fail,
    /// Drop the row and count it.
    Skip,
    /// Write the row aside (under the output's `_quarantine/`) and count it.
    Quarantine,
}

/// Compression of input text files.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InputCompression {
    /// From the file name (`.gz`, `.zst`) or magic bytes.
    #[default]
    Auto,
    /// Plain text.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// A column: `["name", "dtype"]` or `{ name = "...", dtype = "...", required = true }`.
/// The dtype stays text until validation, so a bad one is reported with its location.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ColumnSpec {
    /// `["name", "dtype"]`
    Pair(String, String),
    /// The long form.
    Full {
        /// Column name.
        name: String,
        /// Data type.
        dtype: String,
        /// A row with this column missing or null is a bad row.
        #[serde(default)]
        required: bool,
        /// `date` and `datetime` in CSV: the strftime format of the text (`%d/%m/%Y %H:%M`).
        /// Without it, the format is sniffed from the first rows of the first file.
        #[serde(default)]
        format: Option<String>,
    },
}

impl ColumnSpec {
    /// The column's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Pair(n, _) | Self::Full { name: n, .. } => n,
        }
    }
    /// The column's type as written.
    pub fn dtype_text(&self) -> &str {
        match self {
            Self::Pair(_, d) | Self::Full { dtype: d, .. } => d,
        }
    }
    /// The column's type (validated specs always parse).
    pub fn dtype(&self) -> Result<DType, String> {
        DType::parse(self.dtype_text())
    }
    /// Whether nulls make the row bad.
    pub fn required(&self) -> bool {
        matches!(self, Self::Full { required: true, .. })
    }
    /// The declared text format of a date or datetime column.
    pub fn format(&self) -> Option<&str> {
        match self {
            Self::Full { format: Some(f), .. } => Some(f),
            _ => None,
        }
    }
}

/// One input.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// A glob, relative to the job root, or absolute (`/data/...`, `s3://bucket/...`).
    /// Placeholders: `{partition_key}`, `{partition_start}`, `{partition_end}`.
    pub path: String,
    /// The file format.
    pub format: Format,
    /// Column names and types. Required for headerless CSV; optional otherwise (then the
    /// schema comes from the files).
    #[serde(default)]
    pub columns: Option<Vec<ColumnSpec>>,
    /// CSV: whether the first line is a header.
    #[serde(default = "default_true")]
    pub header: bool,
    /// CSV: the field separator (one byte).
    #[serde(default)]
    pub separator: Option<String>,
    /// CSV: the quote character (one byte), or `""` for none.
    #[serde(default)]
    pub quote: Option<String>,
    /// CSV: strings read as null.
    #[serde(default)]
    pub null_values: Vec<String>,
    /// Text compression.
    #[serde(default)]
    pub compression: InputCompression,
    /// Policy for rows that do not fit the schema.
    #[serde(default)]
    pub bad_rows: BadRows,
    /// Parquet: read `key=value` directories as columns.
    #[serde(default)]
    pub hive: bool,
    /// Parquet with hive: keep only these partition values (`{ day = "{partition_key}" }`);
    /// other directories are never read.
    #[serde(default)]
    pub hive_filter: BTreeMap<String, String>,
    /// Transformations applied to this input before SQL, in order.
    #[serde(default)]
    pub ops: Vec<OpSpec>,
    /// When false, an input that matches no file is an empty table instead of an error.
    #[serde(default = "default_true")]
    pub required: bool,
    /// The Dagster asset this input's files are, when no step of the job writes them (an
    /// upstream asset of the job's assets; defaults to `{job}/{input}`). Not part of the step's
    /// definition: it changes no item.
    #[serde(default, skip_serializing)]
    pub asset: Option<AssetKey>,
}

fn default_true() -> bool {
    true
}

/// Parquet compression codecs for outputs.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputCompression {
    /// zstd (the default).
    #[default]
    Zstd,
    /// snappy.
    Snappy,
    /// lz4 (raw).
    Lz4,
    /// gzip.
    Gzip,
    /// none.
    Uncompressed,
}

/// One output: Parquet, optionally hive-partitioned.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The output directory, relative to the job root or absolute. Placeholders allowed.
    pub path: String,
    /// SQL over the step's inputs (by name). Required when the step has several inputs or
    /// outputs; defaults to `SELECT * FROM <the only input>`.
    #[serde(default)]
    pub sql: Option<String>,
    /// Hive-partition the output by these columns (`key=value/` directories).
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Parquet compression.
    #[serde(default)]
    pub compression: OutputCompression,
    /// Compression level (zstd 1–22, gzip 0–9).
    #[serde(default)]
    pub compression_level: Option<i32>,
    /// Rows per row group.
    #[serde(default)]
    pub row_group_size: Option<usize>,
    /// At most this many rows per file (per partition directory when partitioned); an item
    /// writes several files past it. Without it, one file per item (and directory). More,
    /// smaller files let a step that splits by file spread over more items. Left out of the
    /// serialized step when unset, so that steps without it keep their item ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows_per_file: Option<usize>,
    /// The Dagster asset this output materializes (defaults to the output's name).
    #[serde(default)]
    pub asset: Option<AssetKey>,
    /// What the output holds, for people (the asset's description). Not part of the step's
    /// definition: it changes no item and no code version.
    #[serde(default, skip_serializing)]
    pub description: Option<String>,
    /// Keeps the output as a table (`table = "delta"`), which readers find by its log rather
    /// than its folder ([`table`]). Left out of the serialized step when unset, so that steps
    /// without it keep their item ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableSpec>,
}

/// A check on an output, evaluated after the job and reported to Dagster as an asset check.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckSpec {
    /// The row count is within bounds.
    RowCount {
        /// Check name (as declared on the Dagster asset).
        name: String,
        /// `step.output` whose data is checked.
        output: OutputRef,
        /// `WARN` or `ERROR` (the default).
        #[serde(default)]
        severity: Option<String>,
        /// Minimum rows (inclusive).
        #[serde(default)]
        min: Option<u64>,
        /// Maximum rows (inclusive).
        #[serde(default)]
        max: Option<u64>,
        /// Fewer rows than this, but not fewer than `min`, fail the check as a warning: a
        /// partition can then fail, warn or pass on its own.
        #[serde(default)]
        warn_min: Option<u64>,
        /// More rows than this, but not more than `max`, fail the check as a warning.
        #[serde(default)]
        warn_max: Option<u64>,
    },
    /// A column has no nulls.
    NoNulls {
        /// Check name.
        name: String,
        /// `step.output`.
        output: OutputRef,
        /// `WARN` or `ERROR`.
        #[serde(default)]
        severity: Option<String>,
        /// The column.
        column: String,
    },
    /// A set of columns is unique.
    Unique {
        /// Check name.
        name: String,
        /// `step.output`.
        output: OutputRef,
        /// `WARN` or `ERROR`.
        #[serde(default)]
        severity: Option<String>,
        /// The key columns.
        columns: Vec<String>,
    },
}

impl CheckSpec {
    /// The check's name.
    pub fn name(&self) -> &str {
        match self {
            Self::RowCount { name, .. } | Self::NoNulls { name, .. } | Self::Unique { name, .. } => name,
        }
    }
    /// The `step.output` it checks.
    pub fn output(&self) -> &OutputRef {
        match self {
            Self::RowCount { output, .. } | Self::NoNulls { output, .. } | Self::Unique { output, .. } => output,
        }
    }
    /// The severity as written (validation checks it).
    pub fn severity_text(&self) -> Option<&str> {
        match self {
            Self::RowCount { severity, .. } | Self::NoNulls { severity, .. } | Self::Unique { severity, .. } => {
                severity.as_deref()
            }
        }
    }
}

impl CheckSpec {
    /// The severity (ERROR when none is written).
    pub fn severity(&self) -> Severity {
        match self.severity_text() {
            Some("WARN") => Severity::Warn,
            _ => Severity::Error,
        }
    }
}

impl JobSpec {
    /// Reads, parses and validates a spec file.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SpecError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates spec text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SpecError> {
        let spec: JobSpec = toml::from_str(text).map_err(|e| SpecError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        validate::validate(&spec).map_err(|(location, message)| SpecError::Invalid {
            path: origin.to_string(),
            location,
            message,
        })?;
        Ok(spec)
    }

    /// A step by name.
    pub fn step(&self, name: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The asset an output materializes: its `asset`, or the output's own name.
    pub fn asset_of(&self, output: &OutputRef) -> AssetKey {
        self.step(output.step.as_str())
            .and_then(|s| s.outputs.get(&output.output))
            .and_then(|o| o.asset.clone())
            .unwrap_or_else(|| AssetKey::from(output.output.as_str()))
    }
}

impl StepSpec {
    /// The input the split applies to.
    pub fn split_input_name(&self) -> &str {
        self.split_input.as_deref().or_else(|| self.inputs.keys().next().map(String::as_str)).unwrap_or_default()
    }

    /// The SQL an output runs.
    pub fn output_sql(&self, output: &OutputSpec) -> String {
        match &output.sql {
            Some(sql) => sql.clone(),
            None => format!("SELECT * FROM {}", self.inputs.keys().next().map(String::as_str).unwrap_or("input")),
        }
    }
}
