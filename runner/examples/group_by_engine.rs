//! Benchmark: one reduce item's SQL under each of Polars' engines. The runner runs every item
//! on the streaming engine (its sinks write as they go); this measures what the in-memory
//! engine, which collects the whole result and then writes it, would do with the same query on
//! the same files, so that the choice rests on a measurement (`bench/reduce_at_scale.py`).
//!
//! Arguments: the engine (`streaming` or `in-memory`), the output Parquet file, the SQL (its
//! table is `events`), then the item's Parquet files. Prints the seconds as JSON.

use std::fs::File;
use std::time::Instant;

use anyhow::{Context, bail};
use polars::prelude::*;
use polars::sql::SQLContext;

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: group_by_engine streaming|in-memory OUT.parquet SQL FILE...";
    let (Some(engine), Some(out), Some(sql)) = (args.next(), args.next(), args.next()) else {
        bail!(usage);
    };
    let files: Vec<PlRefPath> = args.map(|f| PlRefPath::new(f.as_str())).collect();
    if files.is_empty() || !matches!(engine.as_str(), "streaming" | "in-memory") {
        bail!(usage);
    }
    let started = Instant::now();
    let events = LazyFrame::scan_parquet_files(files.into(), ScanArgsParquet::default())?;
    let mut ctx = SQLContext::new();
    ctx.register("events", events);
    let query = ctx.execute(&sql).map_err(|e| anyhow::anyhow!("the SQL: {e}"))?;
    match engine.as_str() {
        // As the runner's items run: a sink, executed by the streaming engine.
        "streaming" => {
            let sink = query.sink(
                SinkDestination::File { target: SinkTarget::Path(PlRefPath::new(out.as_str())) },
                FileWriteFormat::Parquet(Arc::new(ParquetWriteOptions::default())),
                UnifiedSinkArgs::default(),
            )?;
            sink.collect_with_engine(Engine::Streaming)?;
        }
        // The in-memory engine doesn't execute file sinks (Polars hands a sink's whole plan to
        // the streaming engine), so it collects, and the frame is written after.
        "in-memory" => {
            let mut frame = query.collect_with_engine(Engine::InMemory)?.unwrap_single();
            ParquetWriter::new(File::create(&out).with_context(|| format!("creating {out}"))?).finish(&mut frame)?;
        }
        _ => unreachable!("checked above"),
    }
    println!("{{\"seconds\": {}}}", started.elapsed().as_secs_f64());
    Ok(())
}
