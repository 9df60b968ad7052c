//! Where data lives: a local path or an `s3://bucket/key` URI, split into the store and the
//! key inside it, so that relative paths in a job spec resolve against the job's root.

use std::path::{Path, PathBuf};

/// A resolved location: the store's root, and the key (or key pattern) under it. It travels
/// (in work items, manifests and summaries) as its URI: `s3://bucket/key` or an absolute path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Location {
    /// A local filesystem path: the store is rooted at `root`, `key` is below it.
    Local {
        /// The directory the store is rooted at.
        root: PathBuf,
        /// The key (may hold glob characters and be empty for the root itself).
        key: String,
    },
    /// An S3 object or prefix.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key (may hold glob characters and be empty).
        key: String,
    },
}

impl Location {
    /// Parses an absolute location: `s3://bucket/key` or an absolute local path (`file://`
    /// accepted). Local paths are rooted at `/`.
    pub fn parse_absolute(text: &str) -> Option<Self> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return None;
            }
            return Some(Self::S3 { bucket: bucket.to_string(), key: key.trim_matches('/').to_string() });
        }
        let path = text.strip_prefix("file://").unwrap_or(text);
        Path::new(path)
            .is_absolute()
            .then(|| Self::Local { root: PathBuf::from("/"), key: path.trim_matches('/').to_string() })
    }

    /// Resolves `text` against `base` when it is relative.
    pub fn resolve(base: &Location, text: &str) -> Location {
        if let Some(abs) = Self::parse_absolute(text) {
            return abs;
        }
        base.join(text)
    }

    /// Appends a relative path.
    pub fn join(&self, rel: &str) -> Location {
        let rel = rel.trim_matches('/');
        let joined = |key: &str| match (key.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => key.to_string(),
            (false, false) => format!("{key}/{rel}"),
        };
        match self {
            Self::Local { root, key } => Self::Local { root: root.clone(), key: joined(key) },
            Self::S3 { bucket, key } => Self::S3 { bucket: bucket.clone(), key: joined(key) },
        }
    }

    /// The key within the store.
    pub fn key(&self) -> &str {
        match self {
            Self::Local { key, .. } | Self::S3 { key, .. } => key,
        }
    }

    /// The same store, another key.
    pub fn with_key(&self, new_key: String) -> Location {
        match self {
            Self::Local { root, .. } => Self::Local { root: root.clone(), key: new_key },
            Self::S3 { bucket, .. } => Self::S3 { bucket: bucket.clone(), key: new_key },
        }
    }

    /// True when both are in the same store.
    pub fn same_store(&self, other: &Location) -> bool {
        match (self, other) {
            (Self::Local { root: a, .. }, Self::Local { root: b, .. }) => a == b,
            (Self::S3 { bucket: a, .. }, Self::S3 { bucket: b, .. }) => a == b,
            _ => false,
        }
    }

    /// True for S3.
    pub fn is_s3(&self) -> bool {
        matches!(self, Self::S3 { .. })
    }
}

impl TryFrom<String> for Location {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse_absolute(&text).ok_or_else(|| format!("{text:?} is not an absolute path or s3:// URI"))
    }
}

impl From<Location> for String {
    fn from(location: Location) -> String {
        location.to_string()
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local { root, key } => write!(f, "{}", root.join(key).display()),
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_and_absolute() {
        let base = Location::parse_absolute("s3://lake/jobs/events").unwrap();
        assert_eq!(
            Location::resolve(&base, "raw/*.csv"),
            Location::S3 { bucket: "lake".into(), key: "jobs/events/raw/*.csv".into() }
        );
        assert_eq!(Location::resolve(&base, "s3://other/x").to_string(), "s3://other/x");
        let local = Location::resolve(&base, "/data/x");
        assert_eq!(local.key(), "data/x");
        assert!(Location::parse_absolute("s3://").is_none());
        assert!(Location::parse_absolute("relative/path").is_none());
        let json = serde_json::to_string(&base).unwrap();
        assert_eq!(json, "\"s3://lake/jobs/events\"");
        assert_eq!(serde_json::from_str::<Location>(&json).unwrap(), base);
        assert!(serde_json::from_str::<Location>("\"relative\"").is_err());
    }
}
