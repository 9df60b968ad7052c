//! What the front end says when it can't take a query: the construct, where it stands, and why.

use sqlparser::ast::Spanned;

/// A query the front end refuses, or can't read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// The text is not SQL the parser reads.
    #[error("the SQL does not parse: {0}")]
    Parse(String),
    /// The text is not one query (a `SELECT`, with its CTEs and set operations).
    #[error("{0}")]
    NotAQuery(String),
    /// The planner can't give the query a meaning: an unknown column or function, types that
    /// don't fit, an aggregate misplaced.
    #[error("the SQL can't be planned: {0}")]
    Plan(String),
    /// A construct the runner refuses (its answer would not be SQL's).
    #[error("{at}`{construct}`: {why}")]
    Unsupported {
        /// The construct as written (shortened).
        construct: String,
        /// `line L, column C: ` when the parser kept the position, else empty.
        at: String,
        /// Why, and what to write instead.
        why: String,
    },
}

impl SqlError {
    /// Refuses `node`, quoting it and its position.
    pub(crate) fn unsupported(node: &(impl Spanned + std::fmt::Display), why: impl Into<String>) -> Self {
        let span = node.span();
        let at = if span.start.line > 0 {
            format!("line {}, column {}: ", span.start.line, span.start.column)
        } else {
            String::new()
        };
        Self::Unsupported { construct: shorten(&node.to_string()), at, why: why.into() }
    }
}

/// A construct quoted in a message: whole if short, else its start.
fn shorten(text: &str) -> String {
    const MAX: usize = 120;
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{} …", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_constructs_are_shortened_on_a_character_boundary() {
        let text = "é".repeat(200);
        let short = shorten(&text);
        assert_eq!(short.chars().count(), 122);
        assert!(short.ends_with(" …"));
        assert_eq!(shorten("a  b\n c"), "a b c");
    }
}
