//! A minimal partitioned asset computed outside Dagster.
//!
//! Dagster launches this program for one partition (a day). It reads the partition from the
//! Pipes context, or from the `partition_keys` extra in a ranged run (Dagster sends no
//! partition in the context then), logs through `tracing`, and reports one materialization
//! with a row count, a schema and a per-day table, plus an asset check.
//!
//! Run it un-orchestrated to see the no-op mode: `cargo run -p pipes-rs --example partitioned_asset`.

use std::process::ExitCode;

use dagster_pipes::{
    AssetCheck, AssetMaterialization, Metadata, PipesContext, PipesError, PipesLayer, Severity, Table, TableCell,
    TableColumn, TableSchema,
};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The partitions this run covers: one from the context, or a list passed in extras.
fn partitions(ctx: &PipesContext) -> Result<Vec<String>, PipesError> {
    if let Ok(key) = ctx.partition_key() {
        return Ok(vec![key.to_string()]);
    }
    ctx.get_extra_as::<Vec<String>>("partition_keys")
}

/// Stand-in for real work: a deterministic number of events for a day.
fn count_events(day: &str) -> u64 {
    day.bytes().map(u64::from).sum::<u64>() * 10
}

fn main() -> ExitCode {
    dagster_pipes::run(|ctx| -> Result<(), PipesError> {
        tracing_subscriber::registry()
            .with(PipesLayer::new(ctx))
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init();

        let days = partitions(ctx)?;
        let mut per_day = Table::new(vec![TableColumn::new("day", "string"), TableColumn::new("events", "int")]);
        let mut total = 0u64;
        for day in &days {
            let n = count_events(day);
            tracing::info!(day = %day, events = n, "counted events");
            per_day.push_row([TableCell::from(day.as_str()), TableCell::from(n)]);
            total += n;
        }

        ctx.report_asset_materialization(
            AssetMaterialization::new()
                .data_version(format!("events-{total}"))
                .with("dagster/row_count", total)
                .with("per_day", per_day)
                .with(
                    "dagster/column_schema",
                    TableSchema::new(vec![TableColumn::new("day", "string"), TableColumn::new("events", "int")]),
                ),
        )?;
        if ctx.is_asset_step() || !ctx.is_orchestrated() {
            ctx.report_asset_check(
                AssetCheck::new("has_events", total > 0)
                    .severity(Severity::Warn)
                    .metadata(Metadata::new().with("events", total)),
            )?;
        }
        Ok(())
    })
}
