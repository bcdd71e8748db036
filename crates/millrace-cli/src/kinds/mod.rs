//! The built-in stage kinds a pipeline file can name, and their registry.
//!
//! A kind is declared once, as a [`KindSpec`]: its name and role, what it takes and gives,
//! its parameters (see [`crate::config::params`]), an example, an optional cross-parameter
//! check, and how to build it. The loader, `millrace stages` and the pipeline builder all
//! read these declarations.
//!
//! 1. [`sources`]: `range`, `lines` ([`follow`] reads a growing file), `files`;
//! 2. [`transforms`]: `square`, `scale`, `parse`, `grep`, `spin`;
//! 3. [`waiting`]: the async kinds, `sleep` and `http` ([`http`] does the requests);
//! 4. [`bytes`]: `hash`, `compress`, `chunk`;
//! 5. [`sinks`]: `sum`, `count`, `stdout`, `file`, `null`.
//!
//! Each also declares its value types ([`types`]): what it reads and what it gives, for its
//! parameters. The loader checks them between neighbours before anything runs.
//!
//! A kind runs on worker threads or, if it waits rather than computes, as an async stage
//! ([`Exec`]): many items in flight on one runtime, set with `concurrency` rather than
//! `workers`.

pub mod bytes;
pub mod follow;
pub mod http;
pub mod sinks;
pub mod sources;
pub mod transforms;
pub mod types;
pub mod waiting;

use std::fmt;
use std::sync::Arc;

use millrace::Stage;

use crate::config::error::ConfigError;
use crate::config::params::{Default, ParamSpec, ParamType, Params};
use crate::value::{Item, Value};

pub use sinks::{Sink, SinkFault, SinkResult};
pub use sources::SourceLog;

/// Where a kind goes in a pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Makes the items.
    Source,
    /// A stage between source and sink.
    Transform,
    /// Takes the outputs.
    Sink,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Source => "source",
            Role::Transform => "transform",
            Role::Sink => "sink",
        })
    }
}

/// How a kind's stage runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exec {
    /// On worker threads (`workers`: a number, or autoscaled).
    Threads,
    /// As an async stage: `concurrency` items in flight on a tokio runtime. `io`: it needs
    /// a runtime with I/O (the CLI then hands the pipeline one of its own).
    Async {
        /// Whether it does network I/O.
        io: bool,
    },
}

/// A source's values.
pub type SourceIter = Box<dyn Iterator<Item = Value> + Send>;

/// An opened source: its values, and whether reading them can wait on the outside world.
///
/// A source that waits (`lines` from stdin or a pipe: `tail -f app.log | millrace run …`)
/// is read on a thread of the CLI's own and submitted to the engine
/// ([`crate::build`]): the engine then ships each partial batch as soon as the reader has
/// nothing more for it, and a stop request ends the run without waiting for the next line.
/// Other sources are iterated on the engine's source thread, which fills whole batches.
pub struct Opened {
    /// The values, in order.
    pub values: SourceIter,
    /// Whether the next value may be a long time coming (a stream rather than data at rest).
    pub waits: bool,
}

impl Opened {
    /// Values read from data at rest: the source thread iterates them.
    pub fn at_rest(values: SourceIter) -> Opened {
        Opened {
            values,
            waits: false,
        }
    }
}

impl Iterator for Opened {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        self.values.next()
    }
}

/// A check of a kind's parameters taken together (e.g. `min_size <= avg_size`).
#[derive(Clone, Copy)]
pub struct Validate {
    /// The parameters it reads: it runs when each of them is right, whatever the others,
    /// so that a file's mistakes come out together (a bad `url` beside a bad `timeout` used
    /// to come a round later).
    pub reads: &'static [&'static str],
    /// The check.
    pub check: fn(&Params) -> Result<(), ConfigError>,
}

/// How a kind is built, by role.
#[derive(Clone, Copy)]
pub enum Builder {
    /// Opens a source (an error: the input cannot be read).
    Source(fn(&Params, &Arc<SourceLog>) -> Result<Opened, String>),
    /// Makes a stage named `name`; settings are applied by the caller.
    Transform(fn(&str, &Params) -> Stage<Item, Item>),
    /// Opens a sink (an error: the output cannot be created).
    Sink(fn(&Params) -> Result<Box<dyn Sink>, String>),
}

/// The declaration of a kind.
#[derive(Clone, Copy)]
pub struct KindSpec {
    /// Its name in pipeline files.
    pub name: &'static str,
    /// Its role.
    pub role: Role,
    /// What it does, in a line.
    pub summary: &'static str,
    /// What it takes, in words.
    pub takes: &'static str,
    /// What it gives, in words.
    pub gives: &'static str,
    /// What it reads and gives, as types, for its parameters (checked at load time).
    pub types: fn(&Params) -> types::Types,
    /// Its parameters.
    pub params: &'static [ParamSpec],
    /// A TOML example.
    pub example: &'static str,
    /// Checks that involve more than one parameter.
    pub validate: Option<Validate>,
    /// How its stage runs (sources and sinks: [`Exec::Threads`]).
    pub exec: Exec,
    /// How it is built.
    pub build: Builder,
}

impl fmt::Debug for KindSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindSpec")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Every built-in kind, sources first, then transforms, then sinks.
pub fn all() -> impl Iterator<Item = &'static KindSpec> {
    sources::KINDS
        .iter()
        .chain(transforms::KINDS)
        .chain(waiting::KINDS)
        .chain(bytes::KINDS)
        .chain(sinks::KINDS)
}

/// The kind named `name`, of any role.
pub fn find(name: &str) -> Option<&'static KindSpec> {
    all().find(|k| k.name == name)
}

/// The names of the kinds of one role.
pub fn names(role: Role) -> impl Iterator<Item = &'static str> {
    all().filter(move |k| k.role == role).map(|k| k.name)
}

/// The `field` parameter of a kind that reads records' field `default`.
pub(crate) const fn field_param(default: &'static str) -> ParamSpec {
    ParamSpec {
        name: "field",
        ty: ParamType::Text,
        default: Default::Value(default),
        doc: "the field read when the item is a record",
    }
}

/// The `into` parameter of a kind that writes records' field `default`.
pub(crate) const fn into_param(default: &'static str) -> ParamSpec {
    ParamSpec {
        name: "into",
        ty: ParamType::Text,
        default: Default::Value(default),
        doc: "the field written when the item is a record",
    }
}

/// The slot a kind with `field` and `into` parameters works through.
pub(crate) fn slot(params: &Params) -> crate::value::Slot {
    let field = params.text("field").unwrap_or("value");
    let into = params.text("into").unwrap_or(field);
    crate::value::Slot::new(field, into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_unique_and_defaults_are_valid_toml() {
        let mut names: Vec<&str> = all().map(|k| k.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        for kind in all() {
            for p in kind.params {
                if let Default::Value(text) = p.default {
                    assert!(
                        text.parse::<toml_edit::Value>().is_ok(),
                        "{}.{}: {text}",
                        kind.name,
                        p.name
                    );
                }
            }
        }
    }
}
