//! The relational operators that need no more than a frame method each: scans, projections,
//! filters, sorts, limits, distinct, unions, values and aliases; and the dispatch from a plan
//! node to its lowering (joins and aggregates have modules of their own).

use polars::prelude::*;
use runner_sql::datafusion_expr::{LogicalPlan, SortExpr};

use super::expr::Scope;
use super::{Lowered, Lowering, Result, unsupported};

impl Lowering<'_> {
    /// Lowers one plan node (and, through it, its inputs). A join or filter met again (a semi
    /// join's keys read from its own left side, `semi_join_keys`) is lowered once: the same
    /// frame under fresh names, which Polars computes once (its common-subplan elimination).
    pub(crate) fn plan(&mut self, plan: &LogicalPlan) -> Result<Lowered> {
        let kept = matches!(plan, LogicalPlan::Join(_) | LogicalPlan::Filter(_));
        if kept
            && let Some(done) = self.lowered.get(plan)
            && !done.names.is_empty()
        {
            let done = done.clone();
            let names = self.namer.fresh_n(done.names.len());
            let renamed: Vec<Expr> =
                done.names.iter().zip(&names).map(|(a, b)| col(a.clone()).alias(b.clone())).collect();
            return Ok(Lowered { frame: done.frame.select(renamed), names });
        }
        let done = self.operator(plan)?;
        if kept {
            self.lowered.insert(plan.clone(), done.clone());
        }
        Ok(done)
    }

    /// Lowers one plan node, afresh.
    fn operator(&mut self, plan: &LogicalPlan) -> Result<Lowered> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                let table = scan.table_name.table();
                let Some(frame) = self.inputs.get(table) else {
                    return Err(super::LowerError(format!("no input named {table}")));
                };
                let source = scan.source.schema();
                let indices: Vec<usize> =
                    scan.projection.clone().unwrap_or_else(|| (0..source.fields().len()).collect());
                let names = self.namer.fresh_n(indices.len());
                let mut exprs: Vec<Expr> = indices
                    .iter()
                    .zip(&names)
                    .map(|(i, n)| col(source.field(*i).name().as_str()).alias(n.clone()))
                    .collect();
                if exprs.is_empty() && !source.fields().is_empty() {
                    // No column is read (`count(*)`, constants), but every row still counts: keep
                    // one column, unnamed in the plan, for the rows.
                    exprs.push(col(source.field(0).name().as_str()).alias(self.namer.fresh()));
                }
                let mut frame = frame.clone().select(exprs);
                if !scan.filters.is_empty() {
                    return unsupported("a filter pushed into a scan");
                }
                if let Some(n) = scan.fetch {
                    frame = frame.limit(n as IdxSize);
                }
                Ok(Lowered { frame, names })
            }
            LogicalPlan::Projection(p) => {
                let input = self.plan(&p.input)?;
                let input = self.scalar_subqueries(input, &p.expr.iter().collect::<Vec<_>>())?;
                if p.expr.is_empty() {
                    // A projection of no columns (`count(*)` above it) keeps the rows: the
                    // input's columns ride along, named by no one.
                    return Ok(Lowered { frame: input.frame, names: Vec::new() });
                }
                let scope = Scope::new(p.input.schema(), &input.names);
                let names = self.namer.fresh_n(p.expr.len());
                let mut exprs = Vec::with_capacity(p.expr.len());
                for (e, n) in p.expr.iter().zip(&names) {
                    exprs.push(self.expr(e, &scope)?.alias(n.clone()));
                }
                // Added to the input's columns, then chosen: a projection of constants alone
                // has as many rows as its input (a `select` of them would have one).
                let own: Vec<Expr> = names.iter().map(|n| col(n.clone())).collect();
                Ok(Lowered { frame: input.frame.with_columns(exprs).select(own), names })
            }
            LogicalPlan::Filter(f) => {
                let input = self.plan(&f.input)?;
                let input = self.scalar_subqueries(input, &[&f.predicate])?;
                let scope = Scope::new(f.input.schema(), &input.names);
                let predicate = self.expr(&f.predicate, &scope)?;
                Ok(Lowered { frame: input.frame.filter(predicate), names: input.names })
            }
            LogicalPlan::SubqueryAlias(a) => self.plan(&a.input),
            LogicalPlan::Sort(s) => {
                let input = self.plan(&s.input)?;
                let scope = Scope::new(s.input.schema(), &input.names);
                let frame = self.sort(input.frame, &s.expr, &scope)?;
                let frame = match s.fetch {
                    Some(n) => frame.limit(n as IdxSize),
                    None => frame,
                };
                Ok(Lowered { frame, names: input.names })
            }
            LogicalPlan::Limit(l) => {
                let input = self.plan(&l.input)?;
                let skip = match l.get_skip_type() {
                    Ok(runner_sql::datafusion_expr::logical_plan::SkipType::Literal(n)) => n,
                    _ => return unsupported("an OFFSET that is not a constant"),
                };
                let fetch = match l.get_fetch_type() {
                    Ok(runner_sql::datafusion_expr::logical_plan::FetchType::Literal(n)) => n,
                    _ => return unsupported("a LIMIT that is not a constant"),
                };
                let len = fetch.map_or(IdxSize::MAX, |n| n as IdxSize);
                Ok(Lowered { frame: input.frame.slice(skip as i64, len), names: input.names })
            }
            LogicalPlan::Distinct(runner_sql::datafusion_expr::Distinct::All(input)) => {
                let input = self.plan(input)?;
                // Only the node's own columns count (helper columns may ride along below).
                let own: Vec<Expr> = input.names.iter().map(|n| col(n.clone())).collect();
                let frame = input.frame.select(own).unique_stable(None, UniqueKeepStrategy::First);
                Ok(Lowered { frame, names: input.names })
            }
            LogicalPlan::Union(u) => {
                let names = self.namer.fresh_n(u.schema.fields().len());
                let mut frames = Vec::with_capacity(u.inputs.len());
                for input in &u.inputs {
                    let lowered = self.plan(input)?;
                    let mut exprs = Vec::with_capacity(names.len());
                    for ((from, to), field) in lowered.names.iter().zip(&names).zip(u.schema.fields()) {
                        exprs.push(
                            col(from.clone())
                                .strict_cast(super::types::polars_type(field.data_type())?)
                                .alias(to.clone()),
                        );
                    }
                    frames.push(lowered.frame.select(exprs));
                }
                let frame = concat(
                    frames,
                    UnionArgs { parallel: true, rechunk: false, to_supertypes: false, ..Default::default() },
                )
                .map_err(|e| super::LowerError(format!("a UNION could not be planned: {e}")))?;
                Ok(Lowered { frame, names })
            }
            LogicalPlan::EmptyRelation(e) => {
                if !e.schema.fields().is_empty() {
                    // An empty relation with columns: none of its rows exist.
                    let names = self.namer.fresh_n(e.schema.fields().len());
                    let mut columns = Vec::with_capacity(names.len());
                    for (field, name) in e.schema.fields().iter().zip(&names) {
                        columns.push(Column::full_null(
                            name.clone(),
                            0,
                            &super::types::polars_type(field.data_type())?,
                        ));
                    }
                    let height = usize::from(e.produce_one_row);
                    let columns = columns.into_iter().map(|c| c.new_from_index(0, height)).collect();
                    let df = DataFrame::new(height, columns).map_err(|e| super::LowerError(e.to_string()))?;
                    return Ok(Lowered { frame: df.lazy(), names });
                }
                // One row (or none) of no columns: a placeholder column nobody reads.
                let height = usize::from(e.produce_one_row);
                let df = DataFrame::new(height, vec![Column::new("_one".into(), vec![true; height])])
                    .map_err(|e| super::LowerError(e.to_string()))?;
                Ok(Lowered { frame: df.lazy(), names: Vec::new() })
            }
            LogicalPlan::Values(v) => {
                let names = self.namer.fresh_n(v.schema.fields().len());
                let one = DataFrame::new(1, vec![Column::new("_one".into(), [true])])
                    .map_err(|e| super::LowerError(e.to_string()))?;
                let empty = runner_sql::datafusion_common::DFSchema::empty();
                let scope = Scope::new(&empty, &[]);
                let mut frames = Vec::with_capacity(v.values.len());
                for row in &v.values {
                    let mut exprs = Vec::with_capacity(row.len());
                    for ((e, n), field) in row.iter().zip(&names).zip(v.schema.fields()) {
                        let ty = super::types::polars_type(field.data_type())?;
                        exprs.push(self.expr(e, &scope)?.strict_cast(ty).alias(n.clone()));
                    }
                    frames.push(one.clone().lazy().select(exprs));
                }
                let frame = concat(frames, UnionArgs::default())
                    .map_err(|e| super::LowerError(format!("VALUES could not be planned: {e}")))?;
                Ok(Lowered { frame, names })
            }
            LogicalPlan::Aggregate(a) => self.aggregate(a),
            LogicalPlan::Join(j) => self.join(j),
            LogicalPlan::Window(w) => self.window(w),
            LogicalPlan::Distinct(runner_sql::datafusion_expr::Distinct::On(_)) => unsupported("DISTINCT ON"),
            LogicalPlan::Subquery(_) => unsupported("a subquery in this position"),
            LogicalPlan::Unnest(_) => unsupported("UNNEST"),
            LogicalPlan::RecursiveQuery(_) => unsupported("a recursive CTE"),
            LogicalPlan::Repartition(_) => unsupported("a repartition"),
            other => unsupported(format!("a {} statement", other.display())),
        }
    }

    /// Sorts by SQL's sort keys: each with its own direction and NULL placement, stable.
    pub(crate) fn sort(&mut self, frame: LazyFrame, keys: &[SortExpr], scope: &Scope<'_>) -> Result<LazyFrame> {
        let mut exprs = Vec::with_capacity(keys.len());
        for k in keys {
            exprs.push(self.expr(&k.expr, scope)?);
        }
        let options = SortMultipleOptions::default()
            .with_order_descending_multi(keys.iter().map(|k| !k.asc))
            .with_nulls_last_multi(keys.iter().map(|k| !k.nulls_first))
            .with_maintain_order(true);
        Ok(frame.sort_by_exprs(exprs, options))
    }
}
