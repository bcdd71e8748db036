//! The text report follows the engine report's rules: ten errors listed and the rest
//! counted, latencies to three significant digits, `fused` for a stage with no queue of its
//! own, and every queue's capacity.

use millrace::{ErrorPolicy, Finished, Pipeline, Stage};
use millrace_cli::report_text::{render, ERRORS_SHOWN};
use millrace_cli::summary::Summary;
use millrace_cli::supervise::{Ended, Interruption};

/// The text report of a finished run.
fn text<R: 'static>(finished: Finished<R>) -> String {
    let (summary, _) = Summary::new(
        "p",
        None,
        Vec::new(),
        Ended::Joined(Ok(finished)),
        Interruption::None,
    )
    .unwrap();
    render(&summary)
}

/// The words of `stage`'s row.
fn row<'a>(text: &'a str, stage: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(stage))
        .unwrap_or_else(|| panic!("no row for {stage} in:\n{text}"))
        .split_whitespace()
        .collect()
}

#[test]
fn ten_errors_are_listed_and_the_rest_counted() {
    let finished = Pipeline::source(0..1_234u64)
        .stage(
            Stage::try_map("parse", |x: &u64| Err::<u64, _>(format!("bad {x}")))
                .on_error(ErrorPolicy::Skip),
        )
        .for_each(|_| {})
        .run()
        .unwrap();
    let text = text(finished);
    assert!(
        text.contains("\nerrors: 1,234 (first 10 below)\n"),
        "{text}"
    );
    let listed = text
        .lines()
        .filter(|l| l.starts_with("  stage `parse` failed on item #"))
        .count();
    assert_eq!(listed, ERRORS_SHOWN, "{text}");
    assert!(text.contains("\n  … and 1,224 more\n"), "{text}");
}

#[test]
fn no_more_are_counted_when_every_error_is_listed() {
    let finished = Pipeline::source(0..3u64)
        .stage(
            Stage::try_map("parse", |x: &u64| Err::<u64, _>(format!("bad {x}")))
                .on_error(ErrorPolicy::Skip),
        )
        .for_each(|_| {})
        .run()
        .unwrap();
    let text = text(finished);
    assert!(text.contains("\nerrors: 3 (first 3 below)\n"), "{text}");
    assert!(!text.contains("more"), "{text}");
}

#[test]
fn latencies_are_rounded_to_three_significant_digits() {
    let finished = Pipeline::source(0..1_000u64)
        .map("a", |x| x + 1)
        .for_each(|_| {})
        .run()
        .unwrap();
    let text = text(finished);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("latency (source to sink): "))
        .unwrap_or_else(|| panic!("no latency line in:\n{text}"));
    let parts: Vec<&str> = line.split(", ").collect();
    assert_eq!(parts.len(), 4, "{line}");
    for (part, name) in parts.iter().zip(["p50", "p90", "p99", "max"]) {
        let words: Vec<&str> = part.split(' ').collect();
        let [label, value, unit] = words[..] else {
            panic!("`{part}` is not `{name} <value> <unit>`");
        };
        assert_eq!(label, name, "{line}");
        assert!(["ns", "µs", "ms", "s"].contains(&unit), "{line}");
        let digits = value.chars().filter(char::is_ascii_digit).count();
        assert!(digits <= 3, "`{value}` has more than three digits: {line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

#[test]
fn a_fused_stage_shows_fused_and_no_capacity_of_its_own() {
    let finished = Pipeline::source(0..100u64)
        .fuse()
        .stage(Stage::map("a", |x: u64| x).workers(2))
        .stage(Stage::map("b", |x: u64| x).workers(2))
        .for_each(|_| {})
        .run()
        .unwrap();
    assert!(finished.report.stage("b").unwrap().fused);
    let text = text(finished);
    let b = row(&text, "b");
    assert_eq!(b[b.len() - 2..], ["-", "fused"], "{text}");
    assert_ne!(row(&text, "a").last(), Some(&"fused"), "{text}");
}

#[test]
fn every_queue_shows_its_capacity_in_items_or_else_in_batches() {
    let finished = Pipeline::source(0..100u64)
        .stage(Stage::map("a", |x: u64| x).capacity(64).batch(16))
        .stage(Stage::map("b", |x: u64| x).capacity(10).batch(3))
        .for_each(|_| {})
        .run()
        .unwrap();
    let report = finished.report.clone();
    let text = text(finished);
    // 64 items in batches of 16 are 4 batches; 10 in batches of 3 round up to 4 (12 items).
    for (stage, batches, items) in [("a", "4", "64"), ("b", "4", "12")] {
        let expected = match report.stage(stage).unwrap().queue_items() {
            Some(_) => [items, "items"],
            None => [batches, "batches"],
        };
        let r = row(&text, stage);
        assert_eq!(r[r.len() - 3..r.len() - 1], expected, "{text}");
    }
    assert!(
        text.lines().nth(2).unwrap().ends_with(" capacity  queue"),
        "{text}"
    );
}
