//! The `millrace-bench` binary as CI runs it: the whole matrix at a tiny N, exiting zero
//! when every checksum agrees, and clear errors for a command line it cannot understand.

use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the benchmark binary with `args`; panics if it takes longer than [`TIMEOUT`].
fn bench(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_millrace-bench"));
    child.args(args);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.output());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(output) => output.expect("the benchmark binary starts"),
        Err(_) => panic!("millrace-bench {args:?} did not finish within {TIMEOUT:?}"),
    }
}

#[test]
fn the_quick_matrix_runs_every_workload_with_agreeing_checksums() {
    let output = bench(&["--quick", "--runs", "1"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for workload in [
        "W1 seed",
        "W2 imbalanced",
        "W4 ordered",
        "W5 large",
        "W6 hops",
    ] {
        for implementation in ["sequential", "rayon", "crossbeam", "millrace"] {
            assert!(
                stdout
                    .lines()
                    .any(|l| l.starts_with(workload) && l.contains(implementation)),
                "no {implementation} row for {workload} in:\n{stdout}"
            );
        }
    }
    assert!(stdout.contains("measured by the millrace-scaling binary"));
    assert!(stdout.contains("peak RSS"));
    assert!(!stderr.contains("MISMATCH"));
}

#[test]
fn markdown_output_is_a_markdown_table() {
    let output = bench(&[
        "--quick",
        "--runs",
        "1",
        "--only",
        "W1",
        "--no-rss",
        "--markdown",
    ]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("| workload | implementation |"));
    assert!(stdout.contains("|---|---|"));
}

#[test]
fn a_bad_flag_exits_with_status_2_and_names_the_flag() {
    let output = bench(&["--runs", "many"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--runs") && stderr.contains("expected a positive integer, got `many`"),
        "{stderr}"
    );
}

#[test]
fn help_shows_usage_and_examples() {
    let output = bench(&["--help"]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("Usage: millrace-bench")
            && stdout.contains("Examples:")
            && stdout.contains("--quick")
            && stdout.contains("--child <W>"),
        "{stdout}"
    );
}
