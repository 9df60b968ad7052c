//! The order of a query's inner joins, chosen by guessed sizes rather than by the order of
//! `FROM`. A tree of inner equi-joins (with the projections, filters, semi and anti joins
//! between them) is taken apart into its relations, the equalities that join them, and the
//! filters on top; then rebuilt greedily (greedy operator ordering): of the parts an equality
//! joins, the two whose join is guessed cheapest are joined first, until one is left. A join's
//! cost is the rows it makes (`cardinality`) plus a tenth of its hash join's work, in which a
//! probe of a table too large for a cache costs more ([`work`]). Each filter goes on as soon as
//! the columns it reads are there, each semi and anti join once the rows it would probe are no
//! more than its right side's.
//!
//! TPC-H's Q21 names `supplier, lineitem, orders, nation`: as written, the one nation is
//! joined last, after millions of lineitems; reordered, it picks its 400 suppliers first.
//! Q18's `IN` (a semi join on the orders' key, from an aggregate) applies to the orders before
//! the lineitems are joined, instead of after.
//!
//! Inner joins, filters over them, and semi and anti joins (each a test on its left rows
//! alone) commute, so the rows are the same; the columns are put back in their order on top.
//! The rows' order is not kept, as SQL doesn't promise it without `ORDER BY`.
//! A tree with a cross join, a join condition that is not an equality of columns, an outer or
//! mark join inside, or fewer than three relations is left as it is. Runs once, after the other
//! rules.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion_common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion_common::{Column, NullEquality, Result};
use datafusion_expr::logical_plan::{Filter, Join, JoinConstraint, Projection};
use datafusion_expr::{Expr, JoinType, LogicalPlan};
use datafusion_optimizer::{OptimizerConfig, OptimizerRule};

use super::super::cardinality;

#[derive(Debug, Default)]
pub(crate) struct JoinOrder;

impl OptimizerRule for JoinOrder {
    fn name(&self) -> &str {
        "join_order"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        reorder(plan)
    }
}

/// Reorders every join tree in `plan`, outermost first, subqueries' too (a scalar subquery
/// left in a filter, as TPC-H's Q11 has, is its own plan: the optimizer does not walk into it
/// for a rule that walks itself); each tree's relations are reordered before the tree is
/// rebuilt.
fn reorder(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    plan.transform_down_with_subqueries(|p| {
        // A tree's top: an inner join, or a semi or anti join over one.
        if !matches!(&p, LogicalPlan::Join(_)) || !joins(&p) {
            return Ok(Transformed::no(p));
        }
        let mut tree = Tree::default();
        if !tree.take_apart(&p) || tree.relations.len() < 3 {
            return Ok(Transformed::no(p));
        }
        for t in &mut tree.tests {
            if let Test::Semi(j) = t {
                j.right = Arc::new(reorder(j.right.as_ref().clone())?.data);
            }
        }
        let mut relations = Vec::with_capacity(tree.relations.len());
        for r in std::mem::take(&mut tree.relations) {
            relations.push(reorder(r)?.data);
        }
        tree.relations = relations;
        let Some(rebuilt) = tree.rebuild(&p)? else {
            return Ok(Transformed::no(p));
        };
        Ok(Transformed::new(rebuilt, true, TreeNodeRecursion::Jump))
    })
}

/// A test applied to the joined rows: a filter, or a semi or anti join with its right side.
#[derive(Debug, Clone)]
enum Test {
    Filter(Expr),
    Semi(Join),
}

impl Test {
    /// The columns of the joined rows it reads.
    fn reads(&self) -> HashSet<Column> {
        match self {
            Test::Filter(e) => e.column_refs().into_iter().cloned().collect(),
            Test::Semi(j) => {
                let mut cols: HashSet<Column> = j.on.iter().flat_map(|(l, _)| l.column_refs()).cloned().collect();
                if let Some(f) = &j.filter {
                    cols.extend(f.column_refs().into_iter().filter(|c| j.left.schema().has_column(c)).cloned());
                }
                cols
            }
        }
    }

    fn apply(&self, input: LogicalPlan) -> Result<LogicalPlan> {
        Ok(match self {
            Test::Filter(e) => LogicalPlan::Filter(Filter::try_new(e.clone(), Arc::new(input))?),
            Test::Semi(j) => LogicalPlan::Join(Join::try_new(
                Arc::new(input),
                Arc::clone(&j.right),
                j.on.clone(),
                j.filter.clone(),
                j.join_type,
                j.join_constraint,
                j.null_equality,
                j.null_aware,
            )?),
        })
    }
}

/// A join tree taken apart.
#[derive(Debug, Default)]
struct Tree {
    relations: Vec<LogicalPlan>,
    /// Equalities of two relations' columns.
    equalities: Vec<(Column, Column)>,
    tests: Vec<Test>,
}

impl Tree {
    /// Takes `plan` apart into this tree; false when it can't be reordered.
    fn take_apart(&mut self, plan: &LogicalPlan) -> bool {
        match plan {
            LogicalPlan::Join(j) if j.join_type == JoinType::Inner => {
                if j.on.is_empty() || j.null_equality != NullEquality::NullEqualsNothing {
                    return false;
                }
                for (l, r) in &j.on {
                    let (Expr::Column(a), Expr::Column(b)) = (l, r) else { return false };
                    self.equalities.push((a.clone(), b.clone()));
                }
                if let Some(f) = &j.filter {
                    self.tests.push(Test::Filter(f.clone()));
                }
                self.take_apart(&j.left) && self.take_apart(&j.right)
            }
            LogicalPlan::Join(j)
                if matches!(j.join_type, JoinType::LeftSemi | JoinType::LeftAnti) && joins(&j.left) =>
            {
                self.tests.push(Test::Semi(j.clone()));
                self.take_apart(&j.left)
            }
            // Projections that only choose columns: the rebuilt tree chooses on top.
            LogicalPlan::Projection(p) if joins(&p.input) && p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
                self.take_apart(&p.input)
            }
            LogicalPlan::Filter(f) if joins(&f.input) => {
                self.tests.push(Test::Filter(f.predicate.clone()));
                self.take_apart(&f.input)
            }
            other => {
                self.relations.push(other.clone());
                true
            }
        }
    }

    /// The tree rebuilt by greedy operator ordering: of all pairs of parts joined by an
    /// equality, the pair whose join is guessed smallest is joined first, until one part is
    /// left (a bushy tree: TPC-H's Q9 joins its few parts to their lineitems while the nation
    /// joins its suppliers). `None` when some relation joins no other.
    fn rebuild(&self, original: &LogicalPlan) -> Result<Option<LogicalPlan>> {
        let owner = |c: &Column| self.relations.iter().position(|r| r.schema().has_column(c));
        // Each equality as (relation, column, relation, column).
        let mut edges = Vec::with_capacity(self.equalities.len());
        for (a, b) in &self.equalities {
            let (Some(i), Some(j)) = (owner(a), owner(b)) else { return Ok(None) };
            if i == j {
                return Ok(None);
            }
            edges.push((i, a, j, b));
        }
        let mut pending: Vec<&Test> = self.tests.iter().collect();
        let mut parts = Vec::with_capacity(self.relations.len());
        for (i, r) in self.relations.iter().enumerate() {
            let rows = cardinality::rows(r);
            let plan = apply_ready(r.clone(), rows, &mut pending, false)?;
            parts.push(Part { plan, members: vec![i], rows });
        }
        while parts.len() > 1 {
            let mut best: Option<(usize, usize, f64, f64)> = None;
            for a in 0..parts.len() {
                for b in a + 1..parts.len() {
                    let Some(ndv) = self.distinct_keys(&edges, &parts[a], &parts[b]) else { continue };
                    let joined = (parts[a].rows * parts[b].rows / ndv).max(1.0);
                    let cost = joined + 0.1 * work(parts[a].rows, parts[b].rows);
                    if best.is_none_or(|(_, _, _, c)| cost < c) {
                        best = Some((a, b, joined, cost));
                    }
                }
            }
            let Some((a, b, joined, _)) = best else { return Ok(None) };
            // The larger part probes, the smaller is built.
            let (b_part, a_part) = (parts.remove(b), parts.remove(a));
            let (left, right) = if a_part.rows >= b_part.rows { (a_part, b_part) } else { (b_part, a_part) };
            let mut on = Vec::new();
            for (i, ca, j, cb) in &edges {
                if left.members.contains(i) && right.members.contains(j) {
                    on.push((Expr::Column((*ca).clone()), Expr::Column((*cb).clone())));
                } else if left.members.contains(j) && right.members.contains(i) {
                    on.push((Expr::Column((*cb).clone()), Expr::Column((*ca).clone())));
                }
            }
            let plan = LogicalPlan::Join(Join::try_new(
                Arc::new(left.plan),
                Arc::new(right.plan),
                on,
                None,
                JoinType::Inner,
                JoinConstraint::On,
                NullEquality::NullEqualsNothing,
                false,
            )?);
            let last = parts.is_empty();
            let plan = apply_ready(plan, joined, &mut pending, last)?;
            let members = left.members.into_iter().chain(right.members).collect();
            parts.push(Part { plan, members, rows: joined });
        }
        let Some(whole) = parts.pop() else { return Ok(None) };
        if !pending.is_empty() {
            return datafusion_common::plan_err!("join_order: a test's columns are not in the joined relations");
        }
        let columns: Vec<Expr> = original.schema().columns().into_iter().map(Expr::Column).collect();
        Ok(Some(LogicalPlan::Projection(Projection::try_new(columns, Arc::new(whole.plan))?)))
    }

    /// The distinct keys of the most selective equality between two parts, or `None` when no
    /// equality joins them.
    fn distinct_keys(&self, edges: &[(usize, &Column, usize, &Column)], a: &Part, b: &Part) -> Option<f64> {
        let mut ndv: Option<f64> = None;
        for (i, ci, j, cj) in edges {
            let (da, db) = (cardinality::domain(&self.relations[*i], ci), cardinality::domain(&self.relations[*j], cj));
            let d = if a.members.contains(i) && b.members.contains(j) {
                cardinality::keys(da, a.rows, db, b.rows)
            } else if a.members.contains(j) && b.members.contains(i) {
                cardinality::keys(db, a.rows, da, b.rows)
            } else {
                continue;
            };
            ndv = Some(ndv.map_or(d, |x| x.max(d)));
        }
        ndv
    }
}

/// Rows of a hash table that stays in a core's cache (some 16 bytes an entry: 1 MiB, an L2).
const CACHED_ROWS: f64 = 65_536.0;

/// The work of a hash join of parts of `a` and `b` rows, in rows read: the smaller is built, the
/// larger probes it, and a probe costs more the further the table outgrows the cache (a random
/// access to memory instead of to cache: one more unit for each doubling). A join's cost is the
/// rows it makes plus a tenth of its work, so that of two joins making about as many rows, the
/// one whose millions of probes hit a table of thousands goes first: TPC-H's Q5 sends its
/// lineitems through its 20,000 Asian suppliers, then the fifth left through a year's orders,
/// rather than all 60 million through the 2.3 million orders.
fn work(a: f64, b: f64) -> f64 {
    let (build, probe) = if a <= b { (a, b) } else { (b, a) };
    let per_probe = 1.0 + (build / CACHED_ROWS).max(1.0).log2();
    build + probe * per_probe
}

/// Some of the relations joined: the plan, which relations, and its guessed rows.
struct Part {
    plan: LogicalPlan,
    members: Vec<usize>,
    rows: f64,
}

/// `plan` (of about `rows` rows) with every pending test it can take applied, in the tests'
/// order: a filter as soon as its columns are there; a semi or anti join once its right side is
/// guessed at most half as large as `plan` (its probes then cost less than building it did),
/// or at the `last` join. Q18's aggregate of a few keys filters the orders alone; Q21's semi and anti
/// joins over every lineitem wait for the nation's few suppliers' lineitems.
fn apply_ready(mut plan: LogicalPlan, rows: f64, pending: &mut Vec<&Test>, last: bool) -> Result<LogicalPlan> {
    let mut i = 0;
    while i < pending.len() {
        let schema = Arc::clone(plan.schema());
        let cheap = match pending[i] {
            Test::Filter(_) => true,
            Test::Semi(j) => last || 2.0 * cardinality::rows(&j.right) <= rows,
        };
        if cheap && pending[i].reads().iter().all(|c| schema.has_column(c)) {
            plan = pending.remove(i).apply(plan)?;
        } else {
            i += 1;
        }
    }
    Ok(plan)
}

/// Whether `plan` is (under projections, filters, semi and anti joins) an inner join: part of
/// the same tree rather than a relation of its own.
fn joins(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Join(j) if j.join_type == JoinType::Inner => true,
        LogicalPlan::Join(j) if matches!(j.join_type, JoinType::LeftSemi | JoinType::LeftAnti) => joins(&j.left),
        LogicalPlan::Projection(p) => joins(&p.input),
        LogicalPlan::Filter(f) => joins(&f.input),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::{TableStats, Tables};
    use arrow_schema::{DataType, Field};

    /// TPC-H's shapes at scale factor 1: rows and key ranges as the footers give them.
    fn tables() -> Tables {
        let int = |n: &str| Field::new(n, DataType::Int64, false);
        let text = |n: &str| Field::new(n, DataType::Utf8, false);
        let stats = |rows, ranges: &[(&str, i64, i64)]| TableStats {
            rows,
            ranges: ranges.iter().map(|(c, lo, hi)| (c.to_string(), (*lo, *hi))).collect(),
        };
        Tables::new()
            .with_table("nation", [int("n_nationkey"), text("n_name")])
            .with_stats("nation", stats(25, &[("n_nationkey", 0, 24)]))
            .with_table("supplier", [int("s_suppkey"), int("s_nationkey"), text("s_name")])
            .with_stats("supplier", stats(10_000, &[("s_suppkey", 1, 10_000), ("s_nationkey", 0, 24)]))
            .with_table("customer", [int("c_custkey"), int("c_nationkey")])
            .with_stats("customer", stats(150_000, &[("c_custkey", 1, 150_000), ("c_nationkey", 0, 24)]))
            .with_table("orders", [int("o_orderkey"), int("o_custkey"), text("o_status")])
            .with_stats("orders", stats(1_500_000, &[("o_orderkey", 1, 6_000_000), ("o_custkey", 1, 149_999)]))
            .with_table("lineitem", [int("l_orderkey"), int("l_suppkey"), int("l_quantity")])
            .with_stats("lineitem", stats(6_000_000, &[("l_orderkey", 1, 6_000_000), ("l_suppkey", 1, 10_000)]))
    }

    fn plan(sql: &str) -> String {
        crate::plan(sql, &tables()).map(|p| p.display_indent().to_string()).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The tables in the order the plan's scans list them.
    fn scans(plan: &str) -> Vec<String> {
        plan.lines()
            .filter_map(|l| l.trim().strip_prefix("TableScan: "))
            .map(|s| s.split_whitespace().next().unwrap_or_default().to_string())
            .collect()
    }

    /// The join lines of a plan, with their depth (deeper joins run first).
    fn joins(plan: &str) -> Vec<(usize, String)> {
        plan.lines()
            .filter(|l| l.contains("Join:"))
            .map(|l| (l.len() - l.trim_start().len(), l.trim().to_string()))
            .collect()
    }

    #[test]
    fn a_filtered_small_table_written_last_is_joined_first() {
        // Q21's shape. Before: FROM's order, the one nation joined last, after every lineitem.
        let p = plan(
            "SELECT s_name FROM supplier, lineitem, orders, nation \
             WHERE s_suppkey = l_suppkey AND o_orderkey = l_orderkey AND o_status = 'F' \
             AND s_nationkey = n_nationkey AND n_name = 'SAUDI ARABIA'",
        );
        let js = joins(&p);
        assert!(js.iter().any(|(_, j)| j == "Inner Join: supplier.s_nationkey = nation.n_nationkey"), "{p}");
        assert!(!js[0].1.contains("nation"), "the nation is not the last join:\n{p}");
        // The columns are the query's, in its order.
        assert!(p.starts_with("Projection: supplier.s_name\n"), "{p}");
    }

    #[test]
    fn a_semi_join_applies_as_soon_as_its_keys_are_joined() {
        // Q18's shape: before, the semi join on the orders' key sat above the lineitems' join.
        let p = plan(
            "SELECT c_custkey, o_orderkey, sum(l_quantity) FROM customer, orders, lineitem \
             WHERE o_orderkey IN (SELECT l_orderkey FROM lineitem GROUP BY l_orderkey HAVING sum(l_quantity) > 300) \
             AND c_custkey = o_custkey AND o_orderkey = l_orderkey GROUP BY c_custkey, o_orderkey",
        );
        let js = joins(&p);
        let depth = |needle: &str| js.iter().find(|(_, j)| j.contains(needle)).map(|(d, _)| *d);
        let (semi, outer) = (depth("LeftSemi Join"), depth("lineitem.l_orderkey = orders.o_orderkey"));
        assert!(
            semi.is_some() && outer.is_some() && semi > outer,
            "the semi join runs before the lineitems' join:\n{p}"
        );
    }

    #[test]
    fn joins_on_a_small_key_domain_are_not_taken_early() {
        // Q5's trap: customer and supplier share only a nation (25 values); joining them on it
        // alone would make 60 million rows. They meet only where the lineitems' orders join too.
        let p = plan(
            "SELECT count(*) FROM customer, orders, lineitem, supplier, nation \
             WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey \
             AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_name = 'ASIA'",
        );
        let js = joins(&p);
        let meeting: Vec<&String> = js.iter().map(|(_, j)| j).filter(|j| j.contains("c_nationkey")).collect();
        assert_eq!(meeting.len(), 1, "{p}");
        assert!(meeting[0].contains(", "), "the nation key is not joined alone:\n{p}");
    }

    #[test]
    fn a_probe_costs_one_more_unit_per_doubling_of_a_table_past_the_cache() {
        use super::work;
        // Built within the cache: every row counts once.
        assert_eq!(work(1_000.0, 6_000_000.0), 6_001_000.0);
        assert_eq!(work(6_000_000.0, 65_536.0), 6_065_536.0);
        // Twice and eight times the cache: each probe counts 2 and 4.
        assert_eq!(work(131_072.0, 1_000_000.0), 131_072.0 + 2_000_000.0);
        assert_eq!(work(10_000_000.0, 524_288.0), 524_288.0 + 40_000_000.0);
    }

    #[test]
    fn the_largest_table_probes_a_small_table_before_a_large_one() {
        // Q5's shape with a filter on the orders. Before: the lineitems' join to the filtered
        // orders was guessed to make fewer rows (540,000 against 600,000), so all 6 million
        // lineitems probed a table of 135,000 orders' customers, and those left a table of
        // 1,000 suppliers. After: the 6 million probe the 1,000 suppliers, and the 600,000 left
        // probe the orders.
        let p = plan(
            "SELECT count(*) FROM customer, orders, lineitem, supplier, nation \
             WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey \
             AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_name = 'ASIA' AND o_status = 'F' AND o_custkey <> 0",
        );
        let js = joins(&p);
        let depth = |needle: &str| js.iter().find(|(_, j)| j.contains(needle)).map(|(d, _)| *d);
        let (suppliers, orders) =
            (depth("lineitem.l_suppkey = supplier.s_suppkey"), depth("lineitem.l_orderkey = orders.o_orderkey"));
        assert!(
            suppliers.is_some() && orders.is_some() && suppliers > orders,
            "the lineitems meet the suppliers first:\n{p}"
        );
    }

    #[test]
    fn a_join_tree_inside_a_scalar_subquery_is_reordered_too() {
        // Q11's shape: the subquery's filtered nation was joined after every supplier's
        // lineitem. After: the nation meets the suppliers first, in the subquery as outside it.
        let p = plan(
            "SELECT l_orderkey FROM lineitem WHERE l_quantity > (SELECT sum(l_quantity) FROM lineitem, supplier, nation              WHERE l_suppkey = s_suppkey AND s_nationkey = n_nationkey AND n_name = 'GERMANY')",
        );
        let (subquery, _) = p.split_once("TableScan: lineitem projection=[l_orderkey, l_quantity]").unwrap_or((&p, ""));
        let js = joins(subquery);
        let nation = js.iter().find(|(_, j)| j.contains("n_nationkey")).map(|(d, _)| *d);
        let lineitem = js.iter().find(|(_, j)| j.contains("l_suppkey")).map(|(d, _)| *d);
        assert!(nation.is_some() && lineitem.is_some() && nation > lineitem, "the nation is joined first:\n{p}");
    }

    #[test]
    fn two_relations_and_outer_joins_are_left_in_their_order() {
        let p = plan("SELECT * FROM lineitem JOIN nation ON l_suppkey = n_nationkey");
        assert_eq!(scans(&p), ["lineitem", "nation"], "{p}");
        let p = plan(
            "SELECT * FROM lineitem LEFT JOIN orders ON l_orderkey = o_orderkey \
             JOIN supplier ON l_suppkey = s_suppkey JOIN nation ON s_nationkey = n_nationkey",
        );
        // The left join is one relation of the tree: its sides stay together, in order.
        let order = scans(&p);
        let (l, o) = (order.iter().position(|t| t == "lineitem"), order.iter().position(|t| t == "orders"));
        assert_eq!(o, l.map(|i| i + 1), "{p}");
    }
}
