//! One part of a [`Report`](crate::Report): a stage's (or the source's, or the sink's)
//! counts, worker count, queue and time shares.

use std::time::Duration;

use crate::metrics::{StageMetrics, Tally};

/// One stage's (or the source's, or the sink's) part of a [`Report`](crate::Report).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StageReport {
    /// The stage's name (`source` and `sink` for the ends).
    pub name: String,
    /// Its workers when the report was made: a fixed stage's count, or, for an autoscaled
    /// stage and for a fixed stage with more workers than the CPU budget (started lazily,
    /// see [`PipelineBuilder::lazy_workers`](crate::PipelineBuilder::lazy_workers)), those
    /// it had then.
    pub workers: usize,
    /// Capacity of its input connector, in batches (0 for the source and for a stage fused
    /// at the end of the run; the sink keeps its connector's, which carries whatever reaches
    /// it while the last stage's workers consume it themselves).
    /// See [`queue_items`](StageReport::queue_items) for the capacity in items.
    pub queue_capacity: usize,
    /// Items per batch on its input connector when the report was made: the size pinned,
    /// or what the adaptive size had chosen (see [`Stage::batch`](crate::Stage::batch)). 0
    /// for the source, for a fused stage, and where the run did not record it; for a source
    /// read on the first stage's workers ([`fused`](StageReport::fused)), the size of the
    /// batches they cut (at most the first stage's capacity shared among its workers).
    pub batch: usize,
    /// The most items a batch on its input connector may hold (the pinned size, or the
    /// adaptive size's limit: the capacity over four).
    pub batch_limit: usize,
    /// Whether the batch size of its input connector adapted while the pipeline ran.
    pub batch_adaptive: bool,
    /// Whether it ran fused with the stage before at the end of the run: on that stage's
    /// workers, taking its output directly rather than through a connector (see
    /// [`PipelineBuilder::fuse`](crate::PipelineBuilder::fuse); a run of stages that
    /// started fused and split, see
    /// [`PipelineBuilder::adaptive_fusion`](crate::PipelineBuilder::adaptive_fusion), reads
    /// `false` and has a queue of its own). For the source: whether its iterator was read on
    /// the first stage's workers rather than on a thread of its own (an iterator in front of
    /// a run fused at the start, until the run splits). For the sink: whether the last
    /// stage's fixed workers consumed its batches themselves, all or some of them (a
    /// worker that finds another in the sink sends its batch to the sink's thread; a cheap
    /// `for_each`, `try_for_each`,
    /// `fold` or `collect`; see [`PipelineBuilder::for_each`](crate::PipelineBuilder::for_each)),
    /// rather than the sink's own thread. That is decided by timing the sink, so a busy
    /// machine may hand a cheap sink its thread back: the flag says what happened, not what
    /// the pipeline's shape implies.
    pub fused: bool,
    /// Its counters.
    pub tally: Tally,
    /// Share of the run's wall time its workers spent busy, idle and blocked (0 to 1).
    pub busy: f64,
    /// See [`busy`](StageReport::busy).
    pub idle: f64,
    /// See [`busy`](StageReport::busy).
    pub blocked: f64,
    /// Mean fill of its input connector (0 to 1), in batch slots, as each receive found it:
    /// the batches there, counting the one taken, or none when the consumer had to wait
    /// for its batch (a stage that keeps up with its input reads 0%).
    pub queue_fill: f64,
    /// An async stage's concurrency: the most items it has in flight (0 for the others).
    pub concurrency: usize,
    /// An async stage's mean items in flight over its concurrency (0 to 1): 1 when every
    /// slot was in use all the time (its items' time in the stage, [`Tally::waiting`],
    /// over the run's wall time × its concurrency). 0 for the others.
    pub concurrency_used: f64,
    /// For a stage that hears back from later ones (a
    /// [response hook](crate::Stage::on_response), or
    /// [`reply_to`](crate::PipelineBuilder::reply_to)): the share of the run's wall time (0
    /// to 1) its relay thread spent running the hook and the replies, which run on that
    /// thread of their own, not the stage's workers. `None` for the other stages and the
    /// ends.
    pub response_busy: Option<f64>,
}

impl StageReport {
    /// `worker_seconds`: for an autoscaled stage, its worker count integrated over the run
    /// (see [`worker_seconds`]); otherwise the run's wall time × its workers is used.
    /// `busy_until`: for a stage's workers, the moment of the report (time since the run
    /// started), up to which a batch still in progress counts as busy.
    pub(crate) fn new(
        m: &StageMetrics,
        wall: Duration,
        worker_seconds: Option<f64>,
        busy_until: Option<Duration>,
    ) -> Self {
        let tally = m.tally_at(busy_until);
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
        let queue_capacity = m.queue_capacity();
        let queue_fill = if queue_capacity > 0 {
            (tally.queue_mean / queue_capacity as f64).min(1.0)
        } else {
            0.0
        };
        // (A source cut on the first stage's workers has its batch size, and no queue.)
        let batch = (m.pulled_batch()).or_else(|| m.batch.clone().filter(|_| queue_capacity > 0));
        let batch = batch.as_deref();
        StageReport {
            name: m.name.to_string(),
            workers: m.workers(),
            queue_capacity,
            batch: batch.map_or(0, |b| b.get()),
            batch_limit: batch.map_or(0, |b| b.limit()),
            batch_adaptive: batch.is_some_and(|b| b.is_adaptive()),
            fused: m.is_fused(),
            busy: share(tally.busy),
            idle: share(tally.idle),
            blocked: share(tally.blocked),
            queue_fill,
            concurrency: m.concurrency,
            concurrency_used: if m.concurrency > 0 && !wall.is_zero() {
                (tally.waiting.as_secs_f64() / (wall.as_secs_f64() * m.concurrency as f64)).min(1.0)
            } else {
                0.0
            },
            tally,
            response_busy: None,
        }
    }

    /// Capacity of its input connector in items: [`queue_capacity`](StageReport::queue_capacity)
    /// batches of at most [`batch_limit`](StageReport::batch_limit) items. `None` for the
    /// source, a fused stage, or where the batch size was not recorded.
    pub fn queue_items(&self) -> Option<usize> {
        (self.queue_capacity > 0 && self.batch_limit > 0)
            .then(|| self.queue_capacity.saturating_mul(self.batch_limit))
    }

    /// Items that left the stage with at least one output.
    pub fn passed(&self) -> u64 {
        let t = &self.tally;
        t.items_in - t.filtered.min(t.items_in) - t.failed - t.cancelled
    }
}

/// A share as a whole percentage.
pub(crate) fn pct(x: f64) -> u32 {
    (x * 100.0).round() as u32
}
