//! `millrace check FILE`: validate a pipeline file without running it, and print the
//! resolved pipeline as TOML with every default written out (a file that loads to the
//! same pipeline), with a `# emits: TYPE` comment after the source and each stage: the
//! type of the items that flow on, as the load-time type check works it out.

use std::fmt::Write as _;
use std::path::Path;

use crate::cli::{CheckArgs, Format};
use crate::config::duration;
use crate::config::params::Params;
use crate::config::{
    self, typecheck, ConfigError, PipelineSpec, Policy, Scaling, Severity, Workers,
};
use crate::value::Ty;
use crate::{diagnostics, preflight};

use super::{print_err, print_or_closed, EXIT_CONFIG, EXIT_FAILED, EXIT_OK};

fn quote(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn params(out: &mut String, params: &Params) {
    for (name, value) in params.iter() {
        let _ = writeln!(out, "{name} = {value}");
    }
}

fn policy(out: &mut String, policy: Policy) {
    match policy {
        Policy::Skip => out.push_str("on_error = \"skip\"\n"),
        Policy::Stop => out.push_str("on_error = \"stop\"\n"),
        Policy::Retry {
            attempts,
            backoff_ms,
            then_stop,
        } => {
            let then = if then_stop { "stop" } else { "skip" };
            let _ = writeln!(
                out,
                "on_error = \"retry\"\nretry_attempts = {attempts}\nretry_backoff_ms = {backoff_ms}\nretry_then = \"{then}\""
            );
        }
    }
}

fn dead_letter(out: &mut String, spec: &PipelineSpec, path: Option<&Path>) {
    if let Some(p) = path {
        let _ = writeln!(out, "dead_letter = {}", quote(&from_the_file(spec, p)));
    }
}

/// A path the file gave (resolved against the file's directory), as the file would write
/// it: relative to that directory, like the parameters' paths, so the printed pipeline
/// loads back to the same one when saved beside the file. (These came out relative to the
/// current directory, the parameters' as written.)
fn from_the_file(spec: &PipelineSpec, path: &Path) -> String {
    let dir = Path::new(&spec.file).parent().unwrap_or(Path::new(""));
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

/// The autoscaling, wedge and fusion settings, as `[pipeline]` keys. `fuse` is always
/// written; `fuse_auto` when a stage is autoscaled or it is off; `lazy_workers` and
/// `adaptive_fusion` when off.
fn scaling(out: &mut String, s: &Scaling, any_auto: bool) {
    match s.cpu_budget {
        Some(n) => {
            let _ = writeln!(out, "cpu_budget = {n}");
        }
        None if any_auto => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let _ = writeln!(
                out,
                "# cpu_budget: not set, so the number of cores ({cores} here), less one from 8 up"
            );
        }
        None => {}
    }
    match s.interval {
        Some(d) => {
            let _ = writeln!(out, "autoscale_interval = {}", quote(&duration::format(d)));
        }
        None if any_auto => out.push_str("autoscale_interval = \"200ms\"\n"),
        None => {}
    }
    match s.wedge {
        Some(w) => {
            let policy = if w.fail { "fail" } else { "report" };
            let _ = writeln!(
                out,
                "wedge_timeout = {}\nwedge_policy = \"{policy}\"",
                quote(&duration::format(w.after))
            );
        }
        None => out.push_str("# wedge_timeout: not set, so no wedge watch\n"),
    }
    let _ = writeln!(out, "fuse = {}", s.fuse);
    if any_auto || !s.fuse_auto {
        let _ = writeln!(out, "fuse_auto = {}", s.fuse_auto);
    }
    let _ = writeln!(
        out,
        "lazy_workers = {}\nadaptive_fusion = {}",
        s.lazy_workers, s.adaptive_fusion
    );
}

/// `# emits: TYPE` for the part whose items are `ty` (in [`Ty`]'s words, as the type
/// checker's); nothing when the types are not known.
fn emits(out: &mut String, ty: Option<&Ty>) {
    if let Some(ty) = ty {
        let _ = writeln!(out, "# emits: {ty}");
    }
}

/// The `batch` line: the size set, or a comment saying that it adapts.
fn batch_line(batch: Option<usize>) -> String {
    match batch {
        Some(items) => format!("batch = {items}"),
        None => "# batch: not set, adapts while the pipeline runs".to_owned(),
    }
}

/// The resolved pipeline as TOML, with a `# emits: TYPE` comment after the source and each
/// stage (left out for a pipeline whose types do not fit, which only an untyped load lets
/// through).
pub fn to_toml(spec: &PipelineSpec) -> String {
    let emitted = typecheck::infer(spec).unwrap_or_default();
    let mut emitted = emitted.iter();
    let mut out = String::new();
    let _ = writeln!(out, "[pipeline]\nname = {}", quote(&spec.name));
    let _ = writeln!(
        out,
        "capacity = {}\n{}",
        spec.capacity,
        batch_line(spec.batch)
    );
    if let Some(r) = &spec.report {
        let _ = writeln!(out, "report = {}", quote(&from_the_file(spec, r)));
    }
    if let Some(scale) = &spec.scale_out {
        let _ = writeln!(out, "url = {}", quote(&scale.url));
    }
    let any_auto = spec.stages.iter().any(|s| s.workers.is_auto());
    scaling(&mut out, &spec.scaling, any_auto);
    let _ = writeln!(out, "\n[source]\nkind = {}", quote(spec.source.kind.name));
    params(&mut out, &spec.source.params);
    emits(&mut out, emitted.next());
    for (i, s) in spec.stages.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n[[stage]]\nname = {}\nkind = {}",
            quote(&s.name),
            quote(s.part.kind.name)
        );
        if spec
            .scale_out
            .as_ref()
            .is_some_and(|r| (r.first..r.end).contains(&i))
        {
            out.push_str("connector = \"nats\"\n");
        }
        match s.workers {
            Workers::Async => out.push_str("# async: scaled by `concurrency`, not workers\n"),
            w => {
                let _ = writeln!(out, "workers = {w}");
            }
        }
        let _ = writeln!(
            out,
            "capacity = {}\n{}\nordered = {}",
            s.capacity,
            batch_line(s.batch),
            s.ordered
        );
        policy(&mut out, s.policy);
        dead_letter(&mut out, spec, s.dead_letter.as_deref());
        params(&mut out, &s.part.params);
        emits(&mut out, emitted.next());
    }
    let _ = writeln!(out, "\n[sink]\nkind = {}", quote(spec.sink.part.kind.name));
    policy(&mut out, spec.sink.policy);
    dead_letter(&mut out, spec, spec.sink.dead_letter.as_deref());
    params(&mut out, &spec.sink.part.params);
    out
}

/// Runs `millrace check`; returns the exit code: 0 valid, 2 a bad file, 1 (under
/// `--strict`) a valid file whose inputs or outputs are not ready.
pub fn run(args: &CheckArgs) -> u8 {
    let shown = args.file.display().to_string();
    let spec = match config::load(&args.file, &args.set) {
        Ok(spec) => spec,
        Err(e) => return refuse(args.format, &shown, &[e], EXIT_CONFIG),
    };
    let found = preflight::check(&spec, None, args.strict);
    let failed = found.iter().any(|d| d.severity() == Severity::Error);
    let code = if failed { EXIT_FAILED } else { EXIT_OK };
    match args.format {
        Format::Json => refuse(Format::Json, &spec.file, &found, code),
        Format::Text if failed => refuse(Format::Text, &spec.file, &found, code),
        Format::Text => {
            let code = print_or_closed(
                &format!(
                    "# {}: valid; the resolved pipeline, every default written out:\n{}",
                    spec.file,
                    to_toml(&spec)
                ),
                code,
            );
            for warning in &found {
                print_err(&format!("millrace: {warning}\n"));
            }
            code
        }
    }
}

/// Writes `found` in `format` (text to stderr; JSON to stdout) and returns `code`.
fn refuse(format: Format, file: &str, found: &[ConfigError], code: u8) -> u8 {
    match format {
        Format::Text => {
            for d in found {
                print_err(&format!("millrace: {d}\n"));
            }
            code
        }
        Format::Json => {
            let doc = diagnostics::document(file, found);
            print_or_closed(&format!("{doc}\n"), code)
        }
    }
}
