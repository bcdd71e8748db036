//! The builder's pipeline-wide settings: defaults for the stages that set nothing
//! themselves (workers, capacity, batch, error policy), the reorder and in-flight windows,
//! fusion, lazily started workers, autoscaling and its CPU budget, the wedge watch, the
//! timeline, caught panics' messages, and the tokio runtime of async stages. Each is recorded
//! in the builder's [`Settings`](super::plan::Settings) and resolved with the plan when the
//! pipeline starts.

use crate::error::BuildError;
use crate::pipeline::plan::MAX_WORKERS;
use crate::policy::ErrorPolicy;
#[cfg(doc)]
use crate::stage::Stage;

use super::PipelineBuilder;

impl<T: Send + 'static> PipelineBuilder<T> {
    /// Sets the number of workers (1 to 4,096) of stages that do not set their own. By default such
    /// stages are autoscaled (see [`autoscale`](PipelineBuilder::autoscale)); with a
    /// default count they are fixed at it. Of this and `autoscale`, the last call wins.
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn default_workers(mut self, workers: usize) -> Self {
        if workers == 0 && self.error.is_none() {
            self.error = Some(BuildError::pipeline_zero("default workers"));
        }
        if workers > MAX_WORKERS && self.error.is_none() {
            let error = BuildError::too_large("", "default workers", workers, MAX_WORKERS);
            self.error = Some(error);
        }
        self.settings.workers = Some(workers);
        self
    }

    /// Sets the input capacity, in items, of stages that do not set their own, and of the
    /// sink (default 16,384). Capacity is honoured in items: a connector whose batch size
    /// adapts holds four batches of at most a quarter of its capacity.
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn default_capacity(mut self, items: usize) -> Self {
        if items == 0 && self.error.is_none() {
            self.error = Some(BuildError::pipeline_zero("default capacity"));
        }
        self.settings.capacity = items;
        self
    }

    /// Pins the batch size of stages that do not set their own, and of the sink. By default
    /// each connector's batch size adapts while the pipeline runs: large batches when items
    /// are cheap and plentiful, single items when they are sparse or costly (see
    /// [`Stage::batch`]).
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn default_batch(mut self, items: usize) -> Self {
        if items == 0 && self.error.is_none() {
            self.error = Some(BuildError::pipeline_zero("default batch"));
        }
        self.settings.batch = Some(items);
        self
    }

    /// Sets the error policy of stages that do not set their own (default
    /// [`ErrorPolicy::Skip`]).
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn on_error(mut self, policy: ErrorPolicy) -> Self {
        self.settings.policy = policy;
        self
    }

    /// Bounds every reorder buffer to `batches` batches (default: twice what the connectors
    /// and workers before the ordered stage can hold, at least 64). Any value of at least 1
    /// is safe; small ones cost throughput when batch times vary.
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn reorder_window(mut self, batches: usize) -> Self {
        if batches == 0 && self.error.is_none() {
            self.error = Some(BuildError::pipeline_zero("reorder window"));
        }
        self.settings.reorder_window = Some(batches);
        self
    }

    /// Bounds the items admitted whose response has not yet reached the origin, when the
    /// response path is on (default 65,536). This is what bounds every response queue, in
    /// source items: a flat-map's children each have a response of their own and widen the
    /// window by as many, so a stage that turns each item into 100 children may have up to
    /// 100 times `items` responses on their way.
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn max_in_flight(mut self, items: usize) -> Self {
        if items == 0 && self.error.is_none() {
            self.error = Some(BuildError::pipeline_zero("max in flight"));
        }
        self.settings.max_in_flight = items;
        self
    }

    /// Lets adjacent stages with equal worker counts share workers: each worker runs a batch
    /// through all of them in turn, with no connector between them. This saves a hop and a
    /// thread hand-off per stage, so it pays for cheap stages and for pipelines with more
    /// stages than cores; it costs pipelining when fused stages are heavy, since they then
    /// take turns on the same threads. An ordered stage ends a fused run, and async stages
    /// are never fused. Each stage keeps its own counts and busy time in the report
    /// ([`StageReport::fused`](crate::StageReport::fused)); fused stages show no queue of
    /// their own.
    ///
    /// This is for stages with fixed worker counts, and keeps them fused for the whole run;
    /// without it, equal neighbours start fused and split once busy (see
    /// [`adaptive_fusion`](PipelineBuilder::adaptive_fusion)). Autoscaled stages are fused
    /// by default (see [`fuse_auto`](PipelineBuilder::fuse_auto)).
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn fuse(mut self) -> Self {
        self.settings.fuse = true;
        self
    }

    /// Whether adjacent autoscaled stages with the same bounds share workers, as
    /// [`fuse`](PipelineBuilder::fuse) does for fixed ones (default: they do).
    ///
    /// Fused, the controller sizes the run of stages as one: every worker takes a batch
    /// through all of them, so the stages are balanced by construction and no item waits
    /// in a queue between them. For CPU-bound stages this is as fast as the best hand-set
    /// layout from the first item on (on two cores, all-auto W2 and W4 run within ±1.2% of
    /// the best hand-set worker counts, while separate auto stages reach 0.95–0.99 of them;
    /// see `BENCHMARKS.md`). Keep them apart (`fuse_auto(false)`) when a stage blocks a
    /// thread (a synchronous wait), so that its wait does not hold up the other stages'
    /// work, or to see each stage's worker count chosen on its own.
    ///
    /// An auto stage that sets a [batch](crate::Stage::batch) or
    /// [capacity](crate::Stage::capacity) different from the stage before keeps its own
    /// connector (and so its own segment).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::Pipeline;
    ///
    /// let finished = Pipeline::source(0..1000u64)
    ///     .autoscale()
    ///     .cpu_budget(2)
    ///     .map("square", |x| x * x)
    ///     .map("triple", |x| 3 * x)
    ///     .fold(0u64, |sum, y| sum + y)
    ///     .run()?;
    /// let stages = finished.report.stages();
    /// // One segment of two workers runs both stages.
    /// assert!(stages[1].fused);
    /// assert_eq!((stages[0].workers, stages[1].workers), (2, 2));
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn fuse_auto(mut self, fuse: bool) -> Self {
        self.settings.fuse_auto = fuse;
        self
    }

    /// Whether a fixed stage with more workers than the
    /// [CPU budget](PipelineBuilder::cpu_budget) starts them lazily (on by default): it
    /// starts one, and the controller adds more, doubling each tick (100 ms by default) up
    /// to the stage's count, while its workers were at least 90% busy over the tick (less
    /// the time they waited for a core, where the system says: Linux) and none of them
    /// waits for input or for room. A stage whose workers wait in its code (a blocking
    /// call) reaches its count in a few ticks; a cheap stage's extra workers, which would
    /// only wait for input, or for a core, and cost wake-ups, are never started (the scale
    /// sweep in `BENCHMARKS.md`). Started workers stay until the end of input. Equal
    /// neighbours started so run fused on their workers at first (see
    /// [`adaptive_fusion`](PipelineBuilder::adaptive_fusion)), grow together, and may split
    /// only once they have their count. With `false`, every stage starts all its workers
    /// at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Barrier};
    /// use millrace::{Pipeline, Stage};
    ///
    /// // A stage that blocks until 16 of its calls wait at once, with 16 workers on a
    /// // budget of 2: it starts one, and doubles them while all of them are waiting in it.
    /// let all_sixteen = Arc::new(Barrier::new(16));
    /// let finished = Pipeline::source(0..64u64)
    ///     .cpu_budget(2)
    ///     .stage(
    ///         Stage::map("gather", move |x: u64| {
    ///             all_sixteen.wait();
    ///             x
    ///         })
    ///         .workers(16)
    ///         .batch(1),
    ///     )
    ///     .fold(0u64, |sum, y| sum + y)
    ///     .run()?;
    /// assert_eq!(finished.report.stages()[0].workers, 16);
    /// for (_, decision) in finished.report.decisions() {
    ///     println!("{}", decision.reason); // more workers to gather: 100% busy, none waiting …
    /// }
    ///
    /// let eager = Pipeline::source(0..1000u64)
    ///     .cpu_budget(2)
    ///     .lazy_workers(false)
    ///     .stage(Stage::map("cheap", |x: u64| x + 1).workers(64))
    ///     .fold(0u64, |sum, y| sum + y)
    ///     .run()?;
    /// assert_eq!(eager.report.stages()[0].workers, 64);
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn lazy_workers(mut self, lazy: bool) -> Self {
        self.settings.lazy_workers = lazy;
        self
    }

    /// Whether adjacent fixed stages with equal worker counts start fused and split when
    /// they are busy (on by default).
    ///
    /// Such a run of stages (two or more, each `.workers(n)` with the same `n`) starts as one
    /// segment of `n` workers (one, when `n` is more than the
    /// [CPU budget](PipelineBuilder::cpu_budget): see below) that each run the stages in turn, as [`fuse`](PipelineBuilder::fuse) makes it: no thread
    /// per stage, no hand-off between them. Not fused at the start:
    ///
    /// * stages before an ordered stage (anywhere later in the pipeline), and the ordered
    ///   stage itself: they keep their batches whole for the reorder buffer;
    /// * stages with per-worker state ([`Stage::map_with`](crate::Stage::map_with),
    ///   `try_map_with`, `try_flat_map_with`): their workers keep their state for the whole
    ///   run, and a split would start them afresh;
    /// * async stages.
    ///
    /// Stages with more workers than the budget start fused on one worker (see
    /// [`lazy_workers`](PipelineBuilder::lazy_workers)); the run grows while its workers
    /// are all busy, and may split only once it has the stages' count (a run that cannot
    /// finish a batch until more of its workers start, such as calls that meet at a
    /// barrier, grows rather than waits for a hand-over).
    ///
    /// When such a run is the pipeline's first stages, its items come from an iterator
    /// ([`Pipeline::source`](crate::Pipeline::source)), the first stage's batches are small
    /// (a limit under 2,048 items: a capacity under 8,192, or a pinned
    /// [`batch`](crate::Stage::batch) under 2,048; too small for cheap stages to amortise a
    /// hand-off), and there is no ordered stage and no response path, the source is fused
    /// too: the run's workers (threads named after the run's last stage) take turns reading
    /// the iterator, in batches of at most the first stage's capacity in items shared among
    /// them, so no item waits in a connector before the run. With larger batches the source
    /// keeps its thread, beside the run; so does a [`Submitter`](crate::Submitter), and so
    /// does any source under [`fuse`](PipelineBuilder::fuse).
    ///
    /// Cheap stages stay fused (W1 with one worker per stage and `.capacity(1024)`, two
    /// cores: 42 M items/s on five threads, 145 M with the stages fused, about 200 M with
    /// the source fused as well, about 330 M with the sink consumed on the run's worker
    /// too; `BENCHMARKS.md`). The controller looks every
    /// [`autoscale_interval`](PipelineBuilder::autoscale_interval) (100 ms by default): the
    /// first time the segment's workers were busy through the interval, none waits for
    /// input or room, and the run's parts (each stage, and the source if fused) spent on
    /// average at least 5 µs on a batch and 50 ns on an item, it splits the run; below
    /// that, handing batches and items between threads would cost about as much as the
    /// parts' work, on any number of cores. A fused source's time counts, its waits for
    /// items too: a slow iterator in front of cheap stages splits the run, and gets a
    /// thread of its own. (A busy machine may keep a costly run fused: a worker that waits
    /// for room downstream at the look holds the split off. The other way round, the time
    /// a worker waited for a core while busy is not counted as the parts' work where the
    /// system says how long that was (Linux), so a preempted batch of a cheap run does not
    /// look costly; elsewhere, or when it still does, a cheap run may split under load.) Each stage then gets `n` workers of its
    /// own, reading a connector of its own, and a fused source a thread of its own, so
    /// costly stages run at once. A stage never runs more than `n` calls at once, before,
    /// during or after the split. The report says whether a stage (or the source) ran fused
    /// at the end ([`StageReport::fused`](crate::StageReport::fused)) and records the split as
    /// a [`Decision`](crate::Decision) with the worker count unchanged
    /// ([`DecisionReason::Split`](crate::DecisionReason::Split)).
    ///
    /// The same holds at the other end: a last stage (or fused run) with one worker of its
    /// own consumes the sink's batches itself while the sink is cheap (see
    /// [`for_each`](PipelineBuilder::for_each)), and the sink gets its thread back once it
    /// averages 5 µs a batch and 50 ns an item.
    ///
    /// `false` starts each stage on threads of its own, as
    /// [`lazy_workers`](PipelineBuilder::lazy_workers) sizes them, and keeps the source and
    /// the sink on theirs. [`fuse`](PipelineBuilder::fuse)
    /// wins over both: with it, equal stages are fused for the whole run and never split.
    /// Turn adaptive fusion off for stages that wait on one another outside the pipeline (a
    /// stage whose closure blocks until a later stage, or the sink, has done something):
    /// fused, they run in turn on the same threads, and a worker blocked in one never
    /// reaches the other. (Calls of one stage that wait for one another, at a barrier or
    /// gathering calls into a batch of their own, need a worker each: pin that stage's
    /// [`batch`](crate::Stage::batch) to 1, since an adapted batch may hand one worker
    /// several of them, fused or not. Then a split is fine: it hands each fused worker's
    /// slot to the stages' own workers as it leaves, so a call still waiting in a fused
    /// worker is met by theirs, as long as the OS starts their threads. A cancel does not
    /// end a call that waits for one that will never come.)
    ///
    /// ```
    /// use millrace::{Pipeline, Stage};
    ///
    /// let fast = Pipeline::source(0..100_000u64)
    ///     .stage(Stage::map("wrap", |x: u64| (x, 0u64)).workers(1))
    ///     .stage(Stage::map("square", |(x, _): (u64, u64)| (x, x * x)).workers(1))
    ///     .fold(0u64, |sum, (_, y)| sum.wrapping_add(y))
    ///     .run()?;
    /// assert_eq!(fast.output, (0..100_000u64).map(|x| x * x).fold(0, u64::wrapping_add));
    ///
    /// let apart = Pipeline::source(0..1000u64)
    ///     .adaptive_fusion(false)
    ///     .stage(Stage::map("wrap", |x: u64| (x, 0u64)).workers(1))
    ///     .stage(Stage::map("square", |(x, _): (u64, u64)| (x, x * x)).workers(1))
    ///     .fold(0u64, |sum, (_, y)| sum.wrapping_add(y))
    ///     .run()?;
    /// assert!(!apart.report.stages()[1].fused);
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn adaptive_fusion(mut self, on: bool) -> Self {
        self.settings.adaptive_fusion = on;
        self
    }

    /// Autoscales every stage that sets no worker count of its own (see
    /// [`Stage::auto_workers`]), within the [CPU budget](PipelineBuilder::cpu_budget).
    /// Adjacent autoscaled stages run fused unless
    /// [`fuse_auto(false)`](PipelineBuilder::fuse_auto); each segment starts at an even
    /// share of the budget and the controller moves workers to the bottleneck from there.
    ///
    /// This is the default; the call undoes an earlier
    /// [`default_workers`](PipelineBuilder::default_workers) (the last call wins).
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn autoscale(mut self) -> Self {
        self.settings.workers = None;
        self
    }

    /// Sets how many workers of autoscaled stages may be busy at once (1 to 4,096; default: the number
    /// of cores, less one on machines of 8 cores or more, where the source, the sink and
    /// the autoscaler's controller get a core beside the workers). Async stages' waiting
    /// does not count.
    ///
    /// Fixed stages are not bound by it, but it decides how they start: a stage with more
    /// workers than the budget starts at one and grows while busy (see
    /// [`lazy_workers`](PipelineBuilder::lazy_workers)).
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn cpu_budget(mut self, workers: usize) -> Self {
        if workers == 0 && self.error.is_none() {
            self.error = Some(BuildError::pipeline_zero("cpu budget"));
        }
        if workers > MAX_WORKERS && self.error.is_none() {
            let error = BuildError::too_large("", "cpu budget", workers, MAX_WORKERS);
            self.error = Some(error);
        }
        self.settings.cpu_budget = Some(workers);
        self
    }

    /// Sets how often the controller measures and decides (default 100 ms): autoscaled
    /// stages' worker counts, lazily started stages' growth, and the splits of runs fused
    /// at the start ([`adaptive_fusion`](PipelineBuilder::adaptive_fusion)). The
    /// [`timeline`](PipelineBuilder::timeline) keeps its own interval; a finer one does not
    /// make the decisions more frequent.
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn autoscale_interval(mut self, interval: std::time::Duration) -> Self {
        self.settings.autoscale_interval = interval.max(std::time::Duration::from_millis(1));
        self
    }

    /// Watches for a wedge: if no item moves for `after` while items are in flight, the
    /// report gets a diagnosis of what every stage's workers are doing (stuck in user code,
    /// waiting on an empty queue, blocked on a full one) and, under
    /// [`WedgePolicy::Fail`](crate::WedgePolicy::Fail), the run fails with it.
    ///
    /// "Moves" means an item leaves a stage: set `after` well above the longest time one
    /// item (or, with a pinned batch, one batch) may take in any stage, or a healthy but
    /// slow stage reads as wedged (`after` of 1 ms fails a stage whose items take 2 ms).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace::{Pipeline, RunErrorKind, Stage, WedgePolicy};
    ///
    /// let err = Pipeline::source(0..10u64)
    ///     .stage(Stage::map("stuck", |x: u64| {
    ///         if x == 3 { std::thread::sleep(Duration::from_millis(1500)); }
    ///         x
    ///     }).workers(1))
    ///     .wedge_timeout(Duration::from_millis(300), WedgePolicy::Fail)
    ///     .autoscale_interval(Duration::from_millis(50))
    ///     .default_batch(1)
    ///     .for_each(|_| {})
    ///     .run()
    ///     .unwrap_err();
    /// assert!(matches!(err.kind(), RunErrorKind::Wedged(d) if d.to_string().contains("`stuck`: worker 0 stuck in the stage's code")));
    /// ```
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn wedge_timeout(mut self, after: std::time::Duration, policy: crate::WedgePolicy) -> Self {
        self.settings.wedge = Some((after, policy));
        self
    }

    /// Sets how often every part's counters are sampled for the report's
    /// [timeline](crate::Report::timeline) (default every 100 ms; at least 1 ms); `None`
    /// turns sampling off. Sampling costs one pass over the counters per interval, on the
    /// controller thread, which otherwise starts only for autoscaling or a wedge timeout.
    /// The timeline keeps at most [`timeline::MAX_SAMPLES`](crate::timeline::MAX_SAMPLES)
    /// samples: on long runs its interval doubles as it fills.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace::Pipeline;
    ///
    /// let finished = Pipeline::source(0..1000u64)
    ///     .map("double", |x| 2 * x)
    ///     .timeline(Some(Duration::from_millis(10)))
    ///     .fold(0u64, |s, x| s + x)
    ///     .run()?;
    /// let timeline = finished.report.timeline();
    /// assert_eq!(timeline.parts(), ["source", "double", "sink"]);
    /// // The last sample is taken at the end: it holds the final counts.
    /// let last = timeline.samples().last().unwrap();
    /// assert_eq!(last.parts[1].items_in, 1000);
    /// # Ok::<(), millrace::RunError>(())
    /// ```
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn timeline(mut self, every: Option<std::time::Duration>) -> Self {
        self.settings.timeline = every.map(|d| d.max(std::time::Duration::from_millis(1)));
        self
    }

    /// Whether panics that millrace catches in user code (stages, sinks, hooks, dead-letter
    /// handlers) also go through the process's panic hook, which prints them to stderr.
    ///
    /// By default they do not: a caught panic fails one item, and is counted and shown in
    /// the [`Report`](crate::Report) ([`errors`](crate::Report::errors),
    /// [`hook_panics`](crate::Report::hook_panics)); printing thousands of them (with
    /// backtraces under `RUST_BACKTRACE=1`) only slows the run down. Turn this on to see
    /// each one as it happens while debugging, or set the environment variable
    /// `MILLRACE_SHOW_PANICS=1`, which changes the default. Panics outside millrace's
    /// catches, in your own threads, always reach your hook.
    ///
    /// millrace installs its quiet hook once per process, in front of whatever hook was
    /// set before the first pipeline ran; a hook you set later replaces it.
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn show_caught_panics(mut self, show: bool) -> Self {
        self.settings.show_caught_panics = show;
        self
    }

    /// Runs async stages on this runtime instead of a current-thread runtime of their own
    /// (which has timers and network I/O). Each async stage's driver thread calls
    /// `handle.block_on`, so the stage's futures run on that thread, with the runtime's
    /// drivers; pass a multi-thread runtime's handle when its I/O should be shared.
    ///
    /// The runtime must be a multi-thread one: a current-thread runtime (what
    /// `#[tokio::test]` and `#[tokio::main(flavor = "current_thread")]` make) drives its
    /// timers and I/O only inside its own `block_on`, so the stage's timers would never
    /// fire. Such a handle is a [`BuildError`] when the pipeline starts.
    ///
    /// Do not call [`run`](crate::Pipeline::run) (or `join`) from inside a task of that
    /// same runtime: it blocks the task's worker thread until the run ends, and on a
    /// runtime with one worker thread (`worker_threads(1)`) the runtime's timers and I/O
    /// then never run, so the run waits for good (a
    /// [`wedge_timeout`](PipelineBuilder::wedge_timeout) names the stuck stage). Call it
    /// from `tokio::task::spawn_blocking`, or from a thread of your own.
    #[cfg(feature = "async")]
    #[must_use = "a builder does nothing until the pipeline runs; use the one this returns"]
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
            && self.error.is_none()
        {
            self.error = Some(BuildError::current_thread_runtime());
        }
        self.settings.runtime = Some(handle);
        self
    }
}
