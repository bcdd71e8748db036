//! The run's signals: stop, cancel and the sink's end, as flags to check and as wake-ups to
//! wait on. One per run, shared by every thread of it through [`Control`](crate::control).
//!
//! # Shutdown
//!
//! * **Completion.** The source runs out and drops its outlet; each stage drains its inlet,
//!   its workers exit and drop their outlets; the disconnection travels down to the sink.
//! * **Graceful stop** ([`Signals::stop`]): only the source reacts. It stops taking input,
//!   and everything already accepted drains as on completion. Nothing accepted is lost. A
//!   stop asked for once the input ran out by itself stops nothing: the run completes.
//! * **The end state** is fixed when the sink ends ([`Signals::ending`]): a stop or cancel
//!   asked for after that (a watchdog that fires just after the last item) changes nothing.
//! * **Cancel** ([`Signals::cancel`]): the source stops and every worker and the sink drop
//!   what they receive instead of working on it, recording each dropped item's id as
//!   unfinished, until the disconnection reaches them. Windows are closed so no thread stays
//!   parked in one.
//!
//! Nothing polls: a thread that waits for input can also wait on [`Signals::stop_signal`]
//! (a channel that disconnects on stop), async stages await a tokio `watch` set on cancel,
//! and `join` waits on [`Signals::wait_end`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::sync::{lock, AtomicBool, AtomicUsize, Mutex, Ordering};
use crate::window::Window;

/// How a run ended, as far as stop and cancel go (see [`Signals::ending`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The input ran out by itself and everything drained.
    Completed = 1,
    /// A stop cut the input short; everything admitted drained.
    Stopped = 2,
    /// A cancel dropped what was in flight.
    Cancelled = 3,
}

/// What [`Signals::cancel`] tells (see [`Signals::on_cancel`]).
pub(crate) type CancelHook = Box<dyn Fn(&Signals) + Send + Sync>;

pub(crate) struct Signals {
    stop: AtomicBool,
    cancel: AtomicBool,
    /// Set when the source's input ran out by itself: its iterator ended (or said, as a
    /// batch filled, that it has nothing left), or every submitter was dropped (not on a
    /// stop).
    input_ended: AtomicBool,
    /// Set by a stop asked for before the input ran out by itself: the input was cut short.
    /// A stop after that (or after the run ended) has nothing left to stop: every item was
    /// admitted, and the run completes.
    input_cut: AtomicBool,
    /// How the run ended ([`Ending`] as a number), fixed once, when the sink ended: a stop or
    /// cancel asked for later changes nothing. 0 while the sink runs.
    ending: AtomicUsize,
    /// Told of a cancel, after the flags are set (an iterator source's [`LetGo`]).
    ///
    /// [`LetGo`]: crate::pipeline::source::LetGo
    on_cancel: Mutex<Vec<CancelHook>>,
    /// Set when a cancel took the outlet of a source thread waiting in its iterator: `join`
    /// does not wait for that thread.
    source_let_go: AtomicBool,
    /// When the run started: the clock of worker activity.
    pub(crate) started: Instant,
    windows: Mutex<Vec<Arc<Window>>>,
    /// Dropped on a stop: see [`Signals::stop_signal`].
    stop_tx: std::sync::Mutex<Option<Sender<()>>>,
    stop_rx: Receiver<()>,
    /// Dropped when the sink has ended, or when the run failed on a wedge: what `join`
    /// waits for before joining threads (see [`Signals::wait_end`]).
    end_tx: std::sync::Mutex<Option<Sender<()>>>,
    pub(crate) end_rx: Receiver<()>,
    /// Set on a cancel, for async stages to await (see `segment::asynchronous`).
    #[cfg(feature = "async")]
    pub(crate) cancel_watch: tokio::sync::watch::Sender<bool>,
}

/// Drops the sender in `slot`, disconnecting its channel: the wake-up of everyone waiting.
fn disconnect(slot: &std::sync::Mutex<Option<Sender<()>>>) {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
}

impl Signals {
    pub(crate) fn new() -> Self {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let (end_tx, end_rx) = crossbeam_channel::bounded(0);
        Signals {
            stop: AtomicBool::new(false),
            cancel: AtomicBool::new(false),
            input_ended: AtomicBool::new(false),
            input_cut: AtomicBool::new(false),
            ending: AtomicUsize::new(0),
            on_cancel: Mutex::new(Vec::new()),
            source_let_go: AtomicBool::new(false),
            started: Instant::now(),
            windows: Mutex::new(Vec::new()),
            stop_tx: std::sync::Mutex::new(Some(stop_tx)),
            stop_rx,
            end_tx: std::sync::Mutex::new(Some(end_tx)),
            end_rx,
            #[cfg(feature = "async")]
            cancel_watch: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Time since the run started, the clock of worker activity.
    pub(crate) fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Asks for a graceful stop.
    pub(crate) fn stop(&self) {
        if !self.input_ended() {
            self.input_cut.store(true, Ordering::Release);
        }
        self.stop.store(true, Ordering::Release);
        // Wakes whoever waits in `stop_signal` (a submitter source waiting for input).
        disconnect(&self.stop_tx);
    }

    /// A channel that disconnects when a stop (or cancel) is asked for: a thread that waits
    /// for something else can `select!` on it as well, and wake at once.
    pub(crate) fn stop_signal(&self) -> &Receiver<()> {
        &self.stop_rx
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Cancels: a stop, and every thread drops what it holds; windows close.
    pub(crate) fn cancel(&self) {
        self.stop();
        self.cancel.store(true, Ordering::Release);
        #[cfg(feature = "async")]
        self.cancel_watch.send_replace(true);
        for w in lock(&self.windows).iter() {
            w.close();
        }
        for hook in lock(&self.on_cancel).iter() {
            hook(self);
        }
    }

    /// Has `hook` told of a cancel (at once, if the run is already cancelled).
    pub(crate) fn on_cancel(&self, hook: CancelHook) {
        let mut hooks = lock(&self.on_cancel);
        if self.cancelled() {
            hook(self);
        }
        hooks.push(hook);
    }

    /// A cancel took the source thread's outlet while it waited in its iterator.
    pub(crate) fn let_go_of_source(&self) {
        self.source_let_go.store(true, Ordering::Release);
    }

    /// Whether [`Signals::let_go_of_source`] happened: `join` leaves that thread be.
    pub(crate) fn source_let_go(&self) -> bool {
        self.source_let_go.load(Ordering::Acquire)
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }

    /// The source's input ran out by itself (see [`Signals::input_ended`]).
    pub(crate) fn end_input(&self) {
        self.input_ended.store(true, Ordering::Release);
    }

    /// Whether the source's input ran out by itself: no item will be admitted any more.
    pub(crate) fn input_ended(&self) -> bool {
        self.input_ended.load(Ordering::Acquire)
    }

    /// A window a cancel must close (at once, if the run is already cancelled).
    pub(crate) fn register_window(&self, window: Arc<Window>) {
        // Checked under the lock `cancel` closes the windows under, so a window registered
        // while a cancel runs is closed by one or the other.
        let mut windows = lock(&self.windows);
        if self.cancelled() {
            window.close();
        }
        windows.push(window);
    }

    /// The sink has ended (or the run failed on a wedge): fixes how the run ended
    /// ([`Signals::ending`]) and wakes [`Signals::wait_end`].
    pub(crate) fn signal_end(&self) {
        let now = self.ending_now() as usize;
        let _ = self
            .ending
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        disconnect(&self.end_tx);
    }

    fn ending_now(&self) -> Ending {
        if self.cancelled() {
            Ending::Cancelled
        } else if self.input_cut.load(Ordering::Acquire) {
            Ending::Stopped
        } else {
            Ending::Completed
        }
    }

    /// How the run ended, as far as stop and cancel go: as it stood when the sink ended
    /// (a stop or cancel asked for after that finds nothing to stop), or, before that, as
    /// it stands now. A stop asked for once the input had run out by itself stopped
    /// nothing: the run completes.
    pub(crate) fn ending(&self) -> Ending {
        match self.ending.load(Ordering::Acquire) {
            x if x == Ending::Cancelled as usize => Ending::Cancelled,
            x if x == Ending::Stopped as usize => Ending::Stopped,
            x if x == Ending::Completed as usize => Ending::Completed,
            _ => self.ending_now(),
        }
    }

    /// Whether the sink has ended (the end state is fixed: see [`Signals::ending`]).
    pub(crate) fn has_ended(&self) -> bool {
        self.ending.load(Ordering::Acquire) != 0
    }

    /// Waits until [`Signals::signal_end`].
    pub(crate) fn wait_end(&self) {
        // Nothing is ever sent: the channel disconnects when the sender is dropped.
        let _ = self.end_rx.recv();
    }
}
