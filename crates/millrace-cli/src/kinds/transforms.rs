//! Transform kinds on numbers and text: `square`, `scale`, `parse`, `grep`, and the
//! stand-in for CPU work, `spin` (its counterpart for waiting, `sleep`, is async: see
//! [`super::waiting`]).
//!
//! Each reads its input through a [`Slot`](crate::value::Slot): the item itself, or the
//! field `field` of a record, and writes its result in place (field `into` of a record).
//! A value of the wrong type fails the item with a [`Fault`] naming the expected and the
//! actual type; the engine adds the stage and the item's id. All are fallible stages
//! (`Stage::try_map` / `try_flat_map`), so they can retry under a retry policy.

use std::sync::Arc;

use millrace::Stage;
use millrace_workloads::spin;

use super::types::{Types, NUMBER, TEXT};
use super::{field_param, into_param, slot, Builder, Exec, KindSpec, Role};
use crate::config::params::{Default, ParamSpec, ParamType, Params};
use crate::value::{Fault, Item, Ty, Value};

/// The transform kinds on numbers and text.
pub static KINDS: &[KindSpec] = &[
    KindSpec {
        name: "square",
        role: Role::Transform,
        summary: "x → x² (wrapping)",
        takes: "number",
        gives: "number",
        types: |p| Types::through(&slot(p), NUMBER, Ty::Number),
        params: &[field_param("\"value\""), into_param("\"value\"")],
        example: "[[stage]]\nkind = \"square\"\nworkers = 2",
        validate: None,
        exec: Exec::Threads,
        build: Builder::Transform(square),
    },
    KindSpec {
        name: "scale",
        role: Role::Transform,
        summary: "x → x · factor (wrapping)",
        takes: "number",
        gives: "number",
        types: |p| Types::through(&slot(p), NUMBER, Ty::Number),
        params: &[
            ParamSpec {
                name: "factor",
                ty: ParamType::Int {
                    min: 0,
                    max: i64::MAX,
                },
                default: Default::Required,
                doc: "the multiplier",
            },
            field_param("\"value\""),
            into_param("\"value\""),
        ],
        example: "[[stage]]\nkind = \"scale\"\nfactor = 3",
        validate: None,
        exec: Exec::Threads,
        build: Builder::Transform(scale),
    },
    KindSpec {
        name: "parse",
        role: Role::Transform,
        summary: "text → number; a bad line fails with its line number",
        takes: "text",
        gives: "number",
        types: |p| Types::through(&slot(p), TEXT, Ty::Number),
        params: &[field_param("\"text\""), into_param("\"value\"")],
        example: "[[stage]]\nkind = \"parse\"\non_error = \"skip\"",
        validate: None,
        exec: Exec::Threads,
        build: Builder::Transform(parse),
    },
    KindSpec {
        name: "grep",
        role: Role::Transform,
        summary: "keeps the items whose text matches a regex",
        takes: "text",
        gives: "the same item (or nothing: filtered)",
        types: |p| Types::passing(TEXT, Some(slot(p).field())),
        params: &[
            ParamSpec {
                name: "pattern",
                ty: ParamType::Regex,
                default: Default::Required,
                doc: "the regex (Rust syntax) to search for",
            },
            ParamSpec {
                name: "invert",
                ty: ParamType::Bool,
                default: Default::Value("false"),
                doc: "keep the items that do not match instead",
            },
            field_param("\"text\""),
        ],
        example: "[[stage]]\nkind = \"grep\"\npattern = 'ERROR|WARN'",
        validate: None,
        exec: Exec::Threads,
        build: Builder::Transform(grep),
    },
    KindSpec {
        name: "spin",
        role: Role::Transform,
        summary: "N units of CPU work on x (the benchmark workloads' spin)",
        takes: "number",
        gives: "number",
        types: |p| Types::through(&slot(p), NUMBER, Ty::Number),
        params: &[
            ParamSpec {
                name: "units",
                ty: ParamType::Int {
                    min: 0,
                    max: 1_000_000,
                },
                default: Default::Required,
                doc: "units of work (one unit is 200 rounds of an LCG and a shift)",
            },
            field_param("\"value\""),
            into_param("\"value\""),
        ],
        example: "[[stage]]\nkind = \"spin\"\nunits = 4\nworkers = 4",
        validate: None,
        exec: Exec::Threads,
        build: Builder::Transform(spin_stage),
    },
];

fn square(name: &str, params: &Params) -> Stage<Item, Item> {
    let slot = slot(params);
    Stage::try_map(name, move |item: &Item| {
        let x = slot.number(&item.value)?;
        Ok::<_, Fault>(item.with(slot.write(&item.value, Value::Number(x.wrapping_mul(x)))))
    })
}

fn scale(name: &str, params: &Params) -> Stage<Item, Item> {
    let slot = slot(params);
    let factor = params.uint("factor");
    Stage::try_map(name, move |item: &Item| {
        let x = slot.number(&item.value)?;
        Ok::<_, Fault>(item.with(slot.write(&item.value, Value::Number(x.wrapping_mul(factor)))))
    })
}

fn parse(name: &str, params: &Params) -> Stage<Item, Item> {
    let slot = slot(params);
    Stage::try_map(name, move |item: &Item| {
        let text = slot.text(&item.value)?;
        match text.trim().parse::<u64>() {
            Ok(n) => Ok(item.with(slot.write(&item.value, Value::Number(n)))),
            Err(e) => {
                let line = match &item.value {
                    Value::Record(r) => match r.get("line") {
                        Some(Value::Number(n)) => format!("line {n}: "),
                        _ => String::new(),
                    },
                    _ => String::new(),
                };
                Err(Fault::Other(format!(
                    "{line}cannot parse {} as a number: {e}",
                    snippet(text)
                )))
            }
        }
    })
}

fn grep(name: &str, params: &Params) -> Stage<Item, Item> {
    let slot = slot(params);
    let invert = params.bool("invert");
    // The pattern was checked when the file was loaded; an empty regex matches everything.
    let re = params
        .text("pattern")
        .and_then(|p| regex::Regex::new(p).ok())
        .map(Arc::new);
    Stage::try_flat_map(name, move |item: &Item| {
        let text = slot.text(&item.value)?;
        let hit = re.as_ref().map_or(true, |re| re.is_match(text));
        Ok::<_, Fault>((hit != invert).then(|| item.clone()))
    })
}

fn spin_stage(name: &str, params: &Params) -> Stage<Item, Item> {
    let slot = slot(params);
    let units = u32::try_from(params.uint("units")).unwrap_or(u32::MAX / 200);
    Stage::try_map(name, move |item: &Item| {
        let x = slot.number(&item.value)?;
        Ok::<_, Fault>(item.with(slot.write(&item.value, Value::Number(spin(units, x)))))
    })
}

/// How many characters of an item's text an error message quotes.
pub const SNIPPET_CHARS: usize = 80;

/// `text` quoted for an error message: whole if short, else its first [`SNIPPET_CHARS`]
/// characters and how long it was (`"aaaa…" (1048576 bytes)`).
pub fn snippet(text: &str) -> String {
    match text.char_indices().nth(SNIPPET_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &text[..cut], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_matches_the_reference_checksum() {
        // W3 `io` at N = 20,000: the sum of spin(2, x) (its sleep stage does not change x).
        let sum = (0..20_000u64).fold(0u64, |s, x| s.wrapping_add(spin(2, x)));
        assert_eq!(sum, 798_309_582_560_318_661);
        assert_eq!(spin(0, 42), 42);
    }
}
