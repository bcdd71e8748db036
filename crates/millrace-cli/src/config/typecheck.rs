//! The value types between stages, checked when the file is loaded.
//!
//! Each kind declares what it reads and what it gives for its parameters
//! ([`crate::kinds::types`]). [`infer`] walks the pipeline from the source through every
//! stage to the sink, working out the type of the items each part emits (records with
//! their fields), and stops at the first part that cannot take what comes before it: a
//! [`ConfigError`] at that part's `kind` (or at its `field` / `fields`, when the field read
//! is the trouble and was written out), naming both parts and both types, with a hint
//! where there is one:
//!
//! ```text
//! error: p.toml:9:8: stage `g` (kind `grep`) takes text, but stage `sq` (kind `square`) before it emits numbers
//!   |
//! 9 | kind = "grep"
//!   |        ^^^^^^
//!   |
//!   = help: no kind turns numbers into text
//! ```
//!
//! Without the check such a pipeline would start and fail every item. The kinds' own
//! checks on each item stay, as a safety net.

use super::error::{did_you_mean, ConfigError, Loc};
use super::resolve::defaults;
use super::schema::{Part, PipelineSpec, StageSpec};
use crate::kinds::types::{accepts_in_words, Input, Mismatch, Types};
use crate::kinds::{self, Exec, Role};
use crate::value::Ty;

/// A part of the pipeline, as messages name it.
#[derive(Clone, Copy)]
enum Who<'a> {
    Source(&'a Part),
    Stage(&'a StageSpec),
    Sink(&'a Part),
}

impl Who<'_> {
    /// `source `range``, `stage `g` (kind `grep`)`, `stage `grep``, `sink `sum``.
    fn name(self) -> String {
        match self {
            Who::Source(p) => format!("source `{}`", p.kind.name),
            Who::Stage(s) if s.name == s.part.kind.name => format!("stage `{}`", s.name),
            Who::Stage(s) => format!("stage `{}` (kind `{}`)", s.name, s.part.kind.name),
            Who::Sink(p) => format!("sink `{}`", p.kind.name),
        }
    }

    /// As the part before another: `source `range``, `stage `sq` (kind `square`) before it`.
    fn before(self) -> String {
        match self {
            Who::Source(_) => self.name(),
            _ => format!("{} before it", self.name()),
        }
    }
}

impl<'a> Who<'a> {
    /// Its kind and parameters.
    fn spec(self) -> &'a Part {
        match self {
            Who::Source(p) | Who::Sink(p) => p,
            Who::Stage(s) => &s.part,
        }
    }
}

/// The type of the items that leave the source and each stage, in order.
///
/// # Errors
///
/// A [`ConfigError`] at the first stage (or the sink) that cannot take the items before it.
pub fn infer(spec: &PipelineSpec) -> Result<Vec<Ty>, ConfigError> {
    let source = Who::Source(&spec.source);
    let mut ty = types_of(&spec.source)
        .apply(&Ty::Any)
        .map_err(|m| mismatch(source, source, &Ty::Any, &m))?;
    let mut emitted = vec![ty.clone()];
    let mut before = source;
    for stage in &spec.stages {
        let who = Who::Stage(stage);
        ty = types_of(&stage.part)
            .apply(&ty)
            .map_err(|m| mismatch(who, before, &ty, &m))?;
        emitted.push(ty.clone());
        before = who;
    }
    let sink = Who::Sink(&spec.sink.part);
    types_of(&spec.sink.part)
        .check(&ty)
        .map_err(|m| mismatch(sink, before, &ty, &m))?;
    Ok(emitted)
}

/// Checks that every part takes what the part before it emits.
///
/// # Errors
///
/// As [`infer`].
pub fn check(spec: &PipelineSpec) -> Result<(), ConfigError> {
    infer(spec).map(|_| ())
}

fn types_of(part: &Part) -> Types {
    (part.kind.types)(&part.params)
}

/// The error for `who`, which cannot take the items of type `input` that `before` emits.
fn mismatch<'a>(who: Who<'a>, before: Who<'a>, input: &Ty, m: &Mismatch) -> ConfigError {
    let row = match who {
        Who::Source(_) => "source",
        Who::Stage(s) => &s.name,
        Who::Sink(_) => "sink",
    };
    mismatch_of(who, before, input, m).in_part(row)
}

fn mismatch_of<'a>(who: Who<'a>, before: Who<'a>, input: &Ty, m: &Mismatch) -> ConfigError {
    let part = who.spec();
    let types = types_of(part);
    let takes = accepts_in_words(&types.input);
    let (name, from) = (who.name(), before.before());
    let field_names = || match input {
        Ty::Record(fields) if !fields.is_empty() => {
            let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
            format!("their fields: {}", names.join(", "))
        }
        _ => "they have no fields".to_owned(),
    };
    let (message, param) = match m {
        Mismatch::Wrong { found } => (
            format!("{name} takes {takes}, but {from} emits {}", found.plural()),
            None,
        ),
        Mismatch::WrongField { field, found } => (
            format!(
                "{name} takes {takes} in field `{field}`, but {from} emits records whose `{field}` holds {}",
                found.singular()
            ),
            Some("field"),
        ),
        Mismatch::MissingField { field } => {
            let (takes, param) = match &types.input {
                Input::Fields(_) => (format!("takes {takes}"), "fields"),
                Input::Value { accepts, .. } if accepts.contains(&Ty::Any) => {
                    (format!("reads field `{field}`"), "field")
                }
                _ => (format!("takes {takes} in field `{field}`"), "field"),
            };
            (
                format!(
                    "{name} {takes}, but {from} emits records with no `{field}` ({})",
                    field_names()
                ),
                Some(param),
            )
        }
        Mismatch::NotRecord { found } => (
            format!("{name} takes {takes}, but {from} emits {}", found.plural()),
            Some("fields"),
        ),
    };
    // Point at the field read when it is the trouble and was written out; else at `kind`.
    let loc = param
        .map(|p| part.params.loc(p))
        .filter(|l| *l != Loc::Whole)
        .unwrap_or_else(|| part.kind_loc.clone());
    ConfigError::new(loc, message).maybe_help(help(who, &types, input, m))
}

/// What might fix it: a misspelt field, another field of the right type, a converting kind
/// before it, or (for a sink) the sinks that take such items.
fn help(who: Who<'_>, types: &Types, input: &Ty, m: &Mismatch) -> Option<String> {
    let accepts = match &types.input {
        Input::Value { accepts, .. } => *accepts,
        _ => &[],
    };
    let mut hints = Vec::new();
    match m {
        Mismatch::Wrong { found } | Mismatch::WrongField { found, .. } => {
            if let Some(c) = converter(found, accepts) {
                hints.push(c);
            }
        }
        Mismatch::MissingField { field } => {
            if let Ty::Record(fields) = input {
                hints.extend(did_you_mean(field, fields.iter().map(|(n, _)| n.as_str())));
            }
            if let Input::Value { .. } = types.input {
                hints.extend(converter_here(input, types));
            }
        }
        Mismatch::NotRecord { found } => {
            hints.push(format!(
                "{} have no fields: leave out `fields`",
                found.plural()
            ));
        }
    }
    // Another field that would do, unless any would (the message lists them) or the one
    // read looks misspelt.
    let misspelt = hints.iter().any(|h| h.starts_with("did you mean"));
    let reads_a_field = who.spec().kind.params.iter().any(|p| p.name == "field");
    let picky = !accepts.is_empty() && !accepts.contains(&Ty::Any);
    if let (Ty::Record(fields), true, false) = (input, reads_a_field && picky, misspelt) {
        let read = match m {
            Mismatch::WrongField { field, .. } | Mismatch::MissingField { field } => Some(field),
            _ => None,
        };
        // Every field that would do: the first alone was not always the one meant (`lines`
        // into `http` offered the line number, not the text).
        let others: Vec<_> = fields
            .iter()
            .filter(|(n, t)| Some(n) != read && *t != Ty::Any && t.is_one_of(accepts))
            .collect();
        match others.as_slice() {
            [] => {}
            [(name, ty)] => hints.push(format!(
                "to read the records' field `{name}` ({}), set field = \"{name}\"",
                ty.singular()
            )),
            several => hints.push(format!(
                "to read one of the records' fields, set {}",
                several
                    .iter()
                    .map(|(name, ty)| format!("field = \"{name}\" ({})", ty.singular()))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )),
        }
    }
    if hints.is_empty() {
        if let Mismatch::Wrong { found } | Mismatch::WrongField { found, .. } = m {
            if !matches!(found, Ty::Record(_) | Ty::Any) {
                hints.push(match who {
                    Who::Sink(_) => {
                        let sinks: Vec<&str> = kinds::all()
                            .filter(|k| k.role == Role::Sink)
                            .filter(|k| (k.types)(&defaults(k)).check(found).is_ok())
                            .map(|k| k.name)
                            .collect();
                        format!(
                            "the sinks that take {}: {}",
                            found.plural(),
                            sinks.join(", ")
                        )
                    }
                    _ => format!(
                        "no kind turns {} into {}",
                        found.plural(),
                        accepts_in_words(&types.input)
                    ),
                });
            }
        }
    }
    (!hints.is_empty()).then(|| hints.join("; or, "))
}

/// The kinds that convert one type to another: transforms on threads that take exactly
/// one type and give another (`parse`: text → number), with their default parameters.
fn converters() -> impl Iterator<Item = (&'static kinds::KindSpec, Types)> {
    kinds::all()
        .filter(|k| k.role == Role::Transform && k.exec == Exec::Threads)
        .map(|k| (k, (k.types)(&defaults(k))))
        .filter(|(_, t)| match (t.takes_only(), t.gives_value()) {
            (Some(from), Some(to)) => from != to,
            _ => false,
        })
}

/// `a `parse` stage before it turns text into numbers`, for a converter from `found` to one
/// of `accepts`.
fn converter(found: &Ty, accepts: &[Ty]) -> Option<String> {
    converters()
        .find(|(_, t)| {
            t.takes_only() == Some(found) && t.gives_value().is_some_and(|to| accepts.contains(to))
        })
        .map(|(k, t)| phrase(k, &t))
}

/// The same, for a converter that, with its defaults, makes `input` something `types` takes.
fn converter_here(input: &Ty, types: &Types) -> Option<String> {
    converters()
        .find(|(_, t)| t.apply(input).is_ok_and(|out| types.check(&out).is_ok()))
        .map(|(k, t)| phrase(k, &t))
}

fn phrase(kind: &kinds::KindSpec, t: &Types) -> String {
    let (from, to) = (
        t.takes_only().map_or_else(String::new, Ty::plural),
        t.gives_value().map_or_else(String::new, Ty::plural),
    );
    format!("a `{}` stage before it turns {from} into {to}", kind.name)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn record_fields_are_followed_through_the_stages() {
        let spec = crate::config::load_str(
            "[source]\nkind = \"files\"\ndir = \".\"\n[[stage]]\nkind = \"chunk\"\n\
             [[stage]]\nkind = \"hash\"\n[[stage]]\nkind = \"compress\"\n\
             [sink]\nkind = \"count\"\nfields = [\"length\", \"data\"]\n",
            "p.toml",
            Path::new("."),
            &[],
        )
        .unwrap();
        let types: Vec<String> = infer(&spec)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        let chunks = "path: text, size: number, data: bytes, offset: number, length: number";
        assert_eq!(
            types,
            [
                "record {path: text, size: number, data: bytes}".to_owned(),
                format!("record {{{chunks}}}"),
                format!("record {{{chunks}, hash: text}}"),
                format!("record {{{chunks}, hash: text}}"),
            ]
        );
    }

    #[test]
    fn the_first_mismatch_is_reported() {
        let err = crate::config::load_str(
            "[source]\nkind = \"range\"\nend = 1\n[[stage]]\nkind = \"parse\"\n\
             [[stage]]\nkind = \"grep\"\npattern = \"x\"\n[sink]\nkind = \"sum\"\n",
            "p.toml",
            Path::new("."),
            &[],
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "stage `parse` takes text, but source `range` emits numbers"
        );
        assert_eq!(err.hint(), Some("no kind turns numbers into text"));
        assert!(matches!(
            err.loc(),
            Loc::File {
                line: 5,
                col: 8,
                ..
            }
        ));
    }
}
