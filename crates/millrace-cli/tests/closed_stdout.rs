//! A closed stdout (`millrace stages | true`, `millrace run … | head -1`) ends every command
//! gracefully with exit code 141 (128 + SIGPIPE, as a shell shows a command a closed pipe
//! ended), not a panic; `run` still writes its report, which says what happened, and counts
//! the items it could not write as cancelled, not delivered (but delivered those whose every
//! byte went out before the pipe closed).
//!
//! Deterministic closing: the command is started by `sh`, which waits for a line on stdin
//! before it execs millrace, so the test can drop its end of the stdout pipe first; or the
//! test reads the first line of a long output and then drops it.

#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{drain, read_report, repo_root, wait_or_kill, TIMEOUT};

/// Runs `millrace ARGS` in `dir` with a stdout nobody reads (closed before it starts);
/// returns the exit code and stderr.
fn with_closed_stdout(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("read go && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_millrace"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sh");
    drop(child.stdout.take());
    let stderr = drain(child.stderr.take().expect("stderr"));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("tell sh to go");
    drop(stdin);
    let status = wait_or_kill(&mut child, TIMEOUT);
    let stderr = String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned();
    (status.code(), stderr)
}

/// Runs `millrace ARGS` in `dir`, reads the first line of its stdout and closes it, as
/// `| head -1` does; returns that line, the exit status and stderr.
fn head_1(dir: &Path, args: &[&str]) -> (String, std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start millrace");
    let stderr = drain(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("the first line");
    let status = wait_or_kill(&mut child, TIMEOUT);
    let stderr = String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned();
    (first, status, stderr)
}

#[test]
fn stages_and_check_end_with_141() {
    let root = repo_root();
    for args in [
        &["stages"][..],
        &["stages", "grep"],
        &["check", "examples/logs.toml"],
    ] {
        let (code, stderr) = with_closed_stdout(&root, args);
        assert_eq!(code, Some(141), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            stderr.contains("millrace: stdout was closed"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_run_whose_result_cannot_be_printed_ends_closed_with_its_report() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "[source]\nkind = \"range\"\nend = 1000\n[sink]\nkind = \"count\"\n",
    )
    .unwrap();
    let (code, stderr) = with_closed_stdout(dir.path(), &["run", "p.toml", "--report", "r.json"]);
    assert_eq!(code, Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("stdout was closed"), "{stderr}");
    let r = read_report(&dir.path().join("r.json"));
    assert_eq!(r["outcome"], "closed");
    assert_eq!(r["exit_code"], 141);
    assert_eq!(r["result"]["count"], 1000);

    let (code, stderr) = with_closed_stdout(dir.path(), &["run", "--n", "1000", "--quiet"]);
    assert_eq!(code, Some(141), "the seed pipeline: {stderr}");
}

#[test]
fn a_stdout_sink_whose_reader_leaves_stops_and_counts_the_rest_unwritten() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "[source]\nkind = \"range\"\nend = 200000\n[sink]\nkind = \"stdout\"\n",
    )
    .unwrap();
    // `head -1`: read one line, then go away. 200,000 lines do not fit in a pipe, so the
    // run is still writing.
    let (first, status, stderr) = head_1(dir.path(), &["run", "p.toml", "--report", "r.json"]);
    assert_eq!(first, "0\n");
    assert_eq!(status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("stdout was closed"), "{stderr}");
    let r = read_report(&dir.path().join("r.json"));
    assert_eq!(r["outcome"], "closed");
    let t = &r["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("totals.{k}: {t}"));
    assert!(n("delivered") < 200_000, "not everything was written: {t}");
    // The line the reader got was written, and so was every whole line before the write
    // that failed (its first write fills the pipe: the buffer is larger than the pipe).
    assert!(
        n("delivered") >= 1,
        "a line the reader read counts delivered: {t}"
    );
    assert!(n("cancelled") > 0, "what was not written is counted: {t}");
    assert_eq!(n("failed"), 0, "{t}");
    assert_eq!(n("items_in"), n("delivered") + n("cancelled"), "{t}");
}

#[test]
fn a_reader_that_leaves_cancels_what_is_queued_rather_than_working_through_it() {
    // `run … | head` used to wait while every item already read (thousands, the default
    // capacity) went through the slow stage, for outputs nobody could take.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "[source]\nkind = \"range\"\nend = 100000\n\
         [[stage]]\nname = \"slow\"\nkind = \"sleep\"\nms = 5\nconcurrency = 2\n\
         [sink]\nkind = \"stdout\"\n",
    )
    .unwrap();
    // The reader goes away after one line. Working through what was queued (at 400 items
    // a second) would take the child past the test's time limit.
    let (_, status, stderr) = head_1(
        dir.path(),
        &["run", "p.toml", "--report", "r.json", "--no-live"],
    );
    assert_eq!(status.code(), Some(141), "{stderr}");
    let r = read_report(&dir.path().join("r.json"));
    assert_eq!(r["outcome"], "closed", "{stderr}");
    let slow = r["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "slow"))
        .unwrap_or_else(|| panic!("stage `slow` in {r}"));
    let (read, through) = (
        r["totals"]["items_in"].as_u64().unwrap(),
        slow["items_out"].as_u64().unwrap(),
    );
    assert!(
        through * 4 < read,
        "{through} of the {read} items read went through the slow stage: {stderr}"
    );
    assert_eq!(
        r["totals"]["items_in"],
        r["totals"]["delivered"].as_u64().unwrap() + r["totals"]["cancelled"].as_u64().unwrap(),
        "{r}"
    );
}
