//! `millrace stages [KIND]`: the built-in kinds, with their value types (input → output,
//! for their default parameters), parameters, defaults and an example each, straight from
//! their declarations.

use std::fmt::Write as _;

use crate::cli::StagesArgs;
use crate::config::error::did_you_mean;
use crate::config::params::Default;
use crate::config::resolve::defaults;
use crate::kinds::{self, Exec, KindSpec, Role};

use super::{fail, print_or_closed, EXIT_CONFIG, EXIT_OK};

/// One kind, in full.
pub fn describe(kind: &KindSpec) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} ({}): {}", kind.name, kind.role, kind.summary);
    let _ = writeln!(out, "  types: {}", (kind.types)(&defaults(kind)));
    let _ = writeln!(out, "  takes: {}", kind.takes);
    let _ = writeln!(out, "  gives: {}", kind.gives);
    if let Exec::Async { .. } = kind.exec {
        let _ = writeln!(
            out,
            "  runs: async: `concurrency` items in flight on a few threads (takes no `workers`)"
        );
    }
    if kind.params.is_empty() {
        let _ = writeln!(out, "  parameters: none");
    } else {
        let _ = writeln!(out, "  parameters:");
        let width = kind.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in kind.params {
            let default = match p.default {
                Default::Required => "required".to_owned(),
                Default::Optional => "optional".to_owned(),
                Default::Value(v) => format!("default {v}"),
            };
            let _ = writeln!(
                out,
                "    {:<width$}  {} ({default}): {}",
                p.name, p.ty, p.doc
            );
        }
    }
    let _ = writeln!(out, "  example:");
    for line in kind.example.lines() {
        let _ = writeln!(out, "    {line}");
    }
    out
}

/// The listing of every kind, by role, with the settings every stage takes.
pub fn listing() -> String {
    let mut out = String::new();
    for (role, title) in [
        (Role::Source, "SOURCES ([source])"),
        (
            Role::Transform,
            "TRANSFORMS ([[stage]], any number, in order)",
        ),
        (Role::Sink, "SINKS ([sink])"),
    ] {
        let _ = writeln!(out, "{title}\n");
        for kind in kinds::all().filter(|k| k.role == role) {
            let _ = writeln!(out, "{}", describe(kind));
        }
    }
    out.push_str(
        "EVERY STAGE also takes: name, workers (a number, \"auto\" or { min = 1, max = 4 }; not async\n\
         kinds), capacity, batch, ordered, on_error (skip | retry | stop), retry_attempts,\n\
         retry_backoff_ms, retry_then (skip | stop), dead_letter (a JSON-lines file); [pipeline] sets\n\
         their defaults, and name, report, autoscale (true: workers = \"auto\" for every stage without\n\
         workers), cpu_budget, autoscale_interval (e.g. \"200ms\"), wedge_timeout (e.g. \"5s\"; no wedge\n\
         watch unless set) and wedge_policy (report | fail). A record's field is read with `field`\n\
         and the result written to `into` where a kind has them. `types` are for the defaults;\n\
         each stage must take what the part before it emits, which `millrace check` verifies.\n",
    );
    out
}

/// Runs `millrace stages`; returns the exit code.
pub fn run(args: &StagesArgs) -> u8 {
    match &args.kind {
        None => print_or_closed(&listing(), EXIT_OK),
        Some(name) => match kinds::find(name) {
            Some(kind) => print_or_closed(&describe(kind), EXIT_OK),
            None => {
                let hint = did_you_mean(name, kinds::all().map(|k| k.name))
                    .unwrap_or_else(|| "`millrace stages` lists them all".to_owned());
                fail(
                    EXIT_CONFIG,
                    &format!("error: no kind is named `{name}`; {hint}"),
                )
            }
        },
    }
}
