//! The synchronisation primitives the protocols are built on, routed through one place.
//!
//! Under `cfg(loom)` every mutex, condition variable and atomic used by the hand-off
//! protocols ([`crate::window`], [`crate::reorder`], [`crate::segment::crew`], the stop and
//! cancel flags of [`crate::signals`], and each connector's [`crate::batch_size`]) comes from [loom], so the model checks in
//! `loom_*.rs` explore every interleaving of the real code; otherwise they are `std`'s.
//! This is the shim habit of tokio's `crate::loom`.
//!
//! [loom]: https://docs.rs/loom

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

/// Locks `mutex`, recovering the guard if a panicking thread poisoned it.
///
/// Every critical section in millrace leaves its state consistent before it can
/// panic (user code never runs under our locks), so poison carries no information.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Locks `mutex` if no one holds it (`None` if someone does), recovering the guard from
/// poison like [`lock`].
pub(crate) fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Waits on `condvar`, recovering the guard from poison like [`lock`].
pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    match condvar.wait(guard) {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
