//! Globs over object keys: the literal prefix is listed, the rest is matched.

use globset::{GlobBuilder, GlobMatcher as Inner};

/// A compiled key glob (`raw/2024-01-0*/part-*.csv.gz`). `*` stays within one path component;
/// `**` crosses them.
#[derive(Debug, Clone)]
pub struct GlobMatcher {
    pattern: String,
    prefix: String,
    matcher: Option<Inner>,
}

impl GlobMatcher {
    /// Compiles a pattern. A pattern without glob characters matches that key, or every key
    /// below it when it names a directory.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let pattern = pattern.trim_matches('/').to_string();
        let first_glob = pattern.find(['*', '?', '[', '{']);
        let prefix = match first_glob {
            Some(i) => pattern[..i].rsplit_once('/').map(|(p, _)| format!("{p}/")).unwrap_or_default(),
            None => pattern.clone(),
        };
        let matcher = match first_glob {
            Some(_) => Some(
                GlobBuilder::new(&pattern)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| format!("invalid glob {pattern:?}: {e}"))?
                    .compile_matcher(),
            ),
            None => None,
        };
        Ok(Self { pattern, prefix, matcher })
    }

    /// The prefix to list.
    pub fn list_prefix(&self) -> &str {
        &self.prefix
    }

    /// True when `key` is selected.
    pub fn matches(&self, key: &str) -> bool {
        // Only what lies below the listed prefix can be hidden: the root itself may well be
        // in a dot-directory.
        let below = key.strip_prefix(self.prefix.as_str()).unwrap_or(key);
        let hidden = below.split('/').any(|c| c.starts_with('.') || c.starts_with('_'));
        if hidden {
            // Temporary files, markers and quarantine data are never inputs.
            return false;
        }
        match &self.matcher {
            Some(m) => m.is_match(key),
            None => key == self.pattern || key.starts_with(&format!("{}/", self.pattern)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_matching() {
        let g = GlobMatcher::new("raw/2024-01-02/*.csv.gz").unwrap();
        assert_eq!(g.list_prefix(), "raw/2024-01-02/");
        assert!(g.matches("raw/2024-01-02/a.csv.gz"));
        assert!(!g.matches("raw/2024-01-02/sub/a.csv.gz"));
        assert!(!g.matches("raw/2024-01-02/.a.csv.gz.tmp"));
        let dir = GlobMatcher::new("clean/day=2024-01-02").unwrap();
        assert!(dir.matches("clean/day=2024-01-02/part-1.parquet"));
        assert!(!dir.matches("clean/day=2024-01-02x/part-1.parquet"));
        assert!(!dir.matches("clean/day=2024-01-02/_quarantine/x.parquet"));
        let in_dot_dir = GlobMatcher::new("tmp/.tmpX/raw/*/a.csv").unwrap();
        assert!(in_dot_dir.matches("tmp/.tmpX/raw/2024/a.csv"));
        assert!(!in_dot_dir.matches("tmp/.tmpX/raw/_q/a.csv"));
        let deep = GlobMatcher::new("clean/**/*.parquet").unwrap();
        assert!(deep.matches("clean/day=1/k=2/part.parquet"));
    }
}
