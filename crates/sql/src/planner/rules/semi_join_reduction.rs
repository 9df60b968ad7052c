//! An inner join of a filtered relation with an aggregate grouped by the join key (a decorrelated
//! subquery: TPC-H's Q17 joins the parts of one brand with `avg(l_quantity)` of every part) keeps
//! only the groups whose key the filtered side has. This rule filters the aggregate's input to
//! those keys first (a semi join with the filtered relation's keys), so the aggregate groups the
//! rows of a few keys instead of all of them. The answer can't change: a group's rows all share
//! its key, so each group that is kept keeps all of its rows.
//!
//! The keys are taken from the relation the join key comes from, found below inner and semi
//! joins (whose keys are a subset of each side's), and only when it is filtered: without a
//! filter the semi join would keep nearly every row, for nothing. Runs after DataFusion's rules
//! (the subqueries are joins by then); the semi join is named `__spotlake_keys`, so a rule pass
//! that sees it again leaves it.

use std::sync::Arc;

use datafusion_common::tree_node::Transformed;
use datafusion_common::{Column, Result};
use datafusion_expr::logical_plan::{Aggregate, Join};
use datafusion_expr::{Expr, JoinType, LogicalPlan, LogicalPlanBuilder};
use datafusion_optimizer::optimizer::ApplyOrder;
use datafusion_optimizer::{OptimizerConfig, OptimizerRule};

/// The alias of the keys' relation in the semi join this rule adds.
const KEYS: &str = "__spotlake_keys";

#[derive(Debug, Default)]
pub(crate) struct SemiJoinReduction;

impl OptimizerRule for SemiJoinReduction {
    fn name(&self) -> &str {
        "semi_join_reduction"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(j) = plan else {
            return Ok(Transformed::no(plan));
        };
        if j.join_type != JoinType::Inner {
            return Ok(Transformed::no(LogicalPlan::Join(j)));
        }
        for aggregate_on_right in [true, false] {
            for (l, r) in &j.on {
                let (Expr::Column(lc), Expr::Column(rc)) = (l, r) else { continue };
                let (filtered, grouped, key, group_key) =
                    if aggregate_on_right { (&j.left, &j.right, lc, rc) } else { (&j.right, &j.left, rc, lc) };
                let Some((keys, key)) = filtered_source(filtered, key) else { continue };
                let Some(reduced) = reduced(grouped, group_key, &keys, &key)? else { continue };
                let mut out: Join = j.clone();
                if aggregate_on_right {
                    out.right = Arc::new(reduced);
                } else {
                    out.left = Arc::new(reduced);
                }
                return Ok(Transformed::yes(LogicalPlan::Join(out)));
            }
        }
        Ok(Transformed::no(LogicalPlan::Join(j)))
    }
}

/// A filtered relation below `plan` whose column (returned) holds every value `c` has in `plan`'s
/// rows, found through projections, aliases and inner and semi joins.
fn filtered_source(plan: &LogicalPlan, c: &Column) -> Option<(LogicalPlan, Column)> {
    match plan {
        LogicalPlan::Filter(_) => Some((plan.clone(), c.clone())),
        LogicalPlan::Projection(p) => match &p.expr[p.schema.index_of_column(c).ok()?] {
            Expr::Column(inner) => filtered_source(&p.input, inner),
            Expr::Alias(a) => match a.expr.as_ref() {
                Expr::Column(inner) => filtered_source(&p.input, inner),
                _ => None,
            },
            _ => None,
        },
        LogicalPlan::SubqueryAlias(a) => {
            let (q, f) = a.input.schema().qualified_field(a.schema.index_of_column(c).ok()?);
            filtered_source(&a.input, &Column::new(q.cloned(), f.name()))
        }
        LogicalPlan::Join(j) if matches!(j.join_type, JoinType::Inner | JoinType::LeftSemi) => {
            // The side the column comes from, or, when it is a key of this join, the other
            // side's key (an inner or semi join keeps only keys both sides have).
            let mut tries: Vec<(&LogicalPlan, Column)> = Vec::new();
            let on_left = j.left.schema().has_column(c);
            if !on_left && j.join_type == JoinType::LeftSemi {
                return None;
            }
            tries.push((if on_left { &j.left } else { &j.right }, c.clone()));
            for (l, r) in &j.on {
                match (l, r) {
                    (Expr::Column(lc), Expr::Column(rc)) if on_left && lc == c => tries.push((&j.right, rc.clone())),
                    (Expr::Column(lc), Expr::Column(rc)) if !on_left && rc == c => tries.push((&j.left, lc.clone())),
                    _ => {}
                }
            }
            tries.into_iter().find_map(|(side, c)| filtered_source(side, &c))
        }
        _ => None,
    }
}

/// `plan` with the input of the aggregate that groups by `c` (found through projections and
/// aliases) semi-joined with `keys`' column `key`; `None` when `c` is not such a group key, or
/// when that input is reduced already.
fn reduced(plan: &LogicalPlan, c: &Column, keys: &LogicalPlan, key: &Column) -> Result<Option<LogicalPlan>> {
    let below = |child: &LogicalPlan, inner: Column| -> Result<Option<LogicalPlan>> {
        Ok(match reduced(child, &inner, keys, key)? {
            Some(new_child) => Some(plan.with_new_exprs(plan.expressions(), vec![new_child])?),
            None => None,
        })
    };
    match plan {
        LogicalPlan::Projection(p) => {
            let Ok(i) = p.schema.index_of_column(c) else { return Ok(None) };
            match &p.expr[i] {
                Expr::Column(inner) => below(&p.input, inner.clone()),
                Expr::Alias(a) => match a.expr.as_ref() {
                    Expr::Column(inner) => below(&p.input, inner.clone()),
                    _ => Ok(None),
                },
                _ => Ok(None),
            }
        }
        LogicalPlan::SubqueryAlias(a) => {
            let Ok(i) = a.schema.index_of_column(c) else { return Ok(None) };
            let (q, f) = a.input.schema().qualified_field(i);
            below(&a.input, Column::new(q.cloned(), f.name()))
        }
        LogicalPlan::Aggregate(agg) => {
            let Ok(i) = agg.schema.index_of_column(c) else { return Ok(None) };
            let Some(Expr::Column(group)) = agg.group_expr.get(i) else { return Ok(None) };
            if is_reduced(&agg.input) {
                return Ok(None);
            }
            let keys = LogicalPlanBuilder::from(keys.clone())
                .project(vec![Expr::Column(key.clone()).alias("k")])?
                .alias(KEYS)?
                .build()?;
            let input = LogicalPlanBuilder::from(agg.input.as_ref().clone())
                .join(keys, JoinType::LeftSemi, (vec![group.clone()], vec![Column::new(Some(KEYS), "k")]), None)?
                .build()?;
            let agg = Aggregate::try_new_with_schema(
                Arc::new(input),
                agg.group_expr.clone(),
                agg.aggr_expr.clone(),
                Arc::clone(&agg.schema),
            )?;
            Ok(Some(LogicalPlan::Aggregate(agg)))
        }
        _ => Ok(None),
    }
}

fn is_reduced(input: &LogicalPlan) -> bool {
    matches!(input, LogicalPlan::Join(j) if j.join_type == JoinType::LeftSemi
        && matches!(j.right.as_ref(), LogicalPlan::SubqueryAlias(a) if a.alias.table() == KEYS))
}
