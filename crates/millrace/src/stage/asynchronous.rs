//! The constructors of async stages (feature `async`): a future per item, thousands in
//! flight on three threads. What they build runs in `segment::asynchronous`; their docs
//! here are what users read of it (keep the two in step).

use crate::error::BoxError;
use crate::segment::asynchronous::{launcher, ByRef, ByValue};

use super::{Body, Stage};

impl<T: Send + 'static, U: Send + 'static> Stage<T, U> {
    /// An async stage: `f` returns a future for each item, and up to
    /// [`concurrency`](Stage::concurrency) of them (default 64) run at once on a tokio
    /// runtime, so a stage that waits on the network needs no thread per wait. A panic or a
    /// [`timeout`](Stage::timeout) fails the item; the item is consumed, so it cannot be
    /// retried; use [`try_map_async`](Stage::try_map_async) for that.
    ///
    /// # Threads
    ///
    /// An async stage runs on three threads whatever its concurrency, and
    /// [`workers`](Stage::workers) does not apply to it:
    ///
    /// 1. an **intake** thread takes batches off the stage's input connector;
    /// 2. a **driver** thread runs the futures, with `block_on` on the runtime;
    /// 3. an **output** thread batches the results and sends them on, with the same
    ///    flushing, ordering and backpressure as a sync stage.
    ///
    /// CPU stages keep their own threads, so a heavy CPU stage cannot starve the runtime and
    /// an async stage cannot block a CPU worker.
    ///
    /// # Batches and order
    ///
    /// Each input batch becomes one output batch with its items in input order. The futures
    /// of several batches run at once, `concurrency` items at most over all of them; a
    /// batch goes on when the last of its items ends, so one slow item holds back the rest
    /// of its batch (a smaller [`batch`](Stage::batch) limits that). An
    /// [`ordered`](Stage::ordered) async stage keeps input order (like Akka's `mapAsync`);
    /// an unordered one lets later batches overtake a slow one (`mapAsyncUnordered`). A
    /// cancel drops every future in flight and reports its item unfinished.
    ///
    /// Besides its input connector (its [`capacity`](Stage::capacity)), the stage holds
    /// fewer than three times its concurrency plus two batches of inputs: fewer than the
    /// concurrency plus a batch on their way from the intake to the driver, up to twice the
    /// concurrency admitted by the driver (running, or waiting for a place; a batch larger
    /// than that is admitted alone), and a batch held back until there is room. Finished
    /// outputs wait for the output thread in at most 2·⌈concurrency ÷ batch size⌉ + 1
    /// batches. Busy time in the
    /// report is the time the stage's driver spent polling (the futures and its own
    /// bookkeeping); an item's life in the stage adds to
    /// [`waiting`](crate::Tally::waiting).
    ///
    /// # The runtime and tokio features
    ///
    /// By default the driver thread runs a current-thread runtime of its own, with timers
    /// and network I/O enabled: millrace's `async` feature turns on tokio's `rt`, `time`,
    /// `sync` and `net`. Futures that use tokio themselves need a `tokio` dependency of
    /// your own with the features they use (`time` for `tokio::time::sleep`, `net`, `fs`,
    /// `macros` …).
    ///
    /// To share a runtime (its I/O, its connection pools), pass its handle to
    /// [`PipelineBuilder::runtime`](crate::PipelineBuilder::runtime). It must be a
    /// multi-thread runtime (tokio's `rt-multi-thread` feature; `Runtime::new()`,
    /// `#[tokio::main]`, `#[tokio::test(flavor = "multi_thread")]`) with timers enabled
    /// (`enable_all`, or at least `enable_time`; `enable_io` for the network): the driver
    /// thread calls `Handle::block_on`, which on a current-thread runtime (what a plain
    /// `#[tokio::test]` makes) drives neither timers nor I/O.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace::{Pipeline, Stage};
    ///
    /// // 1,000 waits of 10 ms, 500 at a time: about 20 ms, on three threads.
    /// let finished = Pipeline::source(0..1_000u64)
    ///     .stage(Stage::map_async("fetch", |x: u64| async move {
    ///         tokio::time::sleep(Duration::from_millis(10)).await;
    ///         x * 2
    ///     }).concurrency(500).ordered())
    ///     .collect()
    ///     .run()?;
    /// assert_eq!(finished.output, (0..1_000).map(|x| x * 2).collect::<Vec<_>>());
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    ///
    /// On a multi-thread runtime of your own:
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace::{Pipeline, Stage};
    ///
    /// let runtime = tokio::runtime::Builder::new_multi_thread()
    ///     .worker_threads(2)
    ///     .enable_all()
    ///     .build()
    ///     .unwrap();
    /// let finished = Pipeline::source(0..100u64)
    ///     .runtime(runtime.handle().clone())
    ///     .stage(Stage::map_async("fetch", |x: u64| async move {
    ///         tokio::time::sleep(Duration::from_millis(1)).await;
    ///         x + 1
    ///     }))
    ///     .fold(0u64, |sum, x| sum + x)
    ///     .run()?;
    /// assert_eq!(finished.output, (1..=100).sum::<u64>());
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    pub fn map_async<F, Fut>(name: &str, f: F) -> Self
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = U> + Send + 'static,
    {
        Self::with_body(name, Body::Async(launcher(ByValue(f))))
    }

    /// A fallible async stage: `f` borrows the item to start each try and returns a future
    /// of the result, so a failed item can be retried under
    /// [`ErrorPolicy::Retry`](crate::ErrorPolicy::Retry) and handed whole to the dead
    /// letters. The future must not borrow the item: copy what it needs.
    ///
    /// It runs as [`map_async`](Stage::map_async) does: on three threads, batch by batch,
    /// on the pipeline's runtime or the one passed to
    /// [`PipelineBuilder::runtime`](crate::PipelineBuilder::runtime) (see there for the
    /// threads, batches, order and the tokio features it needs).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::{Pipeline, Stage};
    ///
    /// let finished = Pipeline::source(vec!["1", "x", "3"])
    ///     .stage(Stage::try_map_async("parse", |s: &&str| {
    ///         let s = s.to_string();
    ///         async move { s.parse::<u32>() }
    ///     }).ordered())
    ///     .collect()
    ///     .run()?;
    /// assert_eq!(finished.output, vec![1, 3]);
    /// assert_eq!(finished.report.failed(), 1);
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    pub fn try_map_async<E, F, Fut>(name: &str, f: F) -> Self
    where
        E: Into<BoxError> + 'static,
        F: Fn(&T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<U, E>> + Send + 'static,
    {
        Self::with_body(name, Body::Async(launcher(ByRef(f))))
    }
}
