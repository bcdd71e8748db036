//! Adjacent fixed stages with equal worker counts start fused and split once their workers
//! are all busy (`PipelineBuilder::adaptive_fusion`, on by default): outputs, per-stage
//! worker bounds and the report hold across the split. An iterator source in front of such
//! a run is cut on the run's workers until it splits.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::{report_of, within, Inside};
use millrace::{DecisionReason, Finished, Pipeline, Stage};

fn splits(finished: &Finished<Vec<u64>>) -> usize {
    finished
        .report
        .decisions()
        .filter(|(_, d)| matches!(d.reason, DecisionReason::Split { .. }))
        .count()
}

/// The names of the threads an iterator's `next` ran on.
#[derive(Clone, Default)]
struct Threads(Arc<Mutex<BTreeSet<String>>>);

impl Threads {
    fn record(&self) {
        let name = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        self.0.lock().expect("no panic holds it").insert(name);
    }

    fn names(&self) -> BTreeSet<String> {
        self.0.lock().expect("no panic holds it").clone()
    }
}

#[test]
fn a_busy_fused_run_splits_and_no_stage_runs_more_calls_than_its_count() {
    let (a, b) = (Arc::new(Inside::default()), Arc::new(Inside::default()));
    let (in_a, in_b) = (Arc::clone(&a), Arc::clone(&b));
    let threads = Threads::default();
    let on = threads.clone();
    let mut finished = within(60, || {
        Pipeline::source((0..300u64).inspect(move |_| on.record()))
            .autoscale_interval(Duration::from_millis(2))
            // (A small capacity: the source is read on the run's workers until it splits.)
            .stage(
                Stage::map("a", move |x: u64| in_a.during(|| x * 2))
                    .workers(2)
                    .capacity(64),
            )
            .stage(
                Stage::map("b", move |x: u64| {
                    in_b.during(|| {
                        std::thread::sleep(Duration::from_millis(1));
                        x + 1
                    })
                })
                .workers(2)
                .capacity(64),
            )
            .collect()
            .run()
            .expect("the run completes")
    });
    finished.output.sort_unstable();
    assert_eq!(
        finished.output,
        (0..300).map(|x| x * 2 + 1).collect::<Vec<_>>()
    );
    assert_eq!(splits(&finished), 1, "the busy run split once");
    let (_, decision) = finished
        .report
        .decisions()
        .next()
        .expect("the split is recorded");
    assert_eq!(
        (decision.name.as_str(), decision.from, decision.to),
        ("a+b", 2, 2)
    );
    assert!(decision
        .reason
        .to_string()
        .starts_with("split a+b into stages of their own"));
    let stages = finished.report.stages();
    assert!(
        !stages[1].fused,
        "b reads a connector of its own at the end"
    );
    assert!(stages[1].queue_capacity > 0);
    assert_eq!((stages[0].workers, stages[1].workers), (2, 2));
    assert!(
        a.most() <= 2 && b.most() <= 2,
        "at most 2 calls at once in each stage, split or not"
    );
    assert_eq!(stages[1].tally.items_in, 300);
    // The source was cut on the fused workers, then on a thread of its own once split.
    let names = threads.names();
    assert!(names.contains("millrace-source"), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("millrace-b-")),
        "{names:?}"
    );
}

#[test]
fn a_stage_whose_calls_meet_at_a_barrier_hands_over_without_hanging() {
    // `b`'s calls meet in pairs, one from each of its two workers, and the worker with the
    // odd item takes 2 ms longer to finish its batch (one item): its partner is back at the
    // barrier with the next item well before it. A split requested then used to wait for
    // that partner to finish its batch, which needed a call from a worker that had already
    // left: the run hung. Now each worker that leaves starts the stages' own workers in its
    // place, and one of those meets the partner at the barrier.
    for _ in 0..3 {
        let barrier = Arc::new(Barrier::new(2));
        let b = Arc::new(Inside::default());
        let in_b = Arc::clone(&b);
        let mut finished = within(60, move || {
            Pipeline::source(0..400u64)
                .autoscale_interval(Duration::from_millis(2))
                .stage(Stage::map("a", |x: u64| x * 2).workers(2).batch(1))
                .stage(
                    Stage::map("b", move |y: u64| {
                        in_b.during(|| {
                            barrier.wait();
                            if y % 4 == 2 {
                                std::thread::sleep(Duration::from_millis(2));
                            }
                            y + 1
                        })
                    })
                    .workers(2)
                    .batch(1),
                )
                .collect()
                .run()
                .expect("the run completes")
        });
        finished.output.sort_unstable();
        assert_eq!(
            finished.output,
            (0..400).map(|x| x * 2 + 1).collect::<Vec<_>>()
        );
        assert!(b.most() <= 2, "at most 2 calls at once in b, split or not");
        assert_eq!(splits(&finished), 1, "{}", finished.report);
    }
}

#[test]
fn a_source_in_front_of_a_cheap_run_is_cut_on_the_runs_workers_and_stays_there_unless_timed_costly()
{
    let threads = Threads::default();
    let on = threads.clone();
    // (The iterator notes its thread now and then: noting it costs more than the stages.)
    let source = (0..100_000u64).inspect(move |x| {
        if x % 1000 == 0 {
            on.record();
        }
    });
    let finished = within(60, || {
        Pipeline::source(source)
            .autoscale_interval(Duration::from_millis(5))
            .stage(Stage::map("a", |x: u64| x + 1).workers(1).capacity(8))
            .stage(Stage::map("b", |x: u64| x * 3).workers(1).capacity(8))
            .collect()
            .run()
            .expect("the run completes")
    });
    let mut output = finished.output.clone();
    output.sort_unstable();
    assert_eq!(
        output,
        (0..100_000u64).map(|x| (x + 1) * 3).collect::<Vec<_>>()
    );
    let source = finished.report.source();
    assert_eq!(
        (source.tally.items_in, source.tally.items_out),
        (100_000, 100_000)
    );
    let names = threads.names();
    // Each part's share of an 8-item batch is far below a hand-off: the run stays fused, and
    // the source with it, on the run's one worker. On a busy machine a preemption inside a
    // timed batch can inflate its cost past the split rule (the rule times wall clock), and
    // the run then splits as a costly one would, handing the source to a thread of its own:
    // pinned then is where the iterator ran, and that nothing was lost.
    if splits(&finished) == 0 {
        assert_eq!(names, BTreeSet::from(["millrace-b-0".to_owned()]));
        // No connector holds the source's batches: they may take the first stage's whole
        // capacity (one worker), not a quarter of it.
        assert!(source.fused);
        assert_eq!(source.batch_limit, 8);
        assert!((1..=8).contains(&source.batch));
    } else {
        let allowed = BTreeSet::from(["millrace-b-0".to_owned(), "millrace-source".to_owned()]);
        assert!(names.is_subset(&allowed), "{names:?}");
        assert!(
            names.contains("millrace-b-0"),
            "read on the run's worker first: {names:?}"
        );
    }
}

#[test]
fn cheap_equal_stages_deliver_everything_and_the_report_says_how_they_ran() {
    let finished = within(60, || {
        Pipeline::source(0..200_000u64)
            .stage(Stage::map("wrap", |x: u64| x + 1).workers(1))
            .stage(Stage::map("square", |x: u64| x * 3).workers(1))
            .stage(Stage::map("scale", |x: u64| x ^ 7).workers(1))
            .collect()
            .run()
            .expect("the run completes")
    });
    let mut output = finished.output.clone();
    output.sort_unstable();
    let mut want: Vec<u64> = (0..200_000u64).map(|x| ((x + 1) * 3) ^ 7).collect();
    want.sort_unstable();
    assert_eq!(output, want);
    // Fused at the end unless the controller found the run busy and split it (a loaded
    // machine can make even cheap stages look busy): the report agrees with itself.
    let stages = finished.report.stages();
    let split = splits(&finished) == 1;
    assert!(
        stages[1..].iter().all(|s| s.fused != split),
        "{}",
        finished.report
    );
    assert!(!stages[0].fused, "the run's first stage heads it");
    // The default capacity lets the source's connector carry large batches: the source
    // keeps a thread of its own beside the run.
    assert!(!finished.report.source().fused, "{}", finished.report);
}

#[test]
fn with_adaptive_fusion_off_every_stage_runs_on_its_own_workers() {
    let finished = within(60, || {
        Pipeline::source(0..10_000u64)
            .adaptive_fusion(false)
            .stage(Stage::map("a", |x: u64| x + 1).workers(2))
            .stage(Stage::map("b", |x: u64| x + 1).workers(2))
            .collect()
            .run()
            .expect("the run completes")
    });
    assert_eq!(finished.output.len(), 10_000);
    assert!(finished.report.stages().iter().all(|s| !s.fused));
    assert_eq!(splits(&finished), 0);
}

#[test]
fn a_cancel_before_or_during_the_split_ends_the_run() {
    for cancel_after in [0, 3, 20, 60] {
        let finished = within(60, move || {
            let running = Pipeline::source(0..1_000_000u64)
                .autoscale_interval(Duration::from_millis(2))
                .stage(Stage::map("a", |x: u64| x + 1).workers(2))
                .stage(
                    Stage::map("b", |x: u64| {
                        std::thread::sleep(Duration::from_micros(200));
                        x
                    })
                    .workers(2),
                )
                .stage(Stage::map("c", |x: u64| x + 1).workers(2))
                .collect()
                .spawn()
                .expect("the pipeline starts");
            std::thread::sleep(Duration::from_millis(cancel_after));
            running.cancel();
            running.join()
        });
        let report = report_of(finished);
        let delivered = report.delivered();
        let accounted = delivered + report.cancelled() + report.failed() + report.filtered();
        assert_eq!(accounted, report.items_in(), "{report}");
    }
}

#[test]
fn a_long_autoscale_interval_holds_though_the_timeline_samples_more_often() {
    // The timeline samples every 100 ms by default; the controller sizes and splits only
    // every autoscale interval. A busy run that would split at its first look does not
    // within a run shorter than the interval.
    let finished = within(60, || {
        Pipeline::source(0..800u64)
            .autoscale_interval(Duration::from_secs(3600))
            .stage(Stage::map("a", |x: u64| x + 1).workers(2).capacity(64))
            .stage(
                Stage::map("b", |x: u64| {
                    std::thread::sleep(Duration::from_millis(1));
                    x
                })
                .workers(2)
                .capacity(64),
            )
            .collect()
            .run()
            .expect("the run completes")
    });
    assert_eq!(finished.output.len(), 800);
    assert_eq!(splits(&finished), 0, "{}", finished.report);
    assert!(finished.report.stages()[1].fused);
    assert!(
        !finished.report.timeline().samples().is_empty(),
        "the timeline still sampled"
    );
}
