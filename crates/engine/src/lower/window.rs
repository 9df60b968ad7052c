//! Window functions (`… OVER (PARTITION BY … ORDER BY … frame)`), with the frame as written:
//! the partition (no `ORDER BY`, or `UNBOUNDED PRECEDING … UNBOUNDED FOLLOWING`), SQL's default
//! `RANGE UNBOUNDED PRECEDING … CURRENT ROW` (peers of the current row share its value), `ROWS
//! UNBOUNDED PRECEDING … CURRENT ROW`, and `ROWS BETWEEN n PRECEDING/FOLLOWING …` for sums,
//! counts, averages, minimums and maximums. Ranking: `row_number`, `rank`, `dense_rank`, `percent_rank`,
//! `cume_dist`, `ntile`; offsets: `lag`, `lead`, `first_value`, `last_value`.
//!
//! Each window sorts the frame by its partition and order keys (each with its own direction and
//! NULL placement), so that Polars' per-partition cumulative functions run in the window's order.

use polars::prelude::*;
use runner_sql::arrow_schema::DataType as ArrowType;
use runner_sql::datafusion_common::ScalarValue;
use runner_sql::datafusion_expr::expr::{WindowFunction, WindowFunctionDefinition};
use runner_sql::datafusion_expr::{Expr as Sql, Window, WindowFrameBound, WindowFrameUnits};

use super::expr::Scope;
use super::{LowerError, Lowered, Lowering, Result, types, unsupported};

/// The frame, as far as the lowering tells frames apart.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Frame {
    /// Every row of the partition.
    Whole,
    /// From the partition's start to the current row and its peers.
    ToPeers,
    /// From the partition's start to the current row.
    ToRow,
    /// Rows `start ..= end` relative to the current row (`None`: unbounded).
    Rows(Option<i64>, Option<i64>),
}

impl Lowering<'_> {
    pub(crate) fn window(&mut self, w: &Window) -> Result<Lowered> {
        let input = self.plan(&w.input)?;
        let scope = Scope::new(w.input.schema(), &input.names);
        let mut frame = input.frame;
        let one = self.namer.fresh();
        frame = frame.with_column(lit(1i64).alias(one.clone()));
        let mut names = input.names.clone();
        let fields = w.schema.fields();
        for (i, e) in w.window_expr.iter().enumerate() {
            let f = unalias(e)?;
            let out = fields[input.names.len() + i].data_type();
            let name = self.namer.fresh();
            frame = self.one_window(frame, f, out, &scope, &one, &name)?;
            names.push(name);
        }
        let own: Vec<Expr> = names.iter().map(|n| col(n.clone())).collect();
        Ok(Lowered { frame: frame.select(own), names })
    }

    /// Adds column `name`: the window `f`.
    fn one_window(
        &mut self,
        frame: LazyFrame,
        f: &WindowFunction,
        out: &ArrowType,
        scope: &Scope<'_>,
        one: &PlSmallStr,
        name: &PlSmallStr,
    ) -> Result<LazyFrame> {
        let p = &f.params;
        if p.filter.is_some() || p.distinct || p.null_treatment.is_some() {
            return unsupported("FILTER, DISTINCT or IGNORE NULLS in a window function");
        }
        // Partition and order keys become columns, then the frame is sorted by them.
        let mut keyed = Vec::new();
        let mut part = Vec::new();
        for e in &p.partition_by {
            let n = self.namer.fresh();
            keyed.push(self.expr(e, scope)?.alias(n.clone()));
            part.push(col(n));
        }
        let mut order = Vec::new();
        for s in &p.order_by {
            let n = self.namer.fresh();
            keyed.push(self.expr(&s.expr, scope)?.alias(n.clone()));
            order.push(col(n));
        }
        let mut args = Vec::with_capacity(p.args.len());
        for a in &p.args {
            args.push(self.expr(a, scope)?);
        }
        let mut frame = frame.with_columns(keyed);
        let sort_keys: Vec<Expr> = part.iter().chain(&order).cloned().collect();
        if !sort_keys.is_empty() {
            let desc = p.partition_by.iter().map(|_| false).chain(p.order_by.iter().map(|s| !s.asc));
            let nulls_last = p.partition_by.iter().map(|_| true).chain(p.order_by.iter().map(|s| !s.nulls_first));
            let options = SortMultipleOptions::default()
                .with_order_descending_multi(desc)
                .with_nulls_last_multi(nulls_last)
                .with_maintain_order(true);
            frame = frame.sort_by_exprs(sort_keys.clone(), options);
        }
        let peers: Vec<Expr> = part.iter().chain(&order).cloned().collect();
        let kind = frame_of(f, !order.is_empty())?;
        let rn = over(col(one.clone()).cum_sum(false), &part)?;
        let rn = stage(&mut self.namer, &mut frame, rn);
        let size = over(col(one.clone()).sum(), &part)?;
        let size = stage(&mut self.namer, &mut frame, size);
        let fname = match &f.fun {
            WindowFunctionDefinition::AggregateUDF(a) => a.name().to_string(),
            WindowFunctionDefinition::WindowUDF(w) => w.name().to_string(),
        };
        let arg = |i: usize| args.get(i).cloned().ok_or_else(|| LowerError(format!("{fname} needs an argument")));
        let constant = |i: usize| -> Option<i64> {
            match p.args.get(i) {
                Some(Sql::Literal(v, _)) => match v.cast_to(&ArrowType::Int64) {
                    Ok(ScalarValue::Int64(n)) => n,
                    _ => None,
                },
                _ => None,
            }
        };
        let value = match (&f.fun, fname.as_str()) {
            (WindowFunctionDefinition::WindowUDF(_), "row_number") => rn,
            (WindowFunctionDefinition::WindowUDF(_), "rank") => over(rn.min(), &peers)?,
            (WindowFunctionDefinition::WindowUDF(_), "dense_rank") => {
                let rank = over(rn.clone().min(), &peers)?;
                let rank = stage(&mut self.namer, &mut frame, rank);
                over(rn.eq(rank).cast(DataType::Int64).cum_sum(false), &part)?
            }
            (WindowFunctionDefinition::WindowUDF(_), "percent_rank") => {
                let rank = over(rn.min(), &peers)?.cast(DataType::Float64);
                let n = size.cast(DataType::Float64);
                when(n.clone().lt_eq(lit(1.0))).then(lit(0.0)).otherwise((rank - lit(1.0)) / (n - lit(1.0)))
            }
            (WindowFunctionDefinition::WindowUDF(_), "cume_dist") => {
                over(rn.max(), &peers)?.cast(DataType::Float64) / size.cast(DataType::Float64)
            }
            (WindowFunctionDefinition::WindowUDF(_), "ntile") => {
                let Some(buckets) = constant(0).filter(|b| *b > 0) else {
                    return unsupported("ntile of a bucket count that is not a positive constant");
                };
                // Rows 0-based; the first `rem` buckets hold one row more.
                let r = rn - lit(1i64);
                let q = size.clone().floor_div(lit(buckets));
                let rem = size % lit(buckets);
                let big = rem.clone() * (q.clone() + lit(1i64));
                when(r.clone().lt(big.clone()))
                    .then(r.clone().floor_div(q.clone() + lit(1i64)))
                    .otherwise((r - big).floor_div(q) + rem)
                    + lit(1i64)
            }
            (WindowFunctionDefinition::WindowUDF(_), "lag" | "lead") => {
                let k = if p.args.len() > 1 {
                    constant(1).ok_or_else(|| LowerError(format!("{fname} with an offset that is not a constant")))?
                } else {
                    1
                };
                let k = if fname == "lead" { -k } else { k };
                let x = arg(0)?;
                let shifted = over(x.shift(lit(k)), &part)?;
                match args.get(2) {
                    Some(default) => {
                        let present = over(col(one.clone()).shift(lit(k)), &part)?.is_not_null();
                        when(present).then(shifted).otherwise(default.clone())
                    }
                    None => shifted,
                }
            }
            (WindowFunctionDefinition::WindowUDF(_), "first_value") => match kind {
                Frame::Whole | Frame::ToPeers | Frame::ToRow => over(arg(0)?.first(), &part)?,
                Frame::Rows(..) => return unsupported("first_value over a bounded ROWS frame"),
            },
            (WindowFunctionDefinition::WindowUDF(_), "last_value") => match kind {
                Frame::Whole => over(arg(0)?.last(), &part)?,
                Frame::ToPeers => over(arg(0)?.last(), &peers)?,
                Frame::ToRow => arg(0)?,
                Frame::Rows(..) => return unsupported("last_value over a bounded ROWS frame"),
            },
            (WindowFunctionDefinition::AggregateUDF(_), agg) => {
                let x = match p.args.first() {
                    // count(*) counts rows.
                    Some(Sql::Literal(v, _)) if agg == "count" && !v.is_null() => col(one.clone()),
                    _ => arg(0)?,
                };
                let x = stage(&mut self.namer, &mut frame, x);
                match (kind, agg) {
                    (Frame::Rows(Some(_), Some(_)), "min" | "max") if !(out.is_integer() || out.is_floating()) => {
                        return unsupported(format!(
                            "{agg} of a value of type {out} over a ROWS frame bounded on both sides"
                        ));
                    }
                    (Frame::Rows(start, end), "min" | "max") => {
                        let position = Position { part: &part, rn: &rn, size: &size };
                        self.rows_extreme(&mut frame, agg == "min", x, start, end, &position)?
                    }
                    _ => self.framed_aggregate(&mut frame, agg, x, kind, &part, &peers, out)?,
                }
            }
            (_, other) => return unsupported(format!("the window function {other}")),
        };
        Ok(frame.with_column(value.strict_cast(types::polars_type(out)?).alias(name.clone())))
    }

    /// An aggregate over the frame `kind`.
    #[allow(clippy::too_many_arguments)]
    fn framed_aggregate(
        &mut self,
        frame: &mut LazyFrame,
        agg: &str,
        x: Expr,
        kind: Frame,
        part: &[Expr],
        peers: &[Expr],
        out: &ArrowType,
    ) -> Result<Expr> {
        let sum_type = types::sum_type(out)?;
        let none = |ty: &DataType| lit(NULL).cast(ty.clone());
        Ok(match kind {
            Frame::Whole => {
                let e = match agg {
                    "sum" => when(x.clone().count().eq(lit(0)))
                        .then(none(&sum_type))
                        .otherwise(x.strict_cast(sum_type).sum()),
                    "count" => x.count().cast(DataType::Int64),
                    "avg" | "mean" => x.cast(DataType::Float64).mean(),
                    "min" => x.min(),
                    "max" => x.max(),
                    other => return unsupported(format!("the aggregate {other} as a window")),
                };
                over(e, part)?
            }
            Frame::ToRow | Frame::ToPeers => {
                let counted = over(x.clone().is_not_null().cast(DataType::Int64).cum_sum(false), part)?;
                let running = match agg {
                    "sum" => {
                        let s = over(x.strict_cast(sum_type.clone()).fill_null(lit(0)).cum_sum(false), part)?;
                        when(counted.clone().eq(lit(0))).then(none(&sum_type)).otherwise(s)
                    }
                    "count" => counted.clone(),
                    "avg" | "mean" => {
                        let s = over(x.cast(DataType::Float64).fill_null(lit(0.0)).cum_sum(false), part)?;
                        when(counted.clone().eq(lit(0)))
                            .then(none(&DataType::Float64))
                            .otherwise(s / counted.clone().cast(DataType::Float64))
                    }
                    "min" | "max" => {
                        let m = if agg == "min" { x.cum_min(false) } else { x.cum_max(false) };
                        let m = stage(&mut self.namer, frame, over(m, part)?);
                        over(m.fill_null_with_strategy(FillNullStrategy::Forward(None)), part)?
                    }
                    other => return unsupported(format!("the aggregate {other} as a running window")),
                };
                if kind == Frame::ToPeers {
                    let running = stage(&mut self.namer, frame, running);
                    over(running.last(), peers)?
                } else {
                    running
                }
            }
            Frame::Rows(start, end) => {
                // Prefix sums S(j) over the partition: the frame's sum is S(hi) - S(lo - 1).
                let (value, value_type) = match agg {
                    "sum" => (x.clone().strict_cast(sum_type.clone()), sum_type.clone()),
                    "count" => (x.clone().is_not_null().cast(DataType::Int64), DataType::Int64),
                    "avg" | "mean" => (x.clone().cast(DataType::Float64), DataType::Float64),
                    other => return unsupported(format!("the aggregate {other} over a bounded ROWS frame")),
                };
                let prefix = |v: Expr| over(v.fill_null(lit(0)).cum_sum(false), part);
                let s = prefix(value.strict_cast(value_type.clone()))?;
                let s = stage(&mut self.namer, frame, s);
                let c = prefix(x.is_not_null().cast(DataType::Int64))?;
                let c = stage(&mut self.namer, frame, c);
                let window_sum = |s: Expr| -> Result<Expr> {
                    let last = over(s.clone().last(), part)?;
                    let hi = match end {
                        None => last.clone(),
                        Some(e) => over(s.clone().shift(lit(-e)), part)?.fill_null(last.clone()),
                    };
                    let lo = match start {
                        None => lit(0).cast(value_type.clone()),
                        // S(i + start - 1): before the partition is 0, past its end is S(last).
                        Some(st) => {
                            let shifted = over(s.shift(lit(1 - st)), part)?;
                            if st > 0 { shifted.fill_null(last) } else { shifted.fill_null(lit(0)) }
                        }
                    };
                    Ok(hi - lo)
                };
                let n = window_sum(c)?;
                let total = window_sum(s)?;
                match agg {
                    "count" => total,
                    "sum" => when(n.clone().eq(lit(0))).then(none(&sum_type)).otherwise(total),
                    _ => when(n.clone().eq(lit(0)))
                        .then(none(&DataType::Float64))
                        .otherwise(total / n.cast(DataType::Float64)),
                }
            }
        })
    }
}

/// Where a row is in its partition: the partition's keys, the row's number in it (from 1) and the
/// partition's size (both columns).
struct Position<'a> {
    part: &'a [Expr],
    rn: &'a Expr,
    size: &'a Expr,
}

impl Lowering<'_> {
    /// `min` or `max` of `x` over the rows `i + start ..= i + end` of the partition (`None`:
    /// unbounded), NULL when the frame holds no value. Polars' rolling windows end at the row
    /// (`forward`); reversed, they start at it (`backward`); a frame on both sides of the row is
    /// the two joined, and a frame on one side is one of them moved by `shift`.
    fn rows_extreme(
        &mut self,
        frame: &mut LazyFrame,
        min: bool,
        x: Expr,
        start: Option<i64>,
        end: Option<i64>,
        at: &Position<'_>,
    ) -> Result<Expr> {
        let part = at.part;
        let roll = |e: Expr, width: i64| {
            let options = RollingOptionsFixedWindow {
                window_size: usize::try_from(width).unwrap_or(1).max(1),
                min_periods: 1,
                ..Default::default()
            };
            if min { e.rolling_min(options) } else { e.rolling_max(options) }
        };
        let forward = |width: i64| over(roll(x.clone(), width), part);
        let backward = |width: i64| over(roll(x.clone().reverse(), width).reverse(), part);
        // Row i reads column `c` at row i + k of its partition (NULL past either end).
        let moved = |c: Expr, k: i64| over(c.shift(lit(-k)), part);
        let nothing = lit(NULL).cast(DataType::Null);
        let whole = over(if min { x.clone().min() } else { x.clone().max() }, part)?;
        let (rn, size) = (at.rn.clone(), at.size.clone());
        Ok(match (start, end) {
            (None, None) => whole,
            (Some(a), Some(b)) if a > b => nothing,
            (Some(a), Some(b)) if a <= 0 && b >= 0 => min_or_max(min, backward(b + 1)?, forward(1 - a)?)?,
            (Some(a), Some(b)) if b < 0 => moved(stage(&mut self.namer, frame, forward(b - a + 1)?), b)?,
            (Some(a), Some(b)) => moved(stage(&mut self.namer, frame, backward(b - a + 1)?), a)?,
            (None, Some(b)) => {
                let m = if min { x.clone().cum_min(false) } else { x.clone().cum_max(false) };
                let m = stage(&mut self.namer, frame, over(m, part)?);
                let running = over(m.fill_null_with_strategy(FillNullStrategy::Forward(None)), part)?;
                let running = stage(&mut self.namer, frame, running);
                when((rn + lit(b)).gt(size)).then(whole).otherwise(moved(running, b)?)
            }
            (Some(a), None) => {
                let m = if min { x.clone().cum_min(true) } else { x.clone().cum_max(true) };
                let m = stage(&mut self.namer, frame, over(m, part)?);
                let running = over(m.fill_null_with_strategy(FillNullStrategy::Backward(None)), part)?;
                let running = stage(&mut self.namer, frame, running);
                when((rn + lit(a)).lt(lit(1i64))).then(whole).otherwise(moved(running, a)?)
            }
        })
    }
}

/// The smaller (or larger) of `a` and `b`, NULLs skipped.
fn min_or_max(min: bool, a: Expr, b: Expr) -> Result<Expr> {
    let e = if min { polars::lazy::dsl::min_horizontal([a, b]) } else { polars::lazy::dsl::max_horizontal([a, b]) };
    e.map_err(|err| LowerError(format!("a window could not be planned: {err}")))
}

/// `e` over the partition `keys` (all rows when there are none).
fn over(e: Expr, keys: &[Expr]) -> Result<Expr> {
    if keys.is_empty() {
        return Ok(e);
    }
    e.over(keys).map_err(|err| LowerError(format!("a window could not be planned: {err}")))
}

/// Adds `e` to `frame` as a column of its own and returns a reference to it: a window over a
/// window's result must read a column (Polars does not nest windows).
fn stage(namer: &mut super::Namer, frame: &mut LazyFrame, e: Expr) -> Expr {
    let n = namer.fresh();
    *frame = frame.clone().with_column(e.alias(n.clone()));
    col(n)
}

fn unalias(e: &Sql) -> Result<&WindowFunction> {
    match e {
        Sql::Alias(a) => unalias(&a.expr),
        Sql::WindowFunction(f) => Ok(f),
        other => unsupported(format!("{other} as a window")),
    }
}

/// The window's frame. Ranking functions ignore it.
fn frame_of(f: &WindowFunction, ordered: bool) -> Result<Frame> {
    let w = &f.params.window_frame;
    let bound = |b: &WindowFrameBound| -> Result<Option<i64>> {
        let (v, sign) = match b {
            WindowFrameBound::CurrentRow => return Ok(Some(0)),
            WindowFrameBound::Preceding(v) => (v, -1),
            WindowFrameBound::Following(v) => (v, 1),
        };
        if v.is_null() {
            return Ok(None);
        }
        match v.cast_to(&ArrowType::Int64) {
            Ok(ScalarValue::Int64(Some(n))) => Ok(Some(sign * n)),
            _ => unsupported(format!("the frame bound {b}")),
        }
    };
    let (start, end) = (bound(&w.start_bound)?, bound(&w.end_bound)?);
    let unbounded_start = matches!(&w.start_bound, WindowFrameBound::Preceding(v) if v.is_null());
    let unbounded_end = matches!(&w.end_bound, WindowFrameBound::Following(v) if v.is_null());
    Ok(match (w.units, unbounded_start, unbounded_end) {
        (_, true, true) => Frame::Whole,
        (WindowFrameUnits::Range | WindowFrameUnits::Groups, true, false)
            if matches!(w.end_bound, WindowFrameBound::CurrentRow) =>
        {
            if ordered {
                Frame::ToPeers
            } else {
                Frame::Whole
            }
        }
        (WindowFrameUnits::Rows, true, false) if matches!(w.end_bound, WindowFrameBound::CurrentRow) => Frame::ToRow,
        (WindowFrameUnits::Rows, _, _) => Frame::Rows(start, end),
        _ => return unsupported(format!("the window frame {w}")),
    })
}
