//! Watching a running pipeline: Ctrl-C, stop requests from the sink, the live view.
//!
//! [`supervise`] joins the run on a thread of its own and waits for whichever comes first:
//! the run's end, an interrupt (a wake-up from [`Interrupts`]), or the next timer (the live
//! view's redraw, the deadline, the abort's grace, a look at the sink's stop request). A
//! quiet run with nothing to draw wakes the supervisor only when it ends.
//!
//! * the first interrupt asks for a graceful stop (`Handle::stop`): the source stops, items
//!   in flight drain, the sink finishes; the second cancels (`Handle::cancel`), and if the
//!   run has not ended a second after that (a worker deep in a long item), the supervisor
//!   gives up on it and returns a snapshot instead ([`Ended::Abandoned`]);
//! * a [`StopRequest`] raised by the sink becomes a graceful stop, or a cancel where it asks
//!   for one (stdout was closed); reaching the [`Watch::deadline`] cancels (`millrace
//!   tune` runs for a set time: what is in flight then tells it nothing more);
//! * every [`live::INTERVAL`] the live view, if any, is redrawn from `Handle::snapshot`;
//!   without one, every [`Watch::progress_every`] a progress line is printed on stderr
//!   ([`progress::status_line`]).
//! * the metrics server, if any (`--metrics-addr`), reads the same snapshots at each
//!   scrape, and the final report once the run has ended.

use std::time::{Duration, Instant};

use millrace::{Finished, Report, RunError, Running};
use millrace_prometheus::MetricsServer;

use crate::live::{self, LiveView};
use crate::progress::{self, Progress};
use crate::signals::Interrupts;
use crate::sink_runner::StopRequest;

/// How the user interrupted the run, if they did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interruption {
    /// Not interrupted.
    None,
    /// One Ctrl-C: stopped gracefully.
    Stopped,
    /// Two: cancelled.
    Aborted,
}

/// How a supervised run ended.
#[derive(Debug)]
pub enum Ended<R> {
    /// Its threads ended and were joined.
    Joined(Result<Finished<R>, RunError>),
    /// It was cancelled but did not end in time; a last snapshot.
    Abandoned(Report),
}

/// What is watched besides the run.
pub struct Watch<'a> {
    /// The live view, if one is drawn.
    pub live: Option<LiveView>,
    /// The sink's stop request, for config pipelines.
    pub stop: Option<&'a StopRequest>,
    /// The interrupt counter.
    pub interrupts: &'a Interrupts,
    /// Cancel the run at this time, if it is still going.
    pub deadline: Option<Instant>,
    /// The source's progress, where its size is known (for the live view and the lines).
    pub progress: Option<&'a Progress>,
    /// A scaled-out origin's part before the broker: its source reads the input, so the
    /// items read, and those it filtered, failed or cancelled, are its (the run watched is
    /// the part after the broker; [`progress::Counts::of_parts`]).
    pub front: Option<millrace::Handle>,
    /// Without a live view, print a progress line on stderr this often.
    pub progress_every: Option<Duration>,
    /// The `/metrics` endpoint, if one is served.
    pub metrics: Option<&'a MetricsServer>,
    /// Told each time the run is stopped (`Stopped`: an interrupt, the sink's request, the
    /// deadline) or aborted (`Aborted`): a scaled-out origin passes it on to the parts the
    /// run's handle does not reach.
    pub on_stop: Option<&'a (dyn Fn(Interruption) + Sync)>,
}

/// How often a sink's stop request is looked at (it raises a flag, not a wake-up).
const STOP_REQUEST_CHECK: Duration = Duration::from_millis(50);
/// The wait when no timer is due: only the run's end or an interrupt wakes the supervisor.
const NO_TIMER: Duration = Duration::from_secs(3600);
/// How long an aborted run's workers get to let go before the command stops waiting.
pub const ABORT_GRACE: Duration = Duration::from_secs(1);

/// Watches `running` to its end.
pub fn supervise<R: Send + 'static>(
    running: Running<R>,
    watch: Watch<'_>,
) -> (Ended<R>, Interruption) {
    let Watch {
        mut live,
        stop,
        interrupts,
        deadline,
        progress,
        front,
        progress_every,
        metrics,
        on_stop,
    } = watch;
    let tell = |how: Interruption| {
        if let Some(on_stop) = on_stop {
            on_stop(how);
        }
    };
    // Progress lines stand in for the live view, not beside it.
    let progress_every = progress_every.filter(|d| live.is_none() && !d.is_zero());
    let mut next_line = progress_every.map(|every| Instant::now() + every);
    let handle = running.handle();
    if let Some(server) = metrics {
        server.watch(handle.clone());
    }
    // Scrapes after the end read the final report.
    let ended = |e: Ended<R>| {
        if let Some(server) = metrics {
            let report = match &e {
                Ended::Joined(Ok(finished)) => Some(&finished.report),
                Ended::Joined(Err(error)) => error.report(),
                Ended::Abandoned(report) => Some(report),
            };
            if let Some(report) = report {
                server.finish(report);
            }
        }
        e
    };
    // The join runs on a thread of its own, so that its end wakes the loop below.
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let joiner = std::thread::Builder::new()
        .name("millrace-join".into())
        .spawn(move || {
            let _ = done_tx.send(running.join());
        });
    if let Err(e) = joiner {
        eprintln!("millrace: cannot watch the run ({e}); its report is a snapshot");
        return (
            ended(Ended::Abandoned(handle.snapshot())),
            Interruption::None,
        );
    }
    let mut interruption = Interruption::None;
    let (mut forwarded, mut cancelled) = (false, false);
    let mut abort_deadline = None;
    let mut next_draw = Instant::now();
    let say = |live: &Option<LiveView>, line: &str| match live {
        Some(view) => view.println(line),
        None => eprintln!("{line}"),
    };
    loop {
        let seen = interrupts.count();
        if seen >= 1 && interruption == Interruption::None {
            handle.stop();
            tell(Interruption::Stopped);
            interruption = Interruption::Stopped;
            let again = if interrupts.terminated() {
                "a second signal aborts"
            } else {
                "Ctrl-C again aborts"
            };
            say(
                &live,
                &format!(
                    "millrace: interrupted: stopping the source; items in flight drain ({again})"
                ),
            );
        }
        if seen >= 2 && interruption == Interruption::Stopped {
            handle.cancel();
            tell(Interruption::Aborted);
            interruption = Interruption::Aborted;
            abort_deadline = Some(Instant::now() + ABORT_GRACE);
            say(&live, "millrace: aborting: items in flight are dropped");
        }
        let requested = stop.is_some_and(StopRequest::is_raised);
        let cancels = stop.is_some_and(StopRequest::cancel_raised);
        let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
        if (cancels || timed_out) && !cancelled {
            handle.cancel();
            tell(Interruption::Aborted);
            (forwarded, cancelled) = (true, true);
        } else if requested && !forwarded {
            handle.stop();
            tell(Interruption::Stopped);
            forwarded = true;
        }
        if abort_deadline.is_some_and(|d| Instant::now() >= d) {
            if let Some(view) = live.take() {
                view.finish();
            }
            return (ended(Ended::Abandoned(handle.snapshot())), interruption);
        }
        if let Some(view) = live.as_mut() {
            if Instant::now() >= next_draw {
                let snap = handle.snapshot();
                let front = front.as_ref().map(millrace::Handle::snapshot);
                view.update(
                    &snap,
                    progress::Counts::of_parts(front.as_ref(), &snap),
                    progress,
                );
                next_draw = Instant::now() + live::INTERVAL;
            }
        }
        if let (Some(due), Some(every)) = (next_line, progress_every) {
            if Instant::now() >= due {
                let snap = handle.snapshot();
                let front = front.as_ref().map(millrace::Handle::snapshot);
                let counts = progress::Counts::of_parts(front.as_ref(), &snap);
                crate::commands::print_err(&format!(
                    "{}\n",
                    progress::status_line(&snap, counts, progress)
                ));
                next_line = Some(due.max(Instant::now() - every) + every);
            }
        }
        // Sleep until the run ends, an interrupt arrives, or the next timer is due.
        let now = Instant::now();
        let timers = [
            next_line,
            live.as_ref().map(|_| next_draw),
            deadline.filter(|_| !forwarded),
            abort_deadline,
            stop.filter(|_| !forwarded)
                .map(|_| now + STOP_REQUEST_CHECK),
        ];
        let wait = timers
            .into_iter()
            .flatten()
            .min()
            .map_or(NO_TIMER, |due| due.saturating_duration_since(now));
        crossbeam_channel::select! {
            recv(done_rx) -> joined => {
                if let Some(view) = live.take() {
                    view.finish();
                }
                return match joined {
                    Ok(result) => (ended(Ended::Joined(result)), interruption),
                    // The joining thread is gone without an answer (it panicked).
                    Err(_) => (ended(Ended::Abandoned(handle.snapshot())), interruption),
                };
            }
            recv(interrupts.wakeup()) -> _ => {}
            default(wait) => {}
        }
    }
}
