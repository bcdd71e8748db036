//! The sink: the end of a pipeline, where outputs are consumed.
//!
//! A sink is a closure ([`for_each`](crate::PipelineBuilder::for_each)), a fold that returns
//! a value ([`fold`](crate::PipelineBuilder::fold), [`collect`](crate::PipelineBuilder::collect)),
//! an iterator on the calling thread ([`outputs`](crate::PipelineBuilder::outputs)), or the
//! response path back to the submitter ([`respond`](crate::PipelineBuilder::respond)). The
//! first three run on one sink thread, and while they are cheap behind a last stage of
//! fixed workers, on those workers ([`direct`]); all take whole batches off the last
//! connector.
//!
//! The sink also samples latency: per batch, the age of its oldest item.
//!
//! A `for_each` closure that panics fails that item only; a `try_for_each` closure that
//! returns an error (or panics) fails that item under the pipeline's error policy (retried,
//! skipped, or stopping the run). A `fold` that panics has lost its accumulator, so the run
//! fails and is cancelled.

mod close;
pub(crate) mod direct;
pub(crate) mod outputs;

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connector::Inlet;
use crate::control::Control;
use crate::error::{panic_message, BoxError, ItemError, ItemErrorKind, RunErrorKind};
use crate::item::{Batch, Ids, ItemId};
use crate::metrics::{Activity, Counters, StageMetrics};
use crate::policy::ErrorPolicy;
use crate::response::drop_unfinished;
use crate::response::{Carried, ResponseBatch, Status, Upstream};
use crate::sync::lock;

/// The name errors and reports give the sink.
pub(crate) const SINK: &str = "sink";

/// Consumes a batch item by item; returns the ids of the items consumed without a panic,
/// and the batch's vector, emptied, for recycling.
pub(crate) type EachFn<T> = Box<dyn FnMut(&SinkCtx, Batch<T>) -> (Ids, Vec<T>) + Send>;
/// Folds the items a batch's drain yields into the accumulator (the vector stays, for
/// recycling). After a panic, the drain still holds the items not yet yielded, so the sink
/// knows which item panicked.
pub(crate) type FoldFn<T, R> = Box<dyn FnMut(R, &mut std::vec::Drain<'_, T>) -> R + Send>;

/// What a sink thread does with items. The closures take whole batches and are built where
/// the user's closure type is known, so the per-item loop has no dynamic call.
pub(crate) enum SinkFn<T, R> {
    /// Consume each item; a panic fails that item.
    Each(EachFn<T>, Box<dyn FnOnce() -> R + Send>),
    /// Fold items into a value; a panic is fatal.
    Fold(FoldFn<T, R>, R),
}

pub(crate) struct SinkCtx {
    pub(crate) control: Arc<Control>,
    pub(crate) metrics: Arc<StageMetrics>,
    pub(crate) events: Option<Upstream>,
    /// When the last batch was taken, and its items: the time until the next is asked for
    /// is what the sink took to consume it, which the connector's batch size learns from.
    /// (Only the thread that consumes the batches touches it.)
    pub(crate) taken: Cell<Option<(Instant, usize)>>,
}

impl SinkCtx {
    fn counters(&self) -> &Counters {
        self.metrics.slot(0)
    }

    /// Takes the next batch, accounting for the wait; `None` at the end of input. Batches
    /// that arrive after a cancel are dropped as unfinished.
    pub(crate) fn next_batch<T>(&self, inlet: &Inlet<T>) -> Option<Batch<T>> {
        let counters = self.counters();
        if let Some((at, items)) = self.taken.take() {
            inlet.batch_size().used(items, at.elapsed());
        }
        loop {
            let (batch, queued, waited) =
                inlet.take(|| counters.enter(Activity::Idle, self.control.signals.now()))?;
            counters.enter(Activity::Busy, self.control.signals.now());
            counters.add_time(&counters.idle_ns, waited);
            counters.add(&counters.queue_len_sum, queued);
            counters.add(&counters.queue_samples, 1);
            let Ok(batch) = self.accept(batch) else {
                continue;
            };
            self.taken.set(Some((Instant::now(), batch.len())));
            return Some(batch);
        }
    }

    /// Counts a batch the sink took in, however it came (off the connector, or from the
    /// worker in front of it: [`direct`]); after a cancel, drops its items as unfinished and
    /// hands back the emptied vector, else samples its latency and hands it back.
    pub(crate) fn accept<T>(&self, batch: Batch<T>) -> Result<Batch<T>, Vec<T>> {
        let counters = self.counters();
        counters.add(&counters.batches, 1);
        counters.add(&counters.items_in, batch.len() as u64);
        if self.control.signals.cancelled() {
            let Batch { ids, mut items, .. } = batch;
            drop_unfinished(&self.control, self.events.as_ref(), ids, counters);
            items.clear();
            return Err(items);
        }
        lock(&self.control.ledger.latency).record(batch.born.elapsed(), batch.len() as u64);
        Ok(batch)
    }

    /// Counts a batch's items as delivered and answers them upstream.
    pub(crate) fn delivered(&self, ids: Ids, outputs: Option<Box<dyn std::any::Any + Send>>) {
        let counters = self.counters();
        counters.add(&counters.items_out, ids.len() as u64);
        if let Some(events) = &self.events {
            events.send(ResponseBatch::Delivered { ids, outputs });
        }
    }
}

/// What a sink does with batches, between them: its closure and, for a fold, the value so
/// far. Whoever consumes a batch (the sink thread, or the worker in front of it while the
/// sink is cheap: see [`direct`]) holds it under one lock, so the closure never runs twice at
/// once.
pub(crate) struct SinkState<T, R> {
    consumer: Consumer<T, R>,
    /// A fold's value, `None` once a panic lost it.
    acc: Option<R>,
}

enum Consumer<T, R> {
    Each(EachFn<T>, Box<dyn FnOnce() -> R + Send>),
    Fold(FoldFn<T, R>),
}

impl<T, R> SinkState<T, R> {
    pub(crate) fn new(sink: SinkFn<T, R>) -> Self {
        match sink {
            SinkFn::Each(each, finish) => SinkState {
                consumer: Consumer::Each(each, finish),
                acc: None,
            },
            SinkFn::Fold(fold, init) => SinkState {
                consumer: Consumer::Fold(fold),
                acc: Some(init),
            },
        }
    }

    /// Consumes an accepted batch (see [`SinkCtx::accept`]), counting its time as the
    /// sink's; returns its vector, emptied, for recycling, and that time.
    pub(crate) fn consume(&mut self, ctx: &SinkCtx, batch: Batch<T>) -> (Vec<T>, Duration) {
        let start = Instant::now();
        let spent = match &mut self.consumer {
            Consumer::Each(each, _) => {
                let (delivered, spent) = each(ctx, batch);
                ctx.delivered(delivered, None);
                spent
            }
            Consumer::Fold(fold) => {
                let Batch {
                    mut ids, mut items, ..
                } = batch;
                let total = items.len();
                let acc = &mut self.acc;
                let mut rest = items.drain(..);
                let folded = ctx.control.catch(|| Some(fold(acc.take()?, &mut rest)));
                let left = rest.len();
                drop(rest);
                match folded {
                    Ok(Some(value)) => {
                        *acc = Some(value);
                        ctx.delivered(ids, None);
                    }
                    // The value was lost to an earlier panic: unfinished.
                    Ok(None) => {
                        drop_unfinished(&ctx.control, ctx.events.as_ref(), ids, ctx.counters());
                    }
                    Err(payload) => {
                        // The items before the one that panicked were folded, as every
                        // batch before this one was; that one failed; the value is lost,
                        // and the items after it are unfinished, like everything still on
                        // its way (the cancel drops it). (The counts used to depend on
                        // where the batches were cut: the whole batch was unfinished.)
                        let message = panic_message(&*payload);
                        let folded = total.saturating_sub(left + 1);
                        let mut failed = ids.split_off(folded.min(ids.len()));
                        let after = failed.split_off(1.min(failed.len()));
                        ctx.delivered(ids, None);
                        if failed.len() == 1 {
                            let kind = ItemErrorKind::Panicked(message.clone());
                            fail_in_sink(ctx, failed.get(0), 1, kind, false);
                        }
                        ctx.control.fail_hard(RunErrorKind::SinkPanicked(message));
                        drop_unfinished(&ctx.control, ctx.events.as_ref(), after, ctx.counters());
                    }
                }
                items
            }
        };
        let took = start.elapsed();
        let counters = ctx.counters();
        counters.add_time(&counters.busy_ns, took);
        (spent, took)
    }

    /// The sink's result once every batch is consumed: `None` if a fold's value was lost.
    pub(crate) fn finish(self) -> Option<R> {
        match self.consumer {
            Consumer::Each(_, finish) => Some(finish()),
            Consumer::Fold(_) => self.acc,
        }
    }
}

/// Feeds a batch to a `for_each` closure, item by item, resuming after a panic. Returns
/// the ids of the items it consumed without panicking.
pub(crate) fn consume_each<T, F: FnMut(T)>(
    ctx: &SinkCtx,
    batch: Batch<T>,
    each: &mut F,
) -> (Ids, Vec<T>) {
    let Batch {
        ids,
        items: mut spent,
        ..
    } = batch;
    let mut items = spent.drain(..);
    let mut next = 0usize;
    let mut delivered = Ids::default();
    loop {
        let run = ctx.control.catch(|| {
            for item in items.by_ref() {
                next += 1;
                each(item);
                delivered.push(ids.get(next - 1));
            }
        });
        match run {
            Ok(()) => {
                drop(items);
                return (delivered, spent);
            }
            Err(payload) => {
                let id = ids.get(next - 1);
                let kind = ItemErrorKind::Panicked(panic_message(&*payload));
                fail_in_sink(ctx, id, 1, kind, false);
            }
        }
    }
}

/// Feeds a batch to a `try_for_each` closure, item by item. An item whose closure returns
/// an error or panics is tried again as `policy` says (the closure borrows it, so it is
/// still there), then fails; under a stopping policy the run stops after it. Returns the
/// ids of the items consumed without failing.
pub(crate) fn consume_each_fallible<T, E, F>(
    ctx: &SinkCtx,
    batch: Batch<T>,
    policy: ErrorPolicy,
    each: &mut F,
) -> (Ids, Vec<T>)
where
    E: Into<BoxError>,
    F: FnMut(&T) -> Result<(), E>,
{
    let Batch { ids, mut items, .. } = batch;
    let mut delivered = Ids::default();
    for (index, item) in items.iter().enumerate() {
        let id = ids.get(index);
        let mut attempt = 1;
        loop {
            let kind = match ctx.control.catch(|| each(item)) {
                Ok(Ok(())) => {
                    delivered.push(id);
                    break;
                }
                Ok(Err(e)) => ItemErrorKind::Failed(Arc::from(e.into())),
                Err(payload) => ItemErrorKind::Panicked(panic_message(&*payload)),
            };
            if attempt >= policy.attempts() {
                fail_in_sink(ctx, id, attempt, kind, policy.stops());
                break;
            }
            if ctx.control.signals.cancelled() {
                // A cancel between two tries: the item is unfinished, not failed.
                let mut unfinished = Ids::default();
                unfinished.push(id);
                drop_unfinished(
                    &ctx.control,
                    ctx.events.as_ref(),
                    unfinished,
                    ctx.counters(),
                );
                break;
            }
            attempt += 1;
            let counters = ctx.counters();
            counters.add(&counters.retries, 1);
            if let ErrorPolicy::Retry(retry) = &policy {
                std::thread::sleep(retry.delay_before(attempt));
            }
        }
    }
    items.clear();
    (delivered, items)
}

/// An item failed for good in the sink: log it, count it, answer it upstream, and stop the
/// run if the policy says.
fn fail_in_sink(ctx: &SinkCtx, id: ItemId, attempts: u32, kind: ItemErrorKind, stops: bool) {
    let error = ItemError::new(id, Arc::from(SINK), attempts, kind);
    ctx.control.ledger.log_error(&error);
    let counters = ctx.counters();
    counters.add(&counters.failed, 1);
    if stops {
        ctx.control.fail(RunErrorKind::Item(error.clone()));
    }
    if let Some(events) = &ctx.events {
        events.send(ResponseBatch::Ended(vec![(id, Status::Failed(error))]));
    }
}

/// The sink of a serving pipeline: outputs go back to the submitter with their ids.
pub(crate) fn run_serve_sink<T: Send + 'static>(inlet: Inlet<T>, ctx: SinkCtx) -> Option<()> {
    while let Some(batch) = ctx.next_batch(&inlet) {
        let Batch { ids, items, .. } = batch;
        let carried = Carried {
            values: items,
            stock: inlet.stock(),
        };
        ctx.delivered(ids, Some(Box::new(carried)));
    }
    Some(())
}
