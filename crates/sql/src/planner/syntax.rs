//! What is decided on the query's text, before planning:
//! - refusals where the planner's answer would differ from DuckDB's and SQL's (each named, with
//!   its line and column): `INTERSECT ALL` and `EXCEPT ALL` (DataFusion plans them as semi and
//!   anti joins, which lose the counts of duplicates), a `FULL JOIN … USING` (its key column is
//!   the left side's, not the two sides' merged), an interval with a fraction of a day or
//!   more (`INTERVAL '1.5' DAY`: engines disagree);
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

/// Refuses `INTERSECT ALL`, `EXCEPT ALL` and `FULL JOIN … USING` in a query's body.
fn set_operations(body: &SetExpr) -> Result<(), SqlError> {
    match body {
        SetExpr::SetOperation { op, set_quantifier, left, right } => {
            if matches!(op, SetOperator::Intersect | SetOperator::Except | SetOperator::Minus)
                && matches!(set_quantifier, SetQuantifier::All)
            {
                return Err(SqlError::unsupported(
                    body,
                    format!(
                        "{op} ALL is not supported yet (it would lose the counts of duplicates); use {op}, which removes them"
                    ),
                ));
            }
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
