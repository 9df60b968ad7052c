//! Rule `standard_intervals`: the SQL standard's interval spelling, `INTERVAL '3' MONTH`, becomes
//! the one Polars SQL 0.55.2 reads, `INTERVAL '3 month'`. The amount and unit are unchanged.

use sqlparser::ast::{DateTimeField, Expr, Interval, Value};

/// Rewrites `e` if it is a standard-spelt interval; true when it did.
pub(crate) fn rewrite(e: &mut Expr) -> bool {
    let Expr::Interval(Interval { value, leading_field: Some(field), last_field: None, .. }) = e else {
        return false;
    };
    let Expr::Value(v) = value.as_ref() else { return false };
    let Value::SingleQuotedString(amount) = &v.value else { return false };
    let unit = match field {
        DateTimeField::Year | DateTimeField::Years => "year",
        DateTimeField::Month | DateTimeField::Months => "month",
        DateTimeField::Week(None) | DateTimeField::Weeks => "week",
        DateTimeField::Day | DateTimeField::Days => "day",
        DateTimeField::Hour | DateTimeField::Hours => "hour",
        DateTimeField::Minute | DateTimeField::Minutes => "minute",
        DateTimeField::Second | DateTimeField::Seconds => "second",
        _ => return false,
    };
    let text = format!("{} {unit}", amount.trim());
    *e = Expr::Interval(Interval {
        value: Box::new(Expr::value(Value::SingleQuotedString(text))),
        leading_field: None,
        leading_precision: None,
        last_field: None,
        fractional_seconds_precision: None,
    });
    true
}

#[cfg(test)]
mod tests {
    use crate::rules::tests::rewritten;

    #[test]
    fn before_and_after() {
        assert_eq!(
            rewritten("SELECT d + INTERVAL '3' MONTH, d - INTERVAL '1' YEAR, d + interval '90' day FROM t"),
            "SELECT d + INTERVAL '3 month', d - INTERVAL '1 year', d + INTERVAL '90 day' FROM t"
        );
    }

    #[test]
    fn drops_the_leading_precision() {
        assert_eq!(rewritten("SELECT d - INTERVAL '90' DAY (3) FROM t"), "SELECT d - INTERVAL '90 day' FROM t");
    }

    #[test]
    fn leaves_polars_spellings_alone() {
        assert_eq!(rewritten("SELECT d + INTERVAL '3 month' FROM t"), "SELECT d + INTERVAL '3 month' FROM t");
    }
}
