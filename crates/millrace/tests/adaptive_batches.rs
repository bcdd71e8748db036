//! Adaptive batch sizes as a user meets them: nothing set, the pipeline chooses each
//! connector's batch size. Fast items travel in large batches, but a costly stage is never
//! handed a large batch, a slow source's items are not held back, and large items are not
//! held by the hundred (found by a new user's trial of the defaults, issue 13).
//!
//! Every test asserts what happened to items, never how long it took.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use millrace::{Pipeline, Stage};

use common::{within, Inside};

#[test]
fn idle_workers_of_a_costly_stage_each_get_work_rather_than_one_large_batch() {
    // 64 workers of a stage that blocks 5 ms an item, behind a fast source. Batches that grew
    // 1, 2, 4, … 512 before the stage was measured left all but ten workers idle.
    let inside = Inside::default();
    let io = inside.clone();
    let report = within(120, move || {
        Pipeline::source(0..640u64)
            // All 64 from the start: the subject is the batches they are handed, not how
            // lazily started workers grow (`tests/lazy_workers.rs`).
            .lazy_workers(false)
            .stage(
                Stage::map("io", move |x: u64| {
                    io.during(|| std::thread::sleep(Duration::from_millis(5)));
                    x
                })
                .workers(64),
            )
            .fold(0u64, |n, _| n + 1)
            .run()
            .unwrap()
            .report
    });
    assert_eq!(report.delivered(), 640);
    let io = report.stage("io").unwrap();
    let per_batch = io.tally.items_in as f64 / io.tally.batches as f64;
    assert!(
        per_batch <= 4.0,
        "{per_batch:.1} items a batch into a 5 ms stage\n{report}"
    );
    assert!(
        inside.most() >= 16,
        "at most {} of 64 workers ever worked at once",
        inside.most()
    );
}

#[test]
fn large_items_are_not_held_by_the_hundred_with_nothing_set() {
    // 1 MiB blocks made and digested in one fused segment: the batch into it decides how
    // many blocks a worker holds at once.
    let alive = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (a, m, a2) = (Arc::clone(&alive), Arc::clone(&most), Arc::clone(&alive));
    let sum = within(120, move || {
        Pipeline::source(0..300usize)
            .stage(Stage::map("load", move |i: usize| {
                let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                vec![(i % 251) as u8; 1 << 20]
            }))
            .stage(Stage::map("digest", move |block: Vec<u8>| {
                let d = block.iter().map(|&x| u64::from(x)).sum::<u64>();
                drop(block);
                a2.fetch_sub(1, Ordering::SeqCst);
                d
            }))
            .fold(0u64, |s, d| s + d)
            .run()
            .unwrap()
            .output
    });
    let expected: u64 = (0..300usize).map(|i| (i % 251) as u64 * (1 << 20)).sum();
    assert_eq!(sum, expected);
    assert!(
        most.load(Ordering::SeqCst) <= 16,
        "{} blocks of 1 MiB alive at once",
        most.load(Ordering::SeqCst)
    );
}

/// Runs `source`, whose items from `backlog` on are live ones, through a cheap stage into a
/// sink: returns the items delivered, and how many the source had made when the first
/// live item reached the sink.
fn first_live_item_at_the_sink(
    source: impl Iterator<Item = u64> + Send + 'static,
    backlog: u64,
) -> (u64, u64) {
    let made = Arc::new(AtomicU64::new(0));
    let made_when_first_live_arrived = Arc::new(AtomicU64::new(0));
    let (mk, seen) = (Arc::clone(&made), Arc::clone(&made_when_first_live_arrived));
    let source = source.inspect(move |&x| mk.store(x + 1, Ordering::SeqCst));
    let delivered = within(120, move || {
        Pipeline::source(source)
            .map("parse", |x: u64| x * 2)
            .for_each(move |y| {
                if y == 2 * backlog {
                    seen.store(made.load(Ordering::SeqCst), Ordering::SeqCst);
                }
            })
            .run()
            .unwrap()
            .report
            .delivered()
    });
    (
        delivered,
        made_when_first_live_arrived.load(Ordering::SeqCst),
    )
}

#[test]
fn items_that_turn_slow_after_a_backlog_are_not_held_for_a_whole_batch() {
    // 20,000 items at once, then 200 more one every 10 ms: a live tail after a backlog. The
    // first live item must reach the sink long before the source has made the last.
    const BACKLOG: u64 = 20_000;
    const LIVE: u64 = 200;
    let source = (0..BACKLOG + LIVE).inspect(|&x| {
        if x >= BACKLOG {
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let (delivered, made_then) = first_live_item_at_the_sink(source, BACKLOG);
    assert_eq!(delivered, BACKLOG + LIVE);
    assert!(
        made_then < BACKLOG + LIVE,
        "the first live item waited until the source had made all {made_then}"
    );
}

#[test]
fn a_short_live_tail_after_a_backlog_is_not_held_until_the_source_ends() {
    // 20,000 items at once, then 20 more one every 30 ms: fewer than the 64 items between
    // two reads of the clock. The first live item must reach the sink before the source
    // has made the last (it used to wait for all of them: found by a new user's trial).
    const BACKLOG: u64 = 20_000;
    const LIVE: u64 = 20;
    let live = (BACKLOG..BACKLOG + LIVE).inspect(|_| std::thread::sleep(Duration::from_millis(30)));
    let (delivered, made_then) = first_live_item_at_the_sink((0..BACKLOG).chain(live), BACKLOG);
    assert_eq!(delivered, BACKLOG + LIVE);
    assert!(
        made_then < BACKLOG + LIVE,
        "the first live item waited until the source had made all {made_then}"
    );
}

#[test]
fn cheap_items_travel_in_large_batches() {
    let report = within(120, || {
        Pipeline::source(0..2_000_000u64)
            .stage(Stage::map("a", |x: u64| x + 1))
            .stage(Stage::map("b", |x: u64| x * 3))
            .fold(0u64, |s, x| s.wrapping_add(x))
            .run()
            .unwrap()
            .report
    });
    let a = report.stage("a").unwrap();
    let per_batch = a.tally.items_in as f64 / a.tally.batches as f64;
    assert!(a.batch_adaptive);
    assert!(
        per_batch >= 64.0,
        "{per_batch:.0} items a batch of 1 ns items\n{report}"
    );
}

#[test]
fn items_that_wait_on_each_other_each_get_a_worker_with_nothing_set() {
    // Four items that meet at a barrier, on four workers: two to a batch, one worker held
    // two of them and the run hung (found by a new user's trial, with 200 ms items taking
    // twice as long for the same reason).
    let barrier = Arc::new(Barrier::new(4));
    let finished = within(60, move || {
        Pipeline::source(0..4u64)
            .lazy_workers(false)
            .stage(
                Stage::map("meet", move |x: u64| {
                    barrier.wait();
                    x
                })
                .workers(4),
            )
            .collect()
            .run()
            .expect("every item reaches the barrier on a worker of its own")
    });
    let mut got = finished.output;
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2, 3]);
}

#[test]
fn items_that_wait_on_each_other_behind_a_cheap_stage_each_get_a_worker_when_ordered() {
    // The same behind a cheap stage, with the waiting stage ordered: the cheap stage keeps
    // the source's batches whole (an ordered stage restores order by batch), so the
    // source's batches must be no larger than what the waiting stage takes. (Before, the
    // source filled to the cheap stage's size: an ordered 20 ms stage of 32 workers behind
    // one ran 4x slower than unordered, and a cancel took 10 s to take effect.)
    let barrier = Arc::new(Barrier::new(4));
    let finished = within(60, move || {
        Pipeline::source(0..4u64)
            .lazy_workers(false)
            .stage(Stage::map("wrap", |x: u64| x).workers(1))
            .stage(
                Stage::map("meet", move |x: u64| {
                    barrier.wait();
                    x
                })
                .workers(4)
                .ordered(),
            )
            .collect()
            .run()
            .expect("every item reaches the barrier on a worker of its own")
    });
    assert_eq!(finished.output, (0..4).collect::<Vec<u64>>());
}

#[test]
fn a_pinned_batch_far_beyond_the_input_is_an_upper_bound_not_an_allocation() {
    // Every batch used to reserve room for the whole pinned size: `batch(1 << 40)` of u64s
    // aborted the process asking for 8 TiB, and `batch(usize::MAX)` panicked out of `run`
    // ("capacity overflow").
    for batch in [usize::MAX, 1 << 40, 1 << 32] {
        let finished = within(30, move || {
            Pipeline::source(0..1000u64)
                .stage(Stage::map("m", |x: u64| x + 1).batch(batch).ordered())
                .collect()
                .run()
                .unwrap()
        });
        assert_eq!(
            finished.output,
            (1..=1000).collect::<Vec<u64>>(),
            "batch {batch}"
        );
        assert_eq!(finished.report.stages()[0].queue_items(), Some(batch));
    }
}
