//! The planner's own optimizer rules: rewrites DataFusion's rules get wrong, or that make a
//! plan Polars runs better. Each is one module, runs before DataFusion's rules in the order
//! listed here, and has before/after tests.

mod exact_constants;
mod exists_as_count;
mod exists_of_an_aggregate;
mod floats_over_decimals;
mod in_as_exists;
mod integer_literals;
mod is_true_conditions;
mod join_order;
mod multiset_set_operations;
mod nullif_as_case;
mod semi_join_keys;
mod semi_join_reduction;

use std::sync::Arc;

use datafusion_optimizer::OptimizerRule;

pub(crate) use exact_constants::ExactConstants;
pub(crate) use exists_as_count::ExistsAsCount;
pub(crate) use exists_of_an_aggregate::ExistsOfAnAggregate;
pub(crate) use floats_over_decimals::FloatsOverDecimals;
pub(crate) use in_as_exists::InAsExists;
pub(crate) use integer_literals::IntegerLiterals;
pub(crate) use is_true_conditions::IsTrueConditions;
pub(crate) use join_order::JoinOrder;
pub(crate) use multiset_set_operations::{MARKER as MULTISET_MARKER, MultisetSetOperations};
pub(crate) use nullif_as_case::NullifAsCase;
pub(crate) use semi_join_keys::SemiJoinKeys;
pub(crate) use semi_join_reduction::SemiJoinReduction;

/// The optimizer rules, in the order they run (before DataFusion's own). DataFusion's
/// `rewrite_set_comparison` runs among them too: the rules after it must see the `EXISTS` tests
/// it writes for `= ANY` and `> ALL`.
pub(crate) fn ours() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    vec![
        Arc::new(ExactConstants),
        Arc::new(ExistsOfAnAggregate),
        Arc::new(InAsExists),
        Arc::new(datafusion_optimizer::rewrite_set_comparison::RewriteSetComparison::new()),
        Arc::new(IsTrueConditions),
        Arc::new(ExistsAsCount),
    ]
}

/// The optimizer rules that run after DataFusion's, in order: those that need its subqueries
/// decorrelated into joins.
pub(crate) fn after() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    vec![Arc::new(SemiJoinReduction)]
}

/// The rules that run once, after all the others: the join order (on the joins the other
/// rules made), the semi joins' reduced right sides (where the join order put them), then
/// DataFusion's projection pruning over the rebuilt joins.
pub(crate) fn last() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    vec![
        Arc::new(JoinOrder),
        Arc::new(SemiJoinKeys),
        Arc::new(datafusion_optimizer::optimize_projections::OptimizeProjections::new()),
    ]
}

/// DataFusion's optimizer rules that we run: all but `simplify_expressions`, which folds
/// constants with DataFusion's own kernels (whose casts and rounding are not the lowering's:
/// `CAST(2.5 AS INT)` would be 2 there and 3 here). Polars folds constants with the lowered
/// semantics.
pub(crate) fn theirs() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    datafusion_optimizer::Optimizer::new().rules.into_iter().filter(|r| r.name() != "simplify_expressions").collect()
}

/// Rewrites every expression of every operator of `plan` (subqueries too) bottom-up with
/// `rewrite`, which sees the operator's input schema (its inputs' merged), keeping each
/// expression's name: the operators above find their columns by it. The analyzer rules' walk.
pub(crate) fn rewrite_expressions(
    plan: datafusion_expr::LogicalPlan,
    skip: impl Fn(&datafusion_expr::LogicalPlan) -> bool,
    rewrite: impl Fn(
        datafusion_expr::Expr,
        &datafusion_common::DFSchema,
    ) -> datafusion_common::tree_node::Transformed<datafusion_expr::Expr>,
) -> datafusion_common::Result<datafusion_expr::LogicalPlan> {
    use datafusion_common::tree_node::{Transformed, TransformedResult, TreeNode};
    plan.transform_up_with_subqueries(|p| {
        if skip(&p) {
            return Ok(Transformed::no(p));
        }
        let mut schema = datafusion_common::DFSchema::empty();
        for input in p.inputs() {
            schema.merge(input.schema());
        }
        let names = datafusion_expr::expr_rewriter::NamePreserver::new(&p);
        p.map_expressions(|e| {
            let saved = names.save(&e);
            Ok(e.transform_up(|e| Ok(rewrite(e, &schema)))?.update_data(|e| saved.restore(e)))
        })
    })
    .data()
}
