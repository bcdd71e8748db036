//! Traces of a run for a `tracing` subscriber (feature `tracing`, off by default): so that a
//! program that traces its own code sees millrace's work beside it.
//!
//! * **`millrace.run`** (INFO): one span per run, a child of the span current where the
//!   pipeline was started; it lives as long as the run's threads.
//! * **`millrace.thread`** (INFO, field `thread`: `millrace-square-0`, `millrace-sink` …):
//!   each thread of the run (source, workers, sink, relays, controller), a child of the run.
//! * **`millrace.batch`** (DEBUG, fields `stage`, `seq`, `items`): one batch through one
//!   stage, on one batch in [`BATCH_SAMPLE`] per thread, a child of its thread's span.
//! * Events: each autoscaling decision (INFO), each wedge (WARN), each item error (DEBUG),
//!   and the run's end with its counts (INFO).
//!
//! The run's threads report to the subscriber that was the default where the pipeline was
//! started (a global one, or a scoped one set with `tracing::subscriber::with_default`).
//!
//! Without the feature every function here is an empty inline one: the library pays
//! nothing, and no call site needs a `cfg`.

#[cfg(feature = "tracing")]
use std::cell::Cell;

use crate::autoscale::policy::Decision;
use crate::autoscale::wedge::Wedge;
use crate::error::ItemError;

/// One batch in this many (per thread) gets a `millrace.batch` span.
pub const BATCH_SAMPLE: u64 = 64;

/// The run's span, shared by its threads.
#[derive(Debug)]
pub(crate) struct Trace {
    #[cfg(feature = "tracing")]
    run: tracing::Span,
}

/// A sampled batch's span, entered until dropped.
pub(crate) struct BatchSpan {
    #[cfg(feature = "tracing")]
    _entered: Option<tracing::span::EnteredSpan>,
}

#[cfg(feature = "tracing")]
thread_local! {
    static BATCHES: Cell<u64> = const { Cell::new(0) };
}

impl Trace {
    /// The span of a run of `stages` stages, under the caller's current span.
    #[inline]
    pub(crate) fn new(stages: usize) -> Self {
        #[cfg(feature = "tracing")]
        return Trace {
            run: tracing::info_span!("millrace.run", stages),
        };
        #[cfg(not(feature = "tracing"))]
        {
            let _ = stages;
            Trace {}
        }
    }

    /// `f`, to run inside a `millrace.thread` span named `thread`, under the run's span.
    #[inline]
    pub(crate) fn in_thread<R>(
        &self,
        thread: &str,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> impl FnOnce() -> R + Send + 'static {
        #[cfg(feature = "tracing")]
        {
            let span = tracing::info_span!(parent: &self.run, "millrace.thread", thread);
            // The subscriber of the thread that starts the run, also where it is a scoped
            // one (`with_default`): the run's threads report to it.
            let dispatch = tracing::dispatcher::get_default(Clone::clone);
            move || tracing::dispatcher::with_default(&dispatch, || span.in_scope(f))
        }
        #[cfg(not(feature = "tracing"))]
        {
            let _ = thread;
            f
        }
    }

    /// A `millrace.batch` span for this batch, if it is the thread's sampled one.
    #[inline]
    pub(crate) fn batch(&self, stage: &str, seq: u64, items: usize) -> BatchSpan {
        #[cfg(feature = "tracing")]
        {
            let n = BATCHES.with(|c| {
                let n = c.get();
                c.set(n.wrapping_add(1));
                n
            });
            let entered = (n % BATCH_SAMPLE == 0)
                .then(|| tracing::debug_span!("millrace.batch", stage, seq, items).entered());
            BatchSpan { _entered: entered }
        }
        #[cfg(not(feature = "tracing"))]
        {
            let _ = (stage, seq, items);
            BatchSpan {}
        }
    }
}

/// An autoscaling decision, as an INFO event.
#[inline]
pub(crate) fn decision(d: &Decision) {
    #[cfg(feature = "tracing")]
    tracing::info!(stage = %d.name, from = d.from, to = d.to, reason = %d.reason, "millrace: autoscaling decision");
    #[cfg(not(feature = "tracing"))]
    let _ = d;
}

/// A wedge, as a WARN event.
#[inline]
pub(crate) fn wedge(w: &Wedge) {
    #[cfg(feature = "tracing")]
    tracing::warn!(diagnosis = %w, "millrace: the pipeline is wedged");
    #[cfg(not(feature = "tracing"))]
    let _ = w;
}

/// An item's failure, as a DEBUG event.
#[inline]
pub(crate) fn item_failed(e: &ItemError) {
    #[cfg(feature = "tracing")]
    tracing::debug!(stage = e.stage(), item = %e.id(), error = %e, "millrace: item failed");
    #[cfg(not(feature = "tracing"))]
    let _ = e;
}

/// The end of a run, as an INFO event with its counts, in the run's span.
#[inline]
pub(crate) fn run_ended(trace: &Trace, report: &crate::Report) {
    #[cfg(feature = "tracing")]
    let _run = trace.run.enter();
    #[cfg(feature = "tracing")]
    tracing::info!(
        end = ?report.end(),
        wall_s = report.wall().as_secs_f64(),
        items_in = report.items_in(),
        delivered = report.delivered(),
        filtered = report.filtered(),
        failed = report.failed(),
        cancelled = report.cancelled(),
        "millrace: run ended"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (trace, report);
}
