//! Building a pipeline: a source, a chain of stages, a sink.
//!
//! [`Pipeline::source`] (an iterator) or [`Pipeline::submitter`] (items pushed while it runs)
//! starts a [`PipelineBuilder<T>`], where `T` is the type of the items at its open end.
//! Each [`stage`](PipelineBuilder::stage) turns a `PipelineBuilder<T>` into a
//! `PipelineBuilder<U>`, so stage types are checked at compile time. A sink closes it:
//! [`for_each`](PipelineBuilder::for_each), [`fold`](PipelineBuilder::fold) and
//! [`collect`](PipelineBuilder::collect) give a [`Pipeline<R>`] to [`run`](Pipeline::run) or
//! [`spawn`](Pipeline::spawn); [`outputs`](PipelineBuilder::outputs) and
//! [`respond`](PipelineBuilder::respond) start it at once and hand back its outputs.
//!
//! Nothing can follow a sink: a sink consumes the builder.
//!
//! ```compile_fail
//! use millrace::Pipeline;
//! let p = Pipeline::source(0..10u32).collect();
//! let p = p.map("late", |x: u32| x); // no stage after the sink
//! ```
//!
//! Settings that make no sense (zero workers, zero capacity, a repeated stage name or one
//! the reports keep for the ends, `source` and `sink`, workers for an async stage,
//! `auto_workers` with its min above its max) are reported as a [`BuildError`] when the
//! pipeline is started, before any thread runs.

pub(crate) mod launch;
pub(crate) mod plan;
mod running;
mod settings;
pub(crate) mod sink;
pub(crate) mod source;
mod submitter;

use std::fmt;

use crate::connector::Inlet;
use crate::error::{BoxError, BuildError};
use crate::response::{Hook, ResponseDrain, Responses};
use crate::stage::Stage;

use launch::{Launch, Open, Source};
use plan::{stage_parts, Settings, StagePlan, MAX_CONCURRENCY, MAX_WORKERS};
pub use running::{Finished, Handle, Running};
pub use sink::outputs::Outputs;
use source::Cutter;
pub use submitter::Submitter;

/// What starting a builder yields: the launch, the open end's inlet, a serving pipeline's
/// responses.
type Launched<T, O> = (Launch, Inlet<T>, Option<(Responses<O>, ResponseDrain)>);

type Chain<T> = Box<dyn FnOnce(&mut Launch) -> Open<T> + Send>;

/// A pipeline ready to start; `R` is what its sink returns.
///
/// Made by closing a [`PipelineBuilder`] with a sink. See the [crate docs](crate) for a
/// whole example.
#[must_use = "a pipeline does nothing until it is run or spawned"]
pub struct Pipeline<R> {
    start: Box<dyn FnOnce() -> Result<Running<R>, BuildError> + Send>,
}

impl<R> fmt::Debug for Pipeline<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl Pipeline<()> {
    /// Starts a pipeline whose items come from `items`, read on a thread of its own (or,
    /// for an iterator whose size hint has an upper bound, in front of equal fixed stages of
    /// a small capacity, on their workers until they split: see
    /// [`adaptive_fusion`](PipelineBuilder::adaptive_fusion)). Item ids count from 0 in
    /// iteration order.
    ///
    /// An iterator that waits in `next` (a channel's receiver) holds a
    /// [`stop`](crate::Handle::stop) until it returns: a stop takes no item from it that it
    /// has not given yet, and loses none it has. A [`cancel`](crate::Handle::cancel) does not
    /// wait for it: the run ends, and the source's thread is left to return from `next` on
    /// its own (what it gives then, and the items of the batch it was filling, were never
    /// admitted and are dropped).
    ///
    /// An iterator cannot say whether its `next` will wait, so the source fills batches of
    /// the size the first connector chose from its pace: a source that waits for every item
    /// sends each alone, at once. One that turns slow in the middle of a batch checks the
    /// clock only every 64 items, so the items already in that batch wait for up to 64
    /// more, or for the iterator's end; except where its size hint promised the items
    /// (`backlog.chain(live)`: once the backlog's promise runs out, every item is checked,
    /// and the first late one ships the batch). For items that arrive while the pipeline
    /// runs, a [`submitter`](Pipeline::submitter) is the surer way: its partial batch goes
    /// out as soon as its queue runs dry.
    pub fn source<I>(items: I) -> PipelineBuilder<I::Item>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
    {
        let iter = items.into_iter();
        PipelineBuilder::new(Box::new(move |launch: &mut Launch| {
            launch.start_source(Source::Iter(Box::new(Cutter::new(iter))))
        }))
    }

    /// Starts a pipeline whose items are submitted while it runs, through the returned
    /// [`Submitter`] (cloneable, usable from any thread). `capacity` items can wait to be
    /// admitted before `submit` waits. Input ends when every submitter is dropped.
    pub fn submitter<T: Send + 'static>(capacity: usize) -> (Submitter<T>, PipelineBuilder<T>) {
        let (submitter, rx) = Submitter::new(capacity);
        let shared = submitter.downgrade();
        let builder = PipelineBuilder::new(Box::new(move |launch: &mut Launch| {
            if let Some(shared) = shared.upgrade() {
                shared.watch_stop(launch.control.signals.stop_signal().clone());
            }
            launch.start_source(Source::Submitted(rx, shared))
        }));
        (submitter, builder)
    }
}

impl<R: Send + 'static> Pipeline<R> {
    /// Starts the pipeline's threads and returns a handle to it.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if the pipeline's settings cannot work; nothing was started then.
    pub fn spawn(self) -> Result<Running<R>, BuildError> {
        (self.start)()
    }

    /// Runs the pipeline to the end on the calling thread's behalf: starts it, waits until
    /// the source is exhausted and everything in flight has drained, and returns the sink's
    /// value with the run's [`Report`](crate::Report).
    ///
    /// # Errors
    ///
    /// A [`RunError`](crate::RunError) if the pipeline could not be built, an item failed
    /// under [`ErrorPolicy::Stop`](crate::ErrorPolicy::Stop), or the source or sink panicked. It carries the report.
    pub fn run(self) -> Result<Finished<R>, crate::RunError> {
        self.spawn()?.join()
    }
}

/// A pipeline being described: a source and the stages so far, with items of type `T` at
/// its open end.
#[must_use = "a pipeline builder does nothing until a sink closes it and it is run"]
pub struct PipelineBuilder<T> {
    settings: Settings,
    plan: Vec<StagePlan>,
    hooks: Vec<Option<Hook>>,
    error: Option<BuildError>,
    chain: Chain<T>,
}

impl<T> fmt::Debug for PipelineBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("settings", &self.settings)
            .field("stages", &self.plan)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> PipelineBuilder<T> {
    fn new(chain: Chain<T>) -> Self {
        PipelineBuilder {
            settings: Settings::default(),
            plan: Vec::new(),
            hooks: Vec::new(),
            error: None,
            chain,
        }
    }

    fn check(&mut self, plan: &StagePlan) {
        if self.error.is_some() {
            return;
        }
        let zero = |setting: Option<usize>| setting == Some(0);
        let past = |setting: Option<usize>, max: usize| setting.filter(|&n| n > max);
        self.error = if plan.name.is_empty() {
            Some(BuildError::empty_name(self.plan.len() + 1))
        } else if zero(plan.workers) {
            Some(BuildError::zero(&plan.name, "workers"))
        } else if let Some(n) = past(plan.workers, MAX_WORKERS) {
            Some(BuildError::too_large(&plan.name, "workers", n, MAX_WORKERS))
        } else if let Some(n) = past(plan.auto.map(|(min, _)| min), MAX_WORKERS) {
            Some(BuildError::too_large(
                &plan.name,
                "auto_workers' min",
                n,
                MAX_WORKERS,
            ))
        } else if let Some(n) = past(plan.concurrency, MAX_CONCURRENCY) {
            Some(BuildError::too_large(
                &plan.name,
                "concurrency",
                n,
                MAX_CONCURRENCY,
            ))
        } else if plan.timeout == Some(std::time::Duration::ZERO) {
            Some(BuildError::zero(&plan.name, "timeout"))
        } else if zero(plan.capacity) {
            Some(BuildError::zero(&plan.name, "capacity"))
        } else if zero(plan.batch) {
            Some(BuildError::zero(&plan.name, "batch"))
        } else if zero(plan.concurrency) {
            Some(BuildError::zero(&plan.name, "concurrency"))
        } else if !plan.asynchronous && plan.concurrency.is_some() {
            Some(BuildError::async_only(&plan.name, "concurrency"))
        } else if !plan.asynchronous && plan.timeout.is_some() {
            Some(BuildError::async_only(&plan.name, "a timeout"))
        } else if plan.asynchronous && plan.workers.is_some() {
            Some(BuildError::sync_only(&plan.name, "workers"))
        } else if plan.asynchronous && plan.auto.is_some() {
            Some(BuildError::sync_only(&plan.name, "auto_workers"))
        } else if let Some((min, max)) = plan.auto.filter(|&(min, max)| max != 0 && min > max) {
            Some(BuildError::auto_bounds(&plan.name, min, max))
        } else if matches!(&*plan.name, "source" | "sink") {
            Some(BuildError::reserved_name(&plan.name))
        } else if self.plan.iter().any(|p| p.name == plan.name) {
            Some(BuildError::duplicate_name(&plan.name))
        } else {
            None
        };
    }

    /// Appends a stage.
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn stage<U: Send + 'static>(mut self, stage: Stage<T, U>) -> PipelineBuilder<U> {
        let (plan, hook, dead_letter, body) = stage_parts(stage);
        self.check(&plan);
        let index = self.plan.len();
        self.plan.push(plan);
        self.hooks.push(hook);
        let prev = self.chain;
        PipelineBuilder {
            settings: self.settings,
            plan: self.plan,
            hooks: self.hooks,
            error: self.error,
            chain: Box::new(move |launch: &mut Launch| {
                let open = prev(launch);
                launch.start_stage(index, body, dead_letter, open)
            }),
        }
    }

    /// Appends a [`Stage::map`] with default settings.
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn map<U, F>(self, name: &str, f: F) -> PipelineBuilder<U>
    where
        U: Send + 'static,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        self.stage(Stage::map(name, f))
    }

    /// Appends a [`Stage::filter`] with default settings.
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn filter<F>(self, name: &str, keep: F) -> PipelineBuilder<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.stage(Stage::filter(name, keep))
    }

    /// Appends a [`Stage::flat_map`] with default settings.
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn flat_map<U, I, F>(self, name: &str, f: F) -> PipelineBuilder<U>
    where
        U: Send + 'static,
        I: IntoIterator<Item = U> + 'static,
        F: Fn(T) -> I + Send + Sync + 'static,
    {
        self.stage(Stage::flat_map(name, f))
    }

    /// Appends a [`Stage::try_map`] with default settings.
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn try_map<U, E, F>(self, name: &str, f: F) -> PipelineBuilder<U>
    where
        U: Send + 'static,
        E: Into<BoxError> + 'static,
        F: Fn(&T) -> Result<U, E> + Send + Sync + 'static,
    {
        self.stage(Stage::try_map(name, f))
    }
}
