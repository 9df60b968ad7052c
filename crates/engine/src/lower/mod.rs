//! A logical plan (from `runner_sql::plan`, DataFusion's planner) lowered to Polars' lazy API,
//! operator by operator, with SQL's semantics where Polars' differ. Polars runs every byte.
//!
//! Every column a lowered operator produces gets a fresh name from one counter (`_0`, `_1`, …),
//! and each operator carries the list of those names in its schema's order: columns are found
//! by position in the planner's schema, never by a name Polars could confuse (two inputs'
//! `k`, a derived name such as `sum(t.v)`). The last step renames them to the query's own
//! output names. A construct with no lowering is refused by name, before anything runs.

mod aggregate;
mod decimal;
mod expr;
mod functions;
mod join;
mod literal;
mod one_sided;
mod relation;
mod subquery;
mod types;
mod window;

use std::collections::HashMap;

use polars::prelude::*;
use runner_sql::datafusion_common::DFSchema;
use runner_sql::datafusion_expr::LogicalPlan;

pub use types::arrow_field;

/// What can't be lowered, in words (the construct and why).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LowerError(pub String);

pub(crate) type Result<T> = std::result::Result<T, LowerError>;

/// Refuses: `what` is not supported.
pub(crate) fn unsupported<T>(what: impl std::fmt::Display) -> Result<T> {
    Err(LowerError(format!("{what} is not supported")))
}

/// An operator's result: its frame, and the Polars name of each column of its schema.
#[derive(Clone)]
pub(crate) struct Lowered {
    pub frame: LazyFrame,
    pub names: Vec<PlSmallStr>,
}

/// Hands out fresh column names for one query.
#[derive(Default)]
pub(crate) struct Namer(usize);

impl Namer {
    pub fn fresh(&mut self) -> PlSmallStr {
        self.0 += 1;
        format!("_{}", self.0).into()
    }

    pub fn fresh_n(&mut self, n: usize) -> Vec<PlSmallStr> {
        (0..n).map(|_| self.fresh()).collect()
    }
}

/// What lowering needs besides the plan: the inputs' frames, the binary's functions and the
/// name counter.
pub(crate) struct Lowering<'a> {
    pub inputs: &'a HashMap<String, LazyFrame>,
    pub functions: Option<&'a dyn polars::sql::FunctionRegistry>,
    pub namer: Namer,
    /// Uncorrelated scalar subqueries joined on so far, and their columns.
    pub scalars: Vec<(runner_sql::datafusion_expr::Subquery, PlSmallStr)>,
    /// The joins and filters lowered so far, by plan.
    pub lowered: HashMap<LogicalPlan, Lowered>,
}

/// Lowers `plan` over `inputs` (by table name): a frame whose columns are the plan's output, by
/// the plan's names and in its order.
pub fn lower(
    plan: &LogicalPlan,
    inputs: &HashMap<String, LazyFrame>,
    functions: Option<&dyn polars::sql::FunctionRegistry>,
) -> Result<LazyFrame> {
    let mut lowering =
        Lowering { inputs, functions, namer: Namer::default(), scalars: Vec::new(), lowered: HashMap::new() };
    let lowered = lowering.plan(plan)?;
    let schema = plan.schema();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(lowered.names.len());
    for (field, name) in schema.fields().iter().zip(&lowered.names) {
        if !seen.insert(field.name().clone()) {
            return Err(LowerError(format!(
                "the query returns two columns named {:?}; give each output column a name of its own (AS …)",
                field.name()
            )));
        }
        out.push(col(name.clone()).alias(field.name().as_str()));
    }
    Ok(lowered.frame.select(out))
}

/// The Polars name of the column `c` of an operator with this schema and these names.
pub(crate) fn column(
    schema: &DFSchema,
    names: &[PlSmallStr],
    c: &runner_sql::datafusion_common::Column,
) -> Result<PlSmallStr> {
    match schema.index_of_column(c) {
        Ok(i) => Ok(names[i].clone()),
        Err(e) => Err(LowerError(format!("column {c} is not found below it: {e}"))),
    }
}

/// One input of a query: its name, frame and schema, what the planner may know of its contents
/// (to order joins), and the columns it holds no NULL in (typed `NOT NULL`).
pub struct Input {
    pub name: String,
    pub frame: LazyFrame,
    pub schema: SchemaRef,
    pub stats: runner_sql::TableStats,
    pub never_null: std::collections::HashSet<String>,
}

/// Plans `sql` over the step's input frames (by name) and lowers it: the output frame. The
/// binary's functions are typed by `signatures` and called through `functions`.
pub fn query(
    sql: &str,
    inputs: &[Input],
    signatures: Vec<runner_sql::UserFunction>,
    functions: Option<&dyn polars::sql::FunctionRegistry>,
) -> std::result::Result<LazyFrame, QueryError> {
    let mut tables = runner_sql::Tables::new().with_functions(signatures);
    let mut frames = HashMap::with_capacity(inputs.len());
    for Input { name, frame, schema, stats, never_null } in inputs {
        let fields = schema
            .iter()
            .filter_map(|(n, t)| arrow_field(n, t).map(|f| f.with_nullable(!never_null.contains(n.as_str()))));
        tables = tables.with_table(name.clone(), fields).with_stats(name.clone(), stats.clone());
        frames.insert(name.clone(), frame.clone());
    }
    let plan = runner_sql::plan(sql, &tables).map_err(|e| QueryError(e.to_string()))?;
    let frame = lower(&plan, &frames, functions).map_err(|e| QueryError(e.0))?;
    if explaining() {
        eprintln!("-- the planner's plan:\n{}", plan.display_indent());
        match frame.describe_optimized_plan() {
            Ok(text) => eprintln!("-- Polars' plan:\n{text}"),
            Err(e) => eprintln!("-- Polars' plan can't be shown: {e}"),
        }
    }
    Ok(frame)
}

/// `SPOTLAKE_EXPLAIN` set: each item prints each output's plans (the planner's, then Polars'
/// optimized one) to its standard error.
fn explaining() -> bool {
    std::env::var_os("SPOTLAKE_EXPLAIN").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Why a query could not be made a frame: the SQL is refused (not SQL, not plannable, or a
/// construct with no lowering), in words.
#[derive(Debug)]
pub struct QueryError(pub String);
