//! Small tools over expressions that every rule needs: splitting and joining conjuncts, reading
//! column references, finding subqueries, and parsing the fragments the rules write.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, JoinConstraint, JoinOperator, Query, Select, SelectItem, TableFactor, Visit,
    Visitor,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::SqlError;

/// A column as written: `name` or `qualifier.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColRef {
    pub qualifier: Option<String>,
    pub name: String,
}

/// The column `e` names, if it is a bare column (parentheses allowed).
pub(crate) fn as_column(e: &Expr) -> Option<ColRef> {
    match e {
        Expr::Identifier(id) => Some(ColRef { qualifier: None, name: id.value.clone() }),
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
            Some(ColRef { qualifier: Some(parts[0].value.clone()), name: parts[1].value.clone() })
        }
        Expr::Nested(inner) => as_column(inner),
        _ => None,
    }
}

/// `e`'s conjuncts: the terms of its top-level `AND`s (through parentheses).
pub(crate) fn conjuncts(e: Expr) -> Vec<Expr> {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            let mut out = conjuncts(*left);
            out.extend(conjuncts(*right));
            out
        }
        // Parentheses around anything but an OR only group; an OR keeps them.
        Expr::Nested(inner) if !matches!(*inner, Expr::BinaryOp { op: BinaryOperator::Or, .. }) => conjuncts(*inner),
        other => vec![other],
    }
}

/// `e`'s disjuncts: the terms of its top-level `OR`s (through parentheses).
pub(crate) fn disjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::Or, right } => {
            let mut out = disjuncts(left);
            out.extend(disjuncts(right));
            out
        }
        Expr::Nested(inner) if matches!(**inner, Expr::BinaryOp { op: BinaryOperator::Or, .. }) => disjuncts(inner),
        other => vec![other],
    }
}

/// The conjunction of `terms`, each parenthesised where it needs it; `None` when empty.
pub(crate) fn and_all(terms: Vec<Expr>) -> Option<Expr> {
    terms.into_iter().map(parenthesise).reduce(|left, right| Expr::BinaryOp {
        left: Box::new(left),
        op: BinaryOperator::And,
        right: Box::new(right),
    })
}

/// The disjunction of `terms`, each in parentheses; `None` when empty.
pub(crate) fn or_all(terms: impl IntoIterator<Item = Expr>) -> Option<Expr> {
    terms.into_iter().map(|e| Expr::Nested(Box::new(e))).reduce(|left, right| Expr::BinaryOp {
        left: Box::new(left),
        op: BinaryOperator::Or,
        right: Box::new(right),
    })
}

/// `e`, parenthesised unless it binds tighter than `AND` already.
fn parenthesise(e: Expr) -> Expr {
    match e {
        Expr::BinaryOp { op: BinaryOperator::Or, .. } => Expr::Nested(Box::new(e)),
        other => other,
    }
}

/// True when `found` is true of some expression in `e` outside its subqueries (`e` included).
fn any_outside_subqueries(e: &Expr, found: impl FnMut(&Expr) -> bool) -> bool {
    struct Outside<F> {
        depth: usize,
        found: F,
    }
    impl<F: FnMut(&Expr) -> bool> Visitor for Outside<F> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match self.depth == 0 && (self.found)(e) {
                true => ControlFlow::Break(()),
                false => ControlFlow::Continue(()),
            }
        }
    }
    e.visit(&mut Outside { depth: 0, found }).is_break()
}

/// Every column `e` references outside its subqueries.
pub(crate) fn columns(e: &Expr) -> Vec<ColRef> {
    let mut found = Vec::new();
    any_outside_subqueries(e, |e| {
        if !matches!(e, Expr::Nested(_)) {
            found.extend(as_column(e));
        }
        false
    });
    found
}

/// True when `e` holds a subquery anywhere.
pub(crate) fn has_subquery(e: &Expr) -> bool {
    struct Finds;
    impl Visitor for Finds {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            ControlFlow::Break(())
        }
    }
    e.visit(&mut Finds).is_break()
}

/// True when `e` calls an aggregate function outside its subqueries: one of SQL's, or one of
/// `user_aggregates` (the binary's own, lower-cased).
pub(crate) fn has_aggregate(e: &Expr, user_aggregates: &std::collections::BTreeSet<String>) -> bool {
    calls(e, AGGREGATES)
        || any_outside_subqueries(
            e,
            |e| matches!(e, Expr::Function(f) if f.over.is_none() && user_aggregates.contains(&f.name.to_string().to_lowercase())),
        )
}

/// True when `e` calls `COUNT` outside its subqueries.
pub(crate) fn has_count(e: &Expr) -> bool {
    calls(e, &["count"])
}

const AGGREGATES: &[&str] = &[
    "sum",
    "avg",
    "mean",
    "min",
    "max",
    "count",
    "median",
    "stddev",
    "stddev_samp",
    "stddev_pop",
    "variance",
    "var_samp",
    "var_pop",
    "first",
    "last",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "any_value",
];

fn calls(e: &Expr, names: &[&str]) -> bool {
    any_outside_subqueries(
        e,
        |e| matches!(e, Expr::Function(f) if f.over.is_none() && names.contains(&f.name.to_string().to_lowercase().as_str())),
    )
}

/// `e` without the parentheses around it.
pub(crate) fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => strip(inner),
        other => other,
    }
}

/// The expressions of `select`'s `WHERE`, `HAVING` and projection.
pub(crate) fn clause_exprs(select: &Select) -> Vec<&Expr> {
    let mut exprs: Vec<&Expr> = select.selection.iter().chain(select.having.iter()).collect();
    for item in &select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            exprs.push(e);
        }
    }
    exprs
}

/// Every expression of `select` outside its `FROM` items: `WHERE`, `HAVING`, the projection,
/// `GROUP BY` and the joins' `ON`, to change.
pub(crate) fn exprs_mut(select: &mut Select) -> Vec<&mut Expr> {
    let mut exprs: Vec<&mut Expr> = select.selection.iter_mut().chain(select.having.iter_mut()).collect();
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            exprs.push(e);
        }
    }
    if let GroupByExpr::Expressions(group, _) = &mut select.group_by {
        exprs.extend(group.iter_mut());
    }
    for twj in &mut select.from {
        for join in &mut twj.joins {
            if let Some(JoinConstraint::On(e)) = constraint_mut(&mut join.join_operator) {
                exprs.push(e);
            }
        }
    }
    exprs
}

/// The constraint of a join that has one.
pub(crate) fn constraint_mut(op: &mut JoinOperator) -> Option<&mut JoinConstraint> {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c) => Some(c),
        _ => None,
    }
}

/// Parses an expression the rules wrote.
pub(crate) fn parse_expr(text: &str) -> Result<Expr, SqlError> {
    Parser::new(&GenericDialect {}).try_with_sql(text).and_then(|mut p| p.parse_expr()).map_err(|e| internal(text, e))
}

/// Parses a query the rules wrote.
pub(crate) fn parse_query(text: &str) -> Result<Query, SqlError> {
    Parser::new(&GenericDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_query())
        .map(|q| *q)
        .map_err(|e| internal(text, e))
}

/// Parses `SELECT` text the rules wrote.
pub(crate) fn parse_select(text: &str) -> Result<Select, SqlError> {
    match *parse_query(text)?.body {
        sqlparser::ast::SetExpr::Select(s) => Ok(*s),
        _ => Err(internal(text, "not a SELECT")),
    }
}

/// Parses a table factor (a derived table with its alias) the rules wrote.
pub(crate) fn parse_factor(text: &str) -> Result<TableFactor, SqlError> {
    let mut select = parse_select(&format!("SELECT * FROM {text}"))?;
    Ok(select.from.remove(0).relation)
}

/// A rule wrote text the parser refused: a bug of the rule, said as one.
fn internal(text: &str, e: impl std::fmt::Display) -> SqlError {
    SqlError::NotAQuery(format!("internal error: a rewrite wrote SQL that does not parse ({e}): {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(text: &str) -> Expr {
        parse_expr(text).unwrap()
    }

    #[test]
    fn splits_and_joins_conjuncts() {
        let parts = conjuncts(expr("a = 1 AND (b = 2 AND c = 3) AND (d = 4 OR e = 5)"));
        let texts: Vec<String> = parts.iter().map(ToString::to_string).collect();
        assert_eq!(texts, ["a = 1", "b = 2", "c = 3", "(d = 4 OR e = 5)"]);
        assert_eq!(
            and_all(vec![expr("x = 1"), expr("y = 2 OR z = 3")]).unwrap().to_string(),
            "x = 1 AND (y = 2 OR z = 3)"
        );
        assert_eq!(and_all(vec![]), None);
    }

    #[test]
    fn columns_skip_subqueries() {
        let cols = columns(&expr("t.a + b > (SELECT max(c) FROM u WHERE u.d = t.a)"));
        let names: Vec<(Option<String>, String)> = cols.into_iter().map(|c| (c.qualifier, c.name)).collect();
        assert_eq!(names, [(Some("t".into()), "a".into()), (None, "b".into())]);
    }

    #[test]
    fn finds_aggregates_outside_subqueries_only() {
        let none = std::collections::BTreeSet::new();
        assert!(has_aggregate(&expr("0.2 * AVG(x)"), &none));
        assert!(!has_aggregate(&expr("x + (SELECT sum(y) FROM t)"), &none));
        assert!(!has_aggregate(&expr("sum(x) OVER (PARTITION BY y)"), &none));
        assert!(!has_aggregate(&expr("geomean(x)"), &none));
        assert!(has_aggregate(&expr("2 * GeoMean(x)"), &["geomean".to_string()].into()));
        assert!(has_count(&expr("count(*) + 1")));
        assert!(has_subquery(&expr("x IN (SELECT y FROM t)")));
        assert!(!has_subquery(&expr("x IN (1, 2)")));
    }
}
