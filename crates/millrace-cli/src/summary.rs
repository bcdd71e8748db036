//! What a run came to: the engine's report plus what the CLI knows besides (how it ended,
//! the sink's result and refusals, the source's errors and skips, the dead letters), with
//! the outcome and exit code decided in one place.
//!
//! # Totals
//!
//! The engine counts an item the CLI's sink refused as delivered; [`Summary::totals`] moves
//! it to failed (and an item not written because stdout was closed to cancelled), so
//! `in + expanded = delivered + filtered + failed + cancelled + in progress` holds for the
//! whole pipeline (`expanded`: the items flat-maps made beyond those they took).
//!
//! *In progress* is 0 unless the command gave up on an aborted run whose workers did not
//! let go ([`crate::supervise::ABORT_GRACE`] after the abort: a stage deep in a long
//! batch): the items it still held, queued or in a part's hands, which the engine's last
//! snapshot counts as neither done nor cancelled. [`Summary::in_progress`] says where.
//!
//! # Exit codes
//!
//! [`Summary::exit_code`] decides them, for the text report, the JSON report and the
//! process alike: 0 completed; 3 completed, but items failed (skipped under `on_error`),
//! unless failures are allowed (`--allow-failures`); 141 stdout was closed (`| head`)
//! before everything was written; 1 the pipeline failed (an item failed under `stop`, the
//! source could not be read to the end or could not read one of its inputs, an output
//! could not be written); 130 interrupted by Ctrl-C, 143 by SIGTERM (stopped gracefully or
//! aborted). Bad config or usage (2) never gets this far.

use millrace::{EndState, Report, RunErrorKind};

use crate::commands::{EXIT_INTERRUPTED, EXIT_ITEMS_FAILED, EXIT_TERMINATED};

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
            Outcome::Interrupted | Outcome::Aborted => EXIT_INTERRUPTED,
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
    /// The command stopped waiting for an aborted run whose workers had not let go; the
    /// report is a last snapshot.
    pub abandoned: bool,
    /// A SIGTERM (rather than Ctrl-C only) interrupted the run.
    pub terminated: bool,
    /// Items that failed do not make the exit code non-zero (`--allow-failures`).
    pub allow_failures: bool,
    /// A scaled-out run: what the parts before the back part (whose report this is) did.
    pub upstream: Option<Upstream>,
}

/// What the parts of a scaled-out run before its back part did: the front part (the source
/// and the stages before the broker) and the remote stages. The run's totals count them
/// with the back part's: its input is the front part's, and an item failed or filtered in
/// any part counts as failed or filtered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Upstream {
    /// Items the front part's source admitted: the run's input.
    pub items_in: u64,
    /// Items the front part's flat-maps made.
    pub expanded: u64,
    /// Items filtered in the front part and in the remote stages.
    pub filtered: u64,
    /// Items failed in the front part and in the remote stages.
    pub failed: u64,
    /// Items the front part dropped unfinished.
    pub cancelled: u64,
    /// Items the front part published to the broker.
    pub published: u64,
    /// Of those, the items the remote stages filtered or failed (the rest came back, or
    /// did not: those are counted cancelled).
    pub ended_remotely: u64,
    /// Item errors in the front part and the remote stages, in all.
    pub errors_total: u64,
    /// The first of them (the front part's, then the remote stages').
    pub errors: Vec<UpstreamError>,
    /// Their counts by stage and kind (`remote` for a remote stage's).
    pub errors_by_kind: Vec<(String, String, u64)>,
}

/// One item error in a part before the back part of a scaled-out run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamError {
    /// The stage it failed in.
    pub stage: String,
    /// The item, by its id in the origin.
    pub id: millrace::ItemId,
    /// Attempts made (1 where not known: a remote stage's).
    pub attempts: u32,
    /// The whole message.
    pub message: String,
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
    /// Items the run still held when the command stopped waiting for it (an abort whose
    /// workers did not let go): neither done nor cancelled. 0 for a run that ended.
    pub in_progress: u64,
}

/// Where an abandoned run still held items: a part's input queue and its hands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The part: `source`, a stage, or `sink`.
    pub stage: String,
    /// Items waiting in its input queue (for a fused stage: handed on by the stage before
    /// it, on the same worker).
    pub queued: u64,
    /// Items it had taken and not finished (the source: admitted and not yet sent on).
    pub in_hands: u64,
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
    /// Returns the summary and the sink's output, if the run was joined with one (a failed
    /// run's too, when it failed after its sink ran).
    ///
    /// # Errors
    ///
    /// The engine's message if it refused to build the pipeline (nothing ran). The CLI
    /// checks every setting first, so this is a gap between its checks and the engine's.
    pub fn new<R: 'static>(
        pipeline: &str,
        file: Option<&str>,
        kinds: Vec<Option<String>>,
        ended: Ended<R>,
        interruption: Interruption,
    ) -> Result<(Summary, Option<R>), String> {
        let abandoned = matches!(ended, Ended::Abandoned(_));
        let (report, output, run_error) = match ended {
            Ended::Joined(Ok(finished)) => (finished.report, Some(finished.output), None),
            Ended::Joined(Err(mut e)) => {
                let report = e.report().cloned();
                // A run that stopped after its sink ran (an item failed under `on_error =
                // "stop"`) still has the sink's output: what it holds buffered is written
                // when it finishes, and counts as delivered only then.
                let output = e.take_output::<R>();
                let message = match e.kind() {
                    RunErrorKind::Item(item) => item.to_string(),
                    _ => e.to_string(),
                };
                match report {
                    Some(r) => (r, output, Some(message)),
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
                abandoned,
                terminated: false,
                allow_failures: false,
                upstream: None,
            },
            output,
        ))
    }

    /// The command's exit code (see the module's docs).
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::Completed if self.failed_items().is_some() => EXIT_ITEMS_FAILED,
            Outcome::Interrupted | Outcome::Aborted if self.terminated => EXIT_TERMINATED,
            other => other.exit_code(),
        }
    }

    /// Items that failed in a run that otherwise completed, when that makes the exit code
    /// non-zero: a sentence that says so, for the report.
    pub fn failed_items(&self) -> Option<String> {
        let failed = self.totals().failed;
        if self.outcome != Outcome::Completed || failed == 0 || self.allow_failures {
            return None;
        }
        Some(format!(
            "exit code {EXIT_ITEMS_FAILED}: {failed} item{} failed (the run went on without {}); \
             --allow-failures makes that exit 0",
            if failed == 1 { "" } else { "s" },
            if failed == 1 { "it" } else { "them" }
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
    /// Item errors in all (the engine's, the sink's, and a scaled-out run's other parts').
    pub fn errors_total(&self) -> u64 {
        self.report.errors_total()
            + self.sink.rejected
            + self.upstream.as_ref().map_or(0, |up| up.errors_total)
    }

    /// The first item errors' messages: a scaled-out run's front part's and remote
    /// stages' first, then the engine's, then the sink's.
    pub fn error_messages(&self) -> impl Iterator<Item = String> + '_ {
        let upstream = self.upstream.iter().flat_map(|up| &up.errors);
        upstream
            .map(|e| e.message.clone())
            .chain(self.report.errors().iter().map(ToString::to_string))
            .chain(self.sink.errors.iter().map(|e| e.message.clone()))
    }

    pub fn totals(&self) -> Totals {
        let r = &self.report;
        let (rejected, unwritten) = self.undelivered();
        let ended = r.delivered() + r.filtered() + r.failed() + r.cancelled();
        let back = Totals {
            items_in: r.items_in(),
            expanded: r.expanded(),
            delivered: r.delivered() - rejected - unwritten,
            filtered: r.filtered(),
            failed: r.failed() + rejected,
            cancelled: r.cancelled() + unwritten,
            in_progress: (r.items_in() + r.expanded()).saturating_sub(ended),
        };
        let Some(up) = &self.upstream else {
            return back;
        };
        // Published, and neither back (the back part's input) nor ended remotely: still
        // on the broker or with a worker when the run stopped.
        let not_back = up
            .published
            .saturating_sub(back.items_in + up.ended_remotely);
        Totals {
            items_in: up.items_in,
            expanded: up.expanded + back.expanded,
            delivered: back.delivered,
            filtered: up.filtered + back.filtered,
            failed: up.failed + back.failed,
            cancelled: up.cancelled + not_back + back.cancelled,
            in_progress: back.in_progress,
        }
    }

    /// Where the run still held items, part by part (only parts that held some): what an
    /// abandoned run had queued or in hand. Empty for a run that ended.
    pub fn in_progress(&self) -> Vec<Held> {
        let r = &self.report;
        let parts = std::iter::once(r.source())
            .chain(r.stages())
            .chain(std::iter::once(r.sink()));
        let mut held = Vec::new();
        let mut sent_on = None::<u64>;
        for part in parts {
            let t = &part.tally;
            let queued = sent_on.map_or(0, |sent| sent.saturating_sub(t.items_in));
            let in_hands = (t.items_in + t.expanded)
                .saturating_sub(t.items_out + t.filtered + t.failed + t.cancelled);
            sent_on = Some(t.items_out);
            if queued + in_hands > 0 {
                held.push(Held {
                    stage: part.name.clone(),
                    queued,
                    in_hands,
                });
            }
        }
        held
    }

    /// The part holding the run back, and why: the engine's judgement, except for a run
    /// the command gave up on, where the stage that would not let go of its batch is named
    /// (the engine counts busy time only for finished batches, so a stage inside its first
    /// one looks idle).
    pub fn bottleneck(&self) -> Option<(String, String)> {
        let stuck = self
            .in_progress()
            .into_iter()
            .filter(|h| h.stage != "source" && h.in_hands > 0)
            .max_by_key(|h| h.in_hands);
        match stuck {
            Some(h) if self.abandoned => {
                let reason = format!(
                    "{}: {} item{} still in its workers' hands {} s after the abort: a batch it had not finished (busy time counts finished batches only, so its busy share shows less than it worked)",
                    h.stage,
                    h.in_hands,
                    if h.in_hands == 1 { "" } else { "s" },
                    crate::supervise::ABORT_GRACE.as_secs()
                );
                Some((h.stage, reason))
            }
            _ => self
                .report
                .bottleneck()
                .map(|b| (b.stage.clone(), b.reason.to_string())),
        }
    }
}
