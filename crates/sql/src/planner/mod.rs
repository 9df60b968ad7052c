//! SQL → a logical plan with SQL's semantics, by DataFusion's planner crates: parse, resolve names
//! and types (its analyzer: type coercion, `grouping()`), then its optimizer (decorrelation of
//! scalar, `EXISTS`, `IN` and null-aware `NOT IN` subqueries, comma joins into joins, filter and
//! projection push-down, common subexpressions). No DataFusion execution: `runner-engine` lowers
//! the plan to Polars' lazy API, operator by operator.

mod cardinality;
mod context;
mod duckdb;
mod functions;
mod rules;
mod syntax;
mod user_functions;

use std::sync::Arc;

use datafusion_common::config::ConfigOptions;
use datafusion_expr::LogicalPlan;
use datafusion_optimizer::analyzer::Analyzer;
use datafusion_optimizer::analyzer::resolve_grouping_function::ResolveGroupingFunction;
use datafusion_optimizer::analyzer::type_coercion::TypeCoercion;
use datafusion_optimizer::{Optimizer, OptimizerContext};
use datafusion_sql::planner::{ParserOptions, SqlToRel};
use sqlparser::ast::Statement;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

pub use context::{TableStats, Tables};
pub use functions::is_builtin;
pub use user_functions::{Takes, UserFunction};

use crate::SqlError;

/// Plans `sql` (one query) over `tables`: the optimized logical plan, whose schema is the
/// output's (names and Arrow types).
pub fn plan(sql: &str, tables: &Tables) -> Result<LogicalPlan, SqlError> {
    let mut statement = parse(sql)?;
    syntax::prepare(&mut statement)?;
    let context = context::Context::new(tables, functions::builtins());
    let options = datafusion_expr::planner::ContextProvider::options(&context).clone();
    let planner = SqlToRel::new_with_options(&context, ParserOptions::from(&options.sql_parser));
    let plan = planner.sql_statement_to_plan(statement).map_err(plan_error)?;
    optimize(plan, options)
}

/// Checks what can be told of `sql` without the tables' columns: one query, that parses, calls
/// only SQL's functions and `user`'s (the binary's own, lower-case), with nothing refused on its
/// text.
pub fn check(sql: &str, user: &std::collections::BTreeSet<String>) -> Result<(), SqlError> {
    let mut statement = parse(sql)?;
    crate::functions::check_known(&statement, user)?;
    syntax::prepare(&mut statement)
}

/// Parses `sql` as one query.
pub fn parse(sql: &str) -> Result<Statement, SqlError> {
    let mut statements = Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| SqlError::Parse(e.to_string()))?;
    if statements.len() != 1 {
        return Err(SqlError::NotAQuery(format!("expected one SQL statement, found {}", statements.len())));
    }
    let statement = statements.remove(0);
    if !matches!(statement, Statement::Query(_)) {
        return Err(SqlError::NotAQuery("the SQL must be a query (SELECT … or WITH … SELECT …)".into()));
    }
    Ok(statement)
}

/// Types and checks the plan (analyzer), then rewrites it (optimizer), with DataFusion's rules
/// in their listed order.
fn optimize(plan: LogicalPlan, options: ConfigOptions) -> Result<LogicalPlan, SqlError> {
    let analyzer = Analyzer::with_rules(vec![
        Arc::new(ResolveGroupingFunction::new()),
        Arc::new(rules::IntegerLiterals),
        Arc::new(rules::NullifAsCase),
        Arc::new(rules::FloatsOverDecimals),
        Arc::new(TypeCoercion::new()),
        Arc::new(rules::MultisetSetOperations),
    ]);
    let plan = analyzer.execute_and_check(plan, &options, |_, _| {}).map_err(plan_error)?;
    let mut once = options.clone();
    once.optimizer.max_passes = 1;
    let context = OptimizerContext::new_with_config_options(Arc::new(options)).with_skip_failing_rules(false);
    let mut all = rules::ours();
    all.extend(rules::theirs());
    all.extend(rules::after());
    let plan = Optimizer::with_rules(all).optimize(plan, &context, |_, _| {}).map_err(plan_error)?;
    let context = OptimizerContext::new_with_config_options(Arc::new(once)).with_skip_failing_rules(false);
    Optimizer::with_rules(rules::last()).optimize(plan, &context, |_, _| {}).map_err(plan_error)
}

/// The planner's message, without DataFusion's wrapping (`Error during planning: `, a backtrace).
fn plan_error(e: datafusion_common::DataFusionError) -> SqlError {
    let e = e.find_root();
    let text = match e {
        datafusion_common::DataFusionError::Plan(m) | datafusion_common::DataFusionError::NotImplemented(m) => {
            m.clone()
        }
        datafusion_common::DataFusionError::SchemaError(s, _) => s.to_string(),
        other => other.to_string(),
    };
    let text = if text.is_empty() { e.to_string() } else { text };
    SqlError::Plan(text)
}
