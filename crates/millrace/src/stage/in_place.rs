//! Mapping a batch where it lies: a map whose input and output types have the same size and
//! alignment writes each output over its input, in the batch's own vector.
//!
//! A fused run of such maps (W1's `y = x * x` then `y = 3 * y` on 16-byte items) then works in
//! one vector that stays in the core's first-level cache, where each stage used to fill a
//! vector of its own from the one before: three vectors of 1,024 16-byte items and the
//! source's are more than the 32 KiB cache holds. A program of W1's shape (1,024-item batches,
//! three maps and a sum) took 3.4–4.1 ns an item with a vector per stage and 2.1–2.6 ns with
//! the last two maps in place (`BENCHMARKS.md`, "Maps in place"). Items under 16 bytes are
//! mapped into a second vector still (see [`worth_in_place`]).
//!
//! [`InPlace`] holds the vector while its items change type: outputs at the front, the inputs
//! not yet read at the back, and between them the slots of the items that panicked. The
//! stage's processing (`stage::process`) calls the user's closure through it inside its
//! `catch_unwind` and resumes after a panic, as for a map into a second vector. The pull
//! chain (`segment::pull::Then`) gives such a stage no output vector of its own and passes the
//! vectors given back to it on to the stage before, [`recast`] to that stage's output type.
//!
//! One of the crate's two places of `unsafe` (the other is `deadline`'s time-stamp counter):
//! a safe in-place map (`Vec::into_iter().map().collect()`, which std does in place for such
//! types) drops the rest of the batch at a panic, where a stage must go on with it.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::mem::{align_of, size_of, ManuallyDrop};
use std::ptr;

/// Whether a `Vec<T>`'s allocation can hold `U`s in the same slots: the same size and
/// alignment, and not zero-sized (whose vectors allocate nothing to share).
pub(crate) const fn same_layout<T, U>() -> bool {
    size_of::<T>() == size_of::<U>() && align_of::<T>() == align_of::<U>() && size_of::<T>() != 0
}

/// Whether a map from `T` to `U` is worth doing in place: [`same_layout`], and items of at
/// least 16 bytes. Measured on 1,024-item batches: W1 (16-byte `Data`, its last two maps in
/// place, with the sink's direct hand-over of `segment::worker`) took 0.163 s for 40 M items
/// against 0.203 s (medians of six alternated rounds, `BENCHMARKS.md`), where W6's ten `u64`
/// hops (8 bytes) took 0.76 s in place against 0.62 s (medians of `perf stat -r 5`,
/// alternated). A cheap map of small items streams from one vector into another faster than
/// it rewrites one.
pub(crate) const fn worth_in_place<T, U>() -> bool {
    same_layout::<T, U>() && size_of::<T>() >= 16
}

/// An emptied vector of `U` as a vector of `T` with the same allocation, for the stage before
/// to refill; an unallocated one where the layouts differ (the caller checks
/// [`same_layout`] first, so this does not happen).
pub(crate) fn recast<U, T>(mut spent: Vec<U>) -> Vec<T> {
    if !same_layout::<T, U>() {
        return Vec::new();
    }
    spent.clear();
    let mut spent = ManuallyDrop::new(spent);
    let (pointer, capacity) = (spent.as_mut_ptr(), spent.capacity());
    // SAFETY: the allocation came from a `Vec<U>` of this capacity, so it was made with the
    // layout of `capacity` `U`s, which is that of `capacity` `T`s (same size and alignment,
    // checked above); the vector is empty, so no item is reinterpreted; `ManuallyDrop` keeps
    // the old vector from freeing it.
    unsafe { Vec::from_raw_parts(pointer.cast::<T>(), 0, capacity) }
}

/// A vector whose items are being mapped from `T` to `U` where they lie. Slots `..written`
/// hold outputs, slots `read..len` inputs not yet read; the slots between held inputs that
/// were read and whose call panicked.
pub(crate) struct InPlace<T, U> {
    start: *mut T,
    len: usize,
    capacity: usize,
    read: usize,
    written: usize,
    _types: PhantomData<(T, U)>,
}

impl<T, U> InPlace<T, U> {
    /// Takes over `items`' allocation and items. `T` and `U` must have [`same_layout`].
    pub(crate) fn new(items: Vec<T>) -> Self {
        assert!(
            same_layout::<T, U>(),
            "a map in place needs input and output types of the same layout"
        );
        let mut items = ManuallyDrop::new(items);
        InPlace {
            start: items.as_mut_ptr(),
            len: items.len(),
            capacity: items.capacity(),
            read: 0,
            written: 0,
            _types: PhantomData,
        }
    }

    /// How many inputs have been read (the next one's position).
    pub(crate) fn read(&self) -> usize {
        self.read
    }

    /// Maps every input not yet read with `map`, writing each output into the first free
    /// slot. A panic in `map` unwinds out with its input counted as read (and dropped by the
    /// unwinding), so a later call resumes after it.
    #[inline]
    pub(crate) fn map_rest(&mut self, mut map: impl FnMut(T) -> U) {
        if self.written == self.read {
            // Nothing has panicked: each output goes into its own input's slot. One index
            // for both lets the compiler see that, and vectorise a cheap map.
            let (start, len) = (self.start, self.len);
            let mut at = self.read;
            while at < len {
                // SAFETY: `at < len`, so the slot holds an input not yet read; counting it
                // read before `map` runs hands its ownership to `map` for good.
                let slot = unsafe { start.add(at) };
                // SAFETY: as above.
                let item = unsafe { slot.read() };
                self.read = at + 1;
                let output = map(item);
                // SAFETY: the slot's input was moved out; `U` fits it (same layout).
                unsafe { slot.cast::<U>().write(output) };
                at += 1;
                self.written = at;
            }
            return;
        }
        while self.read < self.len {
            // SAFETY: `read < len`, so the slot holds an input not yet read; counting it read
            // before `map` runs hands its ownership to `map` for good.
            let item = unsafe { self.start.add(self.read).read() };
            self.read += 1;
            let output = map(item);
            // SAFETY: `written < read` (one output per input read, fewer after a panic), so
            // the slot is inside the allocation and its input was moved out; `U` fits it (same
            // layout).
            unsafe { self.start.add(self.written).cast::<U>().write(output) };
            self.written += 1;
        }
    }

    /// Drops the inputs not yet read.
    pub(crate) fn drop_rest(&mut self) {
        let rest = ptr::slice_from_raw_parts_mut(
            // SAFETY: `read <= len`: at most one past the last input.
            unsafe { self.start.add(self.read) },
            self.len - self.read,
        );
        // Counted read first: were a drop to panic, `Drop` would not drop them again.
        self.read = self.len;
        // SAFETY: slots `read..len` held inputs nobody read, now dropped once.
        unsafe { ptr::drop_in_place(rest) }
    }

    /// The outputs, in the input's allocation. Inputs not yet read are dropped.
    pub(crate) fn finish(mut self) -> Vec<U> {
        self.drop_rest();
        let this = ManuallyDrop::new(self);
        // SAFETY: the allocation was a `Vec<T>`'s of this capacity, the layout of as many
        // `U`s; slots `..written` hold outputs, and nothing else owns them (`ManuallyDrop`).
        unsafe { Vec::from_raw_parts(this.start.cast::<U>(), this.written, this.capacity) }
    }
}

impl<T, U> Drop for InPlace<T, U> {
    /// Reached only when a panic leaves the processing in between (a panicking `Drop` of an
    /// item): drops what the vector holds and frees it.
    fn drop(&mut self) {
        self.drop_rest();
        // SAFETY: as in `finish`: the outputs and the allocation are this vector's.
        drop(unsafe { Vec::from_raw_parts(self.start.cast::<U>(), self.written, self.capacity) });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::rc::Rc;

    #[test]
    fn a_map_in_place_keeps_the_allocation_and_the_order() {
        let mut items = Vec::with_capacity(16);
        items.extend(0u64..10);
        let before = items.as_ptr() as usize;
        let mut mapping = InPlace::<u64, i64>::new(items);
        mapping.map_rest(|x| -(x as i64));
        let out = mapping.finish();
        assert_eq!(out, (0..10).map(|x| -x).collect::<Vec<i64>>());
        assert_eq!(
            (out.as_ptr() as usize, out.capacity()),
            (before, 16),
            "the same allocation"
        );
    }

    #[test]
    fn a_panic_drops_its_input_once_and_the_rest_resumes_after_it() {
        // `Rc`s count their drops: every input and output is dropped exactly once.
        let tokens: Vec<Rc<u32>> = (0..6).map(Rc::new).collect();
        let items: Vec<Rc<u32>> = tokens.iter().map(Rc::clone).collect();
        let mut mapping = InPlace::<Rc<u32>, Box<u32>>::new(items);
        let first = catch_unwind(AssertUnwindSafe(|| {
            mapping.map_rest(|rc| {
                assert!(*rc != 2, "item 2 panics");
                Box::new(*rc * 10)
            });
        }));
        assert!(first.is_err());
        assert_eq!(mapping.read(), 3, "the panicking item counts as read");
        assert_eq!(Rc::strong_count(&tokens[2]), 1, "its input was dropped");
        assert_eq!(Rc::strong_count(&tokens[3]), 2, "later inputs wait");
        mapping.map_rest(|rc| Box::new(*rc * 10));
        let out = mapping.finish();
        assert_eq!(
            out.iter().map(|b| **b).collect::<Vec<_>>(),
            [0, 10, 30, 40, 50]
        );
        assert!(
            tokens.iter().all(|t| Rc::strong_count(t) == 1),
            "inputs dropped once"
        );
    }

    #[test]
    fn unread_inputs_are_dropped_by_finish_and_by_drop() {
        let tokens: Vec<Rc<u32>> = (0..4).map(Rc::new).collect();
        let mapping = InPlace::<Rc<u32>, Box<u32>>::new(tokens.iter().map(Rc::clone).collect());
        assert!(mapping.finish().is_empty());
        let mut mapping = InPlace::<Rc<u32>, Box<u32>>::new(tokens.iter().map(Rc::clone).collect());
        let _ = catch_unwind(AssertUnwindSafe(|| {
            mapping.map_rest(|rc| {
                assert!(*rc != 1);
                Box::new(*rc)
            })
        }));
        drop(mapping);
        assert!(tokens.iter().all(|t| Rc::strong_count(t) == 1));
    }

    #[test]
    fn a_recast_vector_keeps_its_allocation_and_an_unlike_one_is_not_shared() {
        let spent: Vec<u64> = Vec::with_capacity(32);
        let at = spent.as_ptr() as usize;
        let again: Vec<i64> = recast(spent);
        assert_eq!((again.as_ptr() as usize, again.capacity()), (at, 32));
        let unlike: Vec<u32> = recast(Vec::<u64>::with_capacity(8));
        assert_eq!(unlike.capacity(), 0);
        assert!(!same_layout::<(), ()>(), "zero-sized types share nothing");
        assert!(!same_layout::<u64, [u32; 2]>(), "alignment differs");
    }
}
