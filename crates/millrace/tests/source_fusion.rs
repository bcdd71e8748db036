//! An iterator source in front of equal fixed stages of a small capacity is read on their
//! workers (see `PipelineBuilder::adaptive_fusion`): every way a run can end still delivers
//! or accounts for every item the iterator made, exactly once, and the source behaves as it
//! does on a thread of its own (its panics fail the run, a stop ends its reading, a slow
//! iterator does not hold finished items back).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{report_of, within};
use millrace::{Pipeline, RunErrorKind, Stage};

/// Two cheap stages of `workers` each, with a capacity small enough for the source to be
/// read on their workers.
fn cheap_pair(
    builder: millrace::PipelineBuilder<u64>,
    workers: usize,
) -> millrace::PipelineBuilder<u64> {
    builder
        .stage(
            Stage::map("a", |x: u64| x * 2)
                .workers(workers)
                .capacity(64),
        )
        .stage(
            Stage::map("b", |x: u64| x + 1)
                .workers(workers)
                .capacity(64),
        )
}

#[test]
fn two_workers_taking_turns_at_the_iterator_deliver_every_item_once() {
    let finished = within(60, || {
        cheap_pair(Pipeline::source(0..200_000u64), 2)
            .collect()
            .run()
            .expect("the run completes")
    });
    assert!(finished.report.source().fused, "{}", finished.report);
    let mut output = finished.output;
    output.sort_unstable();
    assert_eq!(
        output,
        (0..200_000u64).map(|x| x * 2 + 1).collect::<Vec<_>>()
    );
    assert!(finished.report.is_balanced());
}

#[test]
fn filters_and_flat_maps_in_the_run_keep_every_count() {
    let finished = within(60, || {
        Pipeline::source(0..50_000u64)
            .stage(
                Stage::filter("odd", |x: &u64| x % 2 == 1)
                    .workers(1)
                    .capacity(32),
            )
            .stage(
                Stage::flat_map("twice", |x: u64| [x, x])
                    .workers(1)
                    .capacity(32),
            )
            .collect()
            .run()
            .expect("the run completes")
    });
    assert!(finished.report.source().fused, "{}", finished.report);
    let mut output = finished.output;
    output.sort_unstable();
    let want: Vec<u64> = (0..50_000u64)
        .filter(|x| x % 2 == 1)
        .flat_map(|x| [x, x])
        .collect();
    assert_eq!(output, want);
    assert!(finished.report.is_balanced(), "{}", finished.report);
}

#[test]
fn a_panicking_iterator_read_on_the_workers_fails_the_run_after_what_it_made() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = Arc::clone(&got);
    let err = within(60, move || {
        let source = (0..10_000u64).inspect(|&x| {
            if x == 1_000 {
                panic!("injected source panic");
            }
        });
        cheap_pair(Pipeline::source(source), 1)
            .for_each(move |x| g.lock().expect("no panic holds it").push(x))
            .run()
            .unwrap_err()
    });
    match err.kind() {
        RunErrorKind::SourcePanicked(msg) => assert_eq!(msg, "injected source panic"),
        other => panic!("expected a source panic, got {other:?}"),
    }
    let report = err.report().expect("a failed run reports");
    assert_eq!(report.items_in(), 1_000);
    assert!(report.is_balanced(), "{report}");
    let mut got = got.lock().expect("no panic holds it").clone();
    got.sort_unstable();
    assert_eq!(got, (0..1_000u64).map(|x| x * 2 + 1).collect::<Vec<_>>());
}

#[test]
fn a_stop_ends_the_reading_and_delivers_everything_read() {
    let made = Arc::new(AtomicU64::new(0));
    let m = Arc::clone(&made);
    let finished = within(60, move || {
        let source = (0..u64::MAX).inspect(move |_| {
            m.fetch_add(1, Ordering::SeqCst);
        });
        let running = cheap_pair(Pipeline::source(source), 2)
            .collect()
            .spawn()
            .expect("the pipeline starts");
        std::thread::sleep(Duration::from_millis(20));
        running.stop();
        running.join().expect("a stopped run completes")
    });
    let made = made.load(Ordering::SeqCst);
    assert_eq!(
        finished.report.items_in(),
        made,
        "every item made was admitted"
    );
    assert_eq!(finished.report.delivered(), made, "{}", finished.report);
    let mut output = finished.output;
    output.sort_unstable();
    assert_eq!(output, (0..made).map(|x| x * 2 + 1).collect::<Vec<_>>());
}

#[test]
fn a_cancel_while_the_workers_read_accounts_for_every_item_admitted() {
    for cancel_after in [0, 5, 30] {
        let finished = within(60, move || {
            let running = cheap_pair(Pipeline::source(0..u64::MAX), 2)
                .collect()
                .spawn()
                .expect("the pipeline starts");
            std::thread::sleep(Duration::from_millis(cancel_after));
            running.cancel();
            running.join()
        });
        let report = report_of(finished);
        assert!(report.is_balanced(), "{report}");
        let accounted = report.delivered() + report.cancelled();
        assert_eq!(accounted, report.items_in(), "{report}");
    }
}

#[test]
fn outputs_read_on_the_calling_thread_see_every_item() {
    let (mut seen, report) = within(60, || {
        let mut outputs = cheap_pair(Pipeline::source(0..20_000u64), 1)
            .outputs()
            .expect("the pipeline starts");
        let seen: Vec<u64> = outputs.by_ref().collect();
        (seen, outputs.finish().expect("the run completes"))
    });
    assert!(report.source().fused, "{report}");
    seen.sort_unstable();
    assert_eq!(seen, (0..20_000u64).map(|x| x * 2 + 1).collect::<Vec<_>>());
}

#[test]
fn a_slow_tail_after_a_backlog_is_not_held_back_on_the_workers() {
    // As `adaptive_batches.rs` pins for a source on its own thread: 20,000 items at once,
    // then 200 more one every 10 ms; the first slow one reaches the sink long before the
    // iterator has made the last.
    const BACKLOG: u64 = 20_000;
    const LIVE: u64 = 200;
    let made = Arc::new(AtomicU64::new(0));
    let made_then = Arc::new(AtomicU64::new(0));
    let (mk, seen) = (Arc::clone(&made), Arc::clone(&made_then));
    let source = (0..BACKLOG + LIVE).inspect(move |&x| {
        if x >= BACKLOG {
            std::thread::sleep(Duration::from_millis(10));
        }
        mk.store(x + 1, Ordering::SeqCst);
    });
    let report = within(120, move || {
        cheap_pair(Pipeline::source(source), 1)
            .for_each(move |y| {
                if y == 2 * BACKLOG + 1 {
                    seen.store(made.load(Ordering::SeqCst), Ordering::SeqCst);
                }
            })
            .run()
            .expect("the run completes")
            .report
    });
    assert_eq!(report.delivered(), BACKLOG + LIVE);
    let made_then = made_then.load(Ordering::SeqCst);
    assert!(
        made_then < BACKLOG + LIVE,
        "the first slow item waited until the iterator had made all {made_then}"
    );
}

#[test]
fn a_slow_iterator_on_the_workers_does_not_hold_finished_items_back() {
    // Each item comes 100 ms after the last. A worker that cut a batch whose first item was
    // long in coming sends what it holds before it waits on the iterator again: each item
    // reaches the sink before the iterator has made the next. (Held back for company, one in
    // two waited for the next item.)
    const ITEMS: u64 = 12;
    let made = Arc::new(AtomicU64::new(0));
    let late = Arc::new(AtomicU64::new(0));
    let (m, seen, l) = (Arc::clone(&made), Arc::clone(&made), Arc::clone(&late));
    let source = (0..ITEMS).inspect(move |_| {
        std::thread::sleep(Duration::from_millis(100));
        m.fetch_add(1, Ordering::SeqCst);
    });
    let finished = within(60, move || {
        // The source's batches pinned to one item, the sink's to two: an output waits for
        // company unless the worker sends it on.
        Pipeline::source(source)
            .default_batch(2)
            .autoscale_interval(Duration::from_secs(3600))
            .stage(Stage::map("a", |x: u64| x * 2).workers(1).batch(1))
            .stage(Stage::map("b", |x: u64| x + 1).workers(1))
            .for_each(move |y| {
                let x = (y - 1) / 2;
                if seen.load(Ordering::SeqCst) > x + 1 {
                    l.fetch_add(1, Ordering::SeqCst);
                }
            })
            .run()
            .expect("the run completes")
    });
    assert!(finished.report.source().fused, "{}", finished.report);
    assert_eq!(finished.report.delivered(), ITEMS);
    let late = late.load(Ordering::SeqCst);
    assert!(
        late <= 2,
        "{late} of {ITEMS} items reached the sink only after the iterator made the next"
    );
}

#[test]
fn per_worker_state_a_response_path_or_a_submitter_keep_the_source_on_its_thread() {
    // `map_with` never starts fused; with hooks the source admits through the in-flight
    // window; a submitter is a thread's of its own.
    let with_state = within(60, || {
        Pipeline::source(0..1_000u64)
            .stage(
                Stage::map_with(
                    "count",
                    || 0u64,
                    |n: &mut u64, x: u64| {
                        *n += 1;
                        x
                    },
                )
                .workers(1)
                .capacity(64),
            )
            .stage(Stage::map("b", |x: u64| x).workers(1).capacity(64))
            .collect()
            .run()
            .expect("the run completes")
    });
    assert!(!with_state.report.source().fused);
    assert_eq!(with_state.output.len(), 1_000);

    let hooked = within(60, || {
        Pipeline::source(0..1_000u64)
            .stage(
                Stage::map("a", |x: u64| x)
                    .workers(1)
                    .capacity(64)
                    .on_response(|_, _| {}),
            )
            .stage(Stage::map("b", |x: u64| x).workers(1).capacity(64))
            .collect()
            .run()
            .expect("the run completes")
    });
    assert!(!hooked.report.source().fused);
    assert_eq!(hooked.output.len(), 1_000);

    let (submitter, builder) = Pipeline::submitter::<u64>(16);
    let running = cheap_pair(builder, 1)
        .collect()
        .spawn()
        .expect("the pipeline starts");
    let submitted = within(60, move || {
        for x in 0..1_000 {
            submitter.submit(x).expect("the pipeline takes input");
        }
        drop(submitter);
        running.join().expect("the run completes")
    });
    assert!(!submitted.report.source().fused);
    assert_eq!(submitted.output.len(), 1_000);
}

#[test]
fn the_workers_cut_at_most_the_first_stages_capacity_in_items_among_them() {
    for (capacity, workers, limit) in [(1, 1, 1), (3, 1, 3), (3, 2, 1), (64, 4, 16)] {
        let finished = within(60, move || {
            Pipeline::source(0..2_000u64)
                .cpu_budget(4)
                .stage(
                    Stage::map("a", |x: u64| x + 1)
                        .workers(workers)
                        .capacity(capacity),
                )
                .stage(
                    Stage::map("b", |x: u64| x * 2)
                        .workers(workers)
                        .capacity(capacity),
                )
                .collect()
                .run()
                .expect("the run completes")
        });
        let source = finished.report.source();
        assert!(source.fused, "{}", finished.report);
        assert_eq!(
            source.batch_limit, limit,
            "capacity {capacity}, {workers} workers"
        );
        assert_eq!(finished.output.len(), 2_000);
    }
}
