//! What every thread of one run shares: its [signals](crate::signals) (stop, cancel, the
//! sink's end) and its [ledger](crate::ledger) (counts, errors, unfinished ids), and the few
//! acts that touch both: failing the run, and catching a panic of user code.
//!
//! An item failing under [`ErrorPolicy::Stop`](crate::ErrorPolicy::Stop) records the first
//! such error and asks for a graceful stop ([`Control::fail`]); a failure that loses state
//! (a panicking `fold`, a wedge) cancels as well ([`Control::fail_hard`]).

use std::sync::Arc;

use crate::error::RunErrorKind;
use crate::ledger::Ledger;
use crate::metrics::StageMetrics;
use crate::signals::Signals;

pub(crate) struct Control {
    pub(crate) signals: Signals,
    pub(crate) ledger: Ledger,
    /// Caught panics of user code print nothing (see `crate::panics`).
    pub(crate) quiet_panics: bool,
    /// The run's span, for its threads (feature `tracing`).
    pub(crate) trace: crate::trace::Trace,
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
        let trace = crate::trace::Trace::new(stages.len());
        Control {
            trace,
            signals: Signals::new(),
            ledger: Ledger::new(source, stages, sink),
            quiet_panics,
        }
    }

    /// Records the error that ends the run (the first one wins) and stops the source.
    pub(crate) fn fail(&self, kind: RunErrorKind) {
        self.ledger.record_failure(kind);
        self.signals.stop();
    }

    /// Records a fatal error and cancels: for failures that lose state (a panicking sink).
    pub(crate) fn fail_hard(&self, kind: RunErrorKind) {
        self.fail(kind);
        self.signals.cancel();
    }

    /// Whether items were admitted that have not yet ended somewhere (filtered, failed or
    /// cancelled in a stage, or taken by the sink), flat-map children counted (the report's
    /// balance: admitted + expanded = ended, once all have ended).
    pub(crate) fn items_in_flight(&self) -> bool {
        let (mut ended, mut expanded) = (self.ledger.sink.tally().items_in, 0);
        for stage in &self.ledger.stages {
            let t = stage.tally();
            ended += t.filtered + t.failed + t.cancelled;
            expanded += t.expanded;
        }
        self.ledger.source.tally().items_out + expanded > ended
    }

    /// Starts a thread of the run once the launch is over (a worker grown by the
    /// controller, a source split off its fused run): traced like the launch's, and joined
    /// with them at the end (the ledger's extra threads). `Err` if the OS refused it.
    pub(crate) fn spawn_late(
        &self,
        name: String,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        let body = self.trace.in_thread(&name, f);
        let handle = std::thread::Builder::new().name(name).spawn(body)?;
        crate::sync::lock(&self.ledger.extra_threads).push(handle);
        Ok(())
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

/// Signals the end of the sink when dropped, however the sink thread ends.
pub(crate) struct SinkEnded(pub(crate) Arc<Control>);

impl Drop for SinkEnded {
    fn drop(&mut self) {
        self.0.signals.signal_end();
    }
}
