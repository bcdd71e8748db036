//! Live per-stage counters: what every worker did, cheap enough to leave on.
//!
//! Each worker owns one cache-line-padded [`Counters`] slot and adds to it once per batch,
//! with relaxed atomics, so the cost is a few nanoseconds per batch and no worker ever
//! contends with another. A [`StageMetrics`] sums its slots on demand, for the live view and
//! for the final [`Report`](crate::Report).
//!
//! # Naming
//!
//! Counters follow one rule, after tokio's `RuntimeMetrics`: `<what>` for item counts
//! (`items_in`, `items_out`, `filtered`, `failed`), `<what>_ns` for time in nanoseconds
//! (`busy_ns`, `idle_ns`, `blocked_ns`), and `queue_*` for samples of the stage's input
//! connector taken each time a worker receives a batch.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::batch_size::BatchSize;

/// One worker's counters.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub(crate) items_in: AtomicU64,
    pub(crate) items_out: AtomicU64,
    pub(crate) filtered: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    /// Items counted in `items_out` that a cancel then dropped before they left the stage
    /// (a send refused, a batch left behind a gap in the reorder buffer): the tally counts
    /// them cancelled, not out.
    pub(crate) withdrawn: AtomicU64,
    pub(crate) expanded: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) busy_ns: AtomicU64,
    pub(crate) idle_ns: AtomicU64,
    pub(crate) blocked_ns: AtomicU64,
    pub(crate) queue_len_sum: AtomicU64,
    pub(crate) queue_samples: AtomicU64,
    /// Async stages: items whose future is running now (a gauge), and their lives in the
    /// stage, summed (polls included: a small part of an item's life).
    pub(crate) in_flight: AtomicU64,
    pub(crate) waiting_ns: AtomicU64,
    /// What the worker is doing now and since when: an [`Activity`] in the top two bits,
    /// nanoseconds since the run started below. Read by the wedge detector.
    pub(crate) activity: AtomicU64,
    /// The kernel's id of the worker's thread (0: unknown), for the controller to read how
    /// long it waited for a core (see `runqueue`).
    pub(crate) thread_id: AtomicU64,
}

/// What a worker is doing, as the wedge detector sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Activity {
    /// Not started, or between batches.
    Between = 0,
    /// Waiting for input.
    Idle = 1,
    /// Running the stage's code on a batch.
    Busy = 2,
    /// Waiting for room downstream.
    Blocked = 3,
}

const SINCE_MASK: u64 = (1 << 62) - 1;

impl Counters {
    #[inline]
    pub(crate) fn add(&self, counter: &AtomicU64, n: u64) {
        let _ = self;
        if n != 0 {
            counter.fetch_add(n, Relaxed);
        }
    }

    /// Records that the worker started `activity` at `since` (time since the run started).
    #[inline]
    pub(crate) fn enter(&self, activity: Activity, since: Duration) {
        let ns = (since.as_nanos() as u64) & SINCE_MASK;
        self.activity.store(((activity as u64) << 62) | ns, Relaxed);
    }

    /// What the worker is doing and since when (time since the run started).
    pub(crate) fn activity(&self) -> (Activity, Duration) {
        let v = self.activity.load(Relaxed);
        let activity = match v >> 62 {
            1 => Activity::Idle,
            2 => Activity::Busy,
            3 => Activity::Blocked,
            _ => Activity::Between,
        };
        (activity, Duration::from_nanos(v & SINCE_MASK))
    }

    #[inline]
    pub(crate) fn add_time(&self, counter: &AtomicU64, d: Duration) {
        self.add(counter, d.as_nanos().min(u128::from(u64::MAX)) as u64);
    }
}

/// The summed counters of one stage (or of the source or the sink) at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Tally {
    /// Items received.
    pub items_in: u64,
    /// Items emitted (a flat-map emits more than it receives). Outputs a cancel drops
    /// before they leave the stage are taken off again and counted `cancelled`, so after a
    /// cancel this can fall below an earlier snapshot's.
    pub items_out: u64,
    /// Items received that produced no output (filtered out, or a flat-map with no children).
    pub filtered: u64,
    /// Items that failed (error or panic) after all their tries.
    pub failed: u64,
    /// Extra tries under a retry policy.
    pub retries: u64,
    /// Items dropped unfinished by a cancel.
    pub cancelled: u64,
    /// Items a flat-map made beyond those it received: an item turned into n ≥ 2 children
    /// adds n − 1. Every stage balances:
    /// `items_in + expanded = items_out + filtered + failed + cancelled`.
    pub expanded: u64,
    /// Batches received.
    pub batches: u64,
    /// Time spent working, summed over workers.
    pub busy: Duration,
    /// Time spent waiting for input, summed over workers.
    pub idle: Duration,
    /// Time spent waiting for room downstream, summed over workers.
    pub blocked: Duration,
    /// Mean batches waiting in the input connector, sampled at each receive (0 before the
    /// first receive).
    pub queue_mean: f64,
    /// Sum of the input connector's length (in batches) seen at each receive:
    /// `queue_mean = queue_len_sum / queue_samples`.
    pub queue_len_sum: u64,
    /// Receives at which the input connector's length was seen.
    pub queue_samples: u64,
    /// Async stages: items in flight at the moment of the tally.
    pub in_flight: u64,
    /// Async stages: the time items spent in the stage, from their try's start to their
    /// end, summed over items (their polls included, a small part of it).
    pub waiting: Duration,
}

/// The live counters of one stage: a padded slot per worker.
pub(crate) struct StageMetrics {
    pub(crate) name: Arc<str>,
    workers: AtomicUsize,
    /// Capacity of the stage's input connector, in batches.
    pub(crate) queue_capacity: usize,
    /// The batch size of the stage's input connector (`None`: not known), so that reports
    /// can give the capacity in items and what an adaptive size chose.
    pub(crate) batch: Option<Arc<BatchSize>>,
    /// For the source, while its batches are cut on the first stage's workers (see
    /// `segment::pulled_source`): their batch size (no connector carries them). Set once at
    /// the launch and read by reports: `std`'s mutex, not part of any hand-off protocol.
    pulled_batch: std::sync::Mutex<Option<Arc<BatchSize>>>,
    /// Runs on the previous stage's workers (no connector of its own), at least at the start
    /// (see [`split`](StageMetrics::split)); for the source, on the first stage's workers
    /// (see `segment::pulled_source`).
    fused: AtomicBool,
    /// For a stage fused at the start that may split off: its input queue once split, in
    /// batches.
    standby_queue: usize,
    /// Whether it has split off the stage before (see `plan::fuse_at_the_start`).
    split: AtomicBool,
    /// An async stage's concurrency: the most items it has in flight (0 for the others).
    pub(crate) concurrency: usize,
    slots: Box<[CachePadded<Counters>]>,
}

impl StageMetrics {
    pub(crate) fn new(name: Arc<str>, workers: usize, queue_capacity: usize) -> Self {
        Self::with_slots(name, workers, queue_capacity, workers)
    }

    /// Metrics with room for up to `slots` workers (for stages that can grow).
    pub(crate) fn with_slots(
        name: Arc<str>,
        workers: usize,
        queue_capacity: usize,
        slots: usize,
    ) -> Self {
        StageMetrics {
            name,
            workers: AtomicUsize::new(workers),
            queue_capacity,
            batch: None,
            pulled_batch: std::sync::Mutex::new(None),
            fused: AtomicBool::new(false),
            standby_queue: 0,
            split: AtomicBool::new(false),
            concurrency: 0,
            slots: (0..slots.max(workers).max(1))
                .map(|_| CachePadded::default())
                .collect(),
        }
    }

    /// Marks the stage as running on the previous stage's workers; `standby_queue` (in
    /// batches) is its input queue should it split off (0 if it never does).
    pub(crate) fn fused(mut self, fused: bool, standby_queue: usize) -> Self {
        self.fused = AtomicBool::new(fused);
        self.standby_queue = standby_queue;
        self
    }

    /// Whether it runs on the previous stage's workers now.
    pub(crate) fn is_fused(&self) -> bool {
        self.fused.load(Relaxed) && !self.split.load(Relaxed)
    }

    /// Capacity of its input connector now, in batches (0 while fused).
    pub(crate) fn queue_capacity(&self) -> usize {
        if self.split.load(Relaxed) {
            self.standby_queue
        } else {
            self.queue_capacity
        }
    }

    /// Records that it split off the stage before and now reads its own connector.
    pub(crate) fn mark_split(&self) {
        self.split.store(true, Relaxed);
    }

    /// Marks the source as cut on the first stage's workers (until it splits off), in
    /// batches of `size`.
    pub(crate) fn mark_pulled(&self, size: Arc<BatchSize>) {
        *self
            .pulled_batch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(size);
        self.fused.store(true, Relaxed);
    }

    /// Marks the sink as consumed on the worker in front of it (until it gets its thread
    /// back: [`mark_split`](StageMetrics::mark_split)).
    pub(crate) fn mark_consumed_on_the_worker(&self) {
        self.fused.store(true, Relaxed);
    }

    /// The batch size of the source's batches while they are cut on the first stage's
    /// workers.
    pub(crate) fn pulled_batch(&self) -> Option<Arc<BatchSize>> {
        let size = self.pulled_batch.lock();
        let size = size.unwrap_or_else(std::sync::PoisonError::into_inner);
        size.clone().filter(|_| self.is_fused())
    }

    /// Sets the batch size of the stage's input connector.
    /// Marks an async stage of `concurrency` (0: a sync stage).
    pub(crate) fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    pub(crate) fn batch(mut self, size: Arc<BatchSize>) -> Self {
        self.batch = Some(size);
        self
    }

    /// The stage's workers now.
    pub(crate) fn workers(&self) -> usize {
        self.workers.load(Relaxed)
    }

    pub(crate) fn set_workers(&self, workers: usize) {
        self.workers.store(workers, Relaxed);
    }

    pub(crate) fn slot(&self, worker: usize) -> &Counters {
        &self.slots[worker % self.slots.len()]
    }

    /// Every worker slot (more than the workers when the stage can grow).
    pub(crate) fn slots(&self) -> impl Iterator<Item = &Counters> {
        self.slots.iter().map(|s| &**s)
    }

    pub(crate) fn tally(&self) -> Tally {
        self.tally_at(None)
    }

    /// The counters, with the time of batches still being processed at `now` (time since
    /// the run started) counted as busy: a stage deep in a long first batch is busy, not
    /// idle, in a snapshot or the report of an aborted run.
    pub(crate) fn tally_at(&self, now: Option<Duration>) -> Tally {
        let mut t = Tally::default();
        let (mut busy, mut idle, mut blocked, mut qsum, mut qn) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let (mut waiting, mut withdrawn) = (0u64, 0u64);
        for s in self.slots.iter() {
            if let Some(now) = now {
                if let (Activity::Busy, since) = s.activity() {
                    busy += now.saturating_sub(since).as_nanos() as u64;
                }
            }
            t.items_in += s.items_in.load(Relaxed);
            t.items_out += s.items_out.load(Relaxed);
            t.filtered += s.filtered.load(Relaxed);
            t.failed += s.failed.load(Relaxed);
            t.retries += s.retries.load(Relaxed);
            t.cancelled += s.cancelled.load(Relaxed);
            withdrawn += s.withdrawn.load(Relaxed);
            t.expanded += s.expanded.load(Relaxed);
            t.batches += s.batches.load(Relaxed);
            busy += s.busy_ns.load(Relaxed);
            idle += s.idle_ns.load(Relaxed);
            blocked += s.blocked_ns.load(Relaxed);
            qsum += s.queue_len_sum.load(Relaxed);
            qn += s.queue_samples.load(Relaxed);
            t.in_flight += s.in_flight.load(Relaxed);
            waiting += s.waiting_ns.load(Relaxed);
        }
        t.items_out = t.items_out.saturating_sub(withdrawn);
        t.waiting = Duration::from_nanos(waiting);
        t.busy = Duration::from_nanos(busy);
        t.idle = Duration::from_nanos(idle);
        t.blocked = Duration::from_nanos(blocked);
        t.queue_mean = if qn > 0 { qsum as f64 / qn as f64 } else { 0.0 };
        (t.queue_len_sum, t.queue_samples) = (qsum, qn);
        t
    }
}

/// A histogram of latencies with buckets a quarter-octave wide (about ±9% precision).
#[derive(Clone, Debug)]
pub(crate) struct LatencyHistogram {
    buckets: Vec<u64>,
    count: u64,
    max_ns: u64,
    /// Sum of the samples, each weighted, in nanoseconds.
    sum_ns: u128,
}

const SUB_BUCKETS: u32 = 4;

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: vec![0; (64 * SUB_BUCKETS) as usize],
            count: 0,
            max_ns: 0,
            sum_ns: 0,
        }
    }
}

impl LatencyHistogram {
    fn bucket_of(ns: u64) -> usize {
        if ns < 2 {
            return ns as usize;
        }
        let octave = 63 - ns.leading_zeros();
        let sub = if octave >= 2 {
            ((ns >> (octave - 2)) & 0b11) as u32
        } else {
            0
        };
        (octave * SUB_BUCKETS + sub) as usize
    }

    fn lower_bound(bucket: usize) -> u64 {
        let octave = bucket as u32 / SUB_BUCKETS;
        let sub = bucket as u64 % SUB_BUCKETS as u64;
        if octave < 2 {
            return 1u64 << octave;
        }
        (1u64 << octave) + sub * (1u64 << (octave - 2))
    }

    pub(crate) fn record(&mut self, d: Duration, weight: u64) {
        let ns = d.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.buckets[Self::bucket_of(ns)] += weight;
        self.count += weight;
        self.max_ns = self.max_ns.max(ns);
        self.sum_ns += u128::from(ns) * u128::from(weight);
    }

    /// The weighted sum of the samples.
    pub(crate) fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns.min(u128::from(u64::MAX)) as u64)
    }

    /// The buckets that hold samples: each one's upper bound (exclusive) and its count,
    /// in increasing order.
    pub(crate) fn buckets(&self) -> Vec<(Duration, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| {
                // Below 4 ns some buckets are never used: the bound is the next larger one.
                let lower = if i < 2 {
                    i as u64
                } else {
                    Self::lower_bound(i)
                };
                let upper = (i + 1..self.buckets.len())
                    .map(Self::lower_bound)
                    .find(|&b| b > lower)
                    .unwrap_or(u64::MAX);
                (Duration::from_nanos(upper), *n)
            })
            .collect()
    }

    /// The latency below which a fraction `q` of the samples fall.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let target = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target {
                return Duration::from_nanos(Self::lower_bound(i).min(self.max_ns));
            }
        }
        Duration::from_nanos(self.max_ns)
    }

    pub(crate) fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns)
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }
}

/// How full a queue is, in a word: `full` (≥ 75%), `empty` (≤ 25%) or `half full`.
pub(crate) fn describe_fill(fill: f64) -> &'static str {
    if fill >= 0.75 {
        "full"
    } else if fill <= 0.25 {
        "empty"
    } else {
        "half full"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_quarter_octave() {
        let mut h = LatencyHistogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us), 1);
        }
        let p50 = h.quantile(0.5).as_micros() as f64;
        let p99 = h.quantile(0.99).as_micros() as f64;
        assert!((p50 - 500.0).abs() / 500.0 < 0.2, "p50 = {p50}");
        assert!((p99 - 990.0).abs() / 990.0 < 0.2, "p99 = {p99}");
        assert_eq!(h.max(), Duration::from_micros(1000));
        assert_eq!(h.count(), 1000);
    }

    #[test]
    fn stage_tally_sums_worker_slots() {
        let m = StageMetrics::new("s".into(), 3, 4);
        for w in 0..3 {
            let c = m.slot(w);
            c.add(&c.items_in, 10);
            c.add(&c.items_out, 9);
            c.add(&c.filtered, 1);
        }
        let t = m.tally();
        assert_eq!((t.items_in, t.items_out, t.filtered), (30, 27, 3));
    }
}
