//! Delivered means handed over: a sink's items count as delivered only once the write that
//! covers them succeeded. A file sink on a full disk (`/dev/full`: every write fails with
//! ENOSPC) delivers nothing and fails every item; dead letters that cannot be written are
//! reported as not written, and fail the run.

mod common;

use std::path::Path;

use common::{millrace, pipeline_file, read_report};

/// Whether this system has `/dev/full`; the tests say so and pass trivially if not.
fn have_dev_full() -> bool {
    let there = Path::new("/dev/full").exists();
    if !there {
        eprintln!("no /dev/full here: nothing to test");
    }
    there
}

#[test]
fn a_file_sink_on_a_full_disk_delivers_nothing() {
    if !have_dev_full() {
        return;
    }
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"range\"\nend = 100\n\
         [sink]\nkind = \"file\"\npath = \"/dev/full\"\ndead_letter = \"failed.jsonl\"\n",
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
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        stderr.contains("delivered 0 + filtered 0 + failed 100"),
        "{stderr}"
    );
    let r = read_report(&json);
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["totals"]["delivered"], 0);
    assert_eq!(r["totals"]["failed"], 100);
    assert_eq!(r["errors"]["total"], 100);
    let sink = &r["stages"][1];
    assert_eq!(
        (sink["items_out"].as_u64(), sink["failed"].as_u64()),
        (Some(0), Some(100))
    );
    let first = r["errors"]["sample"][0]["message"].as_str().unwrap_or("");
    assert!(
        first.starts_with("sink `file` failed on item #0: not written: No space left"),
        "{first}"
    );
    // Every item the disk refused went to the dead letters, with its value.
    let letters = std::fs::read_to_string(dir.path().join("failed.jsonl")).expect("dead letters");
    let values: Vec<u64> = letters
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("a JSON line")["value"]
                .as_u64()
                .expect("a number")
        })
        .collect();
    assert_eq!(values, (0..100).collect::<Vec<u64>>());
}

#[test]
fn dead_letters_to_a_full_disk_are_reported_not_written() {
    if !have_dev_full() {
        return;
    }
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n\
         [[stage]]\nkind = \"parse\"\ndead_letter = \"/dev/full\"\n\
         [sink]\nkind = \"count\"\n",
    );
    std::fs::write(dir.path().join("in.txt"), "1\nx\n2\ny\nz\n").unwrap();
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
    assert!(
        stderr.contains("dead letters: 0 of 3 items written to /dev/full (3 could not be)"),
        "{stderr}"
    );
    let r = read_report(&json);
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["dead_letters"][0]["items"], 0);
    assert_eq!(r["dead_letters"][0]["not_written"], 3);
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left")),
        "{}",
        r["error"]
    );
}

/// An item that fails under `on_error = "stop"` stops the run gracefully: what reached the
/// sink before and during the drain is written, so the file holds exactly the items the
/// report counts as delivered (it was empty, or short by the last buffer, when the failed
/// run's sink was never finished).
#[test]
fn a_run_stopped_by_a_failed_item_writes_every_item_it_reports_delivered() {
    for (lines, bad_at) in [(4usize, 2usize), (200_000, 150_000)] {
        let input: String = (0..lines)
            .map(|i| {
                if i == bad_at {
                    "bad\n".to_owned()
                } else {
                    format!("{i}\n")
                }
            })
            .collect();
        let (dir, path) = pipeline_file(
            "[source]\nkind = \"lines\"\npath = \"in.txt\"\n\
             [[stage]]\nkind = \"parse\"\non_error = \"stop\"\n\
             [sink]\nkind = \"file\"\npath = \"out.txt\"\n",
        );
        std::fs::write(dir.path().join("in.txt"), input).expect("write the input");
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
        assert_eq!(r["outcome"], "failed", "{stderr}");
        let delivered = r["totals"]["delivered"].as_u64().expect("delivered");
        assert!(
            delivered > 0,
            "{lines} lines: nothing delivered before the stop"
        );
        let written = std::fs::read_to_string(dir.path().join("out.txt")).expect("the output");
        let mut values: Vec<u64> = written
            .lines()
            .map(|l| {
                let line: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
                line["value"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no value: {l}"))
            })
            .collect();
        assert_eq!(
            values.len() as u64,
            delivered,
            "{lines} lines: the file holds {} items, the report says {delivered} delivered",
            values.len()
        );
        values.sort_unstable();
        values.dedup();
        assert_eq!(values.len() as u64, delivered, "an item written twice");
        assert!(values
            .iter()
            .all(|&v| v < lines as u64 && v != bad_at as u64));
    }
}
