//! A long run is not silent: off a terminal, a progress line every `--progress-every`
//! on stderr, with the percentage done where the source knows its size (issue 14); `off`
//! turns it off. Throughput counts the items the source read, not only those delivered.

mod common;

use common::{millrace, pipeline_file, read_report};

/// 100 numbers through waits of 20 ms, one at a time: the run lasts at least 2 s whatever
/// the machine, many times the progress interval below.
const SLOW: &str = r#"
[source]
kind = "range"
end = 100

[[stage]]
kind = "sleep"
ms = 20
concurrency = 1

[sink]
kind = "count"
"#;

fn progress_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("millrace: ") && l.contains(" s: read "))
        .collect()
}

#[test]
fn off_a_terminal_a_progress_line_comes_every_interval_with_the_percentage() {
    let (_dir, path) = pipeline_file(SLOW);
    let out = millrace()
        .args(["run", "--progress-every", "100ms"])
        .arg(&path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines = progress_lines(&stderr);
    assert!(!lines.is_empty(), "no progress line in:\n{stderr}");
    for line in &lines {
        assert!(line.contains("% of 100 items done"), "{line}");
        assert!(line.contains("delivered"), "{line}");
    }
}

#[test]
fn progress_every_off_prints_none_and_a_bad_value_is_a_usage_error() {
    let (_dir, path) = pipeline_file(SLOW);
    let out = millrace()
        .args(["run", "--progress-every", "off", "--set", "source.end=20"])
        .arg(&path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(progress_lines(&stderr).is_empty(), "{stderr}");
    millrace()
        .args(["run", "--progress-every", "often"])
        .arg(&path)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--progress-every \"often\""));
}

#[test]
fn throughput_counts_the_items_read_not_only_those_delivered() {
    let (dir, grep) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n\n\
         [[stage]]\nkind = \"grep\"\npattern = \"^1$\"\n\n[sink]\nkind = \"count\"\n",
    );
    let text: String = (0..10_000).map(|i| format!("{}\n", i % 10)).collect();
    std::fs::write(dir.path().join("in.txt"), text).expect("write");
    let report = dir.path().join("r.json");
    let out = millrace()
        .args(["run", "--report"])
        .arg(&report)
        .arg(&grep)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("delivered/s)"), "{stderr}");
    let r = read_report(&report);
    let wall = r["wall_seconds"].as_f64().expect("wall");
    let read = r["throughput_per_second"].as_f64().expect("throughput");
    let delivered = r["delivered_per_second"].as_f64().expect("delivered rate");
    assert!((read * wall - 10_000.0).abs() < 1.0, "{r:#}");
    assert!((delivered * wall - 1_000.0).abs() < 1.0, "{r:#}");
}

/// Runs `pipeline` (whose stages wait 20 ms per item, one at a time) with a progress line
/// every 100 ms; returns the progress lines.
fn run_with_progress(path: &std::path::Path) -> Vec<String> {
    let out = millrace()
        .args(["run", "--progress-every", "100ms"])
        .arg(path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    progress_lines(&stderr)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_files_walk_counts_its_files_and_a_file_of_lines_its_bytes() {
    let (dir, files) = pipeline_file(
        "[source]\nkind = \"files\"\ndir = \"data\"\n\n\
         [[stage]]\nkind = \"sleep\"\nms = 20\nconcurrency = 1\n\n[sink]\nkind = \"count\"\n",
    );
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sub")).expect("mkdir");
    for i in 0..60 {
        let at = if i % 2 == 0 {
            data.clone()
        } else {
            data.join("sub")
        };
        std::fs::write(at.join(format!("f{i}")), "x").expect("write");
    }
    let lines = run_with_progress(&files);
    // The count may finish after the first line: until then, no percentage.
    assert!(
        lines.iter().any(|l| l.contains("of 60 files read")),
        "{lines:#?}"
    );
    let text: String = (0..100).map(|i| format!("{i:09}\n")).collect();
    std::fs::write(dir.path().join("in.txt"), text).expect("write");
    let by_lines = dir.path().join("lines.toml");
    std::fs::write(
        &by_lines,
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n\n\
         [[stage]]\nkind = \"sleep\"\nms = 20\nconcurrency = 1\n\n[sink]\nkind = \"count\"\n",
    )
    .expect("write");
    let lines = run_with_progress(&by_lines);
    assert!(!lines.is_empty());
    assert!(
        lines.iter().all(|l| l.contains("of 1000 bytes read")),
        "{lines:#?}"
    );
}
