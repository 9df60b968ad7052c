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

impl PartitionKey {
    /// A key, checked.
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidPartitionKey> {
        let key = key.into();
        if key.is_empty() {
            return Err(InvalidPartitionKey { key, reason: "it is empty" });
        }
        Ok(Self(key))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
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

    /// The key made safe for object names and ids.
    pub fn slug(&self) -> String {
        self.key.0.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.=".contains(c) { c } else { '_' }).collect()
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
        assert_eq!(Partition::from_key("2024-01-02|eu").unwrap().slug(), "2024-01-02_eu");
        assert!(Partition::from_key("").unwrap_err().to_string().contains("empty"));
        assert!(serde_json::from_str::<PartitionKey>("\"\"").is_err());
    }
}
