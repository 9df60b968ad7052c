//! Small tools over expressions that every rule needs: splitting and joining conjuncts, reading
//! column references, finding subqueries, and parsing the fragments the rules write.

use std::ops::ControlFlow;

use sqlparser::ast::{BinaryOperator, Expr, Query, Select, TableFactor, Visit, Visitor};
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

/// `e`, parenthesised unless it binds tighter than `AND` already.
fn parenthesise(e: Expr) -> Expr {
    match e {
        Expr::BinaryOp { op: BinaryOperator::Or, .. } => Expr::Nested(Box::new(e)),
        other => other,
    }
}

/// Every column `e` references outside its subqueries.
pub(crate) fn columns(e: &Expr) -> Vec<ColRef> {
    #[derive(Default)]
    struct Columns {
        depth: usize,
        found: Vec<ColRef>,
    }
    impl Visitor for Columns {
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
            if self.depth == 0
                && let Some(c) = as_column(e).filter(|_| !matches!(e, Expr::Nested(_)))
            {
                self.found.push(c);
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = Columns::default();
    let _ = e.visit(&mut v);
    v.found
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

/// True when `e` calls an aggregate function outside its subqueries.
pub(crate) fn has_aggregate(e: &Expr) -> bool {
    calls(e, AGGREGATES)
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
    struct Calls<'a> {
        depth: usize,
        names: &'a [&'a str],
    }
    impl Visitor for Calls<'_> {
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
            if let Expr::Function(f) = e
                && self.depth == 0
                && f.over.is_none()
                && self.names.contains(&f.name.to_string().to_lowercase().as_str())
            {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    e.visit(&mut Calls { depth: 0, names }).is_break()
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
        assert!(has_aggregate(&expr("0.2 * AVG(x)")));
        assert!(!has_aggregate(&expr("x + (SELECT sum(y) FROM t)")));
        assert!(!has_aggregate(&expr("sum(x) OVER (PARTITION BY y)")));
        assert!(has_count(&expr("count(*) + 1")));
        assert!(has_subquery(&expr("x IN (SELECT y FROM t)")));
        assert!(!has_subquery(&expr("x IN (1, 2)")));
    }
}
