//! A sliding window over a sequence: the one blocking primitive of millrace's protocols.
//!
//! A [`Window`] lets a single admitter take positions `0, 1, 2, …` while a releaser, further
//! down the pipeline, advances the window's front as it finishes them. Position `p` may be
//! taken while `p < front + limit`, so at most `limit` positions are ever taken and not yet
//! released. Three things use it:
//!
//! * **Reorder windows.** An ordered stage restores input order with a reorder buffer (see
//!   [`crate::reorder`]). The producer that numbers batches for it (the source, or the ordered
//!   stage before it) admits each batch's sequence number through the window, and the ordered
//!   stage advances the front as it emits batches in order. However slow one batch is, the
//!   reorder buffer never holds more than `limit` batches.
//! * **In-flight credits.** When the response path is on, the source admits each item through
//!   the window and the origin (whoever finally consumes responses) advances it as responses
//!   arrive, so every response queue is bounded by `limit`.
//! * **An async stage's hand-off.** Its intake thread admits each batch's first item before
//!   it takes the batch off the connector, and the driver advances the front as it receives
//!   batches, so fewer than `limit` items and a batch are on their way between the two (see
//!   `segment::asynchronous`).
//!
//! # Why it cannot deadlock
//!
//! Only the admitter ever waits, and it waits only for positions it has *already* handed
//! downstream to be released. Those positions are past it: the stages between it and the
//! releaser never wait on the admitter, so they finish them, and the releaser advances the
//! front. The admitter never holds a partial batch while it waits (it admits complete
//! batches), so nothing it holds is needed for that progress. [`Window::close`] wakes the
//! admitter for good when a pipeline is cancelled.
//!
//! The hand-off (check, wait, advance, notify) is model-checked with loom in
//! `loom_window.rs`.

use crate::sync::{lock, wait, AtomicBool, AtomicU64, Condvar, Mutex, Ordering};

pub(crate) struct Window {
    limit: u64,
    front: AtomicU64,
    /// Set by [`Window::close`]: read by `admit` first, and again under the lock before it
    /// waits (`close` sets it before it takes the lock to wake a waiter, so none misses it).
    shut: AtomicBool,
    state: Mutex<WaitState>,
    wakeup: Condvar,
}

#[derive(Default)]
struct WaitState {
    waiting: bool,
}

impl Window {
    /// A window of `limit` positions (at least 1).
    pub(crate) fn new(limit: u64) -> Self {
        Window {
            limit: limit.max(1),
            front: AtomicU64::new(0),
            shut: AtomicBool::new(false),
            state: Mutex::new(WaitState::default()),
            wakeup: Condvar::new(),
        }
    }

    fn open_for(&self, position: u64) -> bool {
        position
            < self
                .front
                .load(Ordering::Acquire)
                .saturating_add(self.limit)
    }

    /// Waits until `position` is inside the window. Returns `false` if the window was closed.
    pub(crate) fn admit(&self, position: u64) -> bool {
        if self.shut.load(Ordering::Acquire) {
            return false;
        }
        if self.open_for(position) {
            return true;
        }
        let mut state = lock(&self.state);
        loop {
            if self.shut.load(Ordering::Acquire) {
                return false;
            }
            if self.open_for(position) {
                state.waiting = false;
                return true;
            }
            state.waiting = true;
            state = wait(&self.wakeup, state);
        }
    }

    /// Moves the front on by `released` positions, waking the admitter if it waits.
    pub(crate) fn advance(&self, released: u64) {
        if released == 0 {
            return;
        }
        self.front.fetch_add(released, Ordering::AcqRel);
        let mut state = lock(&self.state);
        if state.waiting {
            state.waiting = false;
            self.wakeup.notify_all();
        }
    }

    /// Opens the window for good: every `admit`, now and later, returns `false` at once.
    pub(crate) fn close(&self) {
        self.shut.store(true, Ordering::Release);
        let mut state = lock(&self.state);
        state.waiting = false;
        self.wakeup.notify_all();
    }

    /// How many positions have been released.
    #[cfg(any(test, loom))]
    pub(crate) fn front(&self) -> u64 {
        self.front.load(Ordering::Acquire)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn admits_up_to_the_limit_without_waiting() {
        let w = Window::new(3);
        assert!(w.admit(0));
        assert!(w.admit(2));
        assert_eq!(w.front(), 0);
    }

    /// Waits (up to 10 s) until the window's admitter is parked in `admit`.
    fn wait_until_parked(w: &Window) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !lock(&w.state).waiting {
            assert!(
                std::time::Instant::now() < deadline,
                "the admitter never waited"
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn admitter_waits_until_the_front_advances() {
        let w = Arc::new(Window::new(2));
        let w2 = Arc::clone(&w);
        let (done_tx, done) = std::sync::mpsc::channel();
        let admitter = thread::spawn(move || {
            let admitted = w2.admit(5);
            let _ = done_tx.send(admitted);
        });
        // The admitter must be seen parked, not merely not yet finished (which a thread
        // that never started would also be).
        wait_until_parked(&w);
        assert!(
            done.try_recv().is_err(),
            "position 5 must wait while front + limit = 2"
        );
        w.advance(4);
        let admitted = done
            .recv_timeout(Duration::from_secs(10))
            .expect("the admitter returns once the front advances");
        assert!(admitted);
        admitter.join().unwrap();
    }

    #[test]
    fn close_releases_a_waiting_admitter() {
        let w = Arc::new(Window::new(1));
        let w2 = Arc::clone(&w);
        let (done_tx, done) = std::sync::mpsc::channel();
        let admitter = thread::spawn(move || {
            let admitted = w2.admit(10);
            let _ = done_tx.send(admitted);
        });
        wait_until_parked(&w);
        w.close();
        let admitted = done
            .recv_timeout(Duration::from_secs(10))
            .expect("close wakes the admitter");
        assert!(!admitted);
        admitter.join().unwrap();
    }
}
