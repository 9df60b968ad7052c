//! What is decided on the query's text, before planning:
//! - refusals where the planner's answer would differ from DuckDB's and SQL's (each named, with
//!   its line and column): a `FULL JOIN … USING` (its key column is the left side's, not the two
//!   sides' merged), an interval with a fraction of a day or more (`INTERVAL '1.5' DAY`: engines
//!   disagree);
//! - the right side of each `INTERSECT ALL` and `EXCEPT ALL` is named for the rule
//!   `multiset_set_operations`, which keeps the counts of duplicates (DataFusion's semi and anti
//!   joins would lose them);
//! - a number in scientific notation (`1e-3`) is a `DOUBLE`, as in DuckDB (the planner reads
//!   numbers with a point as exact decimals).

use std::ops::ControlFlow;

use sqlparser::ast::{
    CastKind, DataType, Expr, Interval, JoinConstraint, JoinOperator, Query, SetExpr, SetOperator, SetQuantifier,
    Statement, Value, ValueWithSpan, Visit, VisitMut, Visitor, VisitorMut,
};

use crate::SqlError;

/// Refuses what must be refused, and rewrites scientific literals, in `statement`.
pub(crate) fn prepare(statement: &mut Statement) -> Result<(), SqlError> {
    if let ControlFlow::Break(e) = Visit::visit(&*statement, &mut Refusals) {
        return Err(e);
    }
    let _ = VisitMut::visit(statement, &mut ScientificLiterals);
    let _ = VisitMut::visit(statement, &mut MultisetMarks);
    Ok(())
}

struct Refusals;

impl Visitor for Refusals {
    type Break = SqlError;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<SqlError> {
        match set_operations(&query.body) {
            Err(e) => ControlFlow::Break(e),
            Ok(()) => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<SqlError> {
        if let Expr::Interval(Interval { value, leading_field: Some(unit), .. }) = expr
            && let Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(text), .. }) = value.as_ref()
            && text.contains('.')
            && matches!(
                unit,
                sqlparser::ast::DateTimeField::Day
                    | sqlparser::ast::DateTimeField::Week(_)
                    | sqlparser::ast::DateTimeField::Month
                    | sqlparser::ast::DateTimeField::Year
            )
        {
            return ControlFlow::Break(SqlError::unsupported(
                expr,
                "an interval with a fraction of a day, week, month or year (engines disagree: DuckDB drops the \
                 fraction, Postgres keeps it); write it in a smaller unit, as INTERVAL '36' HOUR",
            ));
        }
        ControlFlow::Continue(())
    }
}

/// Refuses `FULL JOIN … USING` in a query's body.
fn set_operations(body: &SetExpr) -> Result<(), SqlError> {
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            set_operations(left)?;
            set_operations(right)
        }
        SetExpr::Select(select) => {
            for from in &select.from {
                for join in &from.joins {
                    if let JoinOperator::FullOuter(JoinConstraint::Using(_)) = &join.join_operator {
                        return Err(SqlError::unsupported(
                            &join.relation,
                            "FULL JOIN … USING is not supported (its key column would be one side's, not the two \
                             merged); write FULL JOIN … ON and COALESCE the keys",
                        ));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Names the right side of each `INTERSECT ALL` and `EXCEPT ALL` (`… AS __spotlake_multiset`).
struct MultisetMarks;

impl VisitorMut for MultisetMarks {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        mark_multisets(&mut query.body);
        ControlFlow::Continue(())
    }
}

fn mark_multisets(body: &mut SetExpr) {
    if let SetExpr::SetOperation { op, set_quantifier, left, right } = body {
        mark_multisets(left);
        mark_multisets(right);
        // The visitor goes on into the marked side's query: a side marked once stays so.
        if matches!(op, SetOperator::Intersect | SetOperator::Except | SetOperator::Minus)
            && matches!(set_quantifier, SetQuantifier::All)
            && !is_marked(right)
        {
            let inner = std::mem::replace(
                right.as_mut(),
                SetExpr::Values(sqlparser::ast::Values { explicit_row: false, value_keyword: false, rows: vec![] }),
            );
            **right = marked(inner);
        }
    }
}

fn is_marked(side: &SetExpr) -> bool {
    let SetExpr::Query(q) = side else { return false };
    let SetExpr::Select(select) = q.body.as_ref() else { return false };
    matches!(
        select.from.first().map(|f| &f.relation),
        Some(sqlparser::ast::TableFactor::Derived { alias: Some(a), .. })
            if a.name.value == crate::planner::rules::MULTISET_MARKER
    )
}

/// `SELECT * FROM (side) AS __spotlake_multiset`.
fn marked(side: SetExpr) -> SetExpr {
    let text = format!("SELECT * FROM (SELECT 1) AS {}", crate::planner::rules::MULTISET_MARKER);
    let Ok(Statement::Query(mut outer)) = super::parse(&text) else {
        unreachable!("the marker's query parses");
    };
    if let SetExpr::Select(select) = outer.body.as_mut()
        && let Some(from) = select.from.first_mut()
        && let sqlparser::ast::TableFactor::Derived { subquery, .. } = &mut from.relation
    {
        *subquery.body = side;
    }
    SetExpr::Query(outer)
}

struct ScientificLiterals;

impl VisitorMut for ScientificLiterals {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Value(ValueWithSpan { value: Value::Number(n, _), .. }) = expr
            && n.contains(['e', 'E'])
        {
            *expr = Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(expr.clone()),
                data_type: DataType::Double(sqlparser::ast::ExactNumberInfo::None),
                array: false,
                format: None,
            };
        }
        ControlFlow::Continue(())
    }
}
