//! Model check (loom) of the sink consumed on the worker in front of it
//! (`pipeline/sink/direct.rs`).
//!
//! The worker consumes its batches itself, under the lock the sink thread takes too, until
//! the sink is found costly: from then on it sends them on the connector, where the sink
//! thread consumes them. The sink thread finishes the sink (a fold's value) once every
//! producer is gone. The model explores every interleaving of the worker (direct batches,
//! the switch, sent batches, the end of input) and the sink thread (`run_sink`: receive,
//! consume under the lock, finish), and checks that the finished sink saw every batch
//! exactly once, in the worker's order (one worker), whether or not it switched, and that
//! the closure never ran twice at once. A second model runs two workers that each take the
//! lock only if it is free (`try_lock`) and send their batch on the connector otherwise:
//! every batch is consumed exactly once, on one thread or another. A third runs two workers
//! of an ordered stage, releasing through the real reorder buffer and waiting for the sink's
//! lock, with the switch to the sink's thread in the middle: the sink sees every batch
//! once, in sequence. The lock and the switch
//! flag are loom's (through `crate::sync`); the connector is the stand-in channel of
//! `loom_channel.rs`.

use std::sync::Arc;

use loom::thread;

use crate::loom_channel::bounded;
use crate::reorder::Reorder;
use crate::sync::{lock, try_lock, AtomicBool, Mutex, Ordering};

const BATCHES: u64 = 3;

/// The sink's state: what it consumed, in order; `None` once finished.
struct Shared {
    state: Mutex<Option<Vec<u64>>>,
    own_thread: AtomicBool,
}

impl Shared {
    /// The consuming end of `SinkState::consume`, under the shared lock.
    fn consume(&self, batch: u64) {
        let mut state = lock(&self.state);
        state
            .as_mut()
            .expect("nothing is consumed after the sink finished")
            .push(batch);
    }
}

/// Runs the model: the worker switches to sending after `switch_after` direct batches
/// (never, if that is `BATCHES` or more).
fn model(switch_after: u64) {
    loom::model(move || {
        let shared = Arc::new(Shared {
            state: Mutex::new(Some(Vec::new())),
            own_thread: AtomicBool::new(false),
        });
        let (outlet, inlet) = bounded::<u64>(1);
        let at_worker = Arc::clone(&shared);
        let worker = thread::spawn(move || {
            // `Emitter::send` with a direct sink, then `DirectSink::consume`.
            for batch in 0..BATCHES {
                if at_worker.own_thread.load(Ordering::Relaxed) {
                    outlet.send(batch).expect("the sink thread keeps its inlet");
                    continue;
                }
                at_worker.consume(batch);
                if batch + 1 >= switch_after {
                    at_worker.own_thread.store(true, Ordering::Relaxed);
                }
            }
            // The worker exits: its outlet goes, and with the last one the input ends.
        });
        // The sink thread: `run_sink`.
        while let Some(batch) = inlet.recv() {
            shared.consume(batch);
        }
        let consumed = lock(&shared.state).take().expect("finished once");
        worker.join().expect("the worker does not panic");
        assert_eq!(consumed, (0..BATCHES).collect::<Vec<_>>());
    });
}

#[test]
fn loom_a_sink_consumed_on_the_worker_finishes_with_every_batch_once() {
    model(BATCHES);
}

#[test]
fn loom_a_sink_that_gets_its_thread_back_mid_run_finishes_with_every_batch_once() {
    model(1);
}

#[test]
fn loom_two_workers_that_find_the_sink_taken_send_and_every_batch_is_consumed_once() {
    loom::model(|| {
        let shared = Arc::new(Shared {
            state: Mutex::new(Some(Vec::new())),
            own_thread: AtomicBool::new(false),
        });
        let (outlet, inlet) = bounded::<u64>(2);
        let workers: Vec<_> = (0..2u64)
            .map(|worker| {
                let (shared, outlet) = (Arc::clone(&shared), outlet.clone());
                thread::spawn(move || {
                    // `DirectSink::consume`: the lock if it is free, else the connector.
                    for batch in [worker * 10, worker * 10 + 1] {
                        match try_lock(&shared.state) {
                            Some(mut state) => state
                                .as_mut()
                                .expect("nothing is consumed after the sink finished")
                                .push(batch),
                            None => outlet.send(batch).expect("the sink thread keeps its inlet"),
                        }
                    }
                })
            })
            .collect();
        drop(outlet);
        while let Some(batch) = inlet.recv() {
            shared.consume(batch);
        }
        let mut consumed = lock(&shared.state).take().expect("finished once");
        for worker in workers {
            worker.join().expect("a worker does not panic");
        }
        consumed.sort_unstable();
        assert_eq!(consumed, [0, 1, 10, 11]);
    });
}

#[test]
fn loom_an_ordered_stages_workers_consume_the_sink_in_order_across_the_switch() {
    loom::model(|| {
        let shared = Arc::new(Shared {
            state: Mutex::new(Some(Vec::new())),
            own_thread: AtomicBool::new(false),
        });
        let reorder = Arc::new(Reorder::new());
        let (outlet, inlet) = bounded::<u64>(2);
        let workers: Vec<_> = (0..2u64)
            .map(|worker| {
                let (shared, reorder, outlet) =
                    (Arc::clone(&shared), Arc::clone(&reorder), outlet.clone());
                thread::spawn(move || {
                    // Each worker finishes two batches; `Emitter::emit` in ordered mode
                    // releases what is due under the reorder buffer's lock, and `send` hands
                    // each to `DirectSink::consume(batch, in_order = true)`.
                    for seq in [worker, worker + 2] {
                        reorder.insert(seq, seq, |batch| {
                            if shared.own_thread.load(Ordering::Relaxed) {
                                outlet.send(batch).expect("the sink thread keeps its inlet");
                                return;
                            }
                            shared.consume(batch);
                            if batch == 1 {
                                // Found costly: the sink gets its thread back.
                                shared.own_thread.store(true, Ordering::Relaxed);
                            }
                        });
                    }
                })
            })
            .collect();
        drop(outlet);
        while let Some(batch) = inlet.recv() {
            shared.consume(batch);
        }
        let consumed = lock(&shared.state).take().expect("finished once");
        for worker in workers {
            worker.join().expect("a worker does not panic");
        }
        assert_eq!(consumed, [0, 1, 2, 3]);
    });
}
