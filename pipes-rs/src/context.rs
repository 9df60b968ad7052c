//! The context the orchestrator sends: what the step targets (assets, partitions), which run it
//! is, and the user's extras. Deserialization tolerates unknown keys so newer orchestrators work.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{PipesError, Result};

/// The context data exactly as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextData {
    /// Escaped asset keys, or null for an op step.
    #[serde(default)]
    pub asset_keys: Option<Vec<String>>,
    /// Code version per asset key.
    #[serde(default)]
    pub code_version_by_asset_key: Option<BTreeMap<String, Option<String>>>,
    /// Provenance per asset key.
    #[serde(default)]
    pub provenance_by_asset_key: Option<BTreeMap<String, Option<Provenance>>>,
    /// The partition key when the run targets exactly one partition.
    #[serde(default)]
    pub partition_key: Option<String>,
    /// The partition key range when the run targets exactly one partition.
    #[serde(default)]
    pub partition_key_range: Option<PartitionKeyRange>,
    /// The time window of a time-partitioned step.
    #[serde(default)]
    pub partition_time_window: Option<RawTimeWindow>,
    /// The Dagster run id.
    pub run_id: String,
    /// The job name.
    #[serde(default)]
    pub job_name: Option<String>,
    /// The retry number (0 on the first attempt).
    #[serde(default)]
    pub retry_number: u32,
    /// User extras.
    #[serde(default)]
    pub extras: Map<String, Value>,
}

impl ContextData {
    /// The context of a process that was not launched by Dagster: nothing targeted.
    pub fn unorchestrated() -> Self {
        Self {
            asset_keys: None,
            code_version_by_asset_key: None,
            provenance_by_asset_key: None,
            partition_key: None,
            partition_key_range: None,
            partition_time_window: None,
            run_id: String::new(),
            job_name: None,
            retry_number: 0,
            extras: Map::new(),
        }
    }

    /// Parses context JSON and checks that the time window is made of real timestamps.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let data: Self = serde_json::from_slice(bytes).map_err(PipesError::ContextData)?;
        if let Some(w) = &data.partition_time_window {
            w.parse()?;
        }
        Ok(data)
    }
}

/// Data provenance of an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The code version that produced the current data.
    pub code_version: String,
    /// Data versions of the inputs, by escaped asset key.
    pub input_data_versions: BTreeMap<String, String>,
    /// Whether the data version was set by the user.
    pub is_user_provided: bool,
}

/// An inclusive range of partition keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionKeyRange {
    /// First key.
    pub start: String,
    /// Last key (inclusive).
    pub end: String,
}

/// A time window as sent: ISO-8601 strings with an offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawTimeWindow {
    /// Start, inclusive.
    pub start: String,
    /// End, exclusive.
    pub end: String,
}

impl RawTimeWindow {
    /// The window as real timestamps.
    pub fn parse(&self) -> Result<TimeWindow> {
        let parse = |bound: &'static str, value: &str| {
            DateTime::parse_from_rfc3339(value).map_err(|e| PipesError::TimeWindow {
                bound,
                value: value.to_string(),
                detail: e.to_string(),
            })
        };
        Ok(TimeWindow { start: parse("start", &self.start)?, end: parse("end", &self.end)? })
    }
}

/// A partition time window: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// Start, inclusive.
    pub start: DateTime<FixedOffset>,
    /// End, exclusive.
    pub end: DateTime<FixedOffset>,
}

const RANGED_HINT: &str = " (it is null when the run targets no partition, or a range of them: Dagster sends no partition in a ranged run, so the orchestrator must pass the range in extras)";

/// Read-only accessors with the reference implementation's semantics.
impl ContextData {
    /// True when the step targets assets.
    pub fn is_asset_step(&self) -> bool {
        self.asset_keys.is_some()
    }

    /// True when the step targets exactly one partition.
    pub fn is_partition_step(&self) -> bool {
        self.partition_key_range.is_some()
    }

    /// The step's asset keys. Errors for an op step.
    pub fn asset_keys(&self) -> Result<&[String]> {
        self.asset_keys
            .as_deref()
            .ok_or(PipesError::Undefined { field: "asset_keys", hint: " (this is an op step, not an asset step)" })
    }

    /// The step's single asset key. Errors when there are none or several.
    pub fn asset_key(&self) -> Result<&str> {
        match self.asset_keys()? {
            [one] => Ok(one),
            keys => Err(PipesError::AmbiguousAssetKey { count: keys.len(), keys: keys.to_vec() }),
        }
    }

    /// Code versions by asset key.
    pub fn code_version_by_asset_key(&self) -> Result<&BTreeMap<String, Option<String>>> {
        self.code_version_by_asset_key.as_ref().ok_or(PipesError::Undefined {
            field: "code_version_by_asset_key",
            hint: " (this is an op step, not an asset step)",
        })
    }

    /// The single asset's code version (which may be unset).
    pub fn code_version(&self) -> Result<Option<&str>> {
        let key = self.asset_key()?;
        Ok(self.code_version_by_asset_key()?.get(key).and_then(Option::as_deref))
    }

    /// Provenance by asset key.
    pub fn provenance_by_asset_key(&self) -> Result<&BTreeMap<String, Option<Provenance>>> {
        self.provenance_by_asset_key.as_ref().ok_or(PipesError::Undefined {
            field: "provenance_by_asset_key",
            hint: " (this is an op step, not an asset step)",
        })
    }

    /// The single asset's provenance (none before its first materialization).
    pub fn provenance(&self) -> Result<Option<&Provenance>> {
        let key = self.asset_key()?;
        Ok(self.provenance_by_asset_key()?.get(key).and_then(Option::as_ref))
    }

    /// The partition key. Errors unless the run targets exactly one partition.
    pub fn partition_key(&self) -> Result<&str> {
        self.partition_key.as_deref().ok_or(PipesError::Undefined { field: "partition_key", hint: RANGED_HINT })
    }

    /// The partition key range. Errors unless the run targets exactly one partition.
    pub fn partition_key_range(&self) -> Result<&PartitionKeyRange> {
        self.partition_key_range
            .as_ref()
            .ok_or(PipesError::Undefined { field: "partition_key_range", hint: RANGED_HINT })
    }

    /// The time window, as timestamps. Errors when the step is not partitioned (as the
    /// reference does); `None` for a partitioned step without time partitions.
    pub fn partition_time_window(&self) -> Result<Option<TimeWindow>> {
        self.partition_key_range()?;
        self.partition_time_window.as_ref().map(RawTimeWindow::parse).transpose()
    }

    /// The Dagster run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The job name.
    pub fn job_name(&self) -> Option<&str> {
        self.job_name.as_deref()
    }

    /// The retry number.
    pub fn retry_number(&self) -> u32 {
        self.retry_number
    }

    /// All extras.
    pub fn extras(&self) -> &Map<String, Value> {
        &self.extras
    }

    /// One extra. Errors when it was not passed.
    pub fn get_extra(&self, key: &str) -> Result<&Value> {
        self.extras.get(key).ok_or_else(|| PipesError::MissingExtra {
            key: key.to_string(),
            present: self.extras.keys().cloned().collect(),
        })
    }

    /// One extra, deserialized into `T`.
    pub fn get_extra_as<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        T::deserialize(self.get_extra(key)?)
            .map_err(|e| PipesError::ExtraType { key: key.to_string(), detail: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: Value) -> ContextData {
        ContextData::from_json(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn tolerates_unknown_keys_and_missing_optionals() {
        let d = data(json!({"run_id": "r", "something_new": {"x": 1}}));
        assert_eq!(d.run_id(), "r");
        assert!(!d.is_asset_step());
        assert!(d.asset_key().is_err());
    }

    #[test]
    fn time_window_must_be_a_timestamp() {
        let bad = json!({"run_id": "r", "partition_key_range": {"start": "a", "end": "a"},
                         "partition_time_window": {"start": "yesterday", "end": "today"}});
        let err = ContextData::from_json(bad.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("partition_time_window.start"), "{err}");
    }

    #[test]
    fn extras_typed_access() {
        let d = data(json!({"run_id": "r", "extras": {"n": 3, "s": "x"}}));
        assert_eq!(d.get_extra_as::<u32>("n").unwrap(), 3);
        assert!(d.get_extra_as::<u32>("s").is_err());
        let err = d.get_extra("missing").unwrap_err().to_string();
        assert!(err.contains("\"n\"") && err.contains("\"s\""), "{err}");
    }
}
