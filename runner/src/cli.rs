//! The command line: `run`, `worker`, `fleet gc`, `validate`, `describe`, `example generate`, and the
//! internal `exec-item` that runs one item in its own process.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use runner_types::BackendKind;

/// Runs declarative Polars jobs on local workers or an EC2 spot fleet, and reports to Dagster.
#[derive(Debug, Parser)]
#[command(name = "runner", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job: plan each step's work items, run them on workers, and wait for them.
    ///
    /// Launched by Dagster (through a Pipes client), the partition comes from the Pipes
    /// context or its extras, and logs, progress, materializations and checks go back to
    /// Dagster. Exits non-zero when any step fails.
    Run(RunArgs),
    /// Run a worker: take items from the work queue until idle or interrupted.
    Worker(WorkerArgs),
    /// Run one work item in this process (used by workers; not for people).
    #[command(hide = true)]
    ExecItem(ExecItemArgs),
    /// Manage fleets.
    Fleet {
        /// The fleet command.
        #[command(subcommand)]
        command: FleetCommand,
    },
    /// The runner's settings: which config file, backend, root and state a command would use.
    Config {
        /// The config command.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Build artefacts for fleets: check and upload the worker binary.
    Dist {
        /// The dist command.
        #[command(subcommand)]
        command: DistCommand,
    },
    /// Check a job spec and print its steps in order.
    Validate {
        /// The job spec (TOML).
        job: PathBuf,
    },
    /// Print the job as Dagster's asset graph (JSON): its assets, their upstream assets and
    /// code versions, and its checks. The Dagster side builds its asset specs from this.
    Describe {
        /// The job spec (TOML).
        job: PathBuf,
        /// Write the description to this file (a prepared description, which the Dagster side
        /// reads instead of running the runner while it is fresh) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The example pipeline's synthetic data.
    Example {
        /// The example command.
        #[command(subcommand)]
        command: ExampleCommand,
    },
}

/// Parses `--backend`, listing the choices in `--help` and in errors.
fn backend_kind() -> impl clap::builder::TypedValueParser<Value = BackendKind> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["local", "aws"]).try_map(|s| s.parse::<BackendKind>())
}

/// `runner run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job spec (TOML).
    pub job: PathBuf,
    /// A partition to run (repeat for several). Dagster supplies this itself.
    #[arg(long = "partition", value_name = "KEY")]
    pub partitions: Vec<String>,
    /// A range of daily partitions, inclusive: `2024-01-01..2024-01-07`.
    #[arg(long, value_name = "START..END")]
    pub partition_range: Option<String>,
    /// Where the run works.
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Local worker processes (default: the number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Give up after this long (`30m`, `6h`).
    #[arg(long)]
    pub max_runtime: Option<String>,
    /// Redo items that are already committed.
    #[arg(long)]
    pub force: bool,
    /// The run id (default: generated).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Write the run summary as JSON here.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Run only these steps (repeat for several); the others' outputs must already exist.
    #[arg(long = "step", value_name = "NAME")]
    pub steps: Vec<String>,
    /// With `--step`: also run the steps upstream of them that have committed nothing for one
    /// of the run's partitions (what materializing one asset of a job needs).
    #[arg(long, requires = "steps")]
    pub missing_upstream: bool,
}

/// The flags of the settings that say where a run works; each wins over its environment
/// variable, the runner config and the job spec (see `settings`).
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Where relative job paths resolve: a directory or `s3://bucket/prefix` (else
    /// `SPOTLAKE_ROOT`, the config's `root`, the spec's `root`, the spec's folder).
    #[arg(long)]
    pub root: Option<String>,
    /// Where run state lives (else `SPOTLAKE_STATE`, the config's `state`, `{root}/_runner`).
    #[arg(long)]
    pub state: Option<String>,
    /// Backend (else `SPOTLAKE_BACKEND`, the config's `backend`, `local`).
    #[arg(long, value_parser = backend_kind())]
    pub backend: Option<BackendKind>,
    /// The runner config file (else `SPOTLAKE_CONFIG`).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `runner worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The worker configuration as JSON (what the orchestrator passes).
    #[arg(long, conflicts_with = "config_file")]
    pub config_json: Option<String>,
    /// The worker configuration in a file (what EC2 user data writes).
    #[arg(long)]
    pub config_file: Option<PathBuf>,
}

/// `runner exec-item`.
#[derive(Debug, Args)]
pub struct ExecItemArgs {
    /// The work item (JSON).
    #[arg(long, required_unless_present = "serve")]
    pub item: Option<PathBuf>,
    /// Where to write the result (JSON).
    #[arg(long, required_unless_present = "serve")]
    pub result: Option<PathBuf>,
    /// Scratch directory.
    #[arg(long, required_unless_present = "serve")]
    pub scratch: Option<PathBuf>,
    /// Take items one after another, a request per line on stdin, until it closes.
    #[arg(long, conflicts_with_all = ["item", "result", "scratch"])]
    pub serve: bool,
}

/// `runner fleet ...`.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Delete the fleets, instances, launch templates and queues of this deployment whose run is
    /// over. Run it on a schedule: it is what cleans up after an orchestrator that was killed.
    Gc {
        /// The runner config file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where run state lives.
        #[arg(long)]
        state: Option<String>,
        /// Backend.
        #[arg(long, value_parser = backend_kind())]
        backend: Option<BackendKind>,
    },
}

/// `runner config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the config file, backend, data root and state that `runner run` would use with
    /// these flags and this environment, each with where it came from (flag, environment,
    /// runner config, job spec or default).
    Show(ConfigShowArgs),
}

/// `runner config show`.
#[derive(Debug, Args)]
pub struct ConfigShowArgs {
    /// The job spec (its `root`, and its folder as the default root).
    #[arg(long)]
    pub job: Option<PathBuf>,
    /// As for `runner run`.
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Print JSON (what the Dagster side reads).
    #[arg(long)]
    pub json: bool,
}

/// `runner dist ...`.
#[derive(Debug, Subcommand)]
pub enum DistCommand {
    /// Print what a worker binary needs (architecture, glibc versions); fail if it needs a
    /// newer glibc than `--max-glibc`.
    Check {
        /// The binary.
        binary: PathBuf,
        /// The newest glibc the AMIs have (Amazon Linux 2023: 2.34).
        #[arg(long, default_value = "2.34")]
        max_glibc: String,
    },
    /// Upload a worker binary under its sha256 and print the `ec2.worker_binaries` entry for it.
    Upload {
        /// The binary (`make dist` builds one).
        binary: PathBuf,
        /// Where binaries live, `s3://bucket/prefix`; the binary goes to `{to}/{sha256}/runner-{arch}`.
        #[arg(long)]
        to: String,
        /// The newest glibc the AMIs have (Amazon Linux 2023: 2.34).
        #[arg(long, default_value = "2.34")]
        max_glibc: String,
    },
}

/// `runner example ...`.
#[derive(Debug, Subcommand)]
pub enum ExampleCommand {
    /// Write synthetic raw event files (headerless CSV and NDJSON, gzipped).
    Generate {
        /// The data root; files go under `raw/{day}/`.
        #[arg(long)]
        out: PathBuf,
        /// First day.
        #[arg(long, default_value = "2024-01-01")]
        start: String,
        /// Number of days.
        #[arg(long, default_value_t = 3)]
        days: u32,
        /// Events per day.
        #[arg(long, default_value_t = 20_000)]
        events_per_day: u64,
        /// CSV files per day.
        #[arg(long, default_value_t = 2)]
        csv_files: u32,
        /// Fraction of malformed rows.
        #[arg(long, default_value_t = 0.002)]
        bad_fraction: f64,
        /// Distinct users the events are spread over (at most 10,000,000: ids are `u` and 7 digits).
        #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        users: u64,
        /// Random seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}
