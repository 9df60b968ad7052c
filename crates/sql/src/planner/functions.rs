//! The functions a query may call, as the planner knows them: DataFusion's built-in scalar,
//! aggregate and window functions (their names, signatures and return types: what planning
//! needs), and the expression planners that turn SQL syntax (`EXTRACT`, `POSITION`, `||`,
//! `count(*)`, …) into calls of them. Whether a function runs is the lowering's business: one
//! it can't lower is refused there, by name.

use std::sync::{Arc, OnceLock};

use datafusion_expr::planner::ExprPlanner;
use datafusion_expr::{AggregateUDF, ScalarUDF, WindowUDF};

/// Every function the planner offers.
pub(crate) struct Functions {
    pub scalars: Vec<Arc<ScalarUDF>>,
    pub aggregates: Vec<Arc<AggregateUDF>>,
    pub windows: Vec<Arc<WindowUDF>>,
    pub planners: Vec<Arc<dyn ExprPlanner>>,
}

/// The built-ins, made once per process.
pub(crate) fn builtins() -> &'static Functions {
    static BUILTINS: OnceLock<Functions> = OnceLock::new();
    BUILTINS.get_or_init(|| Functions {
        scalars: datafusion_functions::all_default_functions()
            .into_iter()
            .map(|f| match f.name() {
                "floor" | "ceil" | "trunc" => Arc::new(ScalarUDF::new_from_impl(super::duckdb::Integral(f))),
                _ => f,
            })
            .chain(duckdb_functions())
            .collect(),
        aggregates: datafusion_functions_aggregate::all_default_aggregate_functions()
            .into_iter()
            .filter(|f| !matches!(f.name(), "avg" | "median" | "percentile_cont"))
            .map(|f| match f.name() {
                // DuckDB's and Postgres' name for the sample variance.
                "var" => Arc::new(f.as_ref().clone().with_aliases(["variance"])),
                _ => f,
            })
            .chain([
                Arc::new(AggregateUDF::new_from_impl(super::duckdb::Avg::new())),
                Arc::new(AggregateUDF::new_from_impl(super::duckdb::Quantile::median())),
                Arc::new(AggregateUDF::new_from_impl(super::duckdb::Quantile::percentile_cont())),
            ])
            .collect(),
        windows: datafusion_functions_window::all_default_window_functions(),
        planners: vec![
            Arc::new(super::duckdb::DuckDbArithmetic),
            Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
            Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
            Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
            Arc::new(datafusion_functions_aggregate::planner::AggregateFunctionPlanner),
            Arc::new(datafusion_functions_window::planner::WindowFunctionPlanner),
        ],
    })
}

/// DuckDB's functions the lowering implements that DataFusion doesn't have: `strptime(text,
/// format)` (a timestamp, failing on text that doesn't match) and `strftime(time, format)`.
fn duckdb_functions() -> Vec<Arc<ScalarUDF>> {
    use arrow_schema::{DataType, TimeUnit};

    use super::user_functions::{Takes, UserFunction, UserScalar};
    let fixed = |name: &str, returns: DataType| {
        let f = UserFunction { name: name.into(), takes: Takes::Any, returns, aggregate: false };
        Arc::new(ScalarUDF::new_from_impl(UserScalar::new(f)))
    };
    vec![fixed("strptime", DataType::Timestamp(TimeUnit::Microsecond, None)), fixed("strftime", DataType::Utf8)]
}

/// True when `name` (lower-case) is a function of the planner's own: a function of the binary's
/// may not take it.
pub fn is_builtin(name: &str) -> bool {
    let f = builtins();
    let names = |n: &str, aliases: &[String]| n == name || aliases.iter().any(|a| a == name);
    f.scalars.iter().any(|u| names(u.name(), u.aliases()))
        || f.aggregates.iter().any(|u| names(u.name(), u.aliases()))
        || f.windows.iter().any(|u| names(u.name(), u.aliases()))
}
