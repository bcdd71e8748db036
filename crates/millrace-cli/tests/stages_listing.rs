//! `millrace stages` lists every built-in kind with its types, parameters and an example,
//! and every example it shows is a valid pipeline fragment (after a source it can take).

mod common;

use std::path::Path;

use common::millrace;
use millrace_cli::kinds::{self, Role};
use predicates::prelude::*;

#[test]
fn listing_names_every_kind_with_parameters_and_an_example() {
    let mut assert = millrace().arg("stages").assert().success();
    for kind in kinds::all() {
        assert = assert.stdout(predicate::str::contains(format!(
            "{} ({})",
            kind.name, kind.role
        )));
    }
    for word in [
        "parameters:",
        "example:",
        "required",
        "default",
        "EVERY STAGE",
    ] {
        assert = assert.stdout(predicate::str::contains(word));
    }
    let expected = [
        "range", "lines", "files", "square", "scale", "parse", "grep", "spin", "sleep", "http",
        "hash", "compress", "chunk", "sum", "count", "stdout", "file", "null",
    ];
    let names: Vec<&str> = kinds::all().map(|k| k.name).collect();
    assert_eq!(names, expected);
}

#[test]
fn one_kind_in_full() {
    millrace()
        .args(["stages", "chunk"])
        .assert()
        .success()
        .stdout(predicate::str::contains("avg_size"))
        .stdout(predicate::str::contains("kind = \"chunk\""));
}

#[test]
fn listing_shows_each_kinds_types() {
    let out = millrace()
        .arg("stages")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    for kind in kinds::all() {
        let header = format!("{} ({}): ", kind.name, kind.role);
        let at = out.find(&header).unwrap_or_else(|| panic!("no {header}"));
        let next = out[at..].lines().nth(1).unwrap_or("");
        assert!(next.starts_with("  types: "), "{}: {next:?}", kind.name);
        assert!(next.contains(" → "), "{}: {next:?}", kind.name);
    }
    for line in [
        "  types: nothing → record {line: number, text: text}",
        "  types: number → number (records: `value` → `value`)",
        "  types: text → number (records: `text` → `value`)",
        "  types: text → the same item (records: `text`)",
        "  types: any → the same item",
        "  types: bytes | text → text (records: `data` → `hash`)",
        "  types: number | text → text (records: `value` → `body`)",
        "  types: number → nothing (records: `value`)",
        "  types: any → nothing",
    ] {
        assert!(
            out.contains(&format!("{line}\n")),
            "missing {line:?} in:\n{out}"
        );
    }
    millrace()
        .args(["stages", "chunk"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "  types: bytes | text → record {…, offset: number, length: number, data: bytes} per chunk (records: `data`)\n",
        ));
}

/// Whatever the kind takes: a source, and a source with a `chunk` stage (for sinks that
/// total chunk fields).
const UPSTREAMS: &[&str] = &[
    "[source]\nkind = \"range\"\nend = 1\n",
    "[source]\nkind = \"lines\"\npath = \"in.txt\"\n",
    "[source]\nkind = \"files\"\ndir = \".\"\n",
    "[source]\nkind = \"files\"\ndir = \".\"\n[[stage]]\nkind = \"chunk\"\n",
];

#[test]
fn every_kind_example_loads() {
    const SINK: &str = "\n[sink]\nkind = \"null\"\n";
    for kind in kinds::all() {
        let texts: Vec<String> = match kind.role {
            Role::Source => vec![format!("{}\n{SINK}", kind.example)],
            Role::Transform => UPSTREAMS
                .iter()
                .map(|up| format!("{up}\n{}\n{SINK}", kind.example))
                .collect(),
            Role::Sink => UPSTREAMS
                .iter()
                .map(|up| format!("{up}\n{}\n", kind.example))
                .collect(),
        };
        let errors: Vec<String> = texts
            .iter()
            .map(|text| millrace_cli::config::load_str(text, "example.toml", Path::new("."), &[]))
            .filter_map(Result::err)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.len() < texts.len(),
            "the example of `{}` loads after none of the sources: {errors:#?}",
            kind.name
        );
    }
}
