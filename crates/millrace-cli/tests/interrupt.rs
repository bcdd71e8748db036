//! Ctrl-C on a running pipeline: the first SIGINT stops it gracefully (the report says it
//! was interrupted, and every admitted item is accounted for: in = delivered + filtered +
//! failed, nothing cancelled); a second aborts it (items in flight are dropped and counted
//! as cancelled).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{example, repo_root};

/// Waits for `child` up to `limit`; kills it and fails the test if it is still running.
fn wait_with_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for millrace") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("millrace did not end within {limit:?} of the interrupt");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigint(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -INT failed");
}

/// Whether process `pid` catches SIGINT: bit 1 (signal 2) of `SigCgt` in its
/// `/proc/PID/status`. Before millrace installs its handler a SIGINT kills it outright.
#[cfg(target_os = "linux")]
fn catches_sigint(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << 1) != 0)
}

/// Elsewhere there is no such window into the process: assume the handler is in place a
/// moment after the first output.
#[cfg(not(target_os = "linux"))]
fn catches_sigint(_pid: u32) -> bool {
    std::thread::sleep(Duration::from_millis(500));
    true
}

/// A run in progress: the child, its stdout and stderr read on threads of their own (so it
/// never blocks on a full pipe); `started` hears when the first output arrives, `lines`
/// gets each line of stderr as it comes.
struct LongRun {
    child: Child,
    stdout: std::thread::JoinHandle<Vec<u8>>,
    stderr: std::thread::JoinHandle<String>,
    started: mpsc::Receiver<()>,
    lines: mpsc::Receiver<String>,
}

/// Starts the imbalanced example on a long input, printing each item on stdout (so the
/// test sees when items flow), with a JSON report.
fn start_long_run(report: &std::path::Path) -> LongRun {
    let mut child = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .current_dir(repo_root())
        .args(["run", &example("imbalanced.toml")])
        .args(["--set", "source.end=1000000000"])
        .args(["--set", "sink.kind=stdout"])
        .arg("--report")
        .arg(report)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start millrace");
    let mut out = child.stdout.take().expect("the child's stdout");
    let (tx, started) = mpsc::channel();
    let stdout = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 1 << 16];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => return all,
                Ok(n) => {
                    if all.is_empty() {
                        let _ = tx.send(());
                    }
                    all.extend_from_slice(&buf[..n]);
                }
            }
        }
    });
    let err = child.stderr.take().expect("the child's stderr");
    let (line_tx, lines) = mpsc::channel();
    let stderr = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            all.push_str(&line);
            all.push('\n');
            let _ = line_tx.send(line);
        }
        all
    });
    LongRun {
        child,
        stdout,
        stderr,
        started,
        lines,
    }
}

/// Waits (up to a minute) for a line of stderr containing `text`; kills the child and fails
/// the test if none comes.
fn wait_for_line(run: &mut LongRun, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match run.lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return,
            Ok(_) => {}
            Err(_) => {
                let _ = run.child.kill();
                let _ = run.child.wait();
                panic!("millrace printed no line with {text:?} within a minute");
            }
        }
    }
}

/// Waits until the run is under way (items reached stdout) and millrace catches SIGINT;
/// kills the child and fails the test if that takes over a minute.
fn wait_until_ready(run: &mut LongRun) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let fail = |child: &mut Child, what: &str| -> ! {
        let _ = child.kill();
        let _ = child.wait();
        panic!("millrace did not {what} within a minute");
    };
    if run.started.recv_timeout(Duration::from_secs(60)).is_err() {
        fail(&mut run.child, "print its first items");
    }
    while !catches_sigint(run.child.id()) {
        if Instant::now() >= deadline {
            fail(&mut run.child, "install its Ctrl-C handler");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for the run to end after the interrupt; returns its exit status, stdout and
/// stderr.
fn finish(mut run: LongRun) -> (std::process::ExitStatus, String, String) {
    let status = wait_with_timeout(&mut run.child, Duration::from_secs(30));
    let stderr = run.stderr.join().expect("the stderr reader");
    let stdout = run.stdout.join().expect("the stdout reader");
    (
        status,
        String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
    )
}

fn read_report(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("the JSON report")).expect("valid JSON")
}

#[test]
fn first_sigint_stops_gracefully_and_accounts_for_every_item() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut run = start_long_run(&report);
    wait_until_ready(&mut run);
    sigint(&run.child);
    let (status, stdout, stderr) = finish(run);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted (Ctrl-C)"), "{stderr}");
    assert!(stderr.contains("items done"), "{stderr}");

    let json = read_report(&report);
    assert_eq!(json["outcome"], "interrupted");
    assert_eq!(json["exit_code"], 130);
    let t = &json["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("totals.{k}"));
    assert!(n("items_in") > 0, "the run had started: {t}");
    assert!(
        n("items_in") < 1_000_000_000,
        "the source was stopped early: {t}"
    );
    assert_eq!(
        n("items_in"),
        n("delivered") + n("filtered") + n("failed"),
        "{t}"
    );
    assert_eq!(n("cancelled"), 0);
    assert_eq!(n("done"), n("items_in"));
    assert!(
        stderr.contains(&format!("{} items done", common_count(n("done")))),
        "{stderr}"
    );
    // The sink still flushed: an interrupted run prints every item it delivered, whole.
    assert!(stdout.ends_with('\n'), "the last line is complete");
    assert_eq!(stdout.lines().count() as u64, n("delivered"), "{t}");
}

#[test]
fn second_sigint_aborts_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut run = start_long_run(&report);
    wait_until_ready(&mut run);
    sigint(&run.child);
    // Two signals sent back to back may merge into one: the second goes once the first
    // was acted on.
    wait_for_line(&mut run, "millrace: interrupted: stopping the source");
    sigint(&run.child);
    let (status, _, stderr) = finish(run);
    assert_eq!(status.code(), Some(130), "{stderr}");
    let json = read_report(&report);
    let outcome = json["outcome"].as_str().unwrap_or_default();
    // If the graceful stop already drained everything, the abort had nothing to drop.
    assert!(
        outcome == "aborted" || outcome == "interrupted",
        "{outcome}"
    );
    let t = &json["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or_default();
    assert_eq!(
        n("items_in"),
        n("delivered") + n("filtered") + n("failed") + n("cancelled"),
        "{t}"
    );
    assert_eq!(json["unfinished"]["count"].as_u64(), Some(n("cancelled")));
}

/// Thousands separators, as the text report writes counts.
fn common_count(n: u64) -> String {
    millrace::fmt::count(n)
}
