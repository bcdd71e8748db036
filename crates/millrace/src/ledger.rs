//! The run's ledger: what happened, for the report. Every stage's counters, the error log,
//! the unfinished ids, panics of hooks, the latency histogram, the autoscaler's log, the
//! timeline of sampled counters and the threads the autoscaler started. Threads write to it as they go; [`Report`](crate::Report) is built
//! from it, live or at the end.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::autoscale::policy::Decision;
use crate::autoscale::wedge::Wedge;
use crate::error::{ItemError, RunErrorKind};
use crate::item::ItemId;
use crate::metrics::{LatencyHistogram, StageMetrics};
use crate::sync::{lock, Mutex};
use crate::timeline::Timeline;

/// How many item errors a report keeps in full; the rest are only counted.
pub(crate) const ERROR_SAMPLE: usize = 100;

#[derive(Default)]
pub(crate) struct ErrorLog {
    pub(crate) sample: Vec<ItemError>,
    pub(crate) total: u64,
    /// How many errors of each kind each stage had: (stage, kind, count), in order of first
    /// occurrence.
    pub(crate) by_kind: Vec<(Arc<str>, &'static str, u64)>,
}

/// What the controller records: decisions, worker counts over time, wedges, its own cost.
#[derive(Clone, Debug, Default)]
pub(crate) struct ScalingLog {
    pub(crate) decisions: Vec<(Duration, Decision)>,
    pub(crate) history: Vec<(Duration, Vec<usize>)>,
    pub(crate) wedges: Vec<(Duration, Wedge)>,
    pub(crate) controller_busy: Duration,
}

pub(crate) struct Ledger {
    /// The error that ends the run; the first one wins.
    pub(crate) first_error: Mutex<Option<RunErrorKind>>,
    /// Set with the first error, and kept once `join` takes that error for its result:
    /// a snapshot taken afterwards still says the run failed.
    failed: AtomicBool,
    pub(crate) errors: Mutex<ErrorLog>,
    /// The first [`ERROR_SAMPLE`] panics of hooks and dead-letter handlers.
    pub(crate) hook_panics: Mutex<Vec<String>>,
    /// How many hooks and dead-letter handlers panicked in all.
    pub(crate) hook_panic_total: AtomicU64,
    pub(crate) unfinished: Mutex<Vec<ItemId>>,
    pub(crate) latency: Mutex<LatencyHistogram>,
    pub(crate) source: Arc<StageMetrics>,
    pub(crate) stages: Vec<Arc<StageMetrics>>,
    pub(crate) sink: Arc<StageMetrics>,
    /// Workers started after launch (by the autoscaler), joined at the end.
    pub(crate) extra_threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// What the autoscaler and the wedge detector did.
    pub(crate) scaling: Mutex<ScalingLog>,
    /// Each relay thread's watch (for the wedge detector).
    pub(crate) relays: Mutex<Vec<Arc<RelayWatch>>>,
    /// Every part's counters sampled over the run (empty when sampling is off).
    pub(crate) timeline: Mutex<Timeline>,
}

impl Ledger {
    pub(crate) fn new(
        source: Arc<StageMetrics>,
        stages: Vec<Arc<StageMetrics>>,
        sink: Arc<StageMetrics>,
    ) -> Self {
        let parts = std::iter::once(&*source)
            .chain(stages.iter().map(|m| &**m))
            .chain(std::iter::once(&*sink));
        let timeline = Mutex::new(Timeline::new(parts, Duration::ZERO));
        Ledger {
            timeline,
            first_error: Mutex::new(None),
            failed: AtomicBool::new(false),
            errors: Mutex::new(ErrorLog::default()),
            hook_panics: Mutex::new(Vec::new()),
            hook_panic_total: AtomicU64::new(0),
            unfinished: Mutex::new(Vec::new()),
            latency: Mutex::new(LatencyHistogram::default()),
            source,
            stages,
            sink,
            extra_threads: Mutex::new(Vec::new()),
            scaling: Mutex::new(ScalingLog::default()),
            relays: Mutex::new(Vec::new()),
        }
    }

    /// Every part: the source, each stage in order, the sink.
    pub(crate) fn parts(&self) -> impl Iterator<Item = &StageMetrics> {
        std::iter::once(&*self.source)
            .chain(self.stages.iter().map(|m| &**m))
            .chain(std::iter::once(&*self.sink))
    }

    /// Samples every part into the timeline at `at`, if a sample is due and anything
    /// moved since the last one. Returns whether nothing had moved (the run is idle).
    pub(crate) fn sample(&self, at: Duration) -> bool {
        let mut timeline = lock(&self.timeline);
        timeline.due(at) && !timeline.record_if_moved(at, self.parts())
    }

    /// Records an item's failure in the log.
    pub(crate) fn log_error(&self, error: &ItemError) {
        crate::trace::item_failed(error);
        let mut log = lock(&self.errors);
        log.total += 1;
        let kind = error.kind_name();
        match log
            .by_kind
            .iter_mut()
            .find(|(stage, k, _)| **stage == *error.stage() && *k == kind)
        {
            Some((_, _, n)) => *n += 1,
            None => log.by_kind.push((Arc::from(error.stage()), kind, 1)),
        }
        if log.sample.len() < ERROR_SAMPLE {
            log.sample.push(error.clone());
        }
    }

    /// Records the error that ends the run, unless one already did.
    pub(crate) fn record_failure(&self, kind: RunErrorKind) {
        let mut first = lock(&self.first_error);
        if first.is_none() {
            *first = Some(kind);
            self.failed.store(true, Ordering::Release);
        }
    }

    /// Whether an error ended the run (it may since have been taken for `join`'s result).
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Whether the run failed on a wedge.
    pub(crate) fn wedge_failed(&self) -> bool {
        matches!(*lock(&self.first_error), Some(RunErrorKind::Wedged(_)))
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
}

/// What the wedge detector sees of a relay thread: when its hook started on the batch it is
/// running (0 when idle, else nanoseconds since the run started, plus one), and how many
/// responses it has passed on.
pub(crate) struct RelayWatch {
    pub(crate) stage: Arc<str>,
    pub(crate) busy_since: AtomicU64,
    pub(crate) relayed: AtomicU64,
    /// Nanoseconds the hook and the replies took in all (the relay thread's busy time, for
    /// the report: [`StageReport::response_busy`](crate::StageReport::response_busy)).
    pub(crate) busy_ns: AtomicU64,
}

impl RelayWatch {
    pub(crate) fn new(stage: Arc<str>) -> Self {
        RelayWatch {
            stage,
            busy_since: AtomicU64::new(0),
            relayed: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
        }
    }

    /// The hook starts on a batch, at `now` since the run started.
    pub(crate) fn enter(&self, now: Duration) {
        self.busy_since
            .store(now.as_nanos() as u64 + 1, Ordering::Relaxed);
    }

    /// The hook is done with a batch of `n` responses, at `now` since the run started.
    pub(crate) fn leave(&self, n: u64, now: Duration) {
        if let Some(since) = self.busy() {
            let took = now.saturating_sub(since).as_nanos();
            self.busy_ns
                .fetch_add(u64::try_from(took).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        self.busy_since.store(0, Ordering::Relaxed);
        self.relayed.fetch_add(n, Ordering::Relaxed);
    }

    /// The hook's and replies' time so far.
    pub(crate) fn busy_time(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }

    /// Since when the hook has been running, if it is.
    pub(crate) fn busy(&self) -> Option<Duration> {
        match self.busy_since.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n - 1)),
        }
    }
}
