//! The worker loop: how one thread takes batches in, runs them through its stages, and sends
//! the results on.
//!
//! A *segment* is a run of stages that share workers: one stage normally, several adjacent
//! stages with equal worker counts when the pipeline fuses them
//! ([`PipelineBuilder::fuse`](crate::PipelineBuilder::fuse)). Each worker of a segment runs
//! [`run_worker`] on its own thread. Its input is a [`Pull`] chain (`segment::pull`): the
//! segment's inlet (shared by all its workers, so whichever is free takes the next batch),
//! then each stage in turn. Its output goes through the segment's [`Emitter`].
//!
//! # Per batch
//!
//! 1. Poll for a batch; if none is queued, first **flush** any partial output batch (so
//!    nothing waits downstream while this worker waits upstream), then wait. Time waited is
//!    the first stage's *idle* time.
//! 2. Each stage processes the whole batch (see [`crate::stage::process`]), timing its *busy* time.
//! 3. The emitter hands the output on according to the last stage's [`EmitMode`]; time
//!    waiting for room is the last stage's *blocked* time.
//!
//! Batch vectors are recycled ([`crate::pool`]): each stage fills a vector the stage after
//! it emptied (for the segment's last stage, one the next segment gave back through the
//! connector's pool) and hands its emptied input vector back up the chain.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::autoscale::Scalable;
use crate::batch_size::BatchSize;
use crate::connector::{Outlet, Poll};
use crate::control::Control;
use crate::error::{BuildError, RunErrorKind};
use crate::item::Batch;
use crate::metrics::{Activity, Counters, StageMetrics};
use crate::reorder::Reorder;
use crate::response::{drop_processed, Upstream};
use crate::sync::{lock, Mutex};
use crate::window::Window;

use super::crew::Crew;
use super::handover::Handover;
use super::pull::{MakePull, Pull};
use crate::pipeline::sink::direct::DirectSink;

/// How a segment hands its output on.
pub(crate) enum EmitMode<U> {
    /// Re-batch freely: fill output batches to the downstream connector's batch size (which
    /// may change between batches), flush partial ones
    /// before waiting for input, drop empty ones.
    Free,
    /// Exactly one output batch per input batch, with the input's sequence number, even when
    /// empty: an ordered stage downstream restores order by those numbers.
    Preserve,
    /// The last stage is ordered: output goes through a reorder buffer, then is numbered
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
    /// The batch sizes of the connectors after this stage's outlet that carry its batches
    /// whole (up to the next ordered stage).
    pub(crate) carried: Vec<Arc<BatchSize>>,
}

/// The fewest outputs a worker hands to a sink it consumes itself (`Emitter::direct`) without
/// merging them with others first. A direct hand-over costs a lock and two clock reads
/// (about 0.1–0.2 µs here), under a nanosecond an item from 256 on; merging outputs into
/// the sink's batch size (4,096) copied them once more, and kept the last stage of W1 from
/// mapping in place: W1 written with `.capacity(1024)` (one thread, 1,024-item batches) went
/// from 0.203 to 0.163 s for 40 M items with both (medians, `stage::in_place`). Smaller
/// outputs are still merged (onto a waiting partial batch, see `Pull::offer_partial`).
const DIRECT_AS_IS: usize = 256;

/// The most items a freely re-batched output batch goes on with: what the next stage takes in
/// one batch (see `BatchSize::most`), and never less than the size it fills to.
fn free_room(size: &BatchSize) -> usize {
    size.most().max(size.get())
}

/// Hands `batch` to `each` in pieces of at most `most` items, in order; each piece's items
/// move once (cut from the back). A batch that fits goes whole, with nothing allocated.
fn in_pieces<U>(batch: Batch<U>, most: usize, outlet: &Outlet<U>, mut each: impl FnMut(Batch<U>)) {
    let most = most.max(1);
    if batch.len() <= most {
        return each(batch);
    }
    let mut batch = batch;
    let mut tails = Vec::with_capacity(batch.len().div_ceil(most) - 1);
    while batch.len() > most {
        let at = (batch.len() - 1) / most * most;
        let room = outlet.fresh(batch.len() - at);
        tails.push(batch.split_off_into(at, room));
    }
    each(batch);
    tails.into_iter().rev().for_each(each);
}

/// The output side of a segment, shared by its workers.
pub(crate) struct Emitter<U> {
    pub(crate) mode: EmitMode<U>,
    /// The last stage's counters (for blocked time and cancelled items).
    pub(crate) metrics: Arc<StageMetrics>,
    pub(crate) events: Option<Upstream>,
    pub(crate) control: Arc<Control>,
    /// The segment's live workers; the last one out cleans up.
    pub(crate) crew: Crew,
    /// For a segment that may grow (autoscaled, or fixed and started lazily): how to start
    /// more workers.
    pub(crate) growth: Option<Growth<U>>,
    /// For stages fused at the start that may split (see `plan::fuse_at_the_start`): how
    /// they hand over to segments of their own.
    pub(crate) handover: Option<Handover>,
    /// The sink, for the fixed workers in front of it to consume its batches themselves
    /// while that is cheap (see `pipeline::sink::direct`).
    pub(crate) direct: Option<Arc<dyn DirectSink<U>>>,
}

/// What a segment needs to start workers while it runs (an autoscaled one, or a fixed one
/// that started fewer than its count).
pub(crate) struct Growth<U> {
    pub(crate) make_pull: MakePull<U>,
    /// An outlet to clone for new workers; dropped when the last worker exits, so the
    /// connector downstream still sees the end of input.
    pub(crate) outlet: Mutex<Option<Outlet<U>>>,
    /// The next worker index never used yet.
    pub(crate) next_worker: AtomicUsize,
    /// Indices of retired workers, reused first: each live worker keeps a counter slot of
    /// its own however often the segment shrinks and grows again.
    pub(crate) free_slots: Mutex<Vec<usize>>,
    pub(crate) control: Arc<Control>,
}

impl<U> Growth<U> {
    /// The index for a new worker: a retired worker's, else the next one never used.
    fn take_slot(&self) -> usize {
        lock(&self.free_slots)
            .pop()
            .unwrap_or_else(|| self.next_worker.fetch_add(1, Ordering::Relaxed))
    }
}

/// One worker of a segment: pull processed batches, emit them, until input ends (or, in an
/// autoscaled stage, until the worker is one too many).
pub(crate) fn run_worker<U: Send + 'static>(
    mut input: Box<dyn Pull<U>>,
    emitter: Arc<Emitter<U>>,
    worker: usize,
    outlet: Outlet<U>,
) {
    let counters = emitter.metrics.slot(worker);
    if emitter.handover.is_some() || emitter.growth.is_some() {
        // A fused run's worker, or a lazily started one's: the controller takes its waits
        // for a core off the segment's busy time before it judges a split or growth (see
        // `runqueue`).
        let id = crate::runqueue::current_thread_id().unwrap_or(0);
        counters.thread_id.store(id, Ordering::Relaxed);
    }
    let mut pending: Option<Batch<U>> = None;
    let retired = loop {
        if emitter
            .handover
            .as_ref()
            .is_some_and(Handover::is_requested)
        {
            break false;
        }
        if let Some(growth) = &emitter.growth {
            // Retiring and freeing the slot happen under the slots' lock, so a worker that
            // `grow` starts next can take the slot at once.
            if emitter.crew.has_surplus() {
                let mut free = lock(&growth.free_slots);
                if emitter.crew.retire_one() {
                    free.push(worker);
                    break true;
                }
            }
        }
        // The segment's last stage fills vectors the next stage has given back.
        if input.wants_spare() {
            if let Some(spare) = outlet.recycled() {
                input.recycle(spare);
            }
        }
        // A partial output batch waiting for company is offered to the chain, whose last
        // stage then writes the next outputs straight onto it: no copy of them into it
        // afterwards (the copy was 15–25% of a cheap fused run's time, `perf` of W1 at
        // `.capacity(1024)`).
        if let Some(partial) = pending.take() {
            match emitter.merge_room(&outlet) {
                Some(room) => pending = input.offer_partial(partial, room).err(),
                None => pending = Some(partial),
            }
        }
        let polled = input.poll();
        if let Some(partial) = input.take_back_partial() {
            pending = Some(partial);
        }
        let out = match polled {
            Poll::Ready(batch) => batch,
            Poll::Closed => break false,
            Poll::Empty => {
                if let Some(partial) = pending.take() {
                    emitter.send(&outlet, partial, counters);
                }
                match input.recv() {
                    Some(batch) => batch,
                    None => break false,
                }
            }
        };
        // What the chain's processing of this batch cost, per item, sizes the batches of
        // the connectors on both sides; a chain fed by an async driver did its work there.
        match input.intake() {
            Some(intake) => {
                let took = intake.at.elapsed();
                intake.size.used(intake.items, took);
                outlet.batch_size().produced(intake.items, took);
            }
            None => outlet.batch_size().produced(out.len(), Duration::ZERO),
        }
        emitter.emit(out, &mut pending, &outlet, counters);
    };
    if let Some(partial) = pending.take() {
        emitter.send(&outlet, partial, counters);
    }
    counters.enter(Activity::Between, emitter.control.signals.now());
    if retired {
        return;
    }
    let last = emitter.crew.leave();
    if last {
        // The last worker out: after a cancel, batches may wait behind a gap forever.
        if let EmitMode::Ordered(ordered) = &emitter.mode {
            for batch in ordered.reorder.drain() {
                drop_processed(&emitter.control, emitter.events.as_ref(), batch, counters);
            }
        }
        if let Some(growth) = &emitter.growth {
            lock(&growth.outlet).take();
        }
    }
    // Done with its slot: after a split request, the stages' own workers take it over.
    if let Some(handover) = &emitter.handover {
        handover.leave(worker, last);
    }
}

/// Starts a worker of a segment built without any (a stage's own segment, standing by while
/// it runs fused) in `slot`, the slot a fused worker has left, unless the segment has
/// already ended (at the end of input). `refused` counts the threads the OS refused: when
/// it refused all `count`, nothing would take the stage's input, and the run fails rather
/// than hang.
pub(crate) fn start_standby<U: Send + 'static>(
    emitter: &Arc<Emitter<U>>,
    slot: usize,
    count: usize,
    refused: &mut usize,
) {
    if grow_in(emitter, Some(slot)) != Some(false) {
        return;
    }
    *refused += 1;
    if *refused == count {
        let why = std::io::Error::other("the OS refused every thread of the stage as it split off");
        emitter
            .control
            .fail_hard(RunErrorKind::Build(BuildError::thread(
                &format!("millrace-{}", emitter.metrics.name),
                &why,
            )));
    }
}

/// Starts one more worker of an autoscaled segment, if the segment still runs: `None` if it
/// has ended, else whether the OS started the thread.
fn grow<U: Send + 'static>(emitter: &Arc<Emitter<U>>) -> Option<bool> {
    grow_in(emitter, None)
}

/// [`grow`] in a given slot, or in the next free one.
fn grow_in<U: Send + 'static>(emitter: &Arc<Emitter<U>>, slot: Option<usize>) -> Option<bool> {
    let growth = emitter.growth.as_ref()?;
    let outlet = lock(&growth.outlet);
    let outlet = outlet.as_ref()?;
    let worker = slot.unwrap_or_else(|| growth.take_slot());
    emitter.crew.join();
    let (input, emitter2, outlet) = (
        (growth.make_pull)(worker),
        Arc::clone(emitter),
        outlet.clone(),
    );
    let name = format!("millrace-{}-{worker}", emitter.metrics.name);
    let spawned = (growth.control).spawn_late(name, move || {
        run_worker(input, emitter2, worker, outlet);
    });
    match spawned {
        Ok(()) => Some(true),
        // The OS refused a thread: the segment keeps the workers it has (the autoscaler
        // sees the count unchanged and stops growing it).
        Err(_) => {
            let _ = emitter.crew.cancel_join();
            lock(&growth.free_slots).push(worker);
            Some(false)
        }
    }
}

/// The autoscaler's handle on a segment. Weak: the segment's workers own its emitter, so
/// when the last one exits, the emitter and everything it holds (the pull-chain factory,
/// senders to response relays) go with it, even while the controller still runs. A strong
/// handle kept a hooked stage's relay open and the run from ending.
pub(crate) struct SegmentScaler<U>(pub(crate) Weak<Emitter<U>>);

impl<U: Send + 'static> Scalable for SegmentScaler<U> {
    fn resize(&self, workers: usize) -> bool {
        let Some(emitter) = self.0.upgrade() else {
            return false; // the segment has ended
        };
        if emitter.growth.is_none() {
            return false;
        }
        emitter.crew.set_target(workers);
        grow_to(&emitter, workers)
    }

    fn grow_to(&self, workers: usize) -> bool {
        let Some(emitter) = self.0.upgrade() else {
            return false; // the segment has ended
        };
        emitter.growth.is_some() && grow_to(&emitter, workers)
    }

    fn split(&self) -> bool {
        let Some(emitter) = self.0.upgrade() else {
            return false; // the segment has ended
        };
        emitter.handover.as_ref().is_some_and(Handover::request)
    }
}

/// Starts workers until the segment has `workers`; `false` if it has ended meanwhile.
fn grow_to<U: Send + 'static>(emitter: &Arc<Emitter<U>>, workers: usize) -> bool {
    while emitter.crew.alive() < workers {
        let before = emitter.crew.alive();
        let _ = grow(emitter);
        if emitter.crew.alive() == before {
            return false; // the segment has ended
        }
    }
    true
}

impl<U: Send + 'static> Emitter<U> {
    /// How many items a partial output batch may grow to in place (see
    /// [`Pull::offer_partial`]); `None` where output batches are not merged.
    fn merge_room(&self, outlet: &Outlet<U>) -> Option<usize> {
        match self.mode {
            EmitMode::Free => Some(free_room(outlet.batch_size())),
            EmitMode::Preserve | EmitMode::Ordered(_) => None,
        }
    }

    /// Hands one processed batch on, per the emit mode.
    fn emit(
        &self,
        out: Batch<U>,
        pending: &mut Option<Batch<U>>,
        outlet: &Outlet<U>,
        counters: &Counters,
    ) {
        match &self.mode {
            // A sink consumed on this thread takes a sizeable batch as it is: merging it
            // first would only copy it (and keep its last stage from mapping in place).
            EmitMode::Free if out.len() >= DIRECT_AS_IS && self.consumes_the_sink() => {
                if let Some(partial) = pending.take() {
                    self.send(outlet, partial, counters);
                }
                self.send(outlet, out, counters);
            }
            EmitMode::Free => {
                // Partial outputs wait for company up to the batch size; outputs that are
                // all here already go on together, split only where the next stage could
                // not take them in one batch (see `BatchSize::most`).
                let size = outlet.batch_size();
                let fill_to = size.get();
                let most = free_room(size);
                let mut acc = match pending.take() {
                    None => out,
                    // Merging would only split again, and every later batch with it: the
                    // waiting partial goes on alone (one short batch, no copy), and this
                    // output starts afresh. Merged, one partial batch of a cheap stage put
                    // its emitter out of step for the rest of the run, copying every item
                    // and id twice (W6-shaped hops at a quarter of their speed).
                    Some(partial) if partial.len() + out.len() > most => {
                        self.send(outlet, partial, counters);
                        out
                    }
                    Some(mut acc) => {
                        acc.born = acc.born.min(out.born);
                        acc.ids.append(&out.ids);
                        let mut spent = out.items;
                        acc.items.append(&mut spent);
                        outlet.recycle(spent);
                        acc
                    }
                };
                while acc.len() >= fill_to {
                    if acc.len() <= most {
                        self.send(outlet, acc, counters);
                        return;
                    }
                    // The tail goes into a recycled vector.
                    let room = outlet.fresh(acc.len() - most);
                    let rest = acc.split_off_into(most, room);
                    self.send(outlet, acc, counters);
                    acc = rest;
                }
                if !acc.is_empty() {
                    *pending = Some(acc);
                }
            }
            EmitMode::Preserve => self.send(outlet, out, counters),
            EmitMode::Ordered(ordered) => {
                let seq = out.seq;
                let released = ordered.reorder.insert(seq, out, |batch| {
                    if batch.is_empty() {
                        return;
                    }
                    // Numbered afresh, so a batch may go on in pieces: no larger than the
                    // next stage (and those that keep its batches whole) takes.
                    let most = outlet.batch_size().most_carried(&ordered.carried);
                    in_pieces(batch, most, outlet, |mut piece| {
                        piece.seq = ordered.next_seq.fetch_add(1, Ordering::Relaxed);
                        if let Some(gate) = &ordered.next_gate {
                            // A closed gate means a cancel; the send then drops or delivers.
                            gate.admit(piece.seq);
                        }
                        self.send(outlet, piece, counters);
                    });
                });
                ordered.region.advance(released);
            }
        }
    }

    /// Whether this worker consumes the sink itself now (see `pipeline::sink::direct`).
    fn consumes_the_sink(&self) -> bool {
        self.direct
            .as_ref()
            .is_some_and(|direct| direct.on_workers())
    }

    /// Sends `batch` on; if downstream is gone (a cancel), its items are unfinished.
    fn send(&self, outlet: &Outlet<U>, batch: Batch<U>, counters: &Counters) {
        if batch.is_empty() && !matches!(self.mode, EmitMode::Preserve) {
            return;
        }
        let batch = match &self.direct {
            Some(direct) => {
                // The sink's time on this thread is time the last stage waits downstream.
                let start = self.control.signals.now();
                counters.enter(Activity::Blocked, start);
                let in_order = matches!(self.mode, EmitMode::Ordered(_));
                let consumed = direct.consume(batch, in_order);
                let end = self.control.signals.now();
                counters.enter(Activity::Between, end);
                counters.add_time(&counters.blocked_ns, end.saturating_sub(start));
                match consumed {
                    Ok(spent) => return outlet.recycle(spent),
                    Err(batch) => batch,
                }
            }
            None => batch,
        };
        let waiting = || counters.enter(Activity::Blocked, self.control.signals.now());
        match outlet.send_or_wait(batch, waiting) {
            Ok(waited) => {
                if !waited.is_zero() {
                    counters.enter(Activity::Between, self.control.signals.now());
                }
                counters.add_time(&counters.blocked_ns, waited)
            }
            Err(batch) => drop_processed(&self.control, self.events.as_ref(), batch, counters),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Instant;

    fn growth() -> Growth<u64> {
        let metrics = |name: &str| Arc::new(StageMetrics::new(Arc::from(name), 1, 1));
        let control = Arc::new(Control::new(
            metrics("source"),
            vec![metrics("a")],
            metrics("sink"),
            true,
        ));
        Growth {
            make_pull: Arc::new(|_| unreachable!("no worker starts in this test")),
            outlet: Mutex::new(None),
            next_worker: AtomicUsize::new(3),
            free_slots: Mutex::new(Vec::new()),
            control,
        }
    }

    /// A batch of the items `start..start + len`, with their ids.
    fn batch(start: u64, len: usize) -> Batch<u64> {
        Batch {
            seq: 0,
            born: Instant::now(),
            ids: crate::item::Ids::Range { start, len },
            items: (start..start + len as u64).collect(),
        }
    }

    #[test]
    fn a_batch_cut_into_pieces_keeps_its_items_and_ids_in_order() {
        let (outlet, _inlet) =
            crate::connector::connector::<u64>(8, Arc::new(BatchSize::pinned(4)));
        let mut cut = Vec::new();
        in_pieces(batch(10, 10), 4, &outlet, |piece| cut.push(piece));
        let items: Vec<Vec<u64>> = cut.iter().map(|b| b.items.clone()).collect();
        assert_eq!(
            items,
            [vec![10, 11, 12, 13], vec![14, 15, 16, 17], vec![18, 19]]
        );
        for piece in &cut {
            let ids: Vec<u64> = piece.ids.iter().map(|id| id.0).collect();
            assert_eq!(ids, piece.items);
        }
        let mut whole = Vec::new();
        in_pieces(batch(0, 4), 4, &outlet, |piece| whole.push(piece.items));
        assert_eq!(whole, [vec![0, 1, 2, 3]], "a batch that fits stays whole");
    }

    #[test]
    fn a_partial_output_goes_on_alone_rather_than_putting_later_batches_out_of_step() {
        let growth = growth();
        let emitter = Emitter {
            mode: EmitMode::Free,
            metrics: Arc::new(StageMetrics::new(Arc::from("a"), 1, 1)),
            events: None,
            control: Arc::clone(&growth.control),
            crew: Crew::new(1, false),
            growth: None,
            handover: None,
            direct: None,
        };
        let (outlet, inlet) = crate::connector::connector::<u64>(8, Arc::new(BatchSize::pinned(4)));
        let counters = emitter.metrics.slot(0);
        let mut pending = None;
        emitter.emit(batch(0, 3), &mut pending, &outlet, counters);
        assert!(pending.is_some(), "3 of 4 items wait for company");
        emitter.emit(batch(3, 4), &mut pending, &outlet, counters);
        emitter.emit(batch(7, 4), &mut pending, &outlet, counters);
        assert!(pending.is_none(), "full batches go on as they are");
        // Small outputs that fit together still merge, their ids staying a range.
        emitter.emit(batch(11, 1), &mut pending, &outlet, counters);
        emitter.emit(batch(12, 2), &mut pending, &outlet, counters);
        let merged = pending.take().expect("3 of 4 items wait");
        assert_eq!(merged.items, [11, 12, 13]);
        assert_eq!(merged.ids, crate::item::Ids::Range { start: 11, len: 3 });
        let sent: Vec<Vec<u64>> = std::iter::from_fn(|| match inlet.poll() {
            Poll::Ready(b) => Some(b.items),
            _ => None,
        })
        .collect();
        assert_eq!(sent, [vec![0, 1, 2], vec![3, 4, 5, 6], vec![7, 8, 9, 10]]);
    }

    #[test]
    fn a_new_worker_takes_a_retired_workers_slot_before_a_fresh_one() {
        let growth = growth();
        assert_eq!(
            growth.take_slot(),
            3,
            "no worker retired yet: the next index"
        );
        lock(&growth.free_slots).push(1);
        assert_eq!(
            growth.take_slot(),
            1,
            "worker 1 retired: its slot is reused"
        );
        assert_eq!(growth.take_slot(), 4);
    }
}
