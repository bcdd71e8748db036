//! The subcommands, one module each: [`run`], [`check`], [`stages`], [`tune`].
//!
//! Each returns the process's exit code: [`EXIT_OK`], [`EXIT_FAILED`] (the pipeline
//! failed), [`EXIT_CONFIG`] (bad config or usage), or 130 after Ctrl-C. Messages go to
//! stderr, prefixed `millrace:`; data goes to stdout.

pub mod check;
pub mod run;
pub mod stages;
pub mod tune;

use std::sync::Arc;
use std::time::Instant;

use crate::build::{build, Built};
use crate::config::PipelineSpec;
use crate::dead_letter::DeadLetters;
use crate::kinds::SourceLog;
use crate::live::LiveView;
use crate::signals::Interrupts;
use crate::sink_runner::SinkRunner;
use crate::summary::Summary;
use crate::supervise::{supervise, Watch};

/// Success.
pub const EXIT_OK: u8 = 0;
/// The pipeline failed: an item failed under `stop`, an input could not be read or an
/// output written.
pub const EXIT_FAILED: u8 = 1;
/// Bad config or usage.
pub const EXIT_CONFIG: u8 = 2;

/// Prints `millrace: message` on stderr and returns `code`.
pub fn fail(code: u8, message: &str) -> u8 {
    eprintln!("millrace: {message}");
    code
}

/// A pipeline file run to its end under supervision.
pub struct Supervised {
    /// What the source met besides items.
    pub source_log: Arc<SourceLog>,
    /// The dead-letter files, still to be finished.
    pub dead_letters: DeadLetters,
    /// What the run did.
    pub summary: Summary,
    /// The sink's runner, when the sink returned one.
    pub runner: Option<SinkRunner>,
}

/// Builds `spec`'s pipeline and runs it under the live view `live`, Ctrl-C and an optional
/// `deadline` (a graceful stop), then summarises it, naming each part's kind from `kinds`.
///
/// # Errors
///
/// The exit code, once the message is printed: [`EXIT_FAILED`] if the pipeline cannot be
/// built, [`EXIT_CONFIG`] if the engine refuses its settings or the summary cannot be made.
pub fn run_supervised(
    spec: &PipelineSpec,
    kinds: Vec<Option<String>>,
    live: Option<LiveView>,
    deadline: Option<Instant>,
) -> Result<Supervised, u8> {
    let Built {
        pipeline,
        source_log,
        dead_letters,
        stop,
        runtime,
    } = build(spec).map_err(|e| fail(EXIT_FAILED, &e))?;
    let running = pipeline
        .spawn()
        .map_err(|e| fail(EXIT_CONFIG, &format!("error: {e}")))?;
    let interrupts = Interrupts::install();
    let watch = Watch {
        live,
        stop: Some(&stop),
        interrupts: &interrupts,
        deadline,
    };
    let (ended, interruption) = supervise(running, watch);
    // The I/O stages' runtime has served its purpose once the run has ended.
    drop(runtime);
    let (summary, runner) = Summary::new(&spec.name, Some(&spec.file), kinds, ended, interruption)
        .map_err(|e| fail(EXIT_CONFIG, &format!("error: {e}")))?;
    Ok(Supervised {
        source_log,
        dead_letters,
        summary,
        runner,
    })
}
