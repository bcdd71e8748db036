//! The origin of a scaled-out run (`millrace run FILE` when stages are remote): the front
//! part (source and the stages before the remote run) publishes to the broker; the back
//! part (the stages after it and the sink) takes what comes back, each item once, and runs
//! under the usual supervision (live view, progress, Ctrl-C). Its summary is the back
//! part's; [`RemoteAccount`] adds the front part's and the remote stages' accounting.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use millrace::{Pipeline, Report};
use millrace_nats::RemoteReport;

use crate::build::{add_stages, close, configure, make_stages, open_source};
use crate::commands::{fail, Supervised, EXIT_CONFIG, EXIT_FAILED, EXIT_ITEMS_FAILED};
use crate::config::connector::ScaleOut;
use crate::config::PipelineSpec;
use crate::dead_letter::DeadLetters;
use crate::kinds::SourceLog;
use crate::live::LiveView;
use crate::signals::Interrupts;
use crate::summary::{Outcome, Summary, Upstream, UpstreamError};
use crate::supervise::{supervise, Interruption, Watch};

/// How long a run stopped early (Ctrl-C, a failed sink) waits for its front part and
/// network tasks: a front part whose publishes wait for room on a full edge (no worker
/// takes from it) would never end.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Waits for the front part and the network tasks: at most [`STOP_GRACE`] when the run
/// stopped early (`None`: they did not end in time and are left to the process's end).
fn finish(
    end: millrace_nats::RemoteEnd,
    stopped_early: bool,
) -> Option<Result<millrace_nats::RemoteFinished, millrace_nats::NatsError>> {
    if !stopped_early {
        return Some(end.finish());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("millrace-origin-end".into())
        .spawn(move || {
            let _ = tx.send(end.finish());
        })
        .ok()?;
    rx.recv_timeout(STOP_GRACE).ok()
}

/// What the parts of a scaled-out run other than the back one did.
#[derive(Debug)]
pub struct RemoteAccount {
    /// The remote stages' names.
    pub stages: Vec<String>,
    /// The front part's report (source and stages before the remote run).
    pub front: Option<Report>,
    /// The remote stages, as their outcomes came back.
    pub remote: Option<RemoteReport>,
    /// Why the front part or the broker failed, if either did.
    pub error: Option<String>,
}

impl RemoteAccount {
    /// What the front part and the remote stages did, for the run's totals (`None` if the
    /// front part's report is missing: it did not end in time).
    pub fn upstream(&self) -> Option<Upstream> {
        let front = self.front.as_ref()?;
        let (filtered, failed) = self
            .remote
            .as_ref()
            .map_or((0, 0), |r| (r.filtered_total(), r.failed_total()));
        // A remote stage's error names no stage apart: the remote run's, or its one stage.
        let remote_stage = match self.stages.as_slice() {
            [one] => one.clone(),
            _ => "remote".to_owned(),
        };
        let front_errors = front.errors().iter().map(|e| UpstreamError {
            stage: e.stage().to_owned(),
            id: e.id(),
            attempts: e.attempts(),
            message: e.to_string(),
        });
        let remote_errors =
            (self.remote.iter().flat_map(|r| &r.errors)).map(|(id, message)| UpstreamError {
                stage: remote_stage.clone(),
                id: *id,
                attempts: 1,
                message: message.clone(),
            });
        let by_kind = (front.errors_by_kind().iter())
            .map(|(stage, kind, n)| (stage.clone(), (*kind).to_owned(), *n))
            .chain(
                (self.remote.iter().flat_map(|r| &r.failed))
                    .map(|(stage, n)| (stage.clone(), "remote".to_owned(), *n)),
            );
        Some(Upstream {
            items_in: front.items_in(),
            expanded: front.expanded(),
            filtered: front.filtered() + filtered,
            failed: front.failed() + failed,
            cancelled: front.cancelled(),
            published: front.delivered(),
            ended_remotely: filtered + failed,
            errors_total: front.errors_total() + failed,
            errors: front_errors.chain(remote_errors).collect(),
            errors_by_kind: by_kind.collect(),
        })
    }

    /// The account as text, for the report on stderr.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let names = self
            .stages
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "scale-out: stage(s) {names} ran on `millrace worker` processes"
        );
        if let Some(remote) = &self.remote {
            for line in remote.to_string().lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        if let Some(front) = &self.front {
            let _ = writeln!(out, "  front part (before the broker):");
            for line in front.to_string().lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "  error: {e}");
        }
        out
    }

    /// The account as the JSON report's `remote` object (REPORT_SCHEMA.md).
    pub fn to_json(&self) -> serde_json::Value {
        let remote = self.remote.as_ref();
        serde_json::json!({
            "stages": self.stages,
            "published": remote.map(|r| r.published),
            "delivered": remote.map(|r| r.delivered),
            "filtered": remote.map(|r| &r.filtered),
            "failed": remote.map(|r| &r.failed),
            "errors": remote.map(|r| r
                .errors
                .iter()
                .map(|(id, e)| serde_json::json!({ "item": id.to_string(), "error": e }))
                .collect::<Vec<_>>()),
            "duplicates_dropped": remote.map(|r| r.duplicates_dropped),
            "stale_dropped": remote.map(|r| r.stale_dropped),
            "not_back": remote.map(|r| r.not_back),
            "balanced": remote.map(RemoteReport::is_balanced),
            "error": self.error,
        })
    }

    /// Prints the account on stderr (only an error under `quiet`) and returns the whole
    /// run's exit code, from the back part's `code`.
    pub fn finish(&self, code: u8, quiet: bool, allow_failures: bool) -> u8 {
        if !quiet {
            crate::commands::print_err(&self.render());
        } else if let Some(e) = &self.error {
            crate::commands::print_err(&format!("millrace: scale-out: {e}\n"));
        }
        self.exit_code(code, allow_failures)
    }

    /// The exit code of the whole run, from the back part's `code`: a failure of the front
    /// part or the broker fails it; items failed remotely are failed items.
    pub fn exit_code(&self, code: u8, allow_failures: bool) -> u8 {
        if self.error.is_some() || self.remote.as_ref().is_some_and(|r| !r.is_balanced()) {
            return code.max(EXIT_FAILED);
        }
        let failed = self.remote.as_ref().map_or(0, RemoteReport::failed_total);
        if code == 0 && failed > 0 && !allow_failures {
            return EXIT_ITEMS_FAILED;
        }
        code
    }
}

/// Runs the origin of `spec`, whose stages `scale` are remote, under the live view `live`
/// (or a progress line every `progress_every`) and Ctrl-C; `kinds` names the back part's
/// report rows (the remote source, the stages after the remote run, the sink).
///
/// # Errors
///
/// The exit code and the message, once printed: the server cannot be reached, an input
/// cannot be opened, the engine refuses the settings.
pub fn run_origin(
    spec: &PipelineSpec,
    scale: &ScaleOut,
    live: Option<LiveView>,
    progress_every: Option<Duration>,
    metrics: Option<&millrace_prometheus::MetricsServer>,
) -> Result<(Supervised, RemoteAccount), (u8, String)> {
    let failed = |code: u8, message: String| (fail(code, &message), message);
    let broker = super::connect(&scale.url).map_err(|e| failed(EXIT_FAILED, e.to_string()))?;
    let (job, into, out) =
        super::edges(&broker, spec).map_err(|e| failed(EXIT_FAILED, e.to_string()))?;

    let source_log = Arc::new(SourceLog::default());
    let mut dead_letters = DeadLetters::default();
    let front_stages = &spec.stages[..scale.first];
    let back_stages = &spec.stages[scale.end..];
    let front = open_source(spec, &source_log).map_err(|e| failed(EXIT_FAILED, e))?;
    let (front, front_runtime) =
        configure(front, spec, front_stages).map_err(|e| failed(EXIT_FAILED, e))?;
    let front = add_stages(
        front,
        make_stages(front_stages, &mut dead_letters).map_err(|e| failed(EXIT_FAILED, e))?,
    );
    let back_made =
        make_stages(back_stages, &mut dead_letters).map_err(|e| failed(EXIT_FAILED, e))?;

    let origin = job
        .origin(&into, &out)
        .map_err(|e| failed(EXIT_FAILED, e.to_string()))?;
    let (remote, end) = origin.start(front).map_err(|e| {
        // Another run on the job is not a setting to fix but a wait (or another name).
        let code = if matches!(e, millrace_nats::NatsError::JobBusy { .. }) {
            EXIT_FAILED
        } else {
            EXIT_CONFIG
        };
        failed(code, format!("error: {e}"))
    })?;
    let back = Pipeline::source(remote.outputs());
    let built = configure(back, spec, back_stages).and_then(|(back, runtime)| {
        let back = add_stages(back, back_made);
        close(back, spec, &mut dead_letters).map(|(p, stop)| (p, stop, runtime))
    });
    let (pipeline, stop, back_runtime) = match built {
        Ok(b) => b,
        Err(e) => {
            end.front().cancel();
            return Err(failed(EXIT_FAILED, e));
        }
    };
    let running = match pipeline.spawn() {
        Ok(r) => r,
        Err(e) => {
            end.front().cancel();
            return Err(failed(EXIT_CONFIG, format!("error: {e}")));
        }
    };
    let interrupts = Interrupts::install();
    // The back part's source waits on the broker for items that may never come back (no
    // worker takes them, or the edge is full): a stop stops the front part too, and gives
    // the rest STOP_GRACE to come back before the origin stops waiting for them; an
    // abort stops waiting at once.
    let (front, remote_stop) = (end.front(), end.stopper());
    let on_stop = move |how: Interruption| {
        if how == Interruption::Aborted {
            front.cancel();
            remote_stop.give_up();
            return;
        }
        front.stop();
        let remote_stop = remote_stop.clone();
        let _ = std::thread::Builder::new()
            .name("millrace-stop-grace".into())
            .spawn(move || {
                std::thread::sleep(STOP_GRACE);
                remote_stop.give_up();
            });
    };
    let watch = Watch {
        live,
        stop: Some(&stop),
        interrupts: &interrupts,
        deadline: None,
        progress: Some(source_log.progress()),
        front: Some(end.front()),
        progress_every,
        metrics,
        on_stop: Some(&on_stop),
    };
    let (ended, interruption) = supervise(running, watch);
    let kinds = std::iter::once(Some("nats".to_owned()))
        .chain(
            back_stages
                .iter()
                .map(|s| Some(s.part.kind.name.to_owned())),
        )
        .chain(std::iter::once(Some(spec.sink.part.kind.name.to_owned())))
        .collect();
    let summary = Summary::new(&spec.name, Some(&spec.file), kinds, ended, interruption);
    let stopped_early = !matches!(&summary, Ok((s, _)) if s.outcome == Outcome::Completed);
    if stopped_early {
        // The back part ended early: the front part need not go on.
        end.front().stop();
    }
    let mut account = RemoteAccount {
        stages: spec.stages[scale.first..scale.end]
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        front: None,
        remote: None,
        error: None,
    };
    match finish(end, stopped_early) {
        Some(Ok(finished)) => {
            account.front = Some(finished.front);
            account.remote = Some(finished.remote);
        }
        Some(Err(e)) if !stopped_early => account.error = Some(e.to_string()),
        Some(Err(_)) => {}
        None => {
            account.error = Some(format!(
                "the front part did not end within {STOP_GRACE:?} of the stop (its publishes \
                 wait for room on the broker): its report is left out"
            ));
        }
    }
    drop((front_runtime, back_runtime));
    let (mut summary, runner) = summary.map_err(|e| failed(EXIT_CONFIG, format!("error: {e}")))?;
    summary.terminated = interrupts.terminated();
    summary.upstream = account.upstream();
    Ok((
        Supervised {
            source_log,
            dead_letters,
            summary,
            runner,
        },
        account,
    ))
}
