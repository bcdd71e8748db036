//! The subcommands, one module each: [`run`], [`check`], [`stages`], [`tune`].
//!
//! Each returns the process's exit code: [`EXIT_OK`], [`EXIT_FAILED`] (the pipeline
//! failed), [`EXIT_CONFIG`] (bad config or usage), [`EXIT_ITEMS_FAILED`] (items failed),
//! [`EXIT_CLOSED`] (stdout was closed), [`EXIT_INTERRUPTED`] (Ctrl-C) or
//! [`EXIT_TERMINATED`] (SIGTERM). Messages go to stderr, prefixed `millrace:`; data goes to stdout,
//! through [`print_out`], so that a closed stdout (`millrace stages | head -1`) ends the
//! command with [`EXIT_CLOSED`] instead of a panic.

pub mod check;
pub mod run;
pub mod stages;
pub mod tune;

use std::sync::Arc;
use std::time::Instant;

use millrace_prometheus::MetricsServer;

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
/// The run completed, but items failed (skipped under `on_error`, or refused by the sink),
/// and failures were not allowed (`--allow-failures`).
pub const EXIT_ITEMS_FAILED: u8 = 3;
/// Interrupted by Ctrl-C (SIGINT): 128 + 2.
pub const EXIT_INTERRUPTED: u8 = 130;
/// Stdout was closed before all the data was written (`| head`): 128 + SIGPIPE, the code
/// a shell shows for a command a closed pipe ended. The report is still written.
pub const EXIT_CLOSED: u8 = 141;
/// Interrupted by SIGTERM: 128 + 15.
pub const EXIT_TERMINATED: u8 = 143;

/// Stdout could not be written: its reader went away, or it failed.
#[derive(Debug)]
pub struct StdoutClosed(pub std::io::Error);

/// Writes `text` to stdout and flushes it.
///
/// # Errors
///
/// [`StdoutClosed`] if stdout cannot be written (a closed pipe).
pub fn print_out(text: &str) -> Result<(), StdoutClosed> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(StdoutClosed)
}

/// Writes `text` to stdout and returns `code`; if stdout cannot be written, says so on
/// stderr and returns [`EXIT_CLOSED`] instead of a success (a failure's code stands).
pub fn print_or_closed(text: &str, code: u8) -> u8 {
    match print_out(text) {
        Ok(()) => code,
        Err(StdoutClosed(e)) => {
            let closed = if code == EXIT_OK { EXIT_CLOSED } else { code };
            fail(closed, &format!("stdout was closed: {e}"))
        }
    }
}

/// Writes `text` to stderr, ignoring a closed stderr (there is nowhere left to say so).
pub fn print_err(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Prints `millrace: message` on stderr and returns `code`.
pub fn fail(code: u8, message: &str) -> u8 {
    print_err(&format!("millrace: {message}\n"));
    code
}

/// `millrace worker`: runs its remote stages (see [`crate::scale_out`]); returns the exit
/// code. Without the `nats` feature it says how to get it.
pub fn worker(args: &crate::cli::WorkerArgs) -> u8 {
    #[cfg(feature = "nats")]
    return crate::scale_out::run_worker(args);
    #[cfg(not(feature = "nats"))]
    {
        let _ = args;
        fail(
            EXIT_CONFIG,
            "this millrace was built without NATS support: build it with the `nats` feature \
             (cargo install --path crates/millrace-cli --features nats)",
        )
    }
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

/// Builds `spec`'s pipeline and runs it under the live view `live` (or, without one, a
/// progress line every `progress_every`), Ctrl-C, an optional `deadline` (a cancel) and an
/// optional metrics server, then summarises it, naming each part's kind from `kinds`.
///
/// # Errors
///
/// The exit code and the message, once printed: [`EXIT_FAILED`] if the pipeline cannot be
/// built (an input that cannot be opened), [`EXIT_CONFIG`] if the engine refuses its
/// settings or the summary cannot be made.
pub fn run_supervised(
    spec: &PipelineSpec,
    kinds: Vec<Option<String>>,
    live: Option<LiveView>,
    deadline: Option<Instant>,
    progress_every: Option<std::time::Duration>,
    metrics: Option<&MetricsServer>,
) -> Result<Supervised, (u8, String)> {
    let failed = |code: u8, message: String| (fail(code, &message), message);
    let Built {
        pipeline,
        source_log,
        dead_letters,
        stop,
        runtime,
    } = build(spec).map_err(|e| failed(EXIT_FAILED, e))?;
    let running = pipeline
        .spawn()
        .map_err(|e| failed(EXIT_CONFIG, format!("error: {e}")))?;
    let interrupts = Interrupts::install();
    let watch = Watch {
        live,
        stop: Some(&stop),
        interrupts: &interrupts,
        deadline,
        progress: Some(source_log.progress()),
        front: None,
        progress_every,
        metrics,
        on_stop: None,
    };
    let (ended, interruption) = supervise(running, watch);
    // The I/O stages' runtime has served its purpose once the run has ended.
    drop(runtime);
    let (mut summary, runner) =
        Summary::new(&spec.name, Some(&spec.file), kinds, ended, interruption)
            .map_err(|e| failed(EXIT_CONFIG, format!("error: {e}")))?;
    summary.terminated = interrupts.terminated();
    Ok(Supervised {
        source_log,
        dead_letters,
        summary,
        runner,
    })
}
