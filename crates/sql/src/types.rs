//! The numeric type of an expression, as far as the decimal rules need it: whether it is an
//! integer, a float or a decimal of some scale, following Polars 0.55.2's rules once the other
//! rewrites are done (decimal literals, float division, scale-keeping products).

use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, ExactNumberInfo, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    UnaryOperator, Value,
};

use crate::expr::{ColRef, as_column};

/// A column's or expression's type, as the front end tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Any integer type.
    Int,
    /// `f32` or `f64`.
    Float,
    /// A decimal with this many digits after the point.
    Decimal {
        /// Digits after the point.
        scale: u8,
    },
    /// Anything else, or not known.
    Other,
}

use ColumnType::{Decimal, Float, Int, Other};

/// The type of `e`, with `column` telling the columns' types.
pub(crate) fn infer(e: &Expr, column: &dyn Fn(&ColRef) -> ColumnType) -> ColumnType {
    let infer = |e: &Expr| infer(e, column);
    match e {
        Expr::Nested(inner) => infer(inner),
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => as_column(e).map_or(Other, |c| column(&c)),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) if n.contains(['e', 'E']) => Float,
            Value::Number(n, _) if n.contains('.') => Decimal { scale: decimal_digits(n).1 },
            Value::Number(..) => Int,
            _ => Other,
        },
        Expr::Cast { kind: CastKind::Cast | CastKind::DoubleColon, data_type, .. } => of_data_type(data_type),
        Expr::UnaryOp { op: UnaryOperator::Minus | UnaryOperator::Plus, expr } => infer(expr),
        Expr::BinaryOp { left, op, right } => {
            let (l, r) = (infer(left), infer(right));
            match op {
                BinaryOperator::Plus | BinaryOperator::Minus => widen(l, r),
                BinaryOperator::Multiply => match (l, r) {
                    // Operands already cast to one scale by `decimal_products`: Polars keeps it.
                    (Decimal { scale: a }, Decimal { scale: b }) if a == b && is_cast(left) && is_cast(right) => l,
                    (Decimal { scale: a }, Decimal { scale: b }) => Decimal { scale: a.saturating_add(b) },
                    _ => widen(l, r),
                },
                BinaryOperator::Divide => Float,
                _ => Other,
            }
        }
        Expr::Case { conditions, else_result, .. } => conditions
            .iter()
            .map(|c| infer(&c.result))
            .chain(else_result.iter().map(|e| infer(e)))
            .reduce(widen)
            .unwrap_or(Other),
        Expr::Function(f) if f.over.is_none() => {
            let name = f.name.to_string().to_lowercase();
            let first = match &f.args {
                FunctionArguments::List(list) => list.args.first().and_then(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(infer(e)),
                    _ => None,
                }),
                _ => None,
            };
            match (name.as_str(), first) {
                ("sum" | "min" | "max" | "abs" | "first" | "last", Some(t)) => t,
                ("count", _) => Int,
                ("avg" | "mean" | "stddev" | "variance", _) => Float,
                ("coalesce", Some(t)) => t,
                _ => Other,
            }
        }
        _ => Other,
    }
}

fn is_cast(e: &Expr) -> bool {
    matches!(e, Expr::Cast { .. })
}

/// The type of an arithmetic result of two operands, other than a product of decimals.
fn widen(l: ColumnType, r: ColumnType) -> ColumnType {
    match (l, r) {
        (Float, Int | Float | Decimal { .. }) | (Int | Decimal { .. }, Float) => Float,
        (Decimal { scale: a }, Decimal { scale: b }) => Decimal { scale: a.max(b) },
        (Decimal { scale }, Int) | (Int, Decimal { scale }) => Decimal { scale },
        (Int, Int) => Int,
        _ => Other,
    }
}

fn of_data_type(t: &DataType) -> ColumnType {
    match t {
        DataType::Decimal(info) | DataType::Numeric(info) | DataType::Dec(info) => match info {
            ExactNumberInfo::PrecisionAndScale(_, s) => Decimal { scale: u8::try_from(*s).unwrap_or(u8::MAX) },
            _ => Decimal { scale: 0 },
        },
        DataType::Double(_)
        | DataType::DoublePrecision
        | DataType::Float(_)
        | DataType::Real
        | DataType::Float4
        | DataType::Float8
        | DataType::Float32
        | DataType::Float64 => Float,
        DataType::Int(_)
        | DataType::Integer(_)
        | DataType::BigInt(_)
        | DataType::SmallInt(_)
        | DataType::TinyInt(_)
        | DataType::Int2(_)
        | DataType::Int4(_)
        | DataType::Int8(_)
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64 => Int,
        _ => Other,
    }
}

/// The digits of a decimal literal: (all, after the point).
pub(crate) fn decimal_digits(literal: &str) -> (u8, u8) {
    let digits = |s: &str| u8::try_from(s.chars().filter(char::is_ascii_digit).count()).unwrap_or(u8::MAX);
    let (whole, fraction) = literal.split_once('.').unwrap_or((literal, ""));
    let whole = whole.trim_start_matches(['+', '-']).trim_start_matches('0');
    (digits(whole).saturating_add(digits(fraction)).max(1), digits(fraction))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalog;
    use crate::expr::{parse_expr, parse_select};
    use crate::scope::Scope;

    #[test]
    fn infers_what_the_decimal_rules_need() {
        let catalog = Catalog::new()
            .with_typed_table("l", [("price", Decimal { scale: 2 }), ("qty", Int), ("rate", Float), ("name", Other)]);
        let select = parse_select("SELECT * FROM l").unwrap();
        let scope = Scope::of(&select, &catalog, None);
        let t = |e: &str| infer(&parse_expr(e).unwrap(), &|c| scope.column_type(c));
        assert_eq!(t("price * (1 - price)"), Decimal { scale: 4 });
        assert_eq!(t("price * qty"), Decimal { scale: 2 });
        assert_eq!(t("sum(price * 0.001)"), Decimal { scale: 5 });
        assert_eq!(t("price * rate"), Float);
        assert_eq!(t("price / 7"), Float);
        assert_eq!(t("avg(price)"), Float);
        assert_eq!(t("CASE WHEN name = 'x' THEN price ELSE 0 END"), Decimal { scale: 2 });
        assert_eq!(t("CAST(qty AS DECIMAL(38, 6))"), Decimal { scale: 6 });
        assert_eq!(t("1e3 * price"), Float);
        assert_eq!(t("name"), Other);
        assert_eq!(decimal_digits("0.0001"), (4, 4));
        assert_eq!(decimal_digits("100.00"), (5, 2));
        assert_eq!(decimal_digits("-12.5"), (3, 1));
    }
}
