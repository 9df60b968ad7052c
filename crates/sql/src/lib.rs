//! # runner-sql — the job's SQL, planned with SQL's semantics
//!
//! A job's SQL is written as users write it in Spark, Athena, DuckDB or dbt. [`plan`] parses one
//! query and plans it with DataFusion's planner crates: names and types resolved, subqueries
//! decorrelated (scalar, `EXISTS`, `IN`, null-aware `NOT IN`), comma joins made joins, filters
//! and projections pushed down. Where DuckDB (the engine the tests compare with) and DataFusion
//! differ, the planner follows DuckDB, each such choice a named rule ([`planner`]). What would
//! still be answered differently is refused before planning, naming the construct and where it
//! stands.
//!
//! It owns no execution: `runner-engine` lowers the plan to Polars' lazy API. It needs the
//! inputs' Arrow schemas (a [`Tables`]) and the binary's own functions' signatures.
//!
//! ```
//! use runner_sql::arrow_schema::{DataType, Field};
//! use runner_sql::{Tables, plan};
//! let tables = Tables::new()
//!     .with_table("t", [Field::new("a", DataType::Int32, true)])
//!     .with_table("u", [Field::new("c", DataType::Int32, true)]);
//! let p = plan("SELECT a FROM t, u WHERE a = c", &tables)?;
//! assert!(p.display_indent().to_string().contains("Inner Join: t.a = u.c"));
//! # Ok::<(), runner_sql::SqlError>(())
//! ```

pub mod constants;
mod error;
mod functions;
pub mod planner;

pub use error::SqlError;
pub use functions::SYNTAX_NAMES;
pub use planner::{TableStats, Tables, Takes, UserFunction, check, is_builtin, parse, plan};
/// The planner's crates, for the engine's lowering: one version, named once, here.
pub use {arrow_schema, datafusion_common, datafusion_expr};

/// The functions `sql` (one query) calls, lower-cased, in every part of it: what a step's code
/// version depends on beyond its text.
pub fn functions_called(sql: &str) -> Result<std::collections::BTreeSet<String>, SqlError> {
    Ok(functions::called(&parse(sql)?))
}
