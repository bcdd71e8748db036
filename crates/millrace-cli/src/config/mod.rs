//! Pipeline files: loading, checking and resolving them into a [`PipelineSpec`].
//!
//! Loading goes in four steps, each in its own module:
//!
//! 1. [`node`]: the TOML text is parsed into a tree whose keys and values know their line
//!    and column;
//! 2. [`overrides`]: `--set KEY=VALUE` options edit the tree;
//! 3. [`resolve`]: every table is read against what it may hold ([`schema`] for the
//!    pipeline's own settings, [`scaling`] for `workers` and the autoscaling, fusion and
//!    wedge settings, each kind's [`params`] for its parameters, [`duration`] for
//!    durations); unknown keys, wrong types and values out of range are errors;
//! 4. [`typecheck`]: each stage (and the sink) must take the values the part before it
//!    emits;
//! 5. the result is a [`PipelineSpec`] with every default applied.
//!
//! Errors are [`ConfigError`]s ([`error`]), located and with a hint where one helps. No
//! input makes the loader panic; `tests/config_fuzz.rs` feeds it arbitrary text and
//! mutations of the examples to keep it so.

pub mod duration;
pub mod error;
pub mod node;
pub mod overrides;
pub mod params;
pub mod resolve;
pub mod scaling;
pub mod schema;
pub mod typecheck;

use std::path::Path;
use std::sync::Arc;

pub use error::{ConfigError, Loc};
pub use schema::{PipelineSpec, Policy, Scaling, SinkSpec, StageSpec, Wedge, Workers};

use error::LineIndex;
use params::PathBase;

/// Reads, checks and resolves the pipeline file at `path`, with `--set` overrides applied.
///
/// # Errors
///
/// A [`ConfigError`] if the file cannot be read or is not a valid pipeline.
pub fn load(path: &Path, overrides: &[String]) -> Result<PipelineSpec, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(Loc::Whole, format!("cannot read the pipeline file: {e}"))
            .in_file(&shown, None)
    })?;
    let dir = path.parent().unwrap_or(Path::new(""));
    load_str(&text, &shown, dir, overrides)
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
    for o in overrides {
        overrides::apply(&mut root, o).map_err(located)?;
    }
    let stem = Path::new(file).file_stem().map_or_else(
        || "pipeline".to_owned(),
        |s| s.to_string_lossy().into_owned(),
    );
    let base = PathBase {
        file_dir: dir.to_path_buf(),
    };
    let spec = resolve::resolve(&root, &base, &stem, file).map_err(located)?;
    if typed {
        typecheck::check(&spec).map_err(located)?;
    }
    Ok(spec)
}
