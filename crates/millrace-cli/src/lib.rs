//! The `millrace` command: pipelines described in TOML files, run on the millrace engine,
//! with a live view, a report that names the bottleneck, and graceful Ctrl-C.
//!
//! The binary (`src/main.rs`) only calls [`main_with_args`]; the modules are public so
//! the integration tests (the loader fuzz test in particular) can reach them.
//!
//! * [`cli`] — the command line; [`commands`] — `run`, `check`, `stages`, `tune`.
//! * [`config`] — loading and checking pipeline files into a [`config::PipelineSpec`].
//! * [`value`] — the dynamic values items carry; [`kinds`] — the built-in stage kinds.
//! * [`build`] — spec to engine pipeline; [`sink_runner`] and [`dead_letter`] — the sink
//!   end and failed items.
//! * [`preflight`] — checking inputs and outputs before a run; [`diagnostics`] — errors
//!   and warnings as JSON;
//! * [`supervise`], [`signals`], [`live`], [`progress`], [`metrics_serve`], [`logging`] —
//!   watching a run; [`summary`], [`report_text`], [`report_json`], [`report_html`] —
//!   telling how it went; [`seed`] — the built-in seed pipeline; [`scale_out`] — stages on
//!   other processes over NATS (`nats` feature).

#![forbid(unsafe_code)]

pub mod build;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dead_letter;
pub mod diagnostics;
pub mod kinds;
pub mod live;
pub mod logging;
pub mod metrics_serve;
pub mod preflight;
pub mod progress;
pub mod report_html;
pub mod report_json;
pub mod report_text;
pub mod scale_out;
pub mod seed;
pub mod signals;
pub mod sink_runner;
pub mod summary;
pub mod supervise;
pub mod value;

use std::ffi::OsString;

use clap::Parser;

use cli::{Cli, Command, RunArgs};

/// Runs the command line `args` (the program name first); returns the exit code.
pub fn main_with_args<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; usage errors exit 2.
            let _ = e.print();
            return if e.use_stderr() {
                commands::EXIT_CONFIG
            } else {
                commands::EXIT_OK
            };
        }
    };
    match cli.command {
        None => commands::run::run(&RunArgs::default()),
        Some(Command::Run(args)) => commands::run::run(&args),
        Some(Command::Check(args)) => commands::check::run(&args),
        Some(Command::Stages(args)) => commands::stages::run(&args),
        Some(Command::Tune(args)) => commands::tune::run(&args),
        Some(Command::Worker(args)) => commands::worker(&args),
    }
}
