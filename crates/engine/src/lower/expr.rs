//! Scalar expressions: columns, literals, operators, `CASE`, casts, `IN` lists, `LIKE`, and the
//! three-valued `IS [NOT] TRUE/FALSE/UNKNOWN`, each with SQL's semantics where Polars' differ
//! (integer division and modulo truncate; arithmetic never wraps; `IS TRUE` of NULL is false).
//! Function calls are `functions`' business; aggregates and windows are lowered by their
//! operators, never here.

use polars::prelude::*;
use runner_sql::arrow_schema::DataType as ArrowType;
use runner_sql::datafusion_common::{DFSchema, ScalarValue};
use runner_sql::datafusion_expr::expr::{Case, InList, Like};
use runner_sql::datafusion_expr::{BinaryExpr, Expr as Sql, ExprSchemable, Operator};

use super::{LowerError, Lowering, Result, types, unsupported};

/// The columns an expression can see: an operator's input schema and their Polars names.
pub(crate) struct Scope<'a> {
    pub schema: &'a DFSchema,
    pub names: &'a [PlSmallStr],
}

impl<'a> Scope<'a> {
    pub fn new(schema: &'a DFSchema, names: &'a [PlSmallStr]) -> Self {
        Self { schema, names }
    }

    /// The SQL type of `e` in this scope.
    pub fn type_of(&self, e: &Sql) -> Result<ArrowType> {
        e.get_type(self.schema).map_err(|err| LowerError(format!("the type of {e} is not known: {err}")))
    }
}

impl Lowering<'_> {
    /// Lowers a scalar expression.
    pub(crate) fn expr(&mut self, e: &Sql, scope: &Scope<'_>) -> Result<Expr> {
        Ok(match e {
            Sql::Alias(a) => self.expr(&a.expr, scope)?,
            Sql::Column(c) => col(super::column(scope.schema, scope.names, c)?),
            Sql::Literal(v, _) => super::literal::literal(v)?,
            Sql::BinaryExpr(b) => self.binary(b, scope)?,
            Sql::Not(x) => self.expr(x, scope)?.not(),
            Sql::IsNull(x) => self.expr(x, scope)?.is_null(),
            Sql::IsNotNull(x) => self.expr(x, scope)?.is_not_null(),
            // SQL's IS is two-valued: NULL IS TRUE is false, NULL IS NOT TRUE is true.
            Sql::IsTrue(x) => self.expr(x, scope)?.fill_null(lit(false)),
            Sql::IsNotTrue(x) => self.expr(x, scope)?.fill_null(lit(false)).not(),
            Sql::IsFalse(x) => self.expr(x, scope)?.not().fill_null(lit(false)),
            Sql::IsNotFalse(x) => self.expr(x, scope)?.not().fill_null(lit(false)).not(),
            Sql::IsUnknown(x) => self.expr(x, scope)?.is_null(),
            Sql::IsNotUnknown(x) => self.expr(x, scope)?.is_not_null(),
            Sql::Negative(x) => {
                let ty = scope.type_of(x)?;
                let inner = self.expr(x, scope)?;
                arithmetic(lit(0), inner, |a, b| a - b, &ty)?
            }
            Sql::Between(b) => {
                let x = self.expr(&b.expr, scope)?;
                let inside = x.clone().gt_eq(self.expr(&b.low, scope)?).and(x.lt_eq(self.expr(&b.high, scope)?));
                if b.negated { inside.not() } else { inside }
            }
            Sql::Case(c) => self.case(c, scope)?,
            Sql::Cast(c) => self.cast(&c.expr, c.field.data_type(), scope, true)?,
            Sql::TryCast(c) => self.cast(&c.expr, c.field.data_type(), scope, false)?,
            Sql::InList(l) => self.in_list(l, scope)?,
            Sql::Like(l) => self.like(l, scope)?,
            Sql::ScalarFunction(f) => self.function(f, scope)?,
            Sql::AggregateFunction(f) => {
                return unsupported(format!("the aggregate {} outside of an aggregation", f.func.name()));
            }
            Sql::WindowFunction(_) => return unsupported("a window function (OVER …)"),
            Sql::ScalarSubquery(s) => match self.scalars.iter().find(|(q, _)| q == s) {
                Some((_, name)) => col(name.clone()),
                None => return unsupported("a scalar subquery in this position"),
            },
            Sql::Exists(_) => return unsupported("EXISTS in this position"),
            Sql::InSubquery(_) => return unsupported("IN (subquery) in this position"),
            Sql::SetComparison(_) => return unsupported("ANY/ALL (subquery) in this position"),
            Sql::OuterReferenceColumn(_, c) => {
                return unsupported(format!("the outer column {c} referenced in this subquery"));
            }
            Sql::SimilarTo(_) => return unsupported("SIMILAR TO"),
            Sql::GroupingSet(_) => return unsupported("a grouping set outside GROUP BY"),
            Sql::Placeholder(p) => return unsupported(format!("the placeholder {}", p.id)),
            Sql::ScalarVariable(..) => return unsupported("a variable"),
            other => return unsupported(format!("the expression {other}")),
        })
    }

    /// `l op r`, typed as the planner typed it (its analyzer made both sides one type).
    fn binary(&mut self, b: &BinaryExpr, scope: &Scope<'_>) -> Result<Expr> {
        if matches!(b.op, Operator::And | Operator::Or) {
            // A chain of thousands of ORs is one balanced tree: its depth is a logarithm, so no
            // thread's stack overflows planning or evaluating it.
            let mut terms = Vec::new();
            flatten(b.op, &b.left, &mut terms);
            flatten(b.op, &b.right, &mut terms);
            let mut lowered = Vec::with_capacity(terms.len());
            for t in terms {
                lowered.push(self.expr(t, scope)?);
            }
            return Ok(balanced(lowered, b.op));
        }
        if matches!(b.op, Operator::Plus | Operator::Minus)
            && let Sql::Literal(ScalarValue::IntervalMonthDayNano(Some(i)), _) = b.right.as_ref()
        {
            // A date or timestamp moved by a constant interval: months on the calendar
            // (clamped to the month's end, as SQL does), then days, then the rest.
            let sign: i32 = if b.op == Operator::Minus { -1 } else { 1 };
            let out = scope.type_of(&Sql::BinaryExpr(b.clone()))?;
            if let (ArrowType::Date32, Some(ScalarValue::Date32(Some(day)))) = (&out, super::literal::constant(&b.left))
                && i.nanoseconds == 0
            {
                return super::literal::literal(&ScalarValue::Date32(runner_sql::constants::moved_date(
                    day,
                    sign * i.months,
                    sign * i.days,
                )));
            }
            let mut moved = self.expr(&b.left, scope)?;
            // One offset per unit: Polars takes one sign for a whole offset.
            for (n, unit) in [(i64::from(i.months), "mo"), (i64::from(i.days), "d"), (i.nanoseconds, "ns")] {
                if n != 0 {
                    moved = moved.dt().offset_by(lit(format!("{}{unit}", i64::from(sign) * n)));
                }
            }
            return Ok(moved.strict_cast(types::polars_type(&out)?));
        }
        let l = self.expr(&b.left, scope)?;
        let r = self.expr(&b.right, scope)?;
        let out = scope.type_of(&Sql::BinaryExpr(b.clone()))?;
        Ok(match b.op {
            Operator::Eq => l.eq(r),
            Operator::NotEq => l.neq(r),
            Operator::Lt => l.lt(r),
            Operator::LtEq => l.lt_eq(r),
            Operator::Gt => l.gt(r),
            Operator::GtEq => l.gt_eq(r),
            Operator::And => l.and(r),
            Operator::Or => l.or(r),
            Operator::IsDistinctFrom => l.neq_missing(r),
            Operator::IsNotDistinctFrom => l.eq_missing(r),
            Operator::Plus => arithmetic(l, r, |a, b| a + b, &out)?,
            Operator::Minus => arithmetic(l, r, |a, b| a - b, &out)?,
            Operator::Multiply => match &out {
                // Two decimals whose scales add up to the product's: one exact pass.
                ArrowType::Decimal128(p, s)
                    if matches!(
                        (scope.type_of(&b.left)?, scope.type_of(&b.right)?),
                        (ArrowType::Decimal128(_, ls), ArrowType::Decimal128(_, rs)) if ls + rs == *s
                    ) =>
                {
                    super::decimal::product(l, r, *p as usize, *s as usize)
                }
                // Polars multiplies decimals at the larger input scale; SQL keeps every digit
                // (scales add). Raising the left operand to the result's scale first is exact.
                ArrowType::Decimal128(_, s) => {
                    arithmetic(l.strict_cast(DataType::Decimal(38, *s as usize)), r, |a, b| a * b, &out)?
                }
                _ => arithmetic(l, r, |a, b| a * b, &out)?,
            },
            Operator::Divide | Operator::IntegerDivide => divide(l, r, &out)?,
            Operator::Modulo => modulo(l, r, &out)?,
            Operator::StringConcat => concat_str([l, r], "", false),
            // Polars' `and`, `or` and `xor` of integers are bitwise.
            Operator::BitwiseAnd => l.and(r).strict_cast(types::polars_type(&out)?),
            Operator::BitwiseOr => l.or(r).strict_cast(types::polars_type(&out)?),
            Operator::BitwiseXor => l.xor(r).strict_cast(types::polars_type(&out)?),
            Operator::BitwiseShiftLeft | Operator::BitwiseShiftRight => shift(l, b.op, &b.right, &out)?,
            op => return unsupported(format!("the operator {op}")),
        })
    }

    fn case(&mut self, c: &Case, scope: &Scope<'_>) -> Result<Expr> {
        let otherwise = match &c.else_expr {
            Some(e) => self.expr(e, scope)?,
            None => lit(NULL),
        };
        let base = match &c.expr {
            Some(e) => Some(self.expr(e, scope)?),
            None => None,
        };
        let mut arms = Vec::with_capacity(c.when_then_expr.len());
        for (when, then) in &c.when_then_expr {
            let when = self.expr(when, scope)?;
            // A WHEN that is NULL is not taken: fill it with false.
            let cond = match &base {
                Some(b) => b.clone().eq(when),
                None => when,
            }
            .fill_null(lit(false));
            arms.push((cond, self.expr(then, scope)?));
        }
        let out = scope.type_of(&Sql::Case(c.clone()))?;
        let ty = types::polars_type(&out)?;
        let mut iter = arms.into_iter();
        let Some((c0, t0)) = iter.next() else {
            return Ok(otherwise);
        };
        let first = when(c0).then(t0.strict_cast(ty.clone()));
        let rest: Vec<(Expr, Expr)> = iter.collect();
        if rest.is_empty() {
            return Ok(first.otherwise(otherwise.strict_cast(ty.clone())).strict_cast(ty));
        }
        let mut chain = None;
        for (c, t) in rest {
            chain = Some(match chain {
                None => first.clone().when(c).then(t.strict_cast(ty.clone())),
                Some(ch) => polars::prelude::ChainedThen::when(ch, c).then(t.strict_cast(ty.clone())),
            });
        }
        let chain = chain.expect("at least one more arm");
        Ok(chain.otherwise(otherwise.strict_cast(ty.clone())).strict_cast(ty))
    }

    /// `CAST` (strict: a value that doesn't fit fails the item) or `TRY_CAST` (NULL instead).
    /// Casts to a decimal round half away from zero, as SQL engines do.
    pub(crate) fn cast(&mut self, x: &Sql, to: &ArrowType, scope: &Scope<'_>, strict: bool) -> Result<Expr> {
        // A constant cast exactly (`DATE '1994-01-01'` is a cast of text) is a constant.
        let cast = Sql::Cast(runner_sql::datafusion_expr::Cast::new(Box::new(x.clone()), to.clone()));
        if let Some(v) = super::literal::constant(&cast) {
            return super::literal::literal(&v);
        }
        let from = scope.type_of(x)?;
        let inner = self.expr(x, scope)?;
        let target = types::polars_type(to)?;
        let rounded = match (to, &from) {
            (ArrowType::Decimal128(_, s), ArrowType::Decimal128(_, fs)) if fs > s => {
                super::functions::round_decimal(inner, *fs, i64::from(*s))?
            }
            (ArrowType::Decimal128(_, s), f) if f.is_floating() => {
                inner.round(u32::try_from(*s).unwrap_or(0), RoundMode::HalfAwayFromZero)
            }
            (ArrowType::Decimal128(_, s), ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View) => {
                // Read at a finer scale (Polars rounds half to even when it reads text), then
                // rounded half away from zero.
                let fine = (*s as usize + 18).min(37);
                let exact = if strict {
                    inner.strict_cast(DataType::Decimal(38, fine))
                } else {
                    inner.cast(DataType::Decimal(38, fine))
                };
                exact.round(u32::try_from(*s).unwrap_or(0), RoundMode::HalfAwayFromZero)
            }
            // DuckDB rounds a double to the nearest integer, half to even, and a decimal half
            // away from zero (Polars truncates the one and rounds the other half to even).
            (t, f) if t.is_integer() && f.is_floating() => inner.round(0, RoundMode::HalfToEven),
            (t, ArrowType::Decimal128(..)) if t.is_integer() => inner.round(0, RoundMode::HalfAwayFromZero),
            // DuckDB writes a timestamp's fraction only as far as it is not zero.
            (ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View, ArrowType::Timestamp(..)) => {
                return Ok(timestamp_text(inner));
            }
            _ => inner,
        };
        Ok(if strict { rounded.strict_cast(target) } else { rounded.cast(target) })
    }

    /// `x [NOT] IN (a, b, …)`: NULL when `x` is NULL, or when no item matches and one is NULL.
    fn in_list(&mut self, l: &InList, scope: &Scope<'_>) -> Result<Expr> {
        let x = self.expr(&l.expr, scope)?;
        let mut any: Option<Expr> = None;
        let mut values: Vec<ScalarValue> = Vec::new();
        let mut others: Vec<Expr> = Vec::new();
        let mut has_null = false;
        for item in &l.list {
            match item {
                Sql::Literal(v, _) if v.is_null() => has_null = true,
                Sql::Literal(v, _) => values.push(v.clone()),
                other => others.push(self.expr(other, scope)?),
            }
        }
        if !values.is_empty() {
            let ty = types::polars_type(&scope.type_of(&l.expr)?)?;
            let series = super::literal::series(&values, &ty)?;
            any = Some(x.clone().is_in(lit(series).implode(false), false));
        }
        for o in others {
            let eq = x.clone().eq(o);
            any = Some(match any {
                Some(a) => a.or(eq),
                None => eq,
            });
        }
        let found = any.unwrap_or_else(|| lit(false));
        let found = if has_null {
            when(found.clone().fill_null(lit(false))).then(lit(true)).otherwise(lit(NULL).cast(DataType::Boolean))
        } else {
            found
        };
        let found = when(x.is_null()).then(lit(NULL).cast(DataType::Boolean)).otherwise(found);
        Ok(if l.negated { found.not() } else { found })
    }

    /// `LIKE`/`ILIKE` with `%` and `_` (and an `ESCAPE` character): literal patterns become
    /// literal string tests; others a regular expression anchored at both ends.
    fn like(&mut self, l: &Like, scope: &Scope<'_>) -> Result<Expr> {
        let x = self.expr(&l.expr, scope)?;
        let Sql::Literal(
            ScalarValue::Utf8(Some(pattern))
            | ScalarValue::LargeUtf8(Some(pattern))
            | ScalarValue::Utf8View(Some(pattern)),
            _,
        ) = l.pattern.as_ref()
        else {
            return unsupported("LIKE with a pattern that is not a constant string");
        };
        let x = if l.case_insensitive { x.str().to_lowercase() } else { x };
        let pattern = if l.case_insensitive { pattern.to_lowercase() } else { pattern.clone() };
        let matched = super::functions::like(x, &pattern, l.escape_char)?;
        Ok(if l.negated { matched.not() } else { matched })
    }
}

/// `l op r` for `+ - *`: integers are computed one size up and cast back strictly, so an
/// overflow fails the item (naming the value) instead of wrapping; other types as Polars
/// computes them, cast to the planner's result type.
fn arithmetic(l: Expr, r: Expr, op: fn(Expr, Expr) -> Expr, out: &ArrowType) -> Result<Expr> {
    let target = types::polars_type(out)?;
    Ok(match wider(out) {
        Some(w) => op(l.strict_cast(w.clone()), r.strict_cast(w)).strict_cast(target),
        None => op(l, r).strict_cast(target),
    })
}

/// `l << n` and `l >> n` for a constant `n` from 0 to 62: a product or a floored quotient by
/// `2^n` (an arithmetic shift), so a shift out of the type's range fails as an overflow does.
fn shift(l: Expr, op: Operator, n: &Sql, out: &ArrowType) -> Result<Expr> {
    let amount = match n {
        Sql::Literal(v, _) => match v.cast_to(&ArrowType::Int64) {
            Ok(ScalarValue::Int64(Some(k))) if (0..63).contains(&k) => Some(k),
            _ => None,
        },
        _ => None,
    };
    let Some(k) = amount else {
        return unsupported(format!("a shift ({op}) by {n} (only by a constant from 0 to 62)"));
    };
    let factor = lit(1i64 << k);
    if op == Operator::BitwiseShiftLeft {
        return arithmetic(l, factor, |a, b| a * b, out);
    }
    Ok(l.strict_cast(DataType::Int64).floor_div(factor).strict_cast(types::polars_type(out)?))
}

/// The integer type one size up, where there is one.
fn wider(t: &ArrowType) -> Option<DataType> {
    Some(match t {
        ArrowType::Int8 | ArrowType::Int16 | ArrowType::Int32 => DataType::Int64,
        ArrowType::Int64 => DataType::Int128,
        ArrowType::UInt8 | ArrowType::UInt16 | ArrowType::UInt32 => DataType::Int64,
        ArrowType::UInt64 => DataType::Int128,
        _ => return None,
    })
}

/// `/`: the planner made integer and decimal division a division of doubles (DuckDB's); what
/// is left divides as Polars does, cast to the planner's type. `//` of integers truncates toward
/// zero (SQL's, not Polars' floor), and a zero divisor fails the item.
fn divide(l: Expr, r: Expr, out: &ArrowType) -> Result<Expr> {
    let target = types::polars_type(out)?;
    if !out.is_integer() {
        return Ok((l / r).strict_cast(target));
    }
    let r = nonzero(r);
    let q = l.clone().floor_div(r.clone());
    // Floor and truncation differ when the division is inexact and the signs differ.
    let inexact = (l.clone() % r.clone()).neq(lit(0));
    let signs_differ = l.lt(lit(0)).xor(r.lt(lit(0)));
    Ok(when(inexact.and(signs_differ)).then(q.clone() + lit(1)).otherwise(q).strict_cast(target))
}

/// `%`: the remainder takes the dividend's sign (SQL's truncated modulo, not Polars' floored
/// one), and a zero divisor fails the item, as in DuckDB.
fn modulo(l: Expr, r: Expr, out: &ArrowType) -> Result<Expr> {
    let target = types::polars_type(out)?;
    let r = nonzero(r);
    let m = l.clone() % r.clone();
    let fixed =
        when(m.clone().neq(lit(0)).and(l.lt(lit(0)).xor(r.clone().lt(lit(0))))).then(m.clone() - r).otherwise(m);
    Ok(fixed.strict_cast(target))
}

/// The divisor, failing the item if any of its values is zero.
fn nonzero(divisor: Expr) -> Expr {
    divisor.map(
        |c| {
            let s = c.as_materialized_series();
            let zeros = s.equal(0).map(|m| m.any()).unwrap_or(false);
            if zeros {
                polars_bail!(ComputeError: "division by zero (a `%` or `//` whose divisor is 0)");
            }
            Ok(c)
        },
        |_, f| Ok(f.clone()),
    )
}

/// The operands of a chain of `op` (AND or OR), left to right.
fn flatten<'e>(op: Operator, e: &'e Sql, out: &mut Vec<&'e Sql>) {
    // An explicit stack: the chain may be thousands deep.
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match e {
            Sql::BinaryExpr(b) if b.op == op => {
                stack.push(&b.right);
                stack.push(&b.left);
            }
            other => out.push(other),
        }
    }
}

/// `terms` joined by `op` as a balanced tree (AND and OR are associative in SQL's logic too).
fn balanced(mut terms: Vec<Expr>, op: Operator) -> Expr {
    while terms.len() > 1 {
        let mut next = Vec::with_capacity(terms.len().div_ceil(2));
        let mut it = terms.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) if op == Operator::And => a.and(b),
                Some(b) => a.or(b),
                None => a,
            });
        }
        terms = next;
    }
    terms.pop().unwrap_or_else(|| lit(op == Operator::And))
}

/// A timestamp as text, DuckDB's way: `2024-01-31 08:00:00`, `… 08:00:00.5`.
fn timestamp_text(x: Expr) -> Expr {
    let full = x.dt().to_string("%Y-%m-%d %H:%M:%S%.6f");
    full.str().strip_chars_end(lit("0")).str().strip_chars_end(lit("."))
}
