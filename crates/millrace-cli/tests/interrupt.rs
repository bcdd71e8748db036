//! Ctrl-C on a running pipeline: the first SIGINT stops it gracefully (the report says it
//! was interrupted, and every admitted item is accounted for: in = delivered + filtered +
//! failed, nothing cancelled); a second aborts it (items in flight are dropped and counted
//! as cancelled).

mod common;

use std::process::{Child, Command, Stdio};
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

/// Starts the imbalanced example on a long input, with a JSON report.
fn start_long_run(report: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_millrace"))
        .current_dir(repo_root())
        .args(["run", &example("imbalanced.toml")])
        .args(["--set", "source.end=1000000000"])
        .arg("--report")
        .arg(report)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start millrace")
}

fn read_report(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("the JSON report")).expect("valid JSON")
}

#[test]
fn first_sigint_stops_gracefully_and_accounts_for_every_item() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut child = start_long_run(&report);
    std::thread::sleep(Duration::from_millis(800));
    sigint(&child);
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted (Ctrl-C)"), "{stderr}");
    assert!(stderr.contains("items done"), "{stderr}");
    // The sink still flushed: an interrupted run prints what it summed.
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sum: "));

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
}

#[test]
fn second_sigint_aborts_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut child = start_long_run(&report);
    std::thread::sleep(Duration::from_millis(800));
    sigint(&child);
    std::thread::sleep(Duration::from_millis(30));
    sigint(&child);
    let started = Instant::now();
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    assert!(started.elapsed() < Duration::from_secs(10));
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
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
    millrace_cli::report_text::count(n)
}
