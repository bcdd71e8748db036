//! What every thread of one run shares: the stop and cancel signals, and the error log.
//!
//! # Shutdown
//!
//! * **Completion.** The source runs out and drops its outlet; each stage drains its inlet,
//!   its workers exit and drop their outlets; the disconnection travels down to the sink.
//! * **Graceful stop** ([`Control::stop`]): only the source reacts. It stops taking input,
//!   and everything already accepted drains as on completion. Nothing accepted is lost.
//! * **Cancel** ([`Control::cancel`]): the source stops and every worker and the sink drop
//!   what they receive instead of working on it, recording each dropped item's id as
//!   unfinished, until the disconnection reaches them. Windows are closed so no thread stays
//!   parked in one.
//! * An item failing under [`ErrorPolicy::Stop`](crate::ErrorPolicy::Stop) records the first
//!   such error and asks for a graceful stop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{ItemError, RunErrorKind};
use crate::item::ItemId;
use crate::metrics::{LatencyHistogram, StageMetrics};
use crate::sync::{lock, AtomicBool, Mutex};
use crate::window::Window;

/// How many item errors a report keeps in full; the rest are only counted.
pub(crate) const ERROR_SAMPLE: usize = 100;

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndState {
    /// Still running (a live snapshot).
    Running,
    /// The source ran out and everything drained.
    Completed,
    /// A graceful stop was asked for; everything accepted drained.
    Stopped,
    /// The run was cancelled; unfinished items are listed by id.
    Cancelled,
    /// An item failed under the stop policy, or the source or sink panicked.
    Failed,
}

#[derive(Default)]
pub(crate) struct ErrorLog {
    pub(crate) sample: Vec<ItemError>,
    pub(crate) total: u64,
}

pub(crate) struct Control {
    stop: AtomicBool,
    cancel: AtomicBool,
    pub(crate) started: Instant,
    pub(crate) windows: Mutex<Vec<Arc<Window>>>,
    pub(crate) first_error: Mutex<Option<RunErrorKind>>,
    pub(crate) errors: Mutex<ErrorLog>,
    /// The first [`ERROR_SAMPLE`] panics of hooks and dead-letter handlers.
    pub(crate) hook_panics: Mutex<Vec<String>>,
    /// How many hooks and dead-letter handlers panicked in all.
    pub(crate) hook_panic_total: AtomicU64,
    /// Caught panics of user code print nothing (see `crate::panics`).
    pub(crate) quiet_panics: bool,
    pub(crate) unfinished: Mutex<Vec<ItemId>>,
    pub(crate) latency: Mutex<LatencyHistogram>,
    pub(crate) source: Arc<StageMetrics>,
    pub(crate) stages: Vec<Arc<StageMetrics>>,
    pub(crate) sink: Arc<StageMetrics>,
    /// Workers started after launch (by the autoscaler), joined at the end.
    pub(crate) extra_threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// What the autoscaler and the wedge detector did.
    pub(crate) scaling: Mutex<crate::autoscale::ScalingLog>,
    /// Each relay thread's watch (for the wedge detector).
    pub(crate) relays: Mutex<Vec<Arc<RelayWatch>>>,
    /// Dropped when the sink has ended, or when the run failed on a wedge: what `join`
    /// waits for before joining threads (see [`Control::wait_end`]).
    end_tx: std::sync::Mutex<Option<crossbeam_channel::Sender<()>>>,
    pub(crate) end_rx: crossbeam_channel::Receiver<()>,
    /// Dropped on a stop: see [`Control::stop_signal`].
    stop_tx: std::sync::Mutex<Option<crossbeam_channel::Sender<()>>>,
    stop_rx: crossbeam_channel::Receiver<()>,
    /// Set on a cancel, for async stages to await (see `stage::asynchronous`).
    #[cfg(feature = "async")]
    pub(crate) cancel_watch: tokio::sync::watch::Sender<bool>,
}

/// Signals the end of the sink when dropped, however the sink thread ends.
pub(crate) struct SinkEnded(pub(crate) Arc<Control>);

impl Drop for SinkEnded {
    fn drop(&mut self) {
        self.0.signal_end();
    }
}

/// What the wedge detector sees of a relay thread: when its hook started on the batch it is
/// running (0 when idle, else nanoseconds since the run started, plus one), and how many
/// responses it has passed on.
pub(crate) struct RelayWatch {
    pub(crate) stage: Arc<str>,
    pub(crate) busy_since: AtomicU64,
    pub(crate) relayed: AtomicU64,
}

impl RelayWatch {
    pub(crate) fn new(stage: Arc<str>) -> Self {
        RelayWatch {
            stage,
            busy_since: AtomicU64::new(0),
            relayed: AtomicU64::new(0),
        }
    }

    /// The hook starts on a batch, at `now` since the run started.
    pub(crate) fn enter(&self, now: std::time::Duration) {
        self.busy_since
            .store(now.as_nanos() as u64 + 1, Ordering::Relaxed);
    }

    /// The hook is done with a batch of `n` responses.
    pub(crate) fn leave(&self, n: u64) {
        self.busy_since.store(0, Ordering::Relaxed);
        self.relayed.fetch_add(n, Ordering::Relaxed);
    }

    /// Since when the hook has been running, if it is.
    pub(crate) fn busy(&self) -> Option<std::time::Duration> {
        match self.busy_since.load(Ordering::Relaxed) {
            0 => None,
            n => Some(std::time::Duration::from_nanos(n - 1)),
        }
    }
}

impl Control {
    pub(crate) fn new(
        source: Arc<StageMetrics>,
        stages: Vec<Arc<StageMetrics>>,
        sink: Arc<StageMetrics>,
        quiet_panics: bool,
    ) -> Self {
        if quiet_panics {
            crate::panics::install_quiet_hook();
        }
        let (end_tx, end_rx) = crossbeam_channel::bounded(0);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        Control {
            stop: AtomicBool::new(false),
            cancel: AtomicBool::new(false),
            started: Instant::now(),
            windows: Mutex::new(Vec::new()),
            first_error: Mutex::new(None),
            errors: Mutex::new(ErrorLog::default()),
            hook_panics: Mutex::new(Vec::new()),
            hook_panic_total: AtomicU64::new(0),
            quiet_panics,
            unfinished: Mutex::new(Vec::new()),
            latency: Mutex::new(LatencyHistogram::default()),
            source,
            stages,
            sink,
            extra_threads: Mutex::new(Vec::new()),
            scaling: Mutex::new(crate::autoscale::ScalingLog::default()),
            relays: Mutex::new(Vec::new()),
            end_tx: std::sync::Mutex::new(Some(end_tx)),
            end_rx,
            stop_tx: std::sync::Mutex::new(Some(stop_tx)),
            stop_rx,
            #[cfg(feature = "async")]
            cancel_watch: tokio::sync::watch::Sender::new(false),
        }
    }

    /// The sink has ended (or the run failed on a wedge): wakes [`Control::wait_end`].
    pub(crate) fn signal_end(&self) {
        self.end_tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    /// Waits until [`Control::signal_end`].
    pub(crate) fn wait_end(&self) {
        // Nothing is ever sent: the channel disconnects when the sender is dropped.
        let _ = self.end_rx.recv();
    }

    /// Whether the run failed on a wedge.
    pub(crate) fn wedge_failed(&self) -> bool {
        matches!(*lock(&self.first_error), Some(RunErrorKind::Wedged(_)))
    }

    /// Time since the run started, the clock of worker activity.
    pub(crate) fn now(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        // Wakes whoever waits in `stop_signal` (a submitter source waiting for input).
        self.stop_tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    /// A channel that disconnects when a stop (or cancel) is asked for: a thread that waits
    /// for something else can `select!` on it as well, and wake at once.
    pub(crate) fn stop_signal(&self) -> &crossbeam_channel::Receiver<()> {
        &self.stop_rx
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(crate) fn cancel(&self) {
        self.stop();
        self.cancel.store(true, Ordering::Release);
        #[cfg(feature = "async")]
        self.cancel_watch.send_replace(true);
        for w in lock(&self.windows).iter() {
            w.close();
        }
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }

    pub(crate) fn register_window(&self, window: Arc<Window>) {
        if self.cancelled() {
            window.close();
        }
        lock(&self.windows).push(window);
    }

    /// Records an item's failure in the log.
    pub(crate) fn log_error(&self, error: &ItemError) {
        let mut log = lock(&self.errors);
        log.total += 1;
        if log.sample.len() < ERROR_SAMPLE {
            log.sample.push(error.clone());
        }
    }

    /// Records the error that ends the run (the first one wins) and stops the source.
    pub(crate) fn fail(&self, kind: RunErrorKind) {
        {
            let mut first = lock(&self.first_error);
            if first.is_none() {
                *first = Some(kind);
            }
        }
        self.stop();
    }

    /// Records a fatal error and cancels: for failures that lose state (a panicking sink).
    pub(crate) fn fail_hard(&self, kind: RunErrorKind) {
        self.fail(kind);
        self.cancel();
    }

    pub(crate) fn record_unfinished(&self, ids: impl IntoIterator<Item = ItemId>) {
        lock(&self.unfinished).extend(ids);
    }

    /// Records a panic of a response hook or a dead-letter handler; the report keeps the
    /// first [`ERROR_SAMPLE`] messages and counts them all.
    pub(crate) fn hook_panicked(&self, message: String) {
        self.hook_panic_total.fetch_add(1, Ordering::Relaxed);
        let mut sample = lock(&self.hook_panics);
        if sample.len() < ERROR_SAMPLE {
            sample.push(message);
        }
    }

    /// Runs user code, catching a panic (quietly unless the run shows caught panics).
    #[inline]
    pub(crate) fn catch<R>(
        &self,
        f: impl FnOnce() -> R,
    ) -> Result<R, Box<dyn std::any::Any + Send>> {
        crate::panics::catch(self.quiet_panics, f)
    }
}
