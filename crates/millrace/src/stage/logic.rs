//! The forms a stage's work can take, each a [`Logic`]: what one worker does with one item.
//!
//! 1. [`MapLogic`]: one in, one out (`map`), optionally with per-worker state (`map_with`).
//! 2. [`FilterLogic`]: one in, zero or one out.
//! 3. [`FlatMapLogic`]: one in, any number out.
//! 4. [`TryLogic`]: fallible forms (`try_map`, `try_flat_map`). They *borrow* the item, so it
//!    is still there to retry or to hand to the dead letters when they fail.
//!
//! The worker loop is generic over the logic, so each form compiles to a tight loop with the
//! user's closure inlined; nothing here is dynamically dispatched per item.

use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::error::{panic_message, BoxError, ItemErrorKind};

/// What became of one item in one stage.
pub(crate) enum Step<T> {
    /// It produced this many outputs (pushed onto the output vector).
    Emitted(usize),
    /// It produced nothing.
    Filtered,
    /// It failed; the item comes back when the form only borrowed it.
    Failed(Option<T>, ItemErrorKind),
}

/// One worker's processing of single items.
pub(crate) trait Logic<T, U>: Send + 'static {
    /// Whether every call emits exactly one output and never fails without panicking (a
    /// map). The worker then keeps the batch's ids as they are instead of rebuilding them.
    const ONE_TO_ONE: bool = false;

    /// Whether every call emits at most one output (a map, a filter, a fallible map).
    const AT_MOST_ONE: bool = false;

    /// Processes `item`, pushing its outputs onto `out`.
    fn call(&mut self, item: T, out: &mut Vec<U>) -> Step<T>;

    /// Maps `item` to its one output; called instead of [`call`](Logic::call) when
    /// [`ONE_TO_ONE`](Logic::ONE_TO_ONE) holds, so a batch maps in one `extend`.
    fn map_one(&mut self, item: T) -> U {
        let mut out = Vec::with_capacity(1);
        self.call(item, &mut out);
        match out.pop() {
            Some(u) => u,
            None => unreachable!("a one-to-one form emitted nothing"),
        }
    }
}

pub(crate) struct MapLogic<F, S> {
    pub(crate) f: Arc<F>,
    pub(crate) state: S,
}

impl<T, U, S, F> Logic<T, U> for MapLogic<F, S>
where
    F: Fn(&mut S, T) -> U + Send + Sync + 'static,
    S: Send + 'static,
{
    const ONE_TO_ONE: bool = true;
    const AT_MOST_ONE: bool = true;

    #[inline]
    fn call(&mut self, item: T, out: &mut Vec<U>) -> Step<T> {
        out.push((self.f)(&mut self.state, item));
        Step::Emitted(1)
    }

    #[inline]
    fn map_one(&mut self, item: T) -> U {
        (self.f)(&mut self.state, item)
    }
}

pub(crate) struct FilterLogic<F> {
    pub(crate) f: Arc<F>,
}

impl<T, F> Logic<T, T> for FilterLogic<F>
where
    F: Fn(&T) -> bool + Send + Sync + 'static,
    T: Send + 'static,
{
    const AT_MOST_ONE: bool = true;

    #[inline]
    fn call(&mut self, item: T, out: &mut Vec<T>) -> Step<T> {
        if (self.f)(&item) {
            out.push(item);
            Step::Emitted(1)
        } else {
            Step::Filtered
        }
    }
}

pub(crate) struct FlatMapLogic<F, I> {
    pub(crate) f: Arc<F>,
    pub(crate) _iter: PhantomData<fn() -> I>,
}

impl<T, U, I, F> Logic<T, U> for FlatMapLogic<F, I>
where
    F: Fn(T) -> I + Send + Sync + 'static,
    I: IntoIterator<Item = U> + 'static,
{
    #[inline]
    fn call(&mut self, item: T, out: &mut Vec<U>) -> Step<T> {
        let before = out.len();
        out.extend((self.f)(item));
        match out.len() - before {
            0 => Step::Filtered,
            n => Step::Emitted(n),
        }
    }
}

/// A fallible form: `f` borrows the item (and the worker's state) and returns its outputs
/// or an error. The state is rebuilt by `init` after a panic.
pub(crate) struct TryLogic<F, S, N, I, E> {
    pub(crate) f: Arc<F>,
    pub(crate) state: S,
    pub(crate) init: Arc<N>,
    pub(crate) _types: PhantomData<fn() -> (I, E)>,
}

impl<T, U, S, N, I, E, F> Logic<T, U> for TryLogic<F, S, N, I, E>
where
    F: Fn(&mut S, &T) -> Result<I, E> + Send + Sync + 'static,
    S: Send + 'static,
    N: Fn() -> S + Send + Sync + 'static,
    I: IntoIterator<Item = U> + 'static,
    E: Into<BoxError> + 'static,
    T: Send + 'static,
{
    fn call(&mut self, item: T, out: &mut Vec<U>) -> Step<T> {
        let before = out.len();
        // Catch panics here, not in the worker, so the borrowed item survives them.
        let state = &mut self.state;
        let result = catch_unwind(AssertUnwindSafe(|| match (self.f)(state, &item) {
            Ok(outputs) => {
                out.extend(outputs);
                Ok(())
            }
            Err(e) => Err(e),
        }));
        match result {
            Ok(Ok(())) => match out.len() - before {
                0 => Step::Filtered,
                n => Step::Emitted(n),
            },
            Ok(Err(e)) => {
                out.truncate(before);
                Step::Failed(Some(item), ItemErrorKind::Failed(Arc::from(e.into())))
            }
            Err(payload) => {
                out.truncate(before);
                self.state = (self.init)();
                Step::Failed(
                    Some(item),
                    ItemErrorKind::Panicked(panic_message(&*payload)),
                )
            }
        }
    }
}
