//! `nested_user_functions`: Polars SQL 0.55.2 plans each nested query (a CTE, a derived table, a
//! branch of a set operation, a subquery in an expression, a parenthesised join) in a fresh
//! context that has lost the binary's user functions, so a call there fails as "unsupported
//! function". Each nested query that calls one becomes a [`Piece`] instead: a query of its own,
//! planned first at the top level (where the functions are found) and read by name as a table.
//!
//! Before: `WITH s AS (SELECT ua_family(agent) AS f FROM events) SELECT f, count(*) FROM s GROUP BY f`
//! After: piece `__s1` = `SELECT ua_family(agent) AS f FROM events`;
//! query = `SELECT f, count(*) FROM __s1 AS s GROUP BY f`.
//!
//! Every CTE of a query that calls a user function becomes a piece (a later piece may read an
//! earlier CTE, which only a table at the top level can give it); references to it are renamed
//! to the piece and keep the CTE's name as their alias. Subqueries are moved as they are: one
//! that reads the outer query's columns would fail to plan, but the `scalar_subqueries` and
//! `semi_anti_joins` rules have turned those into joins already.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Query, Select, SetExpr, TableFactor, TableWithJoins, VisitMut, VisitorMut};

use super::Rewriter;
use crate::SqlError;
use crate::expr::{exprs_mut, parse_factor, parse_query};
use crate::functions::calls_any;
use crate::scope::quote;

/// A nested query planned first, whose result the rest reads as the table `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The table name the rest of the query reads it by.
    pub name: String,
    /// Its SQL, for Polars.
    pub sql: String,
}

/// Moves every nested query of `query` that calls one of `functions` into pieces, in the order
/// they must be planned.
pub(crate) fn apply(
    query: &mut Query,
    functions: &BTreeSet<String>,
    rw: &mut Rewriter,
) -> Result<Vec<Piece>, SqlError> {
    let mut pieces = Vec::new();
    if calls_any(&*query, functions) {
        top(query, functions, rw, &mut pieces)?;
        rw.applied.insert("nested_user_functions");
    }
    Ok(pieces)
}

/// `query` will be planned at the top level: its own clauses may call user functions; its
/// nested queries that call one become pieces.
fn top(
    query: &mut Query,
    functions: &BTreeSet<String>,
    rw: &mut Rewriter,
    pieces: &mut Vec<Piece>,
) -> Result<(), SqlError> {
    if !calls_any(&*query, functions) {
        return Ok(());
    }
    if let Some(with) = query.with.take() {
        let mut renames: Vec<Rename> = Vec::new();
        for mut cte in with.cte_tables {
            rename_tables(&mut cte.query, &renames)?;
            top(&mut cte.query, functions, rw, pieces)?;
            let name = rw.fresh();
            pieces.push(Piece { name: name.clone(), sql: cte.query.to_string() });
            let columns = cte.alias.columns.iter().map(|c| quote(&c.name.value)).collect::<Vec<_>>().join(", ");
            renames.push(Rename { cte: cte.alias.name.value.clone(), piece: name, columns });
        }
        rename_tables(&mut query.body, &renames)?;
    }
    body(&mut query.body, functions, rw, pieces)
}

/// A query body planned at the top level: a `SELECT` keeps its clauses; each branch of a set
/// operation, and a parenthesised query, is nested.
fn body(
    set: &mut SetExpr,
    functions: &BTreeSet<String>,
    rw: &mut Rewriter,
    pieces: &mut Vec<Piece>,
) -> Result<(), SqlError> {
    match set {
        SetExpr::Select(select) => self::select(select, functions, rw, pieces),
        SetExpr::SetOperation { left, right, .. } => {
            for branch in [left, right] {
                if calls_any(&**branch, functions) {
                    let mut q = parse_query("SELECT 1")?;
                    q.body = branch.clone();
                    let name = hoist(q, functions, rw, pieces)?;
                    **branch = *parse_query(&format!("SELECT * FROM {name}"))?.body;
                }
            }
            Ok(())
        }
        SetExpr::Query(q) if calls_any(&**q, functions) => {
            let name = hoist((**q).clone(), functions, rw, pieces)?;
            *set = *parse_query(&format!("SELECT * FROM {name}"))?.body;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A `SELECT` planned at the top level: its derived tables and expression subqueries that call a
/// user function become pieces.
fn select(
    select: &mut Select,
    functions: &BTreeSet<String>,
    rw: &mut Rewriter,
    pieces: &mut Vec<Piece>,
) -> Result<(), SqlError> {
    for twj in &mut select.from {
        from_item(twj, functions, rw, pieces)?;
    }
    let mut subqueries = Subqueries { functions, rw, pieces, depth: 0 };
    for e in exprs_mut(select) {
        if let ControlFlow::Break(err) = e.visit(&mut subqueries) {
            return Err(err);
        }
    }
    Ok(())
}

fn from_item(
    twj: &mut TableWithJoins,
    functions: &BTreeSet<String>,
    rw: &mut Rewriter,
    pieces: &mut Vec<Piece>,
) -> Result<(), SqlError> {
    for factor in std::iter::once(&mut twj.relation).chain(twj.joins.iter_mut().map(|j| &mut j.relation)) {
        match factor {
            TableFactor::Derived { subquery, .. } if calls_any(&**subquery, functions) => {
                // The derived table stays, reading the piece: it keeps its alias and column list,
                // which Polars applies to derived tables only.
                let name = hoist((**subquery).clone(), functions, rw, pieces)?;
                **subquery = parse_query(&format!("SELECT * FROM {name}"))?;
            }
            TableFactor::NestedJoin { .. } if calls_any(&*factor, functions) => {
                return Err(SqlError::unsupported(
                    &*factor,
                    "a parenthesised join that calls a user function is not supported (Polars plans it apart, \
                     without the binary's functions); write the joins without parentheses",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Makes `query` a piece (its own nested queries first) and returns the name to read it by.
fn hoist(
    mut query: Query,
    functions: &BTreeSet<String>,
    rw: &mut Rewriter,
    pieces: &mut Vec<Piece>,
) -> Result<String, SqlError> {
    top(&mut query, functions, rw, pieces)?;
    let name = rw.fresh();
    pieces.push(Piece { name: name.clone(), sql: query.to_string() });
    Ok(name)
}

/// Hoists the outermost subqueries of the expressions it visits that call a user function.
struct Subqueries<'a> {
    functions: &'a BTreeSet<String>,
    rw: &'a mut Rewriter,
    pieces: &'a mut Vec<Piece>,
    depth: usize,
}

impl VisitorMut for Subqueries<'_> {
    type Break = SqlError;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<SqlError> {
        if self.depth == 0 && calls_any(&*query, self.functions) {
            let hoisted = hoist(query.clone(), self.functions, self.rw, self.pieces)
                .and_then(|name| parse_query(&format!("SELECT * FROM {name}")));
            match hoisted {
                Ok(q) => *query = q,
                Err(e) => return ControlFlow::Break(e),
            }
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<SqlError> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// A CTE that became a piece: its name, the piece's, and its column list (quoted, or empty).
struct Rename {
    cte: String,
    piece: String,
    columns: String,
}

/// Points every reference to a CTE in `renames` at its piece, keeping the CTE's name as the
/// alias so qualified columns still resolve, and its column list by reading the piece through
/// a derived table (Polars applies column lists to derived tables and CTEs only). A nested CTE of
/// the same name would shadow it for part of the query; that is refused rather than guessed.
fn rename_tables<V: VisitMut>(node: &mut V, renames: &[Rename]) -> Result<(), SqlError> {
    struct Renames<'r>(&'r [Rename]);
    impl VisitorMut for Renames<'_> {
        type Break = SqlError;
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<SqlError> {
            let shadowed = query
                .with
                .as_ref()
                .and_then(|w| w.cte_tables.iter().find(|c| self.0.iter().any(|r| r.cte == c.alias.name.value)));
            match shadowed {
                Some(cte) => ControlFlow::Break(SqlError::unsupported(
                    cte,
                    "this nested CTE has the name of an outer CTE, in a query that calls a user function; \
                     give it a name of its own",
                )),
                None => ControlFlow::Continue(()),
            }
        }
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<SqlError> {
            if let TableFactor::Table { name, alias, args: None, .. } = factor
                && let [part] = name.0.as_slice()
                && let Some(ident) = part.as_ident()
                && let Some(r) = self.0.iter().rev().find(|r| r.cte == ident.value)
            {
                let binding = alias.as_ref().map_or_else(|| quote(&r.cte), |a| a.name.to_string());
                let text = match (r.columns.is_empty(), alias.as_ref().is_some_and(|a| !a.columns.is_empty())) {
                    (true, _) => format!("{} AS {binding}", r.piece),
                    (false, false) => format!("(SELECT * FROM {}) AS {binding} ({})", r.piece, r.columns),
                    (false, true) => format!(
                        "(SELECT * FROM {}) AS {}",
                        r.piece,
                        alias.as_ref().map(ToString::to_string).unwrap_or_default()
                    ),
                };
                match parse_factor(&text) {
                    Ok(renamed) => *factor = renamed,
                    Err(e) => return ControlFlow::Break(e),
                }
            }
            ControlFlow::Continue(())
        }
    }
    match node.visit(&mut Renames(renames)) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::{Catalog, prepare};

    fn prepared(sql: &str) -> (Vec<(String, String)>, String) {
        let catalog = Catalog::new()
            .with_table("events", ["user_id", "agent", "url", "ts"])
            .with_table("t", ["a", "b"])
            .with_functions(["ua_family", "host"]);
        let p = prepare(sql, &catalog).unwrap_or_else(|e| panic!("{sql}: {e}"));
        (p.pieces.into_iter().map(|p| (p.name, p.sql)).collect(), p.sql)
    }

    fn pieces(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect()
    }

    #[test]
    fn a_top_level_call_stays_where_it_is() {
        let sql =
            "SELECT ua_family(agent) AS f, count(*) AS n FROM events WHERE host(url) = 'a' GROUP BY ua_family(agent)";
        assert_eq!(prepared(sql), (vec![], sql.to_string()));
    }

    #[test]
    fn ctes_become_pieces_read_under_their_own_names() {
        let (p, sql) = prepared(
            "WITH s AS (SELECT ua_family(agent) AS f, user_id FROM events), \
             k AS (SELECT f, count(*) AS n FROM s GROUP BY f) \
             SELECT k.f, k.n FROM k JOIN s ON k.f = s.f",
        );
        assert_eq!(
            p,
            pieces(&[
                ("__s1", "SELECT ua_family(agent) AS f, user_id FROM events"),
                ("__s2", "SELECT f, count(*) AS n FROM __s1 AS s GROUP BY f"),
            ])
        );
        assert_eq!(sql, "SELECT k.f, k.n FROM __s2 AS k JOIN __s1 AS s ON k.f = s.f");
    }

    #[test]
    fn derived_tables_and_union_branches_become_pieces() {
        let (p, sql) = prepared(
            "SELECT d.f FROM (SELECT ua_family(agent) AS f FROM events) AS d \
             UNION ALL SELECT a FROM t \
             UNION ALL SELECT host(b) FROM t",
        );
        assert_eq!(
            p,
            pieces(&[
                ("__s1", "SELECT ua_family(agent) AS f FROM events"),
                ("__s2", "SELECT d.f FROM (SELECT * FROM __s1) AS d"),
                ("__s3", "SELECT * FROM __s2 UNION ALL SELECT a FROM t"),
                ("__s4", "SELECT host(b) FROM t"),
            ])
        );
        // `A UNION ALL B UNION ALL C` is `(A UNION ALL B) UNION ALL C`: each branch is nested.
        assert_eq!(sql, "SELECT * FROM __s3 UNION ALL SELECT * FROM __s4");
    }

    #[test]
    fn subqueries_the_rules_made_joins_read_their_piece() {
        let (p, sql) = prepared("SELECT user_id FROM events WHERE url IN (SELECT host(b) FROM t)");
        // `semi_anti_joins` made the subquery a derived table `__s1` with a column list first.
        assert_eq!(
            p,
            pieces(&[
                ("__s2", "SELECT host(b) FROM t"),
                ("__s3", "SELECT * FROM (SELECT * FROM __s2) AS __s1_q (__s1_k0)"),
            ])
        );
        assert_eq!(
            sql,
            "SELECT user_id FROM events LEFT SEMI JOIN (SELECT * FROM __s3) AS __s1 ON events.url = __s1.__s1_k0"
        );
    }

    #[test]
    fn a_cte_column_list_is_kept() {
        let (p, sql) = prepared(
            "WITH c (h, n) AS (SELECT host(url), 1 FROM events) SELECT c.h, z.n FROM c JOIN c AS z ON c.h = z.h",
        );
        assert_eq!(p, pieces(&[("__s1", "SELECT host(url), 1 FROM events")]));
        assert_eq!(
            sql,
            "SELECT c.h, z.n FROM (SELECT * FROM __s1) AS c (h, n) JOIN (SELECT * FROM __s1) AS z (h, n) ON c.h = z.h"
        );
    }

    #[test]
    fn nested_queries_without_user_functions_are_left_to_polars() {
        let sql = "WITH c AS (SELECT a FROM t) SELECT host(url) FROM events WHERE user_id IN (SELECT a FROM c)";
        let (p, out) = prepared(sql);
        assert_eq!(p, pieces(&[("__s2", "SELECT a FROM t")]));
        assert_eq!(
            out,
            "SELECT host(url) FROM events LEFT SEMI JOIN (SELECT * FROM (SELECT a FROM __s2 AS c) AS __s1_q (__s1_k0)) \
             AS __s1 ON events.user_id = __s1.__s1_k0"
        );
        let plain = "WITH c AS (SELECT a FROM t) SELECT a FROM c UNION ALL SELECT b FROM t";
        assert_eq!(prepared(plain), (vec![], plain.to_string()));
    }

    #[test]
    fn what_cannot_be_moved_is_refused_naming_it() {
        let catalog = Catalog::new().with_functions(["host"]);
        let refused = |sql: &str| prepare(sql, &catalog).unwrap_err().to_string();
        assert!(
            refused("SELECT * FROM (t JOIN u ON host(t.a) = u.b)")
                .contains("a parenthesised join that calls a user function")
        );
        assert!(
            refused(
                "WITH c AS (SELECT host(a) AS h FROM t) SELECT * FROM (WITH c AS (SELECT 1 AS h) SELECT h FROM c) AS d"
            )
            .contains("has the name of an outer CTE")
        );
    }
}
