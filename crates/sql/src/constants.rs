//! Constants the planner and the lowering compute alike: the value of an expression that is a
//! literal or an exact cast of one, and a date moved by a calendar interval. One definition, so
//! that what the planner folds is exactly what the lowering would have computed.

use arrow_schema::DataType as A;
use datafusion_common::ScalarValue;
use datafusion_expr::Expr;

/// The value of `e` when it is a constant: a literal, or a cast of one that the planner's own
/// cast computes exactly as the lowering would (text to a date or a timestamp, an integer to a
/// wider integer or a decimal, a decimal to a finer scale). Other casts round or fail in ways
/// of their own, and are left to the lowering.
pub fn constant(e: &Expr) -> Option<ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Alias(a) => constant(&a.expr),
        Expr::Cast(c) => {
            let v = constant(&c.expr)?;
            let to = c.field.data_type();
            let exact = match (&v.data_type(), to) {
                (from, to) if from == to => true,
                (A::Utf8 | A::LargeUtf8 | A::Utf8View, A::Date32) => true,
                (A::Utf8 | A::LargeUtf8 | A::Utf8View, A::Timestamp(_, None)) => true,
                (f, A::Int32 | A::Int64) if f.is_integer() => true,
                (f, A::Decimal128(..)) if f.is_integer() => true,
                (A::Decimal128(_, fs), A::Decimal128(_, ts)) => ts >= fs,
                _ => false,
            };
            // A value that doesn't fit fails here as it would there: leave it to the lowering,
            // which fails the item naming it.
            if exact { v.cast_to(to).ok().filter(|x| !x.is_null() || v.is_null()) } else { None }
        }
        _ => None,
    }
}

/// The date `day` (days since 1970-01-01) moved by `months` on the calendar (clamped to the
/// month's end, as SQL does), then by `days`; `None` past chrono's range.
pub fn moved_date(day: i32, months: i32, days: i32) -> Option<i32> {
    use chrono::{Days, Months, NaiveDate};
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let date = epoch.checked_add_signed(chrono::TimeDelta::days(i64::from(day)))?;
    let date = if months >= 0 {
        date.checked_add_months(Months::new(months.unsigned_abs()))?
    } else {
        date.checked_sub_months(Months::new(months.unsigned_abs()))?
    };
    let date = if days >= 0 {
        date.checked_add_days(Days::new(u64::from(days.unsigned_abs())))?
    } else {
        date.checked_sub_days(Days::new(u64::from(days.unsigned_abs())))?
    };
    i32::try_from(date.signed_duration_since(epoch).num_days()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_expr::{cast, lit};

    #[test]
    fn a_month_moves_on_the_calendar_and_clamps_to_the_months_end() {
        // 2024-01-31 is day 19753; a month on is 2024-02-29 (a leap year), 29 days later.
        assert_eq!(moved_date(19753, 1, 0), Some(19753 + 29));
        assert_eq!(moved_date(19753, 0, -31), Some(19753 - 31));
        assert_eq!(moved_date(19753, -1, 1), Some(19753 - 31 + 1));
    }

    #[test]
    fn exact_casts_are_constants_and_rounding_ones_are_not() {
        assert_eq!(constant(&cast(lit("1995-09-01"), A::Date32)), Some(ScalarValue::Date32(Some(9374))));
        assert_eq!(constant(&cast(lit(1i32), A::Decimal128(10, 0))), Some(ScalarValue::Decimal128(Some(1), 10, 0)));
        assert_eq!(constant(&cast(lit(2.5f64), A::Int32)), None);
        assert_eq!(constant(&cast(lit("not a date"), A::Date32)), None);
    }
}
