//! The resolved pipeline: what a pipeline file means once defaults are applied and every
//! value checked.
//!
//! # The file format
//!
//! ```toml
//! [pipeline]              # optional: name and defaults for every stage
//! name = "seed"
//! workers = 1             # default workers per stage (default: autoscaled)
//! capacity = 16384        # default input capacity, in items
//! batch = 1024            # default batch size (default: adapts while the pipeline runs)
//! on_error = "skip"       # skip | retry | stop
//! retry_attempts = 3      # with on_error = "retry": tries in all,
//! retry_backoff_ms = 10   #   the first pause (doubling),
//! retry_then = "skip"     #   and what to do when they are used up (skip | stop)
//! dead_letter = "failed.jsonl"   # failed items, one JSON line each
//! report = "report.json"  # write the JSON report here (as --report does)
//! autoscale = true        # every stage without `workers` gets workers = "auto" (the
//!                         # default; `false`: they get 1 worker)
//! cpu_budget = 2          # workers of autoscaled stages busy at once (default: cores,
//!                         # less one from 8 up)
//! autoscale_interval = "200ms"   # how often the autoscaler measures and decides
//! wedge_timeout = "5s"    # nothing moved this long with items in flight: a wedge
//! wedge_policy = "report" # report | fail
//! fuse = false            # adjacent stages with equal fixed workers share them
//! fuse_auto = true        # adjacent autoscaled stages with the same bounds share them
//! lazy_workers = true     # fixed workers beyond the budget start while all are busy
//! adaptive_fusion = true  # equal fixed stages start fused and split once busy
//!
//! [source]
//! kind = "range"
//! end = 10_000_000
//!
//! [[stage]]               # any number, in order
//! kind = "square"
//! name = "square"         # default: the kind (square, square-2, … when repeated)
//! workers = 2             # or "auto", or { min = 1, max = 4 }; and capacity, batch,
//!                         # on_error, retry_*, dead_letter
//! ordered = true          # emit in input order
//!
//! [sink]
//! kind = "sum"            # and on_error (skip | stop), dead_letter
//! ```
//!
//! Each kind adds its own parameters to its table (`millrace stages` lists them). Unknown
//! keys are errors. Relative paths are relative to the pipeline file's directory. Async
//! kinds (`sleep`, `http`) take `concurrency` (items in flight) instead of `workers`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::error::Loc;
use crate::config::params::Params;
use crate::kinds::KindSpec;

/// Workers per stage when neither the stage nor `[pipeline]` says and `autoscale = false`
/// (otherwise such a stage is autoscaled).
pub const DEFAULT_WORKERS: usize = 1;
/// Input capacity, in items, when neither the stage nor `[pipeline]` says (the library's).
pub const DEFAULT_CAPACITY: usize = 16_384;
/// Tries in all under `on_error = "retry"` when `retry_attempts` is not given.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 3;
/// First pause under `on_error = "retry"` when `retry_backoff_ms` is not given.
pub const DEFAULT_RETRY_BACKOFF_MS: u64 = 10;

/// How a stage's workers are set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    /// This many worker threads, all run long.
    Fixed(usize),
    /// Chosen while the pipeline runs, between `min` and `max` (`None`: the CPU budget).
    Auto {
        /// Fewest workers.
        min: usize,
        /// Most workers; `None`: as many as the CPU budget.
        max: Option<usize>,
    },
    /// An async stage: one driver thread, and `concurrency` items in flight.
    Async,
}

impl Workers {
    /// Whether the autoscaler sets them.
    pub fn is_auto(self) -> bool {
        matches!(self, Workers::Auto { .. })
    }
}

/// The value as a pipeline file writes it: `2`, `"auto"`, `{ min = 1, max = 4 }`; an
/// async stage's as `"async"` (which no file can set).
impl fmt::Display for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workers::Fixed(n) => write!(f, "{n}"),
            Workers::Auto { min: 1, max: None } => f.write_str("\"auto\""),
            Workers::Auto { min, max: None } => write!(f, "{{ min = {min} }}"),
            Workers::Auto {
                min,
                max: Some(max),
            } => write!(f, "{{ min = {min}, max = {max} }}"),
            Workers::Async => f.write_str("\"async\""),
        }
    }
}

/// A wedge watch: how long nothing may move while items are in flight, and what then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wedge {
    /// How long.
    pub after: Duration,
    /// Fail the run (rather than only report the wedge).
    pub fail: bool,
}

/// The pipeline-wide autoscaling, fusion and wedge settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scaling {
    /// Workers of autoscaled stages that may be busy at once; `None`: the cores.
    pub cpu_budget: Option<usize>,
    /// How often the autoscaler decides; `None`: the engine's default (200 ms).
    pub interval: Option<Duration>,
    /// The wedge watch, if any.
    pub wedge: Option<Wedge>,
    /// Adjacent stages with equal fixed worker counts share workers (`fuse = true`;
    /// default false).
    pub fuse: bool,
    /// Adjacent autoscaled stages with the same bounds share workers, sized as one
    /// (`fuse_auto`; default true).
    pub fuse_auto: bool,
    /// A stage with more fixed workers than the CPU budget starts one and adds the rest,
    /// doubling, while all are busy (`lazy_workers`; default true).
    pub lazy_workers: bool,
    /// Adjacent stages with equal fixed worker counts start fused and split once their
    /// workers are all busy (`adaptive_fusion`; default true).
    pub adaptive_fusion: bool,
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling {
            cpu_budget: None,
            interval: None,
            wedge: None,
            fuse: false,
            fuse_auto: true,
            lazy_workers: true,
            adaptive_fusion: true,
        }
    }
}

/// What a stage (or the sink) does with an item that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Report it and go on.
    Skip,
    /// Try again, then skip or stop.
    Retry {
        /// Tries in all.
        attempts: u32,
        /// Pause before the second try, in milliseconds; doubled after each.
        backoff_ms: u64,
        /// Stop (rather than skip) once the tries are used up.
        then_stop: bool,
    },
    /// Stop the pipeline gracefully; the run fails.
    Stop,
}

impl Policy {
    /// Whether a failure (after any retries) stops the run.
    pub fn stops(&self) -> bool {
        matches!(
            self,
            Policy::Stop
                | Policy::Retry {
                    then_stop: true,
                    ..
                }
        )
    }

    /// The policy as the engine takes it.
    pub fn to_engine(self) -> millrace::ErrorPolicy {
        match self {
            Policy::Skip => millrace::ErrorPolicy::Skip,
            Policy::Stop => millrace::ErrorPolicy::Stop,
            Policy::Retry {
                attempts,
                backoff_ms,
                then_stop,
            } => {
                let retry = millrace::Retry::new(attempts)
                    .backoff(std::time::Duration::from_millis(backoff_ms));
                millrace::ErrorPolicy::Retry(if then_stop { retry.then_stop() } else { retry })
            }
        }
    }
}

impl Policy {
    /// The settings that give this policy, as a pipeline file writes them:
    /// `on_error = "stop"`, or `on_error = "retry"` with `retry_then = "stop"`.
    pub fn as_written(&self) -> String {
        match self {
            Policy::Skip => "on_error = \"skip\"".to_owned(),
            Policy::Stop => "on_error = \"stop\"".to_owned(),
            Policy::Retry { then_stop, .. } => format!(
                "on_error = \"retry\" with retry_then = \"{}\"",
                if *then_stop { "stop" } else { "skip" }
            ),
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Policy::Skip => f.write_str("skip"),
            Policy::Stop => f.write_str("stop"),
            Policy::Retry {
                attempts,
                backoff_ms,
                then_stop,
            } => write!(
                f,
                "retry {attempts} tries from {backoff_ms} ms, then {}",
                if *then_stop { "stop" } else { "skip" }
            ),
        }
    }
}

/// A source, stage or sink's kind with its checked parameters.
#[derive(Clone, Debug)]
pub struct Part {
    /// The kind.
    pub kind: &'static KindSpec,
    /// Its parameters, defaults filled in.
    pub params: Params,
    /// Where its table starts.
    pub loc: Loc,
    /// Where its `kind` was written (in the table, or a `--set` override).
    pub kind_loc: Loc,
}

/// A stage, with its settings resolved.
#[derive(Clone, Debug)]
pub struct StageSpec {
    /// Its name (unique in the pipeline).
    pub name: String,
    /// Its kind and parameters.
    pub part: Part,
    /// Its workers: fixed, autoscaled, or async.
    pub workers: Workers,
    /// Input capacity in items.
    pub capacity: usize,
    /// Batch size; `None`: it adapts while the pipeline runs.
    pub batch: Option<usize>,
    /// Whether it emits in input order.
    pub ordered: bool,
    /// Where `ordered` was set (in the file, or a `--set`), for messages about it.
    pub ordered_loc: Option<Loc>,
    /// What it does with failed items.
    pub policy: Policy,
    /// Where its failed items go, if anywhere.
    pub dead_letter: Option<PathBuf>,
}

/// The sink, with its settings resolved.
#[derive(Clone, Debug)]
pub struct SinkSpec {
    /// Its kind and parameters.
    pub part: Part,
    /// What it does with items it cannot take: skip or stop.
    pub policy: Policy,
    /// Where items it cannot take go, if anywhere.
    pub dead_letter: Option<PathBuf>,
}

/// A whole pipeline, ready to build.
#[derive(Clone, Debug)]
pub struct PipelineSpec {
    /// Its name (`[pipeline] name`, or the file's stem).
    pub name: String,
    /// Where `[pipeline] name` was written (in the file, or a `--set`); `None`: the file's
    /// stem.
    pub name_loc: Option<Loc>,
    /// The file it was read from, as given.
    pub file: String,
    /// The batch size of the sink's input (the pipeline default); `None`: it adapts.
    pub batch: Option<usize>,
    /// The capacity of the sink's input (the pipeline default).
    pub capacity: usize,
    /// Where to write the JSON report, if the file asks for one.
    pub report: Option<PathBuf>,
    /// Autoscaling and wedge settings.
    pub scaling: Scaling,
    /// The source.
    pub source: Part,
    /// The stages, in order.
    pub stages: Vec<StageSpec>,
    /// The sink.
    pub sink: SinkSpec,
    /// The text it was read from, to quote in diagnostics found after loading (the
    /// pre-flight checks); `None` when made otherwise.
    pub text: Option<crate::config::error::LineIndex>,
    /// The stages that run on `millrace worker` processes, across a NATS server; `None`:
    /// all run here (see [`crate::config::connector`]).
    pub scale_out: Option<crate::config::connector::ScaleOut>,
}
