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

use crate::autoscale::{Decision, ScalingLog};
use crate::control::{Control, EndState};
use crate::error::ItemError;
use crate::item::ItemId;
use crate::metrics::{StageMetrics, Tally};
use crate::sync::lock;

mod bottleneck;
mod text;

pub(crate) use bottleneck::describe_fill;
use bottleneck::find_bottleneck;
pub use bottleneck::Bottleneck;

/// One stage's (or the source's, or the sink's) part of a [`Report`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StageReport {
    /// The stage's name (`source` and `sink` for the ends).
    pub name: String,
    /// Its workers.
    pub workers: usize,
    /// Capacity of its input connector, in batches (0 for the source and for a fused stage).
    /// The capacity asked for in items is rounded up to whole batches; see
    /// [`queue_items`](StageReport::queue_items) for the capacity in items.
    pub queue_capacity: usize,
    /// Items per batch on its input connector (0 for the source, for a fused stage, and
    /// where the run did not record it).
    pub batch: usize,
    /// Whether it ran fused with the stage before: on that stage's workers, taking its
    /// output directly rather than through a connector (see
    /// [`PipelineBuilder::fuse`](crate::PipelineBuilder::fuse)).
    pub fused: bool,
    /// Its counters.
    pub tally: Tally,
    /// Share of the run's wall time its workers spent busy, idle and blocked (0 to 1).
    pub busy: f64,
    /// See [`busy`](StageReport::busy).
    pub idle: f64,
    /// See [`busy`](StageReport::busy).
    pub blocked: f64,
    /// Mean fill of its input connector (0 to 1), sampled at each receive.
    pub queue_fill: f64,
}

impl StageReport {
    /// `worker_seconds`: for an autoscaled stage, its worker count integrated over the run
    /// (see [`worker_seconds`]); otherwise the run's wall time × its workers is used.
    fn new(m: &StageMetrics, wall: Duration, worker_seconds: Option<f64>) -> Self {
        let tally = m.tally();
        // Shares of the workers' time: the time its workers existed (wall time × workers,
        // or the integral of an autoscaled stage's count over the run), or the time
        // measured if that is more. A worker that ran out of input early still counts the
        // rest of the run, so it is not "busy".
        let measured = (tally.busy + tally.idle + tally.blocked).as_secs_f64();
        let existed =
            worker_seconds.unwrap_or_else(|| wall.as_secs_f64() * m.workers().max(1) as f64);
        let worker_time = measured.max(existed);
        let share = |d: Duration| {
            if worker_time > 0.0 {
                (d.as_secs_f64() / worker_time).min(1.0)
            } else {
                0.0
            }
        };
        let queue_fill = if m.queue_capacity > 0 {
            (tally.queue_mean_milli as f64 / 1000.0 / m.queue_capacity as f64).min(1.0)
        } else {
            0.0
        };
        StageReport {
            name: m.name.to_string(),
            workers: m.workers(),
            queue_capacity: m.queue_capacity,
            batch: if m.queue_capacity > 0 { m.batch } else { 0 },
            fused: m.fused,
            busy: share(tally.busy),
            idle: share(tally.idle),
            blocked: share(tally.blocked),
            queue_fill,
            tally,
        }
    }

    /// Capacity of its input connector in items: [`queue_capacity`](StageReport::queue_capacity)
    /// batches of [`batch`](StageReport::batch) items. `None` for the source, a fused stage,
    /// or where the batch size was not recorded.
    pub fn queue_items(&self) -> Option<usize> {
        (self.queue_capacity > 0 && self.batch > 0).then(|| self.queue_capacity * self.batch)
    }

    /// Items that left the stage with at least one output.
    pub fn passed(&self) -> u64 {
        let t = &self.tally;
        t.items_in - t.filtered.min(t.items_in) - t.failed - t.cancelled
    }
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
    unfinished: Vec<ItemId>,
    hook_panics: Vec<String>,
    bottleneck: Option<Bottleneck>,
    scaling: ScalingLog,
}

fn pct(x: f64) -> u32 {
    (x * 100.0).round() as u32
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
    pub(crate) fn build(control: &Control, end: EndState) -> Report {
        let wall = control.started.elapsed();
        let scaling = lock(&control.scaling).clone();
        let source = StageReport::new(&control.source, wall, None);
        let stages: Vec<StageReport> = control
            .stages
            .iter()
            .enumerate()
            .map(|(i, m)| StageReport::new(m, wall, worker_seconds(&scaling.history, i, wall)))
            .collect();
        let sink = StageReport::new(&control.sink, wall, None);
        let latency = {
            let h = lock(&control.latency);
            Latency {
                p50: h.quantile(0.5),
                p90: h.quantile(0.9),
                p99: h.quantile(0.99),
                max: h.max(),
                samples: h.count(),
            }
        };
        let (errors, errors_total) = {
            let log = lock(&control.errors);
            (log.sample.clone(), log.total)
        };
        let mut unfinished = lock(&control.unfinished).clone();
        unfinished.sort_unstable();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let bottleneck = find_bottleneck(&source, &stages, &sink, cores);
        Report {
            end,
            wall,
            source,
            stages,
            sink,
            latency,
            errors,
            errors_total,
            unfinished,
            hook_panics: lock(&control.hook_panics).clone(),
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
    /// finished run.
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
    pub fn wedges(&self) -> &[(Duration, String)] {
        &self.scaling.wedges
    }

    /// Time the controller spent measuring and deciding.
    pub fn controller_busy(&self) -> Duration {
        self.scaling.controller_busy
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
