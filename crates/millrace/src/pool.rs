//! Recycled batch buffers: the vectors batches are made of, handed back by the stage that
//! emptied them to the one that fills the next.
//!
//! A batch's items live in a `Vec`. Without recycling, every stage allocates a fresh vector
//! for its output batch and frees its input's, and the sink frees the last: one allocation
//! and one free per batch per hop, the free usually on another thread than the allocation.
//! With glibc's allocator that returns memory to the OS and faults it back in (page faults,
//! and TLB shootdowns across cores when it unmaps): W1 (20 M cheap items, fused on 2 cores)
//! took 0.79 s with the default allocator settings and 0.42–0.52 s with trimming off. A
//! pool per connector (and a spare per fused hop, see `segment::pull::Then`) keeps a few
//! emptied vectors for reuse instead.
//!
//! A pool is bounded twice: it keeps at most [`SLOTS`] vectors, and only vectors of at most
//! [`MAX_BYTES`] of capacity, so the memory it holds is small and fixed whatever the input.
//!
//! The stock is a stack: the vector emptied last is the one refilled next, while its
//! lines are still in a cache. It used to be a `crossbeam_queue::ArrayQueue`, a ring that
//! hands out the vector emptied longest ago: a run cycled through every vector of every
//! pool (8 slots each), a working set past the L2 cache where one batch's vectors fit in it.
//! W1 written with `.capacity(1024)` (one thread: the source cut on the worker, three
//! stages, the sink) ran a quarter faster with the stack: 0.24–0.27 s against 0.32–0.33 s
//! for 40 M items, alternated (`BENCHMARKS.md`). The stack is a `std` mutex around a
//! `Vec`, held for a push or a pop (never while allocating or freeing), once per batch;
//! it is outside loom's view, as the queue was: no loom operation happens under it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Vectors a pool keeps at most.
pub(crate) const SLOTS: usize = 8;
/// The largest capacity, in bytes, a pool keeps.
pub(crate) const MAX_BYTES: usize = 1 << 20;

/// Whether an emptied vector is worth keeping for reuse: it has room, and at most
/// [`MAX_BYTES`] of it (a burst of a flat-map's outputs must not stay allocated).
pub(crate) fn worth_keeping<T>(spent: &Vec<T>) -> bool {
    let bytes = spent
        .capacity()
        .saturating_mul(std::mem::size_of::<T>().max(1));
    spent.is_empty() && spent.capacity() > 0 && bytes <= MAX_BYTES
}

/// The most items a vector is given room for before it fills: [`MAX_BYTES`] of them (at
/// least one).
pub(crate) fn reserve_limit<T>() -> usize {
    (MAX_BYTES / std::mem::size_of::<T>().max(1)).max(1)
}

/// A bounded stock of emptied vectors, last in first out.
pub(crate) struct Pool<T> {
    stock: Mutex<Vec<Vec<T>>>,
}

/// Locks a pool's stack; a poisoned one is as good as any (a push or a pop cannot leave it
/// half done).
fn lock<T>(stock: &Mutex<Vec<Vec<T>>>) -> MutexGuard<'_, Vec<Vec<T>>> {
    stock.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> Pool<T> {
    pub(crate) fn new() -> Self {
        Pool {
            stock: Mutex::new(Vec::with_capacity(SLOTS)),
        }
    }

    /// An empty vector for a batch of up to `capacity` items: a recycled one if the pool
    /// has one. Room is made up front for at most [`MAX_BYTES`] of items (the largest
    /// vector a pool keeps); a batch of more grows as it fills. A pinned `.batch(n)` far
    /// beyond the input used to reserve `n` items for every batch: `batch(1 << 32)` of
    /// `u64`s aborted the process asking for 32 GiB, `batch(usize::MAX)` panicked with
    /// "capacity overflow", and `batch(1_000_000)` behind `capacity(1)` allocated and freed
    /// 8 MB a batch.
    pub(crate) fn take(&self, capacity: usize) -> Vec<T> {
        let capacity = capacity.min(reserve_limit::<T>());
        let recycled = lock(&self.stock).pop();
        match recycled {
            Some(mut items) => {
                items.reserve(capacity);
                items
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// A recycled vector, if the pool has one.
    pub(crate) fn take_recycled(&self) -> Option<Vec<T>> {
        lock(&self.stock).pop()
    }

    /// Keeps `spent` (emptied by its consumer) for reuse, unless the pool is full or the
    /// vector is not [worth keeping](worth_keeping); then it is freed.
    pub(crate) fn give(&self, spent: Vec<T>) {
        debug_assert!(spent.is_empty(), "a recycled vector still holds items");
        if !worth_keeping(&spent) {
            return;
        }
        let refused = {
            let mut stock = lock(&self.stock);
            if stock.len() < SLOTS {
                stock.push(spent);
                None
            } else {
                Some(spent)
            }
        };
        // A full pool frees the vector, outside the lock.
        drop(refused);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_vector_comes_back_empty_with_its_capacity() {
        let pool = Pool::new();
        let mut v: Vec<u64> = Vec::with_capacity(100);
        v.extend(0..50);
        v.clear();
        let address = v.as_ptr();
        pool.give(v);
        let again = pool.take(10);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), address, "the same buffer");
        assert!(again.capacity() >= 100);
        assert!(pool.take_recycled().is_none(), "taken once");
    }

    #[test]
    fn the_pool_keeps_a_bounded_number_of_bounded_vectors() {
        let pool: Pool<u64> = Pool::new();
        for _ in 0..SLOTS + 5 {
            pool.give(Vec::with_capacity(16));
        }
        pool.give(Vec::with_capacity(MAX_BYTES / 8 + 1)); // too big: freed
        pool.give(Vec::new()); // nothing to keep
        let mut kept = 0;
        while let Some(v) = pool.take_recycled() {
            assert_eq!(v.capacity(), 16);
            kept += 1;
        }
        assert_eq!(kept, SLOTS);
        assert!(pool.take(32).capacity() >= 32, "empty pool: a fresh vector");
    }

    #[test]
    fn a_vector_is_given_room_for_at_most_max_bytes_of_items_up_front() {
        let pool: Pool<u64> = Pool::new();
        let fresh = pool.take(usize::MAX);
        assert_eq!(fresh.capacity(), MAX_BYTES / 8);
        pool.give(fresh);
        assert_eq!(pool.take(1 << 40).capacity(), MAX_BYTES / 8, "recycled");
        assert!(
            Pool::<[u8; 4 << 20]>::new().take(8).capacity() >= 1,
            "one huge item"
        );
    }

    #[test]
    fn the_vector_given_last_is_taken_first() {
        let pool: Pool<u64> = Pool::new();
        let (first, last) = (Vec::with_capacity(8), Vec::with_capacity(8));
        let (first_at, last_at) = (first.as_ptr(), last.as_ptr());
        pool.give(first);
        pool.give(last);
        let (taken_first, taken_next) = (pool.take(1), pool.take(1));
        assert_eq!(taken_first.as_ptr(), last_at, "the one still in a cache");
        assert_eq!(taken_next.as_ptr(), first_at);
    }
}
