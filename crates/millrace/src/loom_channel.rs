//! A bounded MPMC channel for the loom models, standing in for crossbeam-channel's
//! `bounded`, which cannot run under loom (its waits are not loom's, so loom can neither
//! interleave nor wake them).
//!
//! loom's own `mpsc` cannot stand in either: it never reports disconnection, and the
//! protocols modelled here end on it (a submitter source drains "until the channel
//! disconnects"; a sink ends when its inlet does). So this is the smallest channel with
//! crossbeam's semantics that matter to them, on loom's `Mutex` and `Condvar`:
//!
//! * `send` waits while the channel is full and hands the value back once every receiver
//!   has gone; `try_send` hands it back at once when full or disconnected.
//! * `recv` waits while the channel is empty and some sender lives; it returns `None` once
//!   the channel is empty and every sender has gone. `try_recv` tells the two apart.
//! * Senders are counted: cloning adds one, dropping removes one.
//!
//! It holds no test of its own; its users are `loom_shutdown.rs` and `loom_outputs.rs`.

use std::collections::VecDeque;

use std::sync::Arc;

use loom::sync::{Condvar, Mutex};

struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    receivers: usize,
}

struct Shared<T> {
    capacity: usize,
    state: Mutex<State<T>>,
    /// Signalled when a value arrives or the last sender goes.
    filled: Condvar,
    /// Signalled when room appears or the last receiver goes.
    emptied: Condvar,
}

pub(crate) struct Sender<T>(Arc<Shared<T>>);
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

/// What `try_send` hands back, as crossbeam's `TrySendError`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TrySendError<T> {
    Full(T),
    Disconnected(T),
}

/// What `try_recv` says when it has no value, as crossbeam's `TryRecvError`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TryRecvError {
    Empty,
    Disconnected,
}

/// A channel holding at most `capacity` values (at least 1).
pub(crate) fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        capacity: capacity.max(1),
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            receivers: 1,
        }),
        filled: Condvar::new(),
        emptied: Condvar::new(),
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

impl<T> Sender<T> {
    /// Sends `value`, waiting for room; `Err(value)` if every receiver has gone.
    pub(crate) fn send(&self, value: T) -> Result<(), T> {
        let mut state = self.0.state.lock().unwrap();
        loop {
            if state.receivers == 0 {
                return Err(value);
            }
            if state.queue.len() < self.0.capacity {
                state.queue.push_back(value);
                self.0.filled.notify_all();
                return Ok(());
            }
            state = self.0.emptied.wait(state).unwrap();
        }
    }

    /// Sends `value` only if there is room now.
    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut state = self.0.state.lock().unwrap();
        if state.receivers == 0 {
            return Err(TrySendError::Disconnected(value));
        }
        if state.queue.len() >= self.0.capacity {
            return Err(TrySendError::Full(value));
        }
        state.queue.push_back(value);
        self.0.filled.notify_all();
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.state.lock().unwrap().senders += 1;
        Sender(Arc::clone(&self.0))
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A model failed (loom reports a deadlock by panicking): loom's objects may no
            // longer be used, and a second panic here would abort the test process.
            return;
        }
        let mut state = self.0.state.lock().unwrap();
        state.senders -= 1;
        if state.senders == 0 {
            self.0.filled.notify_all();
        }
    }
}

impl<T> Receiver<T> {
    /// Waits for a value; `None` once the channel is empty and disconnected.
    pub(crate) fn recv(&self) -> Option<T> {
        let mut state = self.0.state.lock().unwrap();
        loop {
            if let Some(value) = state.queue.pop_front() {
                self.0.emptied.notify_all();
                return Some(value);
            }
            if state.senders == 0 {
                return None;
            }
            state = self.0.filled.wait(state).unwrap();
        }
    }

    /// Takes a value if one is queued.
    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut state = self.0.state.lock().unwrap();
        match state.queue.pop_front() {
            Some(value) => {
                self.0.emptied.notify_all();
                Ok(value)
            }
            None if state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A model failed (loom reports a deadlock by panicking): loom's objects may no
            // longer be used, and a second panic here would abort the test process.
            return;
        }
        let mut state = self.0.state.lock().unwrap();
        state.receivers -= 1;
        if state.receivers == 0 {
            self.0.emptied.notify_all();
        }
    }
}
