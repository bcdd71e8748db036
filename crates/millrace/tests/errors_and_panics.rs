//! Errors and panics hit one item, not the pipeline: every failure is reported with the
//! item's id and the stage's name, under the stage's error policy (skip, retry with a count
//! of retries, or a graceful stop that returns the first error); failed items reach the
//! stage's dead letters; a panic in the source fails the run. Failures at the sink are in
//! `sink_errors.rs`.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millrace::{
    EndState, ErrorPolicy, ItemErrorKind, ItemId, Pipeline, Retry, RunErrorKind, Stage,
};

use common::within;

fn quick_retry(attempts: u32) -> Retry {
    Retry::new(attempts).backoff(Duration::ZERO)
}

#[test]
fn a_panicking_map_fails_only_that_item_with_its_id_and_stage() {
    let finished = within(30, || {
        Pipeline::source(0..100u64)
            .stage(Stage::map("double", |x: u64| x * 2).workers(2))
            .stage(
                Stage::map("picky", |x: u64| {
                    if x == 84 {
                        panic!("injected: 84 is not allowed");
                    }
                    x
                })
                .workers(3)
                .batch(7),
            )
            .collect()
            .run()
            .unwrap()
    });
    let mut out = finished.output;
    out.sort_unstable();
    let want: Vec<u64> = (0..100u64).map(|x| x * 2).filter(|&x| x != 84).collect();
    assert_eq!(out, want);
    let report = finished.report;
    assert_eq!(report.end(), EndState::Completed);
    assert_eq!(report.failed(), 1);
    assert_eq!(report.stage("picky").unwrap().tally.failed, 1);
    let [error] = report.errors() else {
        panic!("one error expected, got {:?}", report.errors());
    };
    assert_eq!(error.id(), ItemId::new(42));
    assert_eq!(error.stage(), "picky");
    assert!(error.is_panic());
    assert_eq!(error.attempts(), 1);
    match error.kind() {
        ItemErrorKind::Panicked(msg) => assert_eq!(msg, "injected: 84 is not allowed"),
        other => panic!("expected a panic, got {other:?}"),
    }
    assert!(report.is_balanced());
}

#[test]
fn a_panicking_filter_fails_only_that_item() {
    let report = within(30, || {
        Pipeline::source(0..10u64)
            .stage(Stage::filter("f", |x: &u64| {
                if *x == 3 {
                    panic!("injected filter panic");
                }
                x % 2 == 0
            }))
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    assert_eq!(
        (report.delivered(), report.filtered(), report.failed()),
        (5, 4, 1)
    );
    assert_eq!(report.errors()[0].id(), ItemId::new(3));
    assert!(report.is_balanced());
}

#[test]
fn try_map_errors_are_reported_per_item_and_the_rest_goes_on() {
    let finished = within(30, || {
        Pipeline::source(
            (0..200u64)
                .map(|x| x.to_string())
                .chain(["oops".to_owned()]),
        )
        .stage(
            Stage::try_map("parse", |s: &String| s.parse::<u8>())
                .workers(4)
                .batch(16),
        )
        .collect()
        .run()
        .unwrap()
    });
    let mut out = finished.output;
    out.sort_unstable();
    assert_eq!(out, (0..=255u8).take(200).collect::<Vec<_>>());
    let report = finished.report;
    assert_eq!(report.failed(), 1);
    assert_eq!(report.errors_total(), 1);
    let error = &report.errors()[0];
    assert_eq!((error.id(), error.stage()), (ItemId::new(200), "parse"));
    assert!(!error.is_panic());
    assert_eq!(
        error.to_string(),
        "stage `parse` failed on item #200: invalid digit found in string"
    );
    assert!(
        std::error::Error::source(error).is_some(),
        "the stage's error is the source"
    );
}

#[test]
fn many_failures_are_all_counted_and_the_first_hundred_kept() {
    let report = within(30, || {
        Pipeline::source(0..1_000u64)
            .stage(
                Stage::try_map("thirds", |x: &u64| {
                    if x % 3 == 0 {
                        Err(format!("injected: {x}"))
                    } else {
                        Ok(*x)
                    }
                })
                .workers(3),
            )
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    assert_eq!(report.failed(), 334);
    assert_eq!(report.errors_total(), 334);
    assert_eq!(report.errors().len(), 100);
    assert!(report.errors().iter().all(|e| e.id().0 % 3 == 0));
    assert!(report.is_balanced());
}

#[test]
fn stop_policy_returns_the_first_error_and_drains_what_was_admitted() {
    let delivered = Arc::new(AtomicU64::new(0));
    let d = Arc::clone(&delivered);
    let err = within(30, move || {
        Pipeline::source(0..100_000u64)
            .on_error(ErrorPolicy::Stop)
            .stage(Stage::map("work", |x: u64| x).batch(8))
            .stage(
                Stage::try_map("check", |x: &u64| {
                    if *x == 500 {
                        Err("injected: 500 is bad")
                    } else {
                        Ok(*x)
                    }
                })
                .batch(8),
            )
            .for_each(move |_| {
                d.fetch_add(1, Ordering::SeqCst);
            })
            .run()
            .unwrap_err()
    });
    let RunErrorKind::Item(first) = err.kind() else {
        panic!("expected an item error, got {err:?}");
    };
    assert_eq!((first.id(), first.stage()), (ItemId::new(500), "check"));
    assert_eq!(
        err.to_string(),
        "pipeline stopped: stage `check` failed on item #500: injected: 500 is bad"
    );
    let report = err.report().expect("the report of what ran");
    assert_eq!(report.end(), EndState::Failed);
    assert_eq!(report.failed(), 1);
    assert_eq!(report.cancelled(), 0, "a stop drains, it does not cancel");
    assert!(report.is_balanced(), "{report}");
    assert_eq!(report.delivered(), delivered.load(Ordering::SeqCst));
    assert_eq!(report.delivered() + 1, report.items_in());
    assert!(report.items_in() > 500);
}

#[test]
fn a_stage_policy_overrides_the_pipeline_default() {
    let finished = within(30, || {
        Pipeline::source(0..100u64)
            .on_error(ErrorPolicy::Stop)
            .stage(
                Stage::try_map("lenient", |x: &u64| {
                    if x % 10 == 0 {
                        Err("injected")
                    } else {
                        Ok(*x)
                    }
                })
                .on_error(ErrorPolicy::Skip),
            )
            .collect()
            .run()
    });
    let finished = finished.expect("the stage skips its failures");
    assert_eq!(finished.output.len(), 90);
    assert_eq!(finished.report.failed(), 10);
    assert_eq!(finished.report.end(), EndState::Completed);
}

/// A `try_map` that fails the first `k` tries of every item and counts the tries.
fn flaky(k: u32, tries: &Arc<Mutex<HashMap<u64, u32>>>) -> Stage<u64, u64> {
    let tries = Arc::clone(tries);
    Stage::try_map("flaky", move |x: &u64| {
        let mut tries = tries.lock().unwrap();
        let t = tries.entry(*x).or_insert(0);
        *t += 1;
        if *t <= k {
            Err(format!("injected: try {t} of {x}"))
        } else {
            Ok(*x)
        }
    })
}

#[test]
fn retry_succeeds_on_a_flaky_stage_and_counts_the_retries() {
    let tries = Arc::new(Mutex::new(HashMap::new()));
    let stage = flaky(2, &tries)
        .workers(3)
        .on_error(ErrorPolicy::Retry(quick_retry(3)));
    let finished = within(30, move || {
        Pipeline::source(0..300u64)
            .stage(stage)
            .collect()
            .run()
            .unwrap()
    });
    let mut out = finished.output;
    out.sort_unstable();
    assert_eq!(out, (0..300u64).collect::<Vec<_>>());
    let report = finished.report;
    assert_eq!(report.failed(), 0);
    assert_eq!(report.stage("flaky").unwrap().tally.retries, 600);
    assert!(tries.lock().unwrap().values().all(|&t| t == 3));
}

#[test]
fn retries_used_up_fail_the_item_with_the_number_of_attempts() {
    let tries = Arc::new(Mutex::new(HashMap::new()));
    let stage = flaky(5, &tries).on_error(ErrorPolicy::Retry(quick_retry(3)));
    let report = within(30, move || {
        Pipeline::source(0..20u64)
            .stage(stage)
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    assert_eq!(report.failed(), 20);
    assert_eq!(report.stage("flaky").unwrap().tally.retries, 40);
    assert!(report.errors().iter().all(|e| e.attempts() == 3));
    assert!(report.errors()[0].to_string().contains("after 3 attempts"));
}

#[test]
fn retry_then_stop_returns_the_error_once_the_tries_are_used_up() {
    let tries = Arc::new(Mutex::new(HashMap::new()));
    let t = Arc::clone(&tries);
    let stage = Stage::try_map("once", move |x: &u64| {
        *t.lock().unwrap().entry(*x).or_insert(0) += 1;
        if *x == 7 {
            Err("injected")
        } else {
            Ok(*x)
        }
    })
    .on_error(ErrorPolicy::Retry(quick_retry(4).then_stop()));
    let err = within(30, move || {
        Pipeline::source(0..1_000u64)
            .stage(stage)
            .for_each(|_| {})
            .run()
            .unwrap_err()
    });
    let RunErrorKind::Item(e) = err.kind() else {
        panic!("expected an item error, got {err:?}");
    };
    assert_eq!((e.id(), e.attempts()), (ItemId::new(7), 4));
    assert_eq!(tries.lock().unwrap()[&7], 4);
    assert!(err.report().unwrap().is_balanced());
}

#[test]
fn retry_applies_to_panics_in_fallible_stages() {
    let tries = Arc::new(AtomicU64::new(0));
    let t = Arc::clone(&tries);
    let stage = Stage::try_map("panicky", move |x: &u64| {
        if t.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("injected first-try panic");
        }
        Ok::<_, String>(*x)
    })
    .on_error(ErrorPolicy::Retry(quick_retry(2)));
    let finished = within(30, move || {
        Pipeline::source(0..1u64)
            .stage(stage)
            .collect()
            .run()
            .unwrap()
    });
    assert_eq!(finished.output, vec![0]);
    assert_eq!(finished.report.stage("panicky").unwrap().tally.retries, 1);
    assert_eq!(finished.report.failed(), 0);
}

#[test]
fn dead_letters_get_the_item_from_a_try_map_and_none_from_a_panicking_map() {
    let letters = Arc::new(Mutex::new(Vec::new()));
    let (l1, l2) = (Arc::clone(&letters), Arc::clone(&letters));
    let report = within(30, move || {
        Pipeline::source(0..100u64)
            .stage(
                Stage::try_map("fallible", |x: &u64| {
                    if x % 25 == 0 {
                        Err("injected")
                    } else {
                        Ok(*x)
                    }
                })
                .workers(2)
                .dead_letter(move |letter| {
                    let stage = letter.error.stage().to_owned();
                    l1.lock().unwrap().push((letter.id, stage, letter.item));
                }),
            )
            .stage(
                Stage::map("panicking", |x: u64| {
                    if x % 30 == 1 {
                        panic!("injected");
                    }
                    x
                })
                .dead_letter(move |letter| {
                    let stage = letter.error.stage().to_owned();
                    l2.lock().unwrap().push((letter.id, stage, letter.item));
                }),
            )
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    let mut got = letters.lock().unwrap().clone();
    got.sort();
    let f = |id: u64, item: Option<u64>| (ItemId::new(id), "fallible".to_owned(), item);
    let p = |id: u64| (ItemId::new(id), "panicking".to_owned(), None);
    let mut want = vec![
        f(0, Some(0)),
        f(25, Some(25)),
        f(50, Some(50)),
        f(75, Some(75)),
        p(1),
        p(31),
        p(61),
        p(91),
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(report.failed(), 8);
}

#[test]
fn a_panicking_dead_letter_handler_is_reported_and_the_run_goes_on() {
    let report = within(30, || {
        Pipeline::source(0..10u64)
            .stage(
                Stage::try_map(
                    "f",
                    |x: &u64| if *x == 3 { Err("injected") } else { Ok(*x) },
                )
                .dead_letter(|_| panic!("injected handler panic")),
            )
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    assert_eq!(report.delivered(), 9);
    assert_eq!(report.hook_panics().len(), 1);
    assert!(report.hook_panics()[0].contains("injected handler panic"));
}

#[test]
fn a_worker_gets_fresh_state_after_a_panic() {
    let inits = Arc::new(AtomicU64::new(0));
    let i = Arc::clone(&inits);
    let out = within(30, move || {
        Pipeline::source(0..100u64)
            .stage(
                Stage::map_with(
                    "stateful",
                    move || {
                        i.fetch_add(1, Ordering::SeqCst);
                        0u64
                    },
                    |seen: &mut u64, x: u64| {
                        *seen += 1;
                        if x % 40 == 39 {
                            panic!("injected");
                        }
                        (x, *seen)
                    },
                )
                .workers(1)
                .batch(10),
            )
            .collect()
            .run()
            .unwrap()
            .output
    });
    // One worker: its state is built once, and again after each of the two panics.
    assert_eq!(inits.load(Ordering::SeqCst), 3);
    assert_eq!(out.len(), 98);
    // The count restarts after each panic: item 40 is the first of the fresh state.
    let seen_at = |x: u64| out.iter().find(|p| p.0 == x).unwrap().1;
    assert_eq!(seen_at(38), 39);
    assert_eq!(seen_at(40), 1);
}

#[test]
fn a_panicking_source_iterator_fails_the_run_after_draining_what_it_made() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = Arc::clone(&got);
    let err = within(30, move || {
        let source = (0..1_000u64).inspect(|&x| {
            if x == 100 {
                panic!("injected source panic");
            }
        });
        Pipeline::source(source)
            .stage(Stage::map("id", |x: u64| x).batch(16))
            .for_each(move |x| g.lock().unwrap().push(x))
            .run()
            .unwrap_err()
    });
    match err.kind() {
        RunErrorKind::SourcePanicked(msg) => assert_eq!(msg, "injected source panic"),
        other => panic!("expected a source panic, got {other:?}"),
    }
    let report = err.report().unwrap();
    assert_eq!(report.items_in(), 100);
    assert!(report.is_balanced());
    let mut got = got.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, (0..100u64).collect::<Vec<_>>());
}

#[test]
fn a_consuming_try_map_moves_items_and_hands_failures_back_for_retry_and_dead_letters() {
    use millrace::{ErrorPolicy, Rejected, Retry};

    // Each item fails on its first try and hands itself back; the retry gets the same
    // bytes (no clone); items with a 0xff byte always fail and reach the dead letters whole.
    let tries = Arc::new(AtomicU64::new(0));
    let letters: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let (t, l) = (Arc::clone(&tries), Arc::clone(&letters));
    let input: Vec<Vec<u8>> = (0..100u8)
        .map(|i| {
            if i % 10 == 9 {
                vec![0xff, i]
            } else {
                vec![b'a' + i % 26]
            }
        })
        .collect();
    let finished = within(60, move || {
        Pipeline::source(input)
            .stage(
                Stage::try_map_owned("utf8", move |bytes: Vec<u8>| {
                    if t.fetch_add(1, Ordering::Relaxed) % 2 == 0 && bytes[0] != 0xff {
                        return Err(Rejected::new(bytes, "not yet"));
                    }
                    String::from_utf8(bytes).map_err(|e| {
                        let why = e.utf8_error();
                        Rejected::new(e.into_bytes(), why)
                    })
                })
                .on_error(ErrorPolicy::Retry(
                    Retry::new(3).backoff(std::time::Duration::ZERO),
                ))
                .dead_letter(move |letter| {
                    l.lock()
                        .unwrap()
                        .push(letter.item.expect("the item came back"));
                })
                // One worker: the shared counter fails every other call, so each good item
                // fails at most once in a row (two workers could fail one three times).
                .workers(1),
            )
            .collect()
            .run()
            .unwrap()
    });
    assert_eq!(finished.output.len(), 90);
    assert_eq!(finished.report.failed(), 10);
    let mut letters = letters.lock().unwrap().clone();
    letters.sort();
    let want: Vec<Vec<u8>> = (0..100u8)
        .filter(|i| i % 10 == 9)
        .map(|i| vec![0xff, i])
        .collect();
    assert_eq!(letters, want, "dead letters get the bytes back whole");
}

#[test]
fn a_consuming_try_map_that_consumed_its_item_fails_it_without_a_retry() {
    use millrace::{ErrorPolicy, Rejected, Retry};
    let finished = within(60, || {
        Pipeline::source(0..10u64)
            .stage(
                Stage::try_map_owned("eat", |x: u64| {
                    if x == 4 {
                        Err(Rejected::consumed("gone"))
                    } else {
                        Ok(x)
                    }
                })
                .on_error(ErrorPolicy::Retry(Retry::new(5))),
            )
            .collect()
            .run()
            .unwrap()
    });
    assert_eq!(finished.output.len(), 9);
    let errors = finished.report.errors();
    assert_eq!((errors.len(), errors[0].attempts()), (1, 1));
}
