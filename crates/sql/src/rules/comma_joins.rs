//! Rule `comma_joins`: `FROM a, b, c WHERE a.k = b.k AND …` becomes a chain of explicit joins,
//! `FROM a JOIN b ON a.k = b.k JOIN c ON …`, with each equality between two `FROM` items as a
//! join condition. Polars plans a comma list as cross products filtered afterwards: TPC-H Q9
//! ran 19x slower than written with joins, and Q18 grew past 20 GiB.
//!
//! Items join in their written order where they can: each next item is the first one not yet
//! joined that shares an equality with those that are. An item sharing none is a real cross
//! product, and is `CROSS JOIN`ed. Equalities whose columns the front end can't place stay in
//! `WHERE`, as do all other conditions (Polars pushes those down itself).

use sqlparser::ast::{BinaryOperator, Expr, Join, JoinConstraint, JoinOperator, Select};

use super::Rewriter;
use crate::expr::{and_all, as_column, conjuncts, parse_expr, strip};
use crate::scope::{Catalog, Resolved, Scope};

/// An equality between columns of two `FROM` items.
struct Edge {
    term: usize,
    /// (item, relation, qualified column) of each side.
    sides: [(usize, usize, String); 2],
}

pub(crate) fn apply(select: &mut Select, catalog: &Catalog, outer: Option<&Scope<'_>>, rw: &mut Rewriter) {
    if select.from.len() < 2 {
        return;
    }
    let scope = Scope::of(select, catalog, outer);
    let terms = select.selection.take().map(conjuncts).unwrap_or_default();
    let first_of_unit: Vec<usize> = (0..select.from.len())
        .map(|u| scope.relations.iter().position(|r| r.unit == u).unwrap_or(usize::MAX))
        .collect();
    let mut edges = Vec::new();
    for (i, term) in terms.iter().enumerate() {
        let Expr::BinaryOp { left, op: BinaryOperator::Eq, right } = strip(term) else { continue };
        let (Some(l), Some(r)) = (as_column(left), as_column(right)) else { continue };
        let (Resolved::Local(lr), Resolved::Local(rr)) = (scope.resolve(&l), scope.resolve(&r)) else { continue };
        let (lu, ru) = (scope.relations[lr].unit, scope.relations[rr].unit);
        if lu == ru {
            continue;
        }
        let (Some(lq), Some(rq)) = (scope.qualified(&l), scope.qualified(&r)) else { continue };
        edges.push(Edge { term: i, sides: [(lu, lr, lq), (ru, rr, rq)] });
    }

    let mut units: Vec<Option<sqlparser::ast::TableWithJoins>> = select.from.drain(..).map(Some).collect();
    let mut chain = units[0].take().expect("the first item");
    let mut joined = vec![0usize];
    let mut used = vec![false; terms.len()];
    while joined.len() < units.len() {
        // An edge can join item u when its u side is u's first relation (the one the ON
        // follows) and its other side is already joined.
        let joins_to = |u: usize, e: &Edge| -> Option<(String, String)> {
            let [a, b] = &e.sides;
            for (new, old) in [(a, b), (b, a)] {
                if new.0 == u && new.1 == first_of_unit[u] && joined.contains(&old.0) {
                    return Some((old.2.clone(), new.2.clone()));
                }
            }
            None
        };
        let next = (0..units.len())
            .filter(|u| units[*u].is_some())
            .find(|&u| edges.iter().any(|e| !used[e.term] && joins_to(u, e).is_some()));
        let (u, operator) = match next {
            Some(u) => {
                let mut on = Vec::new();
                for e in &edges {
                    if !used[e.term]
                        && let Some((old, new)) = joins_to(u, e)
                    {
                        used[e.term] = true;
                        on.push(format!("{old} = {new}"));
                    }
                }
                let on = parse_expr(&on.join(" AND ")).expect("qualified column equalities parse");
                (u, JoinOperator::Inner(JoinConstraint::On(on)))
            }
            None => {
                let u = (0..units.len()).find(|u| units[*u].is_some()).expect("an item is left");
                (u, JoinOperator::CrossJoin(JoinConstraint::None))
            }
        };
        let unit = units[u].take().expect("not yet joined");
        chain.joins.push(Join { relation: unit.relation, global: false, join_operator: operator });
        chain.joins.extend(unit.joins);
        joined.push(u);
    }
    select.from = vec![chain];
    select.selection = and_all(terms.into_iter().enumerate().filter(|(i, _)| !used[*i]).map(|(_, t)| t).collect());
    rw.applied.insert("comma_joins");
}

#[cfg(test)]
mod tests {
    use crate::rules::tests::rewritten;

    #[test]
    fn before_and_after() {
        assert_eq!(
            rewritten(
                "SELECT n_name FROM customer, orders, lineitem, supplier, nation \
                 WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey \
                 AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_name = 'ASIA'"
            ),
            "SELECT n_name FROM customer \
             INNER JOIN orders ON customer.c_custkey = orders.o_custkey \
             INNER JOIN lineitem ON orders.o_orderkey = lineitem.l_orderkey \
             INNER JOIN supplier ON lineitem.l_suppkey = supplier.s_suppkey AND customer.c_nationkey = supplier.s_nationkey \
             INNER JOIN nation ON supplier.s_nationkey = nation.n_nationkey WHERE n_name = 'ASIA'"
        );
    }

    #[test]
    fn joins_in_written_order_where_connected_and_aliases_qualify() {
        assert_eq!(
            rewritten(
                "SELECT 1 FROM part, supplier s, lineitem l WHERE s.s_suppkey = l.l_suppkey AND p_partkey = l.l_partkey"
            ),
            "SELECT 1 FROM part INNER JOIN lineitem l ON part.p_partkey = l.l_partkey INNER JOIN supplier s ON l.l_suppkey = s.s_suppkey"
        );
    }

    #[test]
    fn an_unconnected_item_is_a_cross_join() {
        assert_eq!(
            rewritten("SELECT 1 FROM nation, region WHERE n_name = r_name || 'x'"),
            "SELECT 1 FROM nation CROSS JOIN region WHERE n_name = r_name || 'x'"
        );
    }
}
