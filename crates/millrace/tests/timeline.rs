//! The report's timeline: every part's counters sampled while the pipeline runs.

mod common;

use std::time::Duration;

use common::within;
use millrace::{Pipeline, Report, Stage};

/// 2,000 items through a filter and a stage that sleeps now and then (so the run spans
/// several sampling intervals), sampled every `every`.
fn run(every: Option<Duration>) -> Report {
    Pipeline::source(0..2000u64)
        .stage(Stage::filter("odd", |x: &u64| x % 2 == 1))
        .stage(
            Stage::map("slow", |x: u64| {
                if x % 100 == 1 {
                    std::thread::sleep(Duration::from_millis(10));
                }
                x
            })
            .workers(2),
        )
        .timeline(every)
        .default_batch(16)
        .for_each(|_| {})
        .run()
        .expect("the run completes")
        .report
}

#[test]
fn the_last_sample_holds_every_parts_final_counts() {
    let report = within(60, || run(Some(Duration::from_millis(5))));
    let timeline = report.timeline();
    assert_eq!(timeline.parts(), ["source", "odd", "slow", "sink"]);
    let last = timeline.samples().last().expect("a sample at the end");
    assert_eq!(last.at, report.wall());
    let parts = std::iter::once(report.source())
        .chain(report.stages())
        .chain(std::iter::once(report.sink()));
    for (sample, part) in last.parts.iter().zip(parts) {
        let t = &part.tally;
        assert_eq!(
            (
                sample.items_in,
                sample.items_out,
                sample.filtered,
                sample.failed
            ),
            (t.items_in, t.items_out, t.filtered, t.failed),
            "{}",
            part.name
        );
        assert_eq!(
            (sample.busy, sample.idle, sample.blocked),
            (t.busy, t.idle, t.blocked)
        );
        assert_eq!(sample.workers, part.workers, "{}", part.name);
    }
    assert_eq!(last.parts[1].filtered, 1000);
}

#[test]
fn counters_only_grow_and_the_steps_add_up_to_the_totals() {
    let report = within(60, || run(Some(Duration::from_millis(5))));
    let timeline = report.timeline();
    // One sample when the controller starts and one at the end, at least: the run sleeps
    // 10 × 10 ms, so there are usually many more.
    assert!(timeline.samples().len() >= 2, "{:?}", timeline.samples());
    for pair in timeline.samples().windows(2) {
        assert!(pair[0].at <= pair[1].at);
        for (a, b) in pair[0].parts.iter().zip(&pair[1].parts) {
            assert!(a.items_in <= b.items_in && a.items_out <= b.items_out);
            assert!(a.busy <= b.busy && a.idle <= b.idle && a.blocked <= b.blocked);
        }
    }
    let first = &timeline.samples()[0];
    let delivered: u64 = timeline.steps().map(|s| s.parts[3].items_in).sum();
    assert_eq!(
        delivered + first.parts[3].items_in,
        report.sink().tally.items_in
    );
    for step in timeline.steps() {
        assert_eq!(step.parts.len(), 4);
        if let Some(fill) = step.parts[2].queue_fill {
            assert!((0.0..=1.0).contains(&fill), "{fill}");
        }
        assert_eq!(
            step.parts[0].queue_fill, None,
            "the source has no input queue"
        );
    }
}

#[test]
fn a_run_without_sampling_has_an_empty_timeline() {
    let report = within(60, || run(None));
    assert!(report.timeline().samples().is_empty());
    assert_eq!(report.timeline().interval(), Duration::ZERO);
    assert_eq!(report.delivered(), 1000);
}

#[test]
fn an_autoscaled_runs_decisions_fall_within_its_timeline() {
    let report = within(120, || {
        Pipeline::source(0..20_000u64)
            .stage(Stage::map("cheap", |x: u64| x))
            .stage(Stage::map("dear", |x: u64| millrace_workloads::spin(4, x)))
            .autoscale()
            .cpu_budget(3)
            .autoscale_interval(Duration::from_millis(10))
            .timeline(Some(Duration::from_millis(10)))
            .default_batch(8)
            .for_each(|_| {})
            .run()
            .expect("the run completes")
            .report
    });
    let samples = report.timeline().samples();
    let end = samples.last().expect("samples").at;
    for (at, _) in report.decisions() {
        assert!(
            at <= end,
            "a decision at {at:?} after the last sample at {end:?}"
        );
    }
    // Each sample's worker counts are ones the autoscaler set (or started with).
    let counts: Vec<&Vec<usize>> = report.worker_history().iter().map(|(_, w)| w).collect();
    for sample in samples {
        let stages: Vec<usize> = sample.parts[1..3].iter().map(|p| p.workers).collect();
        assert!(
            counts.iter().any(|c| **c == stages),
            "{stages:?} not in {counts:?}"
        );
    }
}
