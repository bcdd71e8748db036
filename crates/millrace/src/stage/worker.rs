//! The worker loop: how one thread of a stage takes batches in and sends results on.
//!
//! Every worker of a stage runs [`run_worker`] on its own thread, sharing the stage's inlet
//! (whichever worker is free takes the next batch) and holding its own outlet.
//!
//! # Per batch
//!
//! 1. Take a batch; if none is queued, first **flush** any partial output batch (so nothing
//!    waits downstream while this worker waits upstream), then wait. Time waited is *idle*.
//! 2. Run the stage's [`Logic`] on each item, inside one `catch_unwind` per batch that
//!    resumes after the item that panicked: a panic fails that item only, at no cost to the
//!    others. The worker's state is rebuilt from its factory after a panic.
//! 3. Hand the output on according to the stage's [`EmitMode`]; time waiting for room is
//!    *blocked*, the rest *busy*.
//! 4. Add the batch's counts to the worker's counter slot (a few relaxed atomics).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connector::{Inlet, Outlet, Poll};
use crate::control::Control;
use crate::error::{panic_message, ItemError, ItemErrorKind, RunErrorKind};
use crate::item::{Batch, Ids, ItemId};
use crate::metrics::{Counters, StageMetrics};
use crate::policy::ErrorPolicy;
use crate::reorder::Reorder;
use crate::response::{ResponseBatch, Status, Upstream};
use crate::stage::logic::{Logic, Step};
use crate::stage::DeadLetter;
use crate::window::Window;

pub(crate) type DeadLetterFn<T> = Arc<dyn Fn(DeadLetter<T>) + Send + Sync>;

/// How a stage hands its output on.
pub(crate) enum EmitMode<U> {
    /// Re-batch freely: fill output batches to the downstream batch size, flush partial ones
    /// before waiting for input, drop empty ones.
    Free,
    /// Exactly one output batch per input batch, with the input's sequence number, even when
    /// empty: an ordered stage downstream restores order by those numbers.
    Preserve,
    /// This stage is ordered: its output goes through a reorder buffer, then is numbered
    /// afresh for the next ordered region.
    Ordered(Box<OrderedEmit<U>>),
}

pub(crate) struct OrderedEmit<U> {
    pub(crate) reorder: Reorder<Batch<U>>,
    /// The window this stage's input was admitted through; advanced as batches leave.
    pub(crate) region: Arc<Window>,
    /// The window of the next ordered stage downstream, which this stage admits into.
    pub(crate) next_gate: Option<Arc<Window>>,
    pub(crate) next_seq: AtomicU64,
}

/// Everything the workers of one stage share.
pub(crate) struct StageCtx<T, U> {
    pub(crate) name: Arc<str>,
    pub(crate) metrics: Arc<StageMetrics>,
    pub(crate) policy: ErrorPolicy,
    pub(crate) dead_letter: Option<DeadLetterFn<T>>,
    pub(crate) out_batch: usize,
    pub(crate) emit: EmitMode<U>,
    /// Where responses for items that end in this stage go; `None` when the path is off.
    pub(crate) events: Option<Upstream>,
    /// Extra responses created by flat-maps, for the in-flight window's accounting.
    pub(crate) expanded: Option<Arc<AtomicU64>>,
    pub(crate) control: Arc<Control>,
    pub(crate) alive: AtomicUsize,
}

/// Per-batch tallies, added to the worker's counter slot once per batch.
#[derive(Default)]
struct Tally {
    out: u64,
    filtered: u64,
    failed: u64,
    retries: u64,
    expanded: u64,
}

pub(crate) fn run_worker<T, U, L, M>(
    ctx: Arc<StageCtx<T, U>>,
    index: usize,
    make: Arc<M>,
    inlet: Inlet<T>,
    outlet: Outlet<U>,
) where
    T: Send + 'static,
    U: Send + 'static,
    L: Logic<T, U>,
    M: Fn() -> L + Send + Sync + 'static,
{
    let counters = ctx.metrics.slot(index);
    let mut logic = make();
    let mut pending: Option<Batch<U>> = None;
    loop {
        let (batch, waited) = match inlet.poll() {
            Poll::Ready(batch) => (batch, Duration::ZERO),
            Poll::Closed => break,
            Poll::Empty => {
                if let Some(partial) = pending.take() {
                    ctx.send(&outlet, partial, counters);
                }
                match inlet.recv() {
                    Some(received) => received,
                    None => break,
                }
            }
        };
        counters.add_time(&counters.idle_ns, waited);
        counters.add(&counters.queue_len_sum, inlet.len() as u64);
        counters.add(&counters.queue_samples, 1);
        counters.add(&counters.batches, 1);
        counters.add(&counters.items_in, batch.len() as u64);
        if ctx.control.cancelled() {
            ctx.drop_unfinished(batch, counters);
            continue;
        }
        let start = Instant::now();
        let out = ctx.process(batch, &mut logic, &*make, counters);
        counters.add_time(&counters.busy_ns, start.elapsed());
        match &ctx.emit {
            EmitMode::Free => {
                let mut acc = match pending.take() {
                    None => out,
                    Some(mut acc) => {
                        acc.born = acc.born.min(out.born);
                        for id in out.ids.iter() {
                            acc.ids.push(id);
                        }
                        acc.items.extend(out.items);
                        acc
                    }
                };
                while acc.len() >= ctx.out_batch {
                    let rest = acc.split_off(ctx.out_batch);
                    ctx.send(&outlet, acc, counters);
                    acc = rest;
                }
                if !acc.is_empty() {
                    pending = Some(acc);
                }
            }
            EmitMode::Preserve => ctx.send(&outlet, out, counters),
            EmitMode::Ordered(ordered) => {
                let seq = out.seq;
                let released = ordered.reorder.insert(seq, out, |mut batch| {
                    if batch.is_empty() {
                        return;
                    }
                    batch.seq = ordered.next_seq.fetch_add(1, Ordering::Relaxed);
                    if let Some(gate) = &ordered.next_gate {
                        // A closed gate means a cancel; the send below then drops or delivers.
                        gate.admit(batch.seq);
                    }
                    ctx.send(&outlet, batch, counters);
                });
                ordered.region.advance(released);
            }
        }
    }
    if let Some(partial) = pending.take() {
        ctx.send(&outlet, partial, counters);
    }
    if ctx.alive.fetch_sub(1, Ordering::AcqRel) == 1 {
        // The last worker out: after a cancel, batches may wait behind a gap forever.
        if let EmitMode::Ordered(ordered) = &ctx.emit {
            for batch in ordered.reorder.drain() {
                ctx.drop_unfinished(batch, counters);
            }
        }
    }
}

impl<T: Send + 'static, U: Send + 'static> StageCtx<T, U> {
    fn process<L, M>(
        &self,
        batch: Batch<T>,
        logic: &mut L,
        make: &M,
        counters: &Counters,
    ) -> Batch<U>
    where
        L: Logic<T, U>,
        M: Fn() -> L,
    {
        let Batch {
            seq,
            born,
            ids,
            items,
        } = batch;
        let mut out = Batch::new(seq, born, items.len());
        let mut tally = Tally::default();
        let mut events = Vec::new();
        let mut items = items.into_iter();
        let mut next = 0usize;
        loop {
            let run = catch_unwind(AssertUnwindSafe(|| {
                for item in items.by_ref() {
                    let id = ids.get(next);
                    next += 1;
                    self.handle(id, item, logic, &mut out, &mut tally, &mut events);
                }
            }));
            match run {
                Ok(()) => break,
                Err(payload) => {
                    // Outputs pushed by the item that panicked have no ids yet: drop them.
                    out.items.truncate(out.ids.len());
                    let id = ids.get(next - 1);
                    let kind = ItemErrorKind::Panicked(panic_message(&*payload));
                    tally.failed += 1;
                    self.fail(id, None, 1, kind, &mut events);
                    *logic = make();
                }
            }
        }
        counters.add(&counters.items_out, tally.out);
        counters.add(&counters.filtered, tally.filtered);
        counters.add(&counters.failed, tally.failed);
        counters.add(&counters.retries, tally.retries);
        if let Some(expanded) = &self.expanded {
            if tally.expanded > 0 {
                expanded.fetch_add(tally.expanded, Ordering::AcqRel);
            }
        }
        if let Some(events_to) = &self.events {
            events_to.send(ResponseBatch::Ended(events));
        }
        out
    }

    #[inline]
    fn handle<L: Logic<T, U>>(
        &self,
        id: ItemId,
        item: T,
        logic: &mut L,
        out: &mut Batch<U>,
        tally: &mut Tally,
        events: &mut Vec<(ItemId, Status)>,
    ) {
        let mut item = item;
        let mut attempt = 1;
        loop {
            match logic.call(item, &mut out.items) {
                Step::Emitted(n) => {
                    for _ in 0..n {
                        out.ids.push(id);
                    }
                    tally.out += n as u64;
                    tally.expanded += n as u64 - 1;
                    return;
                }
                Step::Filtered => {
                    tally.filtered += 1;
                    if self.events.is_some() {
                        let stage = Arc::clone(&self.name);
                        events.push((id, Status::Filtered { stage }));
                    }
                    return;
                }
                Step::Failed(Some(back), _)
                    if attempt < self.policy.attempts() && !self.control.cancelled() =>
                {
                    attempt += 1;
                    tally.retries += 1;
                    if let ErrorPolicy::Retry(retry) = &self.policy {
                        std::thread::sleep(retry.delay_before(attempt));
                    }
                    item = back;
                }
                Step::Failed(back, kind) => {
                    tally.failed += 1;
                    self.fail(id, back, attempt, kind, events);
                    return;
                }
            }
        }
    }

    /// An item failed for good: log it, dead-letter it, respond, and stop if the policy says.
    fn fail(
        &self,
        id: ItemId,
        item: Option<T>,
        attempts: u32,
        kind: ItemErrorKind,
        events: &mut Vec<(ItemId, Status)>,
    ) {
        let error = ItemError::new(id, Arc::clone(&self.name), attempts, kind);
        self.control.log_error(&error);
        if let Some(dead_letter) = &self.dead_letter {
            let letter = DeadLetter {
                id,
                error: error.clone(),
                item,
            };
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| dead_letter(letter))) {
                self.control.hook_panicked(format!(
                    "dead-letter handler of stage `{}` panicked: {}",
                    self.name,
                    panic_message(&*payload)
                ));
            }
        }
        if self.policy.stops() {
            self.control.fail(RunErrorKind::Item(error.clone()));
        }
        if self.events.is_some() {
            events.push((id, Status::Failed(error)));
        }
    }

    /// Sends `batch` on; if downstream is gone (a cancel), its items are unfinished.
    fn send(&self, outlet: &Outlet<U>, batch: Batch<U>, counters: &Counters) {
        if batch.is_empty() && matches!(self.emit, EmitMode::Free) {
            return;
        }
        match outlet.send(batch) {
            Ok(waited) => counters.add_time(&counters.blocked_ns, waited),
            Err(batch) => self.drop_unfinished(batch, counters),
        }
    }

    fn drop_unfinished<V>(&self, batch: Batch<V>, counters: &Counters) {
        drop_unfinished(&self.control, self.events.as_ref(), batch.ids, counters);
    }
}

/// Records the items of a batch a cancel dropped: counted, listed by id, and answered.
pub(crate) fn drop_unfinished(
    control: &Control,
    events: Option<&Upstream>,
    ids: Ids,
    counters: &Counters,
) {
    counters.add(&counters.cancelled, ids.len() as u64);
    control.record_unfinished(ids.iter());
    if let Some(events) = events {
        events.send(ResponseBatch::Ended(
            ids.iter().map(|id| (id, Status::Cancelled)).collect(),
        ));
    }
}
