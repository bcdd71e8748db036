//! A source that waits on its input (`tail -f app.log | millrace run f.toml`), simulated: the
//! test holds the child's stdin open and writes lines to it with pauses between them.
//!
//! * Each line reaches the sink (stdout) while the input is idle: a partial batch is not
//!   held back waiting for company, and the sink does not keep it in its buffer (issue 14,
//!   bug 4). The test writes the next line only once the last one has shown.
//! * Ctrl-C ends the run although the source is waiting for its next line, and the report
//!   counts the lines that were read (issue 14, bug 2: it went on waiting, and reported
//!   `in 0`).

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::{
    drain, line_by_line, pipeline_file, read_report, sigint, totals, wait_for_handler, wait_or_kill,
};

/// How long a line may take to show at the sink before the test counts it as held back:
/// far longer than the flush interval (100 ms), so a busy machine does not fail the test.
const PER_LINE: Duration = Duration::from_secs(10);

/// `lines` from stdin through `grep` to stdout.
const STREAM: &str = r#"
[source]
kind = "lines"

[[stage]]
name = "keep"
kind = "grep"
pattern = "event"

[sink]
kind = "stdout"
field = "text"
"#;

struct Streaming {
    child: Child,
    stdin: ChildStdin,
    stdout: Receiver<String>,
    stderr: std::thread::JoinHandle<Vec<u8>>,
}

fn start(file: &Path, report: &Path) -> Streaming {
    let mut child = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .arg("run")
        .arg(file)
        .arg("--report")
        .arg(report)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start millrace");
    let stdin = child.stdin.take().expect("the child's stdin");
    let stdout = line_by_line(child.stdout.take().expect("the child's stdout"));
    let stderr = drain(child.stderr.take().expect("the child's stderr"));
    Streaming {
        child,
        stdin,
        stdout,
        stderr,
    }
}

impl Streaming {
    /// Writes `line` to the child's stdin, keeping it open.
    fn write(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to millrace's stdin");
        self.stdin.flush().expect("flush millrace's stdin");
    }

    /// Waits for `line` on the child's stdout; kills it and fails the test if it does not
    /// come within [`PER_LINE`].
    fn expect(&mut self, line: &str) {
        match self.stdout.recv_timeout(PER_LINE) {
            Ok(got) => assert_eq!(got, line),
            Err(_) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{line:?} did not reach stdout within {PER_LINE:?} while the input was idle"
                );
            }
        }
    }

    /// Waits for `lines` on the child's stdout, in any order (the stages run on several
    /// workers, and nothing asks for order); as [`expect`](Self::expect) otherwise.
    fn expect_all(&mut self, lines: &[&str]) {
        let mut got: Vec<String> = Vec::new();
        for line in lines {
            match self.stdout.recv_timeout(PER_LINE) {
                Ok(line) => got.push(line),
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("{line:?} did not reach stdout within {PER_LINE:?} (got {got:?})");
                }
            }
        }
        got.sort_unstable();
        let mut want: Vec<&str> = lines.to_vec();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    /// Sends Ctrl-C with stdin still open; returns the exit code and stderr.
    fn interrupt(mut self) -> (Option<i32>, String) {
        wait_for_handler(&mut self.child);
        sigint(&self.child);
        let status = wait_or_kill(&mut self.child, Duration::from_secs(30));
        drop(self.stdin);
        let stderr = self.stderr.join().expect("the stderr reader");
        (status.code(), String::from_utf8_lossy(&stderr).into_owned())
    }
}

#[test]
fn ctrl_c_ends_a_run_whose_source_waits_on_stdin_and_counts_what_was_read() {
    let (dir, file) = pipeline_file(STREAM);
    let report = dir.path().join("report.json");
    let mut run = start(&file, &report);
    run.write("event 1");
    run.write("event 2");
    // (Written back to back, the two lines may go through the grep on two workers at once.)
    run.expect_all(&["event 1", "event 2"]);
    let (code, stderr) = run.interrupt();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted (Ctrl-C)"), "{stderr}");
    assert!(stderr.contains("in 2 = delivered 2"), "{stderr}");
    let json = read_report(&report);
    assert_eq!(json["outcome"], "interrupted");
    assert_eq!(totals(&json), [2, 2, 0, 0, 0]);
}

#[test]
fn each_line_of_an_idle_stream_reaches_stdout_before_the_next_is_written() {
    let (dir, file) = pipeline_file(STREAM);
    let report = dir.path().join("report.json");
    let mut run = start(&file, &report);
    for i in 1..=5 {
        run.write(&format!("event {i}"));
        run.write("noise"); // filtered out by the grep
        run.expect(&format!("event {i}"));
    }
    let (code, stderr) = run.interrupt();
    assert_eq!(code, Some(130), "{stderr}");
    let json = read_report(&report);
    assert_eq!(json["outcome"], "interrupted");
    assert_eq!(totals(&json), [10, 5, 5, 0, 0]);
}
