//! A semi, anti or mark join whose condition beyond its equal keys is one comparison of a left
//! value with a right one (`l.a <> r.b`, `l.a < r.b`, …): whether some right row of the same keys
//! meets it is told by the smallest and largest right value of those keys, so the join becomes a
//! grouping of the right side and a join of one row per key. TPC-H's Q21 (`EXISTS (… l2.l_suppkey
//! <> l1.l_suppkey)`) is such a join; the general way (every pair of the same key, then the
//! condition) joins each order's lines with each other.
//!
//! NULLs as SQL has them: a NULL on either side of the comparison is not a match; `min` and `max`
//! skip NULLs, and a key with no right value has neither, so its rows match nothing.

use polars::prelude::*;
use runner_sql::datafusion_expr::{Expr as Sql, Join, JoinType as SqlJoin, Operator};

use super::expr::Scope;
use super::{Lowered, Lowering, Result};

/// The comparison of a one-sided join: the left value, the operator as seen from the left
/// (`left op right`), and the right value.
pub(crate) struct Comparison<'a> {
    left: &'a Sql,
    op: Operator,
    right: &'a Sql,
}

/// The comparison, when `j` is a semi, anti or mark join whose condition is one comparison
/// between a value of its left side and one of its right side.
pub(crate) fn comparison(j: &Join) -> Option<Comparison<'_>> {
    if !matches!(j.join_type, SqlJoin::LeftSemi | SqlJoin::LeftAnti | SqlJoin::LeftMark) || j.null_aware {
        return None;
    }
    let Some(Sql::BinaryExpr(b)) = &j.filter else {
        return None;
    };
    let flipped = match b.op {
        Operator::NotEq => Operator::NotEq,
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        _ => return None,
    };
    let on = |e: &Sql, side: &runner_sql::datafusion_common::DFSchema| {
        let columns = e.column_refs();
        !columns.is_empty() && columns.iter().all(|c| side.has_column(c))
    };
    let (l, r) = (j.left.schema(), j.right.schema());
    if on(&b.left, l) && on(&b.right, r) {
        Some(Comparison { left: &b.left, op: b.op, right: &b.right })
    } else if on(&b.right, l) && on(&b.left, r) {
        Some(Comparison { left: &b.right, op: flipped, right: &b.left })
    } else {
        None
    }
}

impl Lowering<'_> {
    /// The join `j` (whose `comparison` is `c`) over the lowered sides, by the right side's
    /// smallest and largest value per key. `lk` and `rk` are the key columns (already added to
    /// the sides' frames), `mark` the mark column's name (a mark join's).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn one_sided(
        &mut self,
        j: &Join,
        c: &Comparison<'_>,
        (left, lf, lk): (&Lowered, LazyFrame, &[Expr]),
        (right, rf, rk): (&Lowered, LazyFrame, &[Expr]),
        args: JoinArgs,
        mark: &PlSmallStr,
    ) -> Result<LazyFrame> {
        let a = self.expr(c.left, &Scope::new(j.left.schema(), &left.names))?;
        let b = self.expr(c.right, &Scope::new(j.right.schema(), &right.names))?;
        let (lo, hi) = (self.namer.fresh(), self.namer.fresh());
        let extremes = [b.clone().min().alias(lo.clone()), b.max().alias(hi.clone())];
        let joined = if lk.is_empty() {
            // No keys: every left row meets the whole right side.
            let keys = (self.namer.fresh(), self.namer.fresh());
            super::join::cross_join(lf, rf.select(extremes), &keys)
        } else {
            lf.join(rf.group_by(rk).agg(extremes), lk.to_vec(), rk.to_vec(), args)
        };
        let (lo, hi) = (col(lo), col(hi));
        // Some right value b with `a op b`: for `<>` one of the extremes differs from a.
        let met = match c.op {
            Operator::NotEq => lo.neq(a.clone()).or(hi.neq(a)),
            Operator::Lt => a.lt(hi),
            Operator::LtEq => a.lt_eq(hi),
            Operator::Gt => a.gt(lo),
            Operator::GtEq => a.gt_eq(lo),
            _ => unreachable!("comparison() takes only these"),
        }
        .fill_null(lit(false));
        let kept: Vec<Expr> = left.names.iter().map(|n| col(n.clone())).collect();
        Ok(match j.join_type {
            SqlJoin::LeftSemi => joined.filter(met).select(kept),
            SqlJoin::LeftAnti => joined.filter(met.not()).select(kept),
            _ => joined.select(kept.into_iter().chain([met.alias(mark.clone())]).collect::<Vec<_>>()),
        })
    }
}
