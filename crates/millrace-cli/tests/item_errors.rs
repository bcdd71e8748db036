//! Items a kind cannot handle fail one at a time, under the error policy, with a message
//! naming the stage, the expected and actual types and the item's id; dead letters get
//! them whole; the accounting identity holds, sink refusals included.
//!
//! A file whose stages cannot take each other's values no longer loads (`type_errors.rs`),
//! so the kinds' own checks on every item, which stay as a safety net, are run here on such
//! pipelines in-process, loaded without the type check.

mod common;

use common::{millrace, pipeline_file, read_report};
use millrace_cli::build::build;
use millrace_cli::config::{load_str, load_str_untyped};
use millrace_cli::sink_runner::SinkRunner;
use millrace_cli::summary::{SinkSide, Summary};
use millrace_cli::supervise::{Ended, Interruption};

fn run_json(text: &str, files: &[(&str, &str)]) -> (serde_json::Value, String, tempfile::TempDir) {
    let (dir, path) = pipeline_file(text);
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let report = dir.path().join("report.json");
    let out = millrace()
        .arg("run")
        .arg(&path)
        .arg("--quiet")
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let json = read_report(&report);
    (json, String::from_utf8_lossy(&out.stdout).into_owned(), dir)
}

fn balanced(json: &serde_json::Value) -> bool {
    let t = &json["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or(u64::MAX);
    n("items_in") == n("delivered") + n("filtered") + n("failed") + n("cancelled")
}

/// Runs `text`, which the loader refuses for its types, as if it had not checked them;
/// `files` are written next to it first.
fn run_untyped(
    text: &str,
    files: &[(&str, &str)],
) -> (millrace::Finished<SinkRunner>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let refused = load_str(text, "p.toml", dir.path(), &[]);
    assert!(refused.is_err(), "the type check let it through");
    let spec = load_str_untyped(text, "p.toml", dir.path(), &[]).unwrap();
    let finished = build(&spec).unwrap().pipeline.run().unwrap();
    (finished, dir)
}

#[test]
fn wrong_type_at_run_time_names_stage_expected_actual_and_item() {
    let (finished, _dir) = run_untyped(
        "[source]\nkind = \"range\"\nend = 5\n[[stage]]\nkind = \"grep\"\npattern = \"1\"\n\
         [sink]\nkind = \"count\"\n",
        &[],
    );
    let report = &finished.report;
    assert_eq!(report.errors_total(), 5);
    assert_eq!(report.failed(), 5);
    let messages: Vec<String> = report.errors().iter().map(ToString::to_string).collect();
    assert!(
        messages.contains(&"stage `grep` failed on item #3: expected text, got number".to_owned()),
        "{messages:?}"
    );
    let sink = finished.output.finish();
    assert_eq!(sink.result.unwrap().lines, ["count: 0"]);
}

#[test]
fn record_without_the_field_at_run_time_names_the_fields_it_has() {
    let (finished, _dir) = run_untyped(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n[[stage]]\nkind = \"hash\"\n\
         [sink]\nkind = \"count\"\n",
        &[("in.txt", "a\nb\n")],
    );
    let report = &finished.report;
    assert_eq!(report.failed(), 2);
    assert!(report.is_balanced());
    let messages: Vec<String> = report.errors().iter().map(ToString::to_string).collect();
    assert!(
        messages.contains(
            &"stage `hash` failed on item #0: expected a record with field `data`, got one with fields line, text"
                .to_owned()
        ),
        "{messages:?}"
    );
}

#[test]
fn sink_refusals_at_run_time_count_as_failed_and_keep_the_identity() {
    let (finished, _dir) = run_untyped(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n[sink]\nkind = \"sum\"\nfield = \"text\"\n",
        &[("in.txt", "1\n2\n")],
    );
    let (summary, runner) = Summary::new(
        "p",
        None,
        vec![None; 2],
        Ended::Joined(Ok(finished)),
        Interruption::None,
    )
    .unwrap();
    let sink = runner.unwrap().finish();
    assert_eq!(sink.result.as_ref().unwrap().lines, ["sum: 0"]);
    assert_eq!(sink.rejected, 2);
    assert!(sink.errors[0]
        .message
        .contains("sink `sum` failed on item #0: expected a number in field `text`, got text"));
    let summary = summary.with_sink(SinkSide::from(sink));
    let t = summary.totals();
    assert_eq!((t.delivered, t.failed), (0, 2));
    assert_eq!(
        t.items_in,
        t.delivered + t.filtered + t.failed + t.cancelled
    );
}

#[test]
fn fields_route_records_to_the_right_kind() {
    let (_json, stdout, _dir) = run_json(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n\
         [[stage]]\nkind = \"hash\"\nfield = \"text\"\n\
         [sink]\nkind = \"stdout\"\nfield = \"hash\"\n",
        &[("in.txt", "abc\n")],
    );
    assert_eq!(stdout.trim(), blake3::hash(b"abc").to_hex().as_str());
}

#[test]
fn failed_items_go_to_the_dead_letter_file_whole() {
    let (json, stdout, dir) = run_json(
        "[pipeline]\ndead_letter = \"dead.jsonl\"\n\
         [source]\nkind = \"lines\"\npath = \"in.txt\"\n[[stage]]\nkind = \"parse\"\n\
         [sink]\nkind = \"sum\"\n",
        &[("in.txt", "10\nten\n20\n")],
    );
    assert_eq!(stdout, "sum: 30\n");
    assert!(balanced(&json));
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(dead.trim()).unwrap();
    assert_eq!(line["stage"], "parse");
    assert_eq!(line["item"], 1);
    assert_eq!(line["value"]["line"], 2);
    assert_eq!(line["value"]["text"], "ten");
    assert!(line["error"]
        .as_str()
        .unwrap()
        .contains("line 2: cannot parse \"ten\" as a number"));
}

#[test]
fn retry_tries_again_then_skips() {
    let (json, _stdout, _dir) = run_json(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n\
         [[stage]]\nkind = \"parse\"\non_error = \"retry\"\nretry_attempts = 3\nretry_backoff_ms = 0\n\
         [sink]\nkind = \"sum\"\n",
        &[("in.txt", "1\nx\n")],
    );
    assert_eq!(json["outcome"], "completed");
    assert_eq!(json["errors"]["sample"][0]["attempts"], 3);
    assert_eq!(json["stages"][1]["retries"], 2);
    assert_eq!(json["totals"]["failed"], 1);
}

#[test]
fn file_sink_writes_lines_and_bytes() {
    let (_json, _stdout, dir) = run_json(
        "[source]\nkind = \"range\"\nend = 3\n[[stage]]\nkind = \"scale\"\nfactor = 2\nordered = true\n\
         [sink]\nkind = \"file\"\npath = \"out.txt\"\n",
        &[],
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "0\n2\n4\n"
    );
    let (_json, _stdout, dir) = run_json(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n\
         [[stage]]\nkind = \"compress\"\nfield = \"text\"\ninto = \"z\"\n\
         [sink]\nkind = \"file\"\npath = \"out.zst\"\nformat = \"bytes\"\nfield = \"z\"\n",
        &[("in.txt", "hello\n")],
    );
    let packed = std::fs::read(dir.path().join("out.zst")).unwrap();
    assert_eq!(zstd::decode_all(&packed[..]).unwrap(), b"hello");
}

#[test]
fn stdout_sink_can_write_json_lines() {
    let (_json, stdout, _dir) = run_json(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n[sink]\nkind = \"stdout\"\nformat = \"json\"\n",
        &[("in.txt", "a \"quoted\" line\n")],
    );
    assert_eq!(stdout, "{\"line\":1,\"text\":\"a \\\"quoted\\\" line\"}\n");
}

#[test]
fn a_long_line_is_quoted_in_part() {
    let (dir, path) = pipeline_file(
        "[source]\nkind = \"lines\"\npath = \"in.txt\"\n\
         [[stage]]\nkind = \"parse\"\n[sink]\nkind = \"count\"\n",
    );
    std::fs::write(dir.path().join("in.txt"), "x".repeat(1 << 20) + "\n").unwrap();
    let out = millrace()
        .arg("run")
        .arg(&path)
        .output()
        .expect("run millrace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.len() < 10_000,
        "the 1 MiB line is not echoed: {} bytes",
        stderr.len()
    );
    let quoted = format!(
        "cannot parse \"{}\"… (1048576 bytes) as a number",
        "x".repeat(80)
    );
    assert!(stderr.contains(&quoted), "{stderr}");
}
