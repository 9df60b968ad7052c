//! The rewrite rules, and the walk that applies them: expression rules everywhere first, then,
//! for each `SELECT` from the innermost out, the rules that change its `FROM` and `WHERE`.
//!
//! | rule | what it rewrites |
//! |---|---|
//! | `standard_intervals` | `INTERVAL '3' MONTH` → `INTERVAL '3 month'` |
//! | `decimal_literals` | `0.06` → `CAST('0.06' AS DECIMAL(2, 2))` |
//! | `float_division` | `a / b` → `CAST(a AS DOUBLE) / CAST(b AS DOUBLE)` |
//! | `decimal_products` | `a * b` of decimals → both cast to `DECIMAL(38, scale a + scale b)` |
//! | `join_conditions` | conditions in `JOIN … ON` that are not equalities of the two sides |
//! | `common_or_factors` | `(A AND X) OR (A AND Y)` → `A AND (X OR Y)` |
//! | `or_table_filters` | `(p.a = 1 AND l.b = 2) OR (p.a = 3 AND l.b = 4)` also filters each table: `(p.a = 1 OR p.a = 3)` |
//! | `comma_joins` | `FROM a, b WHERE a.k = b.k` → `FROM a JOIN b ON a.k = b.k` |
//! | `scalar_subqueries` | `x > (SELECT agg …)`, correlated or not → a join of the aggregate |
//! | `semi_anti_joins` | `EXISTS`, `NOT EXISTS`, `IN`, `NOT IN` with a subquery → semi and anti joins |
//! | `nested_user_functions` | a CTE, derived table, set-operation branch or subquery calling a user function → a [`Piece`] planned first |

mod attach;
mod comma_joins;
mod decimals;
mod division;
mod intervals;
mod join_conditions;
mod or_factors;
mod or_filters;
mod subqueries;
mod user_functions;

pub use user_functions::Piece;

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Query, Select, SetExpr, TableFactor, VisitMut, VisitorMut};

use crate::SqlError;
use crate::expr::exprs_mut;
use crate::scope::{Catalog, Scope, cte_columns};

/// What a walk has done so far: the names of the rules that changed something, and the
/// counter that names the relations the rules add (`__s1`, `__s2`, …).
#[derive(Debug, Default)]
pub(crate) struct Rewriter {
    next: usize,
    pub applied: BTreeSet<&'static str>,
}

impl Rewriter {
    /// A name no query of a user has: `__s1`, `__s2`, …
    pub fn fresh(&mut self) -> String {
        self.next += 1;
        format!("__s{}", self.next)
    }
}

/// Rewrites a whole query in place.
pub(crate) fn rewrite(query: &mut Query, catalog: &Catalog, rw: &mut Rewriter) -> Result<(), SqlError> {
    let _ = query.visit(&mut ExpressionRules { rw: &mut *rw, in_float_function: 0 });
    rewrite_query(query, None, catalog, rw)
}

/// The rules that rewrite single expressions, everywhere. `decimal_literals` leaves the literals
/// inside a function of floats alone (`COS(RADIANS(52.52))`): Polars' trigonometry, roots and
/// logarithms refuse decimals, and would turn the value into a float anyway.
struct ExpressionRules<'r> {
    rw: &'r mut Rewriter,
    in_float_function: usize,
}

/// Functions of floats only (Polars refuses a decimal argument).
const FLOAT_FUNCTIONS: &[&str] = &[
    "acos", "acosd", "asin", "asind", "atan", "atan2", "atan2d", "atand", "cbrt", "cos", "cosd", "cot", "cotd",
    "degrees", "exp", "ln", "log", "log10", "log1p", "log2", "pow", "power", "radians", "sin", "sind", "sqrt", "tan",
    "tand",
];

fn is_float_function(e: &sqlparser::ast::Expr) -> bool {
    matches!(e, sqlparser::ast::Expr::Function(f) if FLOAT_FUNCTIONS.contains(&f.name.to_string().to_lowercase().as_str()))
}

impl VisitorMut for ExpressionRules<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut sqlparser::ast::Expr) -> ControlFlow<()> {
        if is_float_function(e) {
            self.in_float_function += 1;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut sqlparser::ast::Expr) -> ControlFlow<()> {
        if is_float_function(e) {
            self.in_float_function -= 1;
        }
        if self.in_float_function == 0 && decimals::literal(e) {
            self.rw.applied.insert("decimal_literals");
        }
        if intervals::rewrite(e) {
            self.rw.applied.insert("standard_intervals");
        }
        if division::rewrite(e) {
            self.rw.applied.insert("float_division");
        }
        ControlFlow::Continue(())
    }
}

/// Moves the nested queries that call a user function into pieces (last: the other rules add
/// derived tables of their own).
pub(crate) fn lift(query: &mut Query, catalog: &Catalog, rw: &mut Rewriter) -> Result<Vec<Piece>, SqlError> {
    user_functions::apply(query, catalog.functions(), rw)
}

fn rewrite_query(
    query: &mut Query,
    outer: Option<&Scope<'_>>,
    catalog: &Catalog,
    rw: &mut Rewriter,
) -> Result<(), SqlError> {
    let mut catalog = catalog.clone();
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            rewrite_query(&mut cte.query, None, &catalog, rw)?;
            let columns = cte_columns(cte, &catalog);
            catalog.insert(cte.alias.name.value.clone(), columns);
        }
    }
    rewrite_set(&mut query.body, outer, &catalog, rw)
}

fn rewrite_set(
    body: &mut SetExpr,
    outer: Option<&Scope<'_>>,
    catalog: &Catalog,
    rw: &mut Rewriter,
) -> Result<(), SqlError> {
    match body {
        SetExpr::Select(select) => rewrite_select(select, outer, catalog, rw),
        SetExpr::Query(q) => rewrite_query(q, outer, catalog, rw),
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set(left, outer, catalog, rw)?;
            rewrite_set(right, outer, catalog, rw)
        }
        _ => Ok(()),
    }
}

fn rewrite_select(
    select: &mut Select,
    outer: Option<&Scope<'_>>,
    catalog: &Catalog,
    rw: &mut Rewriter,
) -> Result<(), SqlError> {
    // Derived tables see no outer scope: a LATERAL one would, and is refused.
    for twj in &mut select.from {
        for factor in std::iter::once(&mut twj.relation).chain(twj.joins.iter_mut().map(|j| &mut j.relation)) {
            if let TableFactor::Derived { lateral, subquery, .. } = factor {
                if *lateral {
                    return Err(SqlError::unsupported(
                        &**subquery,
                        "LATERAL derived tables are not supported; join the table instead",
                    ));
                }
                rewrite_query(subquery, None, catalog, rw)?;
            }
        }
    }
    // Subqueries in expressions see this SELECT's relations as their outer scope.
    {
        let scope = Scope::of(select, catalog, outer);
        let mut inner = Subqueries { scope: &scope, catalog, rw, depth: 0 };
        for e in exprs_mut(select) {
            if let ControlFlow::Break(err) = e.visit(&mut inner) {
                return Err(err);
            }
        }
    }
    join_conditions::apply(select, catalog, outer, rw)?;
    or_factors::apply(select, rw);
    or_filters::apply(select, catalog, outer, rw);
    comma_joins::apply(select, catalog, outer, rw);
    subqueries::apply(select, catalog, outer, rw)?;
    // Last: the joins the rules added bring their columns' types into scope.
    let scope = Scope::of(select, catalog, outer);
    for e in exprs_mut(select) {
        if decimals::products(e, &scope)? {
            rw.applied.insert("decimal_products");
        }
    }
    Ok(())
}

/// Rewrites the outermost subqueries of the expressions it visits, with `scope` around them.
struct Subqueries<'s, 'a> {
    scope: &'s Scope<'a>,
    catalog: &'s Catalog,
    rw: &'s mut Rewriter,
    depth: usize,
}

impl VisitorMut for Subqueries<'_, '_> {
    type Break = SqlError;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<SqlError> {
        if self.depth == 0
            && let Err(e) = rewrite_query(query, Some(self.scope), self.catalog, self.rw)
        {
            return ControlFlow::Break(e);
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<SqlError> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::{Catalog, prepare};

    /// The TPC-H tables' columns, enough for the rules' tests.
    pub(crate) fn tpch() -> Catalog {
        Catalog::new()
            .with_table("part", ["p_partkey", "p_name", "p_brand", "p_type", "p_size", "p_container"])
            .with_table("supplier", ["s_suppkey", "s_name", "s_nationkey", "s_comment"])
            .with_table("partsupp", ["ps_partkey", "ps_suppkey", "ps_availqty", "ps_supplycost"])
            .with_table("customer", ["c_custkey", "c_name", "c_nationkey", "c_acctbal", "c_phone"])
            .with_table("orders", ["o_orderkey", "o_custkey", "o_orderdate", "o_comment", "o_orderstatus"])
            .with_table(
                "lineitem",
                [
                    "l_orderkey",
                    "l_partkey",
                    "l_suppkey",
                    "l_quantity",
                    "l_extendedprice",
                    "l_commitdate",
                    "l_receiptdate",
                ],
            )
            .with_table("nation", ["n_nationkey", "n_name", "n_regionkey"])
            .with_table("region", ["r_regionkey", "r_name"])
            .with_table("t", ["a", "b", "d", "x", "y"])
    }

    /// `sql` after every rule, as one line.
    pub(crate) fn rewritten(sql: &str) -> String {
        prepare(sql, &tpch()).unwrap_or_else(|e| panic!("{sql}: {e}")).sql
    }

    /// The refusal of `sql`.
    pub(crate) fn refused(sql: &str) -> String {
        match prepare(sql, &tpch()) {
            Ok(p) => panic!("{sql} was not refused, it became {}", p.sql),
            Err(e) => e.to_string(),
        }
    }
}
