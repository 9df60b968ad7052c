//! Rule `join_conditions`: a `JOIN … ON` keeps only equalities between the joined relation and
//! those before it; the rest of the condition moves where it means the same.
//!
//! - In an inner join, any other condition moves to `WHERE`.
//! - In a `LEFT` (or semi, or anti) join, a condition on the joined relation alone filters that
//!   relation first: `LEFT JOIN orders ON c_custkey = o_custkey AND o_comment NOT LIKE '%x%'`
//!   → `LEFT JOIN (SELECT * FROM orders WHERE o_comment NOT LIKE '%x%') AS orders ON …`
//!   (TPC-H Q13; Polars 0.55.2 refused it with a dump of its syntax tree).
//! - Anything else (a condition on the preserved side of an outer join, or one that compares
//!   the two sides other than by equality) has no such rewrite, and is refused, named.

use sqlparser::ast::{BinaryOperator, Expr, JoinConstraint, JoinOperator, Select};

use super::Rewriter;
use crate::SqlError;
use crate::expr::{and_all, as_column, columns, conjuncts, constraint_mut, has_subquery, parse_factor};
use crate::scope::{Catalog, Resolved, Scope, quote};

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Inner,
    /// The joined (right) relation's rows may be filtered before the join.
    FilterRight,
    Other,
}

pub(crate) fn apply(
    select: &mut Select,
    catalog: &Catalog,
    outer: Option<&Scope<'_>>,
    rw: &mut Rewriter,
) -> Result<(), SqlError> {
    let scope = Scope::of(select, catalog, outer);
    let mut to_where = Vec::new();
    let mut index = 0;
    for twj in &mut select.from {
        let first = index;
        index += 1;
        for join in &mut twj.joins {
            let right = index;
            index += 1;
            let side = match &join.join_operator {
                JoinOperator::Join(_) | JoinOperator::Inner(_) => Side::Inner,
                JoinOperator::Left(_)
                | JoinOperator::LeftOuter(_)
                | JoinOperator::Semi(_)
                | JoinOperator::LeftSemi(_)
                | JoinOperator::Anti(_)
                | JoinOperator::LeftAnti(_) => Side::FilterRight,
                _ => Side::Other,
            };
            let Some(JoinConstraint::On(on)) = constraint_mut(&mut join.join_operator) else { continue };
            let mut keep = Vec::new();
            let mut right_only = Vec::new();
            let mut moved = false;
            for term in conjuncts(on.clone()) {
                if is_key(&term, &scope, first, right) {
                    keep.push(term);
                    continue;
                }
                let locals = scope.locals(&columns(&term));
                match side {
                    _ if has_subquery(&term) => {
                        return Err(SqlError::unsupported(
                            &term,
                            "a subquery in JOIN … ON is not supported; move it to WHERE",
                        ));
                    }
                    Side::Inner => {
                        to_where.push(term);
                        moved = true;
                    }
                    Side::FilterRight if locals.as_deref() == Some(&[right][..]) => {
                        right_only.push(term);
                        moved = true;
                    }
                    // What the front end can't place is left for Polars to judge.
                    _ if locals.is_none() => keep.push(term),
                    _ => {
                        return Err(SqlError::unsupported(
                            &term,
                            "in an outer join, JOIN … ON takes equalities between the two sides, and \
                             conditions on the joined table alone; filter the other side in WHERE or a \
                             subquery",
                        ));
                    }
                }
            }
            if !moved {
                continue;
            }
            rw.applied.insert("join_conditions");
            match and_all(keep) {
                Some(on_rest) => *on = on_rest,
                None if side == Side::Inner => join.join_operator = JoinOperator::CrossJoin(JoinConstraint::None),
                None => {
                    return Err(SqlError::unsupported(
                        &join.relation,
                        "an outer join needs at least one equality between the two sides in its ON",
                    ));
                }
            }
            if let Some(filter) = and_all(right_only) {
                let binding = &scope.relations[right].binding;
                if binding.is_empty() {
                    return Err(SqlError::unsupported(&join.relation, "give the joined subquery an alias"));
                }
                join.relation =
                    parse_factor(&format!("(SELECT * FROM {} WHERE {filter}) AS {}", join.relation, quote(binding)))?;
            }
        }
    }
    if !to_where.is_empty() {
        let mut terms = select.selection.take().map(conjuncts).unwrap_or_default();
        terms.extend(to_where);
        select.selection = and_all(terms);
    }
    Ok(())
}

/// True when `term` is `a = b` between the joined relation and one joined before it.
fn is_key(term: &Expr, scope: &Scope<'_>, first: usize, right: usize) -> bool {
    let Expr::BinaryOp { left, op: BinaryOperator::Eq, right: other } = term else { return false };
    let (Some(a), Some(b)) = (as_column(left), as_column(other)) else { return false };
    match (scope.resolve(&a), scope.resolve(&b)) {
        (Resolved::Local(x), Resolved::Local(y)) => {
            (x == right && (first..right).contains(&y)) || (y == right && (first..right).contains(&x))
        }
        // Columns the front end can't place stay where the user put them.
        (Resolved::Unknown, _) | (_, Resolved::Unknown) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::tests::{refused, rewritten};

    #[test]
    fn before_and_after_left_join() {
        assert_eq!(
            rewritten(
                "SELECT c_custkey, count(o_orderkey) FROM customer LEFT OUTER JOIN orders \
                 ON c_custkey = o_custkey AND o_comment NOT LIKE '%special%requests%' GROUP BY c_custkey"
            ),
            "SELECT c_custkey, count(o_orderkey) FROM customer LEFT OUTER JOIN \
             (SELECT * FROM orders WHERE o_comment NOT LIKE '%special%requests%') AS orders \
             ON c_custkey = o_custkey GROUP BY c_custkey"
        );
    }

    #[test]
    fn before_and_after_inner_join() {
        assert_eq!(
            rewritten(
                "SELECT 1 FROM customer c JOIN orders o ON c.c_custkey = o.o_custkey AND o.o_orderdate < c.c_name WHERE c.c_acctbal > 0"
            ),
            "SELECT 1 FROM customer c JOIN orders o ON c.c_custkey = o.o_custkey WHERE c.c_acctbal > 0 AND o.o_orderdate < c.c_name"
        );
    }

    #[test]
    fn refuses_a_condition_on_the_preserved_side() {
        let e = refused("SELECT 1 FROM customer LEFT JOIN orders ON c_custkey = o_custkey AND c_acctbal > 0");
        assert_eq!(
            e,
            "line 1, column 70: `c_acctbal > 0`: in an outer join, JOIN … ON takes equalities between the two sides, \
             and conditions on the joined table alone; filter the other side in WHERE or a subquery"
        );
    }
}
