//! Shutdown: a run ends when its input is exhausted and everything drained; a graceful stop
//! admits nothing more and finishes everything already admitted; a cancel drops what is in
//! flight and lists it by id; submitters hand items back once the pipeline is stopped; an
//! `Outputs` iterator dropped early cancels the rest cleanly.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millrace::{EndState, ItemId, Outcome, Pipeline, Stage, TrySubmitError};

use common::{assert_every_stage_balances, eventually, within};

#[test]
fn a_run_ends_when_the_source_is_exhausted_and_everything_drained() {
    let finished = within(30, || {
        Pipeline::source(0..5_000u64)
            .stage(Stage::map("a", |x: u64| x + 1).workers(3).batch(7))
            .stage(Stage::filter("b", |x: &u64| x % 2 == 0).workers(2))
            .collect()
            .run()
            .unwrap()
    });
    assert_eq!(finished.output.len(), 2_500);
    let report = finished.report;
    assert_eq!(report.end(), EndState::Completed);
    assert_eq!(
        (report.items_in(), report.delivered(), report.filtered()),
        (5_000, 2_500, 2_500)
    );
    assert!(report.is_balanced());
}

#[test]
fn stop_mid_run_finishes_every_admitted_item() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = Arc::clone(&got);
    let report = within(30, move || {
        let running = Pipeline::source(0u64..)
            .stage(
                Stage::map("slow", |x: u64| x)
                    .workers(4)
                    .batch(4)
                    .capacity(16),
            )
            .stage(
                Stage::filter("odd", |x: &u64| x % 2 == 1)
                    .workers(2)
                    .ordered(),
            )
            .for_each(move |x| {
                std::thread::sleep(Duration::from_micros(50));
                g.lock().unwrap().push(x);
            })
            .spawn()
            .unwrap();
        let handle = running.handle();
        eventually(20, "200 deliveries", || {
            handle.snapshot().delivered() >= 200
        });
        handle.stop();
        assert!(handle.is_stopping());
        running.join().unwrap().report
    });
    assert_eq!(report.end(), EndState::Stopped);
    assert_eq!(report.cancelled(), 0, "a stop cancels nothing");
    assert!(report.unfinished().is_empty());
    assert!(report.is_balanced(), "{report}");
    // Admission is a prefix of the input, and every odd item of it came out, in order.
    let want: Vec<u64> = (0..report.items_in()).filter(|x| x % 2 == 1).collect();
    assert_eq!(*got.lock().unwrap(), want);
}

#[test]
fn stop_before_any_input_ends_an_endless_run() {
    let report = within(30, || {
        let running = Pipeline::source(0u64..)
            .map("id", |x| x)
            .for_each(|_| {})
            .spawn()
            .unwrap();
        running.stop();
        running.join().unwrap().report
    });
    assert_eq!(report.end(), EndState::Stopped);
    assert!(report.is_balanced());
    assert_eq!(report.cancelled(), 0);
}

#[test]
fn cancel_lists_unfinished_items_by_id_and_the_report_balances() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = Arc::clone(&got);
    let report = within(30, move || {
        let running = Pipeline::source(0u64..)
            .stage(
                Stage::map("slow", |x: u64| {
                    std::thread::sleep(Duration::from_micros(500));
                    x
                })
                .workers(4)
                .batch(2)
                .capacity(8),
            )
            .stage(Stage::map("after", |x: u64| x).workers(2).batch(3))
            .for_each(move |x| g.lock().unwrap().push(x))
            .spawn()
            .unwrap();
        let handle = running.handle();
        eventually(20, "50 deliveries", || handle.snapshot().delivered() >= 50);
        handle.cancel();
        running.join().expect("a cancel is not an error").report
    });
    assert_eq!(report.end(), EndState::Cancelled);
    assert!(report.is_balanced(), "{report}");
    let unfinished: Vec<u64> = report.unfinished().iter().map(|id| id.0).collect();
    assert!(!unfinished.is_empty(), "something was in flight: {report}");
    assert_eq!(report.cancelled(), unfinished.len() as u64);
    // Delivered and unfinished ids split the admitted ids between them.
    let delivered: BTreeSet<u64> = got.lock().unwrap().iter().copied().collect();
    let unfinished_set: BTreeSet<u64> = unfinished.iter().copied().collect();
    assert_eq!(
        unfinished_set.len(),
        unfinished.len(),
        "each unfinished id once"
    );
    assert!(delivered.is_disjoint(&unfinished_set));
    let all: BTreeSet<u64> = delivered.union(&unfinished_set).copied().collect();
    assert_eq!(all, (0..report.items_in()).collect());
}

#[test]
fn cancel_releases_batches_held_behind_a_gap_in_an_ordered_stage() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = Arc::clone(&got);
    let report = within(30, move || {
        // Item 20 is held in the stage until the test lets it go; the other workers go on
        // with the items after it, whose batches wait behind the gap in the reorder buffer.
        let release = Arc::new(AtomicBool::new(false));
        let behind = Arc::new(AtomicU64::new(0));
        let (gate, past) = (Arc::clone(&release), Arc::clone(&behind));
        let running = Pipeline::source(0..10_000u64)
            .stage(
                Stage::map("stuck", move |x: u64| {
                    if x == 20 {
                        while !gate.load(Ordering::Acquire) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    } else if x > 20 {
                        past.fetch_add(1, Ordering::AcqRel);
                    }
                    x
                })
                .workers(4)
                .batch(1)
                .ordered(),
            )
            .for_each(move |x| g.lock().unwrap().push(x))
            .spawn()
            .unwrap();
        let handle = running.handle();
        eventually(20, "the items before the held one", || {
            handle.snapshot().delivered() >= 20
        });
        // The reorder window (64 batches at least) has room for these behind the gap.
        eventually(20, "items processed behind the held one", || {
            behind.load(Ordering::Acquire) >= 16
        });
        handle.cancel();
        release.store(true, Ordering::Release);
        running.join().unwrap().report
    });
    assert!(report.is_balanced(), "{report}");
    // The batches behind the gap were counted out of the stage when it processed them; the
    // cancel drops them there, so they count as cancelled instead, once.
    assert_every_stage_balances(&report);
    assert_eq!(report.cancelled(), report.unfinished().len() as u64);
    let got = got.lock().unwrap().clone();
    assert_eq!(
        got,
        (0..got.len() as u64).collect::<Vec<_>>(),
        "delivered in order"
    );
    assert!(got.len() >= 20, "the items before the held one: {got:?}");
    let unfinished: Vec<u64> = report.unfinished().iter().map(|id| id.0).collect();
    let rest: Vec<u64> = (got.len() as u64..report.items_in()).collect();
    assert_eq!(
        unfinished, rest,
        "everything after the delivered prefix is unfinished"
    );
}

#[test]
fn submit_after_stop_hands_the_item_back() {
    within(30, || {
        let (submitter, builder) = Pipeline::submitter::<String>(8);
        let running = builder
            .map("len", |s: String| s.len())
            .collect()
            .spawn()
            .unwrap();
        for i in 0..5 {
            assert_eq!(
                submitter.submit(format!("item {i}")).unwrap(),
                ItemId::new(i)
            );
        }
        running.stop();
        // The source notices the stop shortly; a submit racing it may still be admitted.
        let mut accepted = 5;
        loop {
            match submitter.submit(format!("late {accepted}")) {
                Ok(_) => accepted += 1,
                Err(e) => {
                    assert_eq!(e.into_inner(), format!("late {accepted}"));
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        match submitter.try_submit("later".to_owned()) {
            Err(TrySubmitError::Stopped(item)) => assert_eq!(item, "later"),
            other => panic!("expected Stopped, got {other:?}"),
        }
        let finished = running.join().unwrap();
        assert_eq!(
            finished.report.items_in(),
            accepted,
            "every accepted item is admitted"
        );
        assert_eq!(finished.output.len() as u64, accepted);
        assert_eq!(finished.report.end(), EndState::Stopped);
        assert!(finished.report.is_balanced());
        let err = submitter.submit("after the end".to_owned()).unwrap_err();
        assert_eq!(err.0, "after the end");
    });
}

#[test]
fn submits_racing_a_stop_are_either_refused_or_answered() {
    within(30, || {
        let (submitter, builder) = Pipeline::submitter::<u64>(4);
        let (running, responses) = builder
            .stage(Stage::map("id", |x: u64| x).workers(2).batch(4))
            .respond()
            .unwrap();
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let submitter = submitter.clone();
                std::thread::spawn(move || {
                    let mut accepted = Vec::new();
                    for i in 0.. {
                        match submitter.submit(t * 1_000_000 + i) {
                            Ok(id) => accepted.push((id, t * 1_000_000 + i)),
                            Err(_) => return accepted,
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        drop(submitter);
        let mut answered = Vec::new();
        for (id, outcome) in responses {
            let Outcome::Output(x) = outcome else {
                panic!("item {id} did not finish: {outcome:?}");
            };
            answered.push((id, x));
            if answered.len() == 300 {
                running.stop();
            }
        }
        let mut accepted: Vec<(ItemId, u64)> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        accepted.sort_unstable();
        answered.sort_unstable();
        assert_eq!(
            answered, accepted,
            "each accepted submit is answered, with its item"
        );
        let report = running.join().unwrap().report;
        assert_eq!(report.items_in(), accepted.len() as u64);
        assert!(report.is_balanced());
        assert_eq!(report.cancelled(), 0);
    });
}

#[test]
fn the_input_ends_when_every_submitter_is_dropped() {
    let report = within(30, || {
        let (submitter, builder) = Pipeline::submitter::<u64>(16);
        let running = builder.map("id", |x| x).for_each(|_| {}).spawn().unwrap();
        let threads: Vec<_> = (0..3u64)
            .map(|t| {
                let submitter = submitter.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        submitter.submit(t * 100 + i).unwrap();
                    }
                })
            })
            .collect();
        drop(submitter);
        for t in threads {
            t.join().unwrap();
        }
        running.join().unwrap().report
    });
    assert_eq!(report.end(), EndState::Completed);
    assert_eq!(report.delivered(), 300);
}

#[test]
fn outputs_finished_early_cancels_the_rest() {
    let (taken, report) = within(30, || {
        let mut outputs = Pipeline::source(0u64..)
            .stage(Stage::map("a", |x: u64| x).workers(2).ordered())
            .outputs()
            .unwrap();
        let taken: Vec<u64> = outputs.by_ref().take(10).collect();
        (taken, outputs.finish().unwrap())
    });
    assert_eq!(taken, (0..10).collect::<Vec<_>>());
    assert_eq!(report.end(), EndState::Cancelled);
    assert_eq!(
        report.delivered(),
        10,
        "only items taken count as delivered"
    );
    assert!(report.is_balanced(), "{report}");
    assert_eq!(report.cancelled(), report.unfinished().len() as u64);
    assert!(report.unfinished().iter().all(|id| id.0 >= 10));
}

#[test]
fn outputs_dropped_early_cancels_cleanly() {
    within(30, || {
        let mut outputs = Pipeline::source(0u64..)
            .stage(Stage::map("a", |x: u64| x).workers(3).batch(5))
            .stage(Stage::filter("b", |x: &u64| x % 3 != 0).workers(2))
            .outputs()
            .unwrap();
        let handle = outputs.handle();
        assert_eq!(outputs.by_ref().take(20).count(), 20);
        drop(outputs);
        assert!(handle.is_stopping(), "dropping the outputs stops the run");
        eventually(20, "the cancelled run to settle", || {
            let r = handle.snapshot();
            r.is_balanced() && r.delivered() == 20
        });
        let r = handle.snapshot();
        assert_eq!(r.cancelled(), r.unfinished().len() as u64);
    });
}

#[test]
fn outputs_consumed_to_the_end_complete_without_cancelling() {
    let report = within(30, || {
        let mut outputs = Pipeline::source(0..1_000u64)
            .stage(Stage::map("a", |x: u64| x).workers(2))
            .outputs()
            .unwrap();
        assert_eq!(outputs.by_ref().count(), 1_000);
        outputs.finish().unwrap()
    });
    assert_eq!(report.end(), EndState::Completed);
    assert_eq!(report.delivered(), 1_000);
    assert_eq!(report.cancelled(), 0);
}

#[test]
fn a_finished_run_reports_finished_before_it_is_joined() {
    within(30, || {
        let running = Pipeline::source(0..100u64)
            .map("id", |x| x)
            .collect()
            .spawn()
            .unwrap();
        eventually(20, "the run to finish", || running.is_finished());
        assert_eq!(running.join().unwrap().output.len(), 100);
    });
}

#[test]
fn a_dropped_running_pipeline_goes_on_to_the_end() {
    within(30, || {
        let (tx, rx) = std::sync::mpsc::channel();
        let running = Pipeline::source(0..500u64)
            .stage(Stage::map("a", |x: u64| x).workers(2))
            .for_each(move |x| tx.send(x).unwrap())
            .spawn()
            .unwrap();
        let handle = running.handle();
        drop(running);
        // The channel closes when the sink, done with every item, drops its closure.
        let mut got: Vec<u64> = rx.iter().collect();
        got.sort_unstable();
        assert_eq!(got, (0..500).collect::<Vec<_>>());
        // Steering a finished run is harmless.
        handle.stop();
        handle.cancel();
        assert!(handle.snapshot().is_balanced());
    });
}

#[test]
fn a_pipeline_without_stages_passes_its_input_through_every_kind_of_sink() {
    within(30, || {
        let collected = Pipeline::source(0..1_000u64).collect().run().unwrap();
        assert_eq!(collected.output, (0..1_000).collect::<Vec<_>>());
        assert!(collected.report.is_balanced());

        let taken: Vec<u64> = Pipeline::source(0..1_000u64).outputs().unwrap().collect();
        assert_eq!(taken, (0..1_000).collect::<Vec<_>>());

        let (running, responses) = Pipeline::source(0..1_000u64)
            .max_in_flight(300)
            .respond()
            .unwrap();
        let mut answered: Vec<(u64, u64)> = responses
            .map(|(id, outcome)| (id.0, outcome.output().unwrap()))
            .collect();
        answered.sort_unstable();
        assert_eq!(answered, (0..1_000).map(|x| (x, x)).collect::<Vec<_>>());
        running.join().unwrap();
    });
}

/// A cancel while the batch an ordered stage waits for is still upstream: that batch
/// reaches the stage after the cancel and is dropped there, so the batches the stage already
/// processed behind it never leave. They were counted out when processed; dropped, they
/// count as cancelled instead (the stage's tally balances, for sync and async stages alike).
#[test]
fn batches_left_behind_a_gap_that_a_cancel_never_fills_count_as_cancelled_once() {
    for asynchronous in [false, true] {
        let report = within(30, move || {
            let release = Arc::new(AtomicBool::new(false));
            let gate = Arc::clone(&release);
            // Item 0 waits in `pre` until released; its other worker takes the rest.
            let pre = Stage::map("pre", move |x: u64| {
                if x == 0 {
                    while !gate.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                x
            })
            .workers(2)
            .batch(1);
            let passed = Arc::new(AtomicU64::new(0));
            let count = Arc::clone(&passed);
            let ordered = if asynchronous {
                Stage::map_async("ordered", move |x: u64| {
                    count.fetch_add(1, Ordering::AcqRel);
                    async move { x }
                })
            } else {
                Stage::map("ordered", move |x: u64| {
                    count.fetch_add(1, Ordering::AcqRel);
                    x
                })
            }
            .ordered();
            let running = Pipeline::source(0..50u64)
                .stage(pre)
                .stage(ordered)
                .for_each(|_| {})
                .spawn()
                .unwrap();
            eventually(20, "items processed behind item 0", || {
                passed.load(Ordering::Acquire) >= 10
            });
            running.cancel();
            release.store(true, Ordering::Release);
            running.join().unwrap().report
        });
        assert!(report.is_balanced(), "{report}");
        assert_eq!(
            report.delivered(),
            0,
            "nothing passes item 0, which never arrives"
        );
        assert_every_stage_balances(&report);
    }
}
