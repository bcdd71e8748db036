//! The hand-over of a run of stages fused at the start to a segment per stage, when the
//! controller splits it (see `pipeline::plan`'s `fuse_at_the_start` and [`super::standby`]).
//!
//! # Protocol
//!
//! The controller [requests](Handover::request) the hand-over. Each worker of the fused
//! segment checks [`is_requested`](Handover::is_requested) between batches and leaves (as at
//! the end of input), calling [`leave`](Handover::leave) with its slot (its worker index):
//! if the request came first, that starts one worker of each of the stages' own segments in
//! the slot it frees (the first one out also runs what runs once: it marks the stages
//! split, and starts the source's own thread where the fused workers read the source); the
//! last one out also starts every slot not started yet, and drops what starts
//! them. `request` and `leave` decide under one lock, so a request either starts the
//! stages' own workers or is refused (the segment had ended).
//!
//! Slot by slot rather than all at once when the last one is out: a fused worker may be
//! inside a stage's call that waits for another call of the same stage (a barrier, a call
//! gathering others into a batch), which after the request can only come from the stage's
//! own workers. Started in the slots the fused workers freed, they never take a stage past
//! its count: each slot holds at most one call of each stage, from its fused worker or, once
//! that worker has left, from the stages' own.
//!
//! Model-checked with loom in `loom_crew.rs`.

use crate::sync::{lock, AtomicBool, Mutex, Ordering};

/// Starts, in one slot, a worker of each of the stages' own segments.
pub(crate) type StartSlot = Box<dyn FnMut(usize) + Send>;

/// How a segment of stages fused at the start hands them over to a segment each.
///
/// The controller [requests](Handover::request) it; each worker leaves after the batch in
/// hand (a worker waiting for input leaves after the next one, or at the end of input) and
/// starts the stages' own workers in its slot. They were built with the fused segment,
/// without workers, on connectors of their own between the stages and the fused segment's
/// own at both ends. Without a request, the last one out drops what starts them, and the
/// idle segments with it (their hold on the connectors ends, so the end of input travels
/// on).
pub(crate) struct Handover {
    requested: AtomicBool,
    /// `None` once the segment has ended (its last worker left).
    starts: Mutex<Option<Starts>>,
}

/// What a hand-over starts, and which slots it has started.
struct Starts {
    /// Runs at the first start: marks the stages split, starts the source's own thread.
    first: Option<Box<dyn FnOnce() + Send>>,
    slot: StartSlot,
    /// The slots started so far, of the stages' count.
    started: Vec<bool>,
}

impl Starts {
    fn start(&mut self, slot: usize) {
        match self.started.get_mut(slot) {
            Some(started) if !*started => *started = true,
            _ => return,
        }
        if let Some(first) = self.first.take() {
            first();
        }
        (self.slot)(slot);
    }
}

impl Handover {
    /// A hand-over of stages of `count` workers each: `first` runs once, before the first
    /// slot starts; `slot` starts the stages' own workers in one slot.
    pub(crate) fn new(count: usize, first: Box<dyn FnOnce() + Send>, slot: StartSlot) -> Self {
        Handover {
            requested: AtomicBool::new(false),
            starts: Mutex::new(Some(Starts {
                first: Some(first),
                slot,
                started: vec![false; count],
            })),
        }
    }

    /// Asks the workers to hand over; `false` if it was asked already or the segment has
    /// ended (its last worker out decided, under the same lock, whether to start the
    /// stages' own segments: a request counts only if it came before).
    pub(crate) fn request(&self) -> bool {
        let starts = lock(&self.starts);
        starts.is_some() && !self.requested.swap(true, Ordering::AcqRel)
    }

    /// Whether the workers should leave after the batch in hand.
    pub(crate) fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Run by each worker as it leaves, with its slot, once it is done with it; `last` if
    /// it was the last one out. After a request, starts the stages' own workers in the slot
    /// (and, from the last one out, in every slot not started yet).
    pub(crate) fn leave(&self, slot: usize, last: bool) {
        let ended = {
            let mut guard = lock(&self.starts);
            if self.is_requested() {
                if let Some(starts) = guard.as_mut() {
                    starts.start(slot);
                    if last {
                        (0..starts.started.len()).for_each(|slot| starts.start(slot));
                    }
                }
            }
            if last {
                guard.take()
            } else {
                None
            }
        };
        // (Dropped outside the lock: it holds the idle segments and their connectors.)
        drop(ended);
    }
}
