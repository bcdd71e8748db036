//! Processing one batch in one stage: the per-item loop, panics, retries and failures.
//!
//! [`StageCtx::process`] runs a stage's [`Logic`] over a batch inside one `catch_unwind` that
//! resumes after the item that panicked, so a panic fails that item only and costs nothing
//! otherwise. A map (one output per input) keeps the batch's ids as they are; other forms
//! rebuild them as they emit. Failures are logged, dead-lettered, answered on the response
//! path and, under [`ErrorPolicy::Stop`], stop the pipeline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::control::Control;
use crate::error::{panic_message, ItemError, ItemErrorKind, RunErrorKind};
use crate::item::{Batch, Ids, ItemId};
use crate::metrics::{Activity, Counters, StageMetrics};
use crate::policy::ErrorPolicy;
use crate::response::{ResponseBatch, Status, Upstream};
use crate::stage::dead_letter::{DeadLetter, DeadLetterFn};
use crate::stage::in_place::{recast, worth_in_place, InPlace};
use crate::stage::logic::{Logic, Step};

/// Everything the workers of one stage share for processing.
pub(crate) struct StageCtx<T> {
    pub(crate) name: Arc<str>,
    pub(crate) metrics: Arc<StageMetrics>,
    pub(crate) policy: ErrorPolicy,
    pub(crate) dead_letter: Option<DeadLetterFn<T>>,
    /// Where responses for items that end in this stage go; `None` when the path is off.
    pub(crate) events: Option<Upstream>,
    /// Extra responses created by flat-maps, for the in-flight window's accounting.
    pub(crate) expanded: Option<Arc<AtomicU64>>,
    pub(crate) control: Arc<Control>,
}

/// One batch step of a segment's pipeline of stages: one worker's processing of one stage.
pub(crate) trait Process<T, U>: Send {
    /// Processes `batch` onto `out` and returns it with the input's vector, emptied, for
    /// recycling (see [`crate::pool`]). `out` is an empty batch with the input's number and
    /// birth (its vector recycled when one was at hand) or a partial output batch of this
    /// worker's still waiting for company, whose items and ids the outputs extend (no copy
    /// of them later). `started` is when the batch came in, if the caller knows (the end of
    /// the stage before in a fused chain: one clock read serves both); the batch's end comes
    /// back, for the stage after.
    fn process(
        &mut self,
        batch: Batch<T>,
        out: Batch<U>,
        started: Option<Instant>,
    ) -> (Batch<U>, Vec<T>, Instant);

    /// Whether every item gives at most one output (a map, a filter, a fallible map): a
    /// batch's outputs then fit wherever its inputs would.
    fn at_most_one_out(&self) -> bool;

    /// Whether the stage maps each item in its batch's own vector (a map whose output type
    /// has its input's layout, see [`in_place`](crate::stage::in_place)): given an empty
    /// output batch with no vector, it needs none.
    fn maps_in_place(&self) -> bool;
}

/// Makes a worker's [`Process`] for a stage, given the stage's context and the worker index
/// (shared: a stage fused at the start is built twice, see `segment::standby`).
pub(crate) type MakeProcess<T, U> =
    Arc<dyn Fn(&Arc<StageCtx<T>>, usize) -> Box<dyn Process<T, U>> + Send + Sync>;

/// A worker's processing of one stage with logic `L`, built by `make` (a `map_with` state's
/// `init`) on the worker's thread before its first batch, and rebuilt after a panic. A
/// panicking `make` cannot be retried usefully: the run fails, naming the stage
/// ([`RunErrorKind::InitPanicked`]), and is cancelled.
pub(crate) struct StageWorker<T, L, M> {
    pub(crate) ctx: Arc<StageCtx<T>>,
    pub(crate) worker: usize,
    pub(crate) logic: Option<L>,
    pub(crate) make: Arc<M>,
}

impl<T, U, L, M> Process<T, U> for StageWorker<T, L, M>
where
    T: Send + 'static,
    U: Send + 'static,
    L: Logic<T, U>,
    M: Fn() -> L + Send + Sync + 'static,
{
    fn at_most_one_out(&self) -> bool {
        L::AT_MOST_ONE
    }

    fn maps_in_place(&self) -> bool {
        maps_in_place::<T, U, L>()
    }

    fn process(
        &mut self,
        batch: Batch<T>,
        out: Batch<U>,
        started: Option<Instant>,
    ) -> (Batch<U>, Vec<T>, Instant) {
        let _span = (self.ctx.control.trace).batch(&self.ctx.name, batch.seq, batch.len());
        let counters = self.ctx.metrics.slot(self.worker);
        counters.add(&counters.batches, 1);
        counters.add(&counters.items_in, batch.len() as u64);
        let start = started.unwrap_or_else(Instant::now);
        counters.enter(Activity::Busy, start - self.ctx.control.signals.started);
        if self.logic.is_none() {
            self.logic = self.ctx.build(&*self.make);
        }
        let (out, spent) = self
            .ctx
            .process(batch, out, &mut self.logic, &*self.make, counters);
        let end = Instant::now();
        // Out of `Busy` first: a tally in between misses this batch for a moment rather
        // than counting it twice (see `StageMetrics::tally_at`).
        counters.enter(Activity::Between, end - self.ctx.control.signals.started);
        counters.add_time(&counters.busy_ns, end - start);
        (out, spent, end)
    }
}

/// Per-batch tallies, added to the worker's counter slot once per batch.
#[derive(Default)]
struct Tally {
    out: u64,
    cancelled: u64,
    filtered: u64,
    failed: u64,
    retries: u64,
    expanded: u64,
}

impl<T: Send + 'static> StageCtx<T> {
    /// Builds a worker's logic (its state), catching a panic: that fails the run, naming the
    /// stage, and cancels it (`None` then).
    pub(crate) fn build<L>(&self, make: &impl Fn() -> L) -> Option<L> {
        match self.control.catch(make) {
            Ok(logic) => Some(logic),
            Err(payload) => {
                self.control.fail_hard(RunErrorKind::InitPanicked {
                    stage: self.name.to_string(),
                    message: panic_message(&*payload),
                });
                None
            }
        }
    }

    /// Runs `logic` over a batch, onto `out` (empty and numbered and born like the batch, or a
    /// partial batch its outputs extend);
    /// with no logic (its state could not be built), every item is dropped as unfinished.
    pub(crate) fn process<U, L, M>(
        &self,
        batch: Batch<T>,
        mut out: Batch<U>,
        logic: &mut Option<L>,
        make: &M,
        counters: &Counters,
    ) -> (Batch<U>, Vec<T>)
    where
        L: Logic<T, U>,
        M: Fn() -> L,
    {
        if maps_in_place::<T, U, L>() && out.items.is_empty() {
            return self.map_in_place(batch, out, logic, make, counters);
        }
        let Batch {
            born,
            ids,
            items: mut spent,
            ..
        } = batch;
        let total = spent.len();
        // What `out` held before (a partial batch's items, each with its id).
        let base = out.items.len();
        debug_assert_eq!(base, out.ids.len(), "a partial batch's ids do not line up");
        // A partial batch keeps its number and is as old as its oldest item.
        out.born = out.born.min(born);
        out.items.reserve(total);
        let mut tally = Tally::default();
        let mut events = Vec::new();
        // Draining keeps the input's vector, to hand back for recycling.
        let mut items = spent.drain(..);
        let mut next = 0usize;
        // Positions (in the input) of items that panicked in a one-to-one stage.
        let mut panicked = Vec::new();
        while let Some(logic_now) = logic.as_mut() {
            let run = self.control.catch(|| {
                let logic = logic_now;
                if L::ONE_TO_ONE {
                    // A map: outputs line up with inputs, so ids need no bookkeeping, and
                    // the batch maps in one `extend` the compiler can unroll.
                    out.items
                        .extend(items.by_ref().map(|item| logic.map_one(item)));
                    next = total;
                } else {
                    for item in items.by_ref() {
                        let id = ids.get(next);
                        next += 1;
                        self.handle(id, item, logic, &mut out, &mut tally, &mut events);
                    }
                }
            });
            match run {
                Ok(()) => break,
                Err(payload) => {
                    if L::ONE_TO_ONE {
                        // The item that panicked was the last one taken from `items`.
                        next = total - items.len();
                    }
                    let id = ids.get(next - 1);
                    if L::ONE_TO_ONE {
                        // `next - 1` items went in before this one, less those that panicked.
                        out.items.truncate(base + next - 1 - panicked.len());
                        panicked.push(next - 1);
                    } else {
                        // Outputs pushed by the item that panicked have no ids yet.
                        out.items.truncate(out.ids.len());
                    }
                    let kind = ItemErrorKind::Panicked(panic_message(&*payload));
                    tally.failed += 1;
                    self.fail(id, None, 1, kind, &mut events);
                    *logic = self.build(make);
                }
            }
        }
        if logic.is_none() {
            // The state could not be (re)built: the rest of the batch is unfinished.
            let start = total - items.len();
            self.unfinished(&ids, start..total, &mut tally, &mut events);
            if L::ONE_TO_ONE {
                panicked.extend(start..total);
            }
            items.by_ref().for_each(drop);
        }
        if L::ONE_TO_ONE {
            tally.out = (out.items.len() - base) as u64;
            let mapped = kept_ids(ids, &panicked);
            if base == 0 {
                out.ids = mapped;
            } else {
                out.ids.append(&mapped);
            }
        }
        drop(items);
        self.settle(&tally, counters, events);
        (out, spent)
    }

    /// [`process`](Self::process) for a map whose output type has its input's layout, onto
    /// an empty `out`: each output is written over its input, in the batch's vector (see
    /// [`in_place`](crate::stage::in_place)), which becomes the output batch's. `out`'s
    /// unused vector is handed back, as one of the input type, for recycling.
    fn map_in_place<U, L, M>(
        &self,
        batch: Batch<T>,
        mut out: Batch<U>,
        logic: &mut Option<L>,
        make: &M,
        counters: &Counters,
    ) -> (Batch<U>, Vec<T>)
    where
        L: Logic<T, U>,
        M: Fn() -> L,
    {
        let Batch {
            born, ids, items, ..
        } = batch;
        let total = items.len();
        out.born = out.born.min(born);
        let mut tally = Tally::default();
        let mut events = Vec::new();
        // Positions (in the input) of items that panicked.
        let mut panicked = Vec::new();
        let mut mapping = InPlace::<T, U>::new(items);
        while let Some(logic_now) = logic.as_mut() {
            let run = self
                .control
                .catch(|| mapping.map_rest(|item| logic_now.map_one(item)));
            match run {
                Ok(()) => break,
                Err(payload) => {
                    // The item that panicked was the last one read.
                    let at = mapping.read() - 1;
                    panicked.push(at);
                    let kind = ItemErrorKind::Panicked(panic_message(&*payload));
                    tally.failed += 1;
                    self.fail(ids.get(at), None, 1, kind, &mut events);
                    *logic = self.build(make);
                }
            }
        }
        if logic.is_none() {
            // The state could not be (re)built: the rest of the batch is unfinished.
            let start = mapping.read();
            self.unfinished(&ids, start..total, &mut tally, &mut events);
            panicked.extend(start..total);
        }
        let unused = std::mem::replace(&mut out.items, mapping.finish());
        tally.out = out.items.len() as u64;
        out.ids = kept_ids(ids, &panicked);
        self.settle(&tally, counters, events);
        (out, recast(unused))
    }

    /// The items at positions `range` of a batch with `ids` are unfinished: the stage's state
    /// could not be rebuilt after a panic.
    fn unfinished(
        &self,
        ids: &Ids,
        range: std::ops::Range<usize>,
        tally: &mut Tally,
        events: &mut Vec<(ItemId, Status)>,
    ) {
        if range.is_empty() {
            return;
        }
        let mut unfinished = Ids::default();
        for i in range.clone() {
            unfinished.push(ids.get(i));
        }
        tally.cancelled += range.len() as u64;
        self.control.ledger.record_unfinished(unfinished.iter());
        if self.events.is_some() {
            events.extend(unfinished.iter().map(|id| (id, Status::Cancelled)));
        }
    }

    /// Adds a batch's tallies to the worker's counters and answers its items' ends upstream.
    fn settle(&self, tally: &Tally, counters: &Counters, events: Vec<(ItemId, Status)>) {
        counters.add(&counters.items_out, tally.out);
        counters.add(&counters.filtered, tally.filtered);
        counters.add(&counters.failed, tally.failed);
        counters.add(&counters.retries, tally.retries);
        counters.add(&counters.cancelled, tally.cancelled);
        counters.add(&counters.expanded, tally.expanded);
        if let Some(expanded) = &self.expanded {
            if tally.expanded > 0 {
                expanded.fetch_add(tally.expanded, Ordering::AcqRel);
            }
        }
        if let Some(events_to) = &self.events {
            events_to.send(ResponseBatch::Ended(events));
        }
    }

    #[inline]
    fn handle<U, L: Logic<T, U>>(
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
                Step::Emitted(1) => {
                    out.ids.push(id);
                    tally.out += 1;
                    return;
                }
                Step::Emitted(n) => {
                    // Children of their own: `#id.1`, `#id.2`, …
                    for position in 1..=n {
                        out.ids
                            .push(id.child(u32::try_from(position).unwrap_or(u32::MAX)));
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
                Step::Failed(Some(_), _)
                    if attempt < self.policy.attempts() && self.control.signals.cancelled() =>
                {
                    // A cancel between two tries: the item is unfinished, not failed.
                    tally.cancelled += 1;
                    self.control.ledger.record_unfinished([id]);
                    if self.events.is_some() {
                        events.push((id, Status::Cancelled));
                    }
                    return;
                }
                Step::Failed(Some(back), _) if attempt < self.policy.attempts() => {
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
    pub(crate) fn fail(
        &self,
        id: ItemId,
        item: Option<T>,
        attempts: u32,
        kind: ItemErrorKind,
        events: &mut Vec<(ItemId, Status)>,
    ) {
        let error = ItemError::new(id, Arc::clone(&self.name), attempts, kind);
        self.control.ledger.log_error(&error);
        if let Some(dead_letter) = &self.dead_letter {
            let letter = DeadLetter {
                id,
                error: error.clone(),
                item,
            };
            if let Err(payload) = self.control.catch(|| dead_letter(letter)) {
                self.control.ledger.hook_panicked(format!(
                    "dead-letter handler of stage `{}` panicked on item {id}: {}",
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
}

/// Whether a stage of logic `L` maps in place: one output per input, of the input's layout
/// (see [`worth_in_place`]). The pull chain and the processing decide by it alike.
fn maps_in_place<T, U, L: Logic<T, U>>() -> bool {
    L::ONE_TO_ONE && worth_in_place::<T, U>()
}

/// A map's output ids: the batch's, less those at the `panicked` positions (ascending).
fn kept_ids(ids: Ids, panicked: &[usize]) -> Ids {
    if panicked.is_empty() {
        return ids;
    }
    let mut kept = Ids::default();
    let mut skip = panicked.iter().peekable();
    for (i, id) in ids.iter().enumerate() {
        if skip.peek() == Some(&&i) {
            skip.next();
        } else {
            kept.push(id);
        }
    }
    kept
}

#[cfg(all(test, not(loom)))]
#[path = "process_tests.rs"]
pub(crate) mod tests;
