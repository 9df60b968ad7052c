//! # runner-sql — the job's SQL, made into SQL Polars can run
//!
//! A job's SQL is written as users write it in Spark, Athena, DuckDB or dbt. Polars SQL 0.55.2
//! refuses much of that (correlated and scalar subqueries, non-equality conditions in `JOIN …
//! ON`, the standard interval spelling), plans comma joins as cross products, and divides
//! decimals at the wrong scale. [`prepare`] parses the query, rewrites each of those into SQL
//! Polars plans correctly, with each rewrite a named rule (see [`rules`]' table), and refuses
//! what still can't run, naming the construct and where it stands.
//!
//! Calls of the binary's own functions (registered with the catalog) are checked too: a call of
//! a function neither Polars SQL nor the binary has is refused by name, and a nested query that
//! calls one becomes a [`Piece`] Polars plans first, where the function is found.
//!
//! It owns only text in, text out: no Polars, no files. It needs the columns of the tables a
//! query reads (a [`Catalog`]) to tell a subquery's own columns from the outer query's.
//!
//! ```
//! use runner_sql::{Catalog, prepare};
//! let catalog = Catalog::new().with_table("t", ["a", "b"]).with_table("u", ["c"]);
//! let p = prepare("SELECT a FROM t, u WHERE a = c", &catalog)?;
//! assert_eq!(p.sql, "SELECT a FROM t INNER JOIN u ON t.a = u.c");
//! assert_eq!(p.rules, ["comma_joins"]);
//! # Ok::<(), runner_sql::SqlError>(())
//! ```

mod error;
mod expr;
mod functions;
pub mod rules;
mod scope;
mod types;

pub use error::SqlError;
pub use functions::{POLARS_FUNCTIONS, SYNTAX_NAMES};
pub use rules::Piece;
pub use scope::Catalog;
pub use types::ColumnType;

use sqlparser::ast::Statement;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// A query ready for Polars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The SQL to hand to Polars.
    pub sql: String,
    /// The rules that changed it, by name, in alphabetical order.
    pub rules: Vec<&'static str>,
    /// Queries to plan first, in order, each registered as a table under its name before the
    /// next piece and [`Prepared::sql`] are planned (see the `nested_user_functions` rule).
    pub pieces: Vec<Piece>,
}

/// Parses `sql` (one query), applies every rule, and returns what Polars should run; or refuses
/// it, naming what can't run.
pub fn prepare(sql: &str, catalog: &Catalog) -> Result<Prepared, SqlError> {
    let mut statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| SqlError::Parse(e.to_string()))?;
    if statements.len() != 1 {
        return Err(SqlError::NotAQuery(format!("expected one SQL statement, found {}", statements.len())));
    }
    let Statement::Query(query) = &mut statements[0] else {
        return Err(SqlError::NotAQuery("the SQL must be a query (SELECT … or WITH … SELECT …)".into()));
    };
    functions::check_known(query, catalog.functions())?;
    let mut rw = rules::Rewriter::default();
    rules::rewrite(query, catalog, &mut rw)?;
    let pieces = rules::lift(query, catalog, &mut rw)?;
    Ok(Prepared { sql: statements[0].to_string(), rules: rw.applied.into_iter().collect(), pieces })
}

/// The functions `sql` (one query) calls, lower-cased, in every part of it: what a step's code
/// version depends on beyond its text.
pub fn functions_called(sql: &str) -> Result<std::collections::BTreeSet<String>, SqlError> {
    let statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| SqlError::Parse(e.to_string()))?;
    Ok(statements
        .iter()
        .filter_map(|s| match s {
            Statement::Query(q) => Some(functions::called(q)),
            _ => None,
        })
        .flatten()
        .collect())
}
