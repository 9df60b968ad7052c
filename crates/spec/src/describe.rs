//! The job as Dagster's asset graph: one asset per output (its key, its step, the assets it is
//! made from, a code version from its step's definition), and the checks on them. `runner
//! describe` prints it as JSON; the Dagster side builds its asset specs from it, as dagster-dbt
//! builds them from dbt's manifest, so no asset is declared twice.

use std::collections::BTreeSet;

use serde::Serialize;

use super::validate::{order, overlaps};
use super::{CheckSpec, JobSpec, StepSpec};
use runner_types::{AssetKey, stable_hash};

/// The version of this description's shape.
pub const FORMAT: u32 = 1;

/// The whole job.
#[derive(Debug, Serialize, PartialEq)]
pub struct Description {
    /// [`FORMAT`].
    pub format: u32,
    /// The job's name.
    pub job: String,
    /// Steps in the order they run.
    pub steps: Vec<StepDescription>,
    /// One per output.
    pub assets: Vec<AssetDescription>,
    /// The job's checks.
    pub checks: Vec<CheckDescription>,
}

/// One step.
#[derive(Debug, Serialize, PartialEq)]
pub struct StepDescription {
    /// Its name (what `runner run --step` takes).
    pub name: String,
    /// Steps of the job whose outputs it reads.
    pub upstream: Vec<String>,
    /// The assets it materializes.
    pub assets: Vec<AssetKey>,
    /// A hash of the step's definition: it changes when, and only when, the step does.
    pub code_version: String,
}

/// One asset: an output of a step.
#[derive(Debug, Serialize, PartialEq)]
pub struct AssetDescription {
    /// The Dagster asset key (`a/b` for a key of several parts).
    pub key: AssetKey,
    /// The step that writes it.
    pub step: String,
    /// The output's name in that step.
    pub output: String,
    /// Where it is written (a path template).
    pub path: String,
    /// The assets it is made from: outputs of other steps, and the inputs no step writes.
    pub deps: Vec<AssetKey>,
    /// Its step's code version.
    pub code_version: String,
    /// What it holds, when the spec says.
    pub description: Option<String>,
    /// The table it is kept as, when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<TableDescription>,
}

/// An output's table, as readers find it.
#[derive(Debug, Serialize, PartialEq)]
pub struct TableDescription {
    /// `delta`.
    pub format: crate::TableFormat,
    /// Its name: `database.table` when it is registered in Glue, else its own.
    pub name: String,
    /// Its root as the spec writes it (relative to the job's root unless absolute).
    pub root: String,
    /// Its partition columns, in order.
    pub partition_columns: Vec<String>,
    /// The Glue database it is registered in, if any.
    pub glue_database: Option<String>,
}

/// One check.
#[derive(Debug, Serialize, PartialEq)]
pub struct CheckDescription {
    /// Its name on the asset.
    pub name: String,
    /// The asset it checks.
    pub asset: AssetKey,
    /// `ERROR` or `WARN`.
    pub severity: String,
    /// What it asserts, in words.
    pub description: String,
}

fn table_description(output_name: &str, output: &super::OutputSpec) -> Option<TableDescription> {
    let table = output.table.as_ref()?;
    let layout = crate::TableLayout::of(output).ok()?;
    let own = table.name_or(output_name);
    Some(TableDescription {
        format: table.format,
        name: table.glue_database.as_ref().map_or_else(|| own.to_string(), |db| format!("{db}.{own}")),
        root: layout.root,
        partition_columns: layout.partition_columns,
        glue_database: table.glue_database.clone(),
    })
}

/// The key of an input no step writes.
fn source_key(job: &JobSpec, input_name: &str, input: &super::InputSpec) -> AssetKey {
    input.asset.clone().unwrap_or_else(|| AssetKey::from(format!("{}/{input_name}", job.name).as_str()))
}

/// The step's definition as a version, with the versions of the binary's functions and
/// operations it uses: a new version of one shows the step as changed.
pub fn code_version(step: &StepSpec) -> String {
    code_version_with(step, crate::extensions::installed())
}

/// [`code_version`] with the functions and operations of `brought`.
pub fn code_version_with(step: &StepSpec, brought: &crate::extensions::Signatures) -> String {
    let definition = serde_json::to_string(step).unwrap_or_default();
    let used = extensions_used(step, brought);
    if used.is_empty() {
        return stable_hash(&[&definition]);
    }
    stable_hash(&[&definition, &used.join(" ")])
}

/// The job's declared `[env]` as it is written (values and references, never a secret's value),
/// or `None` when it declares none, so that jobs without one keep their versions and item ids.
pub fn env_definition(env: &runner_types::ItemEnv) -> Option<String> {
    (!env.is_empty()).then(|| serde_json::to_string(env).unwrap_or_default())
}

/// A step's code version with the job's declared environment: a changed value or reference
/// shows every step as changed (a rotated secret under the same reference does not: change a
/// value beside it, such as a key version, to recompute).
pub fn with_env(version: String, env: &runner_types::ItemEnv) -> String {
    match env_definition(env) {
        None => version,
        Some(declared) => stable_hash(&[&version, &declared]),
    }
}

/// `function name@version` and `op name@version` of each function and operation of `brought`
/// that `step` uses, sorted.
pub fn extensions_used(step: &StepSpec, brought: &crate::extensions::Signatures) -> Vec<String> {
    let mut used = std::collections::BTreeSet::new();
    for output in step.outputs.values() {
        let sql = step.output_sql(output);
        let neutral = crate::template::neutral(&sql).unwrap_or(sql);
        for name in runner_sql::functions_called(&neutral).unwrap_or_default() {
            if let Some(f) = brought.functions.get(&name) {
                used.insert(format!("function {name}@{}", f.version));
            }
        }
    }
    for input in step.inputs.values() {
        for op in &input.ops {
            if let super::OpSpec::Custom(c) = op
                && let Some(sig) = brought.table_ops.get(&c.op)
            {
                used.insert(format!("op {}@{}", c.op, sig.version));
            }
        }
    }
    used.into_iter().collect()
}

fn bounds_text(min: Option<u64>, max: Option<u64>) -> Option<String> {
    match (min, max) {
        (Some(a), Some(b)) => Some(format!("between {a} and {b} rows")),
        (Some(a), None) => Some(format!("at least {a} rows")),
        (None, Some(b)) => Some(format!("at most {b} rows")),
        (None, None) => None,
    }
}

fn check_text(check: &CheckSpec) -> String {
    match check {
        CheckSpec::RowCount { min, max, warn_min, warn_max, .. } => {
            let hard = bounds_text(*min, *max).unwrap_or_else(|| "any number of rows".into());
            match bounds_text(*warn_min, *warn_max) {
                Some(soft) => format!("{hard}; warns unless {soft}"),
                None => hard,
            }
        }
        CheckSpec::NoNulls { column, .. } => format!("no nulls in {column}"),
        CheckSpec::Unique { columns, .. } => format!("one row per {}", columns.join(", ")),
    }
}

/// Describes a valid job.
pub fn describe(job: &JobSpec) -> Result<Description, String> {
    let mut steps = Vec::new();
    let mut assets = Vec::new();
    for step in order(job)? {
        let version = with_env(code_version(step), &job.env);
        let mut upstream = BTreeSet::new();
        let mut deps = BTreeSet::new();
        for (name, input) in &step.inputs {
            let mut written = false;
            for other in job.steps.iter().filter(|o| o.name != step.name) {
                for (out_name, _) in other.outputs.iter().filter(|(_, o)| overlaps(&o.path, &input.path)) {
                    written = true;
                    upstream.insert(other.name.to_string());
                    deps.insert(job.asset_of(&runner_types::OutputRef::new(other.name.clone(), out_name.as_str())));
                }
            }
            if !written {
                deps.insert(source_key(job, name, input));
            }
        }
        let mut step_assets = Vec::new();
        for (name, output) in &step.outputs {
            let key = job.asset_of(&runner_types::OutputRef::new(step.name.clone(), name.as_str()));
            step_assets.push(key.clone());
            assets.push(AssetDescription {
                key,
                step: step.name.to_string(),
                output: name.clone(),
                path: output.path.clone(),
                deps: deps.iter().cloned().collect(),
                code_version: version.clone(),
                description: output.description.clone(),
                table: table_description(name, output),
            });
        }
        steps.push(StepDescription {
            name: step.name.to_string(),
            upstream: upstream.into_iter().collect(),
            assets: step_assets,
            code_version: version,
        });
    }
    let checks = job
        .checks
        .iter()
        .map(|c| CheckDescription {
            name: c.name().to_string(),
            asset: job.asset_of(c.output()),
            severity: match c.severity() {
                runner_types::Severity::Warn => "WARN".into(),
                runner_types::Severity::Error => "ERROR".into(),
            },
            description: check_text(c),
        })
        .collect();
    Ok(Description { format: FORMAT, job: job.name.clone(), steps, assets, checks })
}
