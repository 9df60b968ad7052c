//! Rules `decimal_literals` and `decimal_products`: decimal arithmetic gives the exact answer
//! the SQL standard (and DuckDB, Postgres, Spark) gives.
//!
//! - `decimal_literals`: a number written with a point, `0.06`, is an exact `DECIMAL(2, 2)`,
//!   not a float. Polars 0.55.2 reads it as `f64`, and compares a decimal column with a float
//!   by casting the float to the column's scale, truncating: `l_discount <= 0.06 + 0.01`
//!   (0.06999…) became `<= 0.06`, and TPC-H Q6 lost a third of its rows. A number with an
//!   exponent (`1e-3`) stays a float.
//! - `decimal_products`: `a * b` of two decimals keeps every digit: the result's scale is the sum
//!   of the operands' (`DECIMAL(15,2) * DECIMAL(15,2)` has 4 digits after the point). Polars
//!   0.55.2 rounds a product to the larger of the two scales (2), so every `SUM(price * (1 -
//!   discount))` of TPC-H was off in its last digits. Both operands are cast to `DECIMAL(38, s1 +
//!   s2)` first; Polars then multiplies at that scale, which holds the product exactly.

use std::ops::ControlFlow;

use sqlparser::ast::{BinaryOperator, Expr, Query, Value, VisitMut, VisitorMut};

use crate::SqlError;
use crate::expr::parse_expr;
use crate::scope::Scope;
use crate::types::{ColumnType, decimal_digits};

/// Rewrites `e` if it is a number literal with a point; true when it did.
pub(crate) fn literal(e: &mut Expr) -> bool {
    let Expr::Value(v) = e else { return false };
    let Value::Number(n, _) = &v.value else { return false };
    if !n.contains('.') || n.contains(['e', 'E']) {
        return false;
    }
    let (precision, scale) = decimal_digits(n);
    let text = format!("CAST('{n}' AS DECIMAL({}, {scale}))", precision.max(scale));
    match parse_expr(&text) {
        Ok(cast) => {
            *e = cast;
            true
        }
        Err(_) => false,
    }
}

/// The widest scale a product is given: 38 digits in all, of which at least 10 before the point.
const MAX_SCALE: u8 = 28;

/// Rewrites the products of decimals in `e` (outside its subqueries), bottom up, with `scope`
/// telling the columns' types; true when it changed something.
pub(crate) fn products(e: &mut Expr, scope: &Scope<'_>) -> Result<bool, SqlError> {
    struct Products<'s, 'a> {
        scope: &'s Scope<'a>,
        depth: usize,
        changed: bool,
        error: Option<SqlError>,
    }
    impl VisitorMut for Products<'_, '_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if self.depth > 0 {
                return ControlFlow::Continue(());
            }
            let Expr::BinaryOp { left, op: BinaryOperator::Multiply, right } = e else {
                return ControlFlow::Continue(());
            };
            let (ColumnType::Decimal { scale: a }, ColumnType::Decimal { scale: b }) =
                (self.scope.infer(left), self.scope.infer(right))
            else {
                return ControlFlow::Continue(());
            };
            let scale = a.saturating_add(b);
            if a == 0 || b == 0 || already_at(left, scale) && already_at(right, scale) {
                return ControlFlow::Continue(());
            }
            if scale > MAX_SCALE {
                self.error = Some(SqlError::unsupported(
                    &*e,
                    format!(
                        "this product of decimals needs {scale} digits after the point, more than the {MAX_SCALE} kept; cast an operand to DOUBLE or a smaller scale"
                    ),
                ));
                return ControlFlow::Break(());
            }
            match parse_expr(&format!("CAST({left} AS DECIMAL(38, {scale})) * CAST({right} AS DECIMAL(38, {scale}))")) {
                Ok(product) => {
                    *e = product;
                    self.changed = true;
                }
                Err(err) => {
                    self.error = Some(err);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = Products { scope, depth: 0, changed: false, error: None };
    let _ = e.visit(&mut v);
    match v.error {
        Some(err) => Err(err),
        None => Ok(v.changed),
    }
}

/// True when `e` is already `CAST(… AS DECIMAL(38, scale))`.
fn already_at(e: &Expr, scale: u8) -> bool {
    matches!(e, Expr::Cast { data_type, .. } if data_type.to_string() == format!("DECIMAL(38,{scale})"))
}

#[cfg(test)]
mod tests {
    use crate::Catalog;
    use crate::prepare;
    use crate::types::ColumnType::{Decimal, Float, Int};

    fn catalog() -> Catalog {
        Catalog::new().with_typed_table(
            "l",
            [("price", Decimal { scale: 2 }), ("disc", Decimal { scale: 2 }), ("qty", Int), ("rate", Float)],
        )
    }

    fn rewritten(sql: &str) -> String {
        prepare(sql, &catalog()).unwrap().sql
    }

    #[test]
    fn literals_with_a_point_are_exact() {
        assert_eq!(
            rewritten("SELECT * FROM l WHERE disc BETWEEN 0.06 - 0.01 AND 0.06 + 0.01 AND qty < 24 AND rate > 1e-3"),
            "SELECT * FROM l WHERE disc BETWEEN CAST('0.06' AS DECIMAL(2,2)) - CAST('0.01' AS DECIMAL(2,2)) \
             AND CAST('0.06' AS DECIMAL(2,2)) + CAST('0.01' AS DECIMAL(2,2)) AND qty < 24 AND rate > 1e-3"
        );
    }

    #[test]
    fn literals_inside_functions_of_floats_stay_floats() {
        // Polars' trigonometry, roots and logarithms refuse decimals.
        assert_eq!(
            rewritten("SELECT COS(RADIANS(52.52)) * x, SQRT(x - 0.5) AS r, ROUND(x, 2) + 0.06 AS y FROM t"),
            "SELECT COS(RADIANS(52.52)) * x, SQRT(x - 0.5) AS r, ROUND(x, 2) + CAST('0.06' AS DECIMAL(2,2)) AS y FROM t"
        );
    }

    #[test]
    fn products_of_decimals_keep_every_digit() {
        assert_eq!(
            rewritten("SELECT sum(price * (1 - disc) * (1 + disc)) AS s, price * qty AS t, price * rate AS u FROM l"),
            "SELECT sum(CAST(CAST(price AS DECIMAL(38,4)) * CAST((1 - disc) AS DECIMAL(38,4)) AS DECIMAL(38,6)) \
             * CAST((1 + disc) AS DECIMAL(38,6))) AS s, price * qty AS t, price * rate AS u FROM l"
        );
    }

    #[test]
    fn a_product_past_the_widest_scale_is_refused() {
        let catalog =
            Catalog::new().with_typed_table("w", [("a", Decimal { scale: 20 }), ("b", Decimal { scale: 10 })]);
        let e = prepare("SELECT a * b FROM w", &catalog).unwrap_err().to_string();
        assert_eq!(
            e,
            "line 1, column 8: `a * b`: this product of decimals needs 30 digits after the point, more than the 28 kept; \
             cast an operand to DOUBLE or a smaller scale"
        );
    }

    #[test]
    fn products_through_derived_tables_and_literals() {
        assert_eq!(
            rewritten("SELECT 100.00 * v FROM (SELECT price * disc AS v FROM l) AS d"),
            "SELECT CAST(CAST('100.00' AS DECIMAL(5,2)) AS DECIMAL(38,6)) * CAST(v AS DECIMAL(38,6)) \
             FROM (SELECT CAST(price AS DECIMAL(38,4)) * CAST(disc AS DECIMAL(38,4)) AS v FROM l) AS d"
        );
    }
}
