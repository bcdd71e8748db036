//! Stages: the work a pipeline does, and how each stage is scaled and configured on its own.
//!
//! A [`Stage<T, U>`] turns items of type `T` into items of type `U`. Its form says how many
//! outputs an input makes:
//!
//! | constructor | form | closure |
//! |---|---|---|
//! | [`Stage::map`] | 1 → 1 | `Fn(T) -> U` |
//! | [`Stage::map_with`] | 1 → 1, per-worker state | `Fn() -> S`, `Fn(&mut S, T) -> U` |
//! | [`Stage::filter`] | 1 → 0/1 | `Fn(&T) -> bool` |
//! | [`Stage::flat_map`] | 1 → any | `Fn(T) -> impl IntoIterator<Item = U>` |
//! | [`Stage::try_map`] | 1 → 1 or error | `Fn(&T) -> Result<U, E>` |
//! | [`Stage::try_map_owned`] | 1 → 1 or error, consuming | `Fn(T) -> Result<U, Rejected<T>>` |
//! | [`Stage::try_flat_map`] | 1 → any or error | `Fn(&T) -> Result<impl IntoIterator<Item = U>, E>` |
//! | [`Stage::try_map_with`] | 1 → 1 or error, per-worker state | `Fn() -> S`, `Fn(&mut S, &T) -> Result<U, E>` |
//! | [`Stage::map_async`] | 1 → 1, async (feature `async`) | `Fn(T) -> impl Future<Output = U>` |
//! | [`Stage::try_map_async`] | 1 → 1 or error, async | `Fn(&T) -> impl Future<Output = Result<U, E>>` |
//!
//! and its settings how it runs: [`workers`](Stage::workers) (threads), input
//! [`capacity`](Stage::capacity) and [`batch`](Stage::batch) size,
//! [`ordered`](Stage::ordered) output, an [error policy](Stage::on_error) with
//! [dead letters](Stage::dead_letter), and a [response hook](Stage::on_response).
//! Settings left unset take the pipeline's defaults.
//!
//! Items are moved into the closure, never cloned. Most fallible forms borrow the item
//! instead, so that a failed item can be retried and handed to the dead letters whole;
//! [`Stage::try_map_owned`] takes it, and its error hands it back.

#[cfg(feature = "async")]
mod asynchronous;
pub(crate) mod dead_letter;
pub(crate) mod in_place;
pub(crate) mod logic;
pub(crate) mod process;
mod rejected;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::BoxError;
use crate::item::ItemId;
use crate::policy::ErrorPolicy;
use crate::response::{Hook, Status};
pub use dead_letter::DeadLetter;
use dead_letter::DeadLetterFn;
use logic::{FilterLogic, FlatMapLogic, Logic, MapLogic, TryLogic};
use process::{MakeProcess, StageWorker};
pub use rejected::Rejected;
use rejected::TryOwnedLogic;

/// One stage of a pipeline: a named piece of work from `T` to `U`, with its own workers.
///
/// Reports and errors tell stages apart by name: the names in one pipeline must be unique,
/// not empty, and neither `source` nor `sink` (the ends' names); any other is a build error.
///
/// # Examples
///
/// ```
/// use millrace::{Pipeline, Stage};
///
/// let squares = Pipeline::source(1..=4u64)
///     .stage(Stage::map("square", |x: u64| x * x).workers(2).ordered())
///     .collect()
///     .run()?
///     .output;
/// assert_eq!(squares, vec![1, 4, 9, 16]);
/// # Ok::<(), millrace::RunError>(())
/// ```
#[must_use = "a stage does nothing until it is added to a pipeline"]
pub struct Stage<T, U> {
    pub(crate) name: Arc<str>,
    pub(crate) workers: Option<usize>,
    pub(crate) capacity: Option<usize>,
    pub(crate) batch: Option<usize>,
    pub(crate) ordered: bool,
    pub(crate) policy: Option<ErrorPolicy>,
    pub(crate) dead_letter: Option<DeadLetterFn<T>>,
    pub(crate) hook: Option<Hook>,
    pub(crate) body: Body<T, U>,
    pub(crate) concurrency: Option<usize>,
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) auto: Option<(usize, usize)>,
    /// Keeps state per worker (`map_with`, `try_map_with`, `try_flat_map_with`): its workers
    /// are never replaced by others mid-run, so it does not start fused to split later (see
    /// `PipelineBuilder::adaptive_fusion`).
    pub(crate) per_worker_state: bool,
}

/// What runs a stage: sync workers, or (with the `async` feature) a runtime.
pub(crate) enum Body<T, U> {
    Sync(MakeProcess<T, U>),
    #[cfg(feature = "async")]
    Async(crate::segment::asynchronous::AsyncLaunch<T, U>),
}

impl<T, U> fmt::Debug for Stage<T, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .field("capacity", &self.capacity)
            .field("batch", &self.batch)
            .field("ordered", &self.ordered)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static, U: Send + 'static> Stage<T, U> {
    fn from_logic<L, M>(name: &str, make: M) -> Self
    where
        L: Logic<T, U>,
        M: Fn() -> L + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        let make_process: MakeProcess<T, U> = Arc::new(move |ctx, worker| {
            Box::new(StageWorker {
                ctx: Arc::clone(ctx),
                worker,
                logic: None,
                make: Arc::clone(&make),
            })
        });
        Self::with_body(name, Body::Sync(make_process))
    }

    /// A stage running `body`, with every setting left to the pipeline's defaults.
    fn with_body(name: &str, body: Body<T, U>) -> Self {
        Stage {
            name: Arc::from(name),
            workers: None,
            capacity: None,
            batch: None,
            ordered: false,
            policy: None,
            dead_letter: None,
            hook: None,
            body,
            per_worker_state: false,
            concurrency: None,
            timeout: None,
            auto: None,
        }
    }

    /// A stage that maps each item to one output.
    ///
    /// When `U` has `T`'s size and alignment and is 16 bytes or more, the stage writes each
    /// output over its input, in the batch's own vector (no second vector, and a fused run
    /// of such maps stays in one vector in the cache); smaller items map into a second
    /// vector, where that measured faster. Either way a panic fails only its item, which is
    /// dropped once, and the map goes on with the next.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::{Pipeline, Stage};
    ///
    /// // 16-byte items of the same layout in and out: mapped in place.
    /// let sums = Pipeline::source(0..4u64)
    ///     .stage(Stage::map("pair", |x: u64| (x, x * x)))
    ///     .stage(Stage::map("swap", |(a, b): (u64, u64)| (b, a)))
    ///     .collect()
    ///     .run()?
    ///     .output;
    /// assert_eq!(sums.len(), 4);
    /// assert!(sums.contains(&(9, 3)));
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    pub fn map<F>(name: &str, f: F) -> Self
    where
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        let f = Arc::new(move |_: &mut (), item: T| f(item));
        Self::from_logic(name, move || MapLogic {
            f: Arc::clone(&f),
            state: (),
        })
    }

    /// A map whose workers each own a state built by `init`: a buffer, a compressor
    /// context, a connection. The stage needs no lock. A worker whose closure panics gets a
    /// fresh state. Like [`map`](Stage::map), it writes outputs over their inputs when the
    /// two types share a size and alignment of 16 bytes or more.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::{Pipeline, Stage};
    ///
    /// // Each worker formats into its own reusable buffer.
    /// let lines = Pipeline::source(0..3u32)
    ///     .stage(Stage::map_with("format", String::new, |buf: &mut String, x: u32| {
    ///         buf.clear();
    ///         buf.push_str(&format!("item {x}"));
    ///         buf.len()
    ///     }).ordered())
    ///     .collect()
    ///     .run()?
    ///     .output;
    /// assert_eq!(lines, vec![6, 6, 6]);
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    pub fn map_with<S, I, F>(name: &str, init: I, f: F) -> Self
    where
        S: Send + 'static,
        I: Fn() -> S + Send + Sync + 'static,
        F: Fn(&mut S, T) -> U + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        Self::from_logic(name, move || MapLogic {
            f: Arc::clone(&f),
            state: init(),
        })
        .with_state()
    }

    /// A stage that maps each item to any number of outputs; the outputs take the place of
    /// their input, in order. An item with no outputs counts as filtered.
    ///
    /// If the closure, or the iterator it returns, panics part-way, the item fails as a
    /// whole (under the stage's error policy) and the outputs it had made are dropped, not
    /// delivered.
    pub fn flat_map<I, F>(name: &str, f: F) -> Self
    where
        I: IntoIterator<Item = U> + 'static,
        F: Fn(T) -> I + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        Self::from_logic(name, move || FlatMapLogic {
            f: Arc::clone(&f),
            _iter: PhantomData,
        })
    }

    /// A fallible map: an error fails the item under the stage's error policy. The closure
    /// borrows the item, so a retry tries the same item again and a dead letter gets it back.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::{Pipeline, Stage};
    ///
    /// let finished = Pipeline::source(vec!["1", "two", "3"])
    ///     .stage(Stage::try_map("parse", |s: &&str| s.parse::<u64>()).ordered())
    ///     .collect()
    ///     .run()?;
    /// assert_eq!(finished.output, vec![1, 3]);
    /// assert_eq!(finished.report.failed(), 1);
    /// assert_eq!(finished.report.errors()[0].to_string(),
    ///            "stage `parse` failed on item #1: invalid digit found in string");
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    pub fn try_map<E, F>(name: &str, f: F) -> Self
    where
        E: Into<BoxError> + 'static,
        F: Fn(&T) -> Result<U, E> + Send + Sync + 'static,
    {
        Self::try_flat_map(name, move |item: &T| f(item).map(std::iter::once))
    }

    /// A consuming fallible map: the closure takes the item (so a parse can keep its bytes,
    /// with no clone), and an error hands it back in a [`Rejected`], so the stage's error
    /// policy can retry it and a [dead letter](Stage::dead_letter) gets it whole. An error
    /// made with [`Rejected::consumed`], or a panic, fails the item for good (it is gone).
    /// See [`Rejected`] for an example.
    pub fn try_map_owned<F>(name: &str, f: F) -> Self
    where
        F: Fn(T) -> Result<U, Rejected<T>> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        Self::from_logic(name, move || TryOwnedLogic {
            f: Arc::clone(&f),
            _out: PhantomData,
        })
    }

    /// A fallible flat-map: like [`try_map`](Stage::try_map), with any number of outputs.
    pub fn try_flat_map<I, E, F>(name: &str, f: F) -> Self
    where
        I: IntoIterator<Item = U> + 'static,
        E: Into<BoxError> + 'static,
        F: Fn(&T) -> Result<I, E> + Send + Sync + 'static,
    {
        Self::try_flat_map_logic(name, || (), move |_: &mut (), item: &T| f(item))
    }

    /// A fallible map whose workers each own a state built by `init` (a compressor context,
    /// a connection): like [`try_map`](Stage::try_map) and [`map_with`](Stage::map_with) at
    /// once. The state is rebuilt after a panic.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::{Pipeline, Stage};
    ///
    /// // Each worker keeps its own scratch buffer; odd lengths are refused.
    /// let finished = Pipeline::source(vec!["ab", "abc", "abcd"])
    ///     .stage(Stage::try_map_with("even", Vec::new, |buf: &mut Vec<u8>, s: &&str| {
    ///         buf.clear();
    ///         buf.extend_from_slice(s.as_bytes());
    ///         if buf.len() % 2 == 0 { Ok(buf.len()) } else { Err("odd length") }
    ///     }).ordered())
    ///     .collect()
    ///     .run()?;
    /// assert_eq!(finished.output, vec![2, 4]);
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    pub fn try_map_with<S, N, E, F>(name: &str, init: N, f: F) -> Self
    where
        S: Send + 'static,
        N: Fn() -> S + Send + Sync + 'static,
        E: Into<BoxError> + 'static,
        F: Fn(&mut S, &T) -> Result<U, E> + Send + Sync + 'static,
    {
        Self::try_flat_map_with(name, init, move |state: &mut S, item: &T| {
            f(state, item).map(std::iter::once)
        })
    }

    /// Marks the stage as keeping state per worker.
    fn with_state(mut self) -> Self {
        self.per_worker_state = true;
        self
    }

    /// The most general fallible form: per-worker state, any number of outputs.
    pub fn try_flat_map_with<S, N, I, E, F>(name: &str, init: N, f: F) -> Self
    where
        S: Send + 'static,
        N: Fn() -> S + Send + Sync + 'static,
        I: IntoIterator<Item = U> + 'static,
        E: Into<BoxError> + 'static,
        F: Fn(&mut S, &T) -> Result<I, E> + Send + Sync + 'static,
    {
        Self::try_flat_map_logic(name, init, f).with_state()
    }

    /// The fallible forms' one logic; `try_flat_map` passes `()` as the state (no state).
    fn try_flat_map_logic<S, N, I, E, F>(name: &str, init: N, f: F) -> Self
    where
        S: Send + 'static,
        N: Fn() -> S + Send + Sync + 'static,
        I: IntoIterator<Item = U> + 'static,
        E: Into<BoxError> + 'static,
        F: Fn(&mut S, &T) -> Result<I, E> + Send + Sync + 'static,
    {
        let (f, init) = (Arc::new(f), Arc::new(init));
        Self::from_logic(name, move || TryLogic {
            f: Arc::clone(&f),
            state: init(),
            init: Arc::clone(&init),
            _types: PhantomData,
        })
    }
}

impl<T: Send + 'static> Stage<T, T> {
    /// A stage that keeps the items for which `keep` returns `true`.
    pub fn filter<F>(name: &str, keep: F) -> Self
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        let f = Arc::new(keep);
        Self::from_logic(name, move || FilterLogic { f: Arc::clone(&f) })
    }
}

impl<T, U> Stage<T, U> {
    /// The stage's name, as reports and errors show it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the stage on `workers` threads (1 to 4,096: 0 or more is a build error, and so
    /// is a count for an async stage, which runs on threads of its own). Without a count (here or
    /// [`default_workers`](crate::PipelineBuilder::default_workers)), the stage is
    /// autoscaled, as by [`auto_workers(1, 0)`](Stage::auto_workers).
    ///
    /// At most `workers` threads run the stage's code at once. More workers than the
    /// [CPU budget](crate::PipelineBuilder::cpu_budget) start lazily: one at first, the rest
    /// while they are all busy in the stage's code (a blocking call), so
    /// a stage that waits on I/O reaches its count within a few hundred milliseconds (see
    /// [`lazy_workers`](crate::PipelineBuilder::lazy_workers)).
    #[must_use = "a stage does nothing until added to a pipeline; use the one this returns"]
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Lets the pipeline choose the stage's workers while it runs, between `min` and `max`
    /// (`max` 0: the CPU budget). The controller gives each autoscaled stage a share of the
    /// [CPU budget](crate::PipelineBuilder::cpu_budget) that follows its share of the cost
    /// per item, moving one worker at a time with hysteresis; every decision is in the
    /// report. Adjacent auto stages with the same bounds share workers and are sized as one
    /// (see [`fuse_auto`](crate::PipelineBuilder::fuse_auto)). Overrides
    /// [`workers`](Stage::workers). A `min` above a `max` other than 0 is a build error, and
    /// so are a `min` above 4,096 and bounds for an async stage. A `max` above the budget
    /// is the budget (`usize::MAX` reads "no bound but the budget").
    ///
    /// The budget counts cores: a stage that blocks (a sleep, a synchronous network call)
    /// gets no more workers than the budget however long it waits, whatever its `max`. Give
    /// such a stage [`workers(n)`](Stage::workers) (they start while all of them are
    /// blocked) or make it async (`map_async`, feature `async`).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::{Pipeline, Stage};
    ///
    /// let finished = Pipeline::source(0..10_000u64)
    ///     .stage(Stage::map("cheap", |x: u64| x + 1).auto_workers(1, 0))
    ///     .stage(Stage::map("dear", |x: u64| (0..200).fold(x, |a, i| a ^ (a << 1) ^ i)).auto_workers(1, 4))
    ///     .fold(0u64, |n, _| n + 1)
    ///     .run()?;
    /// assert_eq!(finished.output, 10_000);
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    #[must_use = "a stage does nothing until added to a pipeline; use the one this returns"]
    pub fn auto_workers(mut self, min: usize, max: usize) -> Self {
        self.auto = Some((min, max));
        self
    }

    /// Sets how many items the stage's input connector holds before senders wait (at least
    /// 1: 0 is a build error; default 16,384). The connector holds whole batches: unless a batch size is set,
    /// it holds four batches of at most a quarter of the capacity, so the capacity holds in
    /// items; an explicit [`batch`](Stage::batch) larger than the capacity is one batch.
    #[must_use = "a stage does nothing until added to a pipeline; use the one this returns"]
    pub fn capacity(mut self, items: usize) -> Self {
        self.capacity = Some(items);
        self
    }

    /// Pins the most items in one batch on the stage's input connector (at least 1: 0 is a
    /// build error). Larger
    /// batches cost less per item; a worker still sends a partial batch as soon as it would
    /// otherwise wait, so light traffic is not delayed.
    ///
    /// Without it the batch size adapts while the pipeline runs, up to the
    /// [capacity](Stage::capacity) over four: batches fill in about 50 µs of the producer's
    /// time and take at most about 1 ms of this stage's, so cheap items travel thousands to
    /// a batch and sparse or costly ones alone. The report says what it chose
    /// ([`StageReport::batch`](crate::StageReport::batch)).
    #[must_use = "a stage does nothing until added to a pipeline; use the one this returns"]
    pub fn batch(mut self, items: usize) -> Self {
        self.batch = Some(items);
        self
    }

    /// Makes the stage emit its outputs in input order, however many workers it has. Order
    /// is restored by a reorder buffer bounded by the pipeline's
    /// [`reorder_window`](crate::PipelineBuilder::reorder_window).
    #[must_use = "a stage does nothing until added to a pipeline; use the one this returns"]
    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }

    /// Async stages: how many items may be in flight at once (default 64; 1 to 1,048,576,
    /// others are a build error). Sync stages scale with [`workers`](Stage::workers)
    /// instead; setting this on one is a build error.
    ///
    /// Besides the items in flight, the stage holds the rest of the batches they came in,
    /// and the next ones, waiting for a place: at most twice `items` in all (a batch larger
    /// than that alone), so that places never sit idle while a batch waits for its slowest
    /// item. Memory is bounded by that and the stage's [`capacity`](Stage::capacity).
    ///
    /// It applies to async stages only (`Stage::map_async`, `Stage::try_map_async`, with the
    /// `async` feature). The type system does not stop a call on a sync stage: the pipeline's
    /// `spawn` or `run` returns a [`BuildError`](crate::BuildError) naming the stage, before
    /// any thread starts.
    #[must_use = "a stage does nothing until added to a pipeline; use the one this returns"]
    pub fn concurrency(mut self, items: usize) -> Self {
        self.concurrency = Some(items);
        self
    }

    /// Async stages: fail an item whose future takes longer than `limit`, dropping the
    /// future. Setting this on a sync stage is a build error, and so is a `limit` of 0
    /// (which would fail every item).
    ///
    /// A try fails ([`ItemErrorKind::TimedOut`](crate::ItemErrorKind::TimedOut)) when its
    /// future is still pending `limit` after the try started, by the runtime's timer, or
    /// when its own time on the runtime's thread was longer than `limit` in all (it held
    /// the thread past its deadline, where no timer could fire). A try whose result is
    /// ready when the runtime comes to it passes, even if the runtime came late because
    /// other futures, or the OS, held its thread (as with `tokio::time::timeout`): the
    /// result is not thrown away and the item not tried again for the runtime's delay. The try's own time
    /// counts its closure's call too (the code before its `async` block). While the stage
    /// waits for room downstream its futures are not polled, but their deadlines run. Under
    /// a retry policy each try has its own `limit`.
    ///
    /// It applies to async stages only; a sync stage's code cannot be interrupted. The type
    /// system does not stop a call on a sync stage: the pipeline's `spawn` or `run` returns a
    /// [`BuildError`](crate::BuildError) naming the stage, before any thread starts.
    #[must_use = "a stage does nothing until added to a pipeline; use the one this returns"]
    pub fn timeout(mut self, limit: std::time::Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Sets what the stage does with a failed item (default: the pipeline's policy).
    #[must_use = "a stage does nothing until added to a pipeline; use the one this returns"]
    pub fn on_error(mut self, policy: ErrorPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Hands every item that fails for good in this stage to `handler`, with its error.
    /// The handler runs on the worker that failed the item.
    #[must_use = "a stage does nothing until added to a pipeline; use the one this returns"]
    pub fn dead_letter<F>(mut self, handler: F) -> Self
    where
        F: Fn(DeadLetter<T>) + Send + Sync + 'static,
    {
        self.dead_letter = Some(Arc::new(handler));
        self
    }

    /// Receives, on this stage's own response channel, what became of every item the stage
    /// sent on: delivered to the sink, filtered or failed further down, or cancelled. The
    /// hook runs on a relay thread of the stage's own, once per item (once per flat-map
    /// child), in no particular order.
    ///
    /// Only items the stage sent on are answered: one it filtered or failed itself, or one a
    /// cancel dropped before the stage sent it (in its queue, or upstream), never reaches
    /// the hook. For every item's fate, respond at the sink
    /// ([`respond`](crate::PipelineBuilder::respond)) or read the report's
    /// [`unfinished`](crate::Report::unfinished) ids.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
    /// use millrace::{Pipeline, Stage, Status};
    ///
    /// let delivered = Arc::new(AtomicU64::new(0));
    /// let seen = Arc::clone(&delivered);
    /// Pipeline::source(0..100u64)
    ///     .stage(Stage::map("wrap", |x: u64| x).on_response(move |_id, status| {
    ///         if matches!(status, Status::Delivered) {
    ///             seen.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     }))
    ///     .filter("even", |x| x % 2 == 0)
    ///     .for_each(|_| {})
    ///     .run()?;
    /// assert_eq!(delivered.load(Ordering::Relaxed), 50);
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    #[must_use = "a stage does nothing until added to a pipeline; use the one this returns"]
    pub fn on_response<F>(mut self, hook: F) -> Self
    where
        F: FnMut(ItemId, &Status) + Send + 'static,
    {
        self.hook = Some(Box::new(hook));
        self
    }
}
