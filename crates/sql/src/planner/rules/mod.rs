//! The planner's own optimizer rules: rewrites DataFusion's rules get wrong, or that make a
//! plan Polars runs better. Each is one module, runs before DataFusion's rules in the order
//! listed here, and has before/after tests.

mod exists_of_an_aggregate;
mod floats_over_decimals;
mod integer_literals;

use std::sync::Arc;

use datafusion_optimizer::OptimizerRule;

pub(crate) use exists_of_an_aggregate::ExistsOfAnAggregate;
pub(crate) use floats_over_decimals::FloatsOverDecimals;
pub(crate) use integer_literals::IntegerLiterals;

/// The optimizer rules, in the order they run (before DataFusion's own).
pub(crate) fn ours() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    vec![Arc::new(ExistsOfAnAggregate)]
}

/// DataFusion's optimizer rules that we run: all but `simplify_expressions`, which folds
/// constants with DataFusion's own kernels (whose casts and rounding are not the lowering's:
/// `CAST(2.5 AS INT)` would be 2 there and 3 here). Polars folds constants with the lowered
/// semantics.
pub(crate) fn theirs() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    datafusion_optimizer::Optimizer::new().rules.into_iter().filter(|r| r.name() != "simplify_expressions").collect()
}
