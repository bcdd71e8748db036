//! Pre-flight: what can be checked about a pipeline's surroundings before it runs.
//!
//! Loading a file ([`crate::config`]) checks the file itself. Whether its inputs exist and
//! its outputs can be written depends on the machine, and can change before the run: these
//! checks look, without reading or writing anything.
//!
//! * inputs: `lines`' file (not `-`) exists, is not a directory, and opens for reading;
//!   `files`' directory exists, is a directory, and can be listed;
//! * outputs (the `file` sink's path unless `-`, every dead-letter file, the JSON report):
//!   not a directory, the directory it goes in exists, and an existing file opens for
//!   writing (without being changed), a new one's directory is not read-only;
//! * no file is both read and written, or written by two parts.
//!
//! `millrace check` reports what it finds as warnings, `check --strict` and
//! `run --strict` as errors (exit 1, nothing runs), but for a file both read and written
//! or written twice ([`conflicts`]), which is an error for `check` and `run` alike: an
//! input may still appear before the run, a clash would not go away. Each is located at the
//! setting it is about, like a config error, and names the part.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::config::{is_dash, ConfigError, Loc, PipelineSpec};

/// A path the pipeline reads or writes, and where it was set.
struct Use {
    path: PathBuf,
    loc: Loc,
    /// The part it belongs to: `source`, a stage's name, `sink`, `report`.
    part: String,
    /// How messages name it: ``source `lines` `path` ``, `the report`.
    what: String,
}

/// Everything pre-flight finds wrong with `spec`'s inputs and outputs (and the JSON report
/// at `report`, if one is asked for), as errors if `strict`, else as warnings; each
/// located in `spec`'s file.
pub fn check(spec: &PipelineSpec, report: Option<&Path>, strict: bool) -> Vec<ConfigError> {
    let (inputs, outputs) = uses(spec, report);
    let mut problems = Vec::new();
    for input in &inputs {
        if let Some((message, help)) = unreadable(spec, input) {
            problems.push(diagnostic(input, message, help, strict));
        }
    }
    for output in &outputs {
        if let Some((message, help)) = unwritable(&output.path) {
            problems.push(diagnostic(output, message, help, strict));
        }
    }
    problems.extend(clashes(&inputs, &outputs));
    located(spec, problems)
}

/// The files `spec` (and the JSON report at `report`) would both read and write, or write
/// from two parts: errors whether strict or not, for `run` as for `check`. Unlike a missing
/// input, which may still appear, such a run would destroy its own input or garble its
/// output (a file sink on the file its source reads truncates it before the first line).
pub fn conflicts(spec: &PipelineSpec, report: Option<&Path>) -> Vec<ConfigError> {
    let (inputs, outputs) = uses(spec, report);
    located(spec, clashes(&inputs, &outputs))
}

/// Whether the JSON report at `report` would write a file `spec` reads or writes (then a
/// run refused for it must not write its report there either).
pub fn report_clashes(spec: &PipelineSpec, report: &Path) -> bool {
    let (inputs, outputs) = uses(spec, None);
    inputs
        .iter()
        .chain(&outputs)
        .any(|u| same_file(&u.path, report))
}

fn clashes(inputs: &[Use], outputs: &[Use]) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    for (i, output) in outputs.iter().enumerate() {
        if let Some(first) = outputs[..i]
            .iter()
            .find(|o| same_file(&o.path, &output.path))
        {
            let message = format!(
                "{} {} is also {}: both would write it",
                output.what,
                output.path.display(),
                first.what
            );
            problems.push(diagnostic(
                output,
                message,
                "give each its own file".into(),
                true,
            ));
        }
        if let Some(input) = inputs.iter().find(|i| same_file(&i.path, &output.path)) {
            let message = format!(
                "{} {} is also {}: the run would write the file it reads",
                output.what,
                output.path.display(),
                input.what
            );
            problems.push(diagnostic(
                output,
                message,
                "write somewhere else".into(),
                true,
            ));
        }
    }
    problems
}

/// `problems` in file order, located in `spec`'s file.
fn located(spec: &PipelineSpec, mut problems: Vec<ConfigError>) -> Vec<ConfigError> {
    problems.sort_by_key(ConfigError::file_order);
    let file = spec.file.clone();
    problems
        .into_iter()
        .map(|p| p.in_file(&file, spec.text.as_ref()))
        .collect()
}

fn diagnostic(at: &Use, message: String, help: String, strict: bool) -> ConfigError {
    let d = if strict {
        ConfigError::new(at.loc.clone(), message)
    } else {
        ConfigError::warning(at.loc.clone(), message)
    };
    d.help(help).in_part(&at.part)
}

/// The paths `spec` reads, and those it writes.
fn uses(spec: &PipelineSpec, report: Option<&Path>) -> (Vec<Use>, Vec<Use>) {
    let mut inputs = Vec::new();
    let source = &spec.source;
    for name in ["path", "dir"] {
        if let Some(path) = source.params.path(name).filter(|p| !is_dash(p)) {
            inputs.push(Use {
                path: path.to_path_buf(),
                loc: source.params.loc(name),
                part: "source".into(),
                what: format!("source `{}` `{name}`", source.kind.name),
            });
        }
    }
    let mut outputs = Vec::new();
    let sink = &spec.sink.part;
    if let Some(path) = sink.params.path("path").filter(|p| !is_dash(p)) {
        outputs.push(Use {
            path: path.to_path_buf(),
            loc: sink.params.loc("path"),
            part: "sink".into(),
            what: format!("sink `{}` `path`", sink.kind.name),
        });
    }
    for stage in &spec.stages {
        if let Some(path) = &stage.dead_letter {
            outputs.push(Use {
                path: path.clone(),
                loc: stage.part.loc.clone(),
                part: stage.name.clone(),
                what: format!("the dead-letter file of stage `{}`", stage.name),
            });
        }
    }
    if let Some(path) = &spec.sink.dead_letter {
        outputs.push(Use {
            path: path.clone(),
            loc: spec.sink.part.loc.clone(),
            part: "sink".into(),
            what: "the sink's dead-letter file".into(),
        });
    }
    if let Some(path) = report.or(spec.report.as_deref()) {
        outputs.push(Use {
            path: path.to_path_buf(),
            loc: Loc::Whole,
            part: "report".into(),
            what: "the JSON report".into(),
        });
    }
    // Stages that share a dead-letter file write it together, on purpose.
    let mut seen: Vec<PathBuf> = Vec::new();
    outputs.retain(|o| {
        let dead_letter = o.what.contains("dead-letter");
        let again = dead_letter && seen.iter().any(|p| same_file(p, &o.path));
        if dead_letter {
            seen.push(o.path.clone());
        }
        !again
    });
    (inputs, outputs)
}

/// Whether `a` and `b` name the same file (the same path, or the same existing file).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
}

fn relative_hint(spec: &PipelineSpec, path: &Path) -> String {
    let dir = Path::new(&spec.file)
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    match dir {
        Some(dir) if path.is_relative() || path.starts_with(dir) => format!(
            "relative paths are relative to the pipeline file's directory, {}",
            dir.display()
        ),
        _ => "create it before the run, or fix the path".into(),
    }
}

/// Why `input` cannot be read, and a hint; `None` if it can.
fn unreadable(spec: &PipelineSpec, input: &Use) -> Option<(String, String)> {
    let path = &input.path;
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some((
                format!("{} {shown} does not exist", input.what),
                relative_hint(spec, path),
            ))
        }
        Err(e) => return Some((format!("{} {shown}: {e}", input.what), fix_access())),
    };
    let wants_dir = input.what.ends_with("`dir`");
    match (wants_dir, meta.is_dir()) {
        (true, false) => Some((
            format!("{} {shown} is not a directory", input.what),
            "`files` walks a directory; to read one file, use `lines`".into(),
        )),
        (false, true) => Some((
            format!("{} {shown} is a directory", input.what),
            "`lines` reads one file; to read every file under a directory, use `files`".into(),
        )),
        (true, true) => std::fs::read_dir(path).err().map(|e| {
            (
                format!("{} {shown} cannot be listed: {e}", input.what),
                fix_access(),
            )
        }),
        // Only a regular file is opened to see: opening a named pipe waits for its writer
        // (`check` and `run --strict` used to block there for good, deaf to Ctrl-C), and a
        // device may do anything. Those are left to the run.
        (false, false) if !meta.file_type().is_file() => None,
        (false, false) => File::open(path).err().map(|e| {
            (
                format!("{} {shown} cannot be opened: {e}", input.what),
                fix_access(),
            )
        }),
    }
}

fn fix_access() -> String {
    "check its permissions (the run would fail with exit 1)".into()
}

/// Why `path` cannot be written, and a hint; `None` if it looks writable. Nothing is
/// created or changed.
fn unwritable(path: &Path) -> Option<(String, String)> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Some((
            format!("{shown} is a directory, not a file that can be written"),
            "name a file in it".into(),
        )),
        // A named pipe or a device is not opened (a pipe's open waits for its reader).
        Ok(meta) if !meta.file_type().is_file() => None,
        // Opened for writing, neither created nor truncated: the file is left as it was.
        Ok(_) => OpenOptions::new()
            .write(true)
            .open(path)
            .err()
            .map(|e| (format!("{shown} cannot be written: {e}"), fix_access())),
        Err(_) => {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            match std::fs::metadata(parent) {
                Err(_) => Some((
                    format!(
                        "{shown} cannot be created: its directory {} does not exist",
                        parent.display()
                    ),
                    format!("create it first (mkdir -p {})", parent.display()),
                )),
                Ok(meta) if !meta.is_dir() => Some((
                    format!(
                        "{shown} cannot be created: {} is not a directory",
                        parent.display()
                    ),
                    "fix the path".into(),
                )),
                Ok(meta) if meta.permissions().readonly() => Some((
                    format!(
                        "{shown} cannot be created: {} is read-only",
                        parent.display()
                    ),
                    fix_access(),
                )),
                Ok(_) => None,
            }
        }
    }
}
