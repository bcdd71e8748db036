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

/// Pipeline-wide defaults and limits.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) workers: usize,
    pub(crate) capacity: usize,
    pub(crate) batch: usize,
    /// Whether `batch` was set by the user (`default_batch`), rather than the default.
    pub(crate) batch_set: bool,
    pub(crate) policy: ErrorPolicy,
    pub(crate) reorder_window: Option<usize>,
    pub(crate) max_in_flight: usize,
    /// Fuse adjacent fixed stages with equal worker counts.
    pub(crate) fuse: bool,
    /// Fuse adjacent autoscaled stages with equal bounds (on by default).
    pub(crate) fuse_auto: bool,
    /// Every stage without a worker count of its own is autoscaled.
    pub(crate) autoscale: bool,
    /// Workers that may be busy at once (default: the cores).
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
            workers: 1,
            capacity: 4096,
            batch: 256,
            batch_set: false,
            policy: ErrorPolicy::Skip,
            reorder_window: None,
            max_in_flight: 1 << 16,
            fuse: false,
            fuse_auto: true,
            autoscale: false,
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
}

/// One stage's settings, defaults applied.
pub(crate) struct Resolved {
    /// Runs on the previous stage's workers (no connector of its own).
    pub(crate) fused: bool,
    /// Autoscaled between these bounds.
    pub(crate) auto: Option<(usize, usize)>,
    pub(crate) workers: usize,
    pub(crate) batch: usize,
    /// Input capacity in items, as asked (a fused stage has no queue of its own).
    pub(crate) capacity: usize,
    pub(crate) queue: usize,
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
    let budget = settings.cpu_budget.unwrap_or_else(cores);
    let mut resolved: Vec<Resolved> = Vec::with_capacity(plan.len());
    for p in plan {
        let capacity = p.capacity.unwrap_or(settings.capacity);
        let batch = batch_for(p.batch, settings, capacity);
        let auto = match p.auto {
            _ if p.asynchronous => None,
            Some((min, max)) => Some((min.max(1), if max == 0 { budget } else { max })),
            None if settings.autoscale && p.workers.is_none() => Some((1, budget)),
            None => None,
        }
        .map(|(min, max)| (min, max.max(min)));
        let workers = match auto {
            Some((min, _)) => min,
            None => p.workers.unwrap_or(settings.workers),
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
                    && (batch, capacity) == (prev.batch, prev.capacity)
            }
            _ => false,
        });
        // An async stage runs on one driver (and two pump) threads.
        let workers = if p.asynchronous { 1 } else { workers };
        resolved.push(Resolved {
            fused,
            auto,
            workers,
            batch,
            capacity,
            queue: if fused { 0 } else { batches(capacity, batch) },
            ordered: p.ordered,
            policy: p.policy.unwrap_or(settings.policy),
        });
    }
    let segments = segments(&resolved);
    start_autoscaled_at_an_even_share(&mut resolved, &segments, plan, budget);
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

pub(super) fn batches(items: usize, batch: usize) -> usize {
    items.div_ceil(batch).max(1)
}

/// The batch size of a connector holding `capacity` items: the one the user set (for the
/// stage, else for the pipeline), else the default cut down to a quarter of the capacity.
/// Capacity is counted in items and the queue holds whole batches, so without the cut a
/// small capacity would silently round up to one default batch (`.capacity(8)` of 1 MiB
/// items would hold 256 MiB, not 8): with it a queue holds at least four batches and
/// overshoots the capacity by less than one.
pub(super) fn batch_for(explicit: Option<usize>, settings: &Settings, capacity: usize) -> usize {
    match explicit {
        Some(batch) => batch,
        None if settings.batch_set => settings.batch,
        None => settings.batch.min((capacity / 4).max(1)),
    }
}

/// The stages of each segment: a stage starts a new one unless it is fused with the one
/// before.
fn segments(resolved: &[Resolved]) -> Vec<Range<usize>> {
    let mut segments: Vec<Range<usize>> = Vec::new();
    for (i, r) in resolved.iter().enumerate() {
        match segments.last_mut() {
            Some(last) if r.fused => last.end = i + 1,
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
            }
        }
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
        let apart = resolve(&settings(4), &plan);
        assert_eq!(layout(&apart).0, [0..1, 1..2, 2..3]);
        let fused = resolve(
            &Settings {
                fuse: true,
                ..settings(4)
            },
            &plan,
        );
        assert_eq!(layout(&fused), (vec![0..2, 2..3], vec![2, 2, 3]));
        assert_eq!(fused.resolved[1].queue, 0, "a fused stage has no connector");
    }

    #[test]
    fn auto_stages_with_equal_bounds_fuse_by_default_and_share_the_budget() {
        let auto = Settings {
            autoscale: true,
            ..settings(6)
        };
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
        let auto = Settings {
            autoscale: true,
            ..settings(2)
        };
        let mut batched = stage(None, None);
        batched.batch = Some(16);
        let mut buffered = stage(None, None);
        buffered.capacity = Some(64);
        let mut same = stage(None, None);
        same.batch = Some(auto.batch);
        let plan = [stage(None, None), same, buffered, batched];
        let r = resolve(&auto, &plan);
        // Setting the default explicitly changes nothing; a different one breaks the run.
        assert_eq!(r.segments, [0..2, 2..3, 3..4]);
        // 64 items with no batch size set: batches of 16 (a quarter), four of them.
        assert_eq!((r.resolved[2].batch, r.resolved[2].queue), (16, 4));
    }

    #[test]
    fn the_default_batch_is_cut_to_a_quarter_of_a_small_capacity_unless_set() {
        let defaults = settings(2);
        assert_eq!(batch_for(None, &defaults, 4096), 256);
        assert_eq!(batch_for(None, &defaults, 1024), 256);
        assert_eq!(batch_for(None, &defaults, 100), 25);
        assert_eq!(batch_for(None, &defaults, 2), 1);
        assert_eq!(
            batch_for(Some(64), &defaults, 8),
            64,
            "a stage's own batch pins it"
        );
        let set = Settings {
            batch_set: true,
            ..defaults
        };
        assert_eq!(
            batch_for(None, &set, 8),
            256,
            "so does the pipeline's, when set"
        );
    }

    #[test]
    fn ordered_async_fixed_and_bounded_stages_break_an_auto_run() {
        let auto = Settings {
            autoscale: true,
            ..settings(8)
        };
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
