//! The functions a query calls, and whether each exists: one of Polars SQL's own, or one the
//! binary brings (a user function). A job that calls a function neither has is refused before
//! any data is read, naming it and listing what the binary has.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Function, Query, Visit, Visitor};

use crate::SqlError;

/// Names sqlparser reads as syntax of their own (`TRIM(BOTH …)`, `SUBSTRING(… FROM …)`, …), not
/// as function calls: a function of the binary's can't take one, since SQL would never call it.
pub const SYNTAX_NAMES: &[&str] =
    &["cast", "ceil", "convert", "extract", "floor", "overlay", "position", "substring", "trim", "try_cast"];

/// Every function name Polars SQL 0.55.2 plans, lower-cased (read from `polars-sql`'s
/// `PolarsSQLFunctions::try_from_sql`; Polars lower-cases names before looking them up). The
/// engine's tests ask Polars about each, so a name Polars would refuse can't stay in the list.
pub const POLARS_FUNCTIONS: &[&str] = &[
    "abs",
    "acos",
    "acosd",
    "array_agg",
    "array_contains",
    "array_get",
    "array_length",
    "array_lower",
    "array_mean",
    "array_reverse",
    "array_sum",
    "array_to_string",
    "array_unique",
    "array_upper",
    "asin",
    "asind",
    "atan",
    "atan2",
    "atan2d",
    "atand",
    "avg",
    "bit_and",
    "bit_length",
    "bit_not",
    "bit_or",
    "bit_xor",
    "bitand",
    "bitnot",
    "bitor",
    "bitxor",
    "cbrt",
    "ceil",
    "ceiling",
    "char_length",
    "character_length",
    "coalesce",
    "columns",
    "concat",
    "concat_ws",
    "corr",
    "cos",
    "cosd",
    "cot",
    "cotd",
    "count",
    "covar",
    "covar_pop",
    "covar_samp",
    "date",
    "date_part",
    "datetime",
    "degrees",
    "div",
    "ends_with",
    "exp",
    "first",
    "first_value",
    "floor",
    "greatest",
    "group_concat",
    "if",
    "ifnull",
    "lag",
    "last",
    "last_value",
    "lead",
    "least",
    "left",
    "length",
    "listagg",
    "ln",
    "log",
    "log10",
    "log1p",
    "log2",
    "lower",
    "lpad",
    "ltrim",
    "max",
    "median",
    "min",
    "mod",
    "normalize",
    "nullif",
    "octet_length",
    "pi",
    "pow",
    "power",
    "quantile_cont",
    "quantile_disc",
    "radians",
    "regexp_like",
    "replace",
    "reverse",
    "right",
    "round",
    "row_number",
    "rpad",
    "rtrim",
    "sign",
    "sin",
    "sind",
    "split_part",
    "sqrt",
    "starts_with",
    "stddev",
    "stddev_samp",
    "stdev",
    "stdev_samp",
    "strftime",
    "string_agg",
    "string_to_array",
    "strpos",
    "strptime",
    "substr",
    "sum",
    "tan",
    "tand",
    "time",
    "timestamp",
    "total",
    "trunc",
    "truncate",
    "unnest",
    "upper",
    "var",
    "var_samp",
    "variance",
    "xor",
];

/// The name a call looks its function up by, lower-cased (as Polars does); a qualified name is
/// refused by [`check_known`].
pub(crate) fn name_of(f: &Function) -> String {
    f.name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_lowercase()).unwrap_or_default()
}

/// Every function `query` calls, by [`name_of`], in every part of it.
pub(crate) fn called(query: &Query) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let _ = sqlparser::ast::visit_expressions(query, |e| {
        if let Expr::Function(f) = e {
            names.insert(name_of(f));
        }
        ControlFlow::<()>::Continue(())
    });
    names
}

/// True when `node` calls one of `functions` anywhere.
pub(crate) fn calls_any<V: Visit>(node: &V, functions: &BTreeSet<String>) -> bool {
    struct Finds<'f>(&'f BTreeSet<String>);
    impl Visitor for Finds<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Function(f) if self.0.contains(&name_of(f)) => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    !functions.is_empty() && node.visit(&mut Finds(functions)).is_break()
}

/// Refuses the first call of a function that is neither Polars SQL's nor in `user`.
pub(crate) fn check_known(query: &Query, user: &BTreeSet<String>) -> Result<(), SqlError> {
    let mut unknown = None;
    let _ = sqlparser::ast::visit_expressions(query, |e| {
        if let Expr::Function(f) = e {
            let name = name_of(f);
            let refusal = if f.name.0.len() > 1 {
                Some(
                    "a function name with a qualifier is not supported (Polars looks up its first part); \
                      write the function's name alone"
                        .to_string(),
                )
            } else if user.contains(&name) && f.over.is_some() {
                Some(format!("{name} is one of the binary's functions, which can't be window functions (OVER)"))
            } else if user.contains(&name) && f.filter.is_some() {
                Some(format!(
                    "{name} is one of the binary's functions, which take no FILTER (Polars would ignore it); \
                     filter in WHERE, or with CASE WHEN inside the call"
                ))
            } else {
                None
            };
            if let Some(why) = refusal {
                unknown = Some(SqlError::unsupported(f, why));
                return ControlFlow::Break(());
            }
            if !POLARS_FUNCTIONS.contains(&name.as_str()) && !user.contains(&name) {
                unknown = Some(SqlError::unsupported(
                    f,
                    format!(
                        "no function {name:?}: Polars SQL has none of that name, and {}",
                        match user.is_empty() {
                            true => "this binary brings no functions of its own (it is the plain runner; \
                                     a binary built with runner::Extensions brings them)"
                                .to_string(),
                            false => format!(
                                "this binary's own functions are {}",
                                user.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
                            ),
                        }
                    ),
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
    use crate::expr::parse_query;

    fn user(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn every_call_is_found_in_every_part_of_a_query() {
        let q = parse_query(
            "WITH c AS (SELECT UA_Family(a) AS f FROM t) SELECT upper(f) FROM c \
             WHERE f IN (SELECT host(b) FROM u) UNION ALL SELECT dist(x, y) FROM (SELECT * FROM t) AS d",
        )
        .unwrap();
        assert_eq!(called(&q), user(&["dist", "host", "ua_family", "upper"]));
        assert!(calls_any(&q, &user(&["host"])));
        assert!(!calls_any(&q, &user(&["lower"])));
        assert!(!calls_any(&q, &user(&[])));
    }

    #[test]
    fn a_function_neither_polars_nor_the_binary_has_is_refused_by_name() {
        let q = parse_query("SELECT lower(a), ua_family(a) FROM t").unwrap();
        let plain = check_known(&q, &user(&[])).unwrap_err().to_string();
        assert_eq!(
            plain,
            "line 1, column 18: `ua_family(a)`: no function \"ua_family\": Polars SQL has none of that name, \
             and this binary brings no functions of its own (it is the plain runner; a binary built with \
             runner::Extensions brings them)"
        );
        let other = check_known(&q, &user(&["host", "dist"])).unwrap_err().to_string();
        assert!(other.ends_with("this binary's own functions are dist, host"), "{other}");
        check_known(&q, &user(&["ua_family"])).unwrap();
        let window = parse_query("SELECT ua_family(a) OVER (PARTITION BY b) FROM t").unwrap();
        assert!(
            check_known(&window, &user(&["ua_family"]))
                .unwrap_err()
                .to_string()
                .ends_with("can't be window functions (OVER)")
        );
    }

    #[test]
    fn the_list_is_sorted_and_lower_case() {
        let mut sorted = POLARS_FUNCTIONS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, POLARS_FUNCTIONS);
        assert!(POLARS_FUNCTIONS.iter().all(|n| *n == n.to_lowercase()));
    }
}
