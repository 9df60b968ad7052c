//! Rule `or_table_filters`: from an `OR` whose every branch has conditions on one table alone,
//! that table's filter is derived and added: `(p.a = 1 AND l.b = 2) OR (p.a = 3 AND l.b = 4)`
//! also gives `(p.a = 1 OR p.a = 3)` and `(l.b = 2 OR l.b = 4)`. The `OR` stays; the added
//! filters are implied by it, so the answer is the same, and Polars can apply them to each table
//! before the join instead of the whole `OR` after it (TPC-H Q7's nation pairs, Q19's three
//! branches of part and lineitem conditions).

use sqlparser::ast::{Expr, Select};

use super::Rewriter;
use crate::expr::{and_all, columns, conjuncts, disjuncts, has_subquery, or_all, strip};
use crate::scope::{Catalog, Scope};

pub(crate) fn apply(select: &mut Select, catalog: &Catalog, outer: Option<&Scope<'_>>, rw: &mut Rewriter) {
    let scope = Scope::of(select, catalog, outer);
    if scope.relations.len() < 2 {
        return;
    }
    let Some(selection) = &select.selection else { return };
    let mut terms = conjuncts(selection.clone());
    let mut added = Vec::new();
    for term in &terms.clone() {
        let branches: Vec<Vec<Expr>> = disjuncts(term).into_iter().map(|d| conjuncts(d.clone())).collect();
        if branches.len() < 2 {
            continue;
        }
        // Not the relations the rules attach (`__s…`): one row, or keys already reduced.
        for r in (0..scope.relations.len()).filter(|&r| !scope.relations[r].binding.starts_with("__s")) {
            let on_r = |t: &&Expr| !has_subquery(t) && scope.locals(&columns(t)).as_deref() == Some(&[r][..]);
            let parts: Option<Vec<Expr>> =
                branches.iter().map(|b| and_all(b.iter().filter(on_r).cloned().collect())).collect();
            if let Some(filter) = parts.and_then(or_all) {
                // Already there (written so, or derived before): nothing to add.
                let text = filter.to_string();
                if !terms.iter().chain(&added).any(|t| strip(t).to_string() == text) {
                    added.push(filter);
                }
            }
        }
    }
    if added.is_empty() {
        return;
    }
    rw.applied.insert("or_table_filters");
    terms.extend(added);
    select.selection = and_all(terms);
}

#[cfg(test)]
mod tests {
    use crate::rules::tests::rewritten;

    #[test]
    fn before_and_after() {
        assert_eq!(
            rewritten(
                "SELECT 1 FROM nation n1 JOIN nation n2 ON n1.n_regionkey = n2.n_regionkey \
                 WHERE (n1.n_name = 'FRANCE' AND n2.n_name = 'GERMANY') OR (n1.n_name = 'GERMANY' AND n2.n_name = 'FRANCE')"
            ),
            "SELECT 1 FROM nation n1 JOIN nation n2 ON n1.n_regionkey = n2.n_regionkey \
             WHERE ((n1.n_name = 'FRANCE' AND n2.n_name = 'GERMANY') OR (n1.n_name = 'GERMANY' AND n2.n_name = 'FRANCE')) \
             AND ((n1.n_name = 'FRANCE') OR (n1.n_name = 'GERMANY')) AND ((n2.n_name = 'GERMANY') OR (n2.n_name = 'FRANCE'))"
        );
    }

    #[test]
    fn a_branch_without_a_condition_on_the_table_derives_nothing() {
        let sql = "SELECT 1 FROM part, lineitem WHERE p_partkey = l_partkey AND (p_size = 1 OR l_quantity = 2)";
        assert!(!rewritten(sql).contains("(p_size = 1) OR"), "{}", rewritten(sql));
        assert_eq!(
            rewritten("SELECT 1 FROM part WHERE p_size = 1 OR p_size = 2"),
            "SELECT 1 FROM part WHERE p_size = 1 OR p_size = 2",
            "one table: nothing to push below a join"
        );
    }
}
