//! `millrace check FILE`: validate a pipeline file without running it, and print the
//! resolved pipeline as TOML with every default written out (a file that loads to the
//! same pipeline).

use std::fmt::Write as _;
use std::path::Path;

use crate::cli::CheckArgs;
use crate::config::params::Params;
use crate::config::{self, PipelineSpec, Policy};

use super::{fail, EXIT_CONFIG, EXIT_OK};

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

fn dead_letter(out: &mut String, path: Option<&Path>) {
    if let Some(p) = path {
        let _ = writeln!(out, "dead_letter = {}", quote(&p.display().to_string()));
    }
}

/// The resolved pipeline as TOML.
pub fn to_toml(spec: &PipelineSpec) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "[pipeline]\nname = {}", quote(&spec.name));
    let _ = writeln!(out, "capacity = {}\nbatch = {}", spec.capacity, spec.batch);
    if let Some(r) = &spec.report {
        let _ = writeln!(out, "report = {}", quote(&r.display().to_string()));
    }
    let _ = writeln!(out, "\n[source]\nkind = {}", quote(spec.source.kind.name));
    params(&mut out, &spec.source.params);
    for s in &spec.stages {
        let _ = writeln!(
            out,
            "\n[[stage]]\nname = {}\nkind = {}\nworkers = {}\ncapacity = {}\nbatch = {}\nordered = {}",
            quote(&s.name),
            quote(s.part.kind.name),
            s.workers,
            s.capacity,
            s.batch,
            s.ordered
        );
        policy(&mut out, s.policy);
        dead_letter(&mut out, s.dead_letter.as_deref());
        params(&mut out, &s.part.params);
    }
    let _ = writeln!(out, "\n[sink]\nkind = {}", quote(spec.sink.part.kind.name));
    policy(&mut out, spec.sink.policy);
    dead_letter(&mut out, spec.sink.dead_letter.as_deref());
    params(&mut out, &spec.sink.part.params);
    out
}

/// Runs `millrace check`; returns the exit code.
pub fn run(args: &CheckArgs) -> u8 {
    match config::load(&args.file, &args.set) {
        Ok(spec) => {
            print!(
                "# {}: valid; the resolved pipeline, every default written out:\n{}",
                spec.file,
                to_toml(&spec)
            );
            for (name, value) in spec.source.params.iter() {
                if let config::params::ParamValue::Path(_, p) = value {
                    if p.as_os_str() != "-" && !p.exists() {
                        eprintln!(
                            "millrace: warning: source `{name}` {} does not exist (yet)",
                            p.display()
                        );
                    }
                }
            }
            EXIT_OK
        }
        Err(e) => fail(EXIT_CONFIG, &format!("error: {e}")),
    }
}
