//! Every pipeline file in `examples/` runs on small inputs and gives the right output (a
//! new example without a test here fails [`every_example_has_a_test`]); the built-in seed
//! pipeline (the README's quick start) gives its reference checksum.

mod common;

use std::fs;

use assert_cmd::assert::Assert;
use common::{example, millrace, seed_sum};
use millrace_workloads::spin;
use predicates::prelude::*;

#[test]
fn no_arguments_runs_the_seed_pipeline_with_its_report() {
    millrace()
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "seed pipeline: sum of 3·x² for x < 10000000 = 3875670019689212736",
        ))
        .stderr(predicate::str::contains("bottleneck:"))
        .stderr(predicate::str::contains("square"));
}

#[test]
fn run_without_a_file_runs_the_seed_pipeline() {
    millrace()
        .args(["run", "--n", "1000", "--quiet"])
        .assert()
        .success()
        .stdout(format!(
            "seed pipeline: sum of 3·x² for x < 1000 = {} (stage `wrap` received each 3·x² back from stage `scale`)\n",
            seed_sum(1000)
        ))
        .stderr("");
}

#[test]
fn seed_example_sums_three_squares() {
    millrace()
        .args(["run", &example("seed.toml"), "--set", "source.end=200000"])
        .assert()
        .success()
        .stdout(format!("sum: {}\n", seed_sum(200_000)))
        .stderr(predicate::str::contains("completed"));
}

#[test]
fn log_example_counts_error_lines() {
    let log = fs::read_to_string(common::repo_root().join("examples/data/app.log")).unwrap();
    let re = regex::Regex::new(r"\b(ERROR|FATAL)\b").unwrap();
    let expected = log.lines().filter(|l| re.is_match(l)).count();
    assert_eq!(expected, 46);
    millrace()
        .args(["run", &example("logs.toml"), "--quiet"])
        .assert()
        .success()
        .stdout(format!("count: {expected}\n"));
}

#[test]
fn log_example_prints_matching_lines_in_order_through_stdout() {
    let out = millrace()
        .args(["run", &example("logs.toml"), "--quiet"])
        .args(["--set", "sink.kind=stdout", "--set", "sink.field=text"])
        .args(["--set", "stage.grep.ordered=true"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 46);
    assert!(lines
        .iter()
        .all(|l| l.contains("ERROR") || l.contains("FATAL")));
    let mut sorted = lines.clone();
    sorted.sort_unstable(); // lines start with timestamps: input order is sorted order
    assert_eq!(lines, sorted);
}

#[test]
fn file_example_chunks_hashes_and_compresses_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut total = 0u64;
    for (i, size) in [0usize, 100, 5_000, 70_000, 200_000].iter().enumerate() {
        // Compressible but not trivial content.
        let data: Vec<u8> = (0..*size)
            .map(|j| b"millrace \n"[(j * 7 + i) % 10])
            .collect();
        total += data.len() as u64;
        let sub = dir.path().join(format!("d{}", i % 2));
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join(format!("f{i}.txt")), data).unwrap();
    }
    let report = dir.path().join("report.json");
    let out = millrace()
        .args(["run", &example("files.toml"), "--quiet"])
        .arg("--set")
        .arg(format!("source.dir={}", dir.path().display()))
        .arg("--report")
        .arg(&report)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{name}` in {text}"))
    };
    // Every byte of every file is in exactly one chunk; compression shrinks them.
    assert_eq!(field("length"), total);
    assert!(field("data") < total / 2, "{text}");
    // The empty file makes no chunk (filtered); the others at least one each.
    assert!(field("count") >= 4);
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["totals"]["items_in"], 5);
    assert_eq!(json["totals"]["filtered"], 1);
}

#[test]
fn file_example_walks_the_repository_as_written() {
    millrace()
        .args(["run", &example("files.toml"), "--quiet"])
        .assert()
        .success()
        .stdout(
            predicate::str::is_match(r"^count: [1-9]\d*\nlength: [1-9]\d*\ndata: [1-9]\d*\n$")
                .unwrap(),
        );
}

/// The sum over x < n of x through spin stages of these units, in order.
fn spin_chain_sum(n: u64, units: [u32; 4]) -> u64 {
    (0..n).fold(0u64, |s, x| {
        s.wrapping_add(units.iter().fold(x, |v, &u| spin(u, v)))
    })
}

/// Runs example `name` with each of `sets` as `--set`, checks that it succeeds printing
/// `stdout`, and returns the assertion (for more checks) with the JSON report it wrote.
fn run_with_report(name: &str, sets: &[String], stdout: &str) -> (Assert, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut cmd = millrace();
    cmd.args(["run", &example(name)]);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let assert = cmd
        .arg("--report")
        .arg(&report)
        .assert()
        .success()
        .stdout(stdout.to_owned());
    let json = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    (assert, json)
}

#[test]
fn imbalanced_example_names_the_heavy_stage_as_bottleneck() {
    let n = 20_000u64;
    let sum = spin_chain_sum(n, [1, 1, 4, 1]);
    let (assert, json) = run_with_report(
        "imbalanced.toml",
        &[format!("source.end={n}")],
        &format!("sum: {sum}\n"),
    );
    // `c` holds the pipeline back; on a machine whose cores are busy elsewhere the report
    // may say instead that the threads outnumber the cores, naming `c` as the busiest.
    assert.stderr(
        predicate::str::contains("bottleneck: c: ")
            .or(predicate::str::contains("the busiest, `c`")),
    );
    let bottleneck = &json["bottleneck"];
    assert!(
        bottleneck["stage"] == "c" || bottleneck.to_string().contains("`c`"),
        "{bottleneck}"
    );
}

#[test]
fn every_example_checks_and_its_resolved_form_loads_to_the_same_pipeline() {
    let dir = common::repo_root().join("examples");
    let mut seen = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !matches!(path.extension(), Some(e) if e == "toml") {
            continue;
        }
        seen += 1;
        let spec = millrace_cli::config::load(&path, &[]).unwrap();
        let resolved = millrace_cli::commands::check::to_toml(&spec);
        let again = millrace_cli::config::load_str(&resolved, &spec.file, &dir, &[])
            .unwrap_or_else(|e| {
                panic!(
                    "{}: resolved form does not load: {e}\n{resolved}",
                    path.display()
                )
            });
        assert_eq!(millrace_cli::commands::check::to_toml(&again), resolved);
        millrace()
            .arg("check")
            .arg(&path)
            .assert()
            .success()
            .stdout(predicate::str::contains("valid"));
    }
    assert!(seen >= 6, "examples missing");
}

/// The examples this file runs; keep in step with `examples/`.
const TESTED: &[&str] = &[
    "autoscale.toml",
    "files.toml",
    "imbalanced.toml",
    "io.toml",
    "logs.toml",
    "seed.toml",
];

#[test]
fn every_example_has_a_test() {
    let mut found: Vec<String> = fs::read_dir(common::repo_root().join("examples"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    found.sort();
    assert_eq!(
        found, TESTED,
        "add a test for the new example to tests/examples.rs"
    );
}

#[test]
fn autoscale_example_sums_and_only_ever_widens_the_heavy_stage() {
    let n = 60_000u64;
    let sum = spin_chain_sum(n, [1, 1, 6, 1]);
    let (_, json) = run_with_report(
        "autoscale.toml",
        &[format!("source.end={n}")],
        &format!("sum: {sum}\n"),
    );
    // The controller ran from the start, every stage on one worker.
    let first = &json["worker_history"][0]["workers"];
    for stage in ["a", "b", "c", "d"] {
        assert_eq!(first[stage], 1, "{json}");
    }
    // Whatever it decided (timing decides when, and a busy machine blurs the samples), every
    // count stayed within bounds and the heavy stage `c` ends with at least as many workers
    // as any other.
    for d in json["decisions"].as_array().unwrap() {
        let to = d["to"].as_u64().unwrap();
        assert!((1..=4).contains(&to), "{d}");
    }
    let history = json["worker_history"].as_array().unwrap();
    let last = &history[history.len() - 1]["workers"];
    for stage in ["a", "b", "d"] {
        assert!(
            last["c"].as_u64() >= last[stage].as_u64(),
            "c ends with the most workers: {json}"
        );
    }
    assert!(json["wedges"].as_array().unwrap().is_empty());
}

#[test]
fn io_example_waits_concurrently() {
    let (_, json) = run_with_report("io.toml", &[], "count: 20000\n");
    // 20,000 waits of 50 ms, 1,000 at a time: at least 1 s (one at a time: 1,000 s). How
    // much longer depends on the machine, so only the waits' overlap is checked (below).
    let wall = json["wall_seconds"].as_f64().unwrap();
    assert!(wall >= 0.9, "wall {wall} s");
    assert_eq!(json["totals"]["delivered"], 20_000);
    let sleep = &json["stages"][1];
    assert_eq!(sleep["name"], "sleep");
    assert!(
        sleep["waiting_seconds"].as_f64().unwrap() > 100.0,
        "{sleep}"
    );
    // Its concurrency, and how much of it was in use: waits overlap, so well above none.
    assert_eq!(sleep["concurrency"], 1000, "{sleep}");
    let used = sleep["concurrency_used"].as_f64().unwrap();
    assert!(used > 0.0 && used <= 1.0, "{sleep}");
    assert_eq!(json["stages"][0]["concurrency"], 0, "the source has none");
}
