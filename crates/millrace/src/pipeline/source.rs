//! The source: the one thread that admits items into a pipeline, numbers them and batches them.
//!
//! Items come from an iterator read on this thread
//! ([`Pipeline::source`](crate::Pipeline::source)) or from [`Submitter`](crate::Submitter)s
//! on any thread ([`Pipeline::submitter`](crate::Pipeline::submitter)).
//! An iterator's batches are cut by a [`Cut`], which the workers of a run of stages fused at
//! the start may run instead of this thread (`segment::pulled_source`).
//! Either way the source gives each item its [`ItemId`], cuts batches of the first
//! connector's [batch size](crate::batch_size) (and measures its own pace for it), numbers them for ordered stages, and admits each batch through the first
//! ordered stage's reorder window and, when the response path is on, the in-flight window.
//!
//! # Flushing
//!
//! Submitted items are batched only while more are already waiting: when the queue of
//! submitted items runs dry, the partial batch goes out at once, so a lone item is not held
//! back waiting for company. An iterator source cannot know whether its `next` would wait,
//! so it fills whole batches, of the size the connector chose from its measured pace: a
//! sparse iterator (one item a millisecond) gets batches of one item, each sent at once.
//!
//! # Stopping
//!
//! On a graceful stop an iterator source stops calling `next`; a submitter source stops
//! accepting (later submits hand the item back in a [`SubmitError`]) and admits everything
//! already accepted. A submit racing the stop either fails or is admitted, never lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::batch_size::{BatchSize, FILL_DEADLINE, FILL_TARGET};
use crate::connector::{Outlet, Stock};
use crate::control::Control;
use crate::deadline::Deadline;
use crate::error::{panic_message, RunErrorKind};
use crate::item::{Batch, Ids};
use crate::metrics::{Activity, Counters, StageMetrics};
use crate::response::drop_unfinished;
use crate::response::Upstream;
use crate::sync::{lock, try_lock, Mutex};
use crate::window::Window;

/// An iterator source's items, cut into numbered batches; monomorphised for the iterator's
/// type, so filling a batch is a tight loop with no dynamic call per item. It runs on the
/// source's own thread ([`run_iter`]), or on the workers of a run of stages fused at the
/// start that the source is fused with (`segment::pulled_source`).
pub(crate) trait Cut<S>: Send {
    /// Fills `items` (empty, from the connector's pool) with up to `want` items and numbers
    /// them as the next batch, accounting the source's time. `None` when the iterator has
    /// ended (or panicked: the run fails then).
    fn cut(
        &mut self,
        ctx: &SourceCtx,
        size: &BatchSize,
        items: Vec<S>,
        want: usize,
    ) -> Option<Cutting<S>>;

    /// Whether the iterator says how many items it has at most (its size hint's upper
    /// bound): a collection or a range, read on the workers of a run fused at the start if
    /// that pays (`segment::pulled_source`). One that does not (a channel's receiver, lines
    /// of a stream) may wait in `next` for good, and is read on a thread of its own, which a
    /// cancel can let go ([`LetGo`]).
    fn bounded(&self) -> bool;
}

/// A batch [`Cut`] from an iterator, and what the cut saw of the iterator.
pub(crate) struct Cutting<S> {
    pub(crate) batch: Batch<S>,
    /// Whether the iterator may have more.
    pub(crate) more: bool,
    /// Whether the iterator made the cut wait for the batch's first item (past
    /// [`FILL_TARGET`]): a sparse or slow source, whose next item may be as long in coming.
    pub(crate) waited: bool,
}

/// [`Cut`] for an iterator: the ids and sequence numbers given so far.
pub(crate) struct Cutter<I> {
    /// `None` once the iterator has ended, or panicked.
    iter: Option<I>,
    next_id: u64,
    seq: u64,
}

impl<I> Cutter<I> {
    pub(crate) fn new(iter: I) -> Self {
        Cutter {
            iter: Some(iter),
            next_id: 0,
            seq: 0,
        }
    }
}

impl<S, I: Iterator<Item = S> + Send> Cut<S> for Cutter<I> {
    fn bounded(&self) -> bool {
        self.iter
            .as_ref()
            .map_or(true, |iter| iter.size_hint().1.is_some())
    }

    fn cut(
        &mut self,
        ctx: &SourceCtx,
        size: &BatchSize,
        mut items: Vec<S>,
        want: usize,
    ) -> Option<Cutting<S>> {
        // The iterator moves onto this call's stack while it fills the batch: read through
        // `&mut self`, the compiler could not keep its state in registers, and stored it
        // back at every item (`perf`: half of a filling source's time, in a one-stage run
        // of `y + 1` on `0..n`). A panic drops it, and the source has ended.
        let mut iter = self.iter.take()?;
        let start = Instant::now();
        // A batch is born when its first item arrives: the wait for that item is the
        // iterator's time, not the item's, so latency counts from there.
        let mut born = start;
        let filled = ctx.control.catch(|| {
            let more = match iter.next() {
                Some(first) => {
                    born = Instant::now();
                    items.push(first);
                    fill_rest(&mut iter, &mut items, want, born)
                }
                None => false,
            };
            (more, iter)
        });
        match filled {
            Ok((true, iter)) => {
                // An iterator that says it has nothing left (a range, a vector's) has ended
                // as far as `Outputs::finish` needs to know, before this batch ships: it
                // must not take the run for one that may still admit items, and cancel it,
                // while the source has yet to call `next` once more. (Only the signal
                // trusts the hint: the iterator is still read to its end.)
                if iter.size_hint().1 == Some(0) {
                    ctx.control.signals.end_input();
                }
                self.iter = Some(iter);
            }
            // Ended: dropped now, not with the run.
            Ok((false, ended)) => {
                drop(ended);
                ctx.control.signals.end_input();
            }
            Err(payload) => {
                ctx.control
                    .fail(RunErrorKind::SourcePanicked(panic_message(&*payload)));
            }
        }
        let more = self.iter.is_some();
        let took = start.elapsed();
        let counters = ctx.counters();
        counters.add_time(&counters.busy_ns, took);
        if items.is_empty() {
            return None; // (the iterator has ended, or panicked, and is gone)
        }
        let len = items.len();
        size.filled(len, took, born - start);
        let batch = Batch {
            seq: self.seq,
            born,
            ids: Ids::Range {
                start: self.next_id,
                len,
            },
            items,
        };
        self.next_id += len as u64;
        self.seq += 1;
        Some(Cutting {
            batch,
            more,
            waited: born - start > FILL_TARGET,
        })
    }
}

/// The in-flight window and the count of extra responses flat-maps created.
#[derive(Clone)]
pub(crate) struct Credits {
    pub(crate) window: Arc<Window>,
    pub(crate) expanded: Arc<AtomicU64>,
}

pub(crate) struct SourceCtx {
    pub(crate) control: Arc<Control>,
    pub(crate) metrics: Arc<StageMetrics>,
    pub(crate) gate: Option<Arc<Window>>,
    pub(crate) credits: Option<Credits>,
    pub(crate) events: Option<Upstream>,
    /// The batch sizes of the connectors after the first that carry the source's batches
    /// whole (up to an ordered stage): the source fills to what each of them takes.
    pub(crate) carried: Vec<Arc<BatchSize>>,
}

impl SourceCtx {
    /// Admits a batch whose first item is the `first`-th item overall (counting from 0). A
    /// batch goes in whole once its first item fits the in-flight window, so the window can
    /// be exceeded by less than one batch, and a window smaller than a batch still moves.
    fn admit(&self, seq: u64, first: u64) -> bool {
        if let Some(credits) = &self.credits {
            let position = first + credits.expanded.load(Ordering::Acquire);
            if !credits.window.admit(position) {
                return false;
            }
        }
        match &self.gate {
            Some(gate) => gate.admit(seq),
            None => true,
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        self.metrics.slot(0)
    }

    /// Admits and sends one batch, whose first item is the `first`-th overall. Returns
    /// `false` when the pipeline no longer takes input.
    pub(super) fn ship<S>(&self, outlet: &Outlet<S>, batch: Batch<S>, first: u64) -> bool {
        let counters = self.counters();
        let n = batch.len() as u64;
        counters.add(&counters.items_in, n);
        counters.add(&counters.batches, 1);
        // (The clock only where a window may hold the batch back, or the connector did:
        // a cheap source's reads of it were a tenth of its time.)
        let windows = self.credits.is_some() || self.gate.is_some();
        let start = windows.then(Instant::now);
        if self.control.signals.cancelled() || !self.admit(batch.seq, first) {
            // Short of a cancel, a window closes only when nobody will take responses any
            // more (a dropped `Responses`): the run stops taking input, and says so.
            self.control.signals.stop();
            drop_unfinished(&self.control, self.events.as_ref(), batch.ids, counters);
            return false;
        }
        let admit_wait = start.map_or(Duration::ZERO, |start| start.elapsed());
        let mut blocked = false;
        let waiting = || {
            blocked = true;
            counters.enter(Activity::Blocked, self.control.signals.now());
        };
        match outlet.send_or_wait(batch, waiting) {
            Ok(waited) => {
                if blocked {
                    counters.enter(Activity::Between, self.control.signals.now());
                }
                counters.add(&counters.items_out, n);
                counters.add_time(&counters.blocked_ns, admit_wait + waited);
                true
            }
            Err(batch) => {
                drop_unfinished(&self.control, self.events.as_ref(), batch.ids, counters);
                false
            }
        }
    }
}

/// The name of the source's thread.
pub(crate) const SOURCE_THREAD: &str = "millrace-source";

/// Runs an iterator source on a thread of its own: cuts batches and ships them, until the
/// iterator ends or the run stops.
pub(crate) fn run_iter<S>(cutter: &mut dyn Cut<S>, ctx: &SourceCtx, outlet: &Outlet<S>) {
    cut_and_ship(cutter, ctx, &outlet.own_stock(), |batch, first| {
        ctx.ship(outlet, batch, first)
    });
}

/// The source's loop: cuts batches of `stock`'s size and hands each to `ship` (with the
/// source position of its first item), until the iterator ends, the run stops, or `ship`
/// says the pipeline takes no more.
fn cut_and_ship<S>(
    cutter: &mut dyn Cut<S>,
    ctx: &SourceCtx,
    stock: &Stock<S>,
    mut ship: impl FnMut(Batch<S>, u64) -> bool,
) {
    let size = stock.batch_size();
    while !ctx.control.signals.stopping() {
        let want = size.fill_size(&ctx.carried);
        let Some(Cutting { batch, more, .. }) = cutter.cut(ctx, size, stock.fresh(want), want)
        else {
            break;
        };
        // (A cut batch is never empty; its first id is the source position of its first item.)
        let first = batch.ids.get(0).0;
        if !ship(batch, first) || !more {
            break;
        }
    }
}

/// The outlet of an iterator source on its own thread, which a cancel can take away while
/// the thread waits in its iterator's `next` (a channel's receiver whose sender lives on):
/// the connector then disconnects, so the stages after it end, and `join` leaves the
/// thread to return on its own (see `running::finish`). Nothing admitted is lost: the items
/// of the batch it was filling were never admitted, and a batch it ships afterwards is
/// dropped as a cancel drops it. The thread holds the lock only while it ships (a cancel
/// that finds it held needs nothing taken: the source sees the cancel once the send is done,
/// and reads no more).
pub(crate) struct LetGo<S> {
    outlet: Mutex<Option<Outlet<S>>>,
}

impl<S: Send + 'static> LetGo<S> {
    /// `outlet`, for [`run_let_go`]; a cancel of the run takes it away unless it is in use.
    pub(crate) fn new(outlet: Outlet<S>, control: &Control) -> Arc<Self> {
        let let_go = Arc::new(LetGo {
            outlet: Mutex::new(Some(outlet)),
        });
        let weak = Arc::downgrade(&let_go);
        control.signals.on_cancel(Box::new(move |signals| {
            let Some(let_go) = weak.upgrade() else {
                return;
            };
            let taken = try_lock(&let_go.outlet).and_then(|mut outlet| outlet.take());
            if taken.is_some() {
                signals.let_go_of_source();
            }
        }));
        let_go
    }
}

/// [`run_iter`] on an outlet a cancel may take away ([`LetGo`]).
pub(crate) fn run_let_go<S>(cutter: &mut dyn Cut<S>, ctx: &SourceCtx, let_go: &LetGo<S>) {
    let Some(stock) = lock(&let_go.outlet).as_ref().map(Outlet::own_stock) else {
        return;
    };
    cut_and_ship(cutter, ctx, &stock, |batch, first| {
        match lock(&let_go.outlet).as_ref() {
            Some(outlet) => ctx.ship(outlet, batch, first),
            None => {
                // Taken by a cancel while the iterator kept this thread.
                let counters = ctx.counters();
                counters.add(&counters.items_in, batch.len() as u64);
                drop_unfinished(&ctx.control, ctx.events.as_ref(), batch.ids, counters);
                false
            }
        }
    });
}

/// Items between two clock reads of a source filling a large batch (see [`fill_rest`]).
///
/// A clock read costs about 25 ns on the VMs we measure on. Read every 64 items, it took a
/// fifth of a one-stage pipeline's CPU time (W6-shaped, all threads pinned to one core,
/// `perf`: 255 M hops/s per core; read every 256, 305 M). 256 was tried and dropped: it
/// bounds in items, not in time, how long an item that turns slow mid-batch can hold the
/// ones before it, and a live tail of 200 items at 10 ms each after a backlog then waited
/// for all 200 (`tests/adaptive_batches.rs` caught it under CI). At 64 it waits for 64 at most.
const CHECK_EVERY: usize = 64;

/// Fills `items` (its first item already in, which arrived at `born`) up to `want` items.
/// The clock is read at 2, 4, 8, … 64 items, then every 64 ([`CHECK_EVERY`]): once the
/// batch has been open past [`FILL_DEADLINE`], it ships with what it has, so items that
/// start to come slowly in the middle of a batch wait for at most as many more as the batch
/// holds, and never more than 64, not for a whole batch. An iterator whose size hint, having
/// promised items, promises fewer than 128 more (so at least its last 64 promised items; or
/// a backlog read, then a live tail of unknown pace: `backlog.chain(live)`) has the clock
/// read at every item from then on in this batch, so the first late item ships the batch
/// (a live tail of 20 items 50 ms apart used to arrive all at once, at the end). (Between
/// two reads the source waits in the iterator's `next`: a source that may wait
/// indefinitely is a [`Submitter`](crate::Submitter)'s job, which ships a partial batch as
/// soon as its queue runs dry.) Returns whether the iterator may have more.
fn fill_rest<S>(
    iter: &mut impl Iterator<Item = S>,
    items: &mut Vec<S>,
    want: usize,
    born: Instant,
) -> bool {
    let mut deadline = Deadline::starting(born, FILL_DEADLINE);
    // Whether the size hint has promised items. A stride goes whole while the hint promises
    // it and a stride beyond it; near the end of what an iterator promised (or once the
    // promise runs out), every item is a checkpoint. (A stride never reaches into the last 64
    // items an iterator promises: a backlog chained with a short live tail of known length,
    // `(0..20_000).chain(live)`, promises the tail too, and a stride that took the backlog's
    // last items and the whole tail held the first live item until the last came. Whether a
    // stride fell so depended on the batch sizes: a test that failed one CI run in many,
    // `tests/adaptive_batches.rs`.) An iterator that promises nothing (a `filter`) is read
    // in strides throughout.
    let promise = iter.size_hint().0;
    let mut promised = promise > 0;
    let mut item_by_item = promised && promise < 2 * CHECK_EVERY;
    let mut checkpoint = 2;
    while items.len() < want {
        let upto = checkpoint.min(want);
        let before = items.len();
        items.extend(iter.by_ref().take(upto - before));
        if items.len() < upto {
            return false; // the iterator ran dry
        }
        if items.len() < want && deadline.passed() {
            return true;
        }
        if !item_by_item {
            let promise = iter.size_hint().0;
            promised |= promise > 0;
            item_by_item = promised && promise < 2 * CHECK_EVERY;
        }
        checkpoint = if item_by_item {
            checkpoint + 1
        } else if checkpoint < CHECK_EVERY {
            checkpoint * 2
        } else {
            checkpoint + CHECK_EVERY
        };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields `0..`, sleeping past the fill deadline once, before item `slow_at`.
    struct SlowsDownAt {
        next: usize,
        slow_at: usize,
    }

    impl Iterator for SlowsDownAt {
        type Item = usize;
        fn next(&mut self) -> Option<usize> {
            if self.next == self.slow_at {
                std::thread::sleep(FILL_DEADLINE * 2);
            }
            self.next += 1;
            Some(self.next - 1)
        }
    }

    fn fill_until_shipped(slow_at: usize, want: usize) -> (Vec<usize>, bool) {
        let mut iter = SlowsDownAt { next: 0, slow_at };
        let born = Instant::now();
        let mut items = vec![iter.next().expect("the first item")];
        let more = fill_rest(&mut iter, &mut items, want, born);
        (items, more)
    }

    #[test]
    fn a_batch_that_slows_down_ships_within_one_stride_of_the_slow_item() {
        // Checkpoints at 2, 4 … 64, 128, 192 …: the deadline passes at item 600, so the
        // batch ships at the next checkpoint, 640, or earlier if this machine is slow.
        let (items, more) = fill_until_shipped(600, 4096);
        assert!(more);
        assert!(
            items.len() <= 600 + CHECK_EVERY,
            "shipped {} items",
            items.len()
        );
        assert!(items.len() < 4096);
        assert_eq!(items, (0..items.len()).collect::<Vec<_>>());
    }

    #[test]
    fn a_short_slow_tail_of_a_sized_iterator_ships_at_its_first_item() {
        // 128 items, the last 20 slow: with strides of 2, 4 … 64, the stride after the 64th
        // item would take the last 64 (44 fast, 20 slow) in one go, had the hint's promise
        // of 64 more sufficed. Now, with fewer than 128 promised, items go one by one, and
        // the batch ships at the first slow one (or earlier, on a slow machine).
        let slow = |x: usize| {
            if x >= 108 {
                std::thread::sleep(Duration::from_millis(2));
            }
            x
        };
        let mut iter = (0..128).map(slow);
        let born = Instant::now();
        let mut items = vec![iter.next().expect("the first item")];
        let more = fill_rest(&mut iter, &mut items, 4096, born);
        assert!(more, "items are left");
        assert!(
            items.len() <= 109,
            "the batch held {} items, past the first slow one",
            items.len()
        );
    }

    #[test]
    fn early_in_a_batch_a_slow_item_waits_for_no_more_items_than_came_before_it() {
        // Slow from item 10: the next checkpoint is 16.
        let (items, _) = fill_until_shipped(10, 4096);
        assert!(items.len() <= 16, "shipped {} items", items.len());
    }

    #[test]
    fn a_batch_never_holds_more_than_it_wants() {
        // (A preempted fill may ship early; it never overfills.)
        for want in [1, 2, 3, 255, 256, 257, 1000] {
            let (items, more) = fill_until_shipped(usize::MAX, want);
            assert!(more);
            assert!(items.len() <= want, "{} items for {want}", items.len());
            assert_eq!(items, (0..items.len()).collect::<Vec<_>>());
        }
    }
}
