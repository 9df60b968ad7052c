//! Partitions a run covers: a key, and for time partitions the `[start, end)` window.
//! Keys arrive from the CLI, or from Dagster (the Pipes context for one partition, the extras
//! for a range, since Dagster sends no partition in the context of a ranged run).

use std::fmt;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// A partition key as Dagster names it (`2024-01-02`, `eu`, `2024-01-02|eu`). Every key enters
/// through [`PartitionKey::new`] (the CLI, the Pipes context, the extras, a work item), so the
/// rules on what a key may be live here alone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PartitionKey(String);

impl fmt::Debug for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A partition key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("partition key {key:?}: {reason}")]
pub struct InvalidPartitionKey {
    /// The key as given.
    pub key: String,
    /// Why it is refused.
    pub reason: &'static str,
}

/// The longest folder name a key may have, in bytes (its escaped form, [`PartitionKey::path_segment`]):
/// file systems allow 255 bytes per name, and a key's folder may carry a prefix (`day=`) or a
/// suffix. An S3 key is at most 1,024 bytes, and a key appears in several of them.
const MAX_SEGMENT_BYTES: usize = 200;

/// Characters that would make a key a glob when rendered into an input path.
const GLOB: &[char] = &['*', '?', '[', ']', '{', '}'];

/// Characters escaped in a key's path form, as Hive and Spark escape partition values
/// (`%XX`, upper-case hex): the ones that mean something in a path, a URI or a hive directory
/// name, and `%` itself so the encoding can be undone.
const ESCAPED: &[char] = &['"', '#', '%', '\'', '*', '/', ':', '=', '?', '\\', '{', '[', ']', '^'];

impl PartitionKey {
    /// A key, checked: not empty, a folder name of at most 200 bytes, and none of what would let it leave its
    /// own folder or widen a glob: no `/` or `\\`, no `.` or `..`, no glob characters
    /// (`* ? [ ] { }`), no control characters, no scheme (`s3://`).
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidPartitionKey> {
        let key = key.into();
        let refuse = |reason| Err(InvalidPartitionKey { key: key.clone(), reason });
        if key.is_empty() {
            return refuse("it is empty");
        }
        if key.len() > MAX_SEGMENT_BYTES {
            return refuse("its folder name would be longer than 200 bytes");
        }
        if key.contains('/') || key.contains('\\') {
            return refuse("it has a path separator (`/` or `\\`), which would write into another partition's folder");
        }
        if key == "." || key == ".." {
            return refuse("`.` and `..` name a folder, not a partition");
        }
        if key.contains(GLOB) {
            return refuse("it has a glob character (`*`, `?`, `[`, `]`, `{` or `}`), which would widen an input path");
        }
        if key.chars().any(char::is_control) {
            return refuse("it has a control character");
        }
        if key.contains("://") {
            return refuse("it looks like a URL (`scheme://`)");
        }
        if key.starts_with(char::is_whitespace) || key.ends_with(char::is_whitespace) {
            return refuse("it starts or ends with white space");
        }
        let checked = Self(key);
        if checked.path_segment().len() > MAX_SEGMENT_BYTES {
            return Err(InvalidPartitionKey {
                key: checked.0,
                reason: "its folder name (escaped: `%` and `:` take 3 bytes each) would be longer than 200 bytes",
            });
        }
        Ok(checked)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as one path segment: `%XX`-escaped the way Hive and Spark escape partition
    /// values, so distinct keys never share a folder (`a b`, `a_b` and `a:b` are three) and the
    /// segment reads back with [`PartitionKey::from_path_segment`].
    pub fn path_segment(&self) -> String {
        // `_` alone names an unpartitioned run's folder.
        if self.0 == "_" {
            return "%5F".into();
        }
        let mut out = String::with_capacity(self.0.len());
        for c in self.0.chars() {
            if ESCAPED.contains(&c) {
                out.push_str(&format!("%{:02X}", c as u32));
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The key a path segment made by [`PartitionKey::path_segment`] stands for.
    pub fn from_path_segment(segment: &str) -> Result<Self, InvalidPartitionKey> {
        let bad = || InvalidPartitionKey { key: segment.to_string(), reason: "it is not an escaped partition key" };
        let mut out = String::with_capacity(segment.len());
        let mut rest = segment;
        while let Some(i) = rest.find('%') {
            out.push_str(&rest[..i]);
            let hex = rest.get(i + 1..i + 3).ok_or_else(bad)?;
            let code = u8::from_str_radix(hex, 16).map_err(|_| bad())?;
            out.push(char::from(code));
            rest = &rest[i + 3..];
        }
        out.push_str(rest);
        Self::new(out)
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PartitionKey {
    type Error = InvalidPartitionKey;

    fn try_from(key: String) -> Result<Self, InvalidPartitionKey> {
        Self::new(key)
    }
}

impl From<PartitionKey> for String {
    fn from(key: PartitionKey) -> String {
        key.0
    }
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Partition {
    /// The partition key.
    pub key: PartitionKey,
    /// Window start (UTC, inclusive), for time partitions.
    #[serde(default)]
    pub start: Option<NaiveDateTime>,
    /// Window end (UTC, exclusive).
    #[serde(default)]
    pub end: Option<NaiveDateTime>,
}

impl Partition {
    /// A partition from its key alone. Dagster's daily (`2024-01-02`) and hourly
    /// (`2024-01-02-03:00`) key formats get their window; other keys get none.
    pub fn from_key(key: &str) -> Result<Self, InvalidPartitionKey> {
        let key = PartitionKey::new(key)?;
        let (start, end) = if let Ok(day) = NaiveDate::parse_from_str(key.as_str(), "%Y-%m-%d") {
            let start = day.and_hms_opt(0, 0, 0);
            (start, start.map(|s| s + Duration::days(1)))
        } else if let Ok(hour) = NaiveDateTime::parse_from_str(key.as_str(), "%Y-%m-%d-%H:%M") {
            (Some(hour), Some(hour + Duration::hours(1)))
        } else {
            (None, None)
        };
        Ok(Self { key, start, end })
    }

    /// A partition with an explicit window (from Dagster).
    pub fn with_window(key: &str, start: NaiveDateTime, end: NaiveDateTime) -> Result<Self, InvalidPartitionKey> {
        Ok(Self { key: PartitionKey::new(key)?, start: Some(start), end: Some(end) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_from_dagster_key_formats() {
        let d = Partition::from_key("2024-02-28").unwrap();
        assert_eq!(d.end.unwrap() - d.start.unwrap(), Duration::days(1));
        let h = Partition::from_key("2024-02-28-23:00").unwrap();
        assert_eq!(h.end.unwrap().to_string(), "2024-02-29 00:00:00");
        assert_eq!(Partition::from_key("eu").unwrap().start, None);
        assert!(Partition::from_key("").unwrap_err().to_string().contains("empty"));
        assert!(serde_json::from_str::<PartitionKey>("\"\"").is_err());
    }

    #[test]
    fn hostile_keys_are_refused_with_the_reason() {
        for (key, reason) in [
            ("a/b", "path separator"),
            ("..\\x", "path separator"),
            ("/etc", "path separator"),
            ("..", "name a folder"),
            ("*", "glob character"),
            ("2024-01-[0-9]", "glob character"),
            ("{partition_key}", "glob character"),
            ("a\nb", "control character"),
            ("a\u{7}", "control character"),
            ("s3:x", "ok"),
            ("s3://other/x", "path separator"),
            ("file:\\\\x", "path separator"),
            (" 2024", "white space"),
        ] {
            match (PartitionKey::new(key), reason) {
                (Ok(_), "ok") => {}
                (Ok(k), _) => panic!("{k:?} was accepted"),
                (Err(e), r) => assert!(e.to_string().contains(r), "{key:?}: {e}"),
            }
        }
        assert!(PartitionKey::new("x".repeat(200)).is_ok());
        assert!(PartitionKey::new("x".repeat(201)).unwrap_err().reason.contains("longer than 200 bytes"));
        // Escaping makes the folder name longer than the key: 67 colons are 201 bytes of folder.
        assert!(PartitionKey::new(":".repeat(66)).is_ok());
        assert!(PartitionKey::new(":".repeat(67)).unwrap_err().reason.contains("escaped"));
        for fine in
            ["2024-01-02", "2024-01-02-03:00", "2024-01-02|eu", "a b", "a_b", "o'brien", "' OR '1'='1", "Zürich 東京"]
        {
            assert!(PartitionKey::new(fine).is_ok(), "{fine:?}");
        }
    }

    #[test]
    fn the_path_form_is_one_segment_per_key_and_reads_back() {
        let keys = [
            "_",
            "a b",
            "a_b",
            "a:b",
            "a%3Ab",
            "a=b",
            "o'brien",
            "' OR '1'='1",
            "2024-01-02|eu",
            "Zürich",
            "%",
            "x^y#z",
        ];
        let mut segments = std::collections::BTreeSet::new();
        for k in keys {
            let key = PartitionKey::new(k).unwrap();
            let seg = key.path_segment();
            assert!(!seg.contains('/') && !seg.contains(':') && !seg.contains('='), "{seg}");
            assert!(segments.insert(seg.clone()), "{k:?} shares its folder {seg:?}");
            assert_eq!(PartitionKey::from_path_segment(&seg).unwrap(), key, "{seg}");
        }
        assert_eq!(PartitionKey::new("2024-01-02").unwrap().path_segment(), "2024-01-02", "daily keys are unchanged");
        assert_eq!(PartitionKey::new("2024-01-02-03:00").unwrap().path_segment(), "2024-01-02-03%3A00");
        assert!(PartitionKey::from_path_segment("a%2").is_err());
        assert!(PartitionKey::from_path_segment("a%2F..").is_err(), "an escaped separator is still refused");
    }
}
