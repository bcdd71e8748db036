//! From a [`PipelineSpec`] to an engine pipeline ready to spawn.
//!
//! Opens the source (a missing input fails here, before any thread starts), makes each
//! stage from its kind with its settings (workers, capacity, batch, order, error policy,
//! dead letters), and closes the pipeline with a fold whose accumulator is the
//! [`SinkRunner`]. Items carry their engine id ([`Item`]): the source numbers them from 0
//! in iteration order, exactly as the engine does.

use std::sync::Arc;

use millrace::{DeadLetter, ItemId, Pipeline};

use crate::config::PipelineSpec;
use crate::dead_letter::DeadLetters;
use crate::kinds::{Builder, SourceLog};
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
}

/// Builds `spec`.
///
/// # Errors
///
/// Why an input cannot be opened or an output created (the run fails with exit code 1).
pub fn build(spec: &PipelineSpec) -> Result<Built, String> {
    let source_log = Arc::new(SourceLog::default());
    let Builder::Source(open) = spec.source.kind.build else {
        return Err(format!("`{}` is not a source kind", spec.source.kind.name));
    };
    let values = open(&spec.source.params, &source_log)?;
    let items = values.enumerate().map(|(i, value)| Item {
        id: ItemId(i as u64),
        value,
    });
    let mut dead_letters = DeadLetters::default();
    let mut builder = Pipeline::source(items)
        .default_capacity(spec.capacity)
        .default_batch(spec.batch);
    for stage_spec in &spec.stages {
        let Builder::Transform(make) = stage_spec.part.kind.build else {
            return Err(format!(
                "`{}` is not a transform kind",
                stage_spec.part.kind.name
            ));
        };
        let mut stage = make(&stage_spec.name, &stage_spec.part.params)
            .workers(stage_spec.workers)
            .capacity(stage_spec.capacity)
            .batch(stage_spec.batch)
            .on_error(stage_spec.policy.to_engine());
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
        builder = builder.stage(stage);
    }

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
    Ok(Built {
        pipeline,
        source_log,
        dead_letters,
        stop,
    })
}
