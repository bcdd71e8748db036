//! A started pipeline: [`Running`] to wait for it, [`Handle`] to steer it from anywhere, and
//! [`Finished`] once it is done. ([`Outputs`](crate::Outputs), when the calling thread is
//! the sink, is with the other sinks.)

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::control::Control;
use crate::error::RunErrorKind;
use crate::report::EndState;
use crate::report::Report;
use crate::response::ResponseDrain;
use crate::run_error::RunError;
use crate::signals::Ending;
use crate::sync::lock;

use super::launch::Controller;
use super::source::SOURCE_THREAD;

/// What a completed run hands back: the sink's value and the report.
#[derive(Debug)]
#[non_exhaustive]
pub struct Finished<R> {
    /// What the sink returned (`()` for `for_each`).
    pub output: R,
    /// Counts, timings and the bottleneck of the run.
    pub report: Report,
}

/// A cloneable remote control of a running pipeline: stop it, cancel it, or look at it.
#[derive(Clone)]
pub struct Handle {
    control: Arc<Control>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    pub(super) fn new(control: Arc<Control>) -> Self {
        Handle { control }
    }

    pub(super) fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// Asks for a graceful stop: the source takes no more input, everything already
    /// accepted finishes, then the run ends [`Stopped`](EndState::Stopped). Returns at once.
    /// Everything accepted includes what waits in the connectors: with slow items (an async
    /// stage of 200 ms waits, 100 at a time, behind a connector of 16,384 items) that can
    /// take minutes; a smaller [`capacity`](crate::Stage::capacity) bounds it, and
    /// [`cancel`](Handle::cancel) drops them instead.
    ///
    /// A stop asked for once the input ran out by itself (every item was admitted), or
    /// once the run finished, has nothing to stop: the run ends
    /// [`Completed`](EndState::Completed). A source iterator waiting in `next` is waited
    /// for (see [`Pipeline::source`](crate::Pipeline::source)); a
    /// [`Submitter`](crate::Submitter)'s source is not.
    pub fn stop(&self) {
        self.control.signals.stop();
    }

    /// Cancels the run: items in flight are dropped, not finished, and the report lists
    /// them by id as unfinished. Returns at once. A cancel asked for once the sink has
    /// taken the last item changes nothing: the run ends as it would have. A source
    /// iterator waiting in `next` is not waited for (see
    /// [`Pipeline::source`](crate::Pipeline::source)).
    pub fn cancel(&self) {
        self.control.signals.cancel();
    }

    /// Whether a stop (or cancel) was asked for.
    pub fn is_stopping(&self) -> bool {
        self.control.signals.stopping()
    }

    /// A report of the run so far: its end state is [`EndState::Running`] until the sink
    /// has ended, then how the run ended (as [`Running::join`] will say; it used to say
    /// `Running` for good).
    pub fn snapshot(&self) -> Report {
        let end = if self.control.signals.has_ended() {
            end_state(&self.control)
        } else {
            EndState::Running
        };
        Report::build(&self.control.ledger, self.control.signals.now(), end)
    }
}

/// A started pipeline. Dropping it detaches the run (it goes on to the end).
#[must_use = "a running pipeline should be joined to learn how it ended"]
pub struct Running<R> {
    handle: Handle,
    threads: Vec<JoinHandle<()>>,
    sink: JoinHandle<Option<R>>,
    controller: Option<Controller>,
    /// A serving pipeline's responses, for `join` to keep moving.
    drain: Option<ResponseDrain>,
}

impl<R> fmt::Debug for Running<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("threads", &(self.threads.len() + 1))
            .finish_non_exhaustive()
    }
}

/// Why the run ended, from its control state.
fn end_state(control: &Control) -> EndState {
    if control.ledger.has_failed() {
        return EndState::Failed;
    }
    match control.signals.ending() {
        Ending::Cancelled => EndState::Cancelled,
        Ending::Stopped => EndState::Stopped,
        Ending::Completed => EndState::Completed,
    }
}

/// Waits for `threads`, then turns the run's state into its result.
pub(super) fn finish<R: Send + 'static>(
    control: &Control,
    threads: Vec<JoinHandle<()>>,
    controller: Option<Controller>,
    output: Option<R>,
) -> Result<Finished<R>, RunError> {
    // Our threads catch every panic of user code; a panic here is a bug in millrace.
    let join = |t: JoinHandle<()>| {
        if let Err(payload) = t.join() {
            std::panic::resume_unwind(payload);
        }
    };
    for thread in threads {
        // A source thread whose outlet a cancel took while it waited in its iterator's
        // `next` may wait there for good: it is left to end on its own (see
        // `source::LetGo`); what it reads afterwards is dropped.
        let waits_in_its_iterator = control.signals.source_let_go()
            && thread.thread().name() == Some(SOURCE_THREAD)
            && !thread.is_finished();
        if !waits_in_its_iterator {
            join(thread);
        }
    }
    if let Some(Controller { done, thread }) = controller {
        drop(done);
        join(thread);
    }
    // Workers the autoscaler started; none can start now the controller has stopped.
    let extra = std::mem::take(&mut *lock(&control.ledger.extra_threads));
    extra.into_iter().for_each(join);
    let report = Report::build(&control.ledger, control.signals.now(), end_state(control));
    crate::trace::run_ended(&control.trace, &report);
    let first = lock(&control.ledger.first_error).take();
    match (first, output) {
        (None, Some(output)) => Ok(Finished { output, report }),
        (Some(kind), output) => Err(RunError::new(kind, Some(report)).with_output(output)),
        (None, None) => Err(RunError::new(
            RunErrorKind::SinkPanicked("the sink ended without a value".into()),
            Some(report),
        )),
    }
}

/// How long threads get to end after a wedge failed the run, before they are detached.
const WEDGE_GRACE: Duration = Duration::from_millis(500);

/// Ends a run that failed on a wedge: threads that end within [`WEDGE_GRACE`] are joined,
/// the others (stuck in user code for good, or waiting on one that is) are detached and
/// named in the error. The sink's value is lost.
fn join_detaching<R>(
    control: &Control,
    sink: JoinHandle<Option<R>>,
    threads: Vec<JoinHandle<()>>,
    controller: Option<Controller>,
) -> RunError {
    if let Some(Controller { done, thread }) = controller {
        drop(done);
        let _ = thread.join();
    }
    let deadline = Instant::now() + WEDGE_GRACE;
    let mut detached = Vec::new();
    let mut settle = |finished: bool, name: Option<&str>| {
        if !finished {
            detached.push(name.unwrap_or("a millrace thread").to_owned());
        }
    };
    // Waiting on a thread that may never end: no timed join exists, so look every
    // millisecond until the grace period is over (this path runs once, on failure).
    let wait = |is_finished: &dyn Fn() -> bool| {
        while !is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        is_finished()
    };
    let extra = std::mem::take(&mut *lock(&control.ledger.extra_threads));
    for t in threads.into_iter().chain(extra) {
        let finished = wait(&|| t.is_finished());
        settle(finished, t.thread().name());
        if finished {
            let _ = t.join();
        }
    }
    let finished = wait(&|| sink.is_finished());
    settle(finished, sink.thread().name());
    if finished {
        let _ = sink.join();
    }
    let report = Report::build(&control.ledger, control.signals.now(), EndState::Failed);
    crate::trace::run_ended(&control.trace, &report);
    let kind = match lock(&control.ledger.first_error).take() {
        Some(RunErrorKind::Wedged(mut wedge)) => {
            wedge.detached = detached;
            RunErrorKind::Wedged(wedge)
        }
        Some(kind) => kind,
        None => RunErrorKind::Wedged(crate::autoscale::Wedge::default()),
    };
    RunError::new(kind, Some(report))
}

impl<R> Running<R> {
    pub(crate) fn new(
        control: Arc<Control>,
        threads: Vec<JoinHandle<()>>,
        sink: JoinHandle<Option<R>>,
        controller: Option<Controller>,
    ) -> Self {
        Running {
            handle: Handle { control },
            threads,
            sink,
            controller,
            drain: None,
        }
    }

    /// A serving pipeline: `join` takes the responses nobody read (see [`Responses`]).
    ///
    /// [`Responses`]: crate::Responses
    pub(crate) fn draining(mut self, drain: ResponseDrain) -> Self {
        self.drain = Some(drain);
        self
    }

    /// A cloneable handle to stop, cancel or look at the run from other threads.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Asks for a graceful stop (see [`Handle::stop`]).
    pub fn stop(&self) {
        self.handle.stop();
    }

    /// Cancels the run (see [`Handle::cancel`]).
    pub fn cancel(&self) {
        self.handle.cancel();
    }

    /// Whether every thread of the run has ended.
    pub fn is_finished(&self) -> bool {
        self.sink.is_finished() && self.threads.iter().all(JoinHandle::is_finished)
    }

    /// Waits for the run to end and returns the sink's value with the report.
    ///
    /// For a serving pipeline ([`respond`](crate::PipelineBuilder::respond)), the responses
    /// not read yet are kept for the [`Responses`](crate::Responses) iterator, so joining
    /// before reading them does not hang.
    ///
    /// # Errors
    ///
    /// A [`RunError`], with the report, if an item failed under the stop policy or the
    /// source or sink panicked.
    pub fn join(self) -> Result<Finished<R>, RunError>
    where
        R: Send + 'static,
    {
        let control = Arc::clone(&self.handle.control);
        if let Some(drain) = self.drain {
            // Responses nobody has read yet hold back the source's credits: take them (for
            // the `Responses` iterator), so that joining first cannot hang.
            drain.drain(&control);
        }
        control.signals.wait_end();
        if control.ledger.wedge_failed() {
            return Err(join_detaching(
                &control,
                self.sink,
                self.threads,
                self.controller,
            ));
        }
        let output = match self.sink.join() {
            Ok(output) => output,
            Err(payload) => std::panic::resume_unwind(payload),
        };
        finish(&self.handle.control, self.threads, self.controller, output)
    }
}
