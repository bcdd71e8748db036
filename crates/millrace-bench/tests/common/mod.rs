//! Helpers shared by the benchmark crate's tests.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How long one guarded run may take before the test calls it a hang.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `f` on a thread of its own; panics if it takes longer than [`TIMEOUT`].
pub(crate) fn guarded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not finish within {TIMEOUT:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}
