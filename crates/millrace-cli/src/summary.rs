//! What a run came to: the engine's report plus what the CLI knows besides (how it ended,
//! the sink's result and refusals, the source's errors and skips, the dead letters), with
//! the outcome and exit code decided in one place.
//!
//! # Totals
//!
//! The engine counts an item the CLI's sink refused as delivered; [`Summary::totals`] moves
//! it to failed (and an item not written because stdout was closed to cancelled), so `in = delivered + filtered + failed + cancelled` holds for the whole
//! pipeline whenever no stage is a flat-map (`chunk` makes more items than it takes).
//!
//! # Exit codes
//!
//! 0 completed; 141 stdout was closed (`| head`) before everything was written; 1 the
//! pipeline failed (an item failed under `stop`, the source could not be
//! read to the end or could not read one of its inputs, an output could not be written); 130 interrupted by Ctrl-C (stopped
//! gracefully or aborted). Bad config or usage (2) never gets this far.

use millrace::{EndState, Report, RunErrorKind};

use crate::dead_letter::DeadLetterCount;
use crate::kinds::{SinkResult, SourceLog};
use crate::sink_runner::{SinkError, SinkOutcome};
use crate::supervise::{Ended, Interruption};

/// How a run ended, as the CLI tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The input was exhausted and everything drained.
    Completed,
    /// Stdout was closed (`| head`) before everything was written: the run stopped early
    /// (a `stdout` sink), or its result could not be printed.
    Closed,
    /// Ctrl-C: the source was stopped and items in flight drained.
    Interrupted,
    /// Ctrl-C twice: items in flight were dropped.
    Aborted,
    /// The pipeline failed.
    Failed,
}

impl Outcome {
    /// The word for it in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Closed => "closed",
            Outcome::Interrupted => "interrupted",
            Outcome::Aborted => "aborted",
            Outcome::Failed => "failed",
        }
    }

    /// The command's exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Completed => 0,
            Outcome::Failed => 1,
            Outcome::Closed => 141,
            Outcome::Interrupted | Outcome::Aborted => 130,
        }
    }
}

/// What the sink end reported (config pipelines; the built-in seed has a plain sum).
#[derive(Debug, Default)]
pub struct SinkSide {
    /// The sink's result, if it finished.
    pub result: Option<SinkResult>,
    /// Items delivered by the engine that the sink failed.
    pub rejected: u64,
    /// The first of them.
    pub errors: Vec<SinkError>,
    /// The error that ended the run from the sink, if any.
    pub fatal: Option<String>,
    /// Whether stdout was closed.
    pub closed: bool,
    /// Items delivered by the engine that were not written because stdout was closed.
    pub unwritten: u64,
}

impl From<SinkOutcome> for SinkSide {
    fn from(outcome: SinkOutcome) -> Self {
        SinkSide {
            result: outcome.result.ok(),
            rejected: outcome.rejected,
            errors: outcome.errors,
            fatal: outcome.fatal,
            closed: outcome.closed,
            unwritten: outcome.unwritten,
        }
    }
}

/// The whole account of one run.
#[derive(Debug)]
pub struct Summary {
    /// The pipeline's name.
    pub pipeline: String,
    /// Its file, if it came from one.
    pub file: Option<String>,
    /// Kinds of the source, each stage and the sink, in report order (`None`: built in).
    pub kinds: Vec<Option<String>>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The engine's report (a last snapshot if the run was abandoned).
    pub report: Report,
    /// The sink end.
    pub sink: SinkSide,
    /// The error that ended the source early, if any.
    pub source_error: Option<String>,
    /// Inputs the source skipped on purpose (`files`: over `max_size`), and the first reason.
    pub skipped: (u64, Option<String>),
    /// Inputs the source could not read (files, or directories it could not list), and
    /// the first of them in full.
    pub unreadable: (u64, Vec<String>),
    /// Dead-letter files, with the items each got and the items that could not be written.
    pub dead_letters: Vec<DeadLetterCount>,
}

/// Pipeline-wide counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    /// Items the source admitted.
    pub items_in: u64,
    /// Items flat-maps made beyond those they took (`chunk` turning one input into n pieces
    /// adds n − 1): items of their own, with ids like `#25.3`.
    pub expanded: u64,
    /// Items the sink took.
    pub delivered: u64,
    /// Items filtered out.
    pub filtered: u64,
    /// Items that failed (in a stage or at the sink).
    pub failed: u64,
    /// Items dropped unfinished by an abort.
    pub cancelled: u64,
}

impl Totals {
    /// Items that finished one way or another: delivered, filtered or failed.
    pub fn done(&self) -> u64 {
        self.delivered + self.filtered + self.failed
    }
}

impl Summary {
    /// Decides the outcome of a run from how it ended and what the CLI saw.
    ///
    /// Returns the summary and the sink's output, if the run was joined with one.
    ///
    /// # Errors
    ///
    /// The engine's message if it refused to build the pipeline (nothing ran). The CLI
    /// checks every setting first, so this is a gap between its checks and the engine's.
    pub fn new<R>(
        pipeline: &str,
        file: Option<&str>,
        kinds: Vec<Option<String>>,
        ended: Ended<R>,
        interruption: Interruption,
    ) -> Result<(Summary, Option<R>), String> {
        let (report, output, run_error) = match ended {
            Ended::Joined(Ok(finished)) => (finished.report, Some(finished.output), None),
            Ended::Joined(Err(e)) => {
                let report = e.report().cloned();
                let message = match e.kind() {
                    RunErrorKind::Item(item) => item.to_string(),
                    _ => e.to_string(),
                };
                match report {
                    Some(r) => (r, None, Some(message)),
                    None => return Err(message),
                }
            }
            Ended::Abandoned(report) => (report, None, None),
        };
        let outcome = match (interruption, report.end()) {
            (_, EndState::Failed) => Outcome::Failed,
            (Interruption::Aborted, _) => Outcome::Aborted,
            (Interruption::Stopped, _) => Outcome::Interrupted,
            _ if run_error.is_some() => Outcome::Failed,
            _ => Outcome::Completed,
        };
        Ok((
            Summary {
                pipeline: pipeline.to_owned(),
                file: file.map(str::to_owned),
                kinds,
                outcome,
                error: run_error,
                report,
                sink: SinkSide::default(),
                source_error: None,
                skipped: (0, None),
                unreadable: (0, Vec::new()),
                dead_letters: Vec::new(),
            },
            output,
        ))
    }

    /// Stdout was closed: a run that would have completed ends `closed` instead.
    pub fn stdout_closed(&mut self) {
        self.sink.closed = true;
        if self.outcome == Outcome::Completed {
            self.outcome = Outcome::Closed;
        }
    }

    /// Adds the sink end's account; a fatal sink error fails the run, and a closed stdout
    /// makes it `closed`.
    pub fn with_sink(mut self, sink: SinkSide) -> Self {
        if let Some(fatal) = &sink.fatal {
            self.error.get_or_insert_with(|| fatal.clone());
            if self.outcome == Outcome::Completed {
                self.outcome = Outcome::Failed;
            }
        }
        let closed = sink.closed;
        self.sink = sink;
        if closed {
            self.stdout_closed();
        }
        self
    }

    /// Adds the source's account; a source that could not read to the end, or could not
    /// read one of its inputs, fails the run.
    pub fn with_source(mut self, log: &SourceLog) -> Self {
        let error = log.error();
        if let Some(e) = &error {
            self.error
                .get_or_insert_with(|| format!("the source failed: {e}"));
            if self.outcome == Outcome::Completed {
                self.outcome = Outcome::Failed;
            }
        }
        let unreadable = log.unreadable_inputs();
        if unreadable.0 > 0 {
            let first = unreadable.1.first().map_or("?", String::as_str);
            self.error.get_or_insert_with(|| {
                format!(
                    "the source could not read {} input{} (first: {first})",
                    unreadable.0,
                    if unreadable.0 == 1 { "" } else { "s" }
                )
            });
            if self.outcome == Outcome::Completed {
                self.outcome = Outcome::Failed;
            }
        }
        self.source_error = error;
        self.skipped = log.skipped();
        self.unreadable = unreadable;
        self
    }

    /// Adds the dead letters; a dead-letter file that could not be written fails the run.
    pub fn with_dead_letters(mut self, files: Vec<DeadLetterCount>, error: Option<String>) -> Self {
        if let Some(e) = error {
            self.error.get_or_insert(format!("dead letters: {e}"));
            if self.outcome == Outcome::Completed {
                self.outcome = Outcome::Failed;
            }
        }
        self.dead_letters = files;
        self
    }

    /// The sink's refusals and the items it did not write (stdout closed), each at most
    /// what the engine counted delivered.
    pub fn undelivered(&self) -> (u64, u64) {
        let delivered = self.report.delivered();
        let rejected = self.sink.rejected.min(delivered);
        (rejected, self.sink.unwritten.min(delivered - rejected))
    }

    /// Pipeline-wide counts, with the sink's refusals moved from delivered to failed, and
    /// the items it did not write because stdout was closed to cancelled.
    pub fn totals(&self) -> Totals {
        let r = &self.report;
        let (rejected, unwritten) = self.undelivered();
        Totals {
            items_in: r.items_in(),
            expanded: r.expanded(),
            delivered: r.delivered() - rejected - unwritten,
            filtered: r.filtered(),
            failed: r.failed() + rejected,
            cancelled: r.cancelled() + unwritten,
        }
    }
}
