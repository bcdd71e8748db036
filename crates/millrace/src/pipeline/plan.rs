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
            queue: if fused { 0 } else { batches(capacity, batch) },
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

pub(super) fn batches(items: usize, batch: usize) -> usize {
    items.div_ceil(batch).max(1)
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
mod tests {
    use super::*;

    fn stage(workers: Option<usize>, auto: Option<(usize, usize)>) -> StagePlan {
        StagePlan {
            name: Arc::from("s"),
            workers,
            capacity: None,
            batch: None,
            ordered: false,
            policy: None,
            asynchronous: false,
            concurrency: None,
            timeout: None,
            auto,
            per_worker_state: false,
        }
    }

    fn settings(budget: usize) -> Settings {
        Settings {
            cpu_budget: Some(budget),
            ..Settings::default()
        }
    }

    fn layout(r: &Resolution) -> (Vec<Range<usize>>, Vec<usize>) {
        let workers = r.resolved.iter().map(|r| r.workers).collect();
        (r.segments.clone(), workers)
    }

    #[test]
    fn fixed_stages_fuse_only_when_asked_and_only_with_equal_counts() {
        let plan = [
            stage(Some(2), None),
            stage(Some(2), None),
            stage(Some(3), None),
        ];
        let apart = resolve(
            &Settings {
                adaptive_fusion: false,
                ..settings(4)
            },
            &plan,
        );
        assert_eq!(layout(&apart).0, [0..1, 1..2, 2..3]);
        assert!(apart.resolved.iter().all(|r| r.auto.is_none()));
        let fused = resolve(
            &Settings {
                fuse: true,
                ..settings(4)
            },
            &plan,
        );
        assert_eq!(layout(&fused), (vec![0..2, 2..3], vec![2, 2, 3]));
        assert_eq!(fused.resolved[1].queue, 0, "a fused stage has no connector");
        assert!(
            fused.resolved.iter().all(|r| !r.splits),
            "fused for good under fuse()"
        );
    }

    #[test]
    fn equal_fixed_stages_start_fused_and_may_split_unless_ordered_after() {
        let plan = [
            stage(Some(2), None),
            stage(Some(2), None),
            stage(Some(2), None),
            stage(Some(3), None),
            stage(None, None),
            stage(Some(1), None),
            stage(Some(1), None),
        ];
        let r = resolve(&settings(4), &plan);
        assert_eq!(
            layout(&r).0,
            [0..3, 3..4, 4..5, 5..7],
            "equal neighbours fuse; a lone count, an auto stage, stand alone"
        );
        let splits: Vec<bool> = r.resolved.iter().map(|r| r.splits).collect();
        assert_eq!(splits, [true, true, true, false, false, true, true]);
        // Once split, each stage after a run's first reads a queue of its own.
        assert_eq!(r.resolved[1].queue, 0);
        assert!(r.resolved[1].standby_queue > 0);
        assert_eq!(r.resolved[0].standby_queue, 0);

        // Before an ordered stage, batches stay whole: nothing there fuses at the start.
        let mut ordered = plan.clone();
        ordered[5].ordered = true;
        let r = resolve(&settings(4), &ordered);
        assert!(r.resolved.iter().all(|r| !r.splits));
        assert_eq!(r.segments.len(), 7);

        // A stage with per-worker state keeps its workers for the whole run: it stands alone.
        let mut stateful = plan.clone();
        stateful[1].per_worker_state = true;
        let r = resolve(&settings(4), &stateful);
        assert_eq!(layout(&r).0, [0..1, 1..2, 2..3, 3..4, 4..5, 5..7]);

        // Stages started lazily (more workers than the budget, one at first) fuse like any
        // others: the run starts on one worker.
        let r = resolve(&settings(1), &plan);
        assert_eq!(
            r.resolved.iter().map(|r| r.splits).collect::<Vec<_>>(),
            [true, true, true, false, false, true, true]
        );
        assert_eq!(layout(&r).0, [0..3, 3..4, 4..5, 5..7]);
        assert!(r.resolved[..3]
            .iter()
            .all(|r| (r.workers, r.start) == (2, 1)));
    }

    #[test]
    fn the_default_budget_spares_a_core_only_on_machines_of_eight_or_more() {
        assert_eq!(
            [1, 2, 4, 7, 8, 16, 64].map(default_budget),
            [1, 2, 4, 7, 7, 15, 63]
        );
    }

    #[test]
    fn fixed_stages_start_within_the_budget_unless_lazy_workers_are_off() {
        let mut waits = stage(Some(8), None);
        waits.asynchronous = true;
        let plan = [
            stage(Some(8), None),
            stage(Some(2), None),
            stage(None, Some((1, 16))),
            waits,
        ];
        let starts = |settings: &Settings| -> Vec<(usize, usize)> {
            let r = resolve(settings, &plan);
            r.resolved.iter().map(|r| (r.workers, r.start)).collect()
        };
        // 8 fixed workers on a budget of 3 start at 1; 2 start at once; the auto stage
        // starts at its share (clamped to its min of 1); the async stage runs on one driver.
        assert_eq!(starts(&settings(3)), [(8, 1), (2, 2), (1, 1), (1, 1)]);
        let eager = Settings {
            lazy_workers: false,
            ..settings(3)
        };
        assert_eq!(starts(&eager), [(8, 8), (2, 2), (1, 1), (1, 1)]);
        // At the budget, a stage starts all its workers at once.
        let r = resolve(&settings(4), &[stage(Some(4), None)]);
        assert_eq!((r.resolved[0].workers, r.resolved[0].start), (4, 4));
    }

    #[test]
    fn stages_without_a_worker_count_are_autoscaled_fused_and_share_the_budget() {
        let auto = settings(6);
        let plan = [stage(None, None), stage(None, None), stage(None, None)];
        let fused = resolve(&auto, &plan);
        assert_eq!(fused.segments, [Range { start: 0, end: 3 }]);
        assert_eq!(layout(&fused).1, [6, 6, 6]);
        let apart = Settings {
            fuse_auto: false,
            ..auto.clone()
        };
        assert_eq!(
            layout(&resolve(&apart, &plan)),
            (vec![0..1, 1..2, 2..3], vec![2, 2, 2])
        );
    }

    #[test]
    fn an_auto_stage_with_a_batch_or_capacity_of_its_own_keeps_its_connector() {
        let auto = settings(2);
        let mut batched = stage(None, None);
        batched.batch = Some(16);
        let mut buffered = stage(None, None);
        buffered.capacity = Some(64);
        let mut same = stage(None, None);
        same.capacity = Some(auto.capacity);
        let plan = [stage(None, None), same, buffered, batched];
        let r = resolve(&auto, &plan);
        // Setting the default explicitly changes nothing; a different one breaks the run.
        assert_eq!(r.segments, [0..2, 2..3, 3..4]);
        // 64 items with no batch size set: adaptive batches of at most 16, four of them.
        let buffered = &r.resolved[2];
        assert_eq!(
            (buffered.batch, buffered.adaptive, buffered.queue),
            (16, true, 4)
        );
        let batched = &r.resolved[3];
        assert!(!batched.adaptive, "a batch size set pins it");
    }

    #[test]
    fn an_unset_batch_adapts_within_the_capacity_in_items_and_a_set_one_is_pinned() {
        let defaults = settings(2);
        assert_eq!(batch_for(None, &defaults, 16_384), (4096, true));
        assert_eq!(batch_for(None, &defaults, 1024), (256, true));
        assert_eq!(batch_for(None, &defaults, 2), (1, true));
        // Two slots of one item: the queue holds the 2 items asked for, not a batch more.
        assert_eq!(batches(2, batch_for(None, &defaults, 2).0), 2);
        assert_eq!(
            batch_for(Some(64), &defaults, 8),
            (64, false),
            "a stage's own batch pins it"
        );
        let set = Settings {
            batch: Some(256),
            ..defaults
        };
        assert_eq!(
            batch_for(None, &set, 8),
            (256, false),
            "so does the pipeline's, when set"
        );
    }

    #[test]
    fn an_async_stage_takes_batches_of_at_most_a_quarter_of_its_concurrency() {
        let mut waits = stage(None, None);
        waits.asynchronous = true;
        waits.concurrency = Some(1000);
        let mut pinned = waits.clone();
        pinned.batch = Some(4096);
        let mut default = stage(None, None);
        default.asynchronous = true;
        let r = resolve(&settings(2), &[waits, pinned, default]);
        let sizes: Vec<_> = r.resolved.iter().map(|r| (r.batch, r.adaptive)).collect();
        assert_eq!(
            sizes,
            [(250, true), (4096, false), (DEFAULT_CONCURRENCY / 4, true)]
        );
        // The capacity still holds in items: more slots of smaller batches.
        assert_eq!(r.resolved[0].queue, DEFAULT_CAPACITY.div_ceil(250));
    }

    #[test]
    fn ordered_async_fixed_and_bounded_stages_break_an_auto_run() {
        let auto = settings(8);
        let mut ordered = stage(None, None);
        ordered.ordered = true;
        let mut asynchronous = stage(None, None);
        asynchronous.asynchronous = true;
        let plan = [
            stage(None, None),
            ordered,              // joins the first, ends the run
            stage(None, None),    // a new segment
            asynchronous,         // never fused, never autoscaled
            stage(None, None),    // a new segment
            stage(Some(2), None), // fixed: 2 of the budget
            stage(None, Some((1, 1))),
        ];
        let r = resolve(&auto, &plan);
        assert_eq!(r.segments, [0..2, 2..3, 3..4, 4..5, 5..6, 6..7]);
        // Budget 8 less the fixed stage's 2, over four auto segments: 1 each (6 / 4),
        // the last capped at its max of 1; the async stage runs on one driver.
        assert_eq!(layout(&r).1, [1, 1, 1, 1, 1, 2, 1]);
        let r = resolve(
            &Settings {
                cpu_budget: Some(18),
                ..auto
            },
            &plan,
        );
        assert_eq!(layout(&r).1, [4, 4, 4, 1, 4, 2, 1]);
    }
}
