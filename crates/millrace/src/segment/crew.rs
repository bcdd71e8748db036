//! The live workers of a segment: who may retire when the autoscaler shrinks the segment,
//! and who is the last out at the end of input.
//!
//! # Protocol
//!
//! `alive` counts workers that have joined and not yet left; `target` is what the
//! autoscaler wants (unbounded for a segment it does not size).
//!
//! * A worker **joins** before its thread starts (`alive += 1`).
//! * Between batches, a worker may **retire** while `alive > target`: a compare-and-swap
//!   `alive → alive - 1` lets exactly one worker out per surplus worker, and never the last
//!   (the target is at least 1).
//! * At the end of input, a worker **leaves** (`alive -= 1`); the one that brings `alive` to
//!   zero is the last out and cleans up (drains the reorder buffer after a cancel, drops the
//!   segment's spare outlet).
//!
//! Model-checked with loom in `loom_crew.rs`, together with a worker joining while the last
//! one leaves.

use crate::sync::{AtomicUsize, Ordering};

pub(crate) struct Crew {
    alive: AtomicUsize,
    target: AtomicUsize,
}

impl Crew {
    /// A crew of `workers` that have joined; `scaled` lets it shrink to a target.
    pub(crate) fn new(workers: usize, scaled: bool) -> Self {
        Crew {
            alive: AtomicUsize::new(workers),
            target: AtomicUsize::new(if scaled { workers.max(1) } else { usize::MAX }),
        }
    }

    /// Workers that have joined and not left.
    pub(crate) fn alive(&self) -> usize {
        self.alive.load(Ordering::Acquire)
    }

    /// Sets how many workers the segment should have (at least 1).
    pub(crate) fn set_target(&self, workers: usize) {
        self.target.store(workers.max(1), Ordering::Release);
    }

    /// A worker joins; call before its thread starts.
    pub(crate) fn join(&self) {
        self.alive.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether there are more workers than the target: a cheap look before
    /// [`retire_one`](Crew::retire_one), which decides.
    pub(crate) fn has_surplus(&self) -> bool {
        self.alive.load(Ordering::Acquire) > self.target.load(Ordering::Acquire).max(1)
    }

    /// Whether the calling worker should retire now; if so, it has been counted out.
    pub(crate) fn retire_one(&self) -> bool {
        let target = self.target.load(Ordering::Acquire).max(1);
        let mut alive = self.alive.load(Ordering::Acquire);
        while alive > target {
            match self
                .alive
                .compare_exchange(alive, alive - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => alive = now,
            }
        }
        false
    }

    /// Takes back a [`join`](Crew::join) whose thread never started.
    pub(crate) fn cancel_join(&self) -> usize {
        self.alive.fetch_sub(1, Ordering::AcqRel)
    }

    /// The calling worker leaves at the end of input; `true` if it was the last.
    pub(crate) fn leave(&self) -> bool {
        self.alive.fetch_sub(1, Ordering::AcqRel) == 1
    }
}
