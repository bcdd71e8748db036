//! The batch size of one connector: pinned by the user, or chosen while the pipeline runs.
//!
//! Every connector carries batches ([`crate::item::Batch`]); how many items a batch holds
//! decides what an item costs in hand-offs (one channel operation and, at worst, one wake-up
//! per batch) and how long an item can wait for company (a batch leaves when it is full, or
//! when its producer would otherwise wait). No single size suits every stage: a 1 ns stage
//! wants thousands of items per batch, a 1 ms one wants one, and a source that yields an item
//! per millisecond wants each item sent alone.
//!
//! So unless the user pins it ([`Stage::batch`](crate::Stage::batch),
//! [`PipelineBuilder::default_batch`](crate::PipelineBuilder::default_batch)), a connector's
//! [`BatchSize`] adapts, between 1 and its limit (the capacity in items over
//! [`SLOTS`] queue slots, so the capacity is honoured in items), from two measurements:
//!
//! * **The producer's pace** ([`BatchSize::filled`] for a source, [`BatchSize::produced`]
//!   for a stage): how long the last batch took to make, per item (a source's wait for items
//!   included). A batch should take about [`FILL_TARGET`] to
//!   fill: cheap items make large batches (hand-offs are amortised), slow or sparse ones small
//!   batches (no item waits long for the rest of its batch; light traffic goes item by item).
//! * **The consumer's cost** ([`BatchSize::used`]): how long the next stage (or the sink) took
//!   per item. A batch should take at most [`USE_TARGET`] to process, so that a stage's
//!   workers share the work evenly, the tail of a run is short, a stop or cancel takes effect
//!   soon and large items are not held by the hundred. The size grows only as far as twice
//!   the largest batch a consumer has processed within that time (one item until a consumer
//!   has taken one that fast): every doubling waits for a consumer to show it takes the size
//!   in stride, so a fast source cannot hand out large batches before a slow stage has been
//!   measured (64 idle workers of a 5 ms stage each get an item, not one of them 512). An
//!   async stage takes any batch in stride (its items wait for a place, not for a thread):
//!   the connector into it needs no proof ([`BatchSize::adaptive_in_stride`]).
//!
//! An ordered stage restores order by batch, so the stages before it keep their batches
//! whole, and the batches the source (or an ordered stage before) makes travel through
//! several connectors: their producer fills them to what every one of those connectors
//! takes ([`BatchSize::fill_size`]), and an ordered stage cuts its output to what the next
//! ones take (a cheap stage in front of a costly ordered one no longer hands it the cheap
//! stage's large batches).
//!
//! A producer's measurement moves the size one step, doubling or halving, toward what it
//! asks: a thread preempted in the middle of a batch (more threads than cores) measures a
//! pace far slower than the real one, and one such batch must not collapse the size. A
//! consumer's cap comes down at once. A source whose iterator waited for the first item of a
//! batch (more than [`FILL_TARGET`]) is sparse and drops to single items at once; one whose
//! items start to come slowly in the middle of a batch ships what it has after
//! [`FILL_DEADLINE`] (see `pipeline::source`), so light traffic is never held back. Producers
//! and consumers update the size with relaxed atomics: a lost update only delays a step.

use std::sync::Arc;
use std::time::Duration;

use crate::sync::AtomicUsize;
use crate::sync::Ordering::Relaxed;

/// Queue slots of a connector whose batch size adapts: its capacity in items, split into
/// this many batches of at most `capacity / SLOTS` items.
pub(crate) const SLOTS: usize = 4;

/// How long a producer should take to fill a batch.
pub(crate) const FILL_TARGET: Duration = Duration::from_micros(50);

/// How long a source may hold the first item of a batch while it waits for the rest: past
/// it, the batch ships with what it has.
pub(crate) const FILL_DEADLINE: Duration = Duration::from_micros(200);

/// How long a consumer should take to process a batch, at most.
pub(crate) const USE_TARGET: Duration = Duration::from_millis(1);

/// The batch size adaptive connectors start with: small, so the first items of a sparse
/// source are not held back; fast producers double it within a few batches.
const START: usize = 1;

/// One connector's batch size.
#[derive(Debug)]
pub(crate) struct BatchSize {
    /// The size producers fill batches to now.
    size: AtomicUsize,
    /// The largest size the consumer's cost allows (the limit until it is measured).
    consumer_cap: AtomicUsize,
    /// The largest batch a consumer has processed within [`USE_TARGET`]: producers grow the
    /// size to at most twice it (to one while it is 0), so every doubling waits for a
    /// consumer to show that it takes the size in stride, the first one too: two 200 ms
    /// items must not share a batch while other workers are idle.
    proven: AtomicUsize,
    limit: usize,
    adaptive: bool,
}

impl BatchSize {
    /// A size the user set: it never changes.
    pub(crate) fn pinned(items: usize) -> Self {
        let items = items.max(1);
        BatchSize {
            size: AtomicUsize::new(items),
            consumer_cap: AtomicUsize::new(items),
            proven: AtomicUsize::new(items),
            limit: items,
            adaptive: false,
        }
    }

    /// A size the pipeline chooses, between 1 and `limit`.
    pub(crate) fn adaptive(limit: usize) -> Self {
        let limit = limit.max(1);
        BatchSize {
            size: AtomicUsize::new(START.min(limit)),
            consumer_cap: AtomicUsize::new(limit),
            proven: AtomicUsize::new(0),
            limit,
            adaptive: true,
        }
    }

    /// A size the pipeline chooses for a consumer that takes any batch in stride from the
    /// start: an async stage, whose intake hands batches on to its driver, where their
    /// items wait for one of `concurrency` places rather than for a thread. The size still
    /// starts at one item and grows with the producer's pace, a doubling a batch, but
    /// without waiting for the consumer to prove each size first: at the start of W3 the
    /// source had filled the connector with batches of one and two items while the intake
    /// woke up (with this and the async intake's hand-off, a thousand items reached their
    /// places within 0.4–1.1 ms of the first on a busy machine, where they took 6–12 ms).
    pub(crate) fn adaptive_in_stride(limit: usize) -> Self {
        let size = BatchSize::adaptive(limit);
        size.proven.store(size.limit, Relaxed);
        size
    }

    /// Items per batch now.
    #[inline]
    pub(crate) fn get(&self) -> usize {
        self.size.load(Relaxed)
    }

    /// The most items one batch should carry now: what the consumers have shown they take
    /// in stride (twice the largest batch they took within [`USE_TARGET`], at most their
    /// cap and the limit). Outputs that exist together (a stage's output of one batch) go
    /// on whole up to this, rather than split to [`get`](BatchSize::get): splitting what is
    /// already here only adds hand-offs.
    pub(crate) fn most(&self) -> usize {
        if !self.adaptive {
            return self.limit;
        }
        let proven = (2 * self.proven.load(Relaxed)).max(1);
        self.consumer_cap.load(Relaxed).min(proven).min(self.limit)
    }

    /// Items a producer fills a batch to when its batches also travel whole through the
    /// `carried` connectors (to an ordered stage, which restores order by batch): its own
    /// size, and at most what each of them has shown it takes
    /// ([`in_stride`](BatchSize::in_stride)). A size the user pinned here is not lowered by
    /// sizes that merely adapt downstream.
    pub(crate) fn fill_size(&self, carried: &[Arc<BatchSize>]) -> usize {
        self.within_carried(self.get(), carried)
    }

    /// The most items a batch should carry that travels whole through this connector and
    /// the `carried` ones: what each has shown it takes in stride.
    pub(crate) fn most_carried(&self, carried: &[Arc<BatchSize>]) -> usize {
        self.within_carried(self.in_stride(), carried)
    }

    /// `own`, at most what each `carried` connector takes in stride (an adaptive one does
    /// not lower a pinned size here), at least 1.
    fn within_carried(&self, own: usize, carried: &[Arc<BatchSize>]) -> usize {
        carried
            .iter()
            .filter(|c| self.adaptive || !c.adaptive)
            .map(|c| c.in_stride())
            .fold(own, usize::min)
            .max(1)
    }

    /// What the consumers have shown they take in stride: twice the largest batch one took
    /// within [`USE_TARGET`] (one item before any did), at most the limit; a pinned size's
    /// limit. Unlike [`most`](BatchSize::most) it never comes down: one batch of a consumer
    /// that was preempted (more threads than cores) must not cut every batch upstream.
    pub(crate) fn in_stride(&self) -> usize {
        if !self.adaptive {
            return self.limit;
        }
        (2 * self.proven.load(Relaxed)).clamp(1, self.limit)
    }

    /// The most items a batch may hold.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the pipeline chooses the size.
    pub(crate) fn is_adaptive(&self) -> bool {
        self.adaptive
    }

    /// A source filled a batch of `items` in `took`, of which `first` waiting for the first
    /// item.
    pub(crate) fn filled(&self, items: usize, took: Duration, first: Duration) {
        if !self.adaptive || items == 0 {
            return;
        }
        if first > FILL_TARGET {
            // The source is sparse: its iterator waits for items. Each goes alone, at once.
            self.size.store(1, Relaxed);
        } else if items >= self.get() {
            self.produced(items, took);
        } else {
            // A partial batch says the source ran dry, not how fast it is: never grow.
            let want = per_target(FILL_TARGET, items, took);
            self.step_toward(want.min(self.get()));
        }
    }

    /// A stage produced `items` in `took` (its processing time for them).
    pub(crate) fn produced(&self, items: usize, took: Duration) {
        if !self.adaptive || items == 0 {
            return;
        }
        let proven = self.proven.load(Relaxed);
        let want = per_target(FILL_TARGET, items, took)
            .min(self.consumer_cap.load(Relaxed))
            .min((2 * proven).max(1));
        self.step_toward(want);
    }

    /// A consumer processed a batch of `items` in `took`.
    pub(crate) fn used(&self, items: usize, took: Duration) {
        if !self.adaptive || items == 0 {
            return;
        }
        let measured = per_target(USE_TARGET, items, took).min(self.limit);
        // `measured` is at least 1: a single item that took longer proves nothing.
        if took <= USE_TARGET && items <= measured && items > self.proven.load(Relaxed) {
            self.proven.store(items, Relaxed);
        }
        // Down at once (a costly consumer must not wait for the size to come down by
        // halves, one slow batch at a time), up by doubling.
        let old = self.consumer_cap.load(Relaxed);
        let cap = measured.min(old.saturating_mul(2));
        if cap != old {
            self.consumer_cap.store(cap, Relaxed);
        }
        if self.get() > cap {
            self.size.store(cap, Relaxed);
        }
    }

    /// Moves the size one step toward `want`.
    fn step_toward(&self, want: usize) {
        let now = self.get();
        let next = step(now, want.min(self.limit));
        if next != now {
            self.size.store(next, Relaxed);
        }
    }
}

/// One step from `now` toward `want`: at most doubling or halving. A thread preempted in the
/// middle of a batch measures a pace far slower than the real one; halving, not jumping,
/// keeps one such batch from collapsing the size (a sparse source is told apart by its wait
/// for the first item, see [`BatchSize::filled`]).
fn step(now: usize, want: usize) -> usize {
    if want > now {
        (now.saturating_mul(2)).min(want)
    } else {
        (now / 2).max(want).max(1)
    }
}

/// How many items of the measured pace fit in `target`, at least 1.
fn per_target(target: Duration, items: usize, took: Duration) -> usize {
    let per_item = (took.as_nanos() / items as u128).max(1);
    (target.as_nanos() / per_item).clamp(1, usize::MAX as u128) as usize
}

/// The size adaptive connectors may use with `capacity` items: a batch per slot.
pub(crate) fn limit_for(capacity: usize) -> usize {
    (capacity / SLOTS).max(1)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);
    const NS: Duration = Duration::from_nanos(1);

    /// A source batch of `n` items at `per_item` each, the first arriving at once.
    fn fill(size: &BatchSize, n: usize, per_item: Duration) {
        size.filled(n, per_item * n as u32, Duration::ZERO);
    }

    /// A source fills a batch of the current size at `make` an item, and a consumer takes
    /// it at `take` an item.
    fn round(size: &BatchSize, make: Duration, take: Duration) {
        let n = size.get();
        fill(size, n, make);
        size.used(n, take * n as u32);
    }

    #[test]
    fn a_pinned_size_never_changes() {
        let size = BatchSize::pinned(64);
        size.filled(64, Duration::from_nanos(64), Duration::from_secs(1));
        size.used(64, Duration::from_secs(1));
        assert_eq!((size.get(), size.limit()), (64, 64));
    }

    #[test]
    fn cheap_items_double_the_size_up_to_the_limit() {
        let size = BatchSize::adaptive(512);
        let mut seen = vec![size.get()];
        while size.get() < 512 {
            round(&size, NS, NS);
            seen.push(size.get());
        }
        // A doubling every other batch: the source grows to twice what a consumer has
        // taken, then waits for the consumer to take that.
        assert_eq!(
            seen,
            [1, 1, 2, 2, 4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256, 512]
        );
        round(&size, NS, NS);
        assert_eq!(size.get(), 512, "never past the limit");
    }

    #[test]
    fn the_size_waits_for_a_consumer_before_each_doubling() {
        let size = BatchSize::adaptive(4096);
        // A fast source, and no consumer has taken a batch yet: single items.
        for _ in 0..20 {
            fill(&size, size.get(), NS);
        }
        assert_eq!(size.get(), 1, "unmeasured");
        // A consumer takes an item in stride: the source may go to two, no further.
        size.used(1, NS);
        for _ in 0..20 {
            fill(&size, size.get(), NS);
        }
        assert_eq!(size.get(), 2);
        size.used(2, NS);
        for _ in 0..20 {
            fill(&size, size.get(), NS);
        }
        assert_eq!(size.get(), 4);
    }

    #[test]
    fn a_consumer_in_stride_from_the_start_lets_a_fast_source_double_every_batch() {
        // An async stage's connector: no consumer has taken a batch yet, and the source
        // still grows a doubling a batch, from one item, to the limit.
        let size = BatchSize::adaptive_in_stride(250);
        let mut seen = vec![size.get()];
        for _ in 0..9 {
            fill(&size, size.get(), NS);
            seen.push(size.get());
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 32, 64, 128, 250, 250]);
        // A sparse source still goes item by item.
        size.filled(1, Duration::from_millis(1), Duration::from_millis(1));
        assert_eq!(size.get(), 1);
    }

    #[test]
    fn a_costly_consumer_keeps_single_items_from_the_start() {
        // 64 idle workers of a 5 ms stage behind a fast source: each batch they take costs
        // 5 ms an item, so none of them is ever handed more than one.
        let size = BatchSize::adaptive(4096);
        let mut largest = 0;
        for _ in 0..64 {
            let n = size.get();
            largest = largest.max(n);
            fill(&size, n, NS);
            size.used(n, Duration::from_millis(5) * n as u32);
        }
        assert_eq!(largest, 1, "a batch of {largest}");
        assert_eq!(size.get(), 1);
    }

    #[test]
    fn a_single_item_that_took_long_is_no_proof_that_two_fit() {
        let size = BatchSize::adaptive(4096);
        for _ in 0..20 {
            fill(&size, size.get(), NS);
            size.used(1, Duration::from_millis(200));
        }
        assert_eq!((size.get(), size.most()), (1, 1));
    }

    #[test]
    fn a_sparse_source_sends_items_one_by_one_at_once() {
        let size = BatchSize::adaptive(2048);
        for _ in 0..30 {
            round(&size, NS, NS);
        }
        assert_eq!(size.get(), 2048);
        // Traffic turns light: the source waited 1 ms for the first item of its next batch.
        size.filled(2048, Duration::from_millis(2048), Duration::from_millis(1));
        assert_eq!(size.get(), 1, "at once, not by halves");
        size.filled(1, Duration::from_millis(1), Duration::from_millis(1));
        assert_eq!(size.get(), 1);
    }

    #[test]
    fn one_slow_fill_halves_the_size_rather_than_collapsing_it() {
        let size = BatchSize::adaptive(2048);
        for _ in 0..30 {
            round(&size, NS, NS);
        }
        // The source was preempted mid-batch: 2048 items took 5 ms.
        size.filled(2048, Duration::from_millis(5), Duration::ZERO);
        assert_eq!(size.get(), 1024);
        round(&size, NS, NS);
        assert_eq!(size.get(), 2048, "and the next fast batch restores it");
    }

    #[test]
    fn the_size_settles_where_a_batch_takes_the_fill_target() {
        let size = BatchSize::adaptive(4096);
        // 0.5 µs per item: 100 items fill 50 µs.
        for _ in 0..20 {
            round(&size, US / 2, NS);
        }
        assert_eq!(size.get(), 100);
        // From above, too: a stage at 2 µs an item settles at 25.
        for _ in 0..20 {
            let n = size.get();
            size.produced(n, US * 2 * n as u32);
        }
        assert_eq!(size.get(), 25);
    }

    #[test]
    fn a_partial_batch_does_not_grow_the_size() {
        let size = BatchSize::adaptive(4096);
        round(&size, NS, NS);
        round(&size, NS, NS);
        assert_eq!(size.get(), 2);
        fill(&size, 1, NS);
        assert_eq!(
            size.get(),
            2,
            "one item of two: the source ran dry, not fast"
        );
    }

    #[test]
    fn a_consumer_that_turns_costly_caps_the_size_at_once_and_lifts_it_by_doubling() {
        let size = BatchSize::adaptive(4096);
        for _ in 0..30 {
            round(&size, NS, NS);
        }
        assert_eq!(size.get(), 4096);
        // The consumer takes 100 µs per item: 10 items make its 1 ms.
        size.used(50, US * 5000);
        assert_eq!(size.get(), 10, "at once");
        for _ in 0..20 {
            fill(&size, size.get(), NS);
        }
        assert_eq!(size.get(), 10, "producers stay under the cap");
        // The consumer gets cheap again: the cap lifts and the size grows.
        for _ in 0..30 {
            round(&size, NS, NS);
        }
        assert_eq!(size.get(), 4096);
    }

    #[test]
    fn outputs_that_exist_together_go_on_up_to_what_the_consumer_takes_in_stride() {
        let size = BatchSize::adaptive(4096);
        // A 2 µs stage's outputs fill a batch of 25 in 50 µs, but a cheap consumer has taken
        // batches of 1024 in stride: 2048 outputs of one input batch go on together.
        size.used(1024, US * 100);
        for _ in 0..20 {
            let n = size.get();
            size.produced(n, US * 2 * n as u32);
        }
        assert_eq!((size.get(), size.most()), (25, 2048));
        // A costly consumer caps it: 1 ms an item, one item a batch.
        size.used(4, Duration::from_millis(4));
        assert_eq!(size.most(), 1);
        assert_eq!(BatchSize::pinned(64).most(), 64);
    }

    #[test]
    fn batches_that_travel_whole_are_filled_to_what_every_connector_on_the_way_takes() {
        let own = BatchSize::adaptive(4096);
        for _ in 0..30 {
            round(&own, NS, NS);
        }
        let costly = Arc::new(BatchSize::adaptive(4096));
        costly.used(1, Duration::from_millis(20));
        let cheap = Arc::new(BatchSize::adaptive(4096));
        cheap.used(2048, US);
        assert_eq!(own.fill_size(&[]), 4096);
        assert_eq!(own.fill_size(&[Arc::clone(&cheap)]), 4096);
        assert_eq!(own.fill_size(&[Arc::clone(&cheap), Arc::clone(&costly)]), 1);
        assert_eq!(own.most_carried(&[Arc::clone(&costly)]), 1);
        // One slow batch of a consumer that had taken 2048 in stride (it was preempted)
        // lowers its own cap, but not what travels to it whole.
        cheap.used(2048, Duration::from_millis(20));
        assert!(cheap.most() < 4096);
        assert_eq!(own.fill_size(&[Arc::clone(&cheap)]), 4096);
        // A pin downstream binds; a pin here is not lowered by an adaptive size downstream.
        let pinned_after = Arc::new(BatchSize::pinned(16));
        assert_eq!(own.fill_size(&[pinned_after]), 16);
        let pinned = BatchSize::pinned(1024);
        assert_eq!(pinned.fill_size(&[Arc::clone(&costly)]), 1024);
        assert_eq!(pinned.fill_size(&[Arc::new(BatchSize::pinned(8))]), 8);
    }

    #[test]
    fn the_limit_splits_the_capacity_into_slots() {
        assert_eq!(limit_for(16_384), 16_384 / SLOTS);
        assert_eq!(limit_for(4), 1);
        assert_eq!(limit_for(0), 1);
    }
}
