//! What the controller does for fixed stages it still sizes: a segment started with fewer
//! workers than its count grows while all of them are busy, and a run of stages fused at the
//! start splits into a segment per stage once its workers are all busy and its parts are
//! worth a thread each (see "Fixed stages with more workers than cores" in the module above).

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{Activity, StageMetrics, Tally};

use super::policy::{Decision, DecisionReason};
use super::{recorded_then, segment_name, Controller};

/// The least time the parts of a fused run (each stage, and the source fused with it) must
/// spend on a batch, on average, for the run to split: split, every batch crosses a connector between
/// parts, and a hand-off where one side waits (a wake-up) costs 1–5 µs on the VMs we
/// measure on. W1 written with `.capacity(1024)` and one worker per stage (256-item batches,
/// well under a microsecond per stage) split on 16 cores and ran at 92 M items/s, against
/// 108 M unfused and more fused (`BENCHMARKS.md`).
const SPLIT_WORTH: Duration = Duration::from_micros(5);

/// The least time the parts of a fused run must spend on an item, on average, for the run
/// to split, so
/// that large batches of cheap items stay fused too: split, every item also moves between
/// cores once per part, and a nanosecond stage gains nothing from a core of its own. Ten
/// W6-shaped hops (under a nanosecond each) ran at 1.5 G hops/s per core fused on one
/// thread, 0.3–0.9 G split (the scale sweep in `BENCHMARKS.md`); W2's 1 µs stages still
/// split.
const SPLIT_WORTH_PER_ITEM: Duration = Duration::from_nanos(50);

/// Whether `busy` time over `batches` and `items` is, on average, at least [`SPLIT_WORTH`] a
/// batch and [`SPLIT_WORTH_PER_ITEM`] an item: work that gains from a thread of its own
/// rather than costing about as much to hand over. Decides a fused run's split and when a
/// sink consumed on the worker in front of it gets its thread back.
pub(crate) fn worth_a_thread(busy: Duration, batches: u64, items: u64) -> bool {
    let worth = |count: u64, least: Duration| {
        count > 0 && busy.as_nanos() / u128::from(count) >= least.as_nanos()
    };
    worth(batches, SPLIT_WORTH) && worth(items, SPLIT_WORTH_PER_ITEM)
}

/// The least share of a lazily started segment's worker time spent busy over a tick for
/// it to grow (and of a fused run's, for it to split).
const SATURATED: f64 = 0.9;

impl Controller {
    /// Doubles the workers of each lazily started segment whose workers were busy through
    /// the last tick and none of which waits now (for input or for room), up to its count.
    /// Busy means running (or blocked) in the stages' code: the time the workers waited for
    /// a core is taken off (see [`crate::runqueue`]), so a cheap stage whose workers already
    /// take every core it can get does not start more that would only wait for one.
    pub(super) fn grow_lazy(&mut self, now: &[Tally]) {
        let stages = &self.control.ledger.stages;
        let mut decisions = Vec::new();
        for lazy in &self.lazies {
            let segment = lazy.stages.clone();
            let metrics = &stages[segment.clone()];
            let workers = metrics[0].workers();
            if workers >= lazy.count {
                continue; // (it never grows again: its waits need no more reads)
            }
            let preempted = waited_for_a_core(&mut self.growth_waits, metrics);
            let busy_share = busy_share(
                &now[segment.clone()],
                &self.busy_last[segment.clone()],
                preempted,
            );
            if busy_share < SATURATED || waiting(metrics) > 0 {
                continue;
            }
            let to = (workers * 2).min(lazy.count);
            if !recorded_then(metrics, to, || lazy.scaler.grow_to(to)) {
                continue;
            }
            decisions.push(Decision {
                stage: segment.start,
                name: segment_name(metrics),
                from: workers,
                to,
                reason: DecisionReason::AllBusy {
                    stage: segment_name(metrics),
                    count: lazy.count,
                    busy_share,
                },
            });
        }
        self.record(decisions);
    }

    /// Splits each run of stages fused at the start whose workers were busy through the last
    /// tick, none of which waits now (for input or for room), and whose parts spent on
    /// average at least [`SPLIT_WORTH`] on a batch and [`SPLIT_WORTH_PER_ITEM`] on an item
    /// (less the time the run's workers waited for a core, see [`crate::runqueue`]):
    /// its stages then run at once, on workers of their own, rather than in turn on the same
    /// ones. (`source`: the source's counters now.)
    pub(super) fn split_busy(&mut self, now: &[Tally], source: &Tally) {
        let stages = &self.control.ledger.stages;
        let (busy_last, source_last) = (&self.busy_last, &self.source_last);
        let waits = &mut self.waits;
        let lazies = &self.lazies;
        let mut decisions = Vec::new();
        self.splits.retain(|run| {
            let segment = run.stages.clone();
            let metrics = &stages[segment.clone()];
            // The run's parts: its stages, and the source if it is cut on the run's workers.
            let mut parts_now = now[segment.clone()].to_vec();
            let mut parts_before = busy_last[segment.clone()].to_vec();
            if run.with_source {
                parts_now.push(source.clone());
                parts_before.push(source_last.clone());
            }
            // Time the run's workers spent waiting for a core is not the parts' work: on a
            // machine whose cores are all taken, a preempted batch is timed long. (Read at
            // every look, so that each wait counts against the tick it fell in.)
            let preempted = waited_for_a_core(waits, metrics);
            let busy_share = busy_share(&parts_now, &parts_before, Duration::ZERO);
            if busy_share < SATURATED || waiting(metrics) > 0 {
                return true;
            }
            // A run that started lazily below its count grows first: a stage whose calls
            // wait for one another gets them all at once, and a worker blocked in a stage
            // would never hand over. (At its count, a worker that leaves at the split hands
            // its slot to the stages' own workers, who meet the calls still waiting.)
            if lazies
                .iter()
                .any(|lazy| lazy.stages == segment && metrics[0].workers() < lazy.count)
            {
                return true;
            }
            let (first_now, first_before) = (&now[segment.start], &busy_last[segment.start]);
            let batches = first_now.batches.saturating_sub(first_before.batches);
            let items = first_now.items_in.saturating_sub(first_before.items_in);
            let busy: Duration = (parts_now.iter().zip(&parts_before))
                .map(|(now, before)| now.busy.saturating_sub(before.busy))
                .sum::<Duration>()
                .saturating_sub(preempted);
            let per_part = busy / u32::try_from(parts_now.len()).unwrap_or(u32::MAX);
            if !worth_a_thread(per_part, batches, items) {
                return true;
            }
            if run.scaler.split() {
                let workers = metrics[0].workers();
                decisions.push(Decision {
                    stage: segment.start,
                    name: segment_name(metrics),
                    from: workers,
                    to: workers,
                    reason: DecisionReason::Split {
                        stages: segment_name(metrics),
                        busy_share,
                    },
                });
            }
            false
        });
        self.record(decisions);
    }
}

/// How long the workers of the segment whose stages are `metrics` waited for a core since
/// `waits` last looked at them (their thread ids are kept in the last stage's slots, see
/// `segment::worker::run_worker`).
fn waited_for_a_core(
    waits: &mut crate::runqueue::Waits,
    metrics: &[Arc<StageMetrics>],
) -> Duration {
    let tids = metrics[metrics.len() - 1]
        .slots()
        .map(|slot| slot.thread_id.load(std::sync::atomic::Ordering::Relaxed))
        .filter(|&tid| tid != 0);
    waits.since_last(tids)
}

/// The share of a segment's worker time spent busy between two tallies (0 when nothing
/// was measured).
fn busy_share(now: &[Tally], before: &[Tally], less: Duration) -> f64 {
    let delta = |time: fn(&Tally) -> Duration| -> f64 {
        now.iter()
            .zip(before)
            .map(|(now, before)| time(now).saturating_sub(time(before)))
            .sum::<Duration>()
            .as_secs_f64()
    };
    let busy = delta(|t| t.busy);
    let total = busy + delta(|t| t.idle) + delta(|t| t.blocked);
    let busy = (busy - less.as_secs_f64()).max(0.0);
    if total > 0.0 {
        busy / total
    } else {
        0.0
    }
}

/// How many of a segment's workers wait now, for input or for room downstream. (One that is
/// between two batches, or ready to run but without a core, does not count: on a busy
/// machine the workers of a stage that blocks in its code are often there.)
fn waiting(metrics: &[Arc<StageMetrics>]) -> usize {
    metrics
        .iter()
        .map(|m| {
            m.slots()
                .filter(|slot| matches!(slot.activity().0, Activity::Idle | Activity::Blocked))
                .count()
        })
        .sum()
}
