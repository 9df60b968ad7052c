//! Placeholders in paths, hive filters and SQL: `{partition_key}`, `{partition_start}`,
//! `{partition_end}` (and `{partition_start_date}` / `{partition_end_date}`), so one spec serves
//! every partition. `{{` and `}}` stand for literal braces.
//!
//! A value is rendered for where it goes, so that no key can change what the text means:
//! in a path (and a hive filter, which is compared with directory names) the key is one
//! escaped segment ([`runner_types::PartitionKey::path_segment`]); in SQL every placeholder
//! must sit inside a plain single-quoted string literal, as the SQL's tokens say
//! ([`check_sql`]), and its value has its quotes doubled.

use runner_types::Partition;

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] =
    &["partition_key", "partition_start", "partition_end", "partition_start_date", "partition_end_date"];

/// Where a rendered text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// A path, a glob or a hive filter value: the key becomes one escaped segment.
    Path,
    /// SQL: values sit inside string literals, quotes doubled.
    Sql,
}

/// One piece of a template.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// The pieces of `text`, or an error naming an unknown placeholder or a stray brace.
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push(Piece::Text(&rest[..i]));
        let after = &rest[i + 1..];
        if rest[i..].starts_with("{{") {
            out.push(Piece::Text("{"));
            rest = &rest[i + 2..];
        } else if rest[i..].starts_with("}}") {
            out.push(Piece::Text("}"));
            rest = &rest[i + 2..];
        } else if rest[i..].starts_with('}') {
            return Err(format!("a lone `}}` in {text:?}; write `}}}}` for a literal brace"));
        } else {
            let Some(close) = after.find('}') else {
                return Err(format!("unclosed `{{` in {text:?}; write `{{{{` for a literal brace"));
            };
            let name = &after[..close];
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "unknown placeholder {{{name}}} in {text:?}; known: {} (`{{{{` is a literal brace)",
                    PLACEHOLDERS.iter().map(|p| format!("{{{p}}}")).collect::<Vec<_>>().join(", ")
                ));
            }
            out.push(Piece::Placeholder(name));
            rest = &after[close + 1..];
        }
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// The placeholders in `text`, or an error naming an unknown one.
pub fn placeholders(text: &str) -> Result<Vec<&str>, String> {
    Ok(pieces(text)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Placeholder(n) => Some(n),
            Piece::Text(_) => None,
        })
        .collect())
}

/// Checks that every placeholder in `sql` sits inside a plain single-quoted string literal
/// (`day = '{partition_key}'`): a value anywhere else could change the query.
///
/// It reads tokens, with the tokenizer and dialect Polars SQL parses with (`sqlparser`'s
/// generic dialect), so an apostrophe in a comment or a quote in an identifier can't make a
/// bare placeholder look quoted. Each placeholder is swapped for a marker word first (braces
/// aren't SQL), and each marker must lie in a `'…'` token. In that dialect a `'…'` string has
/// no backslash escapes and a doubled quote is a quote, which is what [`render`] does to a
/// value: the value can't end its literal. Everywhere else is refused: bare, in a quoted
/// identifier, in a `$$…$$` string or any other kind of literal (`E'…'` has backslash escapes,
/// so doubled quotes would not keep a value in), and in a comment too (a value there could end
/// a `/* */` comment).
pub fn check_sql(sql: &str) -> Result<(), String> {
    use sqlparser::dialect::GenericDialect;
    use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

    let pieces = pieces(sql)?;
    let names: Vec<&str> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Placeholder(n) => Some(*n),
            Piece::Text(_) => None,
        })
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    // A word the text doesn't hold; `x` ends each marker, so none is a prefix of another.
    let mut base = String::from("runnerplaceholder");
    while sql.contains(&base) {
        base.push('q');
    }
    let marker = |i: usize| format!("{base}{i}x");
    let mut marked = String::with_capacity(sql.len() + 24 * names.len());
    let mut next = 0;
    for piece in &pieces {
        match piece {
            Piece::Text(t) => marked.push_str(t),
            Piece::Placeholder(_) => {
                marked.push_str(&marker(next));
                next += 1;
            }
        }
    }
    let tokens = Tokenizer::new(&GenericDialect {}, &marked)
        .tokenize()
        .map_err(|e| format!("the SQL can't be read to check where its placeholders sit: {e}"))?;
    for (i, name) in names.iter().enumerate() {
        let mark = marker(i);
        // A marker split across tokens (glued to a number, say) is in none of them: bare.
        let place = match tokens.iter().find(|t| t.to_string().contains(&mark)) {
            Some(Token::SingleQuotedString(_)) => continue,
            Some(Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_))) => {
                "in a comment"
            }
            Some(Token::Word(w)) if w.quote_style == Some('"') => "in a double-quoted identifier",
            Some(Token::Word(w)) if w.quote_style.is_some() => "in a quoted identifier",
            Some(Token::DollarQuotedString(_)) => "in a dollar-quoted string",
            Some(Token::Word(_)) | None => "bare, outside any string",
            Some(_) => "in a literal other than a plain '…' string",
        };
        return Err(format!(
            "{{{name}}} sits {place}; it must sit inside a single-quoted string ('{{{name}}}'), \
             so a partition key can't change the query"
        ));
    }
    Ok(())
}

/// True when `text` has any placeholder.
pub fn is_templated(text: &str) -> bool {
    placeholders(text).is_ok_and(|p| !p.is_empty())
}

/// `text` with its placeholders filled from a partition, each rendered for `context`, and
/// `{{`/`}}` made single braces. A placeholder with no value is an error that says how to
/// provide one.
pub fn render(text: &str, partition: Option<&Partition>, context: Context) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text)? {
        let name = match piece {
            Piece::Text(t) => {
                out.push_str(t);
                continue;
            }
            Piece::Placeholder(name) => name,
        };
        let Some(p) = partition else {
            return Err(format!(
                "{{{name}}} is used in {text:?} but this run has no partition \
                 (pass --partition, or launch it from a partitioned Dagster asset)"
            ));
        };
        let value = match name {
            "partition_key" => Some(match context {
                Context::Path => p.key.path_segment(),
                Context::Sql => p.key.to_string(),
            }),
            "partition_start" => p.start.map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            "partition_end" => p.end.map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            "partition_start_date" => p.start.map(|t| t.format("%Y-%m-%d").to_string()),
            "partition_end_date" => p.end.map(|t| t.format("%Y-%m-%d").to_string()),
            _ => None,
        };
        let Some(value) = value else {
            return Err(format!(
                "{{{name}}} is used in {text:?} but partition {:?} has no time window",
                p.key.as_str()
            ));
        };
        match context {
            Context::Sql => out.push_str(&value.replace('\'', "''")),
            Context::Path => out.push_str(&value),
        }
    }
    Ok(out)
}

/// `text` with every placeholder given a neutral value (for parsing SQL before any partition).
pub fn neutral(text: &str) -> Result<String, String> {
    let p = Partition::from_key("2000-01-01").map_err(|e| e.to_string())?;
    render(text, Some(&p), Context::Sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_key_and_window() {
        let p = Partition::from_key("2024-01-02").unwrap();
        assert_eq!(render("raw/{partition_key}/*.csv", Some(&p), Context::Path).unwrap(), "raw/2024-01-02/*.csv");
        assert_eq!(
            render("ts >= '{partition_start}' AND ts < '{partition_end}'", Some(&p), Context::Sql).unwrap(),
            "ts >= '2024-01-02T00:00:00' AND ts < '2024-01-03T00:00:00'"
        );
        assert!(render("{partition_key}", None, Context::Path).unwrap_err().contains("--partition"));
        assert!(placeholders("{nope}").unwrap_err().contains("unknown placeholder"));
        let s = Partition::from_key("eu").unwrap();
        assert!(render("{partition_start}", Some(&s), Context::Sql).unwrap_err().contains("time window"));
    }

    #[test]
    fn a_key_renders_for_where_it_goes() {
        let p = Partition::from_key("' OR '1'='1").unwrap();
        assert_eq!(
            render("SELECT * FROM t WHERE k = '{partition_key}'", Some(&p), Context::Sql).unwrap(),
            "SELECT * FROM t WHERE k = ''' OR ''1''=''1'",
            "the key stays inside its literal"
        );
        assert_eq!(render("out/k={partition_key}", Some(&p), Context::Path).unwrap(), "out/k=%27 OR %271%27%3D%271");
        let hourly = Partition::from_key("2024-01-02-03:00").unwrap();
        assert_eq!(render("raw/{partition_key}", Some(&hourly), Context::Path).unwrap(), "raw/2024-01-02-03%3A00");
    }

    #[test]
    fn doubled_braces_are_literal() {
        let p = Partition::from_key("eu").unwrap();
        assert_eq!(
            render("SELECT '{{\"k\": 1}}' AS j, '{partition_key}' AS p", Some(&p), Context::Sql).unwrap(),
            "SELECT '{\"k\": 1}' AS j, 'eu' AS p"
        );
        assert_eq!(placeholders("a{{b}}c").unwrap(), Vec::<&str>::new());
        assert!(placeholders("a}b").unwrap_err().contains("lone"));
        assert!(placeholders("a{b").unwrap_err().contains("unclosed"));
    }

    #[test]
    fn sql_placeholders_must_be_quoted() {
        assert!(check_sql("SELECT * FROM t WHERE d = '{partition_key}'").is_ok());
        assert!(check_sql("SELECT * FROM t WHERE d = 'x''{partition_key}'").is_ok());
        assert!(check_sql("SELECT * FROM t WHERE d = {partition_key}").unwrap_err().contains("single-quoted"));
        assert!(check_sql("SELECT 'a' FROM t WHERE d = {partition_start}").is_err());
    }

    fn refusal(sql: &str) -> String {
        check_sql(sql).expect_err(sql)
    }

    #[test]
    fn an_apostrophe_in_a_comment_does_not_make_a_bare_placeholder_quoted() {
        // Counting apostrophes let this through, and the partition `1 OR 1=1` returned every row.
        assert_eq!(
            refusal("-- the user's pick\nSELECT * FROM t WHERE v = {partition_key}"),
            "{partition_key} sits bare, outside any string; it must sit inside a single-quoted string \
             ('{partition_key}'), so a partition key can't change the query"
        );
        assert!(
            refusal("/* it's */ SELECT * FROM t WHERE v = {partition_key}").starts_with("{partition_key} sits bare")
        );
        assert!(
            refusal("SELECT * FROM t -- '\nWHERE v = {partition_key} -- '").starts_with("{partition_key} sits bare")
        );
    }

    #[test]
    fn a_placeholder_in_an_identifier_a_dollar_string_a_comment_or_another_literal_is_refused() {
        assert!(
            refusal(r#"SELECT "{partition_key}" FROM t"#)
                .starts_with("{partition_key} sits in a double-quoted identifier; it must sit inside")
        );
        assert!(
            refusal(r#"SELECT * FROM t WHERE v = "it's {partition_key}""#)
                .starts_with("{partition_key} sits in a double-quoted identifier;")
        );
        assert!(
            refusal("SELECT * FROM t WHERE v = $${partition_key}$$")
                .starts_with("{partition_key} sits in a dollar-quoted string;")
        );
        assert!(
            refusal("SELECT * FROM t WHERE v = $tag$'{partition_end}'$tag$")
                .starts_with("{partition_end} sits in a dollar-quoted string;")
        );
        // E'…' reads backslash escapes, so doubling the value's quotes would not keep it in.
        assert!(
            refusal("SELECT * FROM t WHERE v = E'{partition_key}'")
                .starts_with("{partition_key} sits in a literal other than a plain '…' string;")
        );
        assert!(refusal("SELECT * FROM t /* day {partition_key} */").starts_with("{partition_key} sits in a comment;"));
        assert!(refusal("SELECT * FROM t -- day '{partition_key}'").starts_with("{partition_key} sits in a comment;"));
        assert!(
            refusal("SELECT * FROM t WHERE a >= '{partition_start}' AND a < {partition_end}")
                .starts_with("{partition_end} sits bare"),
            "the second of two placeholders is the bare one"
        );
    }

    #[test]
    fn a_placeholder_in_a_plain_string_passes() {
        for sql in [
            "SELECT * FROM t WHERE v = '{partition_key}'",
            "SELECT * FROM t WHERE v = 'it''s {partition_key}'",
            "-- the user's pick\nSELECT * FROM t WHERE v = '{partition_key}' AND w = 'a''{partition_key}'''",
            r#"SELECT "it's" FROM t WHERE ts >= '{partition_start}' AND ts < '{partition_end}' -- a '"#,
            r#"SELECT '{{"k": 1}}' AS j FROM t WHERE v = '{partition_key}'"#,
            "SELECT * FROM t",
        ] {
            assert_eq!(check_sql(sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn a_rendered_key_stays_inside_the_literal_the_check_accepted() {
        use sqlparser::dialect::GenericDialect;
        use sqlparser::tokenizer::{Token, Tokenizer};

        let sql = "SELECT * FROM t WHERE v = '{partition_key}' -- it's";
        assert_eq!(check_sql(sql), Ok(()));
        for key in ["1' OR 1=1 --", "x'' OR '1'='1", "it's $$ a key", "a'b -- c"] {
            let p = Partition::from_key(key).unwrap();
            let rendered = render(sql, Some(&p), Context::Sql).unwrap();
            let tokens = Tokenizer::new(&GenericDialect {}, &rendered).tokenize().unwrap();
            let literals: Vec<&Token> = tokens.iter().filter(|t| matches!(t, Token::SingleQuotedString(_))).collect();
            assert_eq!(literals, [&Token::SingleQuotedString(key.to_string())], "{rendered}");
        }
    }
}
