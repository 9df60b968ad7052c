//! Logs: `tracing` to stderr (filtered by `SPOTLAKE_LOG`), and to Dagster as Pipes `log`
//! messages when the run was launched through Pipes.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the subscriber (once; later calls do nothing).
pub fn init_logging(pipes: Option<&dagster_pipes::PipesContext>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPOTLAKE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,aws_sdk_s3=warn")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(ansi);
    let registry = tracing_subscriber::registry().with(filter).with(fmt);
    let _ = match pipes {
        Some(ctx) => registry.with(dagster_pipes::PipesLayer::new(ctx)).try_init(),
        None => registry.try_init(),
    };
}
