//! Adding a relation to a `SELECT`'s join chain: where it goes, the join it is, and what a
//! `SELECT *` must then not pick up.

use sqlparser::ast::{Join, JoinConstraint, JoinOperator, Select, SelectItem, TableFactor};

use crate::SqlError;
use crate::expr::{parse_expr, parse_factor};
use crate::scope::{Relation, quote};

/// How a relation the rules add is joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Inner,
    Left,
    Cross,
    Semi,
    Anti,
}

/// Joins `(query) AS alias` to `select`'s single join chain, right after relation `after`
/// (its index in the chain), or at the end; `on` is the join condition (none for `Cross`).
pub(crate) fn attach(
    select: &mut Select,
    query: &str,
    alias: &str,
    kind: Kind,
    on: Option<String>,
    after: Option<usize>,
) -> Result<(), SqlError> {
    let relation = parse_factor(&format!("({query}) AS {}", quote(alias)))?;
    let on =
        || -> Result<JoinConstraint, SqlError> { Ok(JoinConstraint::On(parse_expr(on.as_deref().unwrap_or("TRUE"))?)) };
    let join_operator = match kind {
        Kind::Inner => JoinOperator::Inner(on()?),
        Kind::Left => JoinOperator::LeftOuter(on()?),
        Kind::Semi => JoinOperator::LeftSemi(on()?),
        Kind::Anti => JoinOperator::LeftAnti(on()?),
        Kind::Cross => JoinOperator::CrossJoin(JoinConstraint::None),
    };
    let single = select.from.len() == 1;
    let Some(chain) = select.from.first_mut().filter(|_| single) else {
        return Err(SqlError::NotAQuery(
            "internal error: a subquery was to be joined to a SELECT without a single FROM chain".into(),
        ));
    };
    let mut at = after.map_or(chain.joins.len(), |a| a.min(chain.joins.len()));
    // After the relations the rules attached there before: conditions keep their written order.
    while at < chain.joins.len() && is_attached(&chain.joins[at].relation) {
        at += 1;
    }
    chain.joins.insert(at, Join { relation, global: false, join_operator });
    Ok(())
}

/// True for a relation a rule attached (named by [`super::Rewriter::fresh`]).
fn is_attached(relation: &TableFactor) -> bool {
    matches!(relation, TableFactor::Derived { alias: Some(a), .. } if a.name.value.starts_with("__s"))
}

/// Replaces a plain `SELECT *` by the columns of `relations` (the query's own, before the rules
/// added theirs), so the added relations' columns don't reach the output.
pub(crate) fn expand_wildcard(select: &mut Select, relations: &[Relation]) -> Result<(), SqlError> {
    let Some(pos) = select.projection.iter().position(|i| matches!(i, SelectItem::Wildcard(_))) else {
        return Ok(());
    };
    let SelectItem::Wildcard(options) = &select.projection[pos] else { return Ok(()) };
    if relations.iter().any(|r| r.open || r.binding.is_empty()) || options.to_string() != "" {
        return Err(SqlError::unsupported(
            &select.projection[pos],
            "`SELECT *` over a query whose subqueries the runner turns into joins needs every table's \
             columns known; name the columns instead",
        ));
    }
    let mut items = Vec::new();
    for r in relations {
        for c in &r.columns {
            items.push(SelectItem::UnnamedExpr(parse_expr(&format!("{}.{}", quote(&r.binding), quote(c)))?));
        }
    }
    select.projection.splice(pos..=pos, items);
    Ok(())
}
