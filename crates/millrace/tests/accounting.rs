//! Accounting: per stage, items in, out, filtered, failed and cancelled add up; each stage's
//! items in are what the stage before it sent; the report's totals, stage settings, time
//! split, latency samples and end state describe the run; the bottleneck is the stage whose
//! workers are busiest.

mod common;

use std::time::Duration;

use millrace::{EndState, Pipeline, Stage};

use common::{assert_every_stage_balances, within};

#[test]
fn per_stage_counts_follow_the_items_through_the_pipeline() {
    let report = within(30, || {
        Pipeline::source(0..1_000u64)
            .stage(Stage::map("inc", |x: u64| x + 1).workers(3).batch(16))
            .stage(
                Stage::filter("even", |x: &u64| x % 2 == 0)
                    .workers(2)
                    .batch(8),
            )
            .stage(
                Stage::try_map("no-sixes", |x: &u64| {
                    if x % 6 == 0 {
                        Err("injected")
                    } else {
                        Ok(*x)
                    }
                })
                .workers(2),
            )
            .stage(
                Stage::flat_map("twice", |x: u64| [x, x])
                    .workers(2)
                    .batch(5),
            )
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    let t = |name: &str| report.stage(name).unwrap().tally.clone();
    let (inc, even, no6, twice) = (t("inc"), t("even"), t("no-sixes"), t("twice"));
    assert_eq!((inc.items_in, inc.items_out), (1_000, 1_000));
    assert_eq!(
        (even.items_in, even.items_out, even.filtered),
        (1_000, 500, 500)
    );
    // Even numbers in 1..=1000 that are multiples of 6: 166.
    assert_eq!((no6.items_in, no6.items_out, no6.failed), (500, 334, 166));
    assert_eq!((twice.items_in, twice.items_out), (334, 668));
    assert_eq!(report.items_in(), 1_000);
    assert_eq!(report.source().tally.items_out, 1_000);
    assert_eq!(report.sink().tally.items_in, 668);
    assert_eq!(report.delivered(), 668);
    assert_eq!(
        (report.filtered(), report.failed(), report.cancelled()),
        (500, 166, 0)
    );
    for s in report.stages() {
        let t = &s.tally;
        assert_eq!(
            t.items_in,
            s.passed() + t.filtered + t.failed + t.cancelled,
            "{}",
            s.name
        );
    }
    assert_eq!(report.stage("twice").unwrap().passed(), 334);
    // A flat-map's children are items of their own: counted as expanded, so every stage
    // and the whole run balance (issue 10).
    assert_eq!((twice.expanded, report.expanded()), (334, 334));
    assert_every_stage_balances(&report);
    assert!(report.is_balanced(), "{report}");
    assert!(report
        .to_string()
        .contains("1,000 in + 334 from flat-maps, 668 delivered"));
}

#[test]
fn flat_map_children_have_ids_of_their_own_in_errors_and_responses() {
    use millrace::{ItemId, Outcome};
    let (running, responses) = Pipeline::source(0..50u64)
        .stage(Stage::flat_map("lines", |x: u64| {
            (0..x % 4).map(move |i| x * 10 + i)
        }))
        .stage(Stage::try_map("parse", |&y: &u64| {
            if y % 10 == 2 {
                Err(format!("bad line {y}"))
            } else {
                Ok(y)
            }
        }))
        .respond()
        .unwrap();
    let got: Vec<(ItemId, Outcome<u64>)> = within(30, move || responses.collect());
    let report = running.join().unwrap().report;
    let mut ids: Vec<ItemId> = got.iter().map(|(id, _)| *id).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "every response has an id of its own");
    for (id, outcome) in &got {
        let x = id.0;
        match (x % 4, outcome) {
            (0, Outcome::Filtered { .. }) => assert!(!id.is_child()),
            // One output keeps the parent's id.
            (1, Outcome::Output(y)) => assert_eq!((*id, *y), (ItemId::new(x), x * 10)),
            (_, Outcome::Output(y)) => {
                let i = u64::from(id.position().unwrap()) - 1;
                assert_eq!(*y, x * 10 + i);
                assert_eq!(id.parent(), Some(ItemId::new(x)));
            }
            (3, Outcome::Failed(e)) => {
                assert_eq!(e.id(), *id);
                assert_eq!(
                    e.to_string(),
                    format!(
                        "stage `parse` failed on item #{x}.3: bad line {}",
                        x * 10 + 2
                    )
                );
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    assert!(report.is_balanced(), "{report}");
}

#[test]
fn without_flat_maps_the_report_balances() {
    let report = within(30, || {
        Pipeline::source(0..2_000u64)
            .stage(Stage::filter("thirds", |x: &u64| x % 3 != 0).workers(2))
            .stage(
                Stage::map("boom", |x: u64| {
                    if x % 100 == 1 {
                        panic!("injected");
                    }
                    x
                })
                .workers(3),
            )
            .collect()
            .run()
            .unwrap()
            .report
    });
    assert!(report.is_balanced(), "{report}");
    assert_eq!(report.filtered(), 667);
    // x ≡ 1 (mod 100) and not a multiple of 3: 20 such x below 2000, 6 of them multiples of 3.
    assert_eq!(report.failed(), 14);
    assert_eq!(report.delivered(), 2_000 - 667 - 14);
}

#[test]
fn stage_reports_carry_names_workers_and_queue_capacity_in_batches() {
    let report = within(30, || {
        Pipeline::source(0..10u64)
            .default_capacity(100)
            .default_batch(10)
            // Every worker from the start (3 may be more than this machine's cores).
            .lazy_workers(false)
            .stage(
                Stage::map("first", |x: u64| x)
                    .workers(3)
                    .capacity(64)
                    .batch(16),
            )
            .stage(Stage::map("second", |x: u64| x).capacity(10).batch(3))
            .stage(Stage::map("third", |x: u64| x))
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    let names: Vec<&str> = report.stages().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["first", "second", "third"]);
    let settings: Vec<(usize, usize)> = report
        .stages()
        .iter()
        .map(|s| (s.workers, s.queue_capacity))
        .collect();
    // Capacity is rounded up to whole batches: 64/16 = 4, 10/3 → 4, 100/10 = 10.
    assert_eq!(settings, [(3, 4), (1, 4), (1, 10)]);
    assert_eq!(report.source().name, "source");
    assert_eq!(report.sink().name, "sink");
    assert_eq!(report.sink().queue_capacity, 10);
}

#[test]
fn pipeline_default_workers_apply_to_stages_without_their_own() {
    let report = within(30, || {
        Pipeline::source(0..10u64)
            .default_workers(3)
            .lazy_workers(false)
            .map("default", |x| x)
            .stage(Stage::map("own", |x: u64| x).workers(2))
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    assert_eq!(report.stage("default").unwrap().workers, 3);
    assert_eq!(report.stage("own").unwrap().workers, 2);
}

#[test]
fn time_shares_are_fractions_and_latency_covers_every_delivered_item() {
    let report = within(30, || {
        Pipeline::source(0..500u64)
            .stage(Stage::map("a", |x: u64| x).workers(2).batch(7))
            .stage(Stage::map("b", |x: u64| x).batch(3))
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    for s in report
        .stages()
        .iter()
        .chain([report.source(), report.sink()])
    {
        for share in [s.busy, s.idle, s.blocked, s.queue_fill] {
            assert!((0.0..=1.0).contains(&share), "{}: {share}", s.name);
        }
        assert!(
            s.busy + s.idle + s.blocked <= 1.05,
            "{}: shares overlap",
            s.name
        );
    }
    let latency = report.latency();
    assert_eq!(latency.samples, report.delivered());
    assert!(latency.p50 <= latency.p90 && latency.p90 <= latency.p99);
    assert!(latency.p99 <= latency.max);
    assert!(report.throughput() > 0.0);
    assert!(report.wall() > Duration::ZERO);
}

/// A pipeline whose middle stage sleeps 1 ms per item while the others do nothing.
fn slow_in_the_middle(first: &str) -> millrace::Report {
    let first = first.to_owned();
    within(60, move || {
        // One fixed worker each (not autoscaled), so each stage is judged on its own.
        Pipeline::source(0..300u64)
            .default_workers(1)
            .stage(Stage::map(&first, |x: u64| x).batch(4))
            .stage(
                Stage::map("slow", |x: u64| {
                    std::thread::sleep(Duration::from_millis(1));
                    x
                })
                .batch(4),
            )
            .stage(Stage::map("after", |x: u64| x).batch(4))
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    })
}

#[test]
fn the_bottleneck_is_the_stage_whose_workers_are_busiest() {
    let report = within(60, || {
        Pipeline::source(0..300u64)
            .default_workers(1)
            .stage(
                Stage::map("slow", |x: u64| {
                    std::thread::sleep(Duration::from_millis(1));
                    x
                })
                .batch(4),
            )
            .stage(Stage::map("after", |x: u64| x).batch(4))
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    let b = report
        .bottleneck()
        .expect("a run that did work names a bottleneck");
    assert_eq!(b.stage, "slow", "{report}");
    assert!(b.reason.to_string().starts_with("slow: "), "{}", b.reason);
    assert!(report.stage("after").unwrap().busy < 0.5, "{report}");
    let shown = report.to_string();
    for name in ["source", "slow", "after", "sink", "bottleneck: slow"] {
        assert!(shown.contains(name), "the report shows `{name}`:\n{shown}");
    }
}

#[test]
fn a_stage_that_finished_its_input_early_is_not_reported_busy() {
    let report = slow_in_the_middle("quick");
    let quick = report.stage("quick").unwrap();
    // `quick` passes 300 items on in well under a millisecond of a 300 ms run.
    assert!(quick.busy < 0.5, "{report}");
    assert_eq!(report.bottleneck().unwrap().stage, "slow", "{report}");
}

#[test]
fn a_snapshot_mid_run_reports_a_running_pipeline() {
    within(30, || {
        let running = Pipeline::source(0u64..)
            .stage(Stage::map("a", |x: u64| x).batch(4))
            .for_each(|_| std::thread::sleep(Duration::from_micros(20)))
            .spawn()
            .unwrap();
        let handle = running.handle();
        common::eventually(20, "deliveries", || handle.snapshot().delivered() > 10);
        let snapshot = handle.snapshot();
        assert_eq!(snapshot.end(), EndState::Running);
        assert!(snapshot.items_in() >= snapshot.delivered());
        handle.stop();
        let report = running.join().unwrap().report;
        assert_eq!(report.end(), EndState::Stopped);
        assert!(report.delivered() >= snapshot.delivered());
    });
}

#[test]
fn a_snapshot_after_the_run_ended_says_how_it_ended() {
    // It said `Running` for good (a new user's trial).
    within(30, || {
        let running = Pipeline::source(0..100u64)
            .map("a", |x: u64| x)
            .for_each(|_| {})
            .spawn()
            .unwrap();
        let handle = running.handle();
        let report = running.join().unwrap().report;
        assert_eq!(report.end(), EndState::Completed);
        let snapshot = handle.snapshot();
        assert_eq!(snapshot.end(), EndState::Completed);
        assert_eq!(snapshot.delivered(), 100);

        let running = Pipeline::source(0u64..)
            .map("a", |x: u64| x)
            .for_each(|_| std::thread::sleep(Duration::from_micros(20)))
            .spawn()
            .unwrap();
        let handle = running.handle();
        common::eventually(20, "deliveries", || handle.snapshot().delivered() > 10);
        handle.cancel();
        let report = running.join().unwrap().report;
        assert_eq!(report.end(), EndState::Cancelled);
        assert_eq!(handle.snapshot().end(), EndState::Cancelled);
    });
}

#[test]
fn a_snapshot_after_a_failed_run_says_it_failed() {
    // It said `Stopped` once `join` had taken the error for its result (a new user's trial).
    within(30, || {
        let running = Pipeline::source(0..1_000u64)
            .stage(
                Stage::try_map(
                    "check",
                    |x: &u64| if *x == 7 { Err("seven") } else { Ok(*x) },
                )
                .on_error(millrace::ErrorPolicy::Stop),
            )
            .for_each(|_| {})
            .spawn()
            .unwrap();
        let handle = running.handle();
        let error = running
            .join()
            .expect_err("item 7 stops the run with its error");
        assert_eq!(error.report().map(|r| r.end()), Some(EndState::Failed));
        assert_eq!(handle.snapshot().end(), EndState::Failed);

        let panicking = (0..1_000u64).map(|x| if x == 500 { panic!("bad input") } else { x });
        let running = Pipeline::source(panicking)
            .map("a", |x: u64| x)
            .for_each(|_| {})
            .spawn()
            .unwrap();
        let handle = running.handle();
        assert!(running.join().is_err(), "the source panicked");
        assert_eq!(handle.snapshot().end(), EndState::Failed);
    });
}

#[test]
fn a_snapshot_of_a_run_read_through_its_outputs_says_how_it_ended() {
    // It said `Running` for good: only a sink thread signalled the end (a new user's trial).
    within(30, || {
        let mut outputs = Pipeline::source(0..100u64)
            .map("a", |x: u64| x)
            .outputs()
            .unwrap();
        let handle = outputs.handle();
        assert_eq!(outputs.by_ref().count(), 100);
        assert_eq!(handle.snapshot().end(), EndState::Completed);
        assert_eq!(outputs.finish().unwrap().end(), EndState::Completed);

        let mut outputs = Pipeline::source(0u64..)
            .map("a", |x: u64| x)
            .outputs()
            .unwrap();
        let handle = outputs.handle();
        assert_eq!(outputs.by_ref().take(10).count(), 10);
        drop(outputs);
        assert_eq!(handle.snapshot().end(), EndState::Cancelled);
    });
}

#[test]
fn a_stage_inside_its_first_batch_counts_as_busy_before_the_batch_ends() {
    // Issue 14, bug 1: a stage still inside its first batch showed busy 0%, and the
    // bottleneck was named elsewhere. The gate holds the batch open until the test is done.
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let gate = std::sync::Mutex::new(gate);
    within(30, move || {
        let running = Pipeline::source(0..10u64)
            .stage(
                Stage::map("held", move |x: u64| {
                    if x == 0 {
                        let _ = gate.lock().unwrap().recv();
                    }
                    x
                })
                .workers(1)
                .batch(10),
            )
            .for_each(|_| {})
            .spawn()
            .unwrap();
        let handle = running.handle();
        // Only the batch in progress can make it busy (it never ends until the gate opens),
        // and as the run goes on it is the held stage that holds the pipeline back.
        common::eventually(20, "the held stage to be busy and the bottleneck", || {
            let snapshot = handle.snapshot();
            snapshot.stage("held").is_some_and(|s| s.busy > 0.5)
                && snapshot.bottleneck().is_some_and(|b| b.stage == "held")
        });
        assert_eq!(handle.snapshot().stage("held").unwrap().tally.items_in, 10);
        let _ = open.send(());
        let report = running.join().unwrap().report;
        assert_eq!(report.delivered(), 10);
        let held = report.stage("held").unwrap();
        assert!(held.busy <= 1.0 && held.busy + held.idle + held.blocked <= 1.0 + 1e-9);
    });
}

#[test]
fn an_empty_run_reports_zero_everywhere_and_completes() {
    let report = within(30, || {
        Pipeline::source(Vec::<u64>::new())
            .stage(Stage::map("a", |x: u64| x).workers(3))
            .collect()
            .run()
            .unwrap()
            .report
    });
    assert_eq!(report.end(), EndState::Completed);
    assert_eq!((report.items_in(), report.delivered()), (0, 0));
    assert!(report.is_balanced());
    assert_eq!(report.latency().samples, 0);
    assert!(report.bottleneck().is_none());
}

#[test]
fn a_stage_that_keeps_up_with_a_slow_source_reads_its_queue_as_empty() {
    // It read 25% full: each receive counted the batch it had waited for, 1 of 4 slots
    // (a new user's trial).
    let report = within(30, || {
        Pipeline::source((0..20u64).inspect(|_| std::thread::sleep(Duration::from_millis(2))))
            .stage(Stage::map("keeps-up", |x: u64| x).workers(1))
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    let stage = report.stage("keeps-up").unwrap();
    assert!(stage.queue_fill < 0.25, "{report}");
}
