//! `lines` with `follow = true` reads a growing file as `tail -f` does (issue 14): the test
//! appends to a temporary file while the command runs, and each appended line reaches the
//! sink while the file is idle (a line cut short waits for its end); Ctrl-C ends the run
//! with a balanced report.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    drain, line_by_line, millrace, pipeline_file, read_report, sigint, totals, wait_for_handler,
    wait_or_kill,
};

/// How long an appended line may take to show before the test counts it as held back: far
/// longer than the flush interval, so a busy machine does not fail the test.
const PER_LINE: Duration = Duration::from_secs(10);

const FOLLOW: &str = r#"
[source]
kind = "lines"
path = "app.log"
follow = true

[sink]
kind = "stdout"
field = "text"
"#;

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open the log to append");
    f.write_all(text.as_bytes()).expect("append to the log");
}

#[test]
fn appended_lines_reach_the_sink_and_ctrl_c_ends_the_run_balanced() {
    let (dir, file) = pipeline_file(FOLLOW);
    let log = dir.path().join("app.log");
    std::fs::write(&log, "one\ntwo\n").expect("write the log");
    let report = dir.path().join("report.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .arg("run")
        .arg(&file)
        .arg("--report")
        .arg(&report)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start millrace");
    let stdout = line_by_line(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let expect = |child: &mut std::process::Child, line: &str| match stdout.recv_timeout(PER_LINE) {
        Ok(got) => assert_eq!(got, line),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{line:?} did not reach stdout within {PER_LINE:?} while the file was idle");
        }
    };
    expect(&mut child, "one");
    expect(&mut child, "two");
    for line in ["three", "four", "five"] {
        append(&log, &format!("{line}\n"));
        expect(&mut child, line);
    }
    // A line written in two parts shows once whole.
    append(&log, "six, half");
    append(&log, " and the rest\n");
    expect(&mut child, "six, half and the rest");
    wait_for_handler(&mut child);
    sigint(&child);
    let status = wait_or_kill(&mut child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&stderr.join().expect("stderr")).into_owned();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let json = read_report(&report);
    assert_eq!(json["outcome"], "interrupted");
    assert_eq!(totals(&json), [6, 6, 0, 0, 0]);
}

#[test]
fn follow_needs_a_file_not_stdin() {
    let (_dir, file) =
        pipeline_file("[source]\nkind = \"lines\"\nfollow = true\n[sink]\nkind = \"count\"\n");
    millrace()
        .arg("check")
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("3:10: [source] (kind `lines`)"))
        .stderr(predicates::str::contains(
            "`follow = true` needs a file `path`",
        ));
}
