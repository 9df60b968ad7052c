//! Guesses of how many rows a plan gives and how many distinct values a column holds: what the
//! join order rule compares. Never used for an answer. Rows come from the tables' statistics
//! (Parquet footers), filters take textbook selectivities (an equality a tenth, a range a
//! third), and a column's distinct values are bounded by its table's rows and, for an integer
//! column, by its range. A table without statistics counts as a million rows.

use datafusion_common::Column;
use datafusion_expr::{BinaryExpr, Expr, JoinType, LogicalPlan, Operator};

use super::context::{Input, TableStats};

/// Rows assumed for a table the planner knows nothing of.
const UNKNOWN_ROWS: f64 = 1e6;

/// The rows `plan` is guessed to give (at least 1).
pub(crate) fn rows(plan: &LogicalPlan) -> f64 {
    let r = match plan {
        LogicalPlan::TableScan(scan) => {
            let all = stats(scan).map_or(UNKNOWN_ROWS, |s| s.rows as f64);
            scan.fetch.map_or(all, |n| all.min(n as f64))
        }
        LogicalPlan::Filter(f) => rows(&f.input) * selectivity(&f.predicate),
        LogicalPlan::Limit(l) => match l.get_fetch_type() {
            Ok(datafusion_expr::logical_plan::FetchType::Literal(Some(n))) => rows(&l.input).min(n as f64),
            _ => rows(&l.input),
        },
        LogicalPlan::Aggregate(a) if a.group_expr.is_empty() => 1.0,
        LogicalPlan::Aggregate(a) => rows(&a.input) * 0.1,
        LogicalPlan::Distinct(_) => plan.inputs().first().map_or(1.0, |i| rows(i) * 0.5),
        LogicalPlan::Join(j) => match j.join_type {
            JoinType::Inner => {
                let (l, r) = (rows(&j.left), rows(&j.right));
                let ndv = j
                    .on
                    .iter()
                    .filter_map(|(a, b)| match (a, b) {
                        (Expr::Column(a), Expr::Column(b)) => Some(keys(domain(&j.left, a), l, domain(&j.right, b), r)),
                        _ => None,
                    })
                    .fold(1.0, f64::max);
                l * r / ndv
            }
            JoinType::LeftSemi | JoinType::LeftAnti => rows(&j.left) * 0.5,
            JoinType::RightSemi | JoinType::RightAnti => rows(&j.right) * 0.5,
            JoinType::Right => rows(&j.right),
            JoinType::Full => rows(&j.left) + rows(&j.right),
            _ => rows(&j.left),
        },
        LogicalPlan::Union(u) => u.inputs.iter().map(|i| rows(i)).sum(),
        other => other.inputs().iter().map(|i| rows(i)).fold(1.0, f64::max),
    };
    r.max(1.0)
}

/// The distinct values column `c` can hold wherever it is read: the rows of the table it comes
/// from, bounded by its range when it is an integer column with one (a filter doesn't narrow
/// it); the rows of `plan` when it comes from no table.
pub(crate) fn domain(plan: &LogicalPlan, c: &Column) -> f64 {
    match origin(plan, c) {
        Some((stats, name)) => {
            let span = stats.ranges.get(&name).map_or(f64::INFINITY, |(lo, hi)| (*hi as f64 - *lo as f64) + 1.0);
            (stats.rows as f64).min(span).max(1.0)
        }
        None => rows(plan),
    }
}

/// The distinct keys a join on `a = b` divides by, of sides of `l` and `r` rows whose key
/// columns have domains `da` and `db`. The keys of one side are taken to be among the other's
/// (a foreign key among a primary key's), so both draw from the smaller domain; each side has
/// no more distinct keys than rows; the side with more keys divides (System R's estimate).
pub(crate) fn keys(da: f64, l: f64, db: f64, r: f64) -> f64 {
    let shared = da.min(db);
    shared.min(l).max(shared.min(r)).max(1.0)
}

/// The statistics of the table column `c` of `plan` is read from, and its name there, when it
/// is a table's column passed up unchanged (through filters, renames and projections).
fn origin<'a>(plan: &'a LogicalPlan, c: &Column) -> Option<(&'a TableStats, String)> {
    let i = plan.schema().index_of_column(c).ok()?;
    origin_at(plan, i)
}

fn origin_at(plan: &LogicalPlan, i: usize) -> Option<(&TableStats, String)> {
    match plan {
        LogicalPlan::TableScan(scan) => Some((stats(scan)?, scan.projected_schema.field(i).name().clone())),
        LogicalPlan::Filter(f) => origin_at(&f.input, i),
        LogicalPlan::Sort(s) => origin_at(&s.input, i),
        LogicalPlan::Limit(l) => origin_at(&l.input, i),
        LogicalPlan::SubqueryAlias(a) => origin_at(&a.input, i),
        LogicalPlan::Projection(p) => match p.expr.get(i)?.clone().unalias() {
            Expr::Column(c) => origin(&p.input, &c),
            _ => None,
        },
        _ => None,
    }
}

fn stats(scan: &datafusion_expr::TableScan) -> Option<&TableStats> {
    scan.source.as_ref().downcast_ref::<Input>()?.stats()
}

/// The share of rows `predicate` is guessed to keep.
pub(crate) fn selectivity(predicate: &Expr) -> f64 {
    match predicate {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => selectivity(left) * selectivity(right),
            Operator::Or => {
                let (a, b) = (selectivity(left), selectivity(right));
                a + b - a * b
            }
            Operator::Eq | Operator::IsNotDistinctFrom => 0.1,
            Operator::NotEq | Operator::IsDistinctFrom => 0.9,
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => 1.0 / 3.0,
            _ => 0.5,
        },
        Expr::Between(b) if !b.negated => 0.25,
        Expr::Like(l) | Expr::SimilarTo(l) => {
            if l.negated {
                0.9
            } else {
                0.25
            }
        }
        Expr::InList(l) if !l.negated => (0.1 * l.list.len() as f64).min(0.5),
        Expr::Not(e) => 1.0 - selectivity(e),
        Expr::IsNull(_) => 0.1,
        Expr::IsNotNull(_) => 0.9,
        Expr::Alias(a) => selectivity(&a.expr),
        _ => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TableStats, Tables};
    use arrow_schema::{DataType, Field};

    fn tables() -> Tables {
        let stats = |rows, ranges: &[(&str, i64, i64)]| TableStats {
            rows,
            ranges: ranges.iter().map(|(c, lo, hi)| (c.to_string(), (*lo, *hi))).collect(),
        };
        Tables::new()
            .with_table(
                "nation",
                [Field::new("n_nationkey", DataType::Int32, false), Field::new("n_name", DataType::Utf8, false)],
            )
            .with_stats("nation", stats(25, &[("n_nationkey", 0, 24)]))
            .with_table(
                "supplier",
                [Field::new("s_suppkey", DataType::Int64, false), Field::new("s_nationkey", DataType::Int32, false)],
            )
            .with_stats("supplier", stats(10_000, &[("s_suppkey", 1, 10_000), ("s_nationkey", 0, 24)]))
    }

    fn plan(sql: &str) -> LogicalPlan {
        crate::plan(sql, &tables()).expect("plans")
    }

    #[test]
    fn rows_come_from_the_statistics_and_filters_take_their_share() {
        assert_eq!(rows(&plan("SELECT * FROM supplier")), 10_000.0);
        // An equality keeps a tenth; a range a third.
        assert_eq!(rows(&plan("SELECT * FROM supplier WHERE s_nationkey = 3")), 1_000.0);
        assert!((rows(&plan("SELECT * FROM nation WHERE n_nationkey > 3")) - 25.0 / 3.0).abs() < 1e-9);
        // Never fewer than one row.
        assert_eq!(rows(&plan("SELECT * FROM nation WHERE n_name = 'a' AND n_nationkey = 1")), 1.0);
    }

    #[test]
    fn a_columns_domain_is_bounded_by_its_range_and_its_tables_rows() {
        let p = plan("SELECT s_suppkey, s_nationkey AS k FROM supplier");
        assert_eq!(domain(&p, &Column::from_name("s_suppkey")), 10_000.0);
        // Through a renaming projection: 25 values from 0 to 24, in 10,000 rows.
        assert_eq!(domain(&p, &Column::from_name("k")), 25.0);
        // A computed column is bounded by the rows alone.
        let c = plan("SELECT s_nationkey + 1 AS k FROM supplier");
        assert_eq!(domain(&c, &Column::from_name("k")), 10_000.0);
    }

    #[test]
    fn a_join_divides_by_the_side_with_more_keys() {
        // Every supplier has one nation: 10,000 × 25 / 25.
        let p = plan("SELECT * FROM supplier JOIN nation ON s_nationkey = n_nationkey");
        assert_eq!(rows(&p), 10_000.0);
        // A tenth of the nations (2.5 rows) keep a tenth of the suppliers: 10,000 × 2.5 / 25.
        let p = plan("SELECT * FROM supplier JOIN nation ON s_nationkey = n_nationkey WHERE n_name = 'x'");
        assert_eq!(rows(&p), 1_000.0);
        // Keys drawn from the smaller domain: 6 suppliers' keys (a range of 6) among 10,000.
        assert_eq!(keys(10_000.0, 10_000.0, 6.0, 6.0), 6.0);
    }
}
