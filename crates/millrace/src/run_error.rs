//! [`RunError`]: a run that did not complete, with what it had done: the report and the
//! sink's value so far. Apart from the other errors (`crate::error`) because it carries a
//! [`Report`], which is built from the run's ledger, which records those other errors.

use std::error::Error as StdError;
use std::fmt;

use crate::error::{BuildError, RunErrorKind};
use crate::report::Report;

/// A run that did not complete.
///
/// It keeps what the run had done: the [report](RunError::report) and, where the sink got
/// that far, the sink's value over the items delivered before the stop
/// ([`take_output`](RunError::take_output)), so nothing already delivered is lost.
pub struct RunError {
    pub(crate) kind: RunErrorKind,
    pub(crate) report: Option<Box<Report>>,
    /// The sink's value, type-erased (the error is not generic over the pipeline's output).
    /// In a mutex only so that the error stays `Sync` for any `Send` output.
    output: std::sync::Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

impl RunError {
    pub(crate) fn new(kind: RunErrorKind, report: Option<Report>) -> Self {
        RunError {
            kind,
            report: report.map(Box::new),
            output: std::sync::Mutex::new(None),
        }
    }

    /// Keeps the sink's value of a run that stopped.
    pub(crate) fn with_output<R: Send + 'static>(self, output: Option<R>) -> Self {
        let output = output.map(|o| Box::new(o) as Box<dyn std::any::Any + Send>);
        RunError {
            output: std::sync::Mutex::new(output),
            ..self
        }
    }

    /// Takes the sink's value as far as the run got: for [`fold`](crate::PipelineBuilder::fold)
    /// the accumulator over the items delivered before the stop, for
    /// [`collect`](crate::PipelineBuilder::collect) those items. `R` is the pipeline's output
    /// type; the value is there once, for a run that stopped after its sink ran (an item error
    /// under [`ErrorPolicy::Stop`](crate::ErrorPolicy::Stop), a panicking source, a wedge).
    /// `None` for build errors, when the sink itself panicked (its value is gone), for a
    /// different `R`, and on a second call.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::{ErrorPolicy, Pipeline, Stage};
    ///
    /// let mut err = Pipeline::source(0..1000u64)
    ///     .stage(
    ///         Stage::try_map("check", |&x: &u64| if x == 500 { Err("bad item") } else { Ok(x) })
    ///             .on_error(ErrorPolicy::Stop),
    ///     )
    ///     .fold(0u64, |count, _| count + 1)
    ///     .run()
    ///     .unwrap_err();
    /// let delivered = err.report().unwrap().delivered();
    /// // The count over everything delivered before the stop is still there.
    /// assert_eq!(err.take_output::<u64>(), Some(delivered));
    /// ```
    pub fn take_output<R: 'static>(&mut self) -> Option<R> {
        let slot = self
            .output
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.take()?.downcast::<R>() {
            Ok(output) => Some(*output),
            Err(other) => {
                *slot = Some(other);
                None
            }
        }
    }

    /// What stopped the run.
    pub fn kind(&self) -> &RunErrorKind {
        &self.kind
    }

    /// The report of what ran before the pipeline stopped (none for build errors).
    pub fn report(&self) -> Option<&Report> {
        self.report.as_deref()
    }
}

impl fmt::Debug for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The sink's value is type-erased: say whether there is one, not what it is.
        let has_output = self.output.lock().map_or(true, |output| output.is_some());
        f.debug_struct("RunError")
            .field("kind", &self.kind)
            .field("report", &self.report)
            .field("has_output", &has_output)
            .finish()
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RunErrorKind::Build(e) => write!(f, "cannot build pipeline: {e}"),
            RunErrorKind::Item(e) => write!(f, "pipeline stopped: {e}"),
            RunErrorKind::SourcePanicked(msg) => write!(f, "the source panicked: {msg}"),
            RunErrorKind::SinkPanicked(msg) => write!(f, "the sink panicked: {msg}"),
            RunErrorKind::InitPanicked { stage, message } => {
                write!(
                    f,
                    "the state of stage `{stage}` could not be built: init panicked: {message}"
                )
            }
            RunErrorKind::Wedged(diagnosis) => write!(f, "the pipeline is wedged: {diagnosis}"),
        }
    }
}

impl StdError for RunError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            RunErrorKind::Build(e) => Some(e),
            RunErrorKind::Item(e) => Some(e),
            _ => None,
        }
    }
}

impl From<BuildError> for RunError {
    fn from(e: BuildError) -> Self {
        RunError::new(RunErrorKind::Build(e), None)
    }
}
