//! Exit codes CI can rely on (issue 14): a run that completed although items failed (the
//! default `on_error = "skip"` goes on without them) exits 3, and its report says why,
//! unless `--allow-failures`; SIGTERM exits 143 (see tests/interrupt.rs).

mod common;

use common::{millrace, pipeline_file, read_report};
use predicates::prelude::*;

/// Three lines, none a number: `parse` fails every item, and skips it.
const ALL_FAIL: &str = "[source]\nkind = \"lines\"\npath = \"in.txt\"\n\
    [[stage]]\nkind = \"parse\"\n[sink]\nkind = \"sum\"\n";

fn all_fail() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, path) = pipeline_file(ALL_FAIL);
    std::fs::write(dir.path().join("in.txt"), "one\ntwo\nthree\n").unwrap();
    (dir, path)
}

#[test]
fn a_run_where_every_item_failed_exits_3_and_says_why() {
    let (dir, path) = all_fail();
    let report = dir.path().join("report.json");
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(3)
        .stdout("sum: 0\n")
        .stderr(predicate::str::contains(
            "exit code 3: 3 items failed (the run went on without them); --allow-failures makes that exit 0",
        ));
    let json = read_report(&report);
    assert_eq!(json["outcome"], "completed");
    assert_eq!(json["exit_code"], 3);
    assert_eq!(json["totals"]["failed"], 3);
}

#[test]
fn quiet_still_says_why_it_exits_3() {
    let (_dir, path) = all_fail();
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--quiet")
        .assert()
        .code(3)
        .stderr("millrace: exit code 3: 3 items failed (the run went on without them); --allow-failures makes that exit 0\n");
}

#[test]
fn allow_failures_exits_0_although_items_failed() {
    let (dir, path) = all_fail();
    let report = dir.path().join("report.json");
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--allow-failures")
        .arg("--report")
        .arg(&report)
        .assert()
        .success()
        .stderr(predicate::str::contains("exit code 3").not());
    assert_eq!(read_report(&report)["exit_code"], 0);
}

#[test]
fn a_run_without_failures_exits_0() {
    let (dir, path) = pipeline_file(ALL_FAIL);
    std::fs::write(dir.path().join("in.txt"), "1\n2\n").unwrap();
    millrace()
        .arg("run")
        .arg(&path)
        .assert()
        .success()
        .stdout("sum: 3\n");
}
