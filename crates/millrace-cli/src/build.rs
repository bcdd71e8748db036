//! From a [`PipelineSpec`] to an engine pipeline ready to spawn.
//!
//! Opens the source (a missing input fails here, before any thread starts), makes each
//! stage from its kind with its settings (workers fixed or autoscaled, capacity, batch,
//! order, error policy, dead letters), applies the pipeline's autoscaling, fusion and wedge
//! settings, and closes the pipeline with a fold whose accumulator is the [`SinkRunner`].
//! Items carry their engine id ([`Item`]): the source numbers them from 0 in iteration
//! order, exactly as the engine does.
//!
//! # Runtimes
//!
//! Async stages run on the engine's own runtime, which has timers but no I/O. A pipeline
//! with a kind that does network I/O (`http`) gets a runtime of the CLI's instead: tokio
//! with I/O and one worker thread (which drives the sockets and timers; each async stage's
//! futures are still polled on its own driver thread). [`Built`] keeps it alive for the run.

use std::sync::Arc;

use millrace::{DeadLetter, ItemId, Pipeline, PipelineBuilder, Stage, Submitter, WedgePolicy};

use crate::config::{PipelineSpec, StageSpec, Workers};
use crate::dead_letter::DeadLetters;
use crate::kinds::{Builder, Exec, SourceLog};
use crate::sink_runner::{SinkRunner, StopRequest};
use crate::value::Item;

/// A pipeline built from a file, with what the CLI needs to watch it.
pub struct Built {
    /// The engine pipeline; its output is the sink runner.
    pub pipeline: Pipeline<SinkRunner>,
    /// What the source met besides items.
    pub source_log: Arc<SourceLog>,
    /// The dead-letter files.
    pub dead_letters: DeadLetters,
    /// Raised by the sink when the run must stop.
    pub stop: Arc<StopRequest>,
    /// The runtime that I/O stages run on, if any: dropped after the run.
    pub runtime: Option<tokio::runtime::Runtime>,
}

/// The runtime for stages that do network I/O.
fn io_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("millrace-io")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))
}

/// Reads a source that waits ([`crate::kinds::Opened::waits`]) on a thread of its own
/// and submits its items to the pipeline: the engine ships whatever is queued when the
/// reader has nothing more (a partial batch goes out at once, rather than waiting for a full
/// one), and a stop request (Ctrl-C) ends the input at once, whether or not the reader is
/// waiting for its next line. That thread then ends at its next item, which the stopped
/// pipeline refuses; one still waiting on its input when the command ends ends with it.
///
/// The submitter numbers items in the order they are submitted, from 0, as the iterator
/// does: one thread submits them all, so each item's own id is the one the engine gives it.
fn feed(
    items: impl Iterator<Item = Item> + Send + 'static,
    submitter: Submitter<Item>,
) -> Result<(), String> {
    std::thread::Builder::new()
        .name("millrace-reader".into())
        .spawn(move || {
            for item in items {
                let id = item.id;
                match submitter.submit(item) {
                    Ok(given) => debug_assert_eq!(given, id, "one submitter numbers in order"),
                    Err(_) => return, // stopped: the pipeline takes no more input
                }
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the thread that reads the source: {e}"))
}

/// Builds `spec`.
///
/// # Errors
///
/// Why an input cannot be opened or an output created (the run fails with exit code 1).
pub fn build(spec: &PipelineSpec) -> Result<Built, String> {
    let source_log = Arc::new(SourceLog::default());
    let builder = open_source(spec, &source_log)?;
    let mut dead_letters = DeadLetters::default();
    let (builder, runtime) = configure(builder, spec, &spec.stages)?;
    let builder = add_stages(builder, make_stages(&spec.stages, &mut dead_letters)?);
    let (pipeline, stop) = close(builder, spec, &mut dead_letters)?;
    Ok(Built {
        pipeline,
        source_log,
        dead_letters,
        stop,
        runtime,
    })
}

/// Opens `spec`'s source: a pipeline builder whose items are numbered from 0.
///
/// # Errors
///
/// Why the input cannot be opened.
pub fn open_source(
    spec: &PipelineSpec,
    source_log: &Arc<SourceLog>,
) -> Result<PipelineBuilder<Item>, String> {
    let Builder::Source(open) = spec.source.kind.build else {
        return Err(format!("`{}` is not a source kind", spec.source.kind.name));
    };
    let opened = open(&spec.source.params, source_log)?;
    let waits = opened.waits;
    let items = opened.values.enumerate().map(|(i, value)| Item {
        id: ItemId::new(i as u64),
        value,
    });
    Ok(if waits {
        let (submitter, builder) = Pipeline::submitter(spec.batch.unwrap_or(256).max(1) * 4);
        feed(items, submitter)?;
        builder
    } else {
        Pipeline::source(items)
    })
}

/// Applies `spec`'s pipeline-wide settings (capacity, batch, autoscaling, fusion, wedge)
/// to `builder`, and gives it an I/O runtime if one of `stages` needs one.
///
/// # Errors
///
/// Why the I/O runtime cannot start.
pub fn configure<T: Send + 'static>(
    builder: PipelineBuilder<T>,
    spec: &PipelineSpec,
    stages: &[StageSpec],
) -> Result<(PipelineBuilder<T>, Option<tokio::runtime::Runtime>), String> {
    let runtime = stage_runtime(stages)?;
    let handle = runtime.as_ref().map(|rt| rt.handle().clone());
    Ok((settings(builder, spec, handle), runtime))
}

/// The runtime `stages` need, if one of them does network I/O.
///
/// # Errors
///
/// Why the I/O runtime cannot start.
pub fn stage_runtime(stages: &[StageSpec]) -> Result<Option<tokio::runtime::Runtime>, String> {
    let needs_io = stages
        .iter()
        .any(|s| s.part.kind.exec == Exec::Async { io: true });
    if needs_io {
        io_runtime().map(Some)
    } else {
        Ok(None)
    }
}

/// `builder` with `spec`'s pipeline-wide settings, and the I/O `runtime` if given.
pub fn settings<T: Send + 'static>(
    mut builder: PipelineBuilder<T>,
    spec: &PipelineSpec,
    runtime: Option<tokio::runtime::Handle>,
) -> PipelineBuilder<T> {
    builder = builder.default_capacity(spec.capacity);
    if let Some(batch) = spec.batch {
        builder = builder.default_batch(batch);
    }
    let scaling = &spec.scaling;
    if let Some(budget) = scaling.cpu_budget {
        builder = builder.cpu_budget(budget);
    }
    if let Some(interval) = scaling.interval {
        builder = builder.autoscale_interval(interval);
    }
    if scaling.fuse {
        builder = builder.fuse();
    }
    builder = builder
        .fuse_auto(scaling.fuse_auto)
        .lazy_workers(scaling.lazy_workers)
        .adaptive_fusion(scaling.adaptive_fusion);
    if let Some(wedge) = scaling.wedge {
        let policy = if wedge.fail {
            WedgePolicy::Fail
        } else {
            WedgePolicy::Report
        };
        builder = builder.wedge_timeout(wedge.after, policy);
    }
    if let Some(handle) = runtime {
        builder = builder.runtime(handle);
    }
    builder
}

/// Makes each of `stages` from its kind and settings (opening its dead-letter file).
///
/// # Errors
///
/// Why a dead-letter file cannot be opened.
pub fn make_stages(
    stages: &[StageSpec],
    dead_letters: &mut DeadLetters,
) -> Result<Vec<Stage<Item, Item>>, String> {
    let mut made = Vec::with_capacity(stages.len());
    for stage_spec in stages {
        let Builder::Transform(make) = stage_spec.part.kind.build else {
            return Err(format!(
                "`{}` is not a transform kind",
                stage_spec.part.kind.name
            ));
        };
        let stage = make(&stage_spec.name, &stage_spec.part.params);
        let stage = match stage_spec.workers {
            Workers::Fixed(n) => stage.workers(n),
            Workers::Auto { min, max } => stage.auto_workers(min, max.unwrap_or(0)),
            Workers::Async => stage,
        };
        let mut stage = stage
            .capacity(stage_spec.capacity)
            .on_error(stage_spec.policy.to_engine());
        if let Some(batch) = stage_spec.batch {
            stage = stage.batch(batch);
        }
        if stage_spec.ordered {
            stage = stage.ordered();
        }
        if let Some(path) = &stage_spec.dead_letter {
            let file = dead_letters.open(path)?;
            let name = stage_spec.name.clone();
            stage = stage.dead_letter(move |dl: DeadLetter<Item>| {
                file.write(
                    &name,
                    dl.id,
                    &dl.error.to_string(),
                    dl.item.as_ref().map(|i| &i.value),
                );
            });
        }
        made.push(stage);
    }
    Ok(made)
}

/// `builder` with `stages` added, in order.
pub fn add_stages(
    builder: PipelineBuilder<Item>,
    stages: Vec<Stage<Item, Item>>,
) -> PipelineBuilder<Item> {
    stages.into_iter().fold(builder, PipelineBuilder::stage)
}

/// Closes `builder` with `spec`'s sink: a fold whose accumulator is the [`SinkRunner`].
///
/// # Errors
///
/// Why the output cannot be created.
pub fn close(
    builder: PipelineBuilder<Item>,
    spec: &PipelineSpec,
    dead_letters: &mut DeadLetters,
) -> Result<(Pipeline<SinkRunner>, Arc<StopRequest>), String> {
    let Builder::Sink(open_sink) = spec.sink.part.kind.build else {
        return Err(format!("`{}` is not a sink kind", spec.sink.part.kind.name));
    };
    let sink = open_sink(&spec.sink.part.params)?;
    let dead_letter = match &spec.sink.dead_letter {
        Some(path) => Some(dead_letters.open(path)?),
        None => None,
    };
    let stop = Arc::new(StopRequest::default());
    let runner = SinkRunner::new(
        sink,
        spec.sink.part.kind.name,
        spec.sink.policy,
        dead_letter,
        Arc::clone(&stop),
    );
    let pipeline = builder.fold(runner, |mut runner, item| {
        runner.take(item);
        runner
    });
    Ok((pipeline, stop))
}
