//! Rules `scalar_subqueries` and `semi_anti_joins`: subqueries that are conditions of `WHERE`
//! (terms of its top-level `AND`) become joins, correlated or not.
//!
//! - `x op (SELECT agg …)`, uncorrelated: the one-row result is `CROSS JOIN`ed and compared
//!   (in `HAVING` too, where its value joins the `GROUP BY`: a constant, so the groups stay).
//! - `x op (SELECT agg … WHERE inner = outer …)`: the subquery is grouped by its correlated
//!   columns and joined on them. An outer row with no group compares with NULL, as the
//!   subquery's aggregate over no rows would; `COUNT`, which is 0 there, is a left join and
//!   `COALESCE(…, 0)`.
//! - `EXISTS` / `NOT EXISTS` with equality correlations: a semi / anti join on them. With one
//!   more correlation by `<>`, `<`, `<=`, `>`, `>=` (TPC-H Q21's `l2.l_suppkey <> l1.l_suppkey`),
//!   the subquery's rows per key are summed up by the MIN and MAX of its column: some row has
//!   `c <> x` exactly when MIN(c) <> x or MAX(c) <> x, and `c < x` exactly when MIN(c) < x.
//! - `x IN (SELECT e …)`: a semi join on `x = e` (and any equality correlations).
//! - `x NOT IN (SELECT e …)`, uncorrelated: an anti join, with SQL's rule for NULLs kept by a
//!   one-row count of the subquery: no row passes if the subquery returns a NULL, and a NULL
//!   `x` passes only when the subquery returns no rows.
//!
//! Subqueries elsewhere (under `OR` or `NOT`, in `SELECT`) are left to Polars when they are
//! uncorrelated, and refused, named, when they are correlated.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Query, Select, SelectItem, SetExpr, UnaryOperator, Visit, Visitor,
};

use super::Rewriter;
use super::attach::{Kind, attach, expand_wildcard};
use crate::SqlError;
use crate::expr::{
    and_all, as_column, clause_exprs, columns, conjuncts, has_aggregate, has_count, has_subquery, parse_expr,
    parse_select, strip,
};
use crate::scope::{Catalog, Resolved, Scope};

/// A subquery split into its own conditions and its correlations with the query around it.
struct Analysis {
    /// The subquery's `SELECT` without its correlated conditions; `None` when it is not one
    /// `SELECT` (a set operation), which the rules take whole, as uncorrelated.
    select: Option<Select>,
    /// `inner = outer`: the inner expression, the outer column qualified, its relation.
    keys: Vec<(Expr, String, usize)>,
    /// `inner op outer` with another comparison, and the term as written.
    bounds: Vec<(Expr, BinaryOperator, String, usize, Expr)>,
}

impl Analysis {
    fn correlated(&self) -> bool {
        !self.keys.is_empty() || !self.bounds.is_empty()
    }

    /// The subquery's `SELECT` with `items` as its projection, grouped by its keys when it has
    /// some (and when `group`), as text.
    fn derived(&self, items: &[String], group: bool) -> Result<String, SqlError> {
        let mut select = self.select.clone().expect("only one SELECT is correlated");
        select.projection = parse_select(&format!("SELECT {}", items.join(", ")))?.projection;
        if group && !self.keys.is_empty() {
            select.group_by = GroupByExpr::Expressions(self.keys.iter().map(|k| k.0.clone()).collect(), vec![]);
        }
        Ok(select.to_string())
    }

    fn key_items(&self, id: &str) -> Vec<String> {
        self.keys.iter().enumerate().map(|(i, k)| format!("{} AS {id}_k{}", k.0, i + 1)).collect()
    }

    fn key_on(&self, id: &str) -> Vec<String> {
        self.keys.iter().enumerate().map(|(i, k)| format!("{} = {id}.{id}_k{}", k.1, i + 1)).collect()
    }

    fn last_relation(&self) -> Option<usize> {
        self.keys.iter().map(|k| k.2).chain(self.bounds.iter().map(|b| b.3)).max()
    }
}

fn analyze(query: &Query, scope: &Scope<'_>, catalog: &Catalog) -> Result<Analysis, SqlError> {
    let none = Analysis { select: None, keys: vec![], bounds: vec![] };
    let SetExpr::Select(select) = query.body.as_ref() else { return Ok(none) };
    if query.with.is_some() {
        return Ok(none);
    }
    let inner = Scope::of(select, catalog, Some(scope));
    let outer_of = |e: &Expr| -> Result<bool, SqlError> {
        let mut outer = false;
        for c in columns(e) {
            match inner.resolve(&c) {
                Resolved::Outer { depth: 1, .. } => outer = true,
                Resolved::Outer { .. } => {
                    return Err(SqlError::unsupported(
                        e,
                        "a subquery may use columns of the query around it, not of queries further out",
                    ));
                }
                _ => {}
            }
        }
        Ok(outer)
    };
    for item in &select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item
            && outer_of(e)?
        {
            return Err(SqlError::unsupported(e, "a subquery may use the outer query's columns in its WHERE only"));
        }
    }
    if let Some(h) = &select.having
        && outer_of(h)?
    {
        return Err(SqlError::unsupported(h, "a subquery may use the outer query's columns in its WHERE only"));
    }
    let mut own = Vec::new();
    let (mut keys, mut bounds) = (Vec::new(), Vec::new());
    for term in select.selection.clone().map(conjuncts).unwrap_or_default() {
        if !outer_of(&term)? {
            own.push(term);
            continue;
        }
        let refuse = || {
            SqlError::unsupported(
                &term,
                "a correlated condition must compare a column of the subquery with a column of the outer \
                 query (`inner.k = outer.k`), joined to the rest by AND",
            )
        };
        let Expr::BinaryOp { left, op, right } = strip(&term) else { return Err(refuse()) };
        let (Some(l), Some(r)) = (as_column(left), as_column(right)) else { return Err(refuse()) };
        let (inner_col, outer_col, op) = match (inner.resolve(&l), inner.resolve(&r)) {
            (Resolved::Local(_), Resolved::Outer { .. }) => (left, r, op.clone()),
            (Resolved::Outer { .. }, Resolved::Local(_)) => (right, l, flip(op).ok_or_else(refuse)?),
            _ => return Err(refuse()),
        };
        let Resolved::Local(rel) = scope.resolve(&outer_col) else { return Err(refuse()) };
        let outer_text = scope.qualified(&outer_col).ok_or_else(refuse)?;
        match op {
            BinaryOperator::Eq => keys.push(((**inner_col).clone(), outer_text, rel)),
            BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq => bounds.push(((**inner_col).clone(), op, outer_text, rel, term.clone())),
            _ => return Err(refuse()),
        }
    }
    let analysis = Analysis { select: None, keys, bounds };
    if analysis.correlated() && (query.limit_clause.is_some() || query.fetch.is_some()) {
        return Err(SqlError::unsupported(query, "a correlated subquery can't have LIMIT"));
    }
    let mut own_select = (**select).clone();
    own_select.selection = and_all(own);
    Ok(Analysis { select: Some(own_select), ..analysis })
}

/// `a op b` as `b op' a`.
fn flip(op: &BinaryOperator) -> Option<BinaryOperator> {
    Some(match op {
        BinaryOperator::Eq => BinaryOperator::Eq,
        BinaryOperator::NotEq => BinaryOperator::NotEq,
        BinaryOperator::Lt => BinaryOperator::Gt,
        BinaryOperator::LtEq => BinaryOperator::GtEq,
        BinaryOperator::Gt => BinaryOperator::Lt,
        BinaryOperator::GtEq => BinaryOperator::LtEq,
        _ => return None,
    })
}

fn is_comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}

/// What became of a condition.
struct Done {
    /// What stays in its place (`None`: the join says it all).
    term: Option<Expr>,
    /// The join added columns that a `SELECT *` must not return.
    carries: bool,
}

pub(crate) fn apply(
    select: &mut Select,
    catalog: &Catalog,
    outer: Option<&Scope<'_>>,
    rw: &mut Rewriter,
) -> Result<(), SqlError> {
    let original = Scope::of(select, catalog, outer).relations;
    let mut carries = false;
    for having in [false, true] {
        let clause = if having { &mut select.having } else { &mut select.selection };
        let Some(clause) = clause.take_if(|c| has_subquery(c)) else { continue };
        let mut kept = Vec::new();
        for term in conjuncts(clause) {
            if !has_subquery(&term) || select.from.len() != 1 {
                kept.push(term);
                continue;
            }
            let done = condition(select, term, catalog, outer, rw, having)?;
            carries |= done.carries;
            kept.extend(done.term);
        }
        *(if having { &mut select.having } else { &mut select.selection }) = and_all(kept);
    }
    if carries {
        expand_wildcard(select, &original)?;
    }
    refuse_correlated_leftovers(select, catalog, outer)
}

fn condition(
    select: &mut Select,
    term: Expr,
    catalog: &Catalog,
    outer: Option<&Scope<'_>>,
    rw: &mut Rewriter,
    having: bool,
) -> Result<Done, SqlError> {
    let scope = Scope::of(select, catalog, outer);
    let keep = |term: Expr| Ok(Done { term: Some(term), carries: false });
    match strip(&term).clone() {
        Expr::BinaryOp { left, op, right } if is_comparison(&op) => {
            let (query, other, subquery_left) = match (strip(&left), strip(&right)) {
                (_, Expr::Subquery(q)) => (q.clone(), *left, false),
                (Expr::Subquery(q), _) => (q.clone(), *right, true),
                _ => return keep(term),
            };
            let (value, crossed) = scalar(select, &scope, &query, catalog, rw, having)?;
            let value = parse_expr(&value)?;
            let (l, r) = if subquery_left { (value, other) } else { (other, value) };
            let term = Expr::BinaryOp { left: Box::new(l), op, right: Box::new(r) };
            let term = if crossed && !having { parse_expr(&opaque(&term.to_string()))? } else { term };
            Ok(Done { term: Some(term), carries: true })
        }
        _ if having => keep(term),
        Expr::Exists { subquery, negated } => exists(select, &scope, &subquery, negated, catalog, rw),
        Expr::UnaryOp { op: UnaryOperator::Not, expr } => match strip(&expr) {
            Expr::Exists { subquery, negated: false } => exists(select, &scope, subquery, true, catalog, rw),
            _ => keep(term),
        },
        Expr::InSubquery { expr, subquery, negated } => match as_column(&expr).and_then(|c| {
            let Resolved::Local(rel) = scope.resolve(&c) else { return None };
            scope.qualified(&c).map(|q| (q, rel))
        }) {
            Some((x, rel)) => in_subquery(select, &scope, (&x, rel), &subquery, negated, catalog, rw),
            None => keep(term),
        },
        _ => keep(term),
    }
}

/// A condition on a `CROSS JOIN`ed value, in a form Polars' optimizer leaves as a filter.
///
/// Polars 0.55.2 turns a cross join filtered by an inequality between its sides into an
/// inequality join, which its streaming engine can't lower for decimals: it panicked
/// ("entered unreachable code", TPC-H Q22's `c_acctbal > (SELECT avg(c_acctbal) …)`). Over a
/// one-row relation a filter is as fast, and `CASE` hides the comparison from that rewrite;
/// NULL and FALSE both drop the row in `WHERE`, so the meaning is the same.
fn opaque(condition: &str) -> String {
    format!("CASE WHEN {condition} THEN TRUE ELSE FALSE END")
}

/// Joins a scalar subquery's value; returns the expression that stands for it, and whether it
/// was `CROSS JOIN`ed (see [`opaque`]).
fn scalar(
    select: &mut Select,
    scope: &Scope<'_>,
    query: &Query,
    catalog: &Catalog,
    rw: &mut Rewriter,
    having: bool,
) -> Result<(String, bool), SqlError> {
    let a = analyze(query, scope, catalog)?;
    let one_row = a.select.as_ref().is_some_and(|s| {
        matches!(&s.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
            && s.projection.len() == 1
            && matches!(&s.projection[0], SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } if has_aggregate(e, catalog.aggregates()))
    });
    if !one_row {
        return Err(SqlError::unsupported(
            query,
            "a subquery compared with a value must be one aggregate without GROUP BY (`SELECT max(x) FROM …`), \
             so that it returns one row",
        ));
    }
    if let Some(b) = a.bounds.first() {
        return Err(SqlError::unsupported(&b.4, "a scalar subquery correlates by equalities only"));
    }
    let value = match &a.select.as_ref().expect("checked above").projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => unreachable!("checked above"),
    };
    let id = rw.fresh();
    rw.applied.insert("scalar_subqueries");
    if !a.correlated() {
        let mut q = query.clone();
        if let SetExpr::Select(s) = q.body.as_mut() {
            s.projection = parse_select(&format!("SELECT {value} AS {id}_v"))?.projection;
        }
        attach(select, &q.to_string(), &id, Kind::Cross, None, None)?;
        // In HAVING the one-row value is read through MAX, which every group has: the same
        // value. (Added to the GROUP BY instead, Polars 0.55.2 read it as a list: TPC-H Q11.)
        return Ok((if having { format!("MAX({id}.{id}_v)") } else { format!("{id}.{id}_v") }, true));
    }
    if having {
        return Err(SqlError::unsupported(query, "a correlated subquery in HAVING is not supported; move it to WHERE"));
    }
    let counts = has_count(&value);
    if counts && !matches!(strip(&value), Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("count")) {
        return Err(SqlError::unsupported(
            &value,
            "COUNT inside an expression in a correlated subquery is not supported; compare with the COUNT itself",
        ));
    }
    let mut items = a.key_items(&id);
    items.push(format!("{value} AS {id}_v"));
    let kind = if counts { Kind::Left } else { Kind::Inner };
    attach(select, &a.derived(&items, true)?, &id, kind, Some(a.key_on(&id).join(" AND ")), a.last_relation())?;
    Ok((if counts { format!("COALESCE({id}.{id}_v, 0)") } else { format!("{id}.{id}_v") }, false))
}

fn exists(
    select: &mut Select,
    scope: &Scope<'_>,
    query: &Query,
    negated: bool,
    catalog: &Catalog,
    rw: &mut Rewriter,
) -> Result<Done, SqlError> {
    let a = analyze(query, scope, catalog)?;
    let id = rw.fresh();
    rw.applied.insert("semi_anti_joins");
    if a.correlated()
        && let Some(s) = &a.select
        && (!matches!(&s.group_by, GroupByExpr::Expressions(g, _) if g.is_empty()) || s.having.is_some())
    {
        return Err(SqlError::unsupported(query, "a correlated EXISTS with GROUP BY or HAVING is not supported"));
    }
    if let Some(extra) = a.bounds.get(1) {
        return Err(SqlError::unsupported(
            &extra.4,
            "a correlated EXISTS may compare with the outer query by one condition other than `=`, not two",
        ));
    }
    if let Some((inner, op, x, _, _)) = a.bounds.first() {
        let mut items = a.key_items(&id);
        items.push(format!("MIN({inner}) AS {id}_lo"));
        items.push(format!("MAX({inner}) AS {id}_hi"));
        let (lo, hi) = (format!("{id}.{id}_lo"), format!("{id}.{id}_hi"));
        let cond = match op {
            BinaryOperator::NotEq => format!("({lo} <> {x} OR {hi} <> {x})"),
            BinaryOperator::Lt => format!("{lo} < {x}"),
            BinaryOperator::LtEq => format!("{lo} <= {x}"),
            BinaryOperator::Gt => format!("{hi} > {x}"),
            _ => format!("{hi} >= {x}"),
        };
        let kind = match (a.keys.is_empty(), negated) {
            (true, _) => Kind::Cross,
            (false, false) => Kind::Inner,
            (false, true) => Kind::Left,
        };
        let on = (kind != Kind::Cross).then(|| a.key_on(&id).join(" AND "));
        attach(select, &a.derived(&items, true)?, &id, kind, on, a.last_relation())?;
        let term = match (negated, kind) {
            (true, _) => format!("NOT COALESCE({cond}, FALSE)"),
            (false, Kind::Cross) => opaque(&cond),
            (false, _) => cond,
        };
        return Ok(Done { term: Some(parse_expr(&term)?), carries: true });
    }
    if !a.keys.is_empty() {
        let kind = if negated { Kind::Anti } else { Kind::Semi };
        attach(
            select,
            &a.derived(&a.key_items(&id), false)?,
            &id,
            kind,
            Some(a.key_on(&id).join(" AND ")),
            a.last_relation(),
        )?;
        return Ok(Done { term: None, carries: false });
    }
    attach(select, &format!("SELECT COUNT(*) AS {id}_n FROM ({query}) AS {id}_q"), &id, Kind::Cross, None, None)?;
    let term = format!("{id}.{id}_n {} 0", if negated { "=" } else { ">" });
    Ok(Done { term: Some(parse_expr(&term)?), carries: true })
}

fn in_subquery(
    select: &mut Select,
    scope: &Scope<'_>,
    (x, x_rel): (&str, usize),
    query: &Query,
    negated: bool,
    catalog: &Catalog,
    rw: &mut Rewriter,
) -> Result<Done, SqlError> {
    let a = analyze(query, scope, catalog)?;
    if let Some(b) = a.bounds.first() {
        return Err(SqlError::unsupported(&b.4, "a correlated IN correlates by equalities only"));
    }
    let id = rw.fresh();
    rw.applied.insert("semi_anti_joins");
    let derived = if a.correlated() {
        if negated {
            return Err(SqlError::unsupported(
                query,
                "NOT IN with a correlated subquery is not supported; write NOT EXISTS",
            ));
        }
        let s = a.select.as_ref().expect("a correlated subquery is one SELECT");
        if !matches!(&s.group_by, GroupByExpr::Expressions(g, _) if g.is_empty()) {
            return Err(SqlError::unsupported(query, "a correlated IN with GROUP BY is not supported"));
        }
        let [SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }] = s.projection.as_slice() else {
            return Err(SqlError::unsupported(query, "the subquery of IN must return one column"));
        };
        let mut items = vec![format!("{e} AS {id}_k0")];
        items.extend(a.key_items(&id));
        a.derived(&items, false)?
    } else {
        format!("SELECT * FROM ({query}) AS {id}_q ({id}_k0)")
    };
    let mut on = vec![format!("{x} = {id}.{id}_k0")];
    on.extend(a.key_on(&id));
    let after = a.last_relation().map_or(x_rel, |r| r.max(x_rel));
    if !negated {
        attach(select, &derived, &id, Kind::Semi, Some(on.join(" AND ")), Some(after))?;
        return Ok(Done { term: None, carries: false });
    }
    attach(select, &derived, &id, Kind::Anti, Some(on.join(" AND ")), Some(after))?;
    let counts = format!("SELECT COUNT(*) AS {id}_n, COUNT({id}_k0) AS {id}_nn FROM ({derived}) AS {id}_q2");
    let c = format!("{id}_c");
    attach(select, &counts, &c, Kind::Cross, None, None)?;
    let term = format!("({c}.{id}_n = 0 OR ({x} IS NOT NULL AND {c}.{id}_n = {c}.{id}_nn))");
    Ok(Done { term: Some(parse_expr(&term)?), carries: true })
}

/// Refuses a correlated subquery the rules left (under `OR`, in `SELECT`, …): Polars would fail
/// on it with a message about a missing column.
fn refuse_correlated_leftovers(select: &Select, catalog: &Catalog, outer: Option<&Scope<'_>>) -> Result<(), SqlError> {
    struct Leftovers<'s, 'a> {
        scope: &'s Scope<'a>,
        catalog: &'s Catalog,
        depth: usize,
        found: Option<SqlError>,
    }
    impl Visitor for Leftovers<'_, '_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            self.depth += 1;
            if self.depth == 1
                && let SetExpr::Select(s) = query.body.as_ref()
            {
                let inner = Scope::of(s, self.catalog, Some(self.scope));
                if clause_exprs(s)
                    .iter()
                    .flat_map(|e| columns(e))
                    .any(|c| matches!(inner.resolve(&c), Resolved::Outer { .. }))
                {
                    self.found = Some(SqlError::unsupported(
                        query,
                        "a correlated subquery is supported as a condition of WHERE joined to the others by AND \
                         (EXISTS, NOT EXISTS, IN, or a comparison with an aggregate), not here",
                    ));
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
    }
    let scope = Scope::of(select, catalog, outer);
    let mut v = Leftovers { scope: &scope, catalog, depth: 0, found: None };
    for e in clause_exprs(select) {
        let _ = e.visit(&mut v);
        if let Some(err) = v.found.take() {
            return Err(err);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::rules::tests::{refused, rewritten};

    #[test]
    fn uncorrelated_scalar_subquery_is_a_cross_join() {
        assert_eq!(
            rewritten(
                "SELECT c_name FROM customer WHERE c_acctbal > (SELECT avg(c_acctbal) FROM customer WHERE c_acctbal > 0)"
            ),
            "SELECT c_name FROM customer CROSS JOIN (SELECT avg(c_acctbal) AS __s1_v FROM customer WHERE c_acctbal > 0) AS __s1 \
             WHERE CASE WHEN c_acctbal > __s1.__s1_v THEN true ELSE false END"
        );
    }

    #[test]
    fn select_star_keeps_the_querys_own_columns() {
        assert_eq!(
            rewritten("SELECT * FROM nation n WHERE n_regionkey = (SELECT max(r_regionkey) FROM region)"),
            "SELECT n.n_nationkey, n.n_name, n.n_regionkey FROM nation n \
             CROSS JOIN (SELECT max(r_regionkey) AS __s1_v FROM region) AS __s1 \
             WHERE CASE WHEN n_regionkey = __s1.__s1_v THEN true ELSE false END"
        );
        assert!(
            refused("SELECT * FROM mystery WHERE a > (SELECT max(b) FROM t)").contains("needs every table's columns")
        );
    }

    #[test]
    fn correlated_scalar_subquery_is_grouped_and_joined() {
        assert_eq!(
            rewritten(
                "SELECT sum(l_extendedprice) FROM lineitem, part WHERE p_partkey = l_partkey \
                 AND l_quantity < (SELECT 2 * avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)"
            ),
            "SELECT sum(l_extendedprice) FROM lineitem INNER JOIN part ON lineitem.l_partkey = part.p_partkey \
             INNER JOIN (SELECT l_partkey AS __s1_k1, 2 * avg(l_quantity) AS __s1_v FROM lineitem GROUP BY l_partkey) AS __s1 \
             ON part.p_partkey = __s1.__s1_k1 WHERE l_quantity < __s1.__s1_v"
        );
    }

    #[test]
    fn correlated_count_keeps_zero_for_missing_groups() {
        assert_eq!(
            rewritten(
                "SELECT c_name FROM customer WHERE 2 < (SELECT count(*) FROM orders WHERE o_custkey = c_custkey)"
            ),
            "SELECT c_name FROM customer LEFT OUTER JOIN (SELECT o_custkey AS __s1_k1, count(*) AS __s1_v FROM orders \
             GROUP BY o_custkey) AS __s1 ON customer.c_custkey = __s1.__s1_k1 WHERE 2 < COALESCE(__s1.__s1_v, 0)"
        );
    }

    #[test]
    fn scalar_subquery_in_having_is_read_through_max() {
        assert_eq!(
            rewritten("SELECT a, sum(x) FROM t GROUP BY a HAVING sum(x) > (SELECT sum(x) * 2 FROM t)"),
            "SELECT a, sum(x) FROM t CROSS JOIN (SELECT sum(x) * 2 AS __s1_v FROM t) AS __s1 GROUP BY a \
             HAVING sum(x) > MAX(__s1.__s1_v)"
        );
    }

    #[test]
    fn exists_and_not_exists_are_semi_and_anti_joins() {
        assert_eq!(
            rewritten(
                "SELECT o_orderkey FROM orders WHERE EXISTS (SELECT * FROM lineitem WHERE l_orderkey = o_orderkey \
                 AND l_commitdate < l_receiptdate) AND NOT EXISTS (SELECT 1 FROM customer c WHERE c.c_custkey = orders.o_custkey)"
            ),
            "SELECT o_orderkey FROM orders \
             LEFT SEMI JOIN (SELECT l_orderkey AS __s1_k1 FROM lineitem WHERE l_commitdate < l_receiptdate) AS __s1 \
             ON orders.o_orderkey = __s1.__s1_k1 \
             LEFT ANTI JOIN (SELECT c.c_custkey AS __s2_k1 FROM customer c) AS __s2 ON orders.o_custkey = __s2.__s2_k1"
        );
    }

    #[test]
    fn exists_with_an_inequality_correlation_compares_min_and_max() {
        assert_eq!(
            rewritten(
                "SELECT l1.l_suppkey FROM lineitem l1 WHERE EXISTS (SELECT * FROM lineitem l2 \
                 WHERE l2.l_orderkey = l1.l_orderkey AND l2.l_suppkey <> l1.l_suppkey) \
                 AND NOT EXISTS (SELECT * FROM lineitem l3 WHERE l3.l_orderkey = l1.l_orderkey \
                 AND l3.l_suppkey <> l1.l_suppkey AND l3.l_receiptdate > l3.l_commitdate)"
            ),
            "SELECT l1.l_suppkey FROM lineitem l1 \
             INNER JOIN (SELECT l2.l_orderkey AS __s1_k1, MIN(l2.l_suppkey) AS __s1_lo, MAX(l2.l_suppkey) AS __s1_hi \
             FROM lineitem l2 GROUP BY l2.l_orderkey) AS __s1 ON l1.l_orderkey = __s1.__s1_k1 \
             LEFT OUTER JOIN (SELECT l3.l_orderkey AS __s2_k1, MIN(l3.l_suppkey) AS __s2_lo, MAX(l3.l_suppkey) AS __s2_hi \
             FROM lineitem l3 WHERE l3.l_receiptdate > l3.l_commitdate GROUP BY l3.l_orderkey) AS __s2 \
             ON l1.l_orderkey = __s2.__s2_k1 \
             WHERE (__s1.__s1_lo <> l1.l_suppkey OR __s1.__s1_hi <> l1.l_suppkey) \
             AND NOT COALESCE((__s2.__s2_lo <> l1.l_suppkey OR __s2.__s2_hi <> l1.l_suppkey), false)"
        );
    }

    #[test]
    fn in_and_not_in() {
        assert_eq!(
            rewritten(
                "SELECT o_orderkey FROM orders WHERE o_orderkey IN (SELECT l_orderkey FROM lineitem GROUP BY l_orderkey HAVING sum(l_quantity) > 300)"
            ),
            "SELECT o_orderkey FROM orders LEFT SEMI JOIN (SELECT * FROM (SELECT l_orderkey FROM lineitem GROUP BY l_orderkey \
             HAVING sum(l_quantity) > 300) AS __s1_q (__s1_k0)) AS __s1 ON orders.o_orderkey = __s1.__s1_k0"
        );
        assert_eq!(
            rewritten(
                "SELECT ps_partkey FROM partsupp WHERE ps_suppkey NOT IN (SELECT s_suppkey FROM supplier WHERE s_comment LIKE '%C%')"
            ),
            "SELECT ps_partkey FROM partsupp \
             LEFT ANTI JOIN (SELECT * FROM (SELECT s_suppkey FROM supplier WHERE s_comment LIKE '%C%') AS __s1_q (__s1_k0)) AS __s1 \
             ON partsupp.ps_suppkey = __s1.__s1_k0 \
             CROSS JOIN (SELECT COUNT(*) AS __s1_n, COUNT(__s1_k0) AS __s1_nn FROM (SELECT * FROM (SELECT s_suppkey FROM supplier \
             WHERE s_comment LIKE '%C%') AS __s1_q (__s1_k0)) AS __s1_q2) AS __s1_c \
             WHERE (__s1_c.__s1_n = 0 OR (partsupp.ps_suppkey IS NOT NULL AND __s1_c.__s1_n = __s1_c.__s1_nn))"
        );
    }

    #[test]
    fn refuses_what_it_cannot_decorrelate() {
        assert_eq!(
            refused(
                "SELECT 1 FROM orders WHERE o_orderkey > 5 OR EXISTS (SELECT 1 FROM lineitem WHERE l_orderkey = o_orderkey)"
            ),
            "line 1, column 54: `SELECT 1 FROM lineitem WHERE l_orderkey = o_orderkey`: a correlated subquery is supported as a \
             condition of WHERE joined to the others by AND (EXISTS, NOT EXISTS, IN, or a comparison with an aggregate), not here"
        );
        assert!(
            refused("SELECT 1 FROM part WHERE p_size = (SELECT p_size FROM part)").contains("must be one aggregate")
        );
        assert!(
            refused("SELECT 1 FROM orders WHERE o_orderkey NOT IN (SELECT l_orderkey FROM lineitem WHERE l_suppkey = o_custkey)")
                .contains("write NOT EXISTS")
        );
    }
}
