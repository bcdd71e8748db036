//! The input side of a worker: its pull chain.
//!
//! A worker of a segment takes batches through a [`Pull`] chain: the segment's inlet
//! ([`InletPull`], shared by all its workers, so whichever is free takes the next batch; or
//! an iterator read on the workers, `pulled_source`; or an async driver's output), then each
//! stage's [`Process`] in turn ([`Then`]). Polling the chain runs the batch through every
//! stage; `worker::run_worker` emits what comes out. The chain's last stage may also write
//! its outputs straight onto the worker's partial output batch
//! ([`Pull::offer_partial`]), so merging them costs no second copy.

use std::time::{Duration, Instant};

use crate::batch_size::BatchSize;
use crate::connector::{Inlet, Poll};
use crate::control::Control;
use crate::item::{Batch, Ids};
use crate::metrics::{Activity, StageMetrics};
use crate::response::{drop_unfinished, Upstream};
use crate::stage::in_place::recast;
use crate::stage::process::Process;
use std::sync::Arc;

/// The input side of one worker: batches, ready for the next stage.
pub(crate) trait Pull<T>: Send {
    /// The next batch if one is ready without waiting.
    fn poll(&mut self) -> Poll<T>;
    /// Waits for the next batch; `None` at the end of input.
    fn recv(&mut self) -> Option<Batch<T>>;
    /// Takes back an emptied vector of the chain's output type, to fill with a later batch
    /// (see [`crate::pool`]).
    fn recycle(&mut self, spent: Vec<T>);
    /// Whether the chain would use a vector given to [`recycle`](Pull::recycle) now.
    fn wants_spare(&self) -> bool {
        false
    }
    /// The batch the chain took in last, for the connectors' batch sizes to learn what its
    /// processing cost (`None`: the chain's input is not a connector of this segment).
    fn intake(&self) -> Option<Intake<'_>> {
        None
    }
    /// Offers the worker's partial output batch for the next batch's outputs to extend in
    /// place, if together they stay within `room` items: the outputs then need no second
    /// copy into it. Handed back when the chain cannot (its last stage may emit more than one
    /// output per item, or it is not a stage).
    fn offer_partial(&mut self, partial: Batch<T>, room: usize) -> Result<(), Batch<T>> {
        let _ = room;
        Err(partial)
    }
    /// Takes back an offered partial batch that the last poll did not extend.
    fn take_back_partial(&mut self) -> Option<Batch<T>> {
        None
    }
    /// When the chain's last stage finished the batch the last poll returned, if it timed
    /// it: the next stage's start, without a clock read of its own (a fused run of ten cheap
    /// stages read the clock twenty times a batch: `perf` of W6 written with
    /// `.capacity(1024)` put the reads at a seventh of its samples; its wall time moved
    /// within this VM's noise).
    fn ended_at(&self) -> Option<Instant> {
        None
    }
}

/// The batch a worker's chain took in last: when, how many items, and the batch size of the
/// connector it came from.
pub(crate) struct Intake<'a> {
    pub(crate) at: Instant,
    pub(crate) items: usize,
    pub(crate) size: &'a BatchSize,
}

/// Makes worker `w`'s pull chain.
pub(crate) type MakePull<T> = Arc<dyn Fn(usize) -> Box<dyn Pull<T>> + Send + Sync>;

/// A segment's inlet, as seen by one worker. Accounts the first stage's idle time and queue
/// samples, and drops (as unfinished) what arrives after a cancel.
pub(crate) struct InletPull<T> {
    pub(crate) inlet: Inlet<T>,
    pub(crate) metrics: Arc<StageMetrics>,
    pub(crate) worker: usize,
    pub(crate) events: Option<Upstream>,
    pub(crate) control: Arc<Control>,
    /// When the last batch was taken in, and its items.
    pub(crate) taken: (Instant, usize),
}

impl<T: Send> InletPull<T> {
    pub(crate) fn new(
        inlet: Inlet<T>,
        metrics: Arc<StageMetrics>,
        worker: usize,
        events: Option<Upstream>,
        control: Arc<Control>,
    ) -> Self {
        InletPull {
            inlet,
            metrics,
            worker,
            events,
            control,
            taken: (Instant::now(), 0),
        }
    }

    /// Accounts for a received batch, which found `queued` batches in the queue (see
    /// [`Inlet::take`]) and `waited` for; `None` if a cancel dropped it.
    fn accept(&mut self, batch: Batch<T>, queued: u64, waited: Duration) -> Option<Batch<T>> {
        self.taken = (Instant::now(), batch.len());
        let counters = self.metrics.slot(self.worker);
        counters.add_time(&counters.idle_ns, waited);
        counters.add(&counters.queue_len_sum, queued);
        counters.add(&counters.queue_samples, 1);
        if self.control.signals.cancelled() {
            counters.add(&counters.items_in, batch.len() as u64);
            drop_unfinished(&self.control, self.events.as_ref(), batch.ids, counters);
            return None;
        }
        Some(batch)
    }
}

impl<T: Send> Pull<T> for InletPull<T> {
    fn recycle(&mut self, spent: Vec<T>) {
        self.inlet.recycle(spent);
    }

    /// The connector's pool takes vectors for the stage before (at most its
    /// [`SLOTS`](crate::pool::SLOTS)): a first stage that maps in place sends its inputs'
    /// vectors on, and the worker gives the pool one back for each.
    fn wants_spare(&self) -> bool {
        true
    }

    fn intake(&self) -> Option<Intake<'_>> {
        Some(Intake {
            at: self.taken.0,
            items: self.taken.1,
            size: self.inlet.batch_size(),
        })
    }

    fn poll(&mut self) -> Poll<T> {
        loop {
            return match self.inlet.poll() {
                Poll::Ready(batch) => {
                    match self.accept(batch, self.inlet.found(), Duration::ZERO) {
                        Some(batch) => Poll::Ready(batch),
                        None => continue,
                    }
                }
                other => other,
            };
        }
    }

    fn recv(&mut self) -> Option<Batch<T>> {
        loop {
            let counters = self.metrics.slot(self.worker);
            let mut idle = false;
            let (batch, queued, waited) = self.inlet.take(|| {
                idle = true;
                counters.enter(Activity::Idle, self.control.signals.now());
            })?;
            if idle {
                counters.enter(Activity::Between, self.control.signals.now());
            }
            if let Some(batch) = self.accept(batch, queued, waited) {
                return Some(batch);
            }
        }
    }
}

/// A pull chain followed by one more stage. The stage's input vectors, once emptied, go
/// back up the chain (to the stage before, or to the connector's pool); its output vectors
/// come from `spare`, which the stage after it (or, for a segment's last stage, the worker
/// from the outgoing connector's pool) refills. A stage that maps in place
/// ([`Process::maps_in_place`]) outputs in its input's vector instead: it keeps no spare,
/// and the vectors given back to it go on up the chain, where its inputs came from.
pub(crate) struct Then<T, U> {
    pub(crate) inner: Box<dyn Pull<T>>,
    pub(crate) stage: Box<dyn Process<T, U>>,
    pub(crate) spare: Option<Vec<U>>,
    /// Whether the stage maps in place.
    pub(crate) in_place: bool,
    /// When the stage finished its last batch.
    pub(crate) ended: Option<Instant>,
    /// The worker's partial output batch, offered for the next outputs to extend, and the
    /// most items it may then hold (see [`Pull::offer_partial`]).
    pub(crate) partial: Option<(Batch<U>, usize)>,
}

impl<T, U> Then<T, U> {
    pub(crate) fn new(inner: Box<dyn Pull<T>>, stage: Box<dyn Process<T, U>>) -> Self {
        Then {
            in_place: stage.maps_in_place(),
            ended: None,
            inner,
            stage,
            spare: None,
            partial: None,
        }
    }

    fn run(&mut self, batch: Batch<T>) -> Batch<U> {
        let out = match self.partial.take() {
            // At most one output an item: the outputs fit where the inputs do.
            Some((partial, room)) if partial.len() + batch.len() <= room => partial,
            unused => {
                self.partial = unused;
                Batch {
                    seq: batch.seq,
                    born: batch.born,
                    ids: Ids::default(),
                    // Empty and unallocated for a map in place, which needs no vector.
                    items: if self.in_place {
                        Vec::new()
                    } else {
                        self.spare.take().unwrap_or_default()
                    },
                }
            }
        };
        let (out, spent, ended) = self.stage.process(batch, out, self.inner.ended_at());
        self.ended = Some(ended);
        // (A map in place hands back the unallocated vector it was given.)
        if spent.capacity() > 0 {
            self.inner.recycle(spent);
        }
        out
    }
}

impl<T, U: Send> Pull<U> for Then<T, U> {
    fn poll(&mut self) -> Poll<U> {
        match self.inner.poll() {
            Poll::Ready(batch) => Poll::Ready(self.run(batch)),
            Poll::Empty => Poll::Empty,
            Poll::Closed => Poll::Closed,
        }
    }

    fn recv(&mut self) -> Option<Batch<U>> {
        let batch = self.inner.recv()?;
        Some(self.run(batch))
    }

    fn recycle(&mut self, spent: Vec<U>) {
        debug_assert!(spent.is_empty(), "a recycled vector still holds items");
        if self.in_place {
            self.inner.recycle(recast(spent));
        } else if self.spare.is_none() && crate::pool::worth_keeping(&spent) {
            self.spare = Some(spent);
        }
    }

    fn wants_spare(&self) -> bool {
        if self.in_place {
            self.inner.wants_spare()
        } else {
            self.spare.is_none()
        }
    }

    fn intake(&self) -> Option<Intake<'_>> {
        self.inner.intake()
    }

    fn offer_partial(&mut self, partial: Batch<U>, room: usize) -> Result<(), Batch<U>> {
        debug_assert!(self.partial.is_none(), "a partial batch offered twice");
        if !self.stage.at_most_one_out() {
            return Err(partial);
        }
        self.partial = Some((partial, room));
        Ok(())
    }

    fn take_back_partial(&mut self) -> Option<Batch<U>> {
        self.partial.take().map(|(partial, _)| partial)
    }

    fn ended_at(&self) -> Option<Instant> {
        self.ended
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A batch of the items `start..start + len`, with their ids.
    fn batch(start: u64, len: usize) -> Batch<u64> {
        Batch {
            seq: 0,
            born: Instant::now(),
            ids: Ids::Range { start, len },
            items: (start..start + len as u64).collect(),
        }
    }

    /// A pull chain's input: these batches, then the end.
    struct Batches(std::collections::VecDeque<Batch<u64>>);

    impl Pull<u64> for Batches {
        fn poll(&mut self) -> Poll<u64> {
            self.0.pop_front().map_or(Poll::Closed, Poll::Ready)
        }
        fn recv(&mut self) -> Option<Batch<u64>> {
            self.0.pop_front()
        }
        fn recycle(&mut self, _: Vec<u64>) {}
    }

    fn then<L>(make: fn() -> L, input: Vec<Batch<u64>>) -> Then<u64, u64>
    where
        L: crate::stage::logic::Logic<u64, u64>,
    {
        let stage = crate::stage::process::StageWorker {
            ctx: Arc::new(crate::stage::process::tests::ctx()),
            worker: 0,
            logic: None,
            make: Arc::new(make),
        };
        Then::new(Box::new(Batches(input.into())), Box::new(stage))
    }

    fn double() -> crate::stage::logic::MapLogic<impl Fn(&mut (), u64) -> u64, ()> {
        crate::stage::logic::MapLogic {
            f: Arc::new(|_: &mut (), x: u64| x * 2),
            state: (),
        }
    }

    #[test]
    fn the_next_outputs_extend_an_offered_partial_batch_when_they_fit() {
        let mut chain = then(double, vec![batch(3, 4), batch(7, 4)]);
        assert!(chain.offer_partial(batch(0, 3), 8).is_ok());
        let Poll::Ready(out) = chain.poll() else {
            panic!("a batch is ready")
        };
        assert!(chain.take_back_partial().is_none(), "the partial was used");
        assert_eq!(out.items, [0, 1, 2, 6, 8, 10, 12]);
        assert_eq!(out.ids, crate::item::Ids::Range { start: 0, len: 7 });
        // Four more would make 9 of at most 8: the partial comes back untouched.
        let partial = batch(100, 5);
        assert!(chain.offer_partial(partial, 8).is_ok());
        let Poll::Ready(out) = chain.poll() else {
            panic!("a batch is ready")
        };
        assert_eq!(
            out.items,
            [14, 16, 18, 20],
            "outputs in a batch of their own"
        );
        let back = chain.take_back_partial().expect("the partial comes back");
        assert_eq!(back.items, [100, 101, 102, 103, 104]);
        // Nothing ready: the partial comes back too.
        assert!(chain.offer_partial(batch(0, 1), 8).is_ok());
        assert!(matches!(chain.poll(), Poll::Closed));
        assert!(chain.take_back_partial().is_some());
    }

    #[test]
    fn a_stage_that_may_emit_several_outputs_an_item_declines_a_partial_batch() {
        type Twice = crate::stage::logic::FlatMapLogic<fn(u64) -> [u64; 2], [u64; 2]>;
        fn twice() -> Twice {
            crate::stage::logic::FlatMapLogic {
                f: Arc::new(|x| [x, x]),
                _iter: std::marker::PhantomData,
            }
        }
        let mut chain = then(twice, vec![batch(0, 2)]);
        let declined = chain.offer_partial(batch(10, 1), 100);
        assert_eq!(declined.map_err(|b| b.items), Err(vec![10]));
    }

    /// 16-byte items, which a map to the same type maps in place; recycled vectors are kept.
    struct Pairs {
        batches: std::collections::VecDeque<Batch<(u64, u64)>>,
        recycled: Arc<crate::sync::Mutex<Vec<usize>>>,
    }

    impl Pull<(u64, u64)> for Pairs {
        fn poll(&mut self) -> Poll<(u64, u64)> {
            self.batches.pop_front().map_or(Poll::Closed, Poll::Ready)
        }
        fn recv(&mut self) -> Option<Batch<(u64, u64)>> {
            self.batches.pop_front()
        }
        fn recycle(&mut self, spent: Vec<(u64, u64)>) {
            crate::sync::lock(&self.recycled).push(spent.as_ptr() as usize);
        }
        fn wants_spare(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_run_of_maps_in_place_passes_its_vectors_through_and_given_back_ones_up_to_the_input() {
        type Swap = crate::stage::logic::MapLogic<fn(&mut (), (u64, u64)) -> (u64, u64), ()>;
        fn swap() -> Swap {
            crate::stage::logic::MapLogic {
                f: Arc::new(|_: &mut (), (x, y)| (y, x + 1)),
                state: (),
            }
        }
        let stage = || {
            Box::new(crate::stage::process::StageWorker {
                ctx: Arc::new(crate::stage::process::tests::ctx()),
                worker: 0,
                logic: None,
                make: Arc::new(swap),
            })
        };
        let items: Vec<(u64, u64)> = (0..4).map(|x| (x, 10 * x)).collect();
        let at = items.as_ptr() as usize;
        let input = Batch {
            seq: 0,
            born: Instant::now(),
            ids: Ids::Range { start: 0, len: 4 },
            items,
        };
        let recycled = Arc::new(crate::sync::Mutex::new(Vec::new()));
        let pairs = Pairs {
            batches: [input].into(),
            recycled: Arc::clone(&recycled),
        };
        let first = Then::new(Box::new(pairs), stage());
        let mut chain = Then::new(Box::new(first), stage());
        assert!(chain.in_place, "both stages map in place");
        assert!(chain.wants_spare(), "the input wants vectors back");
        let Poll::Ready(mut out) = chain.poll() else {
            panic!("a batch is ready")
        };
        assert_eq!(out.items, [(1, 1), (2, 11), (3, 21), (4, 31)]);
        assert_eq!(
            out.items.as_ptr() as usize,
            at,
            "one vector through both stages"
        );
        out.items.clear();
        chain.recycle(out.items);
        assert_eq!(
            *crate::sync::lock(&recycled),
            [at],
            "the emptied vector went back to the input (no stage kept a spare)"
        );
    }
}
