//! Watching a running pipeline: Ctrl-C, stop requests from the sink, the live view.
//!
//! [`supervise`] polls the run every 20 ms until all its threads are done:
//!
//! * the first interrupt asks for a graceful stop (`Handle::stop`): the source stops, items
//!   in flight drain, the sink finishes; the second cancels (`Handle::cancel`), and if the
//!   run has not ended a second after that (a worker deep in a long item), the supervisor
//!   gives up on it and returns a snapshot instead ([`Ended::Abandoned`]);
//! * a [`StopRequest`] raised by the sink becomes a graceful stop, and so does reaching
//!   the [`Watch::deadline`] (`millrace tune` runs for a set time);
//! * every [`live::INTERVAL`] the live view, if any, is redrawn from `Handle::snapshot`.

use std::time::{Duration, Instant};

use millrace::{Finished, Report, RunError, Running};

use crate::live::{self, LiveView};
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
    /// Stop the run gracefully at this time, if it is still going.
    pub deadline: Option<Instant>,
}

const POLL: Duration = Duration::from_millis(20);
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
    } = watch;
    let handle = running.handle();
    let mut interruption = Interruption::None;
    let mut forwarded = false;
    let mut abort_deadline = None;
    let mut next_draw = Instant::now();
    let say = |live: &Option<LiveView>, line: &str| match live {
        Some(view) => view.println(line),
        None => eprintln!("{line}"),
    };
    while !running.is_finished() {
        let seen = interrupts.count();
        if seen >= 1 && interruption == Interruption::None {
            handle.stop();
            interruption = Interruption::Stopped;
            say(&live, "millrace: interrupted: stopping the source; items in flight drain (Ctrl-C again aborts)");
        }
        if seen >= 2 && interruption == Interruption::Stopped {
            handle.cancel();
            interruption = Interruption::Aborted;
            abort_deadline = Some(Instant::now() + ABORT_GRACE);
            say(&live, "millrace: aborting: items in flight are dropped");
        }
        let requested = stop.is_some_and(StopRequest::is_raised);
        let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
        if (requested || timed_out) && !forwarded {
            handle.stop();
            forwarded = true;
        }
        if abort_deadline.is_some_and(|d| Instant::now() >= d) {
            if let Some(view) = live.take() {
                view.finish();
            }
            return (Ended::Abandoned(handle.snapshot()), interruption);
        }
        if let Some(view) = live.as_mut() {
            if Instant::now() >= next_draw {
                view.update(&handle.snapshot());
                next_draw = Instant::now() + live::INTERVAL;
            }
        }
        std::thread::sleep(POLL);
    }
    if let Some(view) = live.take() {
        view.finish();
    }
    (Ended::Joined(running.join()), interruption)
}
