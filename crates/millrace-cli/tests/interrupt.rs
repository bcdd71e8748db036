//! Ctrl-C on a running pipeline: the first SIGINT stops it gracefully (the report says it
//! was interrupted, and every admitted item is accounted for: in = delivered + filtered +
//! failed, nothing cancelled); a second aborts it (items in flight are dropped and counted
//! as cancelled).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{catches_sigint, example, read_report, repo_root, sigint};

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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_millrace"));
    cmd.current_dir(repo_root())
        .args(["run", &example("imbalanced.toml")])
        .args(["--set", "source.end=1000000000"])
        .args(["--set", "sink.kind=stdout"])
        .arg("--report")
        .arg(report);
    start(cmd)
}

/// Starts `cmd`, reading its stdout and stderr on threads of their own.
fn start(mut cmd: Command) -> LongRun {
    let mut child = cmd
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
    // Source positions, each once.
    let ids: Vec<u64> = json["unfinished"]["ids"]
        .as_array()
        .map(|ids| ids.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

/// SIGTERM stops the run as Ctrl-C does, but the command exits 143 (128 + SIGTERM), and
/// the reports say which signal it was.
#[test]
fn sigterm_stops_gracefully_and_exits_143() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut run = start_long_run(&report);
    wait_until_ready(&mut run);
    common::signal(&run.child, "TERM");
    let (status, _, stderr) = finish(run);
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("interrupted (SIGTERM)"), "{stderr}");
    // No Ctrl-C was pressed: the hint names what aborts in its terms.
    assert!(stderr.contains("(a second signal aborts)"), "{stderr}");
    assert!(!stderr.contains("Ctrl-C again"), "{stderr}");
    let json = read_report(&report);
    assert_eq!(json["outcome"], "interrupted");
    assert_eq!(json["exit_code"], 143);
}

/// CPU time (in clock ticks) the thread named `name` of process `pid` has used, if there
/// is one: fields 14 and 15 (utime, stime) of its `/proc/PID/task/TID/stat`.
#[cfg(target_os = "linux")]
fn thread_ticks(pid: u32, name: &str) -> Option<u64> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // After the name in parentheses: state (field 3), …, utime (14), stime (15).
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        return Some(tick(11)? + tick(12)?);
    }
    None
}

/// Waits until the worker thread `name` of `child` has worked for a while (it has taken a
/// batch: a stage gets CPU time only from items); kills the child and fails the test if
/// that takes over a minute.
#[cfg(target_os = "linux")]
fn wait_until_working(child: &mut Child, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while thread_ticks(child.id(), name).unwrap_or(0) < 5 {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("millrace's thread {name} did not start working within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Elsewhere there is no such window into the process: give the stage time to start.
#[cfg(not(target_os = "linux"))]
fn wait_until_working(_child: &mut Child, _name: &str) {
    std::thread::sleep(Duration::from_secs(2));
}

/// Issue 14, bug 1: range 100k → spin (1M units an item) → sum, Ctrl-C twice while the
/// stage is still inside its first batch (which takes minutes). The command stops waiting
/// for the stage a second after the abort, and the report must still balance: the items
/// the run held (queued, or in the stage's hands) are counted as still in progress, not
/// lost (`in 4,608 → delivered 0 + … + cancelled 0` before), and the stage that would not
/// let go is named, not the idle sink.
#[test]
fn abort_while_a_stage_is_inside_its_first_batch_accounts_for_every_item() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let file = dir.path().join("spin.toml");
    std::fs::write(
        &file,
        "[source]\nkind = \"range\"\nend = 100_000\n\n\
         [[stage]]\nname = \"s\"\nkind = \"spin\"\nunits = 1000000\n\n\
         [sink]\nkind = \"sum\"\n",
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_millrace"));
    cmd.arg("run").arg(&file).arg("--report").arg(&report);
    let mut run = start(cmd);
    while !catches_sigint(run.child.id()) {
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_until_working(&mut run.child, "millrace-s-0");
    sigint(&run.child);
    wait_for_line(&mut run, "millrace: interrupted: stopping the source");
    sigint(&run.child);
    let (status, _, stderr) = finish(run);
    assert_eq!(status.code(), Some(130), "{stderr}");
    let json = read_report(&report);
    assert_eq!(json["outcome"], "aborted", "{stderr}");
    let t = &json["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or_default();
    assert!(n("items_in") > 0, "{t}");
    assert_eq!(
        n("items_in") + n("expanded"),
        n("delivered") + n("filtered") + n("failed") + n("cancelled") + n("in_progress"),
        "{t}"
    );
    let held: u64 = json["in_progress"]
        .as_array()
        .expect("in_progress")
        .iter()
        .map(|h| h["queued"].as_u64().unwrap_or(0) + h["in_hands"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(held, n("in_progress"), "{json}");
    // Items were in the stage's hands: it is named, and the text report balances.
    if n("in_progress") > 0 {
        assert_eq!(json["bottleneck"]["stage"], "s", "{stderr}");
        assert!(stderr.contains("still in progress"), "{stderr}");
    }
    assert!(!stderr.contains(" → delivered"), "{stderr}");
    assert!(!stderr.contains("flat-map"), "{stderr}");
}

/// Thousands separators, as the text report writes counts.
fn common_count(n: u64) -> String {
    millrace::fmt::count(n)
}
