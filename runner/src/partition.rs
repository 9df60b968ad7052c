//! Partitions a run covers: a key, and for time partitions the `[start, end)` window.
//! Keys arrive from the CLI, or from Dagster (the Pipes context for one partition, the extras
//! for a range, since Dagster sends no partition in the context of a ranged run).

use chrono::{Duration, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Partition {
    /// The partition key (`2024-01-02`, `eu`, `2024-01-02|eu`).
    pub key: String,
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
    pub fn from_key(key: &str) -> Self {
        let (start, end) = if let Ok(day) = NaiveDate::parse_from_str(key, "%Y-%m-%d") {
            let start = day.and_hms_opt(0, 0, 0);
            (start, start.map(|s| s + Duration::days(1)))
        } else if let Ok(hour) = NaiveDateTime::parse_from_str(key, "%Y-%m-%d-%H:%M") {
            (Some(hour), Some(hour + Duration::hours(1)))
        } else {
            (None, None)
        };
        Self { key: key.to_string(), start, end }
    }

    /// A partition with an explicit window (from Dagster).
    pub fn with_window(key: &str, start: NaiveDateTime, end: NaiveDateTime) -> Self {
        Self { key: key.to_string(), start: Some(start), end: Some(end) }
    }

    /// The key made safe for object names and ids.
    pub fn slug(&self) -> String {
        self.key.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.=".contains(c) { c } else { '_' }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_from_dagster_key_formats() {
        let d = Partition::from_key("2024-02-28");
        assert_eq!(d.end.unwrap() - d.start.unwrap(), Duration::days(1));
        let h = Partition::from_key("2024-02-28-23:00");
        assert_eq!(h.end.unwrap().to_string(), "2024-02-29 00:00:00");
        assert_eq!(Partition::from_key("eu").start, None);
        assert_eq!(Partition::from_key("2024-01-02|eu").slug(), "2024-01-02_eu");
    }
}
