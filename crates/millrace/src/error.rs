//! Every error millrace returns, one type per fallible operation.
//!
//! * [`BuildError`]: a pipeline that cannot run as described (zero workers, zero capacity …),
//!   found when it is built, before any thread starts.
//! * [`ItemError`]: one item failed in one stage: its id, the stage, and why (an error the
//!   stage returned, a panic, or a timeout). Item errors never stop a pipeline by themselves;
//!   the stage's [`ErrorPolicy`](crate::ErrorPolicy) decides.
//! * [`RunError`](crate::RunError) (in `run_error`): a run that did not complete: the first item error under
//!   [`ErrorPolicy::Stop`](crate::ErrorPolicy::Stop), a source or sink that panicked, or a
//!   build error. It carries the report of what did run.
//! * [`SubmitError`] / [`TrySubmitError`]: an item a [`Submitter`](crate::Submitter) could not
//!   hand to the pipeline, handed back to the caller.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::autoscale::wedge::Wedge;
use crate::item::ItemId;

/// A boxed error returned by a fallible stage.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A pipeline description that cannot run.
///
/// # Examples
///
/// ```
/// use millrace::{Pipeline, Stage};
///
/// let result = Pipeline::source(0..10u64)
///     .stage(Stage::map("double", |x: u64| x * 2).workers(0))
///     .collect()
///     .run();
/// let err = result.unwrap_err();
/// assert_eq!(err.to_string(), "cannot build pipeline: stage `double`: workers must be at least 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    kind: BuildErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BuildErrorKind {
    Zero {
        stage: String,
        setting: &'static str,
    },
    /// A count past what millrace takes (`stage` empty for a pipeline-wide setting).
    TooLarge {
        stage: String,
        setting: &'static str,
        value: usize,
        max: usize,
    },
    EmptyName {
        position: usize,
    },
    DuplicateName {
        stage: String,
    },
    AsyncOnly {
        stage: String,
        setting: &'static str,
    },
    UnknownStage {
        stage: String,
    },
    /// A pipeline-wide setting of 0.
    PipelineZero {
        setting: &'static str,
    },
    SyncOnly {
        stage: String,
        setting: &'static str,
    },
    AutoBounds {
        stage: String,
        min: usize,
        max: usize,
    },
    ReservedName {
        stage: String,
    },
    Thread {
        what: String,
        why: String,
    },
    #[cfg(feature = "async")]
    CurrentThreadRuntime,
}

impl BuildError {
    pub(crate) fn zero(stage: &str, setting: &'static str) -> Self {
        BuildError {
            kind: BuildErrorKind::Zero {
                stage: stage.to_owned(),
                setting,
            },
        }
    }

    /// A count past `max`: a stage's (`stage`), or the pipeline's (`stage` empty).
    pub(crate) fn too_large(stage: &str, setting: &'static str, value: usize, max: usize) -> Self {
        BuildError {
            kind: BuildErrorKind::TooLarge {
                stage: stage.to_owned(),
                setting,
                value,
                max,
            },
        }
    }

    /// A pipeline-wide setting (a default for stages, a window, the CPU budget) of 0.
    pub(crate) fn pipeline_zero(setting: &'static str) -> Self {
        BuildError {
            kind: BuildErrorKind::PipelineZero { setting },
        }
    }

    /// A setting of sync stages (workers) given to an async stage.
    pub(crate) fn sync_only(stage: &str, setting: &'static str) -> Self {
        BuildError {
            kind: BuildErrorKind::SyncOnly {
                stage: stage.to_owned(),
                setting,
            },
        }
    }

    /// `auto_workers(min, max)` with `min` above a `max` that is not 0.
    pub(crate) fn auto_bounds(stage: &str, min: usize, max: usize) -> Self {
        BuildError {
            kind: BuildErrorKind::AutoBounds {
                stage: stage.to_owned(),
                min,
                max,
            },
        }
    }

    /// A stage named as reports name the pipeline's ends (`source`, `sink`).
    pub(crate) fn reserved_name(stage: &str) -> Self {
        BuildError {
            kind: BuildErrorKind::ReservedName {
                stage: stage.to_owned(),
            },
        }
    }

    pub(crate) fn empty_name(position: usize) -> Self {
        BuildError {
            kind: BuildErrorKind::EmptyName { position },
        }
    }

    pub(crate) fn async_only(stage: &str, setting: &'static str) -> Self {
        BuildError {
            kind: BuildErrorKind::AsyncOnly {
                stage: stage.to_owned(),
                setting,
            },
        }
    }

    #[cfg(feature = "async")]
    pub(crate) fn current_thread_runtime() -> Self {
        BuildError {
            kind: BuildErrorKind::CurrentThreadRuntime,
        }
    }

    /// The OS refused to start the thread `what` (or a runtime a thread needed).
    pub(crate) fn thread(what: &str, why: &std::io::Error) -> Self {
        BuildError {
            kind: BuildErrorKind::Thread {
                what: what.to_owned(),
                why: why.to_string(),
            },
        }
    }

    pub(crate) fn unknown_stage(stage: &str) -> Self {
        BuildError {
            kind: BuildErrorKind::UnknownStage {
                stage: stage.to_owned(),
            },
        }
    }

    pub(crate) fn duplicate_name(stage: &str) -> Self {
        BuildError {
            kind: BuildErrorKind::DuplicateName {
                stage: stage.to_owned(),
            },
        }
    }

    /// The name of the stage the error is about, if it is about one.
    pub fn stage(&self) -> Option<&str> {
        match &self.kind {
            BuildErrorKind::Zero { stage, .. }
            | BuildErrorKind::DuplicateName { stage }
            | BuildErrorKind::AsyncOnly { stage, .. }
            | BuildErrorKind::UnknownStage { stage }
            | BuildErrorKind::SyncOnly { stage, .. }
            | BuildErrorKind::AutoBounds { stage, .. }
            | BuildErrorKind::ReservedName { stage } => Some(stage),
            BuildErrorKind::TooLarge { stage, .. } => (!stage.is_empty()).then_some(stage),
            BuildErrorKind::EmptyName { .. }
            | BuildErrorKind::Thread { .. }
            | BuildErrorKind::PipelineZero { .. } => None,
            #[cfg(feature = "async")]
            BuildErrorKind::CurrentThreadRuntime => None,
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BuildErrorKind::Zero { stage, setting: "timeout" } => {
                write!(f, "stage `{stage}`: the timeout must be longer than 0")
            }
            BuildErrorKind::Zero { stage, setting } => {
                write!(f, "stage `{stage}`: {setting} must be at least 1")
            }
            BuildErrorKind::TooLarge {
                stage,
                setting,
                value,
                max,
            } => {
                if stage.is_empty() {
                    f.write_str("the pipeline's ")?;
                } else {
                    write!(f, "stage `{stage}`: ")?;
                }
                write!(
                    f,
                    "{setting} of {value} is more than millrace takes (at most {})",
                    crate::fmt::count(*max as u64)
                )
            }
            BuildErrorKind::PipelineZero { setting } => {
                write!(f, "the pipeline's {setting} must be at least 1")
            }
            BuildErrorKind::SyncOnly { stage, setting } => write!(
                f,
                "stage `{stage}`: {setting} applies to sync stages only (an async stage runs its \
                 concurrency's items at once on three threads)"
            ),
            BuildErrorKind::AutoBounds { stage, min, max } => write!(
                f,
                "stage `{stage}`: auto_workers({min}, {max}) asks for at least {min} workers and \
                 at most {max}"
            ),
            BuildErrorKind::ReservedName { stage } => write!(
                f,
                "a stage cannot be named `{stage}`: reports and errors call the pipeline's \
                 {stage} so"
            ),
            BuildErrorKind::EmptyName { position } => {
                write!(f, "stage {position} (counting from 1) has an empty name")
            }
            BuildErrorKind::AsyncOnly { stage, setting } => write!(
                f,
                "stage `{stage}`: {setting} applies to async stages only ({})",
                if *setting == "concurrency" {
                    "sync stages scale with workers"
                } else {
                    "a sync stage's closure cannot be interrupted; an async stage's future can"
                }
            ),
            #[cfg(feature = "async")]
            BuildErrorKind::CurrentThreadRuntime => write!(
                f,
                "the runtime handed to `runtime()` is a current-thread runtime, whose timers and I/O \
                 run only inside its own `block_on`; pass a multi-thread runtime's handle \
                 (`#[tokio::test(flavor = \"multi_thread\")]`, `Runtime::new()`)"
            ),
            BuildErrorKind::Thread { what, why } => {
                write!(f, "could not start `{what}`: {why}")
            }
            BuildErrorKind::UnknownStage { stage } => write!(
                f,
                "no stage is named `{stage}`, so none can take the replies"
            ),
            BuildErrorKind::DuplicateName { stage } => write!(
                f,
                "two stages are named `{stage}`; names must be unique so reports can tell them apart"
            ),
        }
    }
}

impl StdError for BuildError {}

/// Why one item failed in one stage.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ItemErrorKind {
    /// The stage returned an error.
    Failed(Arc<dyn StdError + Send + Sync + 'static>),
    /// The stage panicked: the panic message (for a payload that is not a string,
    /// "a non-string panic payload").
    Panicked(String),
    /// An async stage's item took longer than the stage's timeout; its future was dropped.
    TimedOut(std::time::Duration),
}

/// One item failed in one stage.
///
/// Cheap to clone: the stage's error is shared.
#[derive(Debug, Clone)]
pub struct ItemError {
    pub(crate) id: ItemId,
    pub(crate) stage: Arc<str>,
    pub(crate) attempts: u32,
    pub(crate) kind: ItemErrorKind,
}

impl ItemError {
    pub(crate) fn new(id: ItemId, stage: Arc<str>, attempts: u32, kind: ItemErrorKind) -> Self {
        ItemError {
            id,
            stage,
            attempts,
            kind,
        }
    }

    /// The id of the item that failed.
    pub fn id(&self) -> ItemId {
        self.id
    }

    /// The name of the stage it failed in.
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// Its kind in a word, as the report counts errors: `failed` (the stage returned an
    /// error), `panicked` or `timed_out`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ItemErrorKind::Failed(_) => "failed",
            ItemErrorKind::Panicked(_) => "panicked",
            ItemErrorKind::TimedOut(_) => "timed_out",
        }
    }

    /// How many times the stage tried the item (more than 1 under a retry policy).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why it failed.
    pub fn kind(&self) -> &ItemErrorKind {
        &self.kind
    }

    /// Whether the stage panicked (rather than returned an error).
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, ItemErrorKind::Panicked(_))
    }
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stage `{}` failed on item {}", self.stage, self.id)?;
        if self.attempts > 1 {
            write!(f, " after {} attempts", self.attempts)?;
        }
        match &self.kind {
            ItemErrorKind::Failed(e) => write!(f, ": {e}"),
            ItemErrorKind::Panicked(msg) => write!(f, ": panicked: {msg}"),
            ItemErrorKind::TimedOut(limit) => write!(f, ": timed out after {limit:?}"),
        }
    }
}

impl StdError for ItemError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            ItemErrorKind::Failed(e) => Some(&**e as &(dyn StdError + 'static)),
            ItemErrorKind::Panicked(_) | ItemErrorKind::TimedOut(_) => None,
        }
    }
}

/// What stopped a run.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunErrorKind {
    /// The pipeline could not be built; nothing ran.
    Build(BuildError),
    /// An item failed in a stage (or in a [`try_for_each`](crate::PipelineBuilder::try_for_each)
    /// sink) whose policy is [`ErrorPolicy::Stop`](crate::ErrorPolicy::Stop); the pipeline
    /// stopped gracefully after it.
    Item(ItemError),
    /// The source iterator panicked; the items it had produced were drained.
    SourcePanicked(String),
    /// The sink panicked (a `fold` loses its accumulator when it does).
    SinkPanicked(String),
    /// A stage's per-worker state could not be built: its `init`
    /// ([`Stage::map_with`](crate::Stage::map_with), [`Stage::try_map_with`](crate::Stage::try_map_with))
    /// panicked, before the worker's first batch or when rebuilding the state after an item
    /// panicked. The run was cancelled; the items that worker held are unfinished.
    InitPanicked {
        /// The stage whose `init` panicked.
        stage: String,
        /// The panic message.
        message: String,
    },
    /// Nothing moved for the wedge timeout while items were in flight; the diagnosis says
    /// what each stage's workers were doing. The run was cancelled; threads that did not
    /// return were detached ([`Wedge::detached`](crate::Wedge::detached): a worker stuck in
    /// the stage's code, and the parts after it still waiting for its output), and the items
    /// a stuck worker held are in none of the report's counts.
    Wedged(Wedge),
}

/// An item the pipeline no longer accepts (it was stopped), handed back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SubmitError<T>(pub T);

impl<T> SubmitError<T> {
    /// The item that was not submitted.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubmitError(..)")
    }
}

impl<T> fmt::Display for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the pipeline is stopped and accepts no more items")
    }
}

impl<T> StdError for SubmitError<T> {}

/// An item [`Submitter::try_submit`](crate::Submitter::try_submit) could not hand over now.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySubmitError<T> {
    /// The pipeline's input buffer is full; try again later.
    Full(T),
    /// The pipeline is stopped and accepts no more items.
    Stopped(T),
}

impl<T> TrySubmitError<T> {
    /// The item that was not submitted.
    pub fn into_inner(self) -> T {
        match self {
            TrySubmitError::Full(t) | TrySubmitError::Stopped(t) => t,
        }
    }
}

impl<T> fmt::Debug for TrySubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySubmitError::Full(_) => f.write_str("Full(..)"),
            TrySubmitError::Stopped(_) => f.write_str("Stopped(..)"),
        }
    }
}

impl<T> fmt::Display for TrySubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySubmitError::Full(_) => f.write_str("the pipeline's input buffer is full"),
            TrySubmitError::Stopped(_) => {
                f.write_str("the pipeline is stopped and accepts no more items")
            }
        }
    }
}

impl<T> StdError for TrySubmitError<T> {}

/// The message of a caught panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
