//! Pipeline files: loading, checking and resolving them into a [`PipelineSpec`].
//!
//! Loading goes in four steps, each in its own module:
//!
//! 1. [`node`]: the TOML text is parsed into a tree whose keys and values know their line
//!    and column;
//! 2. [`overrides`]: `--set KEY=VALUE` options edit the tree, and [`interpolate`]
//!    expands `${VAR}` in its string values;
//! 3. [`resolve`]: every table is read against what it may hold ([`schema`] for the
//!    pipeline's own settings, [`scaling`] for `workers` and the autoscaling, fusion and
//!    wedge settings, each kind's [`params`] for its parameters, [`duration`] for
//!    durations; the private `table` reads a table's keys and `settings` the settings
//!    every stage has); unknown keys, wrong types and values out of range are errors;
//! 4. [`typecheck`]: each stage (and the sink) must take the values the part before it
//!    emits;
//! 5. the result is a [`PipelineSpec`] with every default applied.
//!
//! The `connector` and `url` settings (which stages run on `millrace worker` processes)
//! are taken out of the tree before step 3 and checked against the resolved stages after
//! it, by [`connector`].
//!
//! Errors are [`ConfigError`]s ([`error`]), located and with a hint where one helps. Each
//! step reads on after an error, so one `ConfigError` carries every error of the file (the
//! type check, which needs the rest to be sound, runs only on a file without other errors).
//!
//! Relative paths, in the file and in `--set` values alike, are relative to the pipeline
//! file's directory (the current directory for a file read from stdin, `-`). No
//! input makes the loader panic; `tests/config_fuzz.rs` feeds it arbitrary text and
//! mutations of the examples to keep it so.

pub mod connector;
pub mod duration;
pub mod error;
pub mod interpolate;
pub mod node;
pub mod overrides;
pub mod params;
pub mod resolve;
pub mod scaling;
pub mod schema;
mod settings;
mod table;
pub mod typecheck;

use std::path::Path;
use std::sync::Arc;

pub use error::{ConfigError, Loc, Severity};
pub use schema::{PipelineSpec, Policy, Scaling, SinkSpec, StageSpec, Wedge, Workers};

use error::{Findings, LineIndex};
use params::PathBase;

/// The name a pipeline file read from stdin (`-`) goes by in messages.
pub const STDIN_NAME: &str = "<stdin>";

/// Whether `path` means stdin or stdout: `-`.
pub fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Reads, checks and resolves the pipeline file at `path` (`-`: read it from stdin), with
/// `--set` overrides applied.
///
/// # Errors
///
/// A [`ConfigError`] if the file cannot be read or is not a valid pipeline.
pub fn load(path: &Path, overrides: &[String]) -> Result<PipelineSpec, ConfigError> {
    if is_dash(path) {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
            ConfigError::new(
                Loc::Whole,
                format!("cannot read the pipeline from stdin: {e}"),
            )
            .in_file(STDIN_NAME, None)
        })?;
        let spec = load_str(&text, STDIN_NAME, Path::new(""), overrides)?;
        return stdin_is_free(spec);
    }
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(Loc::Whole, format!("cannot read the pipeline file: {e}"))
            .in_file(&shown, None)
    })?;
    let dir = path.parent().unwrap_or(Path::new(""));
    load_str(&text, &shown, dir, overrides)
}

/// `spec`, read from stdin, unless its source wants stdin too.
fn stdin_is_free(spec: PipelineSpec) -> Result<PipelineSpec, ConfigError> {
    let params = &spec.source.params;
    match params.path("path") {
        Some(p) if is_dash(p) && spec.source.kind.name == "lines" => Err(ConfigError::new(
            params.loc("path"),
            "the pipeline was read from stdin, so source `lines` cannot read its lines there too",
        )
        .help("give the source a path = \"FILE\", or the pipeline as a file")
        .in_part("source")
        .in_file(STDIN_NAME, None)),
        _ => Ok(spec),
    }
}

/// Checks and resolves pipeline text as if read from the file `file` in directory `dir`.
///
/// # Errors
///
/// A [`ConfigError`] if the text is not a valid pipeline.
pub fn load_str(
    text: &str,
    file: &str,
    dir: &Path,
    overrides: &[String],
) -> Result<PipelineSpec, ConfigError> {
    load_text(text, file, dir, overrides, true)
}

/// As [`load_str`], but without the check of the value types between stages: for tests of
/// the checks each kind makes on every item at run time, which back that one up.
///
/// # Errors
///
/// A [`ConfigError`] if the text is not a valid pipeline, types aside.
pub fn load_str_untyped(
    text: &str,
    file: &str,
    dir: &Path,
    overrides: &[String],
) -> Result<PipelineSpec, ConfigError> {
    load_text(text, file, dir, overrides, false)
}

fn load_text(
    text: &str,
    file: &str,
    dir: &Path,
    overrides: &[String],
    typed: bool,
) -> Result<PipelineSpec, ConfigError> {
    let text: Arc<str> = Arc::from(text);
    let index = LineIndex::new(Arc::clone(&text));
    let located = |e: ConfigError| e.in_file(file, Some(&index));
    let mut root = node::parse(&text, &index).map_err(located)?;
    let mut found = Findings::default();
    for o in overrides {
        found.keep(overrides::apply(&mut root, o));
    }
    interpolate::expand_tree(&mut root, &|name| std::env::var(name).ok(), &mut found);
    let stem = match Path::new(file).file_stem() {
        Some(s) if file != STDIN_NAME => s.to_string_lossy().into_owned(),
        _ => "pipeline".to_owned(),
    };
    let base = PathBase {
        file_dir: dir.to_path_buf(),
    };
    let connectors = connector::take(&mut root, &mut found);
    let mut spec = resolve::resolve(&root, &base, &stem, file, &mut found);
    if let Some(spec) = &mut spec {
        spec.scale_out = connector::settle(&connectors, spec, &mut found);
    }
    let mut spec = found.finish(spec).map_err(located)?;
    spec.text = Some(index.clone());
    if typed {
        typecheck::check(&spec).map_err(located)?;
    }
    Ok(spec)
}
