//! `millrace run [FILE]`: run a pipeline file, or the built-in seed pipeline.
//!
//! The order of things: load and check the file (exit 2 on a bad one), open inputs and
//! outputs (exit 1 if one cannot be), start the run, supervise it (Ctrl-C, live view),
//! then print the sink's result on stdout, the report on stderr, write the JSON report if
//! asked, and exit with the outcome's code.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use crate::cli::{Format, RunArgs};
use crate::config::{self, ConfigError};
use crate::live::LiveView;
use crate::metrics_serve;
use crate::progress::{Progress, Unit, DEFAULT_EVERY};
use crate::report_html;
use crate::report_json;
use crate::report_text;
use crate::scale_out::RemoteAccount;
use crate::seed;
use crate::signals::Interrupts;
use crate::summary::{Outcome, SinkSide, Summary};
use crate::supervise::{supervise, Watch};
use crate::{diagnostics, preflight};

use super::{fail, print_err, print_out, run_supervised, Supervised, EXIT_CONFIG, EXIT_FAILED};

/// Runs `millrace run`; returns the exit code.
pub fn run(args: &RunArgs) -> u8 {
    // Catch Ctrl-C from the start: one that comes while the file loads stops the run as
    // soon as it starts, rather than killing the process.
    Interrupts::install();
    crate::logging::init(args.log_format);
    match &args.file {
        None => run_seed(args),
        Some(file) => run_file(file, args),
    }
}

/// The live view, if one is wanted (not `off`) and stderr is a terminal, and the sink does
/// not write to the same terminal.
pub(super) fn live_view(off: bool, title: &str, writes_stdout: bool) -> Option<LiveView> {
    let wanted = !off && std::io::stderr().is_terminal();
    let clash = writes_stdout && std::io::stdout().is_terminal();
    (wanted && !clash).then(|| LiveView::new(title))
}

/// Prints the report and writes the JSON one (with the remote stages' account of a
/// scaled-out run); returns the exit code.
fn finish(
    summary: &Summary,
    args: &RunArgs,
    json_path: Option<&Path>,
    remote: Option<&RemoteAccount>,
) -> u8 {
    if !args.quiet {
        print_err(&report_text::render(summary));
    } else if let Some(e) = &summary.error {
        print_err(&format!("millrace: {}: {e}\n", summary.outcome.as_str()));
    } else if let Some(why) = summary.failed_items() {
        print_err(&format!("millrace: {why}\n"));
    }
    let mut code = summary.exit_code();
    if let Some(remote) = remote {
        code = remote.exit_code(code, args.allow_failures);
    }
    if let Some(path) = json_path {
        let written = if report_html::is_html(path) {
            report_html::write(summary, path)
        } else {
            let mut doc = report_json::to_json(summary);
            if let (Some(remote), Some(fields)) = (remote, doc.as_object_mut()) {
                fields.insert("remote".into(), remote.to_json());
                fields.insert("exit_code".into(), code.into());
            }
            report_json::write_value(&doc, path)
        };
        if let Err(e) = written {
            eprintln!("millrace: {e}");
            code = code.max(EXIT_FAILED);
        }
    }
    code
}

/// Says why the run could not start, writes the report of a run that never started to
/// `json_path` if there is one, and returns `code`.
fn not_started(
    code: u8,
    message: &str,
    name: &str,
    file: Option<&Path>,
    json_path: Option<&Path>,
) -> u8 {
    if let Some(path) = json_path {
        let file = file.map(|f| f.display().to_string());
        let written = if report_html::is_html(path) {
            report_html::write_not_started(name, file.as_deref(), message, code, path)
        } else {
            let doc = report_json::not_started(name, file.as_deref(), message, code);
            report_json::write_value(&doc, path)
        };
        if let Err(e) = written {
            print_err(&format!("millrace: {e}\n"));
        }
    }
    code
}

/// How often to print a progress line when no live view is drawn: `--progress-every`
/// (`0` or `off`: never), else every [`DEFAULT_EVERY`] when stderr is not a terminal (and
/// not `--quiet`).
///
/// # Errors
///
/// A `--progress-every` that is not a duration.
fn progress_every(args: &RunArgs) -> Result<Option<Duration>, String> {
    match args.progress_every.as_deref().map(str::trim) {
        Some("0" | "off") => Ok(None),
        Some(text) => config::duration::parse(text).map(Some).map_err(|e| {
            format!("--progress-every {text:?}: {e} (write a duration like 10s or 1m, or off)")
        }),
        None if args.quiet || std::io::stderr().is_terminal() => Ok(None),
        None => Ok(Some(DEFAULT_EVERY)),
    }
}

/// Writes config errors or pre-flight findings to stderr in `format`; returns `code`.
fn diagnose(format: Format, file: &str, found: &[ConfigError], code: u8) -> u8 {
    match format {
        Format::Text => {
            for d in found {
                print_err(&format!("millrace: {d}\n"));
            }
        }
        Format::Json => print_err(&format!("{}\n", diagnostics::document(file, found))),
    }
    code
}

/// The `/metrics` server `--metrics-addr` asks for, listening before the run starts; an
/// address that cannot be served is a usage error.
fn metrics_server(
    args: &RunArgs,
    name: &str,
) -> Result<Option<millrace_prometheus::MetricsServer>, u8> {
    args.metrics_addr
        .as_deref()
        .map(|addr| metrics_serve::bind(addr, name, args.quiet))
        .transpose()
        .map_err(|e| fail(EXIT_CONFIG, &e))
}

/// Checks that the JSON report can be written, if one is asked for.
fn check_report_path(json_path: Option<&Path>) -> Result<(), u8> {
    match json_path.map(report_json::check_writable) {
        Some(Err(e)) => Err(fail(EXIT_FAILED, &e)),
        _ => Ok(()),
    }
}

fn run_seed(args: &RunArgs) -> u8 {
    if let Err(code) = check_report_path(args.report.as_deref()) {
        return code;
    }
    if !args.set.is_empty() {
        return fail(
            EXIT_CONFIG,
            "--set needs a pipeline file (the built-in seed pipeline takes --n)",
        );
    }
    let progress_every = match progress_every(args) {
        Ok(every) => every,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    let n = args.n.unwrap_or(seed::DEFAULT_N);
    let metrics = match metrics_server(args, "seed") {
        Ok(m) => m,
        Err(code) => return code,
    };
    let running = match seed::pipeline(n).spawn() {
        Ok(r) => r,
        Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
    };
    let interrupts = Interrupts::install();
    let progress = Progress::default();
    progress.start(Unit::Items, Some(n));
    let watch = Watch {
        live: live_view(args.quiet || args.no_live, "seed", false),
        stop: None,
        interrupts: &interrupts,
        deadline: None,
        progress: Some(&progress),
        front: None,
        progress_every,
        metrics: metrics.as_ref(),
        on_stop: None,
    };
    let (ended, interruption) = supervise(running, watch);
    let kinds = vec![None; 5];
    let (mut summary, sum) = match Summary::new("seed (built-in)", None, kinds, ended, interruption)
    {
        Ok(s) => s,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    summary.terminated = interrupts.terminated();
    // A failed run's partial sum would pass for the real one.
    if let Some(sum) = sum.filter(|_| summary.outcome != Outcome::Failed) {
        let line = format!(
            "seed pipeline: sum of 3·x² for x < {n} = {sum} (stage `wrap` received each 3·x² back from stage `scale`)\n"
        );
        if print_out(&line).is_err() {
            summary.stdout_closed();
        }
        summary.sink.result = Some(crate::kinds::SinkResult {
            lines: Vec::new(),
            json: serde_json::json!({ "sum": sum, "sum_text": sum.to_string(), "n": n }),
        });
    }
    finish(&summary, args, args.report.as_deref(), None)
}

fn run_file(file: &Path, args: &RunArgs) -> u8 {
    if let Err(code) = check_report_path(args.report.as_deref()) {
        return code;
    }
    // A refused file or usage (exit 2) writes no report: nothing was run or opened.
    if args.n.is_some() {
        return fail(
            EXIT_CONFIG,
            "--n is for the built-in seed pipeline; with a file use --set source.end=N",
        );
    }
    let progress_every = match progress_every(args) {
        Ok(every) => every,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    let spec = match config::load(file, &args.set) {
        Ok(spec) => spec,
        Err(e) => {
            let shown = file.display().to_string();
            return diagnose(args.error_format, &shown, &[e], EXIT_CONFIG);
        }
    };
    let json_path = args.report.as_deref().or(spec.report.as_deref());
    if args.report.is_none() {
        if let Err(code) = check_report_path(json_path) {
            return code;
        }
    }
    // Without `--strict`, only a file both read and written (or written twice) keeps the
    // run from starting: a missing input may still appear, and fails the run if not.
    let found = if args.strict {
        preflight::check(&spec, json_path, true)
    } else {
        preflight::conflicts(&spec, json_path)
    };
    if !found.is_empty() {
        let code = diagnose(args.error_format, &spec.file, &found, EXIT_FAILED);
        let message = found
            .iter()
            .map(|d| d.message())
            .collect::<Vec<_>>()
            .join("; ");
        let strict = if args.strict { " (--strict)" } else { "" };
        let message = format!("pre-flight{strict}: {message}");
        // Not even the report goes where it would overwrite a file the run uses.
        let json_path = json_path.filter(|p| !preflight::report_clashes(&spec, p));
        return not_started(code, &message, &spec.name, Some(file), json_path);
    }
    let writes_stdout = spec.sink.part.kind.name == "stdout"
        || (spec.sink.part.kind.name == "file"
            && spec.sink.part.params.path("path") == Some(Path::new("-")));
    let metrics = match metrics_server(args, &spec.name) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let live = live_view(args.quiet || args.no_live, &spec.name, writes_stdout);
    let kinds: Vec<Option<String>> = std::iter::once(spec.source.kind.name)
        .chain(spec.stages.iter().map(|s| s.part.kind.name))
        .chain(std::iter::once(spec.sink.part.kind.name))
        .map(|k| Some(k.to_owned()))
        .collect();
    let (
        Supervised {
            source_log,
            dead_letters,
            summary,
            runner,
        },
        remote,
    ) = match supervise_file(&spec, kinds, live, progress_every, metrics.as_ref()) {
        Ok(run) => run,
        Err((code, message)) => {
            return not_started(code, &message, &spec.name, Some(file), json_path);
        }
    };
    let sink = runner.map_or_else(SinkSide::default, |r| SinkSide::from(r.finish()));
    let (files, dl_error) = dead_letters.finish();
    let mut summary = summary
        .with_sink(sink)
        .with_source(&source_log)
        .with_dead_letters(files, dl_error);
    summary.allow_failures = args.allow_failures;
    // A failed run's partial result would pass for a real one; an interrupted run's is
    // what was done, and the report says so.
    if summary.outcome != Outcome::Failed {
        if let Some(result) = &summary.sink.result {
            let text: String = result.lines.iter().map(|l| format!("{l}\n")).collect();
            if print_out(&text).is_err() {
                summary.stdout_closed();
            }
        }
    }
    let code = finish(&summary, args, json_path, remote.as_ref());
    remote.map_or(code, |r| r.finish(code, args.quiet, args.allow_failures))
}

/// Runs `spec` here, or (with remote stages) its origin: see [`crate::scale_out`].
fn supervise_file(
    spec: &config::PipelineSpec,
    kinds: Vec<Option<String>>,
    live: Option<LiveView>,
    progress_every: Option<Duration>,
    metrics: Option<&millrace_prometheus::MetricsServer>,
) -> Result<(Supervised, Option<RemoteAccount>), (u8, String)> {
    #[cfg(feature = "nats")]
    if let Some(scale) = &spec.scale_out {
        return crate::scale_out::run_origin(spec, scale, live, progress_every, metrics)
            .map(|(run, account)| (run, Some(account)));
    }
    run_supervised(spec, kinds, live, None, progress_every, metrics).map(|run| (run, None))
}
