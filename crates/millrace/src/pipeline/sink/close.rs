//! Closing a [`PipelineBuilder`]: the sinks. [`for_each`](PipelineBuilder::for_each),
//! [`try_for_each`](PipelineBuilder::try_for_each), [`fold`](PipelineBuilder::fold) and
//! [`collect`](PipelineBuilder::collect) give a [`Pipeline`] to run or spawn;
//! [`outputs`](PipelineBuilder::outputs) and [`respond`](PipelineBuilder::respond) start the
//! pipeline at once and hand back its outputs. Each resolves the plan and starts the threads
//! through [`Launch`].

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::control::SinkEnded;
use crate::error::{BoxError, BuildError};
use crate::item::ItemId;
use crate::response::{Outcome, ReplyFold, Responses, TakeReplies};

use super::super::launch::{Launch, Open};
use super::super::running::Running;
use super::super::{Launched, Pipeline, PipelineBuilder};
use super::direct::{run_sink, DirectSink, SharedSink};
use super::outputs::Outputs;
use super::{consume_each, consume_each_fallible, run_serve_sink, SinkCtx, SinkFn, SinkState};

/// A launch whose stages are built, up to the open end that feeds the sink.
type Opened<T, O> = (
    Launch,
    Open<T>,
    Option<(Responses<O>, crate::response::ResponseDrain)>,
);

/// Starts the sink thread running `sink`; its end, however it ends, is what
/// [`Running::join`] waits for first. `None` if the OS refused (the launch has the error).
fn spawn_sink<R: Send + 'static>(
    launch: &mut Launch,
    sink: impl FnOnce() -> Option<R> + Send + 'static,
) -> Option<JoinHandle<Option<R>>> {
    if launch.failed.is_some() {
        return None;
    }
    let ended = SinkEnded(Arc::clone(&launch.control));
    let body = launch.control.trace.in_thread("millrace-sink", move || {
        let _ended = ended;
        sink()
    });
    let spawned = std::thread::Builder::new()
        .name("millrace-sink".into())
        .spawn(body);
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            launch.refused(BuildError::thread("millrace-sink", &e));
            None
        }
    }
}

/// Starts the controller and the sink thread running `sink`, and hands the run over. If a
/// thread could not start, the launch winds down (dropping `extra` with the controller:
/// what the caller would have handed out alongside) and the error comes back.
fn start_run<R: Send + 'static, D>(
    mut launch: Launch,
    sink: impl FnOnce(SinkCtx) -> Option<R> + Send + 'static,
    extra: D,
) -> Result<(Running<R>, D), BuildError> {
    let ctx = launch.sink_ctx();
    let controller = launch.start_controller();
    let sink = spawn_sink(&mut launch, move || sink(ctx));
    let Some(sink) = sink.filter(|_| launch.failed.is_none()) else {
        return Err(launch.abort((controller, extra)));
    };
    let running = Running::new(launch.control, launch.threads, sink, controller);
    Ok((running, extra))
}

impl<T: Send + 'static> PipelineBuilder<T> {
    fn launch<O: Send + 'static>(self, serve: bool) -> Result<Launched<T, O>, BuildError> {
        self.launch_replying(serve, None)
    }

    /// Resolves the plan and builds the stages, up to the open end that feeds the sink.
    fn open_up<O: Send + 'static>(
        self,
        serve: bool,
        replies: Option<(usize, Box<dyn TakeReplies>)>,
    ) -> Result<Opened<T, O>, BuildError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let (mut launch, responses) =
            Launch::new(self.settings, &self.plan, self.hooks, serve, replies);
        let open = (self.chain)(&mut launch);
        Ok((launch, open, responses))
    }

    fn launch_replying<O: Send + 'static>(
        self,
        serve: bool,
        replies: Option<(usize, Box<dyn TakeReplies>)>,
    ) -> Result<Launched<T, O>, BuildError> {
        let (mut launch, open, responses) = self.open_up(serve, replies)?;
        let sink = launch.sink_index();
        let inlet = launch.connect(open, sink, None);
        if launch.failed.is_some() {
            return Err(launch.abort((inlet, responses)));
        }
        Ok((launch, inlet, responses))
    }

    fn with_sink<R: Send + 'static>(self, sink: SinkFn<T, R>) -> Pipeline<R> {
        Pipeline {
            start: Box::new(move || {
                let (mut launch, open, _) = self.open_up::<()>(false, None)?;
                // The worker in front of the sink may consume its batches itself (`direct`).
                let shared = Arc::new(SharedSink::new(
                    SinkState::new(sink),
                    launch.sink_ctx(),
                    launch.sink_batch_size(),
                ));
                let direct: Arc<dyn DirectSink<T>> = shared.clone();
                let index = launch.sink_index();
                let inlet = launch.connect(open, index, Some(direct));
                if launch.failed.is_some() {
                    return Err(launch.abort(inlet));
                }
                let (running, ()) =
                    start_run(launch, move |ctx| run_sink(inlet, &shared, &ctx), ())?;
                Ok(running)
            }),
        }
    }

    /// Closes the pipeline with a closure called on each output, one call at a time: on the
    /// sink's thread, or, while the closure is cheap (until it averages 5 µs a batch and
    /// 50 ns an item, timed by the clock, so a busy machine may end it sooner) and the
    /// last stage runs on fixed workers of its own, on their threads, whichever finds the
    /// sink free (no hand-off between them; a worker that finds another in the sink sends
    /// its batch to the sink's thread instead; behind an [`ordered`](crate::Stage::ordered)
    /// last stage, its workers take turns in the order of the outputs;
    /// [`adaptive_fusion(false)`](PipelineBuilder::adaptive_fusion) keeps it
    /// on the sink's thread, for a closure that waits for something the last stage has yet
    /// to do). A panic in it fails that item only.
    pub fn for_each<F>(self, f: F) -> Pipeline<()>
    where
        F: FnMut(T) + Send + 'static,
    {
        let mut f = f;
        self.with_sink(SinkFn::Each(
            Box::new(move |ctx, batch| consume_each(ctx, batch, &mut f)),
            Box::new(|| ()),
        ))
    }

    /// Closes the pipeline with a fallible closure called on each output: writing to a file
    /// or a socket, say. An item whose closure returns an error
    /// (or panics) fails under the pipeline's error policy
    /// ([`on_error`](PipelineBuilder::on_error)): skipped and reported, tried again (the
    /// closure borrows the item, so it is still there), or stopping the run gracefully with
    /// that error. Failed items are reported with the stage name `sink`. The closure runs
    /// one call at a time (on the sink's thread, or on the last stage's fixed workers' while
    /// it is cheap, as for [`for_each`](PipelineBuilder::for_each)), so a retry's backoff holds up
    /// every delivery behind it: keep retries short here, or retry inside the closure's own
    /// client.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::{ErrorPolicy, Pipeline, Retry};
    ///
    /// let mut written = Vec::new();
    /// let finished = Pipeline::source(0..100u32)
    ///     .on_error(ErrorPolicy::Retry(Retry::new(2)))
    ///     .try_for_each(move |&x| {
    ///         if x % 10 == 3 {
    ///             return Err(format!("cannot write {x}"));
    ///         }
    ///         written.push(x);
    ///         Ok(())
    ///     })
    ///     .run()?;
    /// let report = finished.report;
    /// assert_eq!((report.delivered(), report.failed()), (90, 10));
    /// assert_eq!(report.errors()[0].stage(), "sink");
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    pub fn try_for_each<E, F>(self, f: F) -> Pipeline<()>
    where
        E: Into<BoxError> + 'static,
        F: FnMut(&T) -> Result<(), E> + Send + 'static,
    {
        let mut f = f;
        let policy = self.settings.policy;
        self.with_sink(SinkFn::Each(
            Box::new(move |ctx, batch| consume_each_fallible(ctx, batch, policy, &mut f)),
            Box::new(|| ()),
        ))
    }

    /// Closes the pipeline with a fold over its outputs, like [`Iterator::fold`]; the run
    /// returns the final value. `f` runs one call at a time, where
    /// [`for_each`](PipelineBuilder::for_each)'s closure would. A panic in `f` fails the run
    /// (the accumulator is lost).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::Pipeline;
    ///
    /// let sum = Pipeline::source(1..=100u64)
    ///     .map("double", |x| 2 * x)
    ///     .fold(0, |acc, x| acc + x)
    ///     .run()?
    ///     .output;
    /// assert_eq!(sum, 10_100);
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    pub fn fold<A, F>(self, init: A, f: F) -> Pipeline<A>
    where
        A: Send + 'static,
        F: FnMut(A, T) -> A + Send + 'static,
    {
        let mut f = f;
        self.with_sink(SinkFn::Fold(
            Box::new(move |acc, items: &mut std::vec::Drain<'_, T>| items.fold(acc, &mut f)),
            init,
        ))
    }

    /// Closes the pipeline by collecting its outputs into a `Vec`, in arrival order (input
    /// order when the last stage is [ordered](crate::Stage::ordered)).
    pub fn collect(self) -> Pipeline<Vec<T>> {
        self.fold(Vec::new(), |mut v, x| {
            v.push(x);
            v
        })
    }

    /// Starts the pipeline and hands its outputs to the calling thread as an iterator.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if the pipeline's settings cannot work.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::{Pipeline, Stage};
    ///
    /// let mut outputs = Pipeline::source(0..1000u32)
    ///     .stage(Stage::map("inc", |x: u32| x + 1).workers(2).ordered())
    ///     .outputs()?;
    /// assert_eq!(outputs.next(), Some(1));
    /// let report = outputs.finish()?; // the rest is cancelled
    /// assert_eq!(report.delivered(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn outputs(self) -> Result<Outputs<T>, BuildError> {
        let (mut launch, inlet, _) = self.launch::<()>(false)?;
        let ctx = launch.sink_ctx();
        let controller = launch.start_controller();
        if launch.failed.is_some() {
            return Err(launch.abort((inlet, ctx, controller)));
        }
        Ok(Outputs::new(
            launch.control,
            launch.threads,
            inlet,
            ctx,
            controller,
        ))
    }

    /// Closes the pipeline by sending every output back, as a value, to the stage named
    /// `stage`: the blog's response channel, where a later stage returns its result to the
    /// stage that sent the item. That stage folds the responses, one per item, into `init`
    /// with `f`, on its own response thread; the run returns the final value.
    ///
    /// Each item that stage sent on is answered exactly once, with its id: its output
    /// ([`Outcome::Output`]), or why there is none (filtered, failed with its error,
    /// cancelled). Items that ended before reaching `stage` are not its to hear. The reply
    /// type is the pipeline's output type, so a fold over the wrong type does not compile.
    /// Replies travel on the unbounded response path and never wait, so replies cannot
    /// deadlock with the items going forward whatever the capacities; the source admits at
    /// most [`max_in_flight`](PipelineBuilder::max_in_flight) items whose reply has not
    /// come back. A stage may have a [status hook](crate::Stage::on_response) as well; it
    /// runs first. A flat-map between `stage` and the end answers each child on its own,
    /// with the child's id (`#25.3`, whose [`parent`](ItemId::parent) is `#25`).
    ///
    /// A panic in `f` loses the accumulator: the run fails, like a panicking
    /// [`fold`](PipelineBuilder::fold).
    ///
    /// # Examples
    ///
    /// The blog's sample: stage 1 sends x on, stage 3 answers it with 3·x², and stage 1
    /// sums what comes back.
    ///
    /// ```
    /// use millrace::{Outcome, Pipeline, Stage};
    ///
    /// let finished = Pipeline::source(0..1_000u64)
    ///     .stage(Stage::map("wrap", |x: u64| x))
    ///     .stage(Stage::map("square", |x: u64| x * x).workers(2))
    ///     .stage(Stage::map("scale", |y: u64| 3 * y))
    ///     .reply_to("wrap", 0u64, |sum, _id, reply| match reply {
    ///         Outcome::Output(y) => sum + y,
    ///         _ => sum,
    ///     })
    ///     .run()?;
    /// assert_eq!(finished.output, (0..1_000u64).map(|x| 3 * x * x).sum::<u64>());
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    ///
    /// A reply of the wrong type is a compile error:
    ///
    /// ```compile_fail
    /// use millrace::{Outcome, Pipeline};
    ///
    /// let _ = Pipeline::source(0..10u64)
    ///     .map("text", |x| x.to_string())
    ///     .reply_to("text", 0u64, |sum, _id, reply: Outcome<u64>| sum);
    /// ```
    ///
    /// # Errors
    ///
    /// Running it fails with a [`BuildError`] when no stage is named `stage`.
    pub fn reply_to<A, F>(self, stage: &str, init: A, f: F) -> Pipeline<A>
    where
        A: Send + 'static,
        F: FnMut(A, ItemId, Outcome<T>) -> A + Send + 'static,
    {
        let stage = stage.to_owned();
        Pipeline {
            start: Box::new(move || {
                let Some(index) = self.plan.iter().position(|p| *p.name == *stage) else {
                    return Err(self
                        .error
                        .unwrap_or_else(|| BuildError::unknown_stage(&stage)));
                };
                let (done, value) = crossbeam_channel::bounded(1);
                let replies: Box<dyn TakeReplies> =
                    Box::new(ReplyFold::<T, A, F>::new(init, f, done));
                let (launch, inlet, _) =
                    self.launch_replying::<()>(false, Some((index, replies)))?;
                let sink = move |ctx| {
                    run_serve_sink(inlet, ctx);
                    // The stage's relay hands its fold over once every response is in;
                    // the sink's end of the response path is closed by now.
                    value.recv().ok()
                };
                let (running, ()) = start_run(launch, sink, ())?;
                Ok(running)
            }),
        }
    }

    /// Starts the pipeline as a service: each item's [`Outcome`](crate::Outcome) (its
    /// output, or why there is none) travels back up the response path to the caller,
    /// tagged with the item's id.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if the pipeline's settings cannot work.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::{Outcome, Pipeline};
    ///
    /// let (running, responses) = Pipeline::source(0..5u64).map("square", |x| x * x).respond()?;
    /// let mut got: Vec<(u64, u64)> = responses
    ///     .map(|(id, outcome)| (id.0, outcome.output().unwrap()))
    ///     .collect();
    /// got.sort();
    /// assert_eq!(got, vec![(0, 0), (1, 1), (2, 4), (3, 9), (4, 16)]);
    /// running.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn respond(self) -> Result<(Running<()>, Responses<T>), BuildError> {
        let (launch, inlet, responses) = self.launch::<T>(true)?;
        let Some((responses, drain)) = responses else {
            unreachable!("a serving launch makes the responses")
        };
        let sink = move |ctx| run_serve_sink(inlet, ctx);
        let (running, (responses, drain)) = start_run(launch, sink, (responses, drain))?;
        Ok((running.draining(drain), responses))
    }
}
