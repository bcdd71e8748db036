//! `--report FILE.json` is written whatever the outcome of a run — one that could not start
//! (a missing input) gets a report saying so, with no stages — and a report path that
//! cannot be written is found before anything runs. (A refused file, exit 2, writes none:
//! `tests/type_errors.rs`.)

mod common;

use common::{millrace, pipeline_file, read_report};

#[test]
fn a_run_that_cannot_start_still_writes_its_report() {
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"missing.txt\"\n[sink]\nkind = \"count\"\n",
    );
    let json = dir.path().join("r.json");
    let out = millrace()
        .arg("run")
        .arg(&path)
        .arg("--report")
        .arg(&json)
        .output()
        .expect("run millrace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let r = read_report(&json);
    assert_eq!(r["schema"], "millrace-report");
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["exit_code"], 1);
    let error = r["error"].as_str().unwrap_or("");
    assert!(
        error.contains("cannot open") && error.contains("missing.txt"),
        "{error}"
    );
    assert_eq!(r["stages"], serde_json::json!([]));
    assert_eq!(r["totals"]["items_in"], 0);
}

#[test]
fn an_unwritable_report_path_is_found_before_anything_runs() {
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"range\"\nend = 1000\n[sink]\nkind = \"file\"\npath = \"out.txt\"\n",
    );
    let json = dir.path().join("no-such-dir").join("r.json");
    let out = millrace()
        .arg("run")
        .arg(&path)
        .arg("--report")
        .arg(&json)
        .output()
        .expect("run millrace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot write the report to {}", json.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("completed"), "nothing ran: {stderr}");
    assert!(
        !dir.path().join("out.txt").exists(),
        "the sink's file was never created"
    );

    // The same from the file's own `[pipeline] report`.
    std::fs::write(
        &path,
        "[pipeline]\nreport = \"no-such-dir/r.json\"\n\
         [source]\nkind = \"range\"\nend = 1000\n[sink]\nkind = \"file\"\npath = \"out.txt\"\n",
    )
    .unwrap();
    let out = millrace()
        .arg("run")
        .arg(&path)
        .output()
        .expect("run millrace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write the report to"), "{stderr}");
    assert!(
        !dir.path().join("out.txt").exists(),
        "the sink's file was never created"
    );
}
