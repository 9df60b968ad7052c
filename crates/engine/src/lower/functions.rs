//! SQL's scalar functions, each lowered with the semantics of DuckDB (the engine the tests
//! compare with) where Polars' differ: `round` half away from zero, `strpos` of NULL is NULL,
//! `substr` counts from 1. A function with no lowering here is refused by name.

use polars::prelude::*;
use runner_sql::arrow_schema::DataType as ArrowType;
use runner_sql::datafusion_common::ScalarValue;
use runner_sql::datafusion_expr::Expr as Sql;
use runner_sql::datafusion_expr::expr::ScalarFunction;

use super::expr::Scope;
use super::{LowerError, Lowering, Result, types, unsupported};

impl Lowering<'_> {
    /// A call of a scalar function.
    pub(crate) fn function(&mut self, f: &ScalarFunction, scope: &Scope<'_>) -> Result<Expr> {
        let name = f.func.name();
        if let Some(udf) = self.user_function(name)? {
            // Each argument keeps its SQL name: the function's own check names what it was given.
            let mut args = Vec::with_capacity(f.args.len());
            for a in &f.args {
                args.push(self.expr(a, scope)?.alias(sql_name(a)));
            }
            return Ok(udf.call(args));
        }
        let out = scope.type_of(&Sql::ScalarFunction(f.clone()))?;
        let ty = types::polars_type(&out)?;
        let mut args = Vec::with_capacity(f.args.len());
        for a in &f.args {
            args.push(self.expr(a, scope)?);
        }
        let arg_type = |i: usize| scope.type_of(&f.args[i]);
        // A constant argument: a literal, or a literal the planner cast to the parameter's type
        // (its constant folding is not run: see `runner_sql`'s rules).
        let constant = |i: usize| match f.args.get(i) {
            Some(Sql::Literal(v, _)) => Some(v.clone()),
            Some(Sql::Cast(c)) => match c.expr.as_ref() {
                Sql::Literal(v, _) => v.cast_to(c.field.data_type()).ok(),
                _ => None,
            },
            _ => None,
        };
        // A constant text argument (a part's name, a format).
        let text = |i: usize| match constant(i) {
            Some(ScalarValue::Utf8(Some(t)) | ScalarValue::Utf8View(Some(t)) | ScalarValue::LargeUtf8(Some(t))) => {
                Some(t)
            }
            _ => None,
        };
        let one = |args: &mut Vec<Expr>| args.remove(0);
        let e = match (name, args.len()) {
            ("abs", 1) => one(&mut args).abs(),
            ("ceil", 1) => one(&mut args).ceil(),
            ("floor", 1) => one(&mut args).floor(),
            ("sqrt", 1) => one(&mut args).cast(DataType::Float64).sqrt(),
            ("exp", 1) => one(&mut args).cast(DataType::Float64).exp(),
            ("ln", 1) => one(&mut args).cast(DataType::Float64).log(lit(std::f64::consts::E)),
            ("log10", 1) => one(&mut args).cast(DataType::Float64).log(lit(10.0)),
            ("log2", 1) => one(&mut args).cast(DataType::Float64).log(lit(2.0)),
            ("power", 2) => {
                let b = args.pop().unwrap_or_else(|| lit(NULL));
                one(&mut args).cast(DataType::Float64).pow(b.cast(DataType::Float64))
            }
            ("signum", 1) => one(&mut args).sign(),
            ("sin", 1) => one(&mut args).cast(DataType::Float64).sin(),
            ("cos", 1) => one(&mut args).cast(DataType::Float64).cos(),
            ("tan", 1) => one(&mut args).cast(DataType::Float64).tan(),
            ("cot", 1) => one(&mut args).cast(DataType::Float64).cot(),
            ("asin", 1) => one(&mut args).cast(DataType::Float64).arcsin(),
            ("acos", 1) => one(&mut args).cast(DataType::Float64).arccos(),
            ("atan", 1) => one(&mut args).cast(DataType::Float64).arctan(),
            ("atan2", 2) => {
                let x = args.pop().unwrap_or_else(|| lit(NULL)).cast(DataType::Float64);
                one(&mut args).cast(DataType::Float64).arctan2(x)
            }
            ("radians", 1) => one(&mut args).cast(DataType::Float64).radians(),
            ("degrees", 1) => one(&mut args).cast(DataType::Float64).degrees(),
            ("cbrt", 1) => one(&mut args).cast(DataType::Float64).cbrt(),
            ("pi", 0) => lit(std::f64::consts::PI),
            ("round", 1 | 2) => {
                let digits = match constant(1) {
                    None if args.len() == 1 => 0,
                    Some(v) => match v.cast_to(&ArrowType::Int64) {
                        Ok(ScalarValue::Int64(Some(d))) => d,
                        _ => return unsupported("round with a digit count that is not an integer constant"),
                    },
                    None => return unsupported("round with a digit count that is not a constant"),
                };
                let x = one(&mut args);
                match arg_type(0)? {
                    ArrowType::Decimal128(_, s) => round_decimal(x, s, digits)?,
                    t if t.is_integer() => x,
                    _ if digits >= 0 => round_double(x, u32::try_from(digits).unwrap_or(u32::MAX)),
                    _ => return unsupported("round of a float to negative digits"),
                }
            }
            ("coalesce", _) => coalesce(&args.into_iter().map(|a| a.strict_cast(ty.clone())).collect::<Vec<_>>()),
            ("nullif", 2) => {
                let b = args.pop().unwrap_or_else(|| lit(NULL));
                let a = one(&mut args);
                when(a.clone().eq(b).fill_null(lit(false))).then(lit(NULL)).otherwise(a)
            }
            ("upper", 1) => simple_case(one(&mut args), true),
            ("lower", 1) => simple_case(one(&mut args), false),
            ("character_length" | "length" | "char_length", 1) => one(&mut args).str().len_chars(),
            ("octet_length", 1) => one(&mut args).str().len_bytes(),
            ("btrim" | "trim", 1) => one(&mut args).str().strip_chars(lit(NULL)),
            ("ltrim", 1) => one(&mut args).str().strip_chars_start(lit(NULL)),
            ("rtrim", 1) => one(&mut args).str().strip_chars_end(lit(NULL)),
            // The second argument is a set of characters, as in SQL.
            ("btrim" | "trim" | "ltrim" | "rtrim", 2) => {
                let chars = args.pop().unwrap_or_else(|| lit(NULL));
                let s = one(&mut args);
                let stripped = match name {
                    "ltrim" => s.clone().str().strip_chars_start(chars.clone()),
                    "rtrim" => s.clone().str().strip_chars_end(chars.clone()),
                    _ => s.clone().str().strip_chars(chars.clone()),
                };
                when(chars.is_null()).then(lit(NULL).cast(DataType::String)).otherwise(stripped)
            }
            ("reverse", 1) => one(&mut args).str().reverse(),
            ("lpad" | "rpad", 3) => {
                // To `n` characters: cut when longer, else padded with one fill character.
                let fill = match text(2).as_deref().map(|t| t.chars().collect::<Vec<_>>()).as_deref() {
                    Some([c]) => *c,
                    _ => return unsupported(format!("{name} with a fill that is not one constant character")),
                };
                let _ = args.pop();
                let n = args.pop().unwrap_or_else(|| lit(NULL)).cast(DataType::Int64);
                let n = when(n.clone().lt(lit(0i64))).then(lit(0i64)).otherwise(n);
                let cut = one(&mut args).str().head(n.clone());
                if name == "lpad" { cut.str().pad_start(n, fill) } else { cut.str().pad_end(n, fill) }
            }
            ("concat_ws", n) if n >= 2 => {
                // The separator between the values that are not NULL; NULL when it is NULL.
                let Some(separator) = text(0) else {
                    return unsupported("concat_ws with a separator that is not a constant string");
                };
                let values: Vec<Expr> = args.drain(1..).map(|a| a.cast(DataType::String)).collect();
                concat_str(values, &separator, true)
            }
            ("starts_with", 2) => {
                let p = args.pop().unwrap_or_else(|| lit(NULL));
                one(&mut args).str().starts_with(p)
            }
            ("ends_with", 2) => {
                let p = args.pop().unwrap_or_else(|| lit(NULL));
                one(&mut args).str().ends_with(p)
            }
            ("strpos" | "instr", 2) => {
                // 1-based; 0 when absent; NULL when either side is NULL.
                let p = args.pop().unwrap_or_else(|| lit(NULL));
                let s = one(&mut args);
                // Counted in characters: the text before the first match, plus one.
                let before = s.clone().str().split(p.clone()).list().first().str().len_chars();
                let pos = when(s.clone().str().contains_literal(p.clone())).then(before + lit(1)).otherwise(lit(0));
                when(s.is_null().or(p.is_null())).then(lit(NULL)).otherwise(pos)
            }
            ("substr" | "substring", 2 | 3) => {
                let len = if args.len() == 3 { args.pop() } else { None };
                let start = args.pop().unwrap_or_else(|| lit(NULL)).cast(DataType::Int64);
                let s = one(&mut args);
                substr(s, start, len)
            }
            ("concat", _) => {
                // SQL's concat skips NULLs (`||` does not: see the operator).
                concat_str(
                    args.into_iter().map(|a| a.cast(DataType::String).fill_null(lit(""))).collect::<Vec<_>>(),
                    "",
                    false,
                )
            }
            ("replace", 3) => {
                let to = args.pop().unwrap_or_else(|| lit(NULL));
                let from = args.pop().unwrap_or_else(|| lit(NULL));
                let s = one(&mut args);
                // Replacing the empty string changes nothing (Polars would insert between
                // every character).
                when(from.clone().eq(lit(""))).then(s.clone()).otherwise(s.str().replace_all(from, to, true))
            }
            ("date_part", 2) => {
                let Some(part) = text(0).map(|p| p.to_lowercase()) else {
                    return unsupported("EXTRACT/date_part of a part that is not a constant");
                };
                let d = args.pop().unwrap_or_else(|| lit(NULL));
                match part.as_str() {
                    "year" => d.dt().year(),
                    "month" => d.dt().month(),
                    "day" => d.dt().day(),
                    "quarter" => d.dt().quarter(),
                    // Sunday is 0 (DuckDB's and Postgres'); Polars counts Monday 1 … Sunday 7.
                    "dow" => d.dt().weekday() % lit(7),
                    "isodow" => d.dt().weekday(),
                    "doy" => d.dt().ordinal_day(),
                    "week" => d.dt().week(),
                    "hour" => d.dt().hour(),
                    "minute" => d.dt().minute(),
                    other => return unsupported(format!("EXTRACT of {other}")),
                }
            }
            ("date_trunc", 2) => {
                let Some(part) = text(0).map(|p| p.to_lowercase()) else {
                    return unsupported("date_trunc of a part that is not a constant");
                };
                let every = match part.as_str() {
                    "year" => "1y",
                    "quarter" => "1q",
                    "month" => "1mo",
                    "week" => "1w",
                    "day" => "1d",
                    "hour" => "1h",
                    "minute" => "1m",
                    "second" => "1s",
                    other => return unsupported(format!("date_trunc to {other}")),
                };
                let d = args.pop().unwrap_or_else(|| lit(NULL));
                d.dt().truncate(lit(every))
            }
            ("greatest", _) => {
                polars::lazy::dsl::max_horizontal(args).map_err(|e| LowerError(format!("greatest: {e}")))?
            }
            ("least", _) => polars::lazy::dsl::min_horizontal(args).map_err(|e| LowerError(format!("least: {e}")))?,
            ("left", 2) => {
                let n = args.pop().unwrap_or_else(|| lit(NULL));
                one(&mut args).str().head(n)
            }
            ("right", 2) => {
                let n = args.pop().unwrap_or_else(|| lit(NULL));
                one(&mut args).str().tail(n)
            }
            ("trunc", 1) => one(&mut args).round(0, RoundMode::ToZero),
            ("strptime", 2) => {
                let Some(format) = text(1) else {
                    return unsupported("strptime with a format that is not a constant string");
                };
                let options = StrptimeOptions { format: Some(format.into()), strict: true, exact: true, cache: true };
                let _ = args.pop();
                one(&mut args).str().strptime(DataType::Datetime(TimeUnit::Microseconds, None), options, lit("raise"))
            }
            ("strftime", 2) => {
                let Some(format) = text(1) else {
                    return unsupported("strftime with a format that is not a constant string");
                };
                let _ = args.pop();
                one(&mut args).dt().to_string(&format)
            }
            (name, n) => return unsupported(format!("the function {name} with {n} argument(s)")),
        };
        Ok(e.strict_cast(ty))
    }
}

impl Lowering<'_> {
    /// The binary's function `name`, if it brings one.
    pub(crate) fn user_function(&self, name: &str) -> Result<Option<UserDefinedFunction>> {
        match self.functions {
            Some(registry) => {
                registry.get_udf(name).map_err(|e| LowerError(format!("the function {name} could not be found: {e}")))
            }
            None => Ok(None),
        }
    }
}

/// `substr(s, start[, len])`, 1-based: a start below 1 eats into the length, as in SQL
/// (`substr('abc', 0, 2)` is `'a'`); a negative start counts from the end (DuckDB's).
fn substr(s: Expr, start: Expr, len: Option<Expr>) -> Expr {
    let negative = start.clone().lt(lit(0));
    let offset = when(negative.clone()).then(start.clone()).otherwise(start.clone() - lit(1));
    let clamped = when(offset.clone().lt(lit(0)).and(negative.clone().not())).then(lit(0i64)).otherwise(offset.clone());
    match len {
        None => s.str().slice(clamped, lit(NULL).cast(DataType::UInt64)),
        Some(len) => {
            let len = len.cast(DataType::Int64);
            let eaten = when(offset.clone().lt(lit(0)).and(negative.not())).then(len.clone() + offset).otherwise(len);
            let eaten = when(eaten.clone().lt(lit(0))).then(lit(0i64)).otherwise(eaten);
            s.str().slice(clamped, eaten.cast(DataType::UInt64))
        }
    }
}

/// Rounds a decimal of scale `scale` to `digits` places, half away from zero, exactly (Polars
/// rounds decimals exactly and keeps their scale; its default mode is half to even).
pub(crate) fn round_decimal(x: Expr, scale: i8, digits: i64) -> Result<Expr> {
    if digits >= i64::from(scale) {
        return Ok(x);
    }
    let Ok(digits) = u32::try_from(digits) else {
        return unsupported("round of a decimal to negative digits");
    };
    Ok(x.round(digits, RoundMode::HalfAwayFromZero))
}

/// `LIKE pattern` (with `%` and `_`, and an optional escape character) as literal tests where
/// the pattern allows, else an anchored regular expression.
pub(crate) fn like(x: Expr, pattern: &str, escape: Option<char>) -> Result<Expr> {
    // Split into literal runs and wildcards.
    enum Part {
        Text(String),
        Any,
        One,
    }
    let mut parts: Vec<Part> = Vec::new();
    let mut text = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            c if Some(c) == escape => match chars.next() {
                Some(n) => text.push(n),
                None => return Err(LowerError(format!("the LIKE pattern {pattern:?} ends with its escape character"))),
            },
            '%' | '_' => {
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(if c == '%' { Part::Any } else { Part::One });
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    let any = |p: &Part| matches!(p, Part::Any);
    let text_of = |p: &Part| match p {
        Part::Text(t) => Some(t.clone()),
        _ => None,
    };
    Ok(match parts.as_slice() {
        [] => x.eq(lit("")),
        [Part::Text(t)] => x.eq(lit(t.clone())),
        [Part::Any] => x.is_not_null(),
        [Part::Text(t), Part::Any] => x.str().starts_with(lit(t.clone())),
        [Part::Any, Part::Text(t)] => x.str().ends_with(lit(t.clone())),
        [Part::Any, Part::Text(t), Part::Any] => x.str().contains_literal(lit(t.clone())),
        _ => {
            let _ = (any, text_of);
            let mut re = String::from("(?s)^");
            for p in &parts {
                match p {
                    Part::Text(t) => re.push_str(&regex_escape(t)),
                    Part::Any => re.push_str(".*"),
                    Part::One => re.push('.'),
                }
            }
            re.push('$');
            x.str().contains(lit(re), true)
        }
    })
}

fn regex_escape(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// How SQL names an argument: a column by its own name, anything else as written.
pub(crate) fn sql_name(e: &Sql) -> String {
    match e {
        Sql::Column(c) => c.name.clone(),
        other => other.schema_name().to_string(),
    }
}

/// `round(x, digits)` of a double, as DuckDB rounds it: the double's exact value, half away
/// from zero. `0.35` is stored as 0.34999…, so it rounds to 0.3; Polars rounds `x · 10^d`,
/// which is 3.5 once rounded to a double, to 0.4.
fn round_double(x: Expr, digits: u32) -> Expr {
    x.cast(DataType::Float64).map(
        move |c| {
            let values = c.as_materialized_series().f64()?.clone();
            let out: Float64Chunked = values.apply_values(|v| exact_round(v, digits));
            Ok(out.into_series().into_column())
        },
        |_, f| Ok(Field::new(f.name().clone(), DataType::Float64)),
    )
}

/// `v` rounded to `digits` places by its exact decimal value, half away from zero.
fn exact_round(v: f64, digits: u32) -> f64 {
    if !v.is_finite() || digits > 300 {
        return v;
    }
    let scale = 10f64.powi(digits as i32);
    let scaled = v * scale;
    if !scaled.is_finite() || scaled.abs() >= 2f64.powi(52) {
        return v;
    }
    let fraction = scaled.abs().fract();
    // Far from a tie, the scaled double rounds as the exact value does.
    if (fraction - 0.5).abs() > 1e-6 {
        return scaled.round() / scale;
    }
    // Near a tie: the exact decimal expansion decides (Rust prints a double's exact digits).
    let text = format!("{:.*}", digits as usize + 40, v.abs());
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    let kept: String = whole.chars().chain(frac.chars().take(digits as usize)).collect();
    let next = frac.chars().nth(digits as usize).unwrap_or('0');
    let mut k: f64 = kept.parse().unwrap_or(0.0);
    if next >= '5' {
        k += 1.0;
    }
    (k / scale).copysign(v)
}

/// `upper`/`lower` by Unicode's simple case mapping, one character for one, as DuckDB does:
/// `ß` becomes `ẞ`, and a character whose case takes several (the ligature `ﬁ`) stays as it is.
/// Polars maps fully (`straße` → `STRASSE`).
fn simple_case(x: Expr, upper: bool) -> Expr {
    x.cast(DataType::String).map(
        move |c| {
            let s = c.as_materialized_series().str()?.clone();
            let out: StringChunked = s.apply_values(|v| {
                if v.is_ascii() {
                    return if upper { v.to_ascii_uppercase().into() } else { v.to_ascii_lowercase().into() };
                }
                v.chars().map(|ch| simple(ch, upper)).collect::<String>().into()
            });
            Ok(out.into_series().into_column())
        },
        |_, f| Ok(Field::new(f.name().clone(), DataType::String)),
    )
}

/// One character's simple case mapping.
fn simple(ch: char, upper: bool) -> char {
    if upper && ch == 'ß' {
        return 'ẞ';
    }
    let mut mapped = String::new();
    if upper {
        mapped.extend(ch.to_uppercase());
    } else {
        mapped.extend(ch.to_lowercase());
    }
    let mut it = mapped.chars();
    match (it.next(), it.next()) {
        (Some(one), None) => one,
        // İ lowers to i and a combining dot: its simple mapping is i.
        (Some(first), Some(_)) if !upper && ch == 'İ' => first,
        _ => ch,
    }
}

#[cfg(test)]
mod tests {
    use super::exact_round;

    #[test]
    fn doubles_round_by_their_exact_value_half_away_from_zero() {
        assert_eq!(exact_round(0.35, 1), 0.3, "0.35 is 0.34999… as a double");
        assert_eq!(exact_round(2.5, 0), 3.0);
        assert_eq!(exact_round(-2.5, 0), -3.0);
        assert_eq!(exact_round(0.125, 2), 0.13, "0.125 is exact: a tie, away from zero");
        assert_eq!(exact_round(-0.125, 2), -0.13);
        assert_eq!(exact_round(2.675, 2), 2.67, "2.675 is 2.67499… as a double");
        assert_eq!(exact_round(1.005, 2), 1.0);
        assert_eq!(exact_round(123.456, 1), 123.5);
    }

    #[test]
    fn case_maps_one_character_for_one() {
        use super::simple;
        let up = |s: &str| s.chars().map(|c| simple(c, true)).collect::<String>();
        let down = |s: &str| s.chars().map(|c| simple(c, false)).collect::<String>();
        assert_eq!(up("straße"), "STRAẞE");
        assert_eq!(up("ﬁ ŉ é"), "ﬁ ŉ É");
        assert_eq!(down("İ ẞ É"), "i ß é");
    }
}
