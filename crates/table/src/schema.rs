//! Table schemas: Delta's types (re-exported for whoever maps its own types to them), their JSON,
//! and what a commit may do when the files' columns differ from the table's: nothing, add new
//! columns where the spec allows it, or refuse, naming each column.

use deltalake_core::kernel::DataType;
pub use deltalake_core::kernel::{ArrayType, MapType, PrimitiveType, StructField, StructType};

/// Delta's type names, spelled as its log spells them (`long`, `timestamp_ntz`, `decimal(10,2)`).
pub fn type_name(t: &DataType) -> String {
    match serde_json::to_value(t) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => format!("{t:?}"),
    }
}

/// A Delta type as Hive, Glue and Athena spell it (`bigint`, `timestamp`, `array<string>`).
pub fn hive_type(t: &DataType) -> String {
    use deltalake_core::kernel::PrimitiveType as P;
    match t {
        DataType::Primitive(p) => match p {
            P::String => "string".into(),
            P::Long => "bigint".into(),
            P::Integer => "int".into(),
            P::Short => "smallint".into(),
            P::Byte => "tinyint".into(),
            P::Float => "float".into(),
            P::Double => "double".into(),
            P::Boolean => "boolean".into(),
            P::Binary => "binary".into(),
            P::Date => "date".into(),
            P::Decimal(d) => format!("decimal({},{})", d.precision(), d.scale()),
            // Hive has one timestamp type; a timestamp without zone reads as it is written.
            _ => "timestamp".into(),
        },
        DataType::Array(a) => format!("array<{}>", hive_type(a.element_type())),
        DataType::Map(m) => format!("map<{},{}>", hive_type(m.key_type()), hive_type(m.value_type())),
        DataType::Struct(s) => format!(
            "struct<{}>",
            s.fields().map(|f| format!("{}:{}", f.name(), hive_type(f.data_type()))).collect::<Vec<_>>().join(",")
        ),
        other => type_name(other),
    }
}

/// Delta's types, by the name the kernel gives them.
pub use deltalake_core::kernel::DataType as DeltaType;

/// A schema as its JSON.
pub fn to_json(schema: &StructType) -> String {
    serde_json::to_string(schema).unwrap_or_default()
}

/// A schema from its JSON.
pub fn from_json(text: &str) -> Result<StructType, String> {
    serde_json::from_str(text).map_err(|e| format!("a table schema that does not parse ({e}): {text}"))
}

/// Whether a schema holds a `timestamp_ntz`, at any depth.
pub fn has_timestamp_ntz(schema: &StructType) -> bool {
    fn within(t: &DataType) -> bool {
        match t {
            DataType::Primitive(PrimitiveType::TimestampNtz) => true,
            DataType::Array(a) => within(a.element_type()),
            DataType::Map(m) => within(m.key_type()) || within(m.value_type()),
            DataType::Struct(s) => s.fields().any(|f| within(f.data_type())),
            _ => false,
        }
    }
    schema.fields().any(|f| within(f.data_type()))
}

/// What the files of a commit do to the table's schema.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaChange {
    /// They have the table's columns.
    None,
    /// They add these columns (at the end, nullable): the table's new schema.
    Added { schema: StructType, columns: Vec<String> },
}

/// Compares the files' schema with the table's. Differences other than new columns, and new
/// columns unless `may_add`, are refused: the message names each column and both types.
pub fn reconcile(table: &StructType, files: &StructType, may_add: bool) -> Result<SchemaChange, String> {
    let mut problems = Vec::new();
    for field in table.fields() {
        match files.field(field.name()) {
            None => problems.push(format!(
                "column {:?} ({}) is in the table, not in the output",
                field.name(),
                type_name(field.data_type())
            )),
            Some(new) if new.data_type() != field.data_type() => problems.push(format!(
                "column {:?} is {} in the table and {} in the output",
                field.name(),
                type_name(field.data_type()),
                type_name(new.data_type())
            )),
            Some(_) if !field.is_nullable() => problems.push(format!(
                "column {:?} is NOT NULL in the table, and the runner's columns may hold nulls",
                field.name()
            )),
            Some(_) => {}
        }
    }
    let new: Vec<&StructField> = files.fields().filter(|f| !table.contains(f.name())).collect();
    if !new.is_empty() && !may_add {
        for f in &new {
            problems.push(format!("column {:?} ({}) is new", f.name(), type_name(f.data_type())));
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    if new.is_empty() {
        return Ok(SchemaChange::None);
    }
    let columns = new.iter().map(|f| f.name().clone()).collect();
    let fields =
        table.fields().cloned().chain(new.into_iter().map(|f| StructField::nullable(f.name(), f.data_type().clone())));
    let schema = StructType::try_new(fields).map_err(|e| e.to_string())?;
    Ok(SchemaChange::Added { schema, columns })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &[(&str, DataType)]) -> StructType {
        StructType::try_new(fields.iter().map(|(n, t)| StructField::nullable(*n, t.clone()))).unwrap()
    }

    #[test]
    fn the_same_columns_change_nothing_and_json_round_trips() {
        let s = schema(&[("a", DataType::LONG), ("ts", DataType::TIMESTAMP_NTZ)]);
        assert_eq!(reconcile(&s, &s, false).unwrap(), SchemaChange::None);
        assert_eq!(from_json(&to_json(&s)).unwrap(), s);
        assert_eq!(type_name(&DataType::TIMESTAMP_NTZ), "timestamp_ntz");
        assert_eq!(type_name(&DataType::decimal(10, 2).unwrap()), "decimal(10,2)");
        assert_eq!(hive_type(&DataType::LONG), "bigint");
        assert_eq!(hive_type(&DataType::TIMESTAMP_NTZ), "timestamp");
        let nested = schema(&[("a", DataType::from(ArrayType::new(DataType::SHORT, true))), ("d", DataType::DATE)]);
        assert_eq!(hive_type(&DataType::from(nested)), "struct<a:array<smallint>,d:date>");
    }

    #[test]
    fn a_new_column_is_refused_by_name_unless_the_spec_allows_adding() {
        let table = schema(&[("a", DataType::LONG)]);
        let files = schema(&[("a", DataType::LONG), ("b", DataType::STRING)]);
        let why = reconcile(&table, &files, false).unwrap_err();
        assert_eq!(why, "column \"b\" (string) is new");
        let SchemaChange::Added { schema: merged, columns } = reconcile(&table, &files, true).unwrap() else {
            panic!("expected an added column")
        };
        assert_eq!(columns, ["b"]);
        assert_eq!(merged, files);
    }

    #[test]
    fn a_changed_type_or_a_missing_column_is_refused_even_when_adding_is_allowed() {
        let table = schema(&[("a", DataType::LONG), ("b", DataType::STRING)]);
        let files = schema(&[("a", DataType::INTEGER)]);
        let why = reconcile(&table, &files, true).unwrap_err();
        assert_eq!(
            why,
            "column \"a\" is long in the table and integer in the output; column \"b\" (string) is in the table, not in \
             the output"
        );
    }
}
