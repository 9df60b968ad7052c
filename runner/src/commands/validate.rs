//! `runner validate`: checks a job spec and prints its steps in order; `runner describe`: the
//! job as Dagster's asset graph, in JSON.

use std::path::Path;

use anyhow::Context as _;
use sha2::Digest as _;
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

/// Prints the description, or writes it to `out` (through a temporary file renamed into
/// place, so a reader never sees half of one). It records the sha256 of the spec's bytes: the
/// Dagster side uses a prepared description only while the spec still hashes to it.
pub(super) fn describe(job: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(job).with_context(|| format!("reading {}", job.display()))?;
    let spec = JobSpec::load(job)?;
    let description = runner_spec::describe::describe(&spec).map_err(anyhow::Error::msg)?;
    let mut value = serde_json::to_value(&description)?;
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "spec_sha256".into(),
            sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>().into(),
        );
        object.insert("runner_version".into(), env!("CARGO_PKG_VERSION").into());
    }
    let text = serde_json::to_string_pretty(&value)?;
    match out {
        None => println!("{text}"),
        Some(path) => {
            let partial = path.with_extension("json.partial");
            std::fs::write(&partial, format!("{text}\n")).with_context(|| format!("writing {}", partial.display()))?;
            std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
