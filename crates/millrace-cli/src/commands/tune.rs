//! `millrace tune FILE`: run a pipeline for a while with every stage autoscaled, then print
//! the worker counts the autoscaler settled on as TOML ready to paste into the file, and the
//! decisions that led there with their reasons.
//!
//! Adjacent autoscaled stages with the same bounds run fused under `fuse_auto` (the
//! default): one segment of shared workers, sized as a unit, so they settle on one count.
//! When that happened the answer says so and adds `fuse = true` for `[pipeline]`, so that
//! the fixed counts pasted in run in the same layout.
//!
//! Every stage with a fixed worker count is set to `workers = "auto"` (stages with bounds
//! keep them; async stages scale by `concurrency` and are left alone). The run is
//! cancelled after `--seconds` (what is in flight then is dropped: it would tell the answer
//! nothing more, and a slow stage could take minutes to work through it), or ends earlier
//! when the input does. A `stdout` sink is swapped for `null`, so the items do not mix with
//! the answer; a sink's file and the dead-letter files are written into a temporary
//! directory, removed afterwards, so a tune leaves the pipeline's outputs as they were (it
//! used to overwrite the sink's file with its partial output). The answer goes to stdout;
//! the live view and messages to stderr.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use millrace::{EndState, Report, StageReport};

use crate::cli::TuneArgs;
use crate::config::params::Params;
use crate::config::{self, PipelineSpec, Workers};
use crate::kinds;
use crate::signals::Interrupts;
use crate::summary::{Outcome, Summary};

use super::run::live_view;
use super::{fail, print_or_closed, run_supervised, Supervised, EXIT_CONFIG, EXIT_FAILED, EXIT_OK};

/// How long `tune` runs when `--seconds` is not given.
pub const DEFAULT_SECONDS: f64 = 10.0;

/// Puts every thread stage on auto and swaps a `stdout` sink for `null`; returns what it
/// changed, for the user.
pub fn prepare(spec: &mut PipelineSpec) -> Vec<String> {
    let mut notes = Vec::new();
    for stage in &mut spec.stages {
        if let Workers::Fixed(_) = stage.workers {
            stage.workers = Workers::Auto { min: 1, max: None };
        }
    }
    if spec.sink.part.kind.name == "stdout" {
        if let Some(null) = kinds::find("null") {
            spec.sink.part.kind = null;
            spec.sink.part.params = Params::default();
            notes.push("the `stdout` sink is replaced by `null` while tuning".to_owned());
        }
    }
    notes
}

/// Sends what the run would write (the sink's file, the dead-letter files) into `dir`;
/// returns what it changed, for the user.
pub fn redirect_outputs(spec: &mut PipelineSpec, dir: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    for (written, resolved) in spec.sink.part.params.paths_mut() {
        *resolved = dir.join("sink-output");
        notes.push(format!(
            "the sink writes to a temporary file while tuning (`{written}` is left as it is)"
        ));
    }
    let letters = spec
        .stages
        .iter_mut()
        .map(|s| (s.name.as_str(), &mut s.dead_letter))
        .chain(std::iter::once(("sink", &mut spec.sink.dead_letter)));
    let mut redirected = 0;
    for (name, dead_letter) in letters {
        if let Some(path) = dead_letter {
            *path = dir.join(format!("dead-letters-{name}.jsonl"));
            redirected += 1;
        }
    }
    if redirected > 0 {
        notes.push("dead letters go to a temporary directory while tuning".to_owned());
    }
    notes
}

/// How the run ended, in words.
fn ending(report: &Report, outcome: Outcome, limit: Duration) -> String {
    match (outcome, report.end()) {
        (Outcome::Interrupted | Outcome::Aborted, _) => "interrupted (Ctrl-C)".to_owned(),
        (Outcome::Failed, _) => "FAILED".to_owned(),
        (_, EndState::Stopped | EndState::Cancelled) => {
            format!("stopped at the time limit ({} s)", limit.as_secs_f64())
        }
        _ => "the input ended".to_owned(),
    }
}

/// Whether stage `i` of `spec` runs remotely (`connector = "nats"`).
fn is_remote(spec: &PipelineSpec, i: usize) -> bool {
    spec.scale_out
        .as_ref()
        .is_some_and(|s| (s.first..s.end).contains(&i))
}

/// The runs of stages that shared workers, as `a+b+c`: a stage and the stages fused after
/// it. A stage that runs remotely (`connector = "nats"`; tuning runs it here) starts and
/// ends runs of its own: it shares no workers with a stage of the origin, so `fuse = true`
/// is no answer for it (the answer said so for a remote stage fused with the next one).
fn fused_runs(spec: &PipelineSpec, stages: &[StageReport]) -> Vec<String> {
    let mut runs: Vec<Vec<&str>> = Vec::new();
    for (i, stage) in stages.iter().enumerate() {
        if is_remote(spec, i) {
            // It ends the run before it and joins none: remote stages fuse as the workers'
            // settings say, not as `[pipeline] fuse` does.
            runs.push(Vec::new());
            continue;
        }
        match runs.last_mut() {
            Some(run) if stage.fused && !run.is_empty() => run.push(&stage.name),
            _ => runs.push(vec![&stage.name]),
        }
    }
    runs.into_iter()
        .filter(|run| run.len() > 1)
        .map(|run| run.join("+"))
        .collect()
}

/// Neighbours that ran apart but that `fuse = true` would fuse once their settled counts
/// are fixed ones (as `b+c`): both on threads, equal counts, the first not ordered.
fn joined_by_fuse(spec: &PipelineSpec, stages: &[StageReport]) -> Vec<String> {
    spec.stages
        .windows(2)
        .zip(stages.windows(2))
        .enumerate()
        .filter(|&(i, _)| !is_remote(spec, i) && !is_remote(spec, i + 1))
        .map(|(_, pair)| pair)
        .filter(|(specs, ran)| {
            !ran[1].fused
                && !specs[0].ordered
                && specs.iter().all(|s| s.workers != Workers::Async)
                && ran[0].workers == ran[1].workers
        })
        .map(|(_, ran)| format!("{}+{}", ran[0].name, ran[1].name))
        .collect()
}

/// The answer: the settled worker counts as `[[stage]]` snippets (and `fuse = true` for
/// `[pipeline]` when stages ran fused), then the decisions.
pub fn render(spec: &PipelineSpec, summary: &Summary, limit: Duration) -> String {
    let r = &summary.report;
    let wall = r.wall().as_secs_f64();
    let rate = if wall > 0.0 {
        r.delivered() as f64 / wall
    } else {
        0.0
    };
    let budget = spec.scaling.cpu_budget.map_or_else(
        || {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            format!("{cores} (the cores)")
        },
        |b| b.to_string(),
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# millrace tune {}: {wall:.1} s with every stage autoscaled, cpu budget {budget};",
        spec.file
    );
    let _ = writeln!(
        out,
        "# {}; {} items delivered ({} items/s).",
        ending(r, summary.outcome, limit),
        millrace::fmt::count(r.delivered()),
        millrace::fmt::rate(rate)
    );
    if let Some(e) = &summary.error {
        let _ = writeln!(out, "# error: {e}");
    }
    let runs = fused_runs(spec, r.stages());
    let joins = joined_by_fuse(spec, r.stages());
    if !runs.is_empty() {
        let (which, verb) = match runs.as_slice() {
            [one] => (one.clone(), "ran"),
            [first @ .., last] => (format!("{} and {last}", first.join(", ")), "each ran"),
            [] => (String::new(), "ran"),
        };
        let _ = writeln!(
            out,
            "# Fused: {which} {verb} on shared workers, sized as one (autoscaled neighbours\n\
             # with the same bounds do, under fuse_auto); to size each stage on its own, tune\n\
             # again with --set pipeline.fuse_auto=false."
        );
    }
    // What `[pipeline] fuse` must say for the counts, fixed, to run in this layout: on when
    // stages ran fused; off when the file turns it on but it would fuse stages that ran
    // apart; otherwise whatever the file says does.
    let fuse = if !runs.is_empty() {
        Some(true)
    } else if spec.scaling.fuse && !joins.is_empty() {
        Some(false)
    } else {
        None
    };
    let _ = writeln!(
        out,
        "# The worker counts it settled on, to paste over each stage's `workers`{}",
        match fuse {
            Some(true) =>
                ", and the\n# [pipeline] setting that keeps the fused stages on shared workers:",
            Some(false) => ", and the\n# [pipeline] setting that keeps the stages apart:",
            None => ":",
        }
    );
    match fuse {
        Some(true) => {
            let _ = writeln!(
                out,
                "\n[pipeline]\n# {} shared workers while tuning\nfuse = true",
                runs.join(", ")
            );
            if !joins.is_empty() {
                let _ = writeln!(
                    out,
                    "# note: {} ran apart, but with equal counts fuse = true fuses them too",
                    joins.join(", ")
                );
            }
        }
        Some(false) => {
            let _ = writeln!(
                out,
                "\n[pipeline]\n# the stages ran apart; with these counts fuse = true would fuse {}\n\
                 fuse = false",
                joins.join(", ")
            );
        }
        None => {}
    }
    for (spec_stage, stage) in spec.stages.iter().zip(r.stages()) {
        if spec_stage.workers == Workers::Async {
            continue;
        }
        let _ = writeln!(
            out,
            "\n[[stage]]\nname = {}\nworkers = {}",
            serde_json::Value::from(spec_stage.name.as_str()),
            stage.workers
        );
    }
    let asyncs: Vec<&str> = spec
        .stages
        .iter()
        .filter(|s| s.workers == Workers::Async)
        .map(|s| s.name.as_str())
        .collect();
    if !asyncs.is_empty() {
        let _ = writeln!(
            out,
            "\n# async stages scale by `concurrency`, not workers: {}",
            asyncs.join(", ")
        );
    }
    let decisions: Vec<String> = r
        .decisions()
        .map(|(at, d)| format!("#   {:.1} s: {}", at.as_secs_f64(), d.reason))
        .collect();
    if decisions.is_empty() {
        let _ = writeln!(
            out,
            "\n# No decisions: the first counts held (or the run was too short to tell)."
        );
    } else {
        let _ = writeln!(out, "\n# Decisions (seconds since the start):");
        for d in decisions {
            let _ = writeln!(out, "{d}");
        }
    }
    for (at, wedge) in r.wedges() {
        let _ = writeln!(out, "# wedged at {:.1} s: {wedge}", at.as_secs_f64());
    }
    out
}

/// Runs `millrace tune`; returns the exit code.
pub fn run(args: &TuneArgs) -> u8 {
    Interrupts::install();
    let limit = match Duration::try_from_secs_f64(args.seconds) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            return fail(
                EXIT_CONFIG,
                &format!("--seconds must be a positive number, got {}", args.seconds),
            )
        }
    };
    let mut spec = match config::load(&args.file, &args.set) {
        Ok(spec) => spec,
        Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
    };
    // Removed when dropped.
    let scratch = match tempfile::Builder::new().prefix("millrace-tune-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            return fail(
                EXIT_FAILED,
                &format!("cannot make a temporary directory for the run's outputs: {e}"),
            )
        }
    };
    let mut notes = prepare(&mut spec);
    notes.extend(redirect_outputs(&mut spec, scratch.path()));
    for note in notes {
        eprintln!("millrace: {note}");
    }
    // Run here, every stage; answered for the file, whose remote stages fuse with nothing.
    let scale_out = spec.scale_out.take();
    if scale_out.is_some() {
        eprintln!(
            "millrace: tune runs every stage here, the remote (connector = \"nats\") ones too: \
             their counts are per process, for `millrace worker --workers N`"
        );
    }
    let live = live_view(args.no_live, &spec.name, false);
    let deadline = Some(Instant::now() + limit);
    let Supervised {
        dead_letters,
        summary,
        runner,
        ..
    } = match run_supervised(&spec, Vec::new(), live, deadline, None, None) {
        Ok(run) => run,
        Err((code, _)) => return code,
    };
    // Flush what the sink and the dead letters wrote; their results are not the answer.
    if let Some(runner) = runner {
        let _ = runner.finish();
    }
    let _ = dead_letters.finish();
    drop(scratch);
    let code = match summary.outcome {
        Outcome::Failed => EXIT_FAILED,
        Outcome::Completed => EXIT_OK,
        other => other.exit_code(),
    };
    spec.scale_out = scale_out;
    print_or_closed(&render(&spec, &summary, limit), code)
}
