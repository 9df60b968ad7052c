//! `runner config show`: the settings `runner run` would use with the same flags and
//! environment, each with where it came from ([`crate::settings`] owns the rule).

use std::process::ExitCode;

use runner_spec::JobSpec;
use serde_json::{Map, Value, json};

use crate::cli::ConfigShowArgs;
use crate::settings::{self, Explicit, Source};

pub(super) fn show(args: &ConfigShowArgs) -> anyhow::Result<ExitCode> {
    let spec = args.job.as_deref().map(JobSpec::load).transpose()?;
    let s = settings::resolve(Explicit::from(&args.settings), spec.as_ref().zip(args.job.as_deref()))?;
    let rows: [(&str, Option<(String, Source)>); 4] = [
        ("config", s.config_file.value.map(|p| (p.display().to_string(), s.config_file.source))),
        ("backend", Some((s.backend.value.to_string(), s.backend.source))),
        ("root", s.root.map(|r| (r.value.to_string(), r.source))),
        ("state", s.state.map(|r| (r.value.to_string(), r.source))),
    ];
    if args.json {
        let object: Map<String, Value> = rows
            .into_iter()
            .map(|(name, row)| {
                let value = row.map_or(Value::Null, |(value, source)| json!({"value": value, "source": source}));
                (name.to_string(), value)
            })
            .collect();
        println!("{}", Value::Object(object));
        return Ok(ExitCode::SUCCESS);
    }
    for (name, row) in rows {
        match row {
            Some((value, source)) => println!("{name:<8} {value}  ({source})"),
            None => println!("{name:<8} (none)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
