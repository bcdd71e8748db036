//! Helpers shared by the broker tests: a timeout around anything that could hang, and a
//! server of the test's own.

#![allow(dead_code)] // each test file uses its own subset

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

pub(crate) use millrace_nats::local_server::LocalServer;

/// Runs `f` on a thread of its own and returns its result; panics if it has not finished
/// within `secs` seconds (a hang), and passes on its panic if it panicked.
pub(crate) fn within<T, F>(secs: u64, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("test-body".into())
        .spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        })
        .expect("spawn the test body");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => resume_unwind(payload),
        Err(_) => panic!("timed out: the test body did not finish within {secs} s (a hang?)"),
    }
}

/// A fresh server; the test fails with the reason if none can be started.
pub(crate) fn server() -> LocalServer {
    LocalServer::start().expect("start nats-server (apt-get install nats-server)")
}
