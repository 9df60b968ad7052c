//! Metadata values: the 17 types Dagster accepts, each serialized as
//! `{"raw_value": V, "type": T}`. There is deliberately no `job` type: Dagster rejects it.

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::{PipesError, Result};

/// One metadata value with its Dagster type.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MetadataValue {
    /// Let Dagster infer the type (str→text, int→int, float→float, bool→bool, list/dict→json).
    Infer(Value),
    /// Plain text.
    Text(String),
    /// A URL, shown as a link.
    Url(String),
    /// A filesystem path.
    Path(String),
    /// A path to a notebook.
    Notebook(String),
    /// Markdown.
    Md(String),
    /// A Dagster run id, shown as a link to the run.
    DagsterRun(String),
    /// Any JSON.
    Json(Value),
    /// A float; always written with a decimal point.
    Float(f64),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A point in time, in Unix seconds.
    Timestamp(f64),
    /// An explicit null.
    Null,
    /// A reference to another asset, by its `/`-joined key.
    Asset(String),
    /// A small table of records with a schema.
    Table(Table),
    /// A table schema.
    TableSchema(TableSchema),
    /// Column-level lineage.
    TableColumnLineage(TableColumnLineage),
}

impl MetadataValue {
    /// The `type` tag Dagster expects.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Infer(_) => "__infer__",
            Self::Text(_) => "text",
            Self::Url(_) => "url",
            Self::Path(_) => "path",
            Self::Notebook(_) => "notebook",
            Self::Md(_) => "md",
            Self::DagsterRun(_) => "dagster_run",
            Self::Json(_) => "json",
            Self::Float(_) => "float",
            Self::Int(_) => "int",
            Self::Bool(_) => "bool",
            Self::Timestamp(_) => "timestamp",
            Self::Null => "null",
            Self::Asset(_) => "asset",
            Self::Table(_) => "table",
            Self::TableSchema(_) => "table_schema",
            Self::TableColumnLineage(_) => "table_column_lineage",
        }
    }

    /// A timestamp from a `chrono` date-time.
    pub fn timestamp<Tz: chrono::TimeZone>(at: &chrono::DateTime<Tz>) -> Self {
        Self::Timestamp(at.timestamp_micros() as f64 / 1e6)
    }

    /// Refuses values JSON cannot carry faithfully (NaN and infinite floats become `null`,
    /// which Dagster rejects for `float`).
    pub(crate) fn validate(&self, key: &str) -> Result<()> {
        let bad_float = |what: &str| PipesError::InvalidValue {
            what: format!("metadata {key:?}"),
            detail: format!("{what} is not finite; JSON cannot carry NaN or infinity"),
        };
        match self {
            Self::Float(f) | Self::Timestamp(f) if !f.is_finite() => Err(bad_float("the float")),
            Self::Table(t) => {
                for record in &t.records {
                    for (col, cell) in record {
                        if let TableCell::Float(f) = cell
                            && !f.is_finite()
                        {
                            return Err(bad_float(&format!("table cell {col:?}")));
                        }
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl Serialize for MetadataValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("MetadataValue", 2)?;
        match self {
            Self::Infer(v) | Self::Json(v) => s.serialize_field("raw_value", v)?,
            Self::Text(v)
            | Self::Url(v)
            | Self::Path(v)
            | Self::Notebook(v)
            | Self::Md(v)
            | Self::DagsterRun(v)
            | Self::Asset(v) => s.serialize_field("raw_value", v)?,
            // serde_json writes f64 with a decimal point (1.0), as Dagster's `float` requires.
            Self::Float(v) | Self::Timestamp(v) => s.serialize_field("raw_value", v)?,
            Self::Int(v) => s.serialize_field("raw_value", v)?,
            Self::Bool(v) => s.serialize_field("raw_value", v)?,
            Self::Null => s.serialize_field("raw_value", &())?,
            Self::Table(v) => s.serialize_field("raw_value", v)?,
            Self::TableSchema(v) => s.serialize_field("raw_value", v)?,
            Self::TableColumnLineage(v) => s.serialize_field("raw_value", v)?,
        }
        s.serialize_field("type", self.type_name())?;
        s.end()
    }
}

macro_rules! from_typed {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for MetadataValue {
            fn from(v: $t) -> Self { Self::$variant(v.into()) }
        })*
    };
}

from_typed! {
    String => Text, &str => Text, f64 => Float, f32 => Float, bool => Bool,
    i64 => Int, i32 => Int, i16 => Int, i8 => Int, u32 => Int, u16 => Int, u8 => Int,
    Table => Table, TableSchema => TableSchema, TableColumnLineage => TableColumnLineage,
}

impl From<u64> for MetadataValue {
    fn from(v: u64) -> Self {
        // Above i64::MAX the value is still a JSON integer; Dagster infers `int` from it.
        i64::try_from(v).map_or_else(|_| Self::Infer(Value::from(v)), Self::Int)
    }
}

impl From<usize> for MetadataValue {
    fn from(v: usize) -> Self {
        Self::from(v as u64)
    }
}

impl From<Value> for MetadataValue {
    fn from(v: Value) -> Self {
        Self::Json(v)
    }
}

impl<T: Into<MetadataValue>> From<Option<T>> for MetadataValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

impl From<std::path::PathBuf> for MetadataValue {
    fn from(v: std::path::PathBuf) -> Self {
        Self::Path(v.to_string_lossy().into_owned())
    }
}

impl From<&std::path::Path> for MetadataValue {
    fn from(v: &std::path::Path) -> Self {
        Self::Path(v.to_string_lossy().into_owned())
    }
}

impl From<std::time::Duration> for MetadataValue {
    /// Durations are reported in seconds, as a float.
    fn from(v: std::time::Duration) -> Self {
        Self::Float(v.as_secs_f64())
    }
}

impl<Tz: chrono::TimeZone> From<chrono::DateTime<Tz>> for MetadataValue {
    fn from(v: chrono::DateTime<Tz>) -> Self {
        Self::timestamp(&v)
    }
}

/// An ordered set of metadata entries. Inserting an existing key replaces its value in place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, MetadataValue)>,
}

impl Metadata {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an entry.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<MetadataValue>) -> &mut Self {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
        self
    }

    /// Builder form of [`Metadata::insert`].
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<MetadataValue>) -> Self {
        self.insert(key, value);
        self
    }

    /// The value for a key.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds every entry of `other`, replacing equal keys.
    pub fn extend(&mut self, other: Metadata) {
        for (k, v) in other.entries {
            self.insert(k, v);
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.entries.iter().try_for_each(|(k, v)| v.validate(k))
    }
}

impl<K: Into<String>, V: Into<MetadataValue>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = Metadata::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// One cell of a [`Table`] record: Dagster accepts only these scalar kinds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TableCell {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Null.
    Null,
}

macro_rules! cell_from {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for TableCell {
            fn from(v: $t) -> Self { Self::$variant(v.into()) }
        })*
    };
}
cell_from! { String => Str, &str => Str, i64 => Int, i32 => Int, u32 => Int, f64 => Float, bool => Bool }

impl From<u64> for TableCell {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Self::Float(v as f64), Self::Int)
    }
}

impl From<usize> for TableCell {
    fn from(v: usize) -> Self {
        Self::from(v as u64)
    }
}

impl<T: Into<TableCell>> From<Option<T>> for TableCell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// A record: column name → cell, in column order.
pub type TableRecord = Vec<(String, TableCell)>;

/// A small table shown inline in Dagster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// The rows.
    pub records: Vec<TableRecord>,
    /// The columns.
    pub schema: Vec<TableColumn>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(schema: Vec<TableColumn>) -> Self {
        Self { records: Vec::new(), schema }
    }

    /// Appends a row given as cells in schema order.
    pub fn push_row<I, C>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator<Item = C>,
        C: Into<TableCell>,
    {
        let record = self.schema.iter().zip(cells).map(|(col, cell)| (col.name.clone(), cell.into())).collect();
        self.records.push(record);
        self
    }
}

struct RecordSer<'a>(&'a TableRecord);

impl Serialize for RecordSer<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for Table {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Table", 2)?;
        let records: Vec<RecordSer<'_>> = self.records.iter().map(RecordSer).collect();
        s.serialize_field("records", &records)?;
        s.serialize_field("schema", &self.schema)?;
        s.end()
    }
}

/// A table's columns.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct TableSchema {
    /// The columns, in order.
    pub columns: Vec<TableColumn>,
}

impl TableSchema {
    /// A schema from its columns.
    pub fn new(columns: Vec<TableColumn>) -> Self {
        Self { columns }
    }
}

/// One column of a table or schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableColumn {
    /// Column name.
    pub name: String,
    /// Type name as the user wants to see it (`int`, `string`, `Datetime(us)`, ...).
    #[serde(rename = "type")]
    pub column_type: String,
    /// A description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free-form tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Constraints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraints: Option<ColumnConstraints>,
}

impl TableColumn {
    /// A column with a name and a type.
    pub fn new(name: impl Into<String>, column_type: impl Into<String>) -> Self {
        Self { name: name.into(), column_type: column_type.into(), description: None, tags: None, constraints: None }
    }

    /// Adds a description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.get_or_insert_with(BTreeMap::new).insert(key.into(), value.into());
        self
    }

    /// Sets the constraints.
    #[must_use]
    pub fn constraints(mut self, constraints: ColumnConstraints) -> Self {
        self.constraints = Some(constraints);
        self
    }
}

/// Column constraints.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ColumnConstraints {
    /// Whether nulls are allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nullable: Option<bool>,
    /// Whether values are unique.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique: Option<bool>,
    /// Other constraints, as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other: Option<Vec<String>>,
}

/// Which upstream columns each column depends on.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct TableColumnLineage {
    /// Column → its upstream columns.
    pub deps_by_column: BTreeMap<String, Vec<TableColumnDep>>,
}

impl TableColumnLineage {
    /// Records that `column` depends on `upstream_column` of asset `asset_key`.
    #[must_use]
    pub fn dep(
        mut self,
        column: impl Into<String>,
        asset_key: impl Into<String>,
        upstream_column: impl Into<String>,
    ) -> Self {
        self.deps_by_column
            .entry(column.into())
            .or_default()
            .push(TableColumnDep { asset_key: asset_key.into(), column_name: upstream_column.into() });
        self
    }
}

/// One upstream column.
#[derive(Debug, Clone, PartialEq)]
pub struct TableColumnDep {
    /// The upstream asset's escaped `/`-joined key.
    pub asset_key: String,
    /// The upstream column.
    pub column_name: String,
}

impl Serialize for TableColumnDep {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Dagster builds `TableColumnDep(**dep)`, which turns a string into a one-component
        // key without splitting it. A list of components is what gets a multi-part key across.
        let mut s = serializer.serialize_struct("TableColumnDep", 2)?;
        match crate::asset_key::to_path(&self.asset_key) {
            Ok(path) if path.len() > 1 => s.serialize_field("asset_key", &path)?,
            Ok(path) => s.serialize_field("asset_key", &path[0])?,
            Err(_) => s.serialize_field("asset_key", &self.asset_key)?,
        }
        s.serialize_field("column_name", &self.column_name)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ser(v: &MetadataValue) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn floats_always_carry_a_decimal_point() {
        assert_eq!(ser(&1.0f64.into()), r#"{"raw_value":1.0,"type":"float"}"#);
        assert_eq!(ser(&MetadataValue::Timestamp(1704067200.0)), r#"{"raw_value":1704067200.0,"type":"timestamp"}"#);
        assert_eq!(ser(&3i32.into()), r#"{"raw_value":3,"type":"int"}"#);
    }

    #[test]
    fn every_value_is_wrapped() {
        let m: Metadata = [
            ("a", MetadataValue::from("x")),
            ("b", MetadataValue::Null),
            ("c", MetadataValue::Json(json!({"k": [1, null]}))),
        ]
        .into_iter()
        .collect();
        let v = serde_json::to_value(&m).unwrap();
        for (_, entry) in v.as_object().unwrap() {
            let keys: Vec<_> = entry.as_object().unwrap().keys().cloned().collect();
            assert_eq!(keys, ["raw_value", "type"]);
        }
    }

    #[test]
    fn non_finite_floats_are_refused() {
        assert!(MetadataValue::Float(f64::NAN).validate("k").is_err());
        assert!(MetadataValue::Timestamp(f64::INFINITY).validate("k").is_err());
        let mut t = Table::new(vec![TableColumn::new("x", "float")]);
        t.push_row([f64::NAN]);
        assert!(MetadataValue::Table(t).validate("k").is_err());
    }

    #[test]
    fn u64_beyond_i64_stays_an_integer() {
        assert_eq!(ser(&u64::MAX.into()), format!(r#"{{"raw_value":{},"type":"__infer__"}}"#, u64::MAX));
    }

    #[test]
    fn lineage_keys_travel_as_components() {
        let lineage =
            TableColumnLineage::default().dep("a", "up", "x").dep("a", "grp/up", "y").dep("a", "odd\\/name", "z");
        let v = serde_json::to_value(MetadataValue::from(lineage)).unwrap();
        let deps = &v["raw_value"]["deps_by_column"]["a"];
        assert_eq!(deps[0]["asset_key"], json!("up"));
        assert_eq!(deps[1]["asset_key"], json!(["grp", "up"]));
        assert_eq!(deps[2]["asset_key"], json!("odd/name"));
    }

    #[test]
    fn insert_replaces_in_place() {
        let m = Metadata::new().with("a", 1).with("b", 2).with("a", 3);
        let keys: Vec<_> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(m.get("a"), Some(&MetadataValue::Int(3)));
    }
}
