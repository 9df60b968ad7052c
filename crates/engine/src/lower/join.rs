//! Joins: every SQL join type, with SQL's NULL keys (never equal), an `ON` condition beyond the
//! equal keys applied where SQL applies it (inside the join, so an outer join keeps the rows it
//! fails), semi and anti joins from `EXISTS`/`IN`, `NOT IN`'s null-aware anti join, and mark
//! joins (`EXISTS` under `OR`, `NOT` or `CASE`).

use polars::prelude::*;
use runner_sql::datafusion_common::NullEquality;
use runner_sql::datafusion_expr::{Join, JoinType as SqlJoin};

use super::expr::Scope;
use super::{Lowered, Lowering, Result, unsupported};

impl Lowering<'_> {
    pub(crate) fn join(&mut self, j: &Join) -> Result<Lowered> {
        let left = self.plan(&j.left)?;
        let right = self.plan(&j.right)?;
        let ls = Scope::new(j.left.schema(), &left.names);
        let rs = Scope::new(j.right.schema(), &right.names);
        // Keys become columns of their own, so the join sees plain columns and drops nothing.
        let mut lk = Vec::with_capacity(j.on.len());
        let mut rk = Vec::with_capacity(j.on.len());
        let mut lcols = Vec::new();
        let mut rcols = Vec::new();
        for (l, r) in &j.on {
            let (ln, rn) = (self.namer.fresh(), self.namer.fresh());
            lcols.push(self.expr(l, &ls)?.alias(ln.clone()));
            rcols.push(self.expr(r, &rs)?.alias(rn.clone()));
            lk.push(col(ln));
            rk.push(col(rn));
        }
        let lf = left.frame.clone().with_columns(lcols);
        let rf = right.frame.clone().with_columns(rcols);
        let nulls_equal = matches!(j.null_equality, NullEquality::NullEqualsNull);
        let args = |how: JoinType| {
            let mut a = JoinArgs::new(how).with_coalesce(JoinCoalesce::KeepColumns);
            a.nulls_equal = nulls_equal;
            a
        };
        let both: Vec<PlSmallStr> = left.names.iter().chain(&right.names).cloned().collect();
        // A side of no columns (`count(*)` over a join) keeps its rows: never select nothing.
        let keep = |names: &[PlSmallStr]| match names {
            [] => vec![col("*")],
            names => names.iter().map(|n| col(n.clone())).collect::<Vec<_>>(),
        };
        // The joined rows that meet the ON condition (inner), before any outer rows are added.
        let filter = match &j.filter {
            Some(f) => {
                let schema = j
                    .left
                    .schema()
                    .as_ref()
                    .clone()
                    .join(j.right.schema())
                    .map_err(|e| super::LowerError(format!("a join's columns could not be combined: {e}")))?;
                let scope = Scope::new(&schema, &both);
                Some(self.expr(f, &scope)?)
            }
            None => None,
        };
        let cross_key = (self.namer.fresh(), self.namer.fresh());
        let mark = self.namer.fresh();
        let inner = |lf: LazyFrame, rf: LazyFrame| {
            let joined = if lk.is_empty() {
                cross_join(lf, rf, &cross_key)
            } else {
                lf.join(rf, lk.clone(), rk.clone(), args(JoinType::Inner))
            };
            match &filter {
                Some(f) => joined.filter(f.clone()),
                None => joined,
            }
        };
        // A left row of a join of no columns keeps nothing to select: `keep` needs one.
        if let Some(c) = super::one_sided::comparison(j)
            && !left.names.is_empty()
        {
            let a = args(JoinType::Left);
            let frame = self.one_sided(j, &c, (&left, lf, &lk), (&right, rf, &rk), a, &mark)?;
            let names = match j.join_type {
                SqlJoin::LeftMark => left.names.into_iter().chain([mark]).collect(),
                _ => left.names,
            };
            return Ok(Lowered { frame, names });
        }
        let frame = match j.join_type {
            SqlJoin::Inner => inner(lf, rf).select(keep(&both)),
            SqlJoin::Left | SqlJoin::Right | SqlJoin::Full if filter.is_none() && !lk.is_empty() => {
                let how = match j.join_type {
                    SqlJoin::Left => JoinType::Left,
                    SqlJoin::Right => JoinType::Right,
                    _ => JoinType::Full,
                };
                lf.join(rf, lk.clone(), rk.clone(), args(how)).select(keep(&both))
            }
            SqlJoin::Left | SqlJoin::Right | SqlJoin::Full => {
                // Outer rows are those with no joined row meeting the condition: number both
                // sides, join and filter, then add each side's unmatched rows with NULLs.
                let (li, ri) = (self.namer.fresh(), self.namer.fresh());
                let (lf, rf) = numbered(lf, &li, rf, &ri);
                let matched = inner(lf.clone(), rf.clone());
                let mut parts = vec![matched.clone().select(keep(&both))];
                if matches!(j.join_type, SqlJoin::Left | SqlJoin::Full) {
                    let ids = matched.clone().select([col(li.clone())]);
                    let unmatched = lf.join(ids, [col(li.clone())], [col(li.clone())], JoinArgs::new(JoinType::Anti));
                    parts.push(unmatched.select(keep(&left.names)));
                }
                if matches!(j.join_type, SqlJoin::Right | SqlJoin::Full) {
                    let ids = matched.select([col(ri.clone())]);
                    let unmatched = rf.join(ids, [col(ri.clone())], [col(ri.clone())], JoinArgs::new(JoinType::Anti));
                    parts.push(unmatched.select(keep(&right.names)));
                }
                let union = UnionArgs { diagonal: true, ..Default::default() };
                concat(parts, union)
                    .map_err(|e| super::LowerError(format!("an outer join could not be planned: {e}")))?
                    .select(keep(&both))
            }
            SqlJoin::LeftSemi | SqlJoin::LeftAnti if j.null_aware => {
                if filter.is_some() || lk.len() != 1 {
                    return unsupported("NOT IN over a subquery of several columns or with a condition");
                }
                // `x NOT IN (subquery)`: no row if the subquery has a NULL; a NULL x only when the
                // subquery is empty.
                let anti = lf.join(rf.clone(), lk.clone(), rk.clone(), args(JoinType::Anti));
                let (has_null, n) = (self.namer.fresh(), self.namer.fresh());
                let facts =
                    rf.select([rk[0].clone().is_null().any(true).alias(has_null.clone()), len().alias(n.clone())]);
                cross_join(anti, facts, &cross_key)
                    .filter(col(n).eq(lit(0)).or(col(has_null).not().and(lk[0].clone().is_not_null())))
                    .select(keep(&left.names))
            }
            SqlJoin::LeftSemi | SqlJoin::LeftAnti | SqlJoin::RightSemi | SqlJoin::RightAnti => {
                let semi = matches!(j.join_type, SqlJoin::LeftSemi | SqlJoin::RightSemi);
                let on_left = matches!(j.join_type, SqlJoin::LeftSemi | SqlJoin::LeftAnti);
                let how = if semi { JoinType::Semi } else { JoinType::Anti };
                if filter.is_none() && !lk.is_empty() {
                    if on_left {
                        lf.join(rf, lk.clone(), rk.clone(), args(how)).select(keep(&left.names))
                    } else {
                        rf.join(lf, rk.clone(), lk.clone(), args(how)).select(keep(&right.names))
                    }
                } else {
                    let (li, ri) = (self.namer.fresh(), self.namer.fresh());
                    let (lf, rf) = numbered(lf, &li, rf, &ri);
                    let matched = inner(lf.clone(), rf.clone());
                    let (side, id, names) = if on_left { (lf, li, &left.names) } else { (rf, ri, &right.names) };
                    let ids = matched.select([col(id.clone())]);
                    side.join(ids, [col(id.clone())], [col(id)], JoinArgs::new(how)).select(keep(names))
                }
            }
            // `EXISTS` under OR, NOT or CASE: each left row, and whether a right row meets the
            // condition with it (true or false: `IN`'s NULLs are the planner's business).
            SqlJoin::LeftMark => {
                let matched = if filter.is_none() && !lk.is_empty() {
                    // The distinct right keys; a NULL key matches nothing.
                    let keys = rf.select(rk.clone()).unique(None, UniqueKeepStrategy::Any);
                    let keys = keys.with_column(lit(true).alias(mark.clone()));
                    lf.join(keys, lk.clone(), rk.clone(), args(JoinType::Left))
                } else {
                    let (li, ri) = (self.namer.fresh(), self.namer.fresh());
                    let (lf, rf) = numbered(lf, &li, rf, &ri);
                    let ids = inner(lf.clone(), rf)
                        .select([col(li.clone())])
                        .unique(None, UniqueKeepStrategy::Any)
                        .with_column(lit(true).alias(mark.clone()));
                    lf.join(ids, [col(li.clone())], [col(li)], JoinArgs::new(JoinType::Left))
                };
                let mut out = keep(&left.names);
                out.push(col(mark.clone()).fill_null(lit(false)).alias(mark.clone()));
                matched.select(out)
            }
            SqlJoin::RightMark => return unsupported("a right mark join"),
        };
        let names = match j.join_type {
            SqlJoin::LeftSemi | SqlJoin::LeftAnti => left.names,
            SqlJoin::RightSemi | SqlJoin::RightAnti => right.names,
            SqlJoin::LeftMark => left.names.into_iter().chain([mark]).collect(),
            _ => both,
        };
        Ok(Lowered { frame, names })
    }
}

/// Both sides numbered by row, each computed once (cached): a side read twice (for the matched
/// rows and for the rest) must number its rows the same both times, and a join's output order
/// is not fixed from one run of it to the next.
fn numbered(lf: LazyFrame, li: &PlSmallStr, rf: LazyFrame, ri: &PlSmallStr) -> (LazyFrame, LazyFrame) {
    (lf.with_row_index(li.clone(), None).cache(), rf.with_row_index(ri.clone(), None).cache())
}

/// Every row of `l` with every row of `r`, as an equi-join on a constant (`keys`, one fresh
/// name a side): Polars 0.55.2 turns a cross join under an inequality filter into a range join
/// its streaming engine can't run (a panic), and an equi-join is never turned into one.
pub(crate) fn cross_join(l: LazyFrame, r: LazyFrame, keys: &(PlSmallStr, PlSmallStr)) -> LazyFrame {
    let (lk, rk) = keys.clone();
    l.with_column(lit(true).alias(lk.clone())).join(
        r.with_column(lit(true).alias(rk.clone())),
        [col(lk)],
        [col(rk)],
        JoinArgs::new(JoinType::Inner).with_coalesce(JoinCoalesce::KeepColumns),
    )
}
