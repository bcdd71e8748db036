//! Model checks (loom) of shutdown (protocols.md section 4): a stop, a cancel, and a
//! submitter racing a stop.
//!
//! What runs for real: [`Control`] itself (built whole: its stop and cancel flags come
//! from the sync shim, its window list and unfinished list are loom mutexes; its metrics
//! and its end-of-run channel are built but never touched, so loom does not see them),
//! [`Window`], and [`drop_unfinished`]. What is mirrored: the source's loops, which send
//! batches into a crossbeam connector and cannot run under loom. Each mirror names the
//! function it follows and keeps its steps in order; a crossbeam channel becomes the
//! stand-in of `loom_channel.rs`, and `run_submitted`'s `select!` over its input and the
//! stop signal becomes a poll of both that yields between polls.
//!
//! * `loom_shutdown_cancel_releases_a_parked_source`: a cancel closes the windows, so a
//!   source parked in one returns, drops the batch it held as unfinished, and ends; every
//!   batch it numbered is either shipped or recorded unfinished.
//! * `loom_shutdown_stop_is_seen_by_a_source_released_after_it`: a source woken by a
//!   credit granted after `stop()` sees the stop at its next check; it never admits a
//!   batch more (if it did, it would park for good and loom would report a deadlock).
//! * `loom_shutdown_submit_racing_a_stop_is_admitted_or_handed_back`: a `submit` and a
//!   `try_submit` racing the submitter source's stop either get their item to the source
//!   or get it back in the error; none is lost or delivered twice, and the source ends.

use std::sync::{Arc, Weak};

use loom::thread;

use crate::control::Control;
use crate::item::Ids;
use crate::loom_channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};
use crate::metrics::StageMetrics;
use crate::response::drop_unfinished;
use crate::sync::{lock, Mutex};
use crate::window::Window;

/// A whole `Control`, as `launch.rs` builds it (no stages: none is used here).
fn control() -> Arc<Control> {
    let metrics = |name: &str| Arc::new(StageMetrics::new(Arc::from(name), 1, 1));
    Arc::new(Control::new(
        metrics("source"),
        Vec::new(),
        metrics("sink"),
        true,
    ))
}

/// `SourceCtx::ship` up to the send: a batch of one item, numbered `seq`, admitted through
/// `window`. On a cancel or a closed window the source stops and the batch's item is
/// dropped as unfinished. Returns whether the batch went on.
fn ship(control: &Control, window: &Window, seq: u64) -> bool {
    if control.signals.cancelled() || !window.admit(seq) {
        control.signals.stop();
        let counters = control.ledger.source.slot(0);
        drop_unfinished(control, None, Ids::Range { start: seq, len: 1 }, counters);
        return false;
    }
    true
}

#[test]
fn loom_shutdown_cancel_releases_a_parked_source() {
    loom::model(|| {
        const BATCHES: u64 = 3;
        let control = control();
        // Nobody releases this window: past its first position, only a cancel frees the
        // source.
        let window = Arc::new(Window::new(1));
        control.signals.register_window(Arc::clone(&window));
        let source = {
            let (control, window) = (Arc::clone(&control), Arc::clone(&window));
            // `run_iter`: while not stopping, number a batch and ship it.
            thread::spawn(move || {
                let mut shipped = 0;
                while !control.signals.stopping() && shipped < BATCHES {
                    if !ship(&control, &window, shipped) {
                        break;
                    }
                    shipped += 1;
                }
                shipped
            })
        };
        control.signals.cancel();
        let shipped = source.join().unwrap();
        assert!(control.signals.stopping() && control.signals.cancelled());
        assert!(shipped <= 1, "only position 0 fits the window");
        let unfinished: Vec<u64> = lock(&control.ledger.unfinished)
            .iter()
            .map(|id| id.0)
            .collect();
        // The source saw the stop before numbering another batch, or it dropped the batch
        // it was admitting: nothing it numbered is unaccounted for.
        assert!(
            unfinished.is_empty() || unfinished == [shipped],
            "shipped {shipped}, unfinished {unfinished:?}"
        );
        assert!(!window.admit(5), "a cancelled run's windows stay closed");
    });
}

#[test]
fn loom_shutdown_stop_is_seen_by_a_source_released_after_it() {
    loom::model(|| {
        let control = control();
        let window = Arc::new(Window::new(1));
        control.signals.register_window(Arc::clone(&window));
        let source = {
            let (control, window) = (Arc::clone(&control), Arc::clone(&window));
            // `run_iter`, with batches numbered without end: only the stop ends it.
            thread::spawn(move || {
                let mut shipped = 0;
                while !control.signals.stopping() {
                    assert!(ship(&control, &window, shipped), "nothing cancels here");
                    shipped += 1;
                }
                shipped
            })
        };
        // A stop (`Handle::stop`, or `Control::fail`), then one credit: whatever admit the
        // credit releases happens after the stop, so the check after it sees the stop.
        control.signals.stop();
        window.advance(1);
        let shipped = source.join().unwrap();
        assert!(shipped <= 2, "the source admitted {shipped} batches");
        assert!(lock(&control.ledger.unfinished).is_empty());
    });
}

/// `SubmitShared`: the shared sender slot of a pipeline's submitters.
struct SubmitShared {
    sender: Mutex<Option<Sender<u64>>>,
}

/// `Submitter::sender`: a clone of the shared sender, taken under the slot's lock.
fn sender(shared: &SubmitShared) -> Option<Sender<u64>> {
    lock(&shared.sender).clone()
}

/// `Submitter::submit`: `Err(item)` if the sender is gone or the channel disconnected.
fn submit(shared: &SubmitShared, item: u64) -> Result<(), u64> {
    let Some(tx) = sender(shared) else {
        return Err(item);
    };
    tx.send(item)
}

/// `Submitter::try_submit`: hands the item back when full, stopped or ended.
fn try_submit(shared: &SubmitShared, item: u64) -> Result<(), u64> {
    let Some(tx) = sender(shared) else {
        return Err(item);
    };
    tx.try_send(item).map_err(|e| match e {
        TrySendError::Full(item) | TrySendError::Disconnected(item) => item,
    })
}

/// Which arm of `run_submitted`'s `select!` fired.
enum Selected {
    /// `recv(rx)`: an item, or `None` once the channel disconnected.
    Item(Option<u64>),
    /// `recv(control.signals.stop_signal())`: the stop signal disconnected.
    Stop,
}

/// `select! { recv(rx), recv(control.signals.stop_signal()) }`. crossbeam's `select!` cannot run
/// under loom, so this waits for either by polling, yielding to the other threads between
/// polls (loom's model of a wait it cannot see). The stop signal disconnects in
/// `Control::stop` right after the flag is stored, so it is observed here through the
/// flag, whose load loom does model.
fn select_item_or_stop(rx: &Receiver<u64>, control: &Control) -> Selected {
    loop {
        match rx.try_recv() {
            Ok(item) => return Selected::Item(Some(item)),
            Err(TryRecvError::Disconnected) => return Selected::Item(None),
            Err(TryRecvError::Empty) if control.signals.stopping() => return Selected::Stop,
            Err(TryRecvError::Empty) => thread::yield_now(),
        }
    }
}

/// `run_submitted`, batches of one item: on a stop, take the sender out of the shared
/// slot, then drain the channel until it disconnects. Returns what it shipped.
fn run_submitted(rx: Receiver<u64>, shared: Weak<SubmitShared>, control: &Control) -> Vec<u64> {
    let mut closed = false;
    let mut shipped = Vec::new();
    loop {
        if !closed && control.signals.stopping() {
            if let Some(shared) = shared.upgrade() {
                lock(&shared.sender).take();
            }
            closed = true;
        }
        let item = match rx.try_recv() {
            Ok(item) => item,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                // Wait for an item, or (until input is closed) for a stop.
                let got = if closed {
                    rx.recv()
                } else {
                    match select_item_or_stop(&rx, control) {
                        Selected::Stop => continue,
                        Selected::Item(item) => item,
                    }
                };
                match got {
                    Some(item) => item,
                    None => break,
                }
            }
        };
        // `ship`: the run was only stopped, not cancelled, so the batch is admitted.
        shipped.push(item);
    }
    shipped
}

#[test]
fn loom_shutdown_submit_racing_a_stop_is_admitted_or_handed_back() {
    loom::model(|| {
        let control = control();
        // `Submitter::new`: a channel of one item, its sender in the shared slot.
        let (tx, rx) = bounded(1);
        let shared = Arc::new(SubmitShared {
            sender: Mutex::new(Some(tx)),
        });
        let source = {
            let (control, weak) = (Arc::clone(&control), Arc::downgrade(&shared));
            thread::spawn(move || run_submitted(rx, weak, &control))
        };
        // The user's thread submits twice, then drops its submitter (the last one).
        let submitter = thread::spawn(move || {
            let a = submit(&shared, 1);
            let b = try_submit(&shared, 2);
            drop(shared);
            [a, b]
        });
        control.signals.stop();
        let results = submitter.join().unwrap();
        let shipped = source.join().unwrap();
        for (result, item) in results.iter().zip([1, 2]) {
            let times = shipped.iter().filter(|&&s| s == item).count();
            match result {
                Ok(()) => assert_eq!(times, 1, "item {item} accepted: shipped once"),
                Err(back) => {
                    assert_eq!(*back, item, "the error hands the item back");
                    assert_eq!(times, 0, "item {item} refused: never shipped");
                }
            }
        }
        assert_eq!(shipped.len(), results.iter().filter(|r| r.is_ok()).count());
    });
}
