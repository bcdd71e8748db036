//! Ordering: a stage marked `ordered` emits in input order however many workers it has and
//! however unevenly they run, through a bounded reorder buffer; unordered stages may
//! reorder.

mod common;

use std::time::Duration;

use millrace::{Pipeline, Stage};

use common::within;

/// A little work that varies with the item, so workers finish out of order.
fn jitter(x: u64) {
    let spins = (x.wrapping_mul(2_654_435_761) >> 7) % 4;
    if spins == 0 {
        std::thread::sleep(Duration::from_micros(200));
    } else {
        std::thread::yield_now();
    }
}

#[test]
fn ordered_stage_emits_in_input_order_with_many_workers() {
    let out = within(60, || {
        Pipeline::source(0..3_000u64)
            .stage(
                Stage::map("slow", |x: u64| {
                    jitter(x);
                    x * 2
                })
                .workers(8)
                .batch(3)
                .capacity(12)
                .ordered(),
            )
            .collect()
            .run()
            .unwrap()
            .output
    });
    assert_eq!(out, (0..3_000u64).map(|x| x * 2).collect::<Vec<_>>());
}

#[test]
fn a_last_ordered_stage_restores_order_lost_by_unordered_stages_before_it() {
    let out = within(60, || {
        Pipeline::source(0..2_000u64)
            .stage(
                Stage::map("scramble", |x: u64| {
                    jitter(x);
                    x
                })
                .workers(6)
                .batch(2),
            )
            .stage(Stage::filter("drop-sevens", |x: &u64| x % 7 != 0).workers(3))
            .stage(Stage::map("restore", |x: u64| x + 1).workers(4).ordered())
            .collect()
            .run()
            .unwrap()
            .output
    });
    let want: Vec<u64> = (0..2_000u64)
        .filter(|x| x % 7 != 0)
        .map(|x| x + 1)
        .collect();
    assert_eq!(out, want);
}

#[test]
fn reorder_window_of_one_still_completes_in_order() {
    let out = within(60, || {
        Pipeline::source(0..1_000u64)
            .reorder_window(1)
            .stage(
                Stage::map("vary", |x: u64| {
                    jitter(x);
                    x
                })
                .workers(8)
                .batch(1)
                .capacity(1),
            )
            .stage(
                Stage::map("ordered", |x: u64| x)
                    .workers(4)
                    .batch(1)
                    .ordered(),
            )
            .collect()
            .run()
            .unwrap()
            .output
    });
    assert_eq!(out, (0..1_000u64).collect::<Vec<_>>());
}

#[test]
fn two_ordered_stages_in_a_row_keep_input_order() {
    let out = within(60, || {
        Pipeline::source(0..1_500u64)
            .reorder_window(2)
            .stage(
                Stage::map("first", |x: u64| {
                    jitter(x);
                    x
                })
                .workers(5)
                .batch(4)
                .ordered(),
            )
            .stage(
                Stage::map("between", |x: u64| {
                    jitter(x + 1);
                    x * 3
                })
                .workers(5)
                .batch(7),
            )
            .stage(
                Stage::map("second", |x: u64| x + 1)
                    .workers(3)
                    .batch(5)
                    .ordered(),
            )
            .collect()
            .run()
            .unwrap()
            .output
    });
    assert_eq!(out, (0..1_500u64).map(|x| x * 3 + 1).collect::<Vec<_>>());
}

#[test]
fn ordered_flat_map_keeps_each_items_children_in_place() {
    let out = within(60, || {
        Pipeline::source(0..500u64)
            .stage(
                Stage::flat_map("expand", |x: u64| {
                    jitter(x);
                    (0..x % 4).map(move |j| (x, j))
                })
                .workers(6)
                .batch(5),
            )
            .stage(Stage::map("tag", |p: (u64, u64)| p).workers(3).ordered())
            .collect()
            .run()
            .unwrap()
            .output
    });
    let want: Vec<(u64, u64)> = (0..500u64)
        .flat_map(|x| (0..x % 4).map(move |j| (x, j)))
        .collect();
    assert_eq!(out, want);
}

#[test]
fn batches_emptied_by_a_filter_do_not_stall_an_ordered_stage() {
    // Whole batches of 10 are filtered away before the ordered stage sees them.
    let out = within(60, || {
        Pipeline::source(0..2_000u64)
            .reorder_window(1)
            .stage(
                Stage::filter("gaps", |x: &u64| (x / 10) % 3 == 0)
                    .workers(4)
                    .batch(10),
            )
            .stage(Stage::map("ordered", |x: u64| x).workers(4).ordered())
            .collect()
            .run()
            .unwrap()
            .output
    });
    let want: Vec<u64> = (0..2_000u64).filter(|x| (x / 10) % 3 == 0).collect();
    assert_eq!(out, want);
}

#[test]
fn ordered_stage_order_survives_failures_and_panics() {
    let out = within(60, || {
        Pipeline::source(0..1_000u64)
            .stage(
                Stage::try_map("parse", |x: &u64| {
                    if x % 11 == 0 {
                        Err("injected error")
                    } else {
                        Ok(*x)
                    }
                })
                .workers(4)
                .batch(3),
            )
            .stage(
                Stage::map("check", |x: u64| {
                    if x % 13 == 0 {
                        panic!("injected panic on {x}");
                    }
                    jitter(x);
                    x
                })
                .workers(5)
                .batch(2)
                .ordered(),
            )
            .collect()
            .run()
            .unwrap()
    });
    let want: Vec<u64> = (0..1_000u64)
        .filter(|x| x % 11 != 0 && x % 13 != 0)
        .collect();
    assert_eq!(out.output, want);
    assert!(out.report.is_balanced());
}

#[test]
fn ordered_outputs_iterator_yields_in_input_order() {
    let got: Vec<u64> = within(60, || {
        Pipeline::source(0..800u64)
            .stage(
                Stage::map("vary", |x: u64| {
                    jitter(x);
                    x
                })
                .workers(7)
                .batch(2)
                .ordered(),
            )
            .outputs()
            .unwrap()
            .collect()
    });
    assert_eq!(got, (0..800u64).collect::<Vec<_>>());
}

#[test]
fn an_ordered_stage_keeps_the_order_of_the_ids_submitted_from_several_threads() {
    // Three threads submit at once; the ids `submit` returns are the input order an ordered
    // stage keeps (before, an id was taken before its item was queued, so two threads could
    // queue in the reverse order of their ids, and the output followed the queue).
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    const PER_THREAD: u64 = 2_000;
    let (submitter, pipeline) = Pipeline::submitter::<u64>(16);
    let ids = Arc::new(Mutex::new(HashMap::new()));
    let (finished, ids) = within(60, move || {
        let running = pipeline
            .stage(
                Stage::map("jittery", |x: u64| {
                    jitter(x);
                    x
                })
                .workers(2)
                .ordered(),
            )
            .collect()
            .spawn()
            .expect("the pipeline starts");
        let threads: Vec<_> = (0..3u64)
            .map(|thread| {
                let (submitter, ids) = (submitter.clone(), Arc::clone(&ids));
                std::thread::spawn(move || {
                    for k in 0..PER_THREAD {
                        let value = thread * 1_000_000 + k;
                        let id = submitter.submit(value).expect("the pipeline runs");
                        ids.lock().expect("no panic").insert(value, id);
                    }
                })
            })
            .collect();
        drop(submitter);
        for thread in threads {
            thread.join().expect("a submitting thread does not panic");
        }
        (running.join().expect("the run completes"), ids)
    });
    let ids = ids.lock().expect("no panic");
    let in_output: Vec<_> = finished.output.iter().map(|value| ids[value]).collect();
    assert_eq!(in_output.len() as u64, 3 * PER_THREAD);
    assert!(
        in_output.windows(2).all(|pair| pair[0] < pair[1]),
        "outputs in the order of their ids"
    );
}
