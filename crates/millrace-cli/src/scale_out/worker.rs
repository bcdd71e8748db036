//! `millrace worker FILE --stage NAME [--workers N]`: runs a pipeline file's remote stages
//! (the run of `connector = "nats"` stages that starts at NAME) here, on items taken off the
//! broker edge into them, until Ctrl-C or SIGTERM; then stops gracefully (messages taken
//! are finished and acked) and prints what it did. Start it on as many machines as needed:
//! they share the edge's input.

use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;
use millrace::PipelineBuilder;

use crate::build::{add_stages, make_stages, settings, stage_runtime};
use crate::cli::WorkerArgs;
use crate::commands::{fail, EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED};
use crate::config::{self, Workers};
use crate::dead_letter::DeadLetters;
use crate::signals::Interrupts;
use crate::value::Item;

/// How often a worker writes out its dead letters.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Runs `millrace worker`; returns the exit code.
pub fn run_worker(args: &WorkerArgs) -> u8 {
    let interrupts = Interrupts::install();
    let mut spec = match config::load(&args.file, &args.set) {
        Ok(spec) => spec,
        Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
    };
    let Some(scale) = spec.scale_out.clone() else {
        return fail(
            EXIT_CONFIG,
            &format!(
                "{}: no stage runs remotely, so there is nothing for a worker to do (mark \
                 the stage connector = \"nats\")",
                spec.file
            ),
        );
    };
    let first = &spec.stages[scale.first].name;
    if &args.stage != first {
        let why = match spec.stages.iter().position(|s| s.name == args.stage) {
            Some(i) if (scale.first..scale.end).contains(&i) => format!(
                "stage `{}` runs in the remote run that starts at `{first}`: start the worker \
                 with --stage {first}",
                args.stage
            ),
            Some(_) => format!(
                "stage `{}` is not remote (connector = \"nats\"): the remote run starts at \
                 `{first}`",
                args.stage
            ),
            None => format!(
                "{}: there is no stage `{}`; the remote run starts at `{first}`",
                spec.file, args.stage
            ),
        };
        return fail(EXIT_CONFIG, &why);
    }
    if let Some(n) = args.workers {
        if n == 0 {
            return fail(EXIT_CONFIG, "--workers must be at least 1");
        }
        for stage in &mut spec.stages[scale.first..scale.end] {
            if stage.workers != Workers::Async {
                stage.workers = Workers::Fixed(n);
            }
        }
    }
    let names = scale
        .stages(&spec)
        .iter()
        .map(|s| format!("`{}`", s.name))
        .collect::<Vec<_>>()
        .join(", ");
    let broker = match super::connect_waiting(&scale.url, &interrupts) {
        Ok(Some(b)) => b,
        Ok(None) => {
            eprintln!("millrace: interrupted before the server answered: nothing was taken");
            return if interrupts.terminated() {
                EXIT_TERMINATED
            } else {
                EXIT_INTERRUPTED
            };
        }
        Err(e) => return fail(EXIT_FAILED, &e.to_string()),
    };
    let (job, into, out) = match super::edges(&broker, &spec) {
        Ok(e) => e,
        Err(e) => return fail(EXIT_FAILED, &e.to_string()),
    };
    let mut dead_letters = DeadLetters::default();
    let stages = match make_stages(scale.stages(&spec), &mut dead_letters) {
        Ok(s) => s,
        Err(e) => return fail(EXIT_FAILED, &e),
    };
    // The I/O stages' runtime (if any) lives as long as the worker.
    let runtime = match stage_runtime(scale.stages(&spec)) {
        Ok(r) => r,
        Err(e) => return fail(EXIT_FAILED, &e),
    };
    let handle = runtime.as_ref().map(|rt| rt.handle().clone());
    let part_spec = spec.clone();
    let part = move |builder: PipelineBuilder<Item>| {
        add_stages(settings(builder, &part_spec, handle), stages)
    };
    let worker = match job.worker(&into, &out, part).and_then(|w| w.spawn()) {
        Ok(w) => w,
        Err(e) => return fail(EXIT_FAILED, &e.to_string()),
    };
    eprintln!(
        "millrace: worker ready: stage(s) {names} of `{}`, taking from {} (Ctrl-C stops it)",
        spec.name,
        into.stream_name()
    );
    // Until Ctrl-C, dead letters are written out every second: a worker runs for as long
    // as it is left to, and its dead-letter files would otherwise fill only at the end.
    // A worker also stops by itself, at a message from an origin whose file differs.
    while let Err(RecvTimeoutError::Timeout) = interrupts.wakeup().recv_timeout(FLUSH_EVERY) {
        let _ = dead_letters.finish();
        if worker.stopped_itself() {
            break;
        }
    }
    eprintln!("millrace: stopping: finishing the messages taken");
    worker.stop();
    let code = match worker.join() {
        Ok(report) => {
            eprintln!(
                "millrace: worker stopped: {} message(s) finished, {} dead-lettered, {} of an \
                 earlier run dropped unprocessed",
                report.messages, report.dead_lettered, report.stale
            );
            eprint!("{}", report.pipeline);
            EXIT_OK
        }
        Err(e) => fail(EXIT_FAILED, &e.to_string()),
    };
    drop(runtime);
    let (_, dl_error) = dead_letters.finish();
    if let Some(e) = dl_error {
        return fail(EXIT_FAILED, &e);
    }
    code
}
