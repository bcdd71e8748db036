//! The command line: `millrace [run [FILE]] | check FILE | stages [KIND] | tune FILE`, with
//! `--help` and examples on every command.
//!
//! Usage errors (an unknown flag, a missing argument) exit with code 2, as bad config does.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const MAIN_EXAMPLES: &str = "\
Examples:
  millrace                                  run the built-in seed pipeline (3·x² over 10,000,000 numbers)
  millrace run examples/logs.toml           run a pipeline file
  millrace run examples/seed.toml --set source.end=1000 --quiet
  millrace check examples/files.toml        validate a file and print it with every default filled in
  millrace stages                           list the built-in stage kinds
  millrace stages grep                      one kind's parameters and an example
  millrace tune examples/imbalanced.toml    find each stage's worker count by autoscaling

Exit codes: 0 success; 1 the pipeline failed; 2 bad config or usage; 3 completed, but items
failed (--allow-failures: 0); 130 interrupted (Ctrl-C); 141 stdout was closed (| head) before
all the data was written; 143 terminated (SIGTERM).";

const RUN_EXAMPLES: &str = "\
Examples:
  millrace run                              the built-in seed pipeline over 10,000,000 numbers
  millrace run --n 1000                     the seed pipeline over 1,000 numbers
  millrace run examples/imbalanced.toml     see which stage holds a pipeline back
  millrace run examples/autoscale.toml      let the autoscaler find each stage's workers
  millrace run examples/io.toml             20,000 waits, 1,000 in flight, about 1 s
  millrace run examples/logs.toml --set stage.grep.pattern=WARN
  millrace run examples/files.toml --report report.json --quiet
  millrace run --strict --error-format json f.toml   check inputs and outputs first
  generate-pipeline | millrace run -        the pipeline file on stdin
  millrace run examples/imbalanced.toml --report run.html --metrics-addr 127.0.0.1:9100

On a terminal a live view shows each stage's items/s, busy/idle/blocked share, queue fill
and workers, the percentage done and time left where the source knows its size, and the
autoscaler's decisions as they happen. Off a terminal a progress line is printed every 10 s
(--progress-every).
Ctrl-C stops gracefully (the source stops, items in flight drain, the sink flushes) and the
report says how many items were done; a second Ctrl-C aborts at once.
Data (sink output) goes to stdout; the report and messages go to stderr.";

const CHECK_EXAMPLES: &str = "\
Examples:
  millrace check examples/logs.toml
  millrace check examples/seed.toml --set stage.square.workers=4
  millrace check --strict --format json examples/logs.toml
  generate-pipeline | millrace check -

Prints the resolved pipeline as TOML, with every default written out and a `# emits: TYPE`
comment after the source and each stage, and exits 0; a bad file prints every error,
each as FILE:LINE:COLUMN, what is wrong and a hint, and exits 2. Inputs that do not exist
and outputs that cannot be written are warnings; with --strict they are errors (exit 1).";

const TUNE_EXAMPLES: &str = "\
Examples:
  millrace tune examples/imbalanced.toml
  millrace tune examples/imbalanced.toml --seconds 3 --set pipeline.cpu_budget=2

Runs the pipeline with every stage on workers = \"auto\" for --seconds (or until the input
ends), then prints the worker counts the autoscaler settled on as [[stage]] snippets to paste
into the file, and each decision it took with its reason. Ctrl-C ends the run early and
still prints what it found. The pipeline's outputs are left alone: the sink's file and the
dead-letter files are written to a temporary directory, and a stdout sink prints nothing.";

const STAGES_EXAMPLES: &str = "\
Examples:
  millrace stages             every kind: sources, transforms, sinks
  millrace stages chunk       one kind in full";

/// Run concurrent staged pipelines and see which stage holds them back.
#[derive(Parser, Debug)]
#[command(name = "millrace", version, after_help = MAIN_EXAMPLES)]
pub struct Cli {
    /// What to do (default: run the built-in seed pipeline).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a pipeline file (with no file: the built-in seed pipeline).
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Validate a pipeline file (settings, and the value types between stages) without
    /// running it, and print the resolved pipeline.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// List the built-in stage kinds, with their types, parameters and an example each.
    #[command(after_help = STAGES_EXAMPLES)]
    Stages(StagesArgs),
    /// Run a pipeline with autoscaling for a while and print the worker counts it settled on.
    #[command(after_help = TUNE_EXAMPLES)]
    Tune(TuneArgs),
    /// Run a pipeline file's remote stages (`connector = "nats"`) here, on items from the
    /// NATS server, until Ctrl-C (needs the `nats` feature).
    #[command(after_help = WORKER_EXAMPLES)]
    Worker(WorkerArgs),
}

const WORKER_EXAMPLES: &str = "\
Examples:
  nats-server -js -sd /var/lib/nats                        a server with JetStream on
  millrace worker examples/nats/scale_out.toml --stage c   on each machine that helps
  millrace run examples/nats/scale_out.toml                the source and sink side

The stages marked connector = \"nats\" run on the workers; they share the stage's input,
so scaling out is starting another worker. The server is the file's `url` (default
nats://127.0.0.1:4222); credentials come from MILLRACE_NATS_CREDS (a .creds file),
MILLRACE_NATS_USER and MILLRACE_NATS_PASSWORD, or MILLRACE_NATS_TOKEN. A worker waits for
a server that is not up yet, saying so.";

/// `millrace worker`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The pipeline file (TOML).
    pub file: PathBuf,
    /// The first stage of the run of remote stages to work on.
    #[arg(long, value_name = "NAME")]
    pub stage: String,
    /// Workers per remote stage in this process, 1 to 1024 as in the file (default: as the
    /// file says).
    #[arg(long, value_name = "N", value_parser = worker_count)]
    pub workers: Option<usize>,
    /// Override a setting of the file (the worker and the origin must agree).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// How diagnostics (config errors, pre-flight findings) are written.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// For people: located, with the offending line and a hint.
    #[default]
    Text,
    /// One JSON document (schema `millrace-diagnostics`, see the README).
    Json,
}

/// `millrace run`.
#[derive(Args, Debug, Default)]
pub struct RunArgs {
    /// The pipeline file (TOML); `-` reads it from stdin. Without one, the built-in seed
    /// pipeline runs.
    pub file: Option<PathBuf>,
    /// No live view and no report table: only the sink's output and errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// No live view, even on a terminal (the report is still printed).
    #[arg(long)]
    pub no_live: bool,
    /// Also write the report: as one self-contained HTML page if FILE ends in `.html`,
    /// else as JSON (schema: REPORT_SCHEMA.md, version 3).
    #[arg(long, value_name = "FILE.json|FILE.html")]
    pub report: Option<PathBuf>,
    /// Serve the run's counters for Prometheus at http://HOST:PORT/metrics while it runs
    /// (port 0: any free port; the address is printed).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Write the engine's traces (spans for the run, its threads and sampled batches;
    /// decisions, wedges, item errors) on stderr, as text or one JSON object a line.
    /// `RUST_LOG` filters them (default `info`); setting `RUST_LOG` alone turns on text.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<crate::logging::LogFormat>,
    /// Override a setting of the file, e.g. `source.end=1000`, `stage.grep.workers=4`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Exit 0 when the run completed although items failed (skipped under `on_error`);
    /// without it such a run exits 3.
    #[arg(long)]
    pub allow_failures: bool,
    /// How many numbers the built-in seed pipeline squares (only without a file).
    #[arg(long, value_name = "N")]
    pub n: Option<u64>,
    /// Check everything that can be checked before running (inputs exist and can be read,
    /// outputs can be written) and refuse to start (exit 1) if anything is wrong.
    #[arg(long)]
    pub strict: bool,
    /// How config errors and pre-flight findings are written to stderr.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Text)]
    pub error_format: Format,
    /// Off a terminal, a progress line on stderr this often (`10s`, `1m`; `0` or `off`:
    /// none). Default: every 10 s when stderr is not a terminal, none under --quiet.
    #[arg(long, value_name = "DURATION")]
    pub progress_every: Option<String>,
}

/// `millrace check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The pipeline file (TOML); `-` reads it from stdin.
    pub file: PathBuf,
    /// Override a setting of the file before checking it.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Errors, not warnings, for what the run would trip on: an input that does not exist
    /// or cannot be read, an output that cannot be written (exit 1).
    #[arg(long)]
    pub strict: bool,
    /// `json`: print the diagnostics as one JSON document on stdout, instead of the
    /// resolved pipeline (and the diagnostics on stderr).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Text)]
    pub format: Format,
}

/// `millrace tune`.
#[derive(Args, Debug)]
pub struct TuneArgs {
    /// The pipeline file (TOML).
    pub file: PathBuf,
    /// How long to run, at most (the run ends earlier if the input does; what is in flight at
    /// the limit is dropped).
    #[arg(long, value_name = "SECONDS", default_value_t = crate::commands::tune::DEFAULT_SECONDS)]
    pub seconds: f64,
    /// Override a setting of the file, e.g. `pipeline.cpu_budget=2`, `source.end=1000000`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// No live view, even on a terminal.
    #[arg(long)]
    pub no_live: bool,
}

/// `millrace stages`.
#[derive(Args, Debug)]
pub struct StagesArgs {
    /// Show only this kind.
    pub kind: Option<String>,
}

/// `--workers N` of `millrace worker`: the range a pipeline file allows
/// ([`MAX_WORKERS`](crate::config::scaling::MAX_WORKERS)).
fn worker_count(text: &str) -> Result<usize, String> {
    let max = crate::config::scaling::MAX_WORKERS;
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a number from 1 to {max}")),
    }
}
