//! A source fused with the run of stages after it: the run's workers cut the source's
//! batches themselves, so no item crosses a connector, and no thread waits on another,
//! before the run's first stage.
//!
//! The launch fuses the source this way when the pipeline's first stages are a run fused at
//! the start (see `plan::fuse_at_the_start`), its items come from an iterator that says how many
//! it has at most (one that does not may wait in `next` for good, and only a thread of its own
//! can be let go by a cancel: `source::LetGo`), the connector
//! into the first stage would carry small batches (`launch::PULL_BELOW`: larger ones amortise
//! the hand-off, and a source on its own thread runs beside the run), and nothing admits the
//! source's batches (no ordered stage, no response path: a worker must never wait for room
//! in a window while it holds items of its own). A cheap run then runs on as many threads as
//! it has workers, where it ran on those and the source's, and in batches of up to the first
//! stage's capacity shared among its workers (no connector holds them): W1 written with
//! `.capacity(1024)` and one worker per stage went from 144 M to about 200 M items/s on two
//! cores (`BENCHMARKS.md`).
//!
//! The workers take turns at the iterator (a lock around its [`Cut`]). The source is
//! accounted as before (its own busy time, items and batches), and the connector into the
//! first stage is built as usual but stands by: when the run splits, the source gets a thread
//! of its own again ([`PulledSource::split_off`], as the first fused worker to leave after the
//! request does) and ships into that connector, which the first stage's own workers read
//! from, like any stage of a split run. The thread takes the lock a batch at a time: a fused
//! worker still at work may cut one more batch before it leaves.

use std::sync::Arc;
use std::time::Instant;

use crate::batch_size::BatchSize;
use crate::connector::{Outlet, Poll, Stock};
use crate::error::{BuildError, RunErrorKind};
use crate::item::Batch;
use crate::pipeline::source::{run_iter, Cut, Cutting, SourceCtx, SOURCE_THREAD};
use crate::sync::{lock, Mutex};

use super::pull::{Intake, MakePull, Pull};

/// The source's iterator and what its batches need, shared by the workers that cut them.
pub(crate) struct PulledSource<S> {
    cutter: Mutex<Box<dyn Cut<S>>>,
    ctx: SourceCtx,
    /// The pool and batch size of the connector into the first stage.
    stock: Stock<S>,
}

impl<S: Send + 'static> PulledSource<S> {
    pub(crate) fn new(cutter: Box<dyn Cut<S>>, ctx: SourceCtx, stock: Stock<S>) -> Arc<Self> {
        ctx.metrics.mark_pulled(Arc::clone(stock.batch_size()));
        Arc::new(PulledSource {
            cutter: Mutex::new(cutter),
            ctx,
            stock,
        })
    }

    /// Makes each worker's pull of the source.
    pub(crate) fn make_pull(self: &Arc<Self>) -> MakePull<S> {
        let source = Arc::clone(self);
        Arc::new(move |_worker| {
            Box::new(SourcePull {
                source: Arc::clone(&source),
                taken: (Instant::now(), 0),
                short: false,
            })
        })
    }

    /// What starts the source's own thread when the run splits, shipping into `outlet` (the
    /// connector into the first stage). Dropped unstarted (a run that never split), it
    /// drops `outlet`, so the end of input still travels on.
    pub(crate) fn split_off(self: &Arc<Self>, outlet: Outlet<S>) -> Box<dyn FnOnce() + Send> {
        let source = Arc::clone(self);
        Box::new(move || {
            source.ctx.metrics.mark_split();
            let control = Arc::clone(&source.ctx.control);
            let name = SOURCE_THREAD;
            let spawned = control.spawn_late(name.into(), move || {
                run_iter(&mut Locked(&source.cutter), &source.ctx, &outlet);
            });
            if let Err(why) = spawned {
                // Nothing would feed the first stage: end the run rather than hang.
                control.fail_hard(RunErrorKind::Build(BuildError::thread(name, &why)));
            }
        })
    }
}

/// The iterator's [`Cut`] taken under its lock a batch at a time, on the source's own
/// thread: a fused worker still finishing its part of a split (see `segment::handover`) may
/// cut a batch in between, rather than wait for the iterator's end.
struct Locked<'a, S>(&'a Mutex<Box<dyn Cut<S>>>);

impl<S> Cut<S> for Locked<'_, S> {
    fn bounded(&self) -> bool {
        lock(self.0).bounded()
    }

    fn cut(
        &mut self,
        ctx: &SourceCtx,
        size: &BatchSize,
        items: Vec<S>,
        want: usize,
    ) -> Option<Cutting<S>> {
        lock(self.0).cut(ctx, size, items, want)
    }
}

/// One worker's pull of the source: it cuts the next batch itself.
struct SourcePull<S> {
    source: Arc<PulledSource<S>>,
    /// When the last batch was cut, and its items.
    taken: (Instant, usize),
    /// Whether the last batch came out short, or its first item was long in coming (the
    /// iterator is slow or sparse): the next poll says there is nothing ready, so the worker
    /// sends the outputs it holds back for company before the iterator waits again.
    short: bool,
}

impl<S: Send> SourcePull<S> {
    fn cut(&mut self) -> Option<Batch<S>> {
        let source = &*self.source;
        let signals = &source.ctx.control.signals;
        if signals.stopping() || signals.cancelled() {
            return None;
        }
        let size = source.stock.batch_size();
        let want = size.fill_size(&source.ctx.carried);
        let items = source.stock.fresh(want);
        let Cutting { batch, waited, .. } =
            lock(&source.cutter).cut(&source.ctx, size, items, want)?;
        let n = batch.len();
        // A short batch, or one whose first item was long in coming: the next may be too.
        self.short = n < want || waited;
        self.taken = (Instant::now(), n);
        let counters = source.ctx.counters();
        counters.add(&counters.items_in, n as u64);
        counters.add(&counters.items_out, n as u64);
        counters.add(&counters.batches, 1);
        Some(batch)
    }
}

impl<S: Send> Pull<S> for SourcePull<S> {
    fn poll(&mut self) -> Poll<S> {
        if std::mem::take(&mut self.short) {
            return Poll::Empty;
        }
        match self.cut() {
            Some(batch) => Poll::Ready(batch),
            None => Poll::Closed,
        }
    }

    fn recv(&mut self) -> Option<Batch<S>> {
        self.cut()
    }

    fn recycle(&mut self, spent: Vec<S>) {
        self.source.stock.recycle(spent);
    }

    /// As for a connector's pool (see `InletPull`): a first stage that maps in place sends
    /// the source's vectors on.
    fn wants_spare(&self) -> bool {
        true
    }

    fn intake(&self) -> Option<Intake<'_>> {
        Some(Intake {
            at: self.taken.0,
            items: self.taken.1,
            size: self.source.stock.batch_size(),
        })
    }
}
