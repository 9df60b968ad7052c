//! `pipes_tests`: the executable Dagster's Pipes conformance harness drives. Each flag asks for
//! one behaviour; the harness checks what arrives on the orchestrator side.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use dagster_pipes::bootstrap::{EnvVarParamsLoader, ParamsLoader};
use dagster_pipes::context_loader::ContextSource;
use dagster_pipes::writer::{MessageTarget, MessagesParams};
use dagster_pipes::{AssetCheck, AssetMaterialization, Metadata, MetadataValue, PipesContext};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs one conformance behaviour inside a Dagster Pipes session.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The harness test being run (selects the behaviour).
    #[arg(long)]
    test_name: Option<String>,
    /// Accepted for compatibility: the bootstrap always comes from the environment.
    #[arg(long)]
    env: bool,
    /// Send the "Hello from external process!" custom message.
    #[arg(long)]
    full: bool,
    /// Fail with "Very bad error has happened!".
    #[arg(long)]
    throw_error: bool,
    /// Log one message at each level.
    #[arg(long)]
    logging: bool,
    /// A JSON file the context's extras must equal.
    #[arg(long)]
    extras: Option<PathBuf>,
    /// The job name the context must carry.
    #[arg(long)]
    job_name: Option<String>,
    /// `s3` requires the context to come from S3.
    #[arg(long)]
    context_loader: Option<String>,
    /// `s3` requires messages to go to S3.
    #[arg(long)]
    message_writer: Option<String>,
    /// A JSON file `{"payload": X}`: report X as a custom message.
    #[arg(long, alias = "custom-payload-path")]
    custom_payload: Option<PathBuf>,
    /// A JSON file with optional `dataVersion` and `assetKey`: report a materialization.
    #[arg(long)]
    report_asset_materialization: Option<PathBuf>,
    /// A JSON file with `passed`, `severity`, `checkName` and optional `assetKey`.
    #[arg(long)]
    report_asset_check: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = check_channels(&args) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    dagster_pipes::run(|ctx| behave(ctx, &args))
}

/// The harness says which loader and writer it set up; make sure that is what we use.
fn check_channels(args: &Args) -> Result<(), BoxError> {
    let loader = EnvVarParamsLoader;
    if !loader.is_dagster_pipes_process() {
        return Ok(());
    }
    if args.context_loader.as_deref() == Some("s3")
        && !matches!(ContextSource::from_params(&loader.load_context_params()?)?, ContextSource::S3 { .. })
    {
        return Err("--context-loader s3, but the context params are not an S3 location".into());
    }
    if args.message_writer.as_deref() == Some("s3")
        && !matches!(MessagesParams::from_params(&loader.load_messages_params()?)?.target, MessageTarget::S3 { .. })
    {
        return Err("--message-writer s3, but the messages params are not an S3 location".into());
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value, BoxError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?)
}

/// The error the harness expects, by message: the bare text, no type prefix.
#[derive(Debug)]
struct VeryBadError;

impl std::fmt::Display for VeryBadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Very bad error has happened!")
    }
}

impl std::error::Error for VeryBadError {}

fn behave(ctx: &PipesContext, args: &Args) -> Result<(), BoxError> {
    if let Some(expected) = &args.job_name
        && ctx.job_name() != Some(expected.as_str())
    {
        return Err(format!("job name {:?} != expected {expected:?}", ctx.job_name()).into());
    }
    if let Some(path) = &args.extras {
        let expected = read_json(path)?;
        let got = Value::Object(ctx.extras().clone());
        if got != expected {
            return Err(format!("extras {got} != expected {expected}").into());
        }
    }
    let test = args.test_name.as_deref().unwrap_or_default();
    if args.throw_error || test == "test_error_reporting" {
        return Err(Box::new(VeryBadError));
    }
    if args.full || test == "test_components" {
        ctx.report_custom_message("Hello from external process!")?;
    }
    if args.logging || test == "test_message_log" {
        let log = ctx.logger();
        log.debug("Debug message")?;
        log.info("Info message")?;
        log.warning("Warning message")?;
        log.error("Error message")?;
        log.critical("Critical message")?;
    }
    if let Some(path) = &args.custom_payload {
        let file = read_json(path)?;
        ctx.report_custom_message(file.get("payload").cloned().unwrap_or(Value::Null))?;
    }
    if let Some(path) = &args.report_asset_materialization {
        let spec = read_json(path)?;
        let mut m = AssetMaterialization::new().metadata(static_metadata());
        if let Some(v) = spec.get("dataVersion").and_then(Value::as_str) {
            m = m.data_version(v);
        }
        if let Some(k) = spec.get("assetKey").and_then(Value::as_str) {
            m = m.asset_key(k);
        }
        ctx.report_asset_materialization(m)?;
    }
    if let Some(path) = &args.report_asset_check {
        let spec = read_json(path)?;
        let name = spec["checkName"].as_str().ok_or("checkName missing")?;
        let passed = spec["passed"].as_bool().ok_or("passed missing")?;
        let severity = spec["severity"].as_str().ok_or("severity missing")?.parse()?;
        let mut check = AssetCheck::new(name, passed).severity(severity).metadata(static_metadata());
        if let Some(k) = spec.get("assetKey").and_then(Value::as_str) {
            check = check.asset_key(k);
        }
        ctx.report_asset_check(check)?;
    }
    Ok(())
}

/// The harness's static metadata: every entry, with its exact type.
fn static_metadata() -> Metadata {
    Metadata::new()
        .with("bool_true", true)
        .with("bool_false", false)
        .with("float", 0.1)
        .with("int", 1)
        .with("url", MetadataValue::Url("https://dagster.io".into()))
        .with("path", MetadataValue::Path("/dev/null".into()))
        .with("null", MetadataValue::Null)
        .with("md", MetadataValue::Md("**markdown**".into()))
        .with(
            "json",
            MetadataValue::Json(json!({
                "quux": {"a": 1, "b": 2}, "corge": null, "qux": [1, 2, 3], "foo": "bar", "baz": 1
            })),
        )
        .with("text", "hello")
        .with("asset", MetadataValue::Asset("foo/bar".into()))
        .with("dagster_run", MetadataValue::DagsterRun("db892d7f-0031-4747-973d-22e8b9095d9d".into()))
        .with("notebook", MetadataValue::Notebook("notebook.ipynb".into()))
}
