//! `GROUP BY` and aggregates, with SQL's semantics: `sum` of no rows (or of NULLs only) is NULL,
//! not 0; `count(DISTINCT x)` counts no NULL; integer sums never wrap; a query without `GROUP
//! BY` gives one row even over no input.

use polars::prelude::*;
use runner_sql::arrow_schema::DataType as ArrowType;
use runner_sql::datafusion_expr::expr::{AggregateFunction, GroupingSet};
use runner_sql::datafusion_expr::{Aggregate, Expr as Sql, ExprSchemable};

use super::expr::Scope;
use super::{Lowered, Lowering, Result, types, unsupported};

impl Lowering<'_> {
    pub(crate) fn aggregate(&mut self, a: &Aggregate) -> Result<Lowered> {
        let input = self.plan(&a.input)?;
        let scope = Scope::new(a.input.schema(), &input.names);
        let names = self.namer.fresh_n(a.schema.fields().len());
        let fields = a.schema.fields();
        let sets = grouping_sets(&a.group_expr);
        let keys: Vec<&Sql> = match &sets {
            Some(_) => match &a.group_expr[..] {
                [Sql::GroupingSet(g)] => g.distinct_expr(),
                _ => return unsupported("a grouping set beside other GROUP BY expressions"),
            },
            None => a.group_expr.iter().collect(),
        };
        // Output columns: the keys, the grouping id (with grouping sets), the aggregates.
        let first_agg = keys.len() + usize::from(sets.is_some());
        // Aggregates read columns: their arguments are added to the input first, so that an
        // argument without a column (`sum(1)`) still has one value per row. Each aggregate is
        // simple reductions of columns (`parts`: Polars' fast grouping runs only those), then
        // its SQL value computed from them once per group (`finish`).
        let mut staged = Vec::new();
        let mut parts = Vec::new();
        // Every group of a plain GROUP BY has a row (no grouping set is empty).
        let grouped = !keys.is_empty() && sets.is_none();
        let mut finish: Vec<Expr> = keys.iter().zip(&names).map(|(_, n)| col(n.clone())).collect();
        if sets.is_some() {
            finish.push(col(names[keys.len()].clone()));
        }
        for (i, e) in a.aggr_expr.iter().enumerate() {
            let out = fields[first_agg + i].data_type();
            let value = self.aggregate_call(e, out, &scope, &mut staged, &mut parts, grouped)?;
            finish.push(value.alias(names[first_agg + i].clone()));
        }
        let input = Lowered { frame: input.frame.clone().with_columns(staged), names: input.names.clone() };
        let mut lowered_keys = Vec::with_capacity(keys.len());
        for (e, n) in keys.iter().zip(&names) {
            lowered_keys.push(self.expr(e, &scope)?.alias(n.clone()));
        }
        let Some(sets) = sets else {
            let frame =
                if keys.is_empty() { input.frame.select(parts) } else { input.frame.group_by(lowered_keys).agg(parts) };
            return Ok(Lowered { frame: frame.select(finish), names });
        };
        // One aggregation per grouping set, the keys outside it NULL, then all of them stacked.
        let id_type = types::polars_type(fields[keys.len()].data_type())?;
        let n = keys.len();
        let mut seen: Vec<u64> = Vec::new();
        let mut sets_out = Vec::with_capacity(sets.len());
        for set in &sets {
            let mut mask = 0u64;
            let mut by = Vec::new();
            let mut nulls = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                if set.contains(k) {
                    by.push(lowered_keys[i].clone());
                } else {
                    mask |= 1 << (n - 1 - i);
                    let ty = types::polars_type(fields[i].data_type())?;
                    nulls.push(lit(NULL).cast(ty).alias(names[i].clone()));
                }
            }
            let ordinal = seen.iter().filter(|m| **m == mask).count() as u64;
            seen.push(mask);
            let id = lit(mask | (ordinal << n)).strict_cast(id_type.clone()).alias(names[n].clone());
            let grouped = if by.is_empty() {
                input.frame.clone().select(parts.clone())
            } else {
                input.frame.clone().group_by(by).agg(parts.clone())
            };
            sets_out.push(grouped.with_columns(nulls).with_column(id).select(finish.clone()));
        }
        let frame = concat(sets_out, UnionArgs::default())
            .map_err(|e| super::LowerError(format!("grouping sets could not be planned: {e}")))?;
        Ok(Lowered { frame, names })
    }

    /// One aggregate call, of the planner's result type `out`: its reductions are added to
    /// `parts`, and the returned expression reads them.
    fn aggregate_call(
        &mut self,
        e: &Sql,
        out: &ArrowType,
        scope: &Scope<'_>,
        staged: &mut Vec<Expr>,
        parts: &mut Vec<Expr>,
        grouped: bool,
    ) -> Result<Expr> {
        let f: &AggregateFunction = match e {
            Sql::Alias(a) => return self.aggregate_call(&a.expr, out, scope, staged, parts, grouped),
            Sql::AggregateFunction(f) => f,
            other => return unsupported(format!("{other} as an aggregate")),
        };
        let p = &f.params;
        let name = f.func.name();
        let ty = types::polars_type(out)?;
        if let Some(udf) = self.user_function(name)? {
            if p.distinct || p.filter.is_some() || !p.order_by.is_empty() {
                return unsupported(format!("DISTINCT, FILTER or ORDER BY in a call of the binary's aggregate {name}"));
            }
            let mut args = Vec::with_capacity(p.args.len());
            for a in &p.args {
                let x = self.stage(a, scope, staged)?;
                args.push(x.alias(super::functions::sql_name(a)));
            }
            return Ok(self.part(udf.call(args), parts).strict_cast(ty));
        }
        // The order of the values changes none of these; `percentile_cont`'s is its WITHIN GROUP.
        if !p.order_by.is_empty() && !matches!(name, "count" | "sum" | "min" | "max" | "avg" | "percentile_cont") {
            return unsupported(format!("{name}(… ORDER BY …)"));
        }
        // The FILTER's condition, over the input's columns (staged columns are added together,
        // so one can't read another).
        let filter = match &p.filter {
            Some(c) => Some(self.expr(c, scope)?.fill_null(lit(false))),
            None => None,
        };
        // count(*) is count of a constant: the number of rows.
        if name == "count"
            && !p.distinct
            && let [Sql::Literal(v, _)] = p.args.as_slice()
            && !v.is_null()
        {
            let n = match &filter {
                Some(c) => {
                    let name = self.namer.fresh();
                    staged.push(c.clone().cast(DataType::Int64).alias(name.clone()));
                    col(name).sum()
                }
                None => len(),
            };
            return Ok(self.part(n, parts).strict_cast(ty));
        }
        let fraction = match (name, p.args.as_slice()) {
            ("percentile_cont", [_, q]) => Some(quantile_fraction(q, &p.order_by)?),
            (_, [_]) => None,
            _ => return unsupported(format!("{name} of {} arguments", p.args.len())),
        };
        // A filtered-out value is a NULL, which every aggregate here skips.
        let x = match &filter {
            Some(c) => {
                let value = self.expr(&p.args[0], scope)?;
                let name = self.namer.fresh();
                staged.push(when(c.clone()).then(value).otherwise(lit(NULL)).alias(name.clone()));
                col(name)
            }
            None => self.stage(&p.args[0], scope, staged)?,
        };
        if p.distinct {
            return self.distinct_call(name, x, out, parts);
        }
        let e = match name {
            "count" => self.part(x.count(), parts),
            "sum" => {
                let wide = types::sum_type(out)?;
                // Polars sums no value to 0; SQL's sum of no value is NULL. A group of a GROUP BY
                // has a row, so a value that can't be NULL (and is not filtered) always has one.
                let total = self.part(x.clone().strict_cast(wide).sum(), parts);
                let never_null = !p.args[0].nullable(scope.schema).unwrap_or(true);
                if grouped && never_null && filter.is_none() {
                    total
                } else {
                    let n = self.part(x.count(), parts);
                    when(n.eq(lit(0))).then(lit(NULL).cast(ty.clone())).otherwise(total)
                }
            }
            "avg" | "mean" => {
                let mean = match p.args[0].get_type(scope.schema) {
                    // A decimal's mean is its exact sum over its count (DuckDB's): one division
                    // per group, not a conversion to a double per row.
                    Ok(ArrowType::Decimal128(_, s)) => {
                        let total = self.part(x.clone().strict_cast(DataType::Decimal(38, s as usize)).sum(), parts);
                        // A value no row of a group lacks: the group's rows (shared with count(*)).
                        let never_null = filter.is_none() && !p.args[0].nullable(scope.schema).unwrap_or(true);
                        let n = self.part(if never_null { len() } else { x.count() }, parts);
                        when(n.clone().eq(lit(0)))
                            .then(lit(NULL).cast(DataType::Float64))
                            .otherwise(total.cast(DataType::Float64) / n.cast(DataType::Float64))
                    }
                    _ => self.part(x.cast(DataType::Float64).mean(), parts),
                };
                match out {
                    ArrowType::Decimal128(_, s) => mean.round(*s as u32, RoundMode::HalfAwayFromZero),
                    _ => mean,
                }
            }
            "min" => self.part(x.min(), parts),
            "max" => self.part(x.max(), parts),
            // Over booleans (false < true), NULLs skipped: NULL when no value.
            "bool_and" => self.part(x.min(), parts),
            "bool_or" => self.part(x.max(), parts),
            "any_value" => self.part(x.drop_nulls().first(), parts),
            "stddev" | "stddev_samp" => self.part(x.cast(DataType::Float64).std(1), parts),
            "stddev_pop" => self.part(x.cast(DataType::Float64).std(0), parts),
            "var" | "var_samp" | "variance" => self.part(x.cast(DataType::Float64).var(1), parts),
            "var_pop" => self.part(x.cast(DataType::Float64).var(0), parts),
            "median" | "percentile_cont" => {
                let q = fraction.unwrap_or(0.5);
                return self.interpolated(x, q, out, parts);
            }
            other => return unsupported(format!("the aggregate {other}")),
        };
        Ok(e.strict_cast(ty))
    }

    /// The value at fraction `q` of the sorted values of `x`, interpolated linearly between the
    /// two nearest (`median` is `q` = 0.5). A decimal is interpolated as DuckDB does: on its
    /// unscaled integers, in doubles, the result truncated toward zero to the decimal's scale.
    fn interpolated(&mut self, x: Expr, q: f64, out: &ArrowType, parts: &mut Vec<Expr>) -> Result<Expr> {
        let ty = types::polars_type(out)?;
        let ArrowType::Decimal128(_, scale) = out else {
            let at = self.part(x.cast(DataType::Float64).quantile(lit(q), QuantileMethod::Linear), parts);
            return Ok(at.strict_cast(ty));
        };
        let unit = 10f64.powi(i32::from(*scale));
        let unscaled = (x.strict_cast(DataType::Decimal(38, *scale as usize)) * lit(unit)).cast(DataType::Float64);
        let at =
            self.part(unscaled.round(0, RoundMode::HalfAwayFromZero).quantile(lit(q), QuantileMethod::Linear), parts);
        let truncated = at.round(0, RoundMode::ToZero) / lit(unit);
        Ok(truncated.round(*scale as u32, RoundMode::HalfAwayFromZero).strict_cast(ty))
    }

    /// `count`, `sum`, `avg`, `min` or `max` of `DISTINCT x`: NULL is no value.
    fn distinct_call(&mut self, name: &str, x: Expr, out: &ArrowType, parts: &mut Vec<Expr>) -> Result<Expr> {
        let ty = types::polars_type(out)?;
        let e = match name {
            // Polars counts NULL as one distinct value.
            "count" => {
                let all = self.part(x.clone().n_unique(), parts);
                let nulls = self.part(x.null_count(), parts);
                all.cast(DataType::Int64) - when(nulls.gt(lit(0))).then(lit(1i64)).otherwise(lit(0i64))
            }
            "min" => self.part(x.min(), parts),
            "max" => self.part(x.max(), parts),
            "sum" | "avg" | "mean" => {
                let distinct = x.drop_nulls().unique();
                let n = self.part(distinct.clone().count(), parts);
                let v = if name == "sum" {
                    self.part(distinct.strict_cast(types::sum_type(out)?).sum(), parts)
                } else {
                    self.part(distinct.cast(DataType::Float64).mean(), parts)
                };
                let v = match out {
                    ArrowType::Decimal128(_, s) if name != "sum" => v.round(*s as u32, RoundMode::HalfAwayFromZero),
                    _ => v,
                };
                when(n.eq(lit(0))).then(lit(NULL).cast(ty.clone())).otherwise(v)
            }
            other => return unsupported(format!("the aggregate {other}(DISTINCT …)")),
        };
        Ok(e.strict_cast(ty))
    }

    /// `reduction` as one of the aggregation's columns; the returned expression reads it.
    fn part(&mut self, reduction: Expr, parts: &mut Vec<Expr>) -> Expr {
        col(self.once(reduction, parts))
    }

    /// `e` as a column added to the aggregation's input (see `staged`).
    fn stage(&mut self, e: &Sql, scope: &Scope<'_>, staged: &mut Vec<Expr>) -> Result<Expr> {
        let value = self.expr(e, scope)?;
        Ok(col(self.once(value, staged)))
    }

    /// The name of `value` among `named` (each `value.alias(name)`), added under a fresh name
    /// unless it is there: TPC-H's Q1 takes `sum(l_quantity)` and `avg(l_quantity)`, whose
    /// exact sum is the same reduction, computed once. (Functions compare by identity, so no
    /// two different calls are taken for one.)
    fn once(&mut self, value: Expr, named: &mut Vec<Expr>) -> PlSmallStr {
        let seen = named.iter().find_map(|e| match e {
            Expr::Alias(inner, name) if **inner == value => Some(name.clone()),
            _ => None,
        });
        seen.unwrap_or_else(|| {
            let name = self.namer.fresh();
            named.push(value.alias(name.clone()));
            name
        })
    }
}

/// The fraction `q` of `percentile_cont(x, q)`: a constant from 0 to 1, turned over (`1 - q`)
/// when `WITHIN GROUP` orders the values descending.
fn quantile_fraction(q: &Sql, order_by: &[runner_sql::datafusion_expr::SortExpr]) -> Result<f64> {
    use runner_sql::datafusion_common::ScalarValue;
    let value = match q {
        Sql::Literal(v, _) => match v.cast_to(&ArrowType::Float64) {
            Ok(ScalarValue::Float64(Some(f))) => Some(f),
            _ => None,
        },
        _ => None,
    };
    let Some(f) = value.filter(|f| (0.0..=1.0).contains(f)) else {
        return unsupported(format!("percentile_cont of the fraction {q} (it must be a constant from 0 to 1)"));
    };
    Ok(match order_by {
        [s] if !s.asc => 1.0 - f,
        _ => f,
    })
}

/// The grouping sets of a `GROUP BY` of `ROLLUP`, `CUBE` or `GROUPING SETS`, in order; `None`
/// for a plain `GROUP BY`.
fn grouping_sets(group: &[Sql]) -> Option<Vec<Vec<&Sql>>> {
    let [Sql::GroupingSet(g)] = group else {
        return None;
    };
    Some(match g {
        GroupingSet::Rollup(e) => (0..=e.len()).rev().map(|k| e[..k].iter().collect()).collect(),
        GroupingSet::Cube(e) => {
            let n = e.len();
            (0..1u64 << n)
                .map(|bits| {
                    e.iter().enumerate().filter(|(i, _)| bits & (1 << (n - 1 - i)) == 0).map(|(_, x)| x).collect()
                })
                .collect()
        }
        GroupingSet::GroupingSets(sets) => sets.iter().map(|s| s.iter().collect()).collect(),
    })
}
