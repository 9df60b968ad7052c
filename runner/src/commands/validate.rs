//! `runner validate`: checks a job spec and prints its steps in order; `runner describe`: the
//! job as Dagster's asset graph, in JSON.

use std::path::Path;
use std::process::ExitCode;

use runner_spec::JobSpec;

pub(super) fn validate(job: &Path) -> anyhow::Result<ExitCode> {
    let spec = JobSpec::load(job)?;
    let order = runner_spec::validate::order(&spec).map_err(anyhow::Error::msg)?;
    println!("{}: {} step(s), valid", spec.name, order.len());
    for (i, s) in order.iter().enumerate() {
        println!(
            "  {}. {} ({} → {})",
            i + 1,
            s.name,
            s.inputs.keys().cloned().collect::<Vec<_>>().join(", "),
            s.outputs.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn describe(job: &Path) -> anyhow::Result<ExitCode> {
    let spec = JobSpec::load(job)?;
    let description = runner_spec::describe::describe(&spec).map_err(anyhow::Error::msg)?;
    println!("{}", serde_json::to_string_pretty(&description)?);
    Ok(ExitCode::SUCCESS)
}
