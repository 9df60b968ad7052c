//! `runner example generate`: writes the example pipeline's synthetic raw data.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ExampleCommand;

pub(super) fn example(command: ExampleCommand) -> anyhow::Result<ExitCode> {
    let ExampleCommand::Generate { out, start, days, events_per_day, csv_files, bad_fraction, users, seed } = command;
    let g = crate::example_data::Generate {
        start: chrono::NaiveDate::parse_from_str(&start, "%Y-%m-%d").with_context(|| format!("--start {start:?}"))?,
        days,
        events_per_day,
        csv_files_per_day: csv_files,
        bad_fraction,
        users,
        seed,
    };
    let n = crate::example_data::generate(&out, &g).with_context(|| format!("writing under {}", out.display()))?;
    println!("wrote {n} files under {}", out.join("raw").display());
    Ok(ExitCode::SUCCESS)
}
