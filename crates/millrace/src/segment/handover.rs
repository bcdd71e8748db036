//! The hand-over of a run of stages fused at the start to a segment per stage, when the
//! controller splits it (see `pipeline::plan`'s `fuse_at_the_start` and [`super::standby`]).
//!
//! # Protocol
//!
//! The controller [requests](Handover::request) the hand-over. Each worker of the fused
//! segment checks [`is_requested`](Handover::is_requested) between batches and leaves (as at
//! the end of input); the last one out calls [`finish`](Handover::finish), which starts the
//! stages' own workers if the request came first, and otherwise lets them go. `request` and
//! `finish` decide under one lock, so a request either starts them or is refused.
//!
//! Model-checked with loom in `loom_crew.rs`.

use crate::sync::{lock, AtomicBool, Mutex, Ordering};

/// How a segment of stages fused at the start hands them over to a segment each.
///
/// The controller [requests](Handover::request) it; each worker leaves after the batch in
/// hand (a worker waiting for input leaves after the next one, or at the end of input); the
/// last one out runs `start`, which starts the workers of the stages' own segments. They
/// were built with the fused segment, without workers, on connectors of their own between
/// the stages and the fused segment's own at both ends, so no stage ever runs more calls at
/// once than its count. Without a request, the last one out drops `start`, and the idle
/// segments with it (their hold on the connectors ends, so the end of input travels on).
pub(crate) struct Handover {
    requested: AtomicBool,
    /// Taken by the last worker out; `None` once the segment has ended.
    start: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Handover {
    pub(crate) fn new(start: Box<dyn FnOnce() + Send>) -> Self {
        Handover {
            requested: AtomicBool::new(false),
            start: Mutex::new(Some(start)),
        }
    }

    /// Asks the workers to hand over; `false` if it was asked already or the segment has
    /// ended (its last worker out decided, under the same lock, whether to start the
    /// stages' own segments: a request counts only if it came before).
    pub(crate) fn request(&self) -> bool {
        let start = lock(&self.start);
        start.is_some() && !self.requested.swap(true, Ordering::AcqRel)
    }

    /// Whether the workers should leave after the batch in hand.
    pub(crate) fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Run by the last worker out: starts the stages' own segments if asked, else lets them go.
    pub(crate) fn finish(&self) {
        let start = lock(&self.start).take();
        if self.is_requested() {
            if let Some(start) = start {
                start();
            }
        }
    }
}
