//! One program, several scenarios, each showing a part of the protocol end to end. The
//! scenario is the first argument:
//!
//! - `every-metadata`: one materialization carrying all 17 metadata types;
//! - `multi-asset`: a materialization and a check for each of the step's assets;
//! - `stdio`: prints to stdout and stderr (forwarded when the reader asks for stdio);
//! - `tracing`: logs through `tracing` at every level;
//! - `error-chain`: fails with an error that has a cause;
//! - `panic`: panics.

use std::process::ExitCode;

use dagster_pipes::{
    AssetCheck, AssetMaterialization, ColumnConstraints, Metadata, MetadataValue, PipesContext, PipesLayer, Severity,
    Table, TableCell, TableColumn, TableColumnLineage, TableSchema,
};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
#[error("loading the day's events failed")]
struct LoadError(#[source] std::io::Error);

fn every_metadata() -> Metadata {
    let mut table = Table::new(vec![
        TableColumn::new("day", "string"),
        TableColumn::new("rows", "int").description("rows that day").constraints(ColumnConstraints {
            nullable: Some(false),
            unique: None,
            other: None,
        }),
        TableColumn::new("share", "float").tag("unit", "ratio"),
        TableColumn::new("ok", "bool"),
    ]);
    table.push_row([TableCell::from("2024-01-01"), 10.into(), 0.25.into(), true.into()]);
    table.push_row([TableCell::from("2024-01-02"), 30.into(), 0.75.into(), TableCell::Null]);
    Metadata::new()
        .with("infer", MetadataValue::Infer(json!({"inferred": [1, 2]})))
        .with("text", "hello")
        .with("url", MetadataValue::Url("https://dagster.io".into()))
        .with("path", MetadataValue::Path("/data/out.parquet".into()))
        .with("notebook", MetadataValue::Notebook("analysis.ipynb".into()))
        .with("md", MetadataValue::Md("# Title\n**bold**".into()))
        .with("dagster_run", MetadataValue::DagsterRun("db892d7f-0031-4747-973d-22e8b9095d9d".into()))
        .with("json", MetadataValue::Json(json!({"nested": {"list": [1, null, "x"]}})))
        .with("float", 2.0)
        .with("int", 42)
        .with("bool", true)
        .with("timestamp", MetadataValue::Timestamp(1_704_067_200.5))
        .with("null", MetadataValue::Null)
        .with("asset", MetadataValue::Asset("upstream/events".into()))
        .with("table", table)
        .with(
            "table_schema",
            TableSchema::new(vec![TableColumn::new("day", "string"), TableColumn::new("rows", "int")]),
        )
        .with("table_column_lineage", TableColumnLineage::default().dep("rows", "upstream/events", "id"))
}

fn scenario(ctx: &PipesContext, name: &str) -> Result<(), BoxError> {
    match name {
        "every-metadata" => {
            ctx.report_asset_materialization(AssetMaterialization::new().metadata(every_metadata()))?;
        }
        "multi-asset" => {
            for key in ctx.asset_keys()? {
                ctx.report_asset_materialization(
                    AssetMaterialization::new().asset_key(key.as_str()).with("which", key.as_str()),
                )?;
                ctx.report_asset_check(
                    AssetCheck::new("non_empty", true).asset_key(key.as_str()).severity(Severity::Warn),
                )?;
            }
        }
        "stdio" => {
            println!("tour-stdout-line");
            eprintln!("tour-stderr-line");
            ctx.report_asset_materialization(AssetMaterialization::new())?;
        }
        "tracing" => {
            let subscriber =
                tracing_subscriber::registry().with(PipesLayer::new(ctx).with_max_level(tracing::Level::TRACE));
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!("tour trace");
                tracing::debug!("tour debug");
                tracing::info!(rows = 3, "tour info");
                tracing::warn!("tour warn");
                tracing::error!("tour error");
            });
            ctx.report_asset_materialization(AssetMaterialization::new())?;
        }
        "error-chain" => {
            let io = std::io::Error::new(std::io::ErrorKind::NotFound, "events.csv is missing");
            return Err(Box::new(LoadError(io)));
        }
        "panic" => panic!("tour panicked on purpose"),
        other => return Err(format!("unknown scenario {other:?}").into()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let name = std::env::args().nth(1).unwrap_or_default();
    dagster_pipes::run(|ctx| scenario(ctx, &name))
}
