//! The sink consumed on the workers in front of it, while that is cheap.
//!
//! A sink normally runs on its own thread, taking batches off the last connector. When the
//! stage in front of it has a fixed worker count (a `workers(n)` stage, or a run of such
//! stages fused at the start) and re-batches freely or is ordered, every batch it hands over
//! crosses to another core and, since a cheap sink sleeps between batches, wakes it: on W1
//! written with `.capacity(1024)`, the writes into batches the sink had read, and the
//! wake-ups, were a third of the worker's time (`perf`). So those workers consume their
//! batches themselves ([`DirectSink::consume`]), under the lock the sink thread takes too
//! ([`SharedSink`]): the closure never runs twice at once, and each batch is consumed once,
//! on one thread or another. A worker that finds the lock taken (by another worker, or by
//! the sink thread) sends its batch on the connector instead of waiting for its turn.
//!
//! An ordered stage in front of the sink releases its outputs in order, one release at a
//! time under its reorder buffer's lock (see `reorder`): its workers consume them here in
//! that order, waiting for the lock rather than sending on (the sink thread holds it only
//! for a batch that went on the connector before, once the sink has its own thread). So the
//! ordered row of a pipeline, W4, no longer wakes the sink's thread for every batch.
//!
//! The sink thread still runs, waiting on the connector: it consumes whatever arrives there
//! (batches of stages split off a fused run, which send as before), and when every producer
//! is gone it finishes the sink (a fold's value) as always. A sink that turns out costly (on
//! average at least the 5 µs a batch and 50 ns an item that a fused run asks to split, see
//! `autoscale`) gets its thread back for good: the workers then send their batches, and
//! the sink runs beside them.
//!
//! `adaptive_fusion(false)` keeps the sink on its thread, as it keeps stages apart: a sink
//! closure that waits for something the last stage has yet to do would wait for ever on
//! a worker of that stage.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::autoscale::fixed::worth_a_thread;
use crate::batch_size::BatchSize;
use crate::connector::Inlet;
use crate::item::Batch;
use crate::sync::{lock, try_lock, Mutex};

use super::{SinkCtx, SinkState};

/// A sink the worker in front of it may consume batches of on its own thread.
pub(crate) trait DirectSink<T>: Send + Sync {
    /// Consumes `batch` here and returns its vector, emptied, for recycling; or hands the
    /// batch back when the sink has its own thread now, or (unless `in_order`) when another
    /// thread is consuming: send it on the connector. `in_order` waits for its turn
    /// instead, for batches that must reach the sink in the order they come here.
    fn consume(&self, batch: Batch<T>, in_order: bool) -> Result<Vec<T>, Batch<T>>;

    /// Whether the sink is still consumed on the workers (it has not moved to a thread of
    /// its own).
    fn on_workers(&self) -> bool;
}

/// A sink's state, shared by its thread and the worker in front of it.
pub(crate) struct SharedSink<T, R> {
    state: Mutex<Option<(SinkState<T, R>, SinkCtx)>>,
    /// Set once the sink is costly enough for a thread of its own.
    own_thread: AtomicBool,
    /// Batches, items and nanoseconds consumed on the worker, for that decision.
    direct_batches: AtomicU64,
    direct_items: AtomicU64,
    direct_ns: AtomicU64,
    /// The last connector's batch size, which learns the sink's cost per batch.
    size: Arc<BatchSize>,
}

impl<T: Send, R: Send> SharedSink<T, R> {
    pub(crate) fn new(state: SinkState<T, R>, ctx: SinkCtx, size: Arc<BatchSize>) -> Self {
        SharedSink {
            state: Mutex::new(Some((state, ctx))),
            own_thread: AtomicBool::new(false),
            direct_batches: AtomicU64::new(0),
            direct_items: AtomicU64::new(0),
            direct_ns: AtomicU64::new(0),
            size,
        }
    }

    /// Whether the direct batches so far cost, on average, what a thread of its own is worth.
    fn worth_its_thread(&self) -> bool {
        worth_a_thread(
            Duration::from_nanos(self.direct_ns.load(Ordering::Relaxed)),
            self.direct_batches.load(Ordering::Relaxed),
            self.direct_items.load(Ordering::Relaxed),
        )
    }
}

impl<T: Send, R: Send> DirectSink<T> for SharedSink<T, R> {
    fn on_workers(&self) -> bool {
        !self.own_thread.load(Ordering::Relaxed)
    }

    fn consume(&self, batch: Batch<T>, in_order: bool) -> Result<Vec<T>, Batch<T>> {
        if !self.on_workers() {
            return Err(batch);
        }
        let len = batch.len();
        // Whoever holds the lock (another worker of the segment, or the sink thread) is
        // consuming: this batch goes on the connector rather than wait its turn, unless the
        // order matters (the sink thread holds it only for a batch sent before this one).
        let mut state = if in_order {
            lock(&self.state)
        } else {
            match try_lock(&self.state) {
                Some(state) => state,
                None => return Err(batch),
            }
        };
        let Some((state, ctx)) = state.as_mut() else {
            return Err(batch); // finished: cannot happen while a producer is alive
        };
        let batch = match ctx.accept(batch) {
            Ok(batch) => batch,
            Err(emptied) => return Ok(emptied), // cancelled
        };
        if !ctx.metrics.is_fused() {
            // The report shows the sink `fused` while the worker consumes it.
            ctx.metrics.mark_consumed_on_the_worker();
        }
        let (spent, took) = state.consume(ctx, batch);
        self.size.used(len, took);
        self.direct_batches.fetch_add(1, Ordering::Relaxed);
        self.direct_items.fetch_add(len as u64, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.direct_ns.fetch_add(ns, Ordering::Relaxed);
        if self.worth_its_thread() {
            self.own_thread.store(true, Ordering::Relaxed);
            ctx.metrics.mark_split();
        }
        Ok(spent)
    }
}

/// The sink thread: consumes what arrives on the connector (under the shared lock), then,
/// once every producer is gone, finishes the sink.
pub(crate) fn run_sink<T: Send, R: Send>(
    inlet: Inlet<T>,
    shared: &SharedSink<T, R>,
    ctx: &SinkCtx,
) -> Option<R> {
    while let Some(batch) = ctx.next_batch(&inlet) {
        let spent = match lock(&shared.state).as_mut() {
            Some((state, state_ctx)) => state.consume(state_ctx, batch).0,
            None => Vec::new(),
        };
        inlet.recycle(spent);
    }
    let (state, _) = lock(&shared.state).take()?;
    state.finish()
}
