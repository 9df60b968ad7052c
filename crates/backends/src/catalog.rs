//! Table catalogs: where query engines look a table up by name. One today, the AWS Glue Data
//! Catalog, which Athena reads: a Delta table is registered there once, as Athena's own
//! `CREATE EXTERNAL TABLE … TBLPROPERTIES ('table_type'='DELTA')` registers it (Athena reads the
//! schema and the files from the Delta log), with its columns listed for the engines that read
//! them from the catalog. When the columns change, the entry is updated in place.

use aws_sdk_glue::types::{Column, DatabaseInput, SerDeInfo, StorageDescriptor, Table, TableInput};

/// Why a table could not be registered.
#[derive(Debug, thiserror::Error)]
#[error("registering table {database}.{table} in the Glue Data Catalog: {detail}")]
pub struct CatalogError {
    /// The database.
    pub database: String,
    /// The table.
    pub table: String,
    /// What Glue said.
    pub detail: String,
}

/// A Delta table as the catalog lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogTable {
    /// The database.
    pub database: String,
    /// The table's name.
    pub name: String,
    /// Its root, `s3://bucket/prefix/` (with a slash).
    pub location: String,
    /// Columns that are not partition columns, with Hive's type names.
    pub columns: Vec<(String, String)>,
    /// Partition columns, with Hive's type names.
    pub partition_keys: Vec<(String, String)>,
}

/// What registering did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// The table was new to the catalog.
    Created,
    /// Its entry was changed to match (columns, location).
    Updated,
    /// Its entry matched already.
    Unchanged,
}

/// Glue's answer to a concurrent change; it is worth reading the entry again.
const ATTEMPTS: usize = 5;

/// The table parameters Athena, Trino and Spark read a Delta table by.
const PARAMETERS: [(&str, &str); 4] = [
    ("table_type", "DELTA"),
    ("spark.sql.sources.provider", "delta"),
    ("EXTERNAL", "TRUE"),
    ("classification", "delta"),
];

fn columns(cols: &[(String, String)]) -> Result<Vec<Column>, String> {
    cols.iter().map(|(n, t)| Column::builder().name(n).r#type(t).build().map_err(|e| e.to_string())).collect()
}

fn input(t: &CatalogTable, keep: Option<&Table>) -> Result<TableInput, String> {
    let mut parameters = keep.and_then(|k| k.parameters.clone()).unwrap_or_default();
    parameters.extend(PARAMETERS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let serde = SerDeInfo::builder()
        .serialization_library("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")
        // Older Trino (and so some Athena paths) read a Delta table's root from here.
        .parameters("path", &t.location)
        .parameters("serialization.format", "1")
        .build();
    let storage = StorageDescriptor::builder()
        .location(&t.location)
        .set_columns(Some(columns(&t.columns)?))
        .input_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")
        .output_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat")
        .serde_info(serde)
        .build();
    TableInput::builder()
        .name(&t.name)
        .table_type("EXTERNAL_TABLE")
        .set_parameters(Some(parameters))
        .storage_descriptor(storage)
        // Athena wants the list even when it is empty.
        .set_partition_keys(Some(columns(&t.partition_keys)?))
        .build()
        .map_err(|e| e.to_string())
}

/// Whether the catalog's entry says what `t` says.
fn matches(found: &Table, t: &CatalogTable) -> bool {
    let listed = |cols: Option<&[Column]>| -> Vec<(String, String)> {
        cols.unwrap_or_default().iter().map(|c| (c.name.clone(), c.r#type.clone().unwrap_or_default())).collect()
    };
    let sd = found.storage_descriptor.as_ref();
    let params = found.parameters.as_ref();
    sd.and_then(|s| s.location.as_deref()) == Some(t.location.as_str())
        && listed(sd.and_then(|s| s.columns.as_deref())) == t.columns
        && listed(found.partition_keys.as_deref()) == t.partition_keys
        && PARAMETERS.iter().all(|(k, v)| params.and_then(|p| p.get(*k)).map(String::as_str) == Some(*v))
}

/// Registers the table, or brings its entry up to date.
pub async fn register_in_glue(client: &aws_sdk_glue::Client, t: &CatalogTable) -> Result<Registered, CatalogError> {
    let fail = |detail: String| CatalogError { database: t.database.clone(), table: t.name.clone(), detail };
    let database = DatabaseInput::builder().name(&t.database).build().map_err(|e| fail(e.to_string()))?;
    if let Err(e) = client.create_database().database_input(database).send().await {
        let exists = e.as_service_error().is_some_and(|s| s.is_already_exists_exception());
        if !exists {
            return Err(fail(format!(
                "creating database {}: {}",
                t.database,
                aws_sdk_glue::error::DisplayErrorContext(&e)
            )));
        }
    }
    for _ in 0..ATTEMPTS {
        let found = match client.get_table().database_name(&t.database).name(&t.name).send().await {
            Ok(out) => out.table,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_entity_not_found_exception()) => None,
            Err(e) => return Err(fail(format!("reading its entry: {}", aws_sdk_glue::error::DisplayErrorContext(&e)))),
        };
        let Some(found) = found else {
            let made = client
                .create_table()
                .database_name(&t.database)
                .table_input(input(t, None).map_err(fail)?)
                .send()
                .await;
            match made {
                Ok(_) => return Ok(Registered::Created),
                // Made by another run since the read: read it again.
                Err(e) if e.as_service_error().is_some_and(|s| s.is_already_exists_exception()) => continue,
                Err(e) => return Err(fail(format!("creating it: {}", aws_sdk_glue::error::DisplayErrorContext(&e)))),
            }
        };
        if matches(&found, t) {
            return Ok(Registered::Unchanged);
        }
        // The name is another table's: never pointed elsewhere behind its users' backs.
        let location = found.storage_descriptor.as_ref().and_then(|s| s.location.as_deref()).unwrap_or_default();
        if location.trim_end_matches('/') != t.location.trim_end_matches('/') {
            return Err(fail(format!(
                "the catalog has it at {location:?}, and this table is at {}; drop that entry, or give this table \
                 another name",
                t.location
            )));
        }
        let mut update =
            client.update_table().database_name(&t.database).table_input(input(t, Some(&found)).map_err(fail)?);
        // Glue refuses the update if another changed the entry since it was read.
        if let Some(v) = &found.version_id {
            update = update.version_id(v);
        }
        match update.send().await {
            Ok(_) => return Ok(Registered::Updated),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_concurrent_modification_exception()) => continue,
            Err(e) => return Err(fail(format!("updating it: {}", aws_sdk_glue::error::DisplayErrorContext(&e)))),
        }
    }
    Err(fail(format!("its entry changed under each of {ATTEMPTS} updates")))
}
