//! The plan of a pipeline: each stage's settings as the user gave them ([`StagePlan`]), the
//! pipeline's defaults ([`Settings`]), and their resolution once every stage is known
//! ([`resolve`]): defaults applied, autoscaling bounds, which stages are fused into one
//! segment, and each autoscaled segment's first worker count.
//!
//! [`super::launch`] turns the resolved plan into threads.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use crate::autoscale::WedgePolicy;
use crate::policy::ErrorPolicy;
use crate::response::Hook;
use crate::stage::dead_letter::DeadLetterFn;
use crate::stage::{Body, Stage};

/// The input capacity, in items, of a connector whose stage sets none (and of the sink's).
pub(crate) const DEFAULT_CAPACITY: usize = 16_384;

/// The most workers a stage may have (fixed, or an autoscaled one's `min`), and the largest
/// CPU budget: each is a thread. More is a [`BuildError`](crate::BuildError): a budget of
/// 100,000 started an autoscaled stage at 100,000 threads, and the process aborted.
pub(crate) const MAX_WORKERS: usize = 4096;

/// The most items an async stage may have in flight (its concurrency): past tokio's
/// semaphore's permits, `concurrency(usize::MAX)` panicked inside `run`.
pub(crate) const MAX_CONCURRENCY: usize = 1 << 20;

/// Default concurrency of async stages.
pub(crate) const DEFAULT_CONCURRENCY: usize = 64;

/// Pipeline-wide defaults and limits.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Workers of stages without a count of their own; `None`: they are autoscaled.
    pub(crate) workers: Option<usize>,
    pub(crate) capacity: usize,
    /// Batch size of connectors without one of their own; `None`: it adapts.
    pub(crate) batch: Option<usize>,
    pub(crate) policy: ErrorPolicy,
    pub(crate) reorder_window: Option<usize>,
    pub(crate) max_in_flight: usize,
    /// Fuse adjacent fixed stages with equal worker counts.
    pub(crate) fuse: bool,
    /// Fuse adjacent autoscaled stages with equal bounds (on by default).
    pub(crate) fuse_auto: bool,
    /// Fixed stages start at most the CPU budget's workers and add the rest while all are
    /// busy (on by default).
    pub(crate) lazy_workers: bool,
    /// Adjacent fixed stages with equal worker counts start fused and split once the fused
    /// segment is busy through a controller tick (on by default).
    pub(crate) adaptive_fusion: bool,
    /// Workers that may be busy at once (default: the cores, less one from 8 cores up; see `default_budget`).
    pub(crate) cpu_budget: Option<usize>,
    pub(crate) autoscale_interval: Duration,
    pub(crate) wedge: Option<(Duration, WedgePolicy)>,
    /// How often the timeline samples every part's counters (`None`: not at all).
    pub(crate) timeline: Option<Duration>,
    /// Caught panics of user code go through the panic hook (print) as well.
    pub(crate) show_caught_panics: bool,
    #[cfg(feature = "async")]
    pub(crate) runtime: Option<tokio::runtime::Handle>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            workers: None,
            capacity: DEFAULT_CAPACITY,
            batch: None,
            policy: ErrorPolicy::Skip,
            reorder_window: None,
            max_in_flight: 1 << 16,
            fuse: false,
            fuse_auto: true,
            lazy_workers: true,
            adaptive_fusion: true,
            cpu_budget: None,
            autoscale_interval: Duration::from_millis(100),
            wedge: None,
            timeline: Some(Duration::from_millis(100)),
            show_caught_panics: crate::panics::shown_by_default(),
            #[cfg(feature = "async")]
            runtime: None,
        }
    }
}

/// One stage's settings as the user gave them.
#[derive(Clone, Debug)]
pub(crate) struct StagePlan {
    pub(crate) name: Arc<str>,
    pub(crate) workers: Option<usize>,
    pub(crate) capacity: Option<usize>,
    pub(crate) batch: Option<usize>,
    pub(crate) ordered: bool,
    pub(crate) policy: Option<ErrorPolicy>,
    /// Runs on a runtime rather than on workers.
    pub(crate) asynchronous: bool,
    pub(crate) concurrency: Option<usize>,
    pub(crate) timeout: Option<std::time::Duration>,
    /// Autoscaled between these bounds (a max of 0 means the CPU budget).
    pub(crate) auto: Option<(usize, usize)>,
    /// Keeps state per worker (never fused at the start: a split would replace its workers).
    pub(crate) per_worker_state: bool,
}

/// One stage's settings, defaults applied.
pub(crate) struct Resolved {
    /// Runs on the previous stage's workers (no connector of its own).
    pub(crate) fused: bool,
    /// Autoscaled between these bounds.
    pub(crate) auto: Option<(usize, usize)>,
    /// Its worker count: fixed, or an autoscaled segment's first size.
    pub(crate) workers: usize,
    /// The workers started with the pipeline: `workers`, or for a fixed stage with more
    /// workers than the CPU budget, the budget (the controller starts the rest while all
    /// of them are busy; see [`crate::autoscale`]).
    pub(crate) start: usize,
    /// Items per batch on its input connector: the size the user pinned, or the most an
    /// adaptive size may reach.
    pub(crate) batch: usize,
    /// Whether the input connector's batch size adapts (see [`crate::batch_size`]).
    pub(crate) adaptive: bool,
    /// Input capacity in items, as asked (a fused stage has no queue of its own).
    pub(crate) capacity: usize,
    pub(crate) queue: usize,
    /// For a stage fused at the start of the run that may split off (see
    /// [`fuse_at_the_start`]), its input queue once split, in batches; 0 otherwise.
    pub(crate) standby_queue: usize,
    /// Part of a run of stages fused at the start that splits when its workers are all busy
    /// (the run's first stage included).
    pub(crate) splits: bool,
    pub(crate) ordered: bool,
    pub(crate) policy: ErrorPolicy,
}

/// A resolved plan.
pub(super) struct Resolution {
    pub(super) resolved: Vec<Resolved>,
    /// The stages of each segment (stages that share workers), in order.
    pub(super) segments: Vec<Range<usize>>,
    /// Workers that may be busy at once.
    pub(super) budget: usize,
}

/// Applies the defaults to every stage, decides the segments, and sizes the autoscaled ones.
pub(super) fn resolve(settings: &Settings, plan: &[StagePlan]) -> Resolution {
    let budget = settings
        .cpu_budget
        .unwrap_or_else(|| default_budget(cores()));
    let mut resolved: Vec<Resolved> = Vec::with_capacity(plan.len());
    for p in plan {
        let capacity = p.capacity.unwrap_or(settings.capacity);
        let (mut batch, adaptive) = batch_for(p.batch, settings, capacity);
        if p.asynchronous && adaptive {
            // An async stage holds a batch until its last item ends: batches of at most a
            // quarter of its concurrency keep several in flight, so its places stay busy.
            let concurrency = p.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
            batch = batch.min((concurrency / 4).max(1));
        }
        let auto = match p.auto {
            _ if p.asynchronous => None,
            Some((min, max)) => Some((min.max(1), if max == 0 { budget } else { max })),
            None if p.workers.is_none() && settings.workers.is_none() => Some((1, budget)),
            None => None,
        }
        .map(|(min, max)| (min, max.max(min)));
        let workers = match auto {
            Some((min, _)) => min,
            None => p.workers.or(settings.workers).unwrap_or(1),
        };
        // Fuse with the stage before when both run on threads, that stage's output need
        // not pass through a reorder buffer first, and the pipeline asks: fixed stages
        // with equal worker counts under `fuse()`; autoscaled ones with equal bounds, and
        // equal batch and capacity (a stage that asks for a buffer of its own keeps it),
        // unless `fuse_auto(false)`.
        let prev = resolved.last().filter(|prev| {
            !prev.ordered && !plan[resolved.len() - 1].asynchronous && !p.asynchronous
        });
        let fused = prev.is_some_and(|prev| match (auto, prev.auto) {
            (None, None) => settings.fuse && prev.workers == workers,
            (Some(bounds), Some(prev_bounds)) => {
                settings.fuse_auto
                    && bounds == prev_bounds
                    && (batch, adaptive, capacity) == (prev.batch, prev.adaptive, prev.capacity)
            }
            _ => false,
        });
        // An async stage runs on one driver (and two pump) threads.
        let workers = if p.asynchronous { 1 } else { workers };
        resolved.push(Resolved {
            fused,
            auto,
            workers,
            start: workers,
            batch,
            adaptive,
            capacity,
            queue: if fused {
                0
            } else {
                batches(capacity, batch, adaptive)
            },
            standby_queue: 0,
            splits: false,
            ordered: p.ordered,
            policy: p.policy.unwrap_or(settings.policy),
        });
    }
    let mut segments = segments(&resolved);
    start_autoscaled_at_an_even_share(&mut resolved, &segments, plan, budget);
    if settings.lazy_workers {
        start_fixed_within_the_budget(&mut resolved, plan, budget);
    }
    if settings.adaptive_fusion && !settings.fuse {
        fuse_at_the_start(&mut resolved, plan);
        segments = self::segments(&resolved);
    }
    Resolution {
        resolved,
        segments,
        budget,
    }
}

/// The cores this process may use.
pub(super) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Machines with this many cores or more keep one core out of the default CPU budget.
const SPARE_A_CORE_FROM: usize = 8;

/// The CPU budget when the user sets none: every core, less one on machines of
/// [`SPARE_A_CORE_FROM`] cores or more. The source, the sink and the controller run beside
/// the workers; with every core given to busy workers, their wake-ups wait for a time slice
/// while the workers block on them. W2 with nothing set (one fused segment) on a 16-core
/// Xeon, restricted with `taskset`: on 16 cores 0.69 of ideal with 16 workers, 0.93–1.00
/// with 15; on 8 cores 0.77 with 8, 0.93 with 7; on 4 cores 1.0 with 4, 0.8 with 3 (and 1.01
/// with 2 on our 2-core machines), so small machines keep every core.
fn default_budget(cores: usize) -> usize {
    if cores >= SPARE_A_CORE_FROM {
        cores - 1
    } else {
        cores.max(1)
    }
}

/// The queue slots of a connector holding `items` in batches of at most `batch`. A batch
/// size the connector chooses (`adaptive`) never takes it past the capacity: as many whole
/// batches as fit, at least one (an async stage's 250-item batches under the default
/// 16,384 took 66 slots, 16,500 items, where 65 hold 16,250: a new user's trial). A pinned
/// one rounds the capacity up to whole batches, as documented (`.capacity(10).batch(4)`
/// holds 3 batches, 12 items).
pub(super) fn batches(items: usize, batch: usize, adaptive: bool) -> usize {
    let batch = batch.max(1);
    if adaptive {
        (items / batch).max(1)
    } else {
        items.div_ceil(batch).max(1)
    }
}

/// The batch size of a connector holding `capacity` items, and whether it adapts: the one
/// the user set (for the stage, else for the pipeline) is pinned; otherwise it adapts up to
/// the capacity over [`SLOTS`](crate::batch_size::SLOTS) queue slots, so that the queue holds
/// the capacity in items (`.capacity(8)` of 1 MiB items holds 8 MiB, not a whole default
/// batch's worth).
pub(super) fn batch_for(
    explicit: Option<usize>,
    settings: &Settings,
    capacity: usize,
) -> (usize, bool) {
    match explicit.or(settings.batch) {
        Some(batch) => (batch, false),
        None => (crate::batch_size::limit_for(capacity), true),
    }
}

/// The stages of each segment: a stage starts a new one unless it is fused with the one
/// before.
fn segments(resolved: &[Resolved]) -> Vec<Range<usize>> {
    segments_of_fused(resolved.iter().map(|r| r.fused))
}

/// The runs of stages that share workers, given for each stage whether it is fused with
/// the one before (the report reads the same from its stages at the end of a run).
pub(crate) fn segments_of_fused(fused: impl IntoIterator<Item = bool>) -> Vec<Range<usize>> {
    let mut segments: Vec<Range<usize>> = Vec::new();
    for (i, fused) in fused.into_iter().enumerate() {
        match segments.last_mut() {
            Some(last) if fused => last.end = i + 1,
            _ => segments.push(i..i + 1),
        }
    }
    segments
}

/// Starts each autoscaled segment at an even share of the CPU budget left over by the
/// fixed ones, within its bounds: a pipeline fused into one segment starts on every core
/// at once, while four separate stages on two cores start at one worker each. The
/// controller corrects the shares once it has measured the stages' costs.
fn start_autoscaled_at_an_even_share(
    resolved: &mut [Resolved],
    segments: &[Range<usize>],
    plan: &[StagePlan],
    budget: usize,
) {
    let (mut fixed, mut autos) = (0, 0);
    for segment in segments {
        match resolved[segment.start].auto {
            Some(_) => autos += 1,
            None if !plan[segment.start].asynchronous => fixed += resolved[segment.start].workers,
            None => {}
        }
    }
    let share = budget.saturating_sub(fixed) / autos.max(1);
    for segment in segments {
        if let Some((min, max)) = resolved[segment.start].auto {
            for r in &mut resolved[segment.clone()] {
                r.workers = share.clamp(min, max);
                r.start = r.workers;
            }
        }
    }
}

/// Starts each fixed stage with more workers than the CPU budget at one worker: the
/// controller doubles them while they are all busy (see [`crate::autoscale`]), so a stage
/// whose workers block in its code reaches its count within a few ticks, while a cheap
/// stage's extra workers, which would only wait for input and cost wake-ups, never start.
/// (The scale sweep in `BENCHMARKS.md`: one cheap stage asked for 4 to 256 workers on 2
/// cores ran at 224–400 M hops/s per core when it started 2 of them, against 620–700 M with
/// one, the sink then consumed on that worker; 64 cheap stages ran at 0.6 M hops/s per core
/// with 256 workers each started at once.) Equal neighbours started this way fuse at the
/// start like any others (see [`fuse_at_the_start`]).
fn start_fixed_within_the_budget(resolved: &mut [Resolved], plan: &[StagePlan], budget: usize) {
    let budget = budget.max(1);
    for (r, p) in resolved.iter_mut().zip(plan) {
        if r.auto.is_none() && !p.asynchronous && r.workers > budget {
            r.start = 1;
        }
    }
}

/// Fuses each run of two or more adjacent fixed stages with equal worker counts and without
/// per-worker state (a split would start their workers afresh), when no ordered stage comes
/// after them: the run starts as one segment (a thread per worker rather than per stage and
/// worker, and no hand-off between its stages). Once its workers are all busy through a
/// tick, the controller doubles them if the run started lazily below its count, and
/// otherwise splits it into its stages if its parts are costly enough (see
/// [`crate::autoscale`]); a cheap run at its count stays as it is. Each stage still runs at
/// most its count of calls at once, fused or split.
///
/// Cheap stages hand items on faster than threads can: W1 as a user writes it with
/// `.capacity(1024)` and one worker per stage ran at 42 M items/s on five threads on two
/// cores, 180 M fused (`BENCHMARKS.md`); costly ones split and run in parallel as before.
fn fuse_at_the_start(resolved: &mut [Resolved], plan: &[StagePlan]) {
    // Stages before an ordered stage keep their batches whole and numbered: only those
    // after the last ordered stage re-batch freely.
    let after_ordered = plan.iter().rposition(|p| p.ordered).map_or(0, |i| i + 1);
    let fusable = |r: &Resolved, p: &StagePlan| {
        r.auto.is_none() && !p.asynchronous && !p.per_worker_state && !r.fused
    };
    let mut head = after_ordered;
    while head < plan.len() {
        let mut end = head + 1;
        if fusable(&resolved[head], &plan[head]) {
            while end < plan.len()
                && fusable(&resolved[end], &plan[end])
                && resolved[end].workers == resolved[head].workers
            {
                end += 1;
            }
        }
        if end - head >= 2 {
            for (i, r) in resolved[head..end].iter_mut().enumerate() {
                r.splits = true;
                if i > 0 {
                    r.fused = true;
                    r.standby_queue = r.queue;
                    r.queue = 0;
                }
            }
        }
        head = end;
    }
}

/// The pieces of a [`Stage`] the launch needs, apart from its settings and hook.
pub(crate) fn stage_parts<T, U>(
    stage: Stage<T, U>,
) -> (StagePlan, Option<Hook>, Option<DeadLetterFn<T>>, Body<T, U>) {
    let plan = StagePlan {
        asynchronous: !matches!(stage.body, Body::Sync(_)),
        name: stage.name,
        workers: stage.workers,
        capacity: stage.capacity,
        batch: stage.batch,
        ordered: stage.ordered,
        policy: stage.policy,
        concurrency: stage.concurrency,
        timeout: stage.timeout,
        auto: stage.auto,
        per_worker_state: stage.per_worker_state,
    };
    (plan, stage.hook, stage.dead_letter, stage.body)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
