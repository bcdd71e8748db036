//! `millrace tune`: runs a pipeline with every stage autoscaled, stops at the time limit or
//! when the input ends, and prints the worker counts it settled on as `[[stage]]` snippets
//! that load, with its decisions. Shapes are asserted, not timings.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{example, millrace};
use predicates::prelude::*;

/// The `name` → `workers` pairs of tune's snippets.
fn settled(stdout: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut name = None;
    for line in stdout.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_owned());
        } else if let (Some(w), Some(n)) = (line.strip_prefix("workers = "), name.take()) {
            out.insert(n, w.parse().expect("a worker count"));
        }
    }
    out
}

/// Tunes the imbalanced example (W2: spin 1, 1, 4, 1) on an endless input for 2 s.
fn tune_imbalanced(budget: usize) -> String {
    let out = millrace()
        .args([
            "tune",
            &example("imbalanced.toml"),
            "--seconds",
            "2",
            "--no-live",
        ])
        .args(["--set", "source.end=1000000000000"])
        .args(["--set", &format!("pipeline.cpu_budget={budget}")])
        .args(["--set", "pipeline.autoscale_interval=50ms"])
        .assert()
        .success()
        .stdout(predicate::str::contains("stopped at the time limit"))
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).expect("UTF-8")
}

fn assert_c_is_widest(stdout: &str) {
    let counts = settled(stdout);
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        ["a", "b", "c", "d"],
        "{stdout}"
    );
    let c = counts["c"];
    assert!(c >= 2, "c was not widened:\n{stdout}");
    assert!(counts.values().all(|&w| w <= c), "{stdout}");
    assert!(stdout.contains("+1 worker to c: "), "{stdout}");
}

#[test]
fn the_heavy_stage_of_w2_comes_out_widest() {
    // A budget of 3: c needs a second worker by a wide margin
    // (a budget of 2 is the next test).
    assert_c_is_widest(&tune_imbalanced(3));
}

#[test]
fn the_heavy_stage_of_w2_comes_out_widest_at_a_budget_of_2() {
    assert_c_is_widest(&tune_imbalanced(2));
}

#[test]
fn the_snippets_paste_into_the_file() {
    let stdout = tune_imbalanced(3);
    let file = std::fs::read_to_string(common::repo_root().join("examples/imbalanced.toml"))
        .expect("the example");
    // Each snippet names its stage: set that stage's workers as the snippet says.
    let overrides: Vec<String> = settled(&stdout)
        .iter()
        .map(|(name, w)| format!("stage.{name}.workers={w}"))
        .collect();
    let spec = millrace_cli::config::load_str(
        &file,
        "imbalanced.toml",
        &common::repo_root().join("examples"),
        &overrides,
    )
    .expect("the tuned file loads");
    assert!(spec.stages.iter().all(|s| !s.workers.is_auto()));
}

#[test]
fn tune_stops_when_the_input_ends() {
    let started = Instant::now();
    millrace()
        .args([
            "tune",
            &example("imbalanced.toml"),
            "--seconds",
            "60",
            "--no-live",
        ])
        .args(["--set", "source.end=2000"])
        .assert()
        .success()
        .stdout(predicate::str::contains("the input ended"))
        .stdout(predicate::str::contains("2,000 items delivered"))
        .stdout(predicate::str::contains(
            "[[stage]]\nname = \"c\"\nworkers = ",
        ));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn async_stages_are_left_to_their_concurrency() {
    millrace()
        .args(["tune", &example("io.toml"), "--no-live"])
        .args(["--set", "source.end=2000"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "async stages scale by `concurrency`, not workers: sleep",
        ))
        .stdout(predicate::str::contains("[[stage]]").not());
}

#[test]
fn tune_rejects_bad_files_and_times() {
    millrace()
        .args(["tune", "examples/nonexistent.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read the pipeline file"));
    millrace()
        .args(["tune", &example("io.toml"), "--seconds", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--seconds must be a positive number",
        ));
}
