//! The report of a run: per-stage accounting, totals, latency, and the bottleneck named.
//!
//! # Accounting
//!
//! Every item a stage receives ends there in exactly one way: passed on, filtered, failed,
//! or cancelled. A flat-map that turns an item into n ≥ 2 children passes on n items with
//! ids of their own (`#25.1` … `#25.n`): n − 1 more than it received, counted as
//! `expanded`. So for every stage `items_in + expanded = items_out + filtered + failed +
//! cancelled`, and the whole pipeline balances:
//! `source items + expanded = delivered + filtered + failed + cancelled`
//! ([`Report::is_balanced`]).
//!
//! # The bottleneck
//!
//! Each worker's time splits into busy, idle (waiting for input) and blocked (waiting for
//! room downstream). The segment whose workers are busiest is the one holding the pipeline
//! back; its input queue runs full and its output queue empty. A segment is one stage, or a
//! run of fused stages judged as one (named `a+b+c`, their busy shares summed, since they
//! share workers). When no stage is busy for
//! more than half the run and the first stage mostly waits, the source is the bottleneck.
//! When the run's worker threads outnumber the cores and no part is saturated, the report
//! says so rather than calling the busiest part saturated: its busy time includes time spent
//! waiting for a core.
//!
//! # As text
//!
//! A report's [`Display`](std::fmt::Display) shows the totals, a row per stage (a stage fused with
//! the one before shows `fused` in the queue column, and has no capacity of its own),
//! latencies to three significant digits (`8.59 s`), the bottleneck, the autoscaler's
//! decisions, and the first 10 errors followed by how many more there were.

use std::time::Duration;

use crate::autoscale::policy::Decision;
use crate::autoscale::wedge::Wedge;
use crate::error::ItemError;
use crate::item::ItemId;
use crate::ledger::{Ledger, ScalingLog};

use crate::sync::lock;
use crate::timeline::Timeline;

mod bottleneck;
mod stage;
mod text;

use bottleneck::{find_bottleneck, segments_of};
pub use bottleneck::{Bottleneck, BottleneckKind, BottleneckReason};

pub use stage::StageReport;

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndState {
    /// Still running (a live snapshot).
    Running,
    /// The source ran out and everything drained (a stop or cancel asked for after the
    /// input ran out, or after the end, changes nothing).
    Completed,
    /// A graceful stop cut the input short; everything accepted drained.
    Stopped,
    /// The run was cancelled; unfinished items are listed by id.
    Cancelled,
    /// An item failed under the stop policy, or the source or sink panicked.
    Failed,
}

/// Latency from entering the pipeline to reaching the sink, sampled per batch (each
/// batch's oldest item), weighted by items.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest seen.
    pub max: Duration,
    /// Items the samples cover.
    pub samples: u64,
    /// Sum of the sampled latencies, each weighted by its batch's items.
    pub sum: Duration,
    /// The histogram's buckets that hold samples: each one's upper bound (exclusive) and
    /// how many items fell in it, in increasing order. Buckets are a quarter-octave wide.
    pub buckets: Vec<(Duration, u64)>,
}

/// What a run did: counts, time, latency, errors and the bottleneck.
#[derive(Clone, Debug)]
pub struct Report {
    end: EndState,
    wall: Duration,
    source: StageReport,
    stages: Vec<StageReport>,
    sink: StageReport,
    latency: Latency,
    errors: Vec<ItemError>,
    errors_total: u64,
    errors_by_kind: Vec<(String, &'static str, u64)>,
    unfinished: Vec<ItemId>,
    hook_panics: Vec<String>,
    bottleneck: Option<Bottleneck>,
    scaling: ScalingLog,
    timeline: Timeline,
}

/// Worker-seconds of stage `stage` over a run of `wall`, from the autoscaler's history of
/// worker counts (each count holds until the next entry; the first from the start). `None`
/// without a history.
fn worker_seconds(history: &[(Duration, Vec<usize>)], stage: usize, wall: Duration) -> Option<f64> {
    let first = history.first()?;
    let mut total = first.0.as_secs_f64() * *first.1.get(stage)? as f64;
    for (k, (at, counts)) in history.iter().enumerate() {
        let until = history.get(k + 1).map_or(wall, |next| next.0).max(*at);
        total += (until - *at).as_secs_f64() * *counts.get(stage)? as f64;
    }
    Some(total)
}

impl Report {
    /// The report of a run from its ledger, `wall` after it started.
    pub(crate) fn build(ledger: &Ledger, wall: Duration, end: EndState) -> Report {
        let scaling = lock(&ledger.scaling).clone();
        let source = StageReport::new(&ledger.source, wall, None, None);
        let mut stages: Vec<StageReport> = ledger
            .stages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let worker_seconds = worker_seconds(&scaling.history, i, wall);
                StageReport::new(m, wall, worker_seconds, Some(wall))
            })
            .collect();
        // A stage that hears back from later ones: its relay thread's share.
        for relay in lock(&ledger.relays).iter() {
            if let Some(stage) = stages.iter_mut().find(|s| *s.name == *relay.stage) {
                let share = if wall.is_zero() {
                    0.0
                } else {
                    (relay.busy_time().as_secs_f64() / wall.as_secs_f64()).min(1.0)
                };
                stage.response_busy = Some(share);
            }
        }
        let sink = StageReport::new(&ledger.sink, wall, None, None);
        let latency = {
            let h = lock(&ledger.latency);
            Latency {
                p50: h.quantile(0.5),
                p90: h.quantile(0.9),
                p99: h.quantile(0.99),
                max: h.max(),
                samples: h.count(),
                sum: h.sum(),
                buckets: h.buckets(),
            }
        };
        let (errors, errors_total, errors_by_kind) = {
            let log = lock(&ledger.errors);
            let by_kind = log
                .by_kind
                .iter()
                .map(|(stage, kind, n)| (stage.to_string(), *kind, *n))
                .collect();
            (log.sample.clone(), log.total, by_kind)
        };
        let mut unfinished = lock(&ledger.unfinished).clone();
        unfinished.sort_unstable();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let bottleneck = find_bottleneck(&source, &stages, &segments_of(&stages), &sink, cores);
        let mut timeline = lock(&ledger.timeline).clone();
        if !timeline.interval().is_zero() {
            timeline.close(wall, ledger.parts());
        }
        Report {
            timeline,
            end,
            wall,
            source,
            stages,
            sink,
            latency,
            errors,
            errors_total,
            errors_by_kind,
            unfinished,
            hook_panics: lock(&ledger.hook_panics).clone(),
            bottleneck,
            scaling,
        }
    }

    /// How the run ended.
    pub fn end(&self) -> EndState {
        self.end
    }

    /// Wall time from start to the report.
    pub fn wall(&self) -> Duration {
        self.wall
    }

    /// The stages, in pipeline order.
    pub fn stages(&self) -> &[StageReport] {
        &self.stages
    }

    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The source's part (its `blocked` share is time waiting for room or a window).
    pub fn source(&self) -> &StageReport {
        &self.source
    }

    /// The sink's part.
    pub fn sink(&self) -> &StageReport {
        &self.sink
    }

    /// Items the source admitted.
    pub fn items_in(&self) -> u64 {
        self.source.tally.items_in
    }

    /// Items that reached the sink (taken by the caller, for [`Outputs`](crate::Outputs)).
    pub fn delivered(&self) -> u64 {
        self.sink.tally.items_out
    }

    /// Items filtered out, over all stages.
    pub fn filtered(&self) -> u64 {
        self.stages.iter().map(|s| s.tally.filtered).sum()
    }

    /// Items that failed, over all stages and the sink.
    pub fn failed(&self) -> u64 {
        self.stages.iter().map(|s| s.tally.failed).sum::<u64>() + self.sink.tally.failed
    }

    /// Items dropped unfinished by a cancel, anywhere.
    pub fn cancelled(&self) -> u64 {
        self.source.tally.cancelled
            + self.stages.iter().map(|s| s.tally.cancelled).sum::<u64>()
            + self.sink.tally.cancelled
    }

    /// Items flat-maps made beyond those they received, over all stages (an item turned
    /// into n ≥ 2 children adds n − 1).
    pub fn expanded(&self) -> u64 {
        self.stages.iter().map(|s| s.tally.expanded).sum()
    }

    /// Whether every item is accounted for exactly once: each admitted item, and each child
    /// a flat-map made, delivered, filtered, failed or cancelled
    /// (`items_in + expanded = delivered + filtered + failed + cancelled`). Holds for every
    /// finished run, except one a wedge failed while a worker stayed stuck in the stage's
    /// code ([`Wedge::detached`](crate::Wedge::detached) names it): the items in that
    /// worker's hands are in none of the counts.
    pub fn is_balanced(&self) -> bool {
        self.items_in() + self.expanded()
            == self.delivered() + self.filtered() + self.failed() + self.cancelled()
    }

    /// Items delivered per second of wall time.
    pub fn throughput(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.delivered() as f64 / secs
        } else {
            0.0
        }
    }

    /// Sampled latency from admission to the sink.
    pub fn latency(&self) -> &Latency {
        &self.latency
    }

    /// The first 100 item errors in full; the rest are only counted
    /// ([`errors_total`](Report::errors_total)).
    ///
    /// They are in the order they were recorded, which is close to but not exactly the order
    /// they happened: a sync stage records a failure when the item's last try fails, an async
    /// stage when the item's whole batch is done, and workers running side by side record in
    /// whichever order they reach the log. So the 100 kept are not necessarily the 100
    /// lowest ids, and not a sample of every stage.
    ///
    /// For an exact account of every failure, hand each failed item to a
    /// [`dead_letter`](crate::Stage::dead_letter) handler (it gets the item and its error), or
    /// read the response path: [`Stage::on_response`](crate::Stage::on_response) or
    /// [`PipelineBuilder::respond`](crate::PipelineBuilder::respond) report every item's
    /// outcome, failures included.
    pub fn errors(&self) -> &[ItemError] {
        &self.errors
    }

    /// How many item errors there were in all.
    pub fn errors_total(&self) -> u64 {
        self.errors_total
    }

    /// How many item errors of each kind each stage had, counting every error (not only
    /// the ones kept in full): (stage, [kind](ItemError::kind_name), count), in order of
    /// each pair's first error.
    pub fn errors_by_kind(&self) -> &[(String, &'static str, u64)] {
        &self.errors_by_kind
    }

    /// Ids of items a cancel dropped before they finished, sorted.
    pub fn unfinished(&self) -> &[ItemId] {
        &self.unfinished
    }

    /// Panics caught in response hooks and dead-letter handlers.
    pub fn hook_panics(&self) -> &[String] {
        &self.hook_panics
    }

    /// The autoscaler's decisions, each with the time since the start it was taken.
    pub fn decisions(&self) -> impl Iterator<Item = (Duration, &Decision)> {
        self.scaling.decisions.iter().map(|(at, d)| (*at, d))
    }

    /// The worker count of every stage over time: one entry at the start and one after
    /// each round of decisions, with the time since the start.
    pub fn worker_history(&self) -> &[(Duration, Vec<usize>)] {
        &self.scaling.history
    }

    /// Wedges the detector found: when, and what every stage's workers were doing.
    pub fn wedges(&self) -> &[(Duration, Wedge)] {
        &self.scaling.wedges
    }

    /// Time the controller spent measuring and deciding.
    pub fn controller_busy(&self) -> Duration {
        self.scaling.controller_busy
    }

    /// Every part's counters sampled over the run, ending with one sample at the time of
    /// the report (see [`crate::timeline`]); empty when sampling was turned off
    /// ([`PipelineBuilder::timeline`](crate::PipelineBuilder::timeline)).
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// The stage holding the pipeline back, if the run did enough to tell.
    pub fn bottleneck(&self) -> Option<&Bottleneck> {
        self.bottleneck.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_autoscaled_stages_worker_time_follows_its_history() {
        let s = Duration::from_secs;
        // 1 worker for 2 s, then 3 until the end at 5 s: 2 + 9 = 11 worker-seconds.
        let history = vec![(s(0), vec![1, 2]), (s(2), vec![3, 2])];
        assert_eq!(worker_seconds(&history, 0, s(5)), Some(11.0));
        assert_eq!(worker_seconds(&history, 1, s(5)), Some(10.0));
        assert_eq!(worker_seconds(&[], 0, s(5)), None);
    }
}
