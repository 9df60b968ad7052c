//! Rule `common_or_factors`: a term every branch of an `OR` shares is taken out of it,
//! `(A AND X) OR (A AND Y)` → `A AND (X OR Y)`. TPC-H Q19 writes its join condition
//! `p_partkey = l_partkey` in each of three branches; taken out, it is a join condition that
//! `comma_joins` can see, instead of a filter over a cross product.

use sqlparser::ast::{Expr, Select};

use super::Rewriter;
use crate::expr::{and_all, conjuncts, disjuncts, or_all};

pub(crate) fn apply(select: &mut Select, rw: &mut Rewriter) {
    let Some(selection) = select.selection.take() else { return };
    let mut out = Vec::new();
    let mut changed = false;
    for term in conjuncts(selection.clone()) {
        let branches: Vec<Vec<Expr>> = disjuncts(&term).into_iter().map(|d| conjuncts(d.clone())).collect();
        if branches.len() < 2 {
            out.push(term);
            continue;
        }
        let text = |e: &Expr| e.to_string();
        let common: Vec<Expr> = branches[0]
            .iter()
            .filter(|t| branches[1..].iter().all(|b| b.iter().any(|u| text(u) == text(t))))
            .cloned()
            .collect();
        if common.is_empty() {
            out.push(term);
            continue;
        }
        changed = true;
        let is_common = |t: &Expr| common.iter().any(|c| text(c) == text(t));
        let rests: Vec<Option<Expr>> =
            branches.into_iter().map(|b| and_all(b.into_iter().filter(|t| !is_common(t)).collect())).collect();
        out.extend(common.iter().cloned());
        // A branch that was all common terms is implied by them: the OR is true.
        if rests.iter().all(Option::is_some) {
            let or = or_all(rests.into_iter().flatten());
            out.extend(or);
        }
    }
    if changed {
        rw.applied.insert("common_or_factors");
        select.selection = and_all(out);
    } else {
        select.selection = Some(selection);
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::tests::rewritten;

    #[test]
    fn before_and_after() {
        assert_eq!(
            rewritten("SELECT * FROM t WHERE (a = 1 AND b = 2) OR (b = 2 AND a = 3) OR (x = 5 AND b = 2)"),
            "SELECT * FROM t WHERE b = 2 AND ((a = 1) OR (a = 3) OR (x = 5))"
        );
    }

    #[test]
    fn a_branch_of_common_terms_only_drops_the_or() {
        assert_eq!(rewritten("SELECT * FROM t WHERE (a = 1) OR (a = 1 AND b = 2)"), "SELECT * FROM t WHERE a = 1");
        assert_eq!(rewritten("SELECT * FROM t WHERE a = 1 OR b = 2"), "SELECT * FROM t WHERE a = 1 OR b = 2");
    }
}
