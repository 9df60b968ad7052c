//! Rule `float_division`: `a / b` divides as `DOUBLE`, as DuckDB and Spark do.
//!
//! Polars 0.55.2 divides two decimals at the inputs' scale: `decimal(15,2) / decimal(15,2)`
//! gave `0.03` where the answer is `0.03476` (TPC-H Q8), a wrong number with no error. Polars'
//! `/` is already true division on integers (the result is a float), so casting both sides to
//! `DOUBLE` changes only decimals (which get DuckDB's result type, `DOUBLE`) and `REAL`s (which
//! widen). `a // b` (integer division) is left alone.

use sqlparser::ast::{BinaryOperator, CastKind, DataType, Expr};

/// Rewrites `e` if it is a division not yet rewritten; true when it did.
pub(crate) fn rewrite(e: &mut Expr) -> bool {
    let Expr::BinaryOp { left, op: BinaryOperator::Divide, right } = e else { return false };
    if is_double(left) && is_double(right) {
        return false;
    }
    for side in [left, right] {
        if !is_double(side) {
            let inner = std::mem::replace(side.as_mut(), Expr::value(sqlparser::ast::Value::Null));
            **side = Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(inner),
                data_type: DataType::Double(sqlparser::ast::ExactNumberInfo::None),
                array: false,
                format: None,
            };
        }
    }
    true
}

fn is_double(e: &Expr) -> bool {
    matches!(e, Expr::Cast { kind: CastKind::Cast, data_type: DataType::Double(_), .. })
}

#[cfg(test)]
mod tests {
    use crate::rules::tests::rewritten;

    #[test]
    fn before_and_after() {
        assert_eq!(
            rewritten("SELECT sum(a) / sum(b), 100 * x / y FROM t"),
            "SELECT CAST(sum(a) AS DOUBLE) / CAST(sum(b) AS DOUBLE), CAST(100 * x AS DOUBLE) / CAST(y AS DOUBLE) FROM t"
        );
    }

    #[test]
    fn is_idempotent_and_leaves_integer_division() {
        let once = rewritten("SELECT a / b, a // b FROM t");
        assert_eq!(once, "SELECT CAST(a AS DOUBLE) / CAST(b AS DOUBLE), a // b FROM t");
        assert_eq!(rewritten(&once), once);
    }
}
