//! `--log-format` and `RUST_LOG`: the engine's traces on stderr, filtered; nothing extra
//! without them.

mod common;

use common::millrace;

#[test]
fn log_format_json_writes_one_json_object_a_line_with_the_runs_spans_and_end() {
    let output = millrace()
        .args(["run", "--n", "2000", "--no-live", "--log-format", "json"])
        .env("RUST_LOG", "millrace=debug")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let records: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let messages: Vec<&str> = records
        .iter()
        .filter_map(|r| r["fields"]["message"].as_str())
        .collect();
    assert!(messages.contains(&"millrace: run ended"), "{messages:?}");
    let span_names: Vec<&str> = records
        .iter()
        .filter_map(|r| r["span"]["name"].as_str())
        .collect();
    for name in ["millrace.thread", "millrace.batch"] {
        assert!(span_names.contains(&name), "no {name} in {span_names:?}");
    }
    let ended = records
        .iter()
        .find(|r| r["fields"]["message"] == "millrace: run ended")
        .unwrap();
    assert_eq!(ended["fields"]["delivered"], 2000);
    assert_eq!(ended["span"]["name"], "millrace.run");
}

#[test]
fn rust_log_filters_the_traces() {
    let output = millrace()
        .args(["run", "--n", "2000", "--no-live", "--log-format", "json"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.lines().any(|l| l.starts_with('{')), "{stderr}");
}

#[test]
fn without_log_format_or_rust_log_no_trace_is_written() {
    let output = millrace()
        .args(["run", "--n", "2000", "--no-live"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("millrace.thread"), "{stderr}");
}
