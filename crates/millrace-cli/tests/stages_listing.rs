//! `millrace stages` lists every built-in kind with its parameters and an example, and
//! every example it shows is a valid pipeline fragment.

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
fn every_kind_example_loads() {
    const SOURCE: &str = "[source]\nkind = \"range\"\nend = 1\n";
    const SINK: &str = "\n[sink]\nkind = \"null\"\n";
    for kind in kinds::all() {
        let text = match kind.role {
            Role::Source => format!("{}\n{SINK}", kind.example),
            Role::Transform => format!("{SOURCE}\n{}\n{SINK}", kind.example),
            Role::Sink => format!("{SOURCE}\n{}\n", kind.example),
        };
        if let Err(e) = millrace_cli::config::load_str(&text, "example.toml", Path::new("."), &[]) {
            panic!("the example of `{}` does not load: {e}\n{text}", kind.name);
        }
    }
}
