//! Failures at the sink: a `for_each` that panics or a `try_for_each` that returns an error
//! fails that item only (under the pipeline's error policy: skipped, retried, or stopping
//! the run), reported with the stage name `sink` and answered upstream; a `fold` that
//! panics fails the run, while a run stopped by an item error keeps the sink's value so far.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millrace::{EndState, ErrorPolicy, ItemId, Pipeline, Retry, RunErrorKind, Stage, Status};

use common::within;

fn quick_retry(attempts: u32) -> Retry {
    Retry::new(attempts).backoff(Duration::ZERO)
}

#[test]
fn a_panicking_for_each_fails_that_item_in_the_sink() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let report = within(30, move || {
        Pipeline::source(0..50u64)
            .for_each(move |x| {
                if x == 10 {
                    panic!("injected sink panic");
                }
                s.lock().unwrap().push(x);
            })
            .run()
            .unwrap()
            .report
    });
    assert_eq!(seen.lock().unwrap().len(), 49);
    assert_eq!(report.delivered(), 49);
    assert_eq!(report.failed(), 1);
    assert_eq!(report.sink().tally.failed, 1);
    let error = &report.errors()[0];
    assert_eq!((error.id(), error.stage()), (ItemId::new(10), "sink"));
    assert!(report.is_balanced());
}

#[test]
fn a_failing_try_for_each_fails_that_item_only_under_skip() {
    let (finished, written) = within(30, || {
        let written = Arc::new(Mutex::new(Vec::new()));
        let w = Arc::clone(&written);
        // One worker keeps the batches in input order, so the error log (the first 100
        // failures to arrive) starts at item 0 and holds item 11's panic.
        let finished = Pipeline::source(0..1000u64)
            .stage(Stage::map("id", |x: u64| x).workers(1))
            .try_for_each(move |&x| {
                if x % 7 == 0 {
                    return Err(format!("injected: cannot write {x}"));
                }
                if x % 11 == 0 {
                    panic!("injected: sink panics on {x}");
                }
                w.lock().unwrap().push(x);
                Ok(())
            })
            .run()
            .unwrap();
        let written = std::mem::take(&mut *written.lock().unwrap());
        (finished, written)
    });
    let bad = |x: &u64| x % 7 == 0 || x % 11 == 0;
    let mut written = written;
    written.sort_unstable();
    assert_eq!(written, (0..1000).filter(|x| !bad(x)).collect::<Vec<_>>());
    let report = &finished.report;
    let failed = (0..1000).filter(bad).count() as u64;
    assert_eq!(
        (report.delivered(), report.failed()),
        (1000 - failed, failed)
    );
    assert!(report.is_balanced(), "{report}");
    let first = &report.errors()[0];
    assert_eq!(first.stage(), "sink");
    assert_eq!(first.id(), ItemId::new(0));
    assert!(
        first.to_string().contains("injected: cannot write 0"),
        "{first}"
    );
    assert!(report
        .errors()
        .iter()
        .any(|e| e.is_panic() && e.id() == ItemId::new(11)));
}

#[test]
fn a_try_for_each_retries_a_flaky_write_and_stops_when_told() {
    // Retry: every item fails twice, then is written.
    let tries: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let t = Arc::clone(&tries);
    let finished = within(30, move || {
        Pipeline::source(0..200u64)
            .on_error(ErrorPolicy::Retry(quick_retry(3)))
            .try_for_each(move |&x| {
                let mut tries = t.lock().unwrap();
                let n = tries.entry(x).or_insert(0);
                *n += 1;
                if *n < 3 {
                    Err("injected: not yet")
                } else {
                    Ok(())
                }
            })
            .run()
            .unwrap()
    });
    let report = &finished.report;
    assert_eq!((report.delivered(), report.failed()), (200, 0));
    assert_eq!(report.sink().tally.retries, 400);
    assert!(tries.lock().unwrap().values().all(|&n| n == 3));

    // Stop: the first failure ends the run with that error; what was admitted drains.
    let err = within(30, || {
        Pipeline::source(0..100_000u64)
            .on_error(ErrorPolicy::Stop)
            .map("id", |x| x)
            .try_for_each(|&x| {
                if x == 300 {
                    Err("injected: disk full")
                } else {
                    Ok(())
                }
            })
            .run()
            .unwrap_err()
    });
    let RunErrorKind::Item(first) = err.kind() else {
        panic!("expected an item error, got {err:?}");
    };
    assert_eq!((first.id(), first.stage()), (ItemId::new(300), "sink"));
    let report = err.report().unwrap();
    assert_eq!(report.failed(), 1);
    assert!(report.is_balanced(), "{report}");
    assert!(report.items_in() < 100_000, "the source stopped early");
}

#[test]
fn a_sink_failure_is_answered_to_the_hooked_stage() {
    let seen: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let s = Arc::clone(&seen);
    let finished = within(30, move || {
        Pipeline::source(0..50u64)
            .stage(
                Stage::map("entry", |x: u64| x).on_response(move |id, status| {
                    if let Status::Failed(e) = status {
                        s.lock().unwrap().push((id.0, e.stage().to_owned()));
                    }
                }),
            )
            .try_for_each(|&x| {
                if x % 10 == 0 {
                    Err("injected: refused")
                } else {
                    Ok(())
                }
            })
            .run()
            .unwrap()
    });
    assert_eq!(finished.report.failed(), 5);
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    let expected: Vec<(u64, String)> = (0..50)
        .step_by(10)
        .map(|x| (x, "sink".to_owned()))
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn a_stopped_fold_or_collect_keeps_its_value_over_what_was_delivered() {
    let check = |x: &u64| {
        if *x == 700 {
            Err("injected: 700 is bad")
        } else {
            Ok(*x * 2)
        }
    };
    let mut err = within(30, move || {
        Pipeline::source(0..100_000u64)
            .on_error(ErrorPolicy::Stop)
            .stage(Stage::try_map("check", check).batch(16))
            .fold((0u64, 0u64), |(n, sum), y| (n + 1, sum + y))
            .run()
            .unwrap_err()
    });
    let delivered = err.report().unwrap().delivered();
    assert_eq!(err.take_output::<u32>(), None, "another type gets nothing");
    let (n, sum) = err.take_output::<(u64, u64)>().expect("the fold's value");
    assert_eq!(n, delivered);
    assert!(
        n >= 700,
        "everything before the bad item was admitted and delivered"
    );
    assert!(sum >= (0..700u64).map(|x| x * 2).sum::<u64>());
    assert_eq!(err.take_output::<(u64, u64)>(), None, "taken once");

    let mut err = within(30, move || {
        Pipeline::source(0..100_000u64)
            .on_error(ErrorPolicy::Stop)
            .stage(Stage::try_map("check", check).batch(16).ordered())
            .collect()
            .run()
            .unwrap_err()
    });
    let delivered = err.report().unwrap().delivered();
    let items = err.take_output::<Vec<u64>>().expect("the collected items");
    assert_eq!(items.len() as u64, delivered);
    // Ordered: what was delivered is a prefix of the outputs, the bad item left out.
    let expected: Vec<u64> = (0..100_000u64)
        .filter(|&x| x != 700)
        .map(|x| x * 2)
        .take(items.len())
        .collect();
    assert_eq!(items, expected);
}

#[test]
fn a_panicking_fold_leaves_no_value_to_take() {
    let mut err = within(30, || {
        Pipeline::source(0..1000u64)
            .fold(0u64, |n, x| {
                assert!(x != 300, "injected: fold panics");
                n + 1
            })
            .run()
            .unwrap_err()
    });
    assert!(matches!(err.kind(), RunErrorKind::SinkPanicked(_)));
    assert_eq!(err.take_output::<u64>(), None);
}

#[test]
fn a_panicking_fold_fails_the_run_as_a_sink_panic() {
    let err = within(30, || {
        Pipeline::source(0..10_000u64)
            .map("id", |x| x)
            .fold(0u64, |acc, x| {
                if x == 5_000 {
                    panic!("injected fold panic");
                }
                acc + x
            })
            .run()
            .unwrap_err()
    });
    match err.kind() {
        RunErrorKind::SinkPanicked(msg) => assert_eq!(msg, "injected fold panic"),
        other => panic!("expected a sink panic, got {other:?}"),
    }
    assert_eq!(err.report().unwrap().end(), EndState::Failed);
}

#[test]
fn a_panicking_fold_still_accounts_for_every_admitted_item() {
    let err = within(30, || {
        Pipeline::source(0..10u64)
            .fold(0u64, |acc, x| {
                if x == 5 {
                    panic!("injected fold panic");
                }
                acc + x
            })
            .run()
            .unwrap_err()
    });
    let report = err.report().unwrap();
    // Each item admitted (item 5 at least, the source may stop before the rest) must be
    // delivered, failed or cancelled (listed as unfinished).
    assert!((6..=10).contains(&report.items_in()), "{report}");
    assert!(report.is_balanced(), "{report}");
    assert_eq!(report.cancelled(), report.unfinished().len() as u64);
}

#[test]
fn a_fold_that_panics_counts_the_items_before_it_delivered_and_itself_failed() {
    // However the batches were cut: the whole batch the panic fell in used to count as
    // cancelled (a new user's trial saw 31 to 46 delivered of the 50 folded, and no failure).
    for batch in [None, Some(1), Some(10), Some(64)] {
        let err = within(30, move || {
            let mut builder = Pipeline::source(0..100u64);
            if let Some(batch) = batch {
                builder = builder.default_batch(batch);
            }
            builder
                .stage(Stage::map("m", |x: u64| x).workers(1).ordered())
                .fold(0u64, |acc, x| {
                    assert!(x != 50, "injected: fold panics on 50");
                    acc + x
                })
                .run()
                .unwrap_err()
        });
        let report = err.report().unwrap();
        assert_eq!(report.delivered(), 50, "batch {batch:?}: {report}");
        assert_eq!(report.failed(), 1, "batch {batch:?}: {report}");
        let errors = report.errors();
        assert_eq!(errors.len(), 1, "batch {batch:?}");
        assert_eq!(errors[0].id(), ItemId::new(50), "batch {batch:?}");
        assert!(
            errors[0]
                .to_string()
                .contains("injected: fold panics on 50"),
            "{}",
            errors[0]
        );
        assert!(report.is_balanced(), "batch {batch:?}: {report}");
        assert_eq!(report.cancelled(), report.unfinished().len() as u64);
        assert!(
            report.unfinished().iter().all(|id| id.origin() > 50),
            "batch {batch:?}"
        );
    }
}

#[test]
fn a_cancel_between_a_sink_items_tries_leaves_it_unfinished_not_failed() {
    let report = within(30, || {
        let tried = Arc::new(Mutex::new(0u32));
        let t = Arc::clone(&tried);
        let running = Pipeline::source(0..10u64)
            .default_batch(16)
            .on_error(ErrorPolicy::Retry(
                Retry::new(1_000)
                    .backoff(Duration::from_millis(2))
                    .max_backoff(Duration::from_millis(2)),
            ))
            .try_for_each(move |_| {
                *t.lock().unwrap() += 1;
                Err("injected: the disk is gone")
            })
            .spawn()
            .unwrap();
        // Let the sink get into item 0's retries, then cancel.
        common::eventually(10, "the sink to retry", || *tried.lock().unwrap() >= 5);
        running.cancel();
        common::report_of(running.join())
    });
    // Every item was either mid-retry or tried once after the cancel: none failed for good,
    // all ten are unfinished, and the books balance.
    assert_eq!(report.failed(), 0, "{report}");
    assert_eq!(report.cancelled(), 10, "{report}");
    let mut unfinished: Vec<u64> = report.unfinished().iter().map(|id| id.0).collect();
    unfinished.sort_unstable();
    assert_eq!(unfinished, (0..10).collect::<Vec<_>>());
    assert_eq!(report.end(), EndState::Cancelled);
    assert!(report.is_balanced(), "{report}");
}
