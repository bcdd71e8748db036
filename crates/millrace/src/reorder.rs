//! Restoring input order after many workers: the reorder buffer of an ordered stage.
//!
//! # Semantics
//!
//! Batches are numbered in input order by the source (or by the ordered stage before this
//! one) and every stage in between passes each batch's number through unchanged, one output
//! batch per input batch, even when it is empty. The workers of an ordered stage finish
//! batches in any order and [`insert`](Reorder::insert) them here; the buffer hands them on
//! strictly in number order, each exactly once. This is TBB's `serial_in_order` filter, done
//! per batch rather than per item, so it costs a lock per batch.
//!
//! # Algorithm
//!
//! A map from sequence number to batch, and the next number due. The worker that inserts the
//! batch that is due emits it and every batch after it already waiting, while it holds the
//! lock: so emission is in order even though any worker may be the one emitting. The buffer
//! is bounded by the region's [`Window`](crate::window::Window): the producer admits batch
//! `s` only while `s < next + limit`, so no more than `limit` batches can wait here.
//!
//! Model-checked with loom in `loom_reorder.rs`.

use std::collections::BTreeMap;

use crate::sync::{lock, Mutex};

pub(crate) struct Reorder<B> {
    state: Mutex<State<B>>,
}

struct State<B> {
    next: u64,
    pending: BTreeMap<u64, B>,
}

impl<B> Reorder<B> {
    pub(crate) fn new() -> Self {
        Reorder {
            state: Mutex::new(State {
                next: 0,
                pending: BTreeMap::new(),
            }),
        }
    }

    /// Adds batch `seq`; then passes every batch now due to `emit`, in order, and returns how
    /// many it emitted. `emit` runs under the buffer's lock, which is what keeps the order.
    pub(crate) fn insert(&self, seq: u64, batch: B, mut emit: impl FnMut(B)) -> u64 {
        let mut state = lock(&self.state);
        debug_assert!(seq >= state.next, "batch {seq} inserted twice");
        if seq != state.next {
            state.pending.insert(seq, batch);
            return 0;
        }
        emit(batch);
        let mut emitted = 1;
        state.next += 1;
        loop {
            let due = state.next;
            match state.pending.remove(&due) {
                Some(batch) => {
                    emit(batch);
                    emitted += 1;
                    state.next += 1;
                }
                None => return emitted,
            }
        }
    }

    /// Takes whatever still waits (only after a cancel can anything be left).
    pub(crate) fn drain(&self) -> Vec<B> {
        let mut state = lock(&self.state);
        std::mem::take(&mut state.pending).into_values().collect()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn emits_in_sequence_whatever_the_insertion_order() {
        let r = Reorder::new();
        let mut out = Vec::new();
        assert_eq!(r.insert(2, "c", |b| out.push(b)), 0);
        assert_eq!(r.insert(1, "b", |b| out.push(b)), 0);
        assert_eq!(r.insert(0, "a", |b| out.push(b)), 3);
        assert_eq!(r.insert(3, "d", |b| out.push(b)), 1);
        assert_eq!(out, vec!["a", "b", "c", "d"]);
        assert!(r.drain().is_empty());
    }

    #[test]
    fn drain_returns_batches_left_behind_a_gap() {
        let r = Reorder::new();
        r.insert(1, 10, |_| unreachable!("batch 0 never came"));
        assert_eq!(r.drain(), vec![10]);
    }
}
