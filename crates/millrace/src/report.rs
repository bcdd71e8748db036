//! The report of a run: per-stage accounting, totals, latency, and the bottleneck named.
//!
//! # Accounting
//!
//! Every item a stage receives ends there in exactly one way: passed on (one or more
//! outputs), filtered, failed, or cancelled. So for every stage
//! `items_in = passed + filtered + failed + cancelled`, and without flat-maps the whole
//! pipeline balances: `source items = delivered + filtered + failed + cancelled`
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
//! A report's [`Display`](fmt::Display) shows the totals, a row per stage (a stage fused with
//! the one before shows `fused` in the queue column, and has no capacity of its own),
//! latencies to three significant digits (`8.59 s`), the bottleneck, the autoscaler's
//! decisions, and the first 10 errors followed by how many more there were.

use std::fmt;
use std::time::Duration;

use crate::autoscale::{Decision, ScalingLog};
use crate::control::{Control, EndState};
use crate::error::ItemError;
use crate::item::ItemId;
use crate::metrics::{StageMetrics, Tally};
use crate::sync::lock;

mod bottleneck;

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

    /// Whether every admitted item is accounted for exactly once: delivered, filtered,
    /// failed or cancelled. Holds for every finished run of a pipeline without flat-maps.
    pub fn is_balanced(&self) -> bool {
        self.items_in() == self.delivered() + self.filtered() + self.failed() + self.cancelled()
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

fn fmt_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration to three significant digits: `812 µs`, `7.34 ms`, `8.59 s`.
fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    let (value, unit) = if secs >= 1.0 {
        (secs, "s")
    } else if secs >= 1e-3 {
        (secs * 1e3, "ms")
    } else if secs >= 1e-6 {
        (secs * 1e6, "µs")
    } else {
        (secs * 1e9, "ns")
    };
    if value >= 100.0 {
        format!("{value:.0} {unit}")
    } else if value >= 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.2} {unit}")
    }
}

/// Errors a report's text shows in full before it counts the rest.
const ERRORS_SHOWN: usize = 10;

/// A stage's queue column: its mean fill, `fused` for a stage with no queue of its own
/// (it runs on the previous stage's workers), `-` for the source.
fn queue_cell(s: &StageReport) -> String {
    if s.fused {
        "fused".into()
    } else if s.queue_capacity > 0 {
        format!("{}%", pct(s.queue_fill))
    } else {
        "-".into()
    }
}

/// A stage's capacity column: in items where the batch size is known, else in batches.
fn capacity_cell(s: &StageReport) -> String {
    match s.queue_items() {
        Some(items) => format!("{} items", fmt_count(items as u64)),
        None if s.queue_capacity > 0 => format!("{} batches", fmt_count(s.queue_capacity as u64)),
        None => "-".into(),
    }
}

impl fmt::Display for Latency {
    /// `p50 7.34 ms, p90 9.01 ms, p99 12.3 ms, max 8.59 s`: each to three significant digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}, p90 {}, p99 {}, max {}",
            fmt_duration(self.p50),
            fmt_duration(self.p90),
            fmt_duration(self.p99),
            fmt_duration(self.max)
        )
    }
}

fn fmt_rate(per_sec: f64) -> String {
    if per_sec >= 1e9 {
        format!("{:.2} G", per_sec / 1e9)
    } else if per_sec >= 1e6 {
        format!("{:.2} M", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.2} k", per_sec / 1e3)
    } else {
        format!("{per_sec:.1} ")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = match self.end {
            EndState::Running => "running",
            EndState::Completed => "completed",
            EndState::Stopped => "stopped",
            EndState::Cancelled => "cancelled",
            EndState::Failed => "failed",
        };
        writeln!(
            f,
            "{end} in {:.3} s: {} in, {} delivered, {} filtered, {} failed, {} cancelled ({}items/s)",
            self.wall.as_secs_f64(),
            fmt_count(self.items_in()),
            fmt_count(self.delivered()),
            fmt_count(self.filtered()),
            fmt_count(self.failed()),
            fmt_count(self.cancelled()),
            fmt_rate(self.throughput()),
        )?;
        writeln!(
            f,
            "{:<16} {:>7} {:>14} {:>14} {:>6} {:>6} {:>8} {:>6} {:>13}",
            "stage",
            "workers",
            "items in",
            "items out",
            "busy",
            "idle",
            "blocked",
            "queue",
            "capacity"
        )?;
        for s in std::iter::once(&self.source)
            .chain(&self.stages)
            .chain(std::iter::once(&self.sink))
        {
            writeln!(
                f,
                "{:<16} {:>7} {:>14} {:>14} {:>5}% {:>5}% {:>7}% {:>6} {:>13}",
                s.name,
                s.workers,
                fmt_count(s.tally.items_in),
                fmt_count(s.tally.items_out),
                pct(s.busy),
                pct(s.idle),
                pct(s.blocked),
                queue_cell(s),
                capacity_cell(s)
            )?;
        }
        if self.latency.samples > 0 {
            writeln!(f, "latency: {}", self.latency)?;
        }
        if let Some(b) = &self.bottleneck {
            writeln!(f, "bottleneck: {}", b.reason)?;
        }
        for (at, d) in &self.scaling.decisions {
            writeln!(f, "at {:.1} s: {}", at.as_secs_f64(), d.reason)?;
        }
        for (at, w) in &self.scaling.wedges {
            writeln!(f, "at {:.1} s: wedged: {w}", at.as_secs_f64())?;
        }
        let shown = self.errors.len().min(ERRORS_SHOWN);
        for e in &self.errors[..shown] {
            writeln!(f, "error: {e}")?;
        }
        if self.errors_total > shown as u64 {
            writeln!(
                f,
                "… and {} more",
                fmt_count(self.errors_total - shown as u64)
            )?;
        }
        if !self.unfinished.is_empty() {
            writeln!(f, "unfinished: {} items", self.unfinished.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::ItemErrorKind;

    #[test]
    fn an_autoscaled_stages_worker_time_follows_its_history() {
        let s = Duration::from_secs;
        // 1 worker for 2 s, then 3 until the end at 5 s: 2 + 9 = 11 worker-seconds.
        let history = vec![(s(0), vec![1, 2]), (s(2), vec![3, 2])];
        assert_eq!(worker_seconds(&history, 0, s(5)), Some(11.0));
        assert_eq!(worker_seconds(&history, 1, s(5)), Some(10.0));
        assert_eq!(worker_seconds(&[], 0, s(5)), None);
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1_000), "1,000");
        assert_eq!(fmt_count(10_000_000), "10,000,000");
    }

    fn stage(name: &str, workers: usize, queue_capacity: usize, batch: usize) -> StageReport {
        StageReport {
            name: name.into(),
            workers,
            queue_capacity,
            batch,
            fused: false,
            tally: Tally {
                items_in: 1_000,
                items_out: 1_000,
                ..Tally::default()
            },
            busy: 0.5,
            idle: 0.25,
            blocked: 0.25,
            queue_fill: 0.5,
        }
    }

    /// A finished run of `source → a → b → sink` with the given stages and errors.
    fn report(stages: Vec<StageReport>, errors: Vec<ItemError>, errors_total: u64) -> Report {
        Report {
            end: EndState::Completed,
            wall: Duration::from_secs(1),
            source: stage("source", 1, 0, 0),
            stages,
            sink: stage("sink", 1, 8, 0),
            latency: Latency::default(),
            errors,
            errors_total,
            unfinished: Vec::new(),
            hook_panics: Vec::new(),
            bottleneck: None,
            scaling: ScalingLog::default(),
        }
    }

    fn row<'a>(text: &'a str, stage: &str) -> Vec<&'a str> {
        text.lines()
            .find(|l| l.starts_with(&format!("{stage} ")))
            .unwrap_or_else(|| panic!("no row for `{stage}`:\n{text}"))
            .split_whitespace()
            .collect()
    }

    #[test]
    fn the_text_shows_ten_errors_and_counts_the_rest() {
        let errors: Vec<ItemError> = (0..100)
            .map(|i| {
                ItemError::new(
                    ItemId(i),
                    Arc::from("parse"),
                    1,
                    ItemErrorKind::Panicked("bad".into()),
                )
            })
            .collect();
        let text = report(vec![stage("a", 1, 4, 16)], errors, 10_220).to_string();
        let shown: Vec<&str> = text.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(shown.len(), 10, "{text}");
        assert_eq!(
            shown[0],
            "error: stage `parse` failed on item #0: panicked: bad"
        );
        assert!(text.contains("\n… and 10,210 more\n"), "{text}");
    }

    #[test]
    fn the_text_counts_no_more_errors_when_it_shows_them_all() {
        let errors = vec![ItemError::new(
            ItemId(7),
            Arc::from("a"),
            2,
            ItemErrorKind::Panicked("no".into()),
        )];
        let text = report(vec![stage("a", 1, 4, 16)], errors, 1).to_string();
        assert!(text.contains("error: stage `a` failed on item #7 after 2 attempts"));
        assert!(!text.contains("more"), "{text}");
    }

    #[test]
    fn latencies_are_shown_to_three_significant_digits() {
        let mut r = report(vec![stage("a", 1, 4, 16)], Vec::new(), 0);
        r.latency = Latency {
            p50: Duration::from_micros(812),
            p90: Duration::from_nanos(7_341_234),
            p99: Duration::from_nanos(123_456_789),
            max: Duration::from_nanos(8_589_934_592),
            samples: 1_000,
        };
        let text = r.to_string();
        assert!(
            text.contains("\nlatency: p50 812 µs, p90 7.34 ms, p99 123 ms, max 8.59 s\n"),
            "{text}"
        );
    }

    #[test]
    fn durations_round_to_three_significant_digits_in_every_unit() {
        let d = Duration::from_nanos;
        assert_eq!(fmt_duration(d(0)), "0.00 ns");
        assert_eq!(fmt_duration(d(640)), "640 ns");
        assert_eq!(fmt_duration(d(1_500)), "1.50 µs");
        assert_eq!(fmt_duration(d(45_678_000)), "45.7 ms");
        assert_eq!(fmt_duration(d(8_589_934_592)), "8.59 s");
        assert_eq!(fmt_duration(Duration::from_secs(3_600)), "3600 s");
    }

    #[test]
    fn a_fused_stage_is_marked_in_the_queue_column_and_has_no_capacity() {
        let fused = StageReport {
            fused: true,
            queue_capacity: 0,
            batch: 0,
            ..stage("b", 2, 0, 0)
        };
        let text = report(vec![stage("a", 2, 4, 16), fused], Vec::new(), 0).to_string();
        let b = row(&text, "b");
        assert_eq!(b[b.len() - 2..], ["fused", "-"], "{text}");
        assert_eq!(row(&text, "source").last(), Some(&"-"), "{text}");
    }

    #[test]
    fn queue_capacity_is_shown_in_items_when_the_batch_size_is_known() {
        let text = report(
            vec![stage("a", 1, 4, 16), stage("b", 1, 1_000, 64)],
            Vec::new(),
            0,
        )
        .to_string();
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(" queue      capacity"));
        assert_eq!(row(&text, "a")[7..], ["50%", "64", "items"], "{text}");
        assert_eq!(row(&text, "b")[7..], ["50%", "64,000", "items"], "{text}");
    }

    #[test]
    fn queue_capacity_is_shown_in_batches_when_the_batch_size_is_not_known() {
        let text = report(vec![stage("a", 1, 4, 0)], Vec::new(), 0).to_string();
        assert_eq!(row(&text, "a")[7..], ["50%", "4", "batches"], "{text}");
        assert_eq!(row(&text, "sink")[7..], ["50%", "8", "batches"], "{text}");
    }

    #[test]
    fn capacity_in_items_is_whole_batches_of_the_batch_size() {
        assert_eq!(stage("a", 1, 4, 16).queue_items(), Some(64));
        assert_eq!(stage("a", 1, 4, 0).queue_items(), None);
        assert_eq!(stage("source", 1, 0, 0).queue_items(), None);
    }
}
