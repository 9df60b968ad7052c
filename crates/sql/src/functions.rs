//! The functions a query calls, by name (what a step's code version depends on beyond its text),
//! and the names a function of the binary's can't take.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Function, Statement};

use crate::SqlError;

/// Names sqlparser reads as syntax of their own (`TRIM(BOTH …)`, `SUBSTRING(… FROM …)`, …), not
/// as function calls: a function of the binary's can't take one, since SQL would never call it.
pub const SYNTAX_NAMES: &[&str] =
    &["cast", "ceil", "convert", "extract", "floor", "overlay", "position", "substring", "trim", "try_cast"];

/// A call's function name, lower-cased (SQL finds functions without regard to case).
fn name_of(f: &Function) -> String {
    f.name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_lowercase()).unwrap_or_default()
}

/// Every function `statement` calls, in every part of it.
pub(crate) fn called(statement: &Statement) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let _ = sqlparser::ast::visit_expressions(statement, |e| {
        if let Expr::Function(f) = e {
            names.insert(name_of(f));
        }
        ControlFlow::<()>::Continue(())
    });
    names
}

/// Refuses the first call of a function that is neither SQL's (the planner's) nor in `user`
/// (the binary's own), naming it, where it stands, and what the binary has.
pub(crate) fn check_known(statement: &Statement, user: &BTreeSet<String>) -> Result<(), SqlError> {
    let mut unknown = None;
    let _ = sqlparser::ast::visit_expressions(statement, |e| {
        if let Expr::Function(f) = e {
            let name = name_of(f);
            if !crate::is_builtin(&name) && !user.contains(&name) {
                let theirs = if user.is_empty() {
                    "this binary brings no functions of its own (it is the plain runner; a binary built with \
                     runner::Extensions brings them)"
                        .to_string()
                } else {
                    format!("this binary's own functions are {}", user.iter().cloned().collect::<Vec<_>>().join(", "))
                };
                unknown = Some(SqlError::unsupported(
                    e,
                    format!("no function {name:?}: SQL has none of that name, and {theirs}"),
                ));
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    unknown.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_is_found_in_every_part_of_a_query() {
        let q = crate::parse(
            "WITH c AS (SELECT UA_Family(a) AS f FROM t) SELECT upper(f) FROM c \
             WHERE f IN (SELECT host(b) FROM u) UNION ALL SELECT dist(x, y) FROM (SELECT * FROM t) AS d",
        )
        .unwrap();
        let names: Vec<String> = called(&q).into_iter().collect();
        assert_eq!(names, ["dist", "host", "ua_family", "upper"]);
    }

    #[test]
    fn a_function_neither_sql_nor_the_binary_has_is_refused_by_name() {
        let q = crate::parse("SELECT lower(a), ua_family(a) FROM t").unwrap();
        let user = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            check_known(&q, &user(&[])).unwrap_err().to_string(),
            "line 1, column 18: `ua_family(a)`: no function \"ua_family\": SQL has none of that name, and this \
             binary brings no functions of its own (it is the plain runner; a binary built with runner::Extensions \
             brings them)"
        );
        let other = check_known(&q, &user(&["host", "dist"])).unwrap_err().to_string();
        assert!(other.ends_with("this binary's own functions are dist, host"), "{other}");
        check_known(&q, &user(&["ua_family"])).unwrap();
    }
}
