//! `--report FILE.html`: one self-contained page (no script, nothing fetched) that shows
//! every stage; opened in headless Chromium it renders with no console error.
//!
//! The Chromium checks run where `chromium` is installed; `.ci/run` installs it and sets
//! `MILLRACE_REQUIRE_CHROMIUM=1`, which turns a missing browser into a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{millrace, pipeline_file, read_report, wait_or_kill};

/// A pipeline with an autoscaled stage and a stage that fails some items.
const PIPELINE: &str =
    "[pipeline]\nname = \"html <demo>\"\nautoscale_interval = \"20ms\"\ncpu_budget = 2\n\
     [source]\nkind = \"lines\"\npath = \"nums.txt\"\n\
     [[stage]]\nname = \"parse\"\nkind = \"parse\"\n\
     [[stage]]\nname = \"heavy\"\nkind = \"spin\"\nunits = 20\nworkers = \"auto\"\n\
     [[stage]]\nname = \"square\"\nkind = \"square\"\n[sink]\nkind = \"sum\"\n";

/// Runs [`PIPELINE`] over 3,000 lines (every 100th not a number) with `--report`.
fn html_report() -> (tempfile::TempDir, PathBuf) {
    let (dir, path) = pipeline_file(PIPELINE);
    let lines: String = (0..3000)
        .map(|i| {
            if i % 100 == 7 {
                "x\n".to_owned()
            } else {
                format!("{i}\n")
            }
        })
        .collect();
    std::fs::write(dir.path().join("nums.txt"), lines).unwrap();
    let report = dir.path().join("run.html");
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--report")
        .arg(&report)
        .arg("--allow-failures")
        .arg("--quiet")
        .assert()
        .success();
    (dir, report)
}

const STAGES: [&str; 5] = ["source", "parse", "heavy", "square", "sink"];

#[test]
fn the_html_report_is_self_contained_and_shows_every_stage_and_the_errors() {
    let (_dir, report) = html_report();
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for stage in STAGES {
        assert!(
            html.contains(&format!("data-stage=\"{stage}\"")),
            "{stage} not drawn"
        );
        assert!(
            html.contains(&format!("<h3>{stage}</h3>")),
            "{stage} has no chart"
        );
    }
    // Nothing to fetch, nothing to run.
    for forbidden in ["<script", "http://", "https://", "src=", "<link"] {
        assert!(!html.contains(forbidden), "the page holds {forbidden}");
    }
    // The name is escaped; the errors are counted by stage and kind.
    assert!(html.contains("html &lt;demo&gt;"));
    assert!(
        html.contains("<tr><td>parse</td><td>failed</td><td>30</td></tr>"),
        "{html}"
    );
    assert!(html.contains("30 item errors."));
}

#[test]
fn a_report_that_is_not_html_stays_json() {
    let (dir, path) = pipeline_file(PIPELINE);
    std::fs::write(dir.path().join("nums.txt"), "1\n2\n").unwrap();
    let report = dir.path().join("run.json");
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--report")
        .arg(&report)
        .arg("--quiet")
        .assert()
        .success();
    let json = read_report(&report);
    assert_eq!(json["schema"], "millrace-report");
}

/// The Chromium binary, if installed; a failure when CI requires it.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        assert!(
            std::env::var_os("MILLRACE_REQUIRE_CHROMIUM").is_none(),
            "MILLRACE_REQUIRE_CHROMIUM is set but no chromium is on the PATH"
        );
        eprintln!("chromium is not installed: skipping the browser check");
    }
    found
}

/// Runs headless Chromium on `page` with `args`; returns its stdout and stderr.
fn headless(browser: &Path, page: &Path, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .expect("start chromium");
    let status = wait_or_kill(&mut child, Duration::from_secs(90));
    let stdout = std::fs::read_to_string(out.path()).unwrap_or_default();
    let stderr = std::fs::read_to_string(err.path()).unwrap_or_default();
    assert!(status.success(), "chromium failed: {status}\n{stderr}");
    (stdout, stderr)
}

/// Console messages in Chromium's log (`…:INFO:CONSOLE(3)] "…"`), and uncaught errors.
fn console_messages(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect()
}

#[test]
fn the_html_report_renders_in_headless_chromium_with_every_stage_and_no_console_error() {
    let Some(browser) = chromium() else { return };
    // The check can see a console error: a page that logs one is caught.
    let dir = tempfile::tempdir().unwrap();
    let noisy = dir.path().join("noisy.html");
    std::fs::write(
        &noisy,
        "<!DOCTYPE html><p>x</p><script>console.error('boom')</script>",
    )
    .unwrap();
    let (_, log) = headless(&browser, &noisy, &["--dump-dom"]);
    assert!(
        !console_messages(&log).is_empty(),
        "the console check saw nothing:\n{log}"
    );

    let (_report_dir, report) = html_report();
    let (dom, log) = headless(&browser, &report, &["--dump-dom"]);
    assert!(
        console_messages(&log).is_empty(),
        "console errors: {:?}",
        console_messages(&log)
    );
    for stage in STAGES {
        assert!(
            dom.contains(&format!("data-stage=\"{stage}\"")),
            "{stage} not in the DOM"
        );
    }
    let shot = dir.path().join("run.png");
    headless(
        &browser,
        &report,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,1800",
        ],
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "a blank screenshot? {} bytes",
        png.len()
    );
}

#[test]
fn a_run_that_never_started_still_gets_its_html_page() {
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"missing.txt\"\n[sink]\nkind = \"count\"\n",
    );
    let report = dir.path().join("run.html");
    millrace()
        .arg("run")
        .arg(&path)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(1);
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("the run never started"), "{html}");
    assert!(html.contains("missing.txt"), "{html}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_run_whose_sink_could_not_write_says_so_under_its_throughput_chart() {
    // The chart plots what reached the sink: a run that wrote nothing (a full disk) read
    // as a fast one, with nothing to say otherwise (a new user's trial).
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"range\"\nend = 100000\n[sink]\nkind = \"file\"\npath = \"/dev/full\"\n",
    );
    let report = dir.path().join("run.html");
    let out = millrace()
        .arg("run")
        .arg(&path)
        .arg("--report")
        .arg(&report)
        .arg("--quiet")
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("items handed to the sink per second"),
        "{html}"
    );
    let note = html
        .split("of those, ")
        .nth(1)
        .unwrap_or_else(|| panic!("no note under the chart: {html}"));
    let refused = note.split(' ').next().unwrap_or_default();
    assert!(
        note.starts_with(&format!(
            "{refused} the sink refused or could not write (counted failed)"
        )) && refused != "0",
        "{note}"
    );
}
