//! Replies: the pipeline's outputs travel back, as typed values, to the stage that sent the
//! items (`reply_to`), exactly once per item with its id, for filtered and failed items too,
//! and never deadlock whatever the capacities.

mod common;

use std::collections::BTreeMap;

use millrace::{ErrorPolicy, ItemId, Outcome, Pipeline, RunErrorKind, Stage};

use common::{closed_form_sum, within, INJECTED};

#[derive(Debug)]
struct Data {
    x: u64,
    y: u64,
}

#[test]
fn stage_one_receives_each_three_x_squared_and_sums_to_the_closed_form() {
    let n = 100_000;
    let finished = within(120, move || {
        Pipeline::source(0..n)
            .stage(Stage::map("wrap", |x: u64| Data { x, y: 0 }))
            .stage(
                Stage::map("square", |d: Data| Data {
                    y: d.x.wrapping_mul(d.x),
                    ..d
                })
                .workers(2),
            )
            .stage(Stage::map("scale", |d: Data| d.y.wrapping_mul(3)).workers(2))
            .reply_to(
                "wrap",
                (0u64, 0u64),
                |(sum, count), id, reply| match reply {
                    Outcome::Output(y) => {
                        assert_eq!(y, id.0.wrapping_mul(id.0).wrapping_mul(3));
                        (sum.wrapping_add(y), count + 1)
                    }
                    other => panic!("item {id} did not deliver: {other:?}"),
                },
            )
            .run()
            .unwrap()
    });
    assert_eq!(finished.output, (closed_form_sum(n), n));
    assert!(finished.report.is_balanced());
}

/// Every item `stage` sent on, answered once: its value, or why there is none.
fn replies_by_id<T: Send + 'static>(
    pipeline: millrace::Pipeline<BTreeMap<u64, Vec<Outcome<T>>>>,
) -> (BTreeMap<u64, Vec<Outcome<T>>>, millrace::Report) {
    let finished = within(120, move || pipeline.run().unwrap());
    (finished.output, finished.report)
}

fn collect_replies<T>(
    mut map: BTreeMap<u64, Vec<Outcome<T>>>,
    id: ItemId,
    reply: Outcome<T>,
) -> BTreeMap<u64, Vec<Outcome<T>>> {
    map.entry(id.0).or_default().push(reply);
    map
}

#[test]
fn filtered_and_failed_items_are_answered_with_why_at_capacity_one() {
    let pipeline = Pipeline::source(0..2_000u64)
        .stage(Stage::map("first", |x: u64| x).capacity(1).batch(1))
        .stage(
            Stage::filter("odd", |x: &u64| x % 2 == 1)
                .capacity(1)
                .workers(2),
        )
        .stage(
            Stage::try_map("check", |&x: &u64| {
                if x % 7 == 0 {
                    Err(format!("{x} is a multiple of 7"))
                } else {
                    Ok(x * 10)
                }
            })
            .capacity(1)
            .batch(1),
        )
        .stage(
            Stage::map("panicky", |x: u64| {
                if x % 110 == 0 {
                    panic!("{INJECTED}: {x}");
                }
                x
            })
            .capacity(1),
        )
        .max_in_flight(1)
        .default_capacity(1)
        .default_batch(1)
        .reply_to("first", BTreeMap::new(), collect_replies);
    let (replies, report) = replies_by_id(pipeline);
    assert_eq!(replies.len(), 2_000, "every item answered");
    for (id, outcomes) in &replies {
        assert_eq!(outcomes.len(), 1, "item {id} answered once");
        match &outcomes[0] {
            Outcome::Output(y) => {
                assert!(id % 2 == 1 && id % 7 != 0 && (id * 10) % 110 != 0);
                assert_eq!(*y, id * 10);
            }
            Outcome::Filtered { stage } => {
                assert_eq!((&**stage, id % 2), ("odd", 0));
            }
            Outcome::Failed(e) if e.stage() == "check" => {
                assert_eq!(id % 7, 0);
                assert_eq!(e.id().0, *id);
            }
            Outcome::Failed(e) => {
                assert_eq!(e.stage(), "panicky");
                assert!(e.is_panic());
                assert_eq!((id * 10) % 110, 0);
            }
            other => panic!("item {id}: {other:?}"),
        }
    }
    assert!(report.is_balanced());
}

#[test]
fn a_middle_stage_hears_only_what_it_sent_on_and_hooks_before_it_still_run() {
    let hooked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let h = std::sync::Arc::clone(&hooked);
    let pipeline = Pipeline::source(0..1_000u64)
        .stage(
            Stage::filter("even", |x: &u64| x % 2 == 0).on_response(move |_, _| {
                h.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }),
        )
        .stage(Stage::map("half", |x: u64| x / 2).workers(3))
        .stage(Stage::map("text", |x: u64| x.to_string()).ordered())
        .reply_to("half", BTreeMap::new(), collect_replies);
    let (replies, _) = replies_by_id(pipeline);
    // Odd items ended before `half`: not its to hear.
    assert_eq!(replies.len(), 500);
    for (id, outcomes) in replies {
        assert_eq!(outcomes.len(), 1);
        match &outcomes[0] {
            Outcome::Output(text) => assert_eq!(*text, (id / 2).to_string()),
            other => panic!("{other:?}"),
        }
    }
    // The hook of `even` hears what it sent on (the 500 it kept), passed on by `half`.
    assert_eq!(hooked.load(std::sync::atomic::Ordering::Relaxed), 500);
}

#[test]
fn a_cancelled_run_answers_the_rest_as_cancelled() {
    let (running, replies) = within(60, || {
        let (submitter, builder) = Pipeline::submitter::<u64>(16);
        let running = builder
            .stage(Stage::map("first", |x: u64| x))
            .stage(Stage::map("slow", |x: u64| {
                std::thread::sleep(std::time::Duration::from_micros(200));
                x
            }))
            .reply_to("first", BTreeMap::new(), collect_replies)
            .spawn()
            .unwrap();
        let handle = running.handle();
        let feeder = std::thread::spawn(move || {
            for x in 0..5_000 {
                if submitter.submit(x).is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        handle.cancel();
        feeder.join().unwrap();
        let finished = running.join().unwrap();
        (finished.report, finished.output)
    });
    let report = running;
    assert!(report.is_balanced(), "{report}");
    let answered: usize = replies.values().map(Vec::len).sum();
    let sent_on = report.stage("first").expect("stage first").tally.items_out;
    assert_eq!(
        answered as u64, sent_on,
        "every item `first` sent on is answered"
    );
    assert!(replies.values().all(|o| o.len() == 1));
    let cancelled = replies
        .values()
        .filter(|o| matches!(o[0], Outcome::Cancelled))
        .count() as u64;
    let delivered = replies
        .values()
        .filter(|o| matches!(o[0], Outcome::Output(_)))
        .count() as u64;
    assert_eq!(delivered, report.delivered());
    assert!(cancelled <= report.cancelled());
}

#[test]
fn replies_to_an_unknown_stage_are_a_build_error() {
    let err = Pipeline::source(0..10u64)
        .map("square", |x| x * x)
        .reply_to("nope", 0u64, |s, _, _| s)
        .run()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot build pipeline: no stage is named `nope`, so none can take the replies"
    );
}

#[test]
fn a_panicking_reply_fold_fails_the_run() {
    let err = within(60, || {
        Pipeline::source(0..1_000u64)
            .map("square", |x| x * x)
            .on_error(ErrorPolicy::Skip)
            .reply_to("square", 0u64, |s, id, _| {
                if id.0 == 500 {
                    panic!("{INJECTED}: fold");
                }
                s + 1
            })
            .run()
            .unwrap_err()
    });
    assert!(
        matches!(err.kind(), RunErrorKind::SinkPanicked(m) if m.contains("replies to stage `square`"))
    );
}

#[test]
fn replies_that_keep_their_thread_busy_are_named_the_bottleneck() {
    // The replies run on a relay thread of their own, which no row of the report showed:
    // a slow reply fold read "the threads outnumber the cores" or "the source".
    let finished = within(120, || {
        Pipeline::source(0..4_000u64)
            .max_in_flight(64)
            .map("wrap", |x| x)
            .map("square", |x| x * x)
            .reply_to("wrap", 0u64, |sum, _id, reply| {
                std::thread::sleep(std::time::Duration::from_micros(200));
                match reply {
                    Outcome::Output(y) => sum.wrapping_add(y),
                    _ => sum,
                }
            })
            .run()
            .expect("the run completes")
    });
    assert_eq!(finished.output, (0..4_000u64).map(|x| x * x).sum::<u64>());
    let report = finished.report;
    let wrap = report.stage("wrap").expect("stage wrap");
    let busy = wrap
        .response_busy
        .expect("wrap hears back, on its relay thread");
    assert!(busy >= 0.9, "the replies' thread was busy {busy}");
    assert_eq!(report.stage("square").and_then(|s| s.response_busy), None);
    let bottleneck = report.bottleneck().expect("a bottleneck");
    assert_eq!(bottleneck.stage, "wrap");
    assert!(
        matches!(
            bottleneck.reason.kind,
            millrace::BottleneckKind::ResponsesBound { .. }
        ),
        "{:?}",
        bottleneck.reason
    );
    assert!(
        bottleneck
            .reason
            .to_string()
            .starts_with("`wrap`'s responses: its hook and replies took"),
        "{}",
        bottleneck.reason
    );
    assert!(
        report
            .to_string()
            .contains("responses to `wrap`: its hook and replies busy"),
        "{report}"
    );
}
