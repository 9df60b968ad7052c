//! The runner's Dagster side: when launched through Pipes, read the partitions from the
//! context (or, in a ranged run where Dagster sends none, from the extras), and report what
//! the run produced: one materialization per asset with its metadata, per-partition row
//! counts and cost, and the job's asset checks.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use chrono::NaiveDateTime;
use dagster_pipes::{
    AssetCheck, AssetMaterialization, Metadata, MetadataValue, PipesContext, Severity, Table, TableCell, TableColumn,
    TableSchema,
};
use serde::Deserialize;

use crate::checks::RunCheck;
use runner_core::summary::{OutputFigures, RunSummary, StepPart, StepSummary, TableSummary};
use runner_spec::JobSpec;
use runner_types::{OutputRef, Partition};

use crate::cost::Bill;
use crate::per_partition;

/// One partition as the Dagster client passes it in extras.
#[derive(Debug, Deserialize)]
struct ExtraPartition {
    key: String,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

/// A window bound as its wall-clock time in its own offset: a daily partition `2024-01-02` of a
/// `Europe/Paris` definition starts at `2024-01-02T00:00+01:00`, which is 2024-01-02 00:00 here
/// (as `runner run --partition 2024-01-02` reads it), not 2024-01-01 23:00 in UTC.
fn parse_ts(text: &str) -> anyhow::Result<NaiveDateTime> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.naive_local())
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .with_context(|| format!("{text:?} is not an ISO-8601 timestamp"))
}

/// A window from the host: both ends, and the end after the start.
fn windowed(key: &str, start: NaiveDateTime, end: NaiveDateTime) -> anyhow::Result<Partition> {
    if end <= start {
        bail!("partition {key:?}: its time window ends ({end}) before it starts ({start})");
    }
    Ok(Partition::with_window(key, start, end)?)
}

/// The partitions this Dagster step covers. Extras that are there but malformed are an error
/// naming them: falling through to an unpartitioned run would rewrite every partition.
pub fn partitions(ctx: &PipesContext) -> anyhow::Result<Vec<Partition>> {
    if let Ok(key) = ctx.partition_key() {
        let window = ctx.partition_time_window().context("the Pipes context's partition_time_window")?;
        return Ok(vec![match window {
            // Wall-clock time, as `parse_ts`.
            Some(w) => windowed(key, w.start.naive_local(), w.end.naive_local())?,
            None => Partition::from_key(key)?,
        }]);
    }
    if ctx.get_extra("partitions").is_ok() {
        let list: Vec<ExtraPartition> = ctx
            .get_extra_as("partitions")
            .context("extras `partitions`: expected a list of {key, start, end} (start and end optional)")?;
        return list
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let one = || -> anyhow::Result<Partition> {
                    match (&p.start, &p.end) {
                        (Some(s), Some(e)) => windowed(&p.key, parse_ts(s)?, parse_ts(e)?),
                        (None, None) => Ok(Partition::from_key(&p.key)?),
                        _ => bail!("a time window needs both start and end"),
                    }
                };
                one().with_context(|| format!("extras `partitions`[{i}] (key {:?})", p.key))
            })
            .collect();
    }
    if ctx.get_extra("partition_keys").is_ok() {
        let keys: Vec<String> =
            ctx.get_extra_as("partition_keys").context("extras `partition_keys`: expected a list of strings")?;
        return keys
            .iter()
            .map(|k| Partition::from_key(k).with_context(|| format!("extras `partition_keys`: {k:?}")))
            .collect();
    }
    if ctx.get_extra("partition_key_range").is_ok() {
        bail!("the extras carry a partition_key_range but no partition list: pass `partitions` or `partition_keys`");
    }
    Ok(Vec::new())
}

fn schema_table(schema: &[(String, String)]) -> TableSchema {
    TableSchema::new(schema.iter().map(|(n, t)| TableColumn::new(n, t)).collect())
}

fn rows_table(rows: &BTreeMap<String, u64>, key_name: &str) -> Table {
    let mut t = Table::new(vec![TableColumn::new(key_name, "string"), TableColumn::new("rows", "int")]);
    for (k, v) in rows {
        t.push_row([TableCell::from(k.as_str()), TableCell::from(*v)]);
    }
    t
}

/// A step's own figures over all its partitions, spelled like one partition's.
fn step_whole(step: &StepSummary) -> StepPart {
    StepPart {
        items: step.items,
        items_already_committed: step.items_already_committed,
        rows_in: step.rows_in,
        bytes_in: step.bytes_in,
        rows_dropped: step.rows_dropped,
        rows_quarantined: step.rows_quarantined,
        attempt_seconds: step.by_partition.values().map(|p| p.attempt_seconds).sum(),
        committed_items: step.by_partition.values().flat_map(|p| p.committed_items.iter().cloned()).collect(),
    }
}

/// What one materialization says of the data: an output's figures and its step's, for the
/// whole run or for one of its partitions. Keys are the summary's field names; the step's
/// figures carry `step_`, since a step may have several outputs.
fn figures_metadata(
    output: &OutputFigures,
    step: &StepPart,
    path: Option<MetadataValue>,
    bill: Option<&Bill>,
) -> Metadata {
    let mut m = Metadata::new()
        .with("dagster/row_count", output.rows)
        .with("dagster/column_schema", schema_table(&output.schema))
        .with("files", output.files)
        .with("bytes_out", output.bytes_out)
        .with("step_items", step.items as u64)
        .with("step_items_already_committed", step.items_already_committed as u64)
        .with("step_rows_in", step.rows_in)
        .with("step_bytes_in", step.bytes_in)
        .with("step_rows_quarantined", step.rows_quarantined)
        .with("step_rows_dropped", step.rows_dropped)
        .with("step_attempt_seconds", step.attempt_seconds);
    if let Some(path) = path {
        m.insert("path", path);
    }
    if !output.rows_by_hive_key.is_empty() {
        m.insert("rows_by_hive_key", rows_table(&output.rows_by_hive_key, "hive_key"));
    }
    cost_metadata(&mut m, bill, output.rows);
    m
}

/// What Dagster shows of an output kept as a table: its name and root (Dagster's own keys),
/// the version the step left it at, its columns as the table has them, and, for a partition,
/// the rows the table holds for it.
fn table_metadata(m: &mut Metadata, table: &TableSummary, partition: Option<&str>) {
    m.insert("dagster/table_name", table.name.as_str());
    m.insert("dagster/uri", table.uri.as_str());
    m.insert("dagster/column_schema", schema_table(&table.schema));
    m.insert("table_format", "delta");
    m.insert("table_version", table.version);
    m.insert("table_files_added", table.files_added as u64);
    m.insert("table_files_removed", table.files_removed as u64);
    if let Some(rows) = partition.and_then(|p| table.rows_by_partition.get(p)) {
        m.insert("dagster/partition_row_count", *rows);
    }
}

/// What is the same for every partition of a run: the step's fleet and the run's totals.
fn run_wide_metadata(
    m: &mut Metadata,
    step: &StepSummary,
    summary: &RunSummary,
    instance_types: &BTreeMap<String, u64>,
) {
    m.insert("step", step.name.as_str());
    m.insert("step_retries", u64::from(step.retries));
    m.insert("step_interruptions_survived", u64::from(step.interruptions_survived));
    m.insert("step_seconds", step.seconds);
    m.insert("step_peak_item_rss_bytes", step.peak_item_rss_bytes);
    m.insert("step_items_warm_started", step.items_warm_started as u64);
    if let Some(logs) = &step.worker_logs {
        // One folder per worker: its check-in, its log, and why its boot failed if it did.
        m.insert("step_worker_logs", MetadataValue::Path(logs.to_string()));
    }
    if step.workers > 0 {
        m.insert("step_workers", MetadataValue::Int(step.workers as i64));
        m.insert("step_peak_items_per_worker", MetadataValue::Int(step.peak_items_per_worker as i64));
    }
    m.insert("run_items", summary.steps.iter().map(|s| s.items as u64).sum::<u64>());
    m.insert("run_seconds", summary.seconds);
    m.insert("run_id", summary.run_id.as_str());
    if !instance_types.is_empty() {
        m.insert("run_instance_types", MetadataValue::Json(serde_json::json!(instance_types)));
    }
}

/// The bill's fields for a materialization whose share of its step's bill is `bill`.
fn cost_metadata(m: &mut Metadata, bill: Option<&Bill>, rows: u64) {
    let Some(bill) = bill else {
        m.insert("cost_unknown", "the fleet's usage could not be read; see the step's log");
        return;
    };
    if let Some(c) = bill.cost_usd {
        m.insert("cost_usd", c);
        if rows > 0 {
            m.insert("cost_per_million_rows", c / (rows as f64 / 1e6));
        }
    }
    if let Some(e) = bill.emr_equivalent_usd {
        m.insert("emr_equivalent_usd", e);
    }
    if let Some(r) = bill.saving_ratio() {
        m.insert("saving_ratio", r);
    }
    m.insert("instance_hours", bill.instance_hours);
    if !bill.unpriced.is_empty() {
        m.insert(
            "cost_unknown",
            format!("no price for: {}", bill.unpriced.iter().cloned().collect::<Vec<_>>().join(", ")),
        );
    }
    let mut t = Table::new(vec![
        TableColumn::new("instance_type", "string"),
        TableColumn::new("availability_zone", "string"),
        TableColumn::new("market", "string"),
        TableColumn::new("instances", "int"),
        TableColumn::new("seconds", "float"),
        TableColumn::new("usd_per_hour", "float"),
        TableColumn::new("cost_usd", "float"),
        TableColumn::new("price_source", "string"),
    ]);
    let opt = |v: Option<f64>| v.map_or(TableCell::Null, TableCell::from);
    for l in &bill.lines {
        t.push_row([
            TableCell::from(l.instance_type.as_str()),
            l.availability_zone.as_deref().map_or(TableCell::Null, TableCell::from),
            TableCell::from(l.market.to_string()),
            TableCell::from(l.instances),
            TableCell::from(l.seconds),
            opt(l.usd_per_hour()),
            opt(l.cost_usd),
            TableCell::from(l.price_source.as_str()),
        ]);
    }
    m.insert("instances", t);
}

/// A severity as Dagster spells it.
fn severity_name(s: runner_types::Severity) -> &'static str {
    match s {
        runner_types::Severity::Warn => "WARN",
        runner_types::Severity::Error => "ERROR",
    }
}

/// The extra in which the Dagster side passes its key for each of the job's assets whose key it
/// translated (a key prefix, a translator): `{job's key: Dagster's key}`.
pub const DAGSTER_ASSET_KEYS: &str = "dagster_asset_keys";

fn dagster_keys(ctx: &PipesContext) -> anyhow::Result<BTreeMap<String, String>> {
    if ctx.get_extra(DAGSTER_ASSET_KEYS).is_err() {
        return Ok(BTreeMap::new());
    }
    ctx.get_extra_as(DAGSTER_ASSET_KEYS)
        .with_context(|| format!("extras `{DAGSTER_ASSET_KEYS}`: expected an object of job key → Dagster key"))
}

/// Reports materializations and checks for every asset the step targets (or every output, for
/// an op step). A step's bill is split evenly over its outputs (they come from the same items),
/// so the cost of assets adds up to the run's.
pub fn report(
    ctx: &PipesContext,
    job: &JobSpec,
    summary: &RunSummary,
    bills: &[Option<Bill>],
    checks: &[RunCheck],
) -> anyhow::Result<()> {
    let targeted: Option<Vec<String>> = ctx.asset_keys().ok().map(<[String]>::to_vec);
    let keys = dagster_keys(ctx)?;
    // The asset's key in Dagster: the job's own unless the Dagster side translated it.
    let key_in_dagster = |asset: &runner_types::AssetKey| -> String {
        keys.get(asset.as_str()).cloned().unwrap_or_else(|| asset.as_str().to_string())
    };
    let instance_types: BTreeMap<String, u64> =
        summary.steps.iter().flat_map(|s| s.instance_types.clone()).fold(BTreeMap::new(), |mut m, (k, v)| {
            *m.entry(k).or_default() += v;
            m
        });
    for (step, bill) in summary.steps.iter().zip(bills) {
        let outputs = step.outputs.len().max(1) as f64;
        let bill = bill.as_ref().map(|b| b.share(1.0 / outputs));
        let bills = bill.as_ref().map(|b| per_partition::bills(step, b)).unwrap_or_default();
        let whole = step_whole(step);
        for (output, o) in &step.outputs {
            let asset = job.asset_of(&OutputRef::new(step.name.clone(), output.as_str()));
            let key = key_in_dagster(&asset);
            if targeted.as_ref().is_some_and(|t| !t.contains(&key)) {
                continue;
            }
            let locations: Vec<String> = o.locations.values().map(ToString::to_string).collect();
            let path = match locations.as_slice() {
                [one] => MetadataValue::Path(one.clone()),
                many => MetadataValue::Json(serde_json::json!(many)),
            };
            let mut m = figures_metadata(&o.whole, &whole, Some(path), bill.as_ref());
            run_wide_metadata(&mut m, step, summary, &instance_types);
            if let Some(table) = &o.table {
                // A run of one partition reports it here too (Dagster files it under that one).
                let only = (step.by_partition.len() == 1).then(|| step.by_partition.keys().next()).flatten();
                table_metadata(&mut m, table, only.filter(|p| !p.is_empty()).map(String::as_str));
            }
            m.insert(
                "rows_by_partition",
                rows_table(&o.by_partition.iter().map(|(p, f)| (p.clone(), f.rows)).collect(), "partition"),
            );
            let version = per_partition::data_version(asset.as_str(), &whole.committed_items);
            ctx.report_asset_materialization(
                AssetMaterialization::new().asset_key(key.as_str()).data_version(version).metadata(m),
            )?;
            // Pipes has no partition on a materialization, so Dagster copies the one above to
            // every partition of a ranged run; this carries each partition's own, with the same
            // keys, and its own data version, for the Dagster side to record. A partition whose
            // items wrote nothing to this output reports zero rows, not the run's.
            let partitions: BTreeSet<&String> = step.by_partition.keys().chain(o.by_partition.keys()).collect();
            if partitions.iter().any(|p| !p.is_empty()) {
                let (no_output, no_step) = (OutputFigures::default(), StepPart::default());
                let data_versions: BTreeMap<&String, String> = partitions
                    .iter()
                    .map(|p| {
                        let items = step.by_partition.get(*p).map(|s| &s.committed_items);
                        (*p, per_partition::data_version(asset.as_str(), items.into_iter().flatten()))
                    })
                    .collect();
                let by_partition: BTreeMap<&String, Metadata> = partitions
                    .into_iter()
                    .map(|p| {
                        let path = o.locations.get(p).map(|l| MetadataValue::Path(l.to_string()));
                        let figures = o.by_partition.get(p).unwrap_or(&no_output);
                        let step_part = step.by_partition.get(p).unwrap_or(&no_step);
                        let mut pm = figures_metadata(figures, step_part, path, bills.get(p));
                        run_wide_metadata(&mut pm, step, summary, &instance_types);
                        if let Some(table) = &o.table {
                            table_metadata(&mut pm, table, Some(p.as_str()));
                        }
                        (p, pm)
                    })
                    .collect();
                ctx.report_custom_message(serde_json::json!({
                    "kind": "partition_metadata",
                    "asset_key": key,
                    "by_partition": by_partition,
                    "data_versions": data_versions,
                }))?;
            }
        }
    }
    for run_check in checks {
        let check = &run_check.result;
        let key = key_in_dagster(&job.asset_of(&check.output));
        if targeted.as_ref().is_some_and(|t| !t.contains(&key)) {
            continue;
        }
        let mut m = Metadata::new().with("description", check.description.as_str());
        for (k, v) in &check.observed {
            m.insert(k.as_str(), *v);
        }
        if run_check.by_partition.keys().any(|p| !p.is_empty()) {
            // Pipes has no partition on a check: each partition's verdict goes in a table here,
            // and in a custom message from which the Dagster side records one evaluation per
            // partition (in a ranged run, even a range of one: Dagster gives its result none).
            ctx.report_custom_message(serde_json::json!({
                "kind": "check_partitions",
                "asset_key": key,
                "check_name": check.name,
                "by_partition": run_check.by_partition.iter().map(|(p, r)| {
                    let verdict = serde_json::json!({
                        "passed": r.passed,
                        "severity": severity_name(r.severity),
                        "description": r.description,
                    });
                    (p.clone(), verdict)
                }).collect::<BTreeMap<_, _>>(),
            }))?;
            let mut t = Table::new(vec![
                TableColumn::new("partition", "string"),
                TableColumn::new("passed", "bool"),
                TableColumn::new("severity", "string"),
                TableColumn::new("description", "string"),
            ]);
            for (p, r) in &run_check.by_partition {
                t.push_row([
                    TableCell::from(p.as_str()),
                    TableCell::from(r.passed),
                    TableCell::from(severity_name(r.severity)),
                    TableCell::from(r.description.as_str()),
                ]);
            }
            m.insert("by_partition", t);
        }
        let severity = match check.severity {
            runner_types::Severity::Warn => Severity::Warn,
            runner_types::Severity::Error => Severity::Error,
        };
        ctx.report_asset_check(
            AssetCheck::new(&check.name, check.passed).asset_key(key.as_str()).severity(severity).metadata(m),
        )?;
    }
    Ok(())
}
