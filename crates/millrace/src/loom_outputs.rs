//! Model checks (loom) of the sink-side settle of `outputs()` (`Outputs::next` in
//! `pipeline/running.rs`) against the source's in-flight window.
//!
//! When the response path is on, the source admits each batch through the in-flight
//! [`Window`] (`SourceCtx::admit` in `pipeline/source.rs`: a batch goes in whole once its
//! first item fits), and the sink's settle of a batch is what advances it (`settle` →
//! `SinkCtx::delivered` → `Upstream::Credits(window).advance(n)` in `response.rs`). With
//! `outputs()` the sink is the caller's thread, so *when* `next` settles matters:
//!
//! * `Outputs::next` settles the batch the caller took **before** it waits for the next
//!   one. Whatever the window (even one smaller than a batch), the source is never waiting
//!   for credits the sink is sitting on: `loom_outputs_settle_before_wait_always_completes`.
//! * The old order (wait for the next batch, then settle the one before) holds the credits
//!   of the batch the caller already took while waiting. The source's next batch needs them
//!   whenever the window is no wider than a batch (`limit <= batch`), so both wait for
//!   ever: `loom_outputs_wait_before_settle_deadlocks` shows loom finding that deadlock
//!   (loom's deadlock report is a panic, and its exploration is deterministic, so the test
//!   is `#[should_panic]`).
//!
//! The window is the real one. The connector between source and sink is the stand-in channel
//! of `loom_channel.rs` (crossbeam cannot run under loom); the sink's steps mirror
//! `Outputs::next` and `Outputs::settle` line for line, leaving out metrics and ids.

use std::sync::Arc;

use loom::thread;

use crate::loom_channel::{bounded, Receiver};
use crate::window::Window;

/// Items per batch; the in-flight window is smaller than one batch, as the source allows
/// ("a window smaller than a batch still moves").
const BATCH: u64 = 2;
const LIMIT: u64 = 1;
const BATCHES: u64 = 2;

/// The source (`run_iter` + `SourceCtx::ship`): number each batch, admit it through the
/// in-flight window by its first item, send it on; drop the outlet at the end.
fn spawn_source(window: Arc<Window>) -> (thread::JoinHandle<()>, Receiver<Vec<u64>>) {
    let (outlet, inlet) = bounded::<Vec<u64>>(1);
    let source = thread::spawn(move || {
        for seq in 0..BATCHES {
            let first = seq * BATCH;
            assert!(window.admit(first), "nothing closes the window here");
            outlet
                .send((first..first + BATCH).collect())
                .expect("the sink keeps its inlet");
        }
        // Dropping `outlet` ends the input: the sink's `recv` then answers `None`.
    });
    (source, inlet)
}

/// The sink's state in `Outputs`: the batch being handed out and how much of it was taken.
struct Sink {
    inlet: Option<Receiver<Vec<u64>>>,
    current: std::vec::IntoIter<u64>,
    /// Items of the current batch not yet settled (its ids, in the real thing).
    current_len: u64,
    taken: u64,
    window: Arc<Window>,
}

impl Sink {
    /// `Outputs::settle`: what the caller took was delivered, and delivered items return
    /// their in-flight credits. (The untaken rest would be dropped as unfinished, which
    /// answers them too; `next` only settles an exhausted batch.)
    fn settle(&mut self) {
        assert_eq!(self.taken, self.current_len, "next settles whole batches");
        self.window.advance(self.taken);
        self.taken = 0;
        self.current_len = 0;
    }

    fn take(&mut self, batch: Vec<u64>) {
        self.current_len = batch.len() as u64;
        self.current = batch.into_iter();
    }

    /// `Outputs::next`, as it is: settle, then wait.
    fn next(&mut self) -> Option<u64> {
        loop {
            if let Some(item) = self.current.next() {
                self.taken += 1;
                return Some(item);
            }
            self.inlet.as_ref()?;
            self.settle();
            match self.inlet.as_ref()?.recv() {
                Some(batch) => self.take(batch),
                None => {
                    self.inlet = None;
                    return None;
                }
            }
        }
    }

    /// The old `Outputs::next`: wait for the next batch, then settle the one before.
    fn next_old(&mut self) -> Option<u64> {
        loop {
            if let Some(item) = self.current.next() {
                self.taken += 1;
                return Some(item);
            }
            let batch = self.inlet.as_ref()?.recv();
            self.settle();
            match batch {
                Some(batch) => self.take(batch),
                None => {
                    self.inlet = None;
                    return None;
                }
            }
        }
    }
}

fn run_sink(old_order: bool) {
    let window = Arc::new(Window::new(LIMIT));
    let (source, inlet) = spawn_source(Arc::clone(&window));
    let mut sink = Sink {
        inlet: Some(inlet),
        current: Vec::new().into_iter(),
        current_len: 0,
        taken: 0,
        window: Arc::clone(&window),
    };
    let mut got = Vec::new();
    loop {
        let item = if old_order {
            sink.next_old()
        } else {
            sink.next()
        };
        match item {
            Some(item) => got.push(item),
            None => break,
        }
    }
    source.join().unwrap();
    assert_eq!(got, (0..BATCH * BATCHES).collect::<Vec<_>>());
    assert_eq!(window.front(), BATCH * BATCHES, "every item was settled");
}

#[test]
fn loom_outputs_settle_before_wait_always_completes() {
    loom::model(|| run_sink(false));
}

#[test]
#[should_panic(expected = "deadlock")]
fn loom_outputs_wait_before_settle_deadlocks() {
    loom::model(|| run_sink(true));
}
