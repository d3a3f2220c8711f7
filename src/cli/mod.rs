//! The `runner` command line: argument parsing (clap) and dispatch. Each command's
//! work lives in its own module; this one only routes and maps outcomes to exit codes.

mod apply;
mod demo;
mod load;
mod sandbox;
mod state;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit::Exit;

/// Keeps two systems in sync without breaking either.
///
/// A pipeline file (YAML) declares the systems, the streams between them, the source
/// of truth and field ownership, auth and pagination. `runner` runs it with the unhappy
/// paths handled: rate limits, expiring tokens, shifting pages, crashes half-way,
/// missed webhooks, and fields both systems think they own.
///
/// Exit codes: 0 success, 1 run failed, 2 invalid pipeline or arguments, 3 a system
/// needs to be reconnected, 4 finished but some records are dead-lettered.
#[derive(Debug, Parser)]
#[command(name = "runner", version, max_term_width = 100)]
pub struct Cli {
    /// Format of log lines on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Which log lines to show: a level (error, warn, info, debug, trace) or a
    /// tracing filter such as `runner=debug`.
    #[arg(long, global = true, env = "RUNNER_LOG", default_value = "warn")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

/// Format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line per event, for people.
    Text,
    /// One JSON object per event, for log pipelines.
    Json,
}

/// Format of a command's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For people.
    Text,
    /// For scripts.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check pipeline files: YAML syntax, the JSON schema and semantic rules. Reports
    /// every problem as file:line:col with the offending line; exit 2 if any.
    Validate(ValidateArgs),
    /// Print the JSON schema of pipeline files (for editors and CI).
    Schema,
    /// Show what `apply` would do — creates, updates with before and after, deletes —
    /// without writing anything anywhere.
    Plan(PlanArgs),
    /// Run one sync of a pipeline: the initial load, then incremental runs.
    Apply(ApplyArgs),
    /// Run pipelines as a service: webhooks, scheduled pulls, reconciliation, metrics.
    Serve(ServeArgs),
    /// Read both sides in full and report missing, extra and differing records.
    Reconcile(ReconcileArgs),
    /// Show each stream's state: watermark, mapped records, pending writes, dead
    /// letters, last run.
    Status(state::StatusArgs),
    /// Show recent runs with their counts and errors.
    History(state::HistoryArgs),
    /// Records that could not be written: list them, retry them, or discard them.
    DeadLetters(state::DeadLettersArgs),
    /// Look up the id mappings between source and target records.
    Mappings(state::MappingsArgs),
    /// Two-way streams: fields changed on both sides and changes rejected because the
    /// other side owns the field, with both values and the rule that decided.
    Conflicts(state::ConflictsArgs),
    /// Manage secrets kept encrypted in the state store.
    Secrets(SecretsArgs),
    /// Manage a pipeline's state: `state reset` makes a stream start from scratch.
    State(state::StateArgs),
    /// Run a sync end to end against built-in sandbox APIs, with the unhappy paths on
    /// (a crash, expiring tokens, 429s, 5xx), then a two-way sync edited on both sides.
    /// Needs no setup.
    Demo(demo::DemoArgs),
    /// Serve the sandbox APIs (a CRM and a billing system) on loopback, to try
    /// pipelines against without any account.
    Sandbox(sandbox::SandboxArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Pipeline files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Only this stream.
    #[arg(long)]
    pub stream: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Only this stream.
    #[arg(long)]
    pub stream: Option<String>,
    /// Read the source in full instead of incrementally; a complete listing also
    /// detects deleted records.
    #[arg(long)]
    pub full: bool,
    /// Allow a run to delete more than the stream's `max_delete_fraction`.
    #[arg(long)]
    pub allow_mass_delete: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Pipeline files to serve.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Address to listen on for webhooks and metrics.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Only this stream.
    #[arg(long)]
    pub stream: Option<String>,
    /// Repair the drift found, through the outbox.
    #[arg(long)]
    pub heal: bool,
}

#[derive(Debug, Args)]
pub struct SecretsArgs {
    /// The pipeline file whose state store keeps the secrets.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(subcommand)]
    pub action: SecretAction,
}

#[derive(Debug, Subcommand)]
pub enum SecretAction {
    /// Store a secret; its value is read from stdin.
    Set {
        /// Name the pipeline uses as `{{ secret.NAME }}`.
        name: String,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    run(cli).into()
}

fn run(cli: Cli) -> Exit {
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Schema => {
            print!("{}", crate::config::schema::pipeline_schema_text());
            Exit::Success
        }
        Command::Plan(args) => apply::plan(&args),
        Command::Apply(args) => apply::apply(&args),
        Command::Serve(_) => not_built("serve", "a later issue (webhooks and schedules)"),
        Command::Reconcile(_) => not_built("reconcile", "a later issue (reconciliation)"),
        Command::Status(args) => state::status(&args),
        Command::History(args) => state::history(&args),
        Command::Conflicts(args) => state::conflicts(&args),
        Command::DeadLetters(args) => state::dead_letters(&args),
        Command::Mappings(args) => state::mappings(&args),
        Command::State(args) => state::state(&args),
        Command::Secrets(_) => not_built("secrets", "a later issue (encrypted secrets)"),
        Command::Demo(args) => demo::run(&args),
        Command::Sandbox(args) => sandbox::run(&args),
    }
}

/// Says plainly that a command exists in the interface but not yet in this build.
fn not_built(command: &str, arrives_with: &str) -> Exit {
    eprintln!(
        "runner {command}: not built yet — it arrives with {arrives_with}. Nothing was done."
    );
    Exit::Failed
}

fn init_logging(format: LogFormat, filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A subscriber may already be set (e.g. by a test harness); keeping it is fine.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
