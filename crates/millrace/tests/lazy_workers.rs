//! Fixed stages with more workers than the CPU budget start at one and grow, while all their
//! workers are busy in the stages' code, up to the count the user set
//! (`PipelineBuilder::lazy_workers`, on by default); equal neighbours started so start fused
//! and grow to their count before they may split.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{within, Inside};
use millrace::{DecisionReason, Pipeline, Stage};

/// A stage of `workers` workers, batch 1, in which every item waits at a barrier of
/// `workers`: it can only finish once every worker is in the stage's code at once.
fn all_at_once(workers: usize) -> Stage<u64, u64> {
    let barrier = Arc::new(Barrier::new(workers));
    Stage::map("meet", move |x: u64| {
        barrier.wait();
        x
    })
    .workers(workers)
    .batch(1)
}

#[test]
fn workers_blocked_in_the_stage_grow_to_the_count_the_stage_set() {
    let finished = within(60, || {
        Pipeline::source(0..16u64)
            .cpu_budget(2)
            .autoscale_interval(Duration::from_millis(10))
            .stage(all_at_once(8))
            .fold(0u64, |sum, x| sum + x)
            .run()
            .expect("the run completes once all 8 workers have met")
    });
    assert_eq!(finished.output, (0..16).sum::<u64>());
    let report = &finished.report;
    assert_eq!(report.stages()[0].workers, 8);
    let steps: Vec<(usize, usize)> = report.decisions().map(|(_, d)| (d.from, d.to)).collect();
    assert_eq!(
        steps,
        [(1, 2), (2, 4), (4, 8)],
        "doubling from one to the count"
    );
    for (_, decision) in report.decisions() {
        assert!(
            matches!(decision.reason, DecisionReason::AllBusy { count: 8, .. }),
            "{}",
            decision.reason
        );
        assert!(decision
            .reason
            .to_string()
            .contains("none waiting for input or room"));
    }
}

#[test]
fn with_lazy_workers_off_every_worker_starts_at_once() {
    let finished = within(60, || {
        Pipeline::source(0..16u64)
            .cpu_budget(2)
            .lazy_workers(false)
            .stage(all_at_once(8))
            .fold(0u64, |sum, x| sum + x)
            .run()
            .expect("all 8 workers are there from the start")
    });
    assert_eq!(finished.output, (0..16).sum::<u64>());
    assert_eq!(finished.report.stages()[0].workers, 8);
    assert_eq!(finished.report.decisions().count(), 0);
}

#[test]
fn a_stage_within_the_budget_starts_every_worker_and_is_never_resized() {
    let finished = within(60, || {
        Pipeline::source(0..4u64)
            .cpu_budget(4)
            .stage(all_at_once(4))
            .fold(0u64, |sum, x| sum + x)
            .run()
            .expect("4 workers on a budget of 4 start at once")
    });
    assert_eq!(finished.report.stages()[0].workers, 4);
    assert_eq!(finished.report.decisions().count(), 0);
}

#[test]
fn never_more_workers_in_the_stage_than_its_count_while_it_grows() {
    let inside = Inside::default();
    let finished = within(60, {
        let inside = inside.clone();
        move || {
            Pipeline::source(0..200u64)
                .cpu_budget(1)
                .autoscale_interval(Duration::from_millis(5))
                .stage(
                    Stage::map("wait", move |x: u64| {
                        inside.during(|| std::thread::sleep(Duration::from_millis(2)));
                        x
                    })
                    .workers(6)
                    .batch(1),
                )
                .fold(0u64, |sum, x| sum + x)
                .run()
                .expect("the run completes")
        }
    });
    assert_eq!(finished.output, (0..200).sum::<u64>());
    let workers = finished.report.stages()[0].workers;
    assert!((1..=6).contains(&workers), "{workers} workers");
    assert!(inside.most() <= 6);
    // 1 → 2 → 4 → 6: every step at most doubles, the last stops at the count.
    for (_, d) in finished.report.decisions() {
        assert!(d.to <= (d.from * 2).min(6), "{} → {}", d.from, d.to);
    }
}

#[test]
fn an_ordered_stage_that_grows_keeps_the_input_order() {
    let finished = within(60, || {
        Pipeline::source(0..300u64)
            .cpu_budget(1)
            .autoscale_interval(Duration::from_millis(5))
            .stage(
                Stage::map("wait", |x: u64| {
                    // Later items finish sooner: order must be restored, not kept by luck.
                    std::thread::sleep(Duration::from_micros(300 * (3 - x % 4)));
                    x
                })
                .workers(8)
                .batch(1)
                .ordered(),
            )
            .collect()
            .run()
            .expect("the run completes")
    });
    assert_eq!(finished.output, (0..300).collect::<Vec<u64>>());
}

#[test]
fn equal_stages_beyond_the_budget_start_fused_on_one_worker_and_grow_before_they_split() {
    // Two stages of 4 workers on a budget of 2 whose calls wait (20 ms each): they start as
    // one run on one worker, which grows while its worker is busy in their code, and may
    // split into a segment per stage only once it has all 4. No stage ever runs more than 4
    // calls at once.
    let (inside_a, inside_b) = (Inside::default(), Inside::default());
    let (in_a, in_b) = (inside_a.clone(), inside_b.clone());
    let wait = || std::thread::sleep(Duration::from_millis(20));
    let finished = within(60, move || {
        Pipeline::source(0..48u64)
            .cpu_budget(2)
            .autoscale_interval(Duration::from_millis(10))
            .stage(
                Stage::map("a", move |x: u64| {
                    in_a.during(wait);
                    x + 1
                })
                .workers(4)
                .batch(1),
            )
            .stage(
                Stage::map("b", move |x: u64| {
                    in_b.during(wait);
                    x * 2
                })
                .workers(4)
                .batch(1),
            )
            .fold(0u64, |sum, x| sum + x)
            .run()
            .expect("the run completes")
    });
    assert_eq!(finished.output, (0..48).map(|x| (x + 1) * 2).sum::<u64>());
    assert!(inside_a.most() <= 4 && inside_b.most() <= 4);
    let report = &finished.report;
    let decisions: Vec<(String, usize, usize, bool)> = report
        .decisions()
        .map(|(_, d)| {
            let split = matches!(d.reason, DecisionReason::Split { .. });
            (d.name.clone(), d.from, d.to, split)
        })
        .collect();
    assert_eq!(
        decisions.first(),
        Some(&("a+b".to_owned(), 1, 2, false)),
        "the fused run grew first, from one worker: {report}"
    );
    let mut workers = 1;
    for (name, from, to, split) in &decisions {
        if *split {
            assert_eq!((name.as_str(), *from, *to), ("a+b", 4, 4), "{report}");
        } else {
            assert_eq!((name.as_str(), *from), ("a+b", workers), "{report}");
            assert!(*to <= (from * 2).min(4), "{report}");
            workers = *to;
        }
    }
}
