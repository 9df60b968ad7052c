//! `GROUP BY` and aggregates, with SQL's semantics: `sum` of no rows (or of NULLs only) is NULL,
//! not 0; `count(DISTINCT x)` counts no NULL; integer sums never wrap; a query without `GROUP
//! BY` gives one row even over no input.

use polars::prelude::*;
use runner_sql::arrow_schema::DataType as ArrowType;
use runner_sql::datafusion_expr::expr::{AggregateFunction, GroupingSet};
use runner_sql::datafusion_expr::{Aggregate, Expr as Sql};

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
        let mut aggs = Vec::with_capacity(a.aggr_expr.len());
        // Aggregates read columns: their arguments are added to the input first, so that an
        // argument without a column (`sum(1)`) still has one value per row.
        let mut staged = Vec::new();
        for (i, e) in a.aggr_expr.iter().enumerate() {
            let out = fields[first_agg + i].data_type();
            aggs.push(self.aggregate_call(e, out, &scope, &mut staged)?.alias(names[first_agg + i].clone()));
        }
        let input = Lowered { frame: input.frame.clone().with_columns(staged), names: input.names.clone() };
        let mut lowered_keys = Vec::with_capacity(keys.len());
        for (e, n) in keys.iter().zip(&names) {
            lowered_keys.push(self.expr(e, &scope)?.alias(n.clone()));
        }
        let Some(sets) = sets else {
            let frame =
                if keys.is_empty() { input.frame.select(aggs) } else { input.frame.group_by(lowered_keys).agg(aggs) };
            return Ok(Lowered { frame, names });
        };
        // One aggregation per grouping set, the keys outside it NULL, then all of them stacked.
        let id_type = types::polars_type(fields[keys.len()].data_type())?;
        let n = keys.len();
        let mut seen: Vec<u64> = Vec::new();
        let mut parts = Vec::with_capacity(sets.len());
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
                input.frame.clone().select(aggs.clone())
            } else {
                input.frame.clone().group_by(by).agg(aggs.clone())
            };
            let all: Vec<Expr> = names.iter().map(|x| col(x.clone())).collect();
            parts.push(grouped.with_columns(nulls).with_column(id).select(all));
        }
        let frame = concat(parts, UnionArgs::default())
            .map_err(|e| super::LowerError(format!("grouping sets could not be planned: {e}")))?;
        Ok(Lowered { frame, names })
    }

    /// One aggregate call, of the planner's result type `out`.
    fn aggregate_call(&mut self, e: &Sql, out: &ArrowType, scope: &Scope<'_>, staged: &mut Vec<Expr>) -> Result<Expr> {
        let f: &AggregateFunction = match e {
            Sql::Alias(a) => return self.aggregate_call(&a.expr, out, scope, staged),
            Sql::AggregateFunction(f) => f,
            other => return unsupported(format!("{other} as an aggregate")),
        };
        let p = &f.params;
        let name = f.func.name();
        if let Some(udf) = self.user_function(name)? {
            if p.distinct || p.filter.is_some() || !p.order_by.is_empty() {
                return unsupported(format!("DISTINCT, FILTER or ORDER BY in a call of the binary's aggregate {name}"));
            }
            let mut args = Vec::with_capacity(p.args.len());
            for a in &p.args {
                let x = self.stage(a, scope, staged)?;
                args.push(x.alias(super::functions::sql_name(a)));
            }
            return Ok(udf.call(args).strict_cast(types::polars_type(out)?));
        }
        if !p.order_by.is_empty() && !matches!(name, "count" | "sum" | "min" | "max" | "avg") {
            return unsupported(format!("{name}(… ORDER BY …)"));
        }
        let ty = types::polars_type(out)?;
        let filter = match &p.filter {
            Some(c) => Some(self.stage(c, scope, staged)?.fill_null(lit(false))),
            None => None,
        };
        let filtered = |x: Expr| match &filter {
            Some(c) => x.filter(c.clone()),
            None => x,
        };
        // count(*) is count of a constant: the number of rows.
        if name == "count"
            && !p.distinct
            && let [Sql::Literal(v, _)] = p.args.as_slice()
            && !v.is_null()
        {
            return Ok(match &filter {
                Some(c) => c.clone().cast(DataType::Int64).sum(),
                None => len(),
            }
            .strict_cast(ty));
        }
        if p.args.len() != 1 {
            return unsupported(format!("{name} of {} arguments", p.args.len()));
        }
        let arg_type = scope.type_of(&p.args[0])?;
        let mut x = filtered(self.stage(&p.args[0], scope, staged)?);
        if p.distinct {
            x = x.drop_nulls().unique();
        }
        let e = match name {
            "count" => x.count(),
            "sum" => {
                let wide = match out {
                    ArrowType::Int64 | ArrowType::UInt64 => DataType::Int128,
                    ArrowType::Decimal128(_, s) => DataType::Decimal(38, *s as usize),
                    _ => ty.clone(),
                };
                when(x.clone().count().eq(lit(0))).then(lit(NULL).cast(ty.clone())).otherwise(x.strict_cast(wide).sum())
            }
            "avg" | "mean" => match out {
                ArrowType::Decimal128(_, s) => {
                    x.cast(DataType::Float64).mean().round(*s as u32, RoundMode::HalfAwayFromZero)
                }
                _ => x.cast(DataType::Float64).mean(),
            },
            "min" => x.min(),
            "max" => x.max(),
            "stddev" | "stddev_samp" => x.cast(DataType::Float64).std(1),
            "stddev_pop" => x.cast(DataType::Float64).std(0),
            "var" | "var_samp" | "variance" => x.cast(DataType::Float64).var(1),
            "var_pop" => x.cast(DataType::Float64).var(0),
            other => return unsupported(format!("the aggregate {other}")),
        };
        let _ = arg_type;
        Ok(e.strict_cast(ty))
    }

    /// `e` as a column added to the aggregation's input (see `staged`).
    fn stage(&mut self, e: &Sql, scope: &Scope<'_>, staged: &mut Vec<Expr>) -> Result<Expr> {
        let name = self.namer.fresh();
        staged.push(self.expr(e, scope)?.alias(name.clone()));
        Ok(col(name))
    }
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
