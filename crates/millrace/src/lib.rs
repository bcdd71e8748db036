//! # millrace
//!
//! Concurrent, staged data pipelines. A millrace is the channel that carries water to a
//! mill's wheel: here, bounded channels carry items between stages, and each stage turns its
//! own wheel with as many workers as its work needs.
//!
//! A pipeline is a source, a chain of [`Stage`]s and a sink. Every stage runs on its own
//! workers (threads), so a heavy stage can have more of them than a cheap one and no stage
//! sits idle while another is the bottleneck. Stages are joined by bounded, batched
//! connectors: a sender waits only when the buffer is full, so memory stays bounded however
//! long the input. Items are moved from stage to stage, never cloned.
//!
//! Beside every forward connector runs a response path back upstream: a stage can learn
//! what became of each item it sent on ([`Stage::on_response`]), and a serving pipeline
//! returns each item's [`Outcome`] to whoever submitted it ([`PipelineBuilder::respond`]).
//!
//! ```
//! use millrace::{Pipeline, Stage};
//!
//! #[derive(Debug)]
//! struct Data { x: u64, y: u64 }
//!
//! let finished = Pipeline::source(0..1_000u64)
//!     .stage(Stage::map("wrap", |x| Data { x, y: 0 }))
//!     .stage(Stage::map("square", |d: Data| Data { y: d.x * d.x, ..d }).workers(2))
//!     .stage(Stage::map("scale", |d: Data| 3 * d.y).workers(2))
//!     .fold(0u64, |sum, y| sum.wrapping_add(y))
//!     .run()?;
//!
//! let expected: u64 = (0..1_000u64).map(|x| 3 * x * x).sum();
//! assert_eq!(finished.output, expected);
//! assert!(finished.report.is_balanced());
//! println!("{}", finished.report); // per-stage table and the bottleneck
//! # Ok::<(), millrace::RunError>(())
//! ```
//!
//! ## What it offers
//!
//! * **Forms**: map, map with per-worker state, filter, flat-map, and fallible forms
//!   ([`Stage`]).
//! * **Ordering**: a stage marked [`ordered`](Stage::ordered) emits in input order despite
//!   many workers, through a bounded reorder buffer.
//! * **Batching**: connectors move batches whose size adapts while the pipeline runs (large
//!   for cheap items, single items for costly or sparse ones) unless [pinned](Stage::batch),
//!   within a [capacity](Stage::capacity) counted in items; a worker flushes a partial batch
//!   as soon as it would otherwise wait.
//! * **Errors and panics** fail one item, under an [`ErrorPolicy`]: skip, retry with
//!   backoff, or stop gracefully; failed items can go to [dead letters](Stage::dead_letter).
//!   A sink that can fail ([`try_for_each`](PipelineBuilder::try_for_each)) follows the
//!   same policy, and a run that stops on an error keeps the sink's value so far
//!   ([`RunError::take_output`]).
//! * **Shutdown**: a run ends when its input is exhausted and everything drained; a
//!   [`Handle`] can stop it gracefully (nothing accepted is lost) or cancel it (unfinished
//!   items are listed by id).
//! * **Accounting**: per stage, items in/out/filtered/failed and each worker's time split
//!   into busy, idle and blocked; the [`Report`] names the bottleneck and why.
//! * **Fusion**: adjacent stages can share workers, with no hop between them: equal fixed
//!   stages start that way and split once busy
//!   ([`adaptive_fusion`](PipelineBuilder::adaptive_fusion)), or stay fused for good
//!   ([`fuse`](PipelineBuilder::fuse)).
//! * **Autoscaling**: stages without a worker count (or with
//!   [`auto_workers`](Stage::auto_workers) bounds) get their worker counts from a controller
//!   that measures each stage's cost while the pipeline runs, within a CPU budget; adjacent
//!   auto stages with the same bounds share workers by default. A
//!   [wedge detector](PipelineBuilder::wedge_timeout) names what every worker is doing
//!   when nothing moves.
//!
//! ## Async stages
//!
//! With the `async` feature, a stage can be an async function
//! (`Stage::map_async`, `Stage::try_map_async`) with up to `concurrency` items in flight at
//! once on a tokio runtime: thousands of I/O waits on three threads, with the same ordering,
//! error policies, per-item `timeout`, accounting and shutdown as sync stages. CPU stages
//! keep their own threads, so neither kind can starve the other. The runtime is the
//! pipeline's own (current-thread, driven by the stage's thread), or a multi-thread one
//! handed in with `PipelineBuilder::runtime`. (These items exist with the feature on; the
//! docs on docs.rs are built with every feature.)
//!
//! See `ARCHITECTURE.md` for how an item and its response travel through the modules, and
//! `src/protocols.md` for the hand-off, ordering, response and shutdown protocols and why
//! they cannot deadlock.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod autoscale;
mod batch_size;
mod connector;
mod control;
mod deadline;
mod error;
pub mod fmt;
mod item;
mod ledger;
mod metrics;
mod panics;
mod pipeline;
mod policy;
mod pool;
mod reorder;
mod report;
mod response;
mod run_error;
mod runqueue;
mod segment;
mod signals;
mod stage;
mod sync;
pub mod timeline;
pub mod trace;
mod window;

#[cfg(all(test, loom))]
mod loom_batch_size;
#[cfg(all(test, loom))]
mod loom_channel;
#[cfg(all(test, loom))]
mod loom_crew;
#[cfg(all(test, loom))]
mod loom_direct_sink;
#[cfg(all(test, loom))]
mod loom_ordered_crew;
#[cfg(all(test, loom))]
mod loom_outputs;
#[cfg(all(test, loom))]
mod loom_reorder;
#[cfg(all(test, loom))]
mod loom_response;
#[cfg(all(test, loom))]
mod loom_shutdown;
#[cfg(all(test, loom))]
mod loom_window;

pub use autoscale::{
    Decision, DecisionReason, RunningHook, Wedge, WedgePolicy, WedgedPart, WorkerActivity,
    WorkerState,
};
pub use error::{
    BoxError, BuildError, ItemError, ItemErrorKind, RunErrorKind, SubmitError, TrySubmitError,
};
pub use item::ItemId;
pub use metrics::Tally;
pub use pipeline::{Finished, Handle, Outputs, Pipeline, PipelineBuilder, Running, Submitter};
pub use policy::{ErrorPolicy, Retry};
pub use report::{
    Bottleneck, BottleneckKind, BottleneckReason, EndState, Latency, Report, StageReport,
};
pub use response::{Outcome, Responses, Status};
pub use run_error::RunError;
pub use stage::{DeadLetter, Rejected, Stage};
pub use timeline::Timeline;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
