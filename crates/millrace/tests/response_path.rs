//! The response path: a serving pipeline (`respond`) answers every item at its origin
//! exactly once, tagged with its id, with its output or why there is none; a stage's
//! `on_response` hook sees the fate of every item it sent on (delivered, filtered or failed
//! further down, or cancelled). The seed pipeline's results match the closed form.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millrace::{ItemId, Outcome, Pipeline, Stage, Status};

use common::{closed_form_sum, eventually, within};

#[derive(Debug)]
struct Data {
    x: u64,
    y: u64,
}

/// The seed pipeline (`examples/seed.rs`): wrap, square, scale by 3, every result back to
/// the caller. Returns the wrapping sum of the results and how many deliveries stage 1's
/// hook saw.
fn seed_sum(n: u64) -> (u64, u64) {
    let acks = Arc::new(AtomicU64::new(0));
    let a = Arc::clone(&acks);
    let (running, responses) = Pipeline::source(0..n)
        .stage(
            Stage::map("wrap", |x: u64| Data { x, y: 0 }).on_response(move |_, status| {
                if matches!(status, Status::Delivered) {
                    a.fetch_add(1, Ordering::Relaxed);
                }
            }),
        )
        .stage(
            Stage::map("square", |d: Data| Data {
                y: d.x.wrapping_mul(d.x),
                ..d
            })
            .workers(2),
        )
        .stage(Stage::map("scale", |d: Data| d.y.wrapping_mul(3)).workers(2))
        .respond()
        .unwrap();
    let mut sum = 0u64;
    let mut seen = 0u64;
    for (id, outcome) in responses {
        let y = outcome.output().expect("every item delivers");
        assert_eq!(y, id.0.wrapping_mul(id.0).wrapping_mul(3), "item {id}");
        sum = sum.wrapping_add(y);
        seen += 1;
    }
    assert_eq!(seen, n);
    let report = running.join().unwrap().report;
    assert!(report.is_balanced());
    (sum, acks.load(Ordering::Relaxed))
}

#[test]
fn seed_pipeline_sum_matches_the_closed_form() {
    for n in [0u64, 1, 2, 3, 10, 1_000, 100_000] {
        let (sum, acks) = within(60, move || seed_sum(n));
        assert_eq!(sum, closed_form_sum(n), "n = {n}");
        assert_eq!(acks, n, "stage 1 hears back about every item, n = {n}");
    }
}

#[test]
fn seed_pipeline_fold_matches_the_closed_form() {
    let n = 200_000u64;
    let sum = within(60, move || {
        Pipeline::source(0..n)
            .stage(Stage::map("wrap", |x: u64| Data { x, y: 0 }))
            .stage(Stage::map("square", |d: Data| Data { y: d.x * d.x, ..d }).workers(2))
            .stage(Stage::map("scale", |d: Data| d.y.wrapping_mul(3)).workers(2))
            .fold(0u64, u64::wrapping_add)
            .run()
            .unwrap()
            .output
    });
    assert_eq!(sum, closed_form_sum(n));
}

#[test]
fn closed_form_agrees_with_a_direct_sum() {
    for n in [0u64, 1, 2, 7, 1_000] {
        let direct = (0..n).fold(0u64, |s, x| s.wrapping_add(3 * x * x));
        assert_eq!(closed_form_sum(n), direct, "n = {n}");
    }
}

/// A compact view of an outcome or status.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    Output(u64),
    Delivered,
    Filtered(String),
    Failed(String, bool),
    Cancelled,
}

fn fate_of_outcome(outcome: Outcome<u64>) -> Fate {
    match outcome {
        Outcome::Output(x) => Fate::Output(x),
        Outcome::Filtered { stage } => Fate::Filtered(stage.to_string()),
        Outcome::Failed(e) => Fate::Failed(e.stage().to_owned(), e.is_panic()),
        Outcome::Cancelled => Fate::Cancelled,
        other => panic!("unknown outcome {other:?}"),
    }
}

fn fate_of_status(status: &Status) -> Fate {
    match status {
        Status::Delivered => Fate::Delivered,
        Status::Filtered { stage } => Fate::Filtered(stage.to_string()),
        Status::Failed(e) => Fate::Failed(e.stage().to_owned(), e.is_panic()),
        Status::Cancelled => Fate::Cancelled,
        other => panic!("unknown status {other:?}"),
    }
}

/// What the test pipeline below does with x: filtered by `odd` when odd, failed by `parse`
/// when a multiple of 10, panics in `boom` when 4 mod 12, else doubled.
fn expected_fate(x: u64) -> Fate {
    if x % 2 == 1 {
        Fate::Filtered("odd".into())
    } else if x % 10 == 0 {
        Fate::Failed("parse".into(), false)
    } else if x % 12 == 4 {
        Fate::Failed("boom".into(), true)
    } else {
        Fate::Output(2 * x)
    }
}

type Seen = Arc<Mutex<Vec<(ItemId, Fate)>>>;

fn recorder(seen: &Seen) -> impl FnMut(ItemId, &Status) + Send + 'static {
    let seen = Arc::clone(seen);
    move |id, status| seen.lock().unwrap().push((id, fate_of_status(status)))
}

#[test]
fn respond_answers_every_item_once_with_its_outcome_and_hooks_see_downstream_fates() {
    let first: Seen = Arc::default();
    let middle: Seen = Arc::default();
    let (f, m) = (recorder(&first), recorder(&middle));
    let answers = within(30, move || {
        let (running, responses) = Pipeline::source(0..500u64)
            .stage(Stage::map("entry", |x: u64| x).workers(2).on_response(f))
            .stage(
                Stage::filter("odd", |x: &u64| x % 2 == 0)
                    .workers(3)
                    .batch(8),
            )
            .stage(
                Stage::try_map(
                    "parse",
                    |x: &u64| {
                        if x % 10 == 0 {
                            Err("injected")
                        } else {
                            Ok(*x)
                        }
                    },
                )
                .workers(2)
                .on_response(m),
            )
            .stage(
                Stage::map("boom", |x: u64| {
                    if x % 12 == 4 {
                        panic!("injected");
                    }
                    2 * x
                })
                .workers(3),
            )
            .respond()
            .unwrap();
        let answers: Vec<(ItemId, Fate)> = responses
            .map(|(id, outcome)| (id, fate_of_outcome(outcome)))
            .collect();
        let report = running.join().unwrap().report;
        assert!(report.is_balanced());
        answers
    });
    // The origin: every id exactly once, with its output or why there is none.
    let by_id: BTreeMap<u64, Fate> = answers.iter().map(|(id, f)| (id.0, f.clone())).collect();
    assert_eq!(answers.len(), 500);
    assert_eq!(by_id.len(), 500, "each id once");
    for (x, fate) in &by_id {
        assert_eq!(fate, &expected_fate(*x), "item {x}");
    }
    // A hook sees the fate of every item that ended after its stage, as a status.
    let as_status = |f: Fate| match f {
        Fate::Output(_) => Fate::Delivered,
        other => other,
    };
    let mut first = first.lock().unwrap().clone();
    first.sort();
    let want_first: Vec<(ItemId, Fate)> = (0..500u64)
        .map(|x| (ItemId::new(x), as_status(expected_fate(x))))
        .collect();
    assert_eq!(
        first, want_first,
        "the hook of `entry` sees every item once"
    );
    // `parse`'s hook sees only what ended after `parse`: deliveries and `boom` failures.
    let mut middle = middle.lock().unwrap().clone();
    middle.sort();
    let want_middle: Vec<(ItemId, Fate)> = (0..500u64)
        .map(|x| (ItemId::new(x), as_status(expected_fate(x))))
        .filter(|(_, f)| matches!(f, Fate::Delivered) || *f == Fate::Failed("boom".into(), true))
        .collect();
    assert_eq!(
        middle, want_middle,
        "the hook of `parse` sees what ended after it"
    );
}

#[test]
fn every_flat_map_child_is_answered_with_its_own_id() {
    let answers = within(30, || {
        let (running, responses) = Pipeline::source(0..100u64)
            .stage(
                Stage::flat_map("fan", |x: u64| (0..x % 4).map(move |j| 10 * x + j))
                    .workers(3)
                    .batch(5),
            )
            .stage(Stage::map("id", |x: u64| x).workers(2))
            .respond()
            .unwrap();
        let answers: Vec<(ItemId, Fate)> = responses
            .map(|(id, outcome)| (id, fate_of_outcome(outcome)))
            .collect();
        running.join().unwrap();
        answers
    });
    let mut got = answers;
    got.sort();
    let mut want: Vec<(ItemId, Fate)> = Vec::new();
    for x in 0..100u64 {
        if x % 4 == 0 {
            want.push((ItemId::new(x), Fate::Filtered("fan".into())));
        }
        // One child keeps its parent's id; two or more are `#x.1`, `#x.2`, …
        let children = x % 4;
        for j in 0..children {
            let id = if children == 1 {
                ItemId::new(x)
            } else {
                ItemId::new(x).child(j as u32 + 1)
            };
            want.push((id, Fate::Output(10 * x + j)));
        }
    }
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn hooks_hear_cancelled_for_unfinished_items_they_sent_on() {
    let seen: Seen = Arc::default();
    let hook = recorder(&seen);
    let report = within(30, move || {
        let running = Pipeline::source(0u64..)
            .stage(Stage::map("entry", |x: u64| x).on_response(hook))
            .stage(
                Stage::map("slow", |x: u64| {
                    std::thread::sleep(Duration::from_micros(300));
                    x
                })
                .workers(3)
                .batch(2),
            )
            .for_each(|_| {})
            .spawn()
            .unwrap();
        let handle = running.handle();
        eventually(20, "some deliveries", || {
            handle.snapshot().delivered() >= 30
        });
        handle.cancel();
        running.join().unwrap().report
    });
    let seen = seen.lock().unwrap().clone();
    let mut cancelled: Vec<ItemId> = seen
        .iter()
        .filter(|(_, f)| *f == Fate::Cancelled)
        .map(|(id, _)| *id)
        .collect();
    cancelled.sort();
    // Items dropped by the source or by `entry` itself were never sent on by `entry`, so its
    // hook hears of all the other unfinished items, and of nothing else.
    let not_sent_on =
        report.source().tally.cancelled + report.stage("entry").unwrap().tally.cancelled;
    assert!(
        !cancelled.is_empty(),
        "something was cancelled after `entry`: {report}"
    );
    assert_eq!(cancelled.len() as u64, report.cancelled() - not_sent_on);
    let unfinished: std::collections::BTreeSet<ItemId> =
        report.unfinished().iter().copied().collect();
    assert!(cancelled.iter().all(|id| unfinished.contains(id)));
    let delivered = seen.iter().filter(|(_, f)| *f == Fate::Delivered).count() as u64;
    assert_eq!(delivered, report.delivered());
    let mut ids: Vec<ItemId> = seen.iter().map(|(id, _)| *id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), seen.len(), "one status per item");
    assert_eq!(seen.len() as u64, report.items_in() - not_sent_on);
}

#[test]
fn a_panicking_hook_is_reported_and_responses_still_reach_the_origin() {
    let (answers, report) = within(30, || {
        let (running, responses) = Pipeline::source(0..50u64)
            .stage(Stage::map("entry", |x: u64| x).on_response(|id, _| {
                if id == ItemId::new(7) {
                    panic!("injected hook panic");
                }
            }))
            .stage(Stage::map("next", |x: u64| x + 1))
            .respond()
            .unwrap();
        let answers = responses.count();
        (answers, running.join().unwrap().report)
    });
    assert_eq!(answers, 50);
    assert_eq!(report.hook_panics().len(), 1);
    assert!(report.hook_panics()[0].contains("injected hook panic"));
}

#[test]
fn max_in_flight_below_the_batch_size_completes() {
    let answered = within(10, || {
        let (running, responses) = Pipeline::source(0..10u64)
            .map("id", |x| x)
            .max_in_flight(1)
            .respond()
            .unwrap();
        let n = responses.count();
        running.join().unwrap();
        n
    });
    assert_eq!(answered, 10);
}

#[test]
fn outputs_finish_returns_with_a_response_hook() {
    let report = within(10, || {
        let mut outputs = Pipeline::source(0..10u64)
            .stage(Stage::map("hooked", |x: u64| x).on_response(|_, _| {}))
            .outputs()
            .unwrap();
        assert_eq!(outputs.by_ref().count(), 10);
        outputs.finish().unwrap()
    });
    assert_eq!(report.delivered(), 10);
}

#[test]
fn dropping_the_responses_early_does_not_hang_the_run() {
    let report = within(10, || {
        let (running, responses) = Pipeline::source(0..1_000u64)
            .stage(Stage::map("a", |x: u64| x).batch(4))
            .max_in_flight(16)
            .respond()
            .unwrap();
        drop(responses);
        running.stop();
        running.join().unwrap().report
    });
    assert!(report.is_balanced(), "{report}");
}

#[test]
fn cancel_ends_a_run_whose_responses_are_not_read() {
    let report = within(30, || {
        let (running, responses) = Pipeline::source(0..1_000u64)
            .stage(Stage::map("a", |x: u64| x).batch(4))
            .max_in_flight(16)
            .respond()
            .unwrap();
        let handle = running.handle();
        // Nobody reads: the source stops at the in-flight limit until the cancel.
        eventually(20, "the in-flight limit", || {
            handle.snapshot().items_in() >= 16
        });
        handle.cancel();
        let report = running.join().unwrap().report;
        drop(responses);
        report
    });
    assert!(
        report.items_in() < 1_000,
        "the limit held the source back: {report}"
    );
    assert!(report.is_balanced(), "{report}");
}
