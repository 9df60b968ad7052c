//! The binary's own functions and table operations, as Polars runs them: the builder a user's
//! `main` fills ([`Extensions`]), the function registry an item's SQL context looks them up in,
//! and the guard around each call that turns a panic, an error, a wrong length or a wrong type
//! into a failure naming the function.
//!
//! The set is a fact of the process: [`install`] records it once, before the first command, and
//! hands its Polars-free half (names, versions, parameters) to `runner-spec` for validation.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock};

use polars::prelude::*;
use polars::sql::{FunctionOptions, FunctionRegistry};
use runner_spec::extensions::{FunctionSig, Param, Params, Signatures, TableOpSig};

/// A column function: the argument columns in (all of one length, or length 1 for a literal),
/// one column out.
pub type ColumnFn = dyn Fn(&[Column]) -> PolarsResult<Column> + Send + Sync;

/// A table operation: a frame and the job's parameters in, a frame out.
pub type TableOpFn = dyn Fn(LazyFrame, &Params) -> PolarsResult<LazyFrame> + Send + Sync;

/// What a function takes, checked when a query is planned (before any data is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// Whatever its own code accepts.
    Any,
    /// One text column.
    Text,
    /// `n` numeric columns (cast to `f64`).
    Numbers(usize),
}

#[derive(Clone)]
struct Function {
    version: String,
    output: DataType,
    takes: Takes,
    /// True for an aggregate: one value per group (or per query without `GROUP BY`).
    aggregate: bool,
    call: Arc<ColumnFn>,
}

#[derive(Clone)]
struct TableOp {
    sig: TableOpSig,
    call: Arc<TableOpFn>,
}

/// The functions and table operations a binary brings. Built once in its `main`:
///
/// ```no_run
/// use runner_engine::extensions::Extensions;
/// let ext = Extensions::new()
///     .text_function("host", "1", |url| url.split('/').nth(2).map(str::to_string))
///     .number_function("km", "1", 1, |v| Some(v[0] / 1000.0));
/// runner_engine::extensions::install(ext);
/// ```
///
/// Names are lower-case identifiers (SQL finds functions without regard to case), may not be a
/// Polars SQL function's or a built-in operation's, and are given once: a binary that breaks
/// these rules panics when it builds its set, at its first start, naming the function.
#[derive(Clone, Default)]
pub struct Extensions {
    functions: BTreeMap<String, Function>,
    table_ops: BTreeMap<String, TableOp>,
}

impl Extensions {
    /// An empty set: what the plain `runner` brings.
    pub fn new() -> Self {
        Self::default()
    }

    /// A function over whole columns, returning a column of `output` type, as long as its
    /// arguments. The fastest kind: work on the column's chunked arrays directly.
    pub fn scalar(
        self,
        name: &str,
        version: &str,
        output: DataType,
        f: impl Fn(&[Column]) -> PolarsResult<Column> + Send + Sync + 'static,
    ) -> Self {
        self.function(name, version, output, Takes::Any, false, Arc::new(f))
    }

    /// An aggregate function: called with a group's rows (all rows without `GROUP BY`), it
    /// returns one value of `output` type, as a column of length 1.
    pub fn aggregate(
        self,
        name: &str,
        version: &str,
        output: DataType,
        f: impl Fn(&[Column]) -> PolarsResult<Column> + Send + Sync + 'static,
    ) -> Self {
        self.function(name, version, output, Takes::Any, true, Arc::new(f))
    }

    /// An aggregate of one numeric argument (cast to `f64`, nulls left out): `geomean(x)`.
    pub fn number_aggregate(
        self,
        name: &str,
        version: &str,
        f: impl Fn(&[f64]) -> Option<f64> + Send + Sync + 'static,
    ) -> Self {
        let call = move |args: &[Column]| -> PolarsResult<Column> {
            let numbers = args[0].cast(&DataType::Float64)?;
            let values: Vec<f64> = numbers.f64()?.iter().flatten().collect();
            Ok(Column::new(args[0].name().clone(), [f(&values)]))
        };
        self.function(name, version, DataType::Float64, Takes::Numbers(1), true, Arc::new(call))
    }

    /// A function of one text value, `None` for null: `host(url)`. Null in, null out, without
    /// calling it.
    pub fn text_function(
        self,
        name: &str,
        version: &str,
        f: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        let call = move |args: &[Column]| -> PolarsResult<Column> {
            // An all-null argument comes typed as null: it is text with no values.
            let text = args[0].cast(&DataType::String)?;
            let text = text.str()?;
            let out: StringChunked = text.iter().map(|v| v.and_then(&f)).collect();
            Ok(out.with_name(args[0].name().clone()).into_column())
        };
        self.function(name, version, DataType::String, Takes::Text, false, Arc::new(call))
    }

    /// A function of `arity` numbers (each argument cast to `f64`), `None` for null:
    /// `km(distance_m)`, `haversine(lat1, lon1, lat2, lon2)`. A null argument gives null without
    /// calling it.
    pub fn number_function(
        self,
        name: &str,
        version: &str,
        arity: usize,
        f: impl Fn(&[f64]) -> Option<f64> + Send + Sync + 'static,
    ) -> Self {
        let call = move |args: &[Column]| -> PolarsResult<Column> {
            let rows = rows_of(args);
            let mut numbers = Vec::with_capacity(args.len());
            for a in args {
                // A literal comes as one value: it stands for every row (of none, too).
                let a = if a.len() == 1 && rows != 1 { a.new_from_index(0, rows) } else { a.clone() };
                numbers.push(a.cast(&DataType::Float64)?.f64()?.rechunk().into_owned());
            }
            let mut row = vec![0.0; numbers.len()];
            // Without nulls, the values are read straight from their buffers.
            let slices: Option<Vec<&[f64]>> = numbers.iter().map(|c| c.cont_slice().ok()).collect();
            let out: Float64Chunked = match slices {
                Some(slices) => (0..rows)
                    .map(|i| {
                        for (slot, values) in row.iter_mut().zip(&slices) {
                            *slot = values[i];
                        }
                        f(&row)
                    })
                    .collect(),
                None => {
                    let mut columns: Vec<_> = numbers.iter().map(|c| c.iter()).collect();
                    (0..rows)
                        .map(|_| {
                            let mut null = false;
                            for (slot, values) in row.iter_mut().zip(columns.iter_mut()) {
                                match values.next().flatten() {
                                    Some(v) => *slot = v,
                                    None => null = true,
                                }
                            }
                            if null { None } else { f(&row) }
                        })
                        .collect()
                }
            };
            Ok(out.with_name(args[0].name().clone()).into_column())
        };
        self.function(name, version, DataType::Float64, Takes::Numbers(arity), false, Arc::new(call))
    }

    /// A table operation named in an input's `ops` as `{ op = "name", … }`, taking `params`.
    pub fn table_op(
        mut self,
        name: &str,
        version: &str,
        params: Vec<Param>,
        f: impl Fn(LazyFrame, &Params) -> PolarsResult<LazyFrame> + Send + Sync + 'static,
    ) -> Self {
        check_name(name, "table operation");
        assert!(
            !runner_spec::BUILTIN_OPS.contains(&name),
            "table operation {name:?} has the name of a built-in operation; choose another"
        );
        assert!(!self.table_ops.contains_key(name), "table operation {name:?} is given twice");
        let sig = TableOpSig { version: version.to_string(), params };
        self.table_ops.insert(name.to_string(), TableOp { sig, call: Arc::new(f) });
        self
    }

    fn function(
        mut self,
        name: &str,
        version: &str,
        output: DataType,
        takes: Takes,
        aggregate: bool,
        call: Arc<ColumnFn>,
    ) -> Self {
        check_name(name, "function");
        assert!(!runner_sql::is_builtin(name), "function {name:?} has the name of an SQL function; choose another");
        assert!(
            !runner_sql::SYNTAX_NAMES.contains(&name),
            "function {name:?} has a name SQL reads as syntax of its own (as in TRIM(BOTH …)); choose another"
        );
        assert!(!self.functions.contains_key(name), "function {name:?} is given twice");
        self.functions
            .insert(name.to_string(), Function { version: version.to_string(), output, takes, aggregate, call });
        self
    }

    /// Names, versions and parameters, for validation.
    pub fn signatures(&self) -> Signatures {
        Signatures {
            functions: self
                .functions
                .iter()
                .map(|(n, f)| (n.clone(), FunctionSig { version: f.version.clone(), aggregate: f.aggregate }))
                .collect(),
            table_ops: self.table_ops.iter().map(|(n, t)| (n.clone(), t.sig.clone())).collect(),
        }
    }

    /// The functions as the SQL planner types them (a function whose output type SQL has no
    /// name for is left out, and a call of it is refused as unknown).
    pub(crate) fn planner_functions(&self) -> Vec<runner_sql::UserFunction> {
        self.functions
            .iter()
            .filter_map(|(name, f)| {
                let returns = crate::lower::arrow_field(name, &f.output)?.data_type().clone();
                let takes = match f.takes {
                    Takes::Any => runner_sql::Takes::Any,
                    Takes::Text => runner_sql::Takes::Text,
                    Takes::Numbers(n) => runner_sql::Takes::Numbers(n),
                };
                Some(runner_sql::UserFunction { name: name.clone(), takes, returns, aggregate: f.aggregate })
            })
            .collect()
    }

    /// True when the binary brings no functions.
    pub fn has_functions(&self) -> bool {
        !self.functions.is_empty()
    }

    /// The registry an item's SQL context looks functions up in; each call records its failure
    /// in `failure`, so the item can name the function.
    pub(crate) fn registry(&self, failure: &Failure) -> Arc<dyn FunctionRegistry> {
        let udfs = self.functions.iter().map(|(name, f)| (name.clone(), udf(name, f, failure.clone()))).collect();
        Arc::new(Registry { udfs })
    }

    /// Applies table operation `name` to `frame`; its panic or error names it.
    pub(crate) fn apply_table_op(&self, name: &str, frame: LazyFrame, params: &Params) -> Result<LazyFrame, String> {
        let Some(op) = self.table_ops.get(name) else {
            return Err(format!(
                "this binary has no table operation {name:?} (it has: {}); was the fleet launched with \
                 another binary than the one that validated the job?",
                self.signatures().table_op_list()
            ));
        };
        match catch_unwind(AssertUnwindSafe(|| (op.call)(frame, params))) {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(e)) => Err(format!("table operation {name} failed: {e}")),
            Err(panic) => Err(format!("table operation {name} panicked: {}", panic_text(&panic))),
        }
    }
}

fn check_name(name: &str, what: &str) {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    assert!(ok, "{what} {name:?}: a name is a lower-case identifier (a-z, 0-9, _)");
}

/// The first failure of a user function during one item: the function and what went wrong.
pub(crate) type Failure = Arc<Mutex<Option<(String, String)>>>;

struct Registry {
    udfs: PlHashMap<String, UserDefinedFunction>,
}

impl FunctionRegistry for Registry {
    fn register(&mut self, name: &str, _: UserDefinedFunction) -> PolarsResult<()> {
        polars_bail!(ComputeError: "functions are registered by the binary's main, not by SQL ({name})")
    }

    fn get_udf(&self, name: &str) -> PolarsResult<Option<UserDefinedFunction>> {
        Ok(self.udfs.get(name).cloned())
    }

    fn contains(&self, name: &str) -> bool {
        self.udfs.contains_key(name)
    }
}

/// `f` as Polars calls it: elementwise (so the streaming engine runs it batch by batch) or, for
/// an aggregate, once per group; its arguments checked at planning, and each call guarded.
fn udf(name: &str, f: &Function, failure: Failure) -> UserDefinedFunction {
    let (plan_name, output, takes) = (name.to_string(), f.output.clone(), f.takes);
    let output_type = move |_: &Schema, fields: &[Field]| -> PolarsResult<Field> {
        let wrong = |want: String| polars_err!(InvalidOperation: "function {plan_name} takes {want}; it was given {}", fields.iter().map(|f| format!("{} ({})", f.name(), f.dtype())).collect::<Vec<_>>().join(", "));
        match takes {
            Takes::Any => {}
            Takes::Text => {
                if fields.len() != 1 || !matches!(fields[0].dtype(), DataType::String | DataType::Null) {
                    return Err(wrong("one text argument".into()));
                }
            }
            Takes::Numbers(n) => {
                if fields.len() != n
                    || !fields
                        .iter()
                        .all(|f| f.dtype().is_primitive_numeric() || f.dtype().is_decimal() || f.dtype().is_null())
                {
                    return Err(wrong(format!("{n} numeric arguments")));
                }
            }
        }
        let column = fields.first().map(|f| f.name().clone()).unwrap_or_else(|| plan_name.as_str().into());
        Ok(Field::new(column, output.clone()))
    };
    let (call_name, call, declared, aggregate) = (name.to_string(), f.call.clone(), f.output.clone(), f.aggregate);
    let guarded = move |args: &mut [Column]| -> PolarsResult<Column> {
        let rows = rows_of(args);
        let problem = match catch_unwind(AssertUnwindSafe(|| call(args))) {
            Ok(Ok(out)) if aggregate && out.len() != 1 => {
                format!("returned {} rows for a group (an aggregate returns one value)", out.len())
            }
            Ok(Ok(out)) if !aggregate && out.len() != rows && !args.is_empty() => {
                format!("returned {} rows for {rows} (a function returns one value per row)", out.len())
            }
            Ok(Ok(out)) if out.dtype() != &declared && !out.dtype().is_null() => {
                format!("returned {} values, not the {declared} it declares", out.dtype())
            }
            Ok(Ok(out)) => return Ok(out),
            Ok(Err(e)) => format!("failed: {e}"),
            Err(panic) => format!("panicked: {}", panic_text(&panic)),
        };
        if let Ok(mut slot) = failure.lock() {
            slot.get_or_insert_with(|| (call_name.clone(), problem.clone()));
        }
        Err(polars_err!(ComputeError: "function {call_name} {problem}"))
    };
    UserDefinedFunction {
        name: name.into(),
        fun: new_column_udf(BaseColumnUdf::new(guarded, output_type)),
        options: if f.aggregate { FunctionOptions::aggregation() } else { FunctionOptions::elementwise() },
    }
}

/// How many rows a call is for: the length of its column arguments; literals come as one value
/// each, so a call of literals alone is for one row.
fn rows_of(args: &[Column]) -> usize {
    args.iter().map(Column::len).find(|&n| n != 1).unwrap_or(1)
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

static INSTALLED: OnceLock<Extensions> = OnceLock::new();

/// Records what this binary brings, for every item it runs and every spec it validates; the
/// first call wins.
pub fn install(extensions: Extensions) {
    runner_spec::extensions::install(extensions.signatures());
    let _ = INSTALLED.set(extensions);
}

/// What this binary brings: nothing for the plain `runner`.
pub fn installed() -> &'static Extensions {
    static NONE: OnceLock<Extensions> = OnceLock::new();
    INSTALLED.get().unwrap_or_else(|| NONE.get_or_init(Extensions::default))
}
