//! Backpressure: bounded connectors keep memory bounded however long the input. A slow
//! sink holds the whole pipeline back, so the items read from the source but not yet
//! consumed never exceed what the capacities, batch sizes and workers can hold; on the
//! response path, `max_in_flight` bounds the items admitted whose response has not come back.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use millrace::{Pipeline, Stage, TrySubmitError};

use common::{eventually, within};

/// Stage settings: (workers, capacity in items, batch).
type Settings = (usize, usize, usize);

/// The most items a pipeline of these stages (and a sink of `sink` capacity and batch) can
/// hold between the source and the consumer: the source's batch, every connector full of the
/// largest batches, every worker holding an input batch and two output batches (one being
/// filled, one being sent), and the consumer's current batch.
fn hold_bound(stages: &[Settings], sink: (usize, usize)) -> u64 {
    let max_batch = stages.iter().map(|s| s.2).chain([sink.1]).max().unwrap();
    let source = stages[0].2;
    let connectors: usize = stages
        .iter()
        .map(|&(_, cap, batch)| cap.div_ceil(batch).max(1))
        .chain([sink.0.div_ceil(sink.1).max(1)])
        .map(|queue| queue * max_batch)
        .sum();
    let workers: usize = stages.iter().map(|s| s.0 * 3 * max_batch).sum();
    (source + connectors + workers + max_batch) as u64
}

/// An endless source that counts the items read from it.
fn counted_source(read: &Arc<AtomicU64>) -> impl Iterator<Item = u64> + Send + 'static {
    let read = Arc::clone(read);
    (0u64..).inspect(move |_| {
        read.fetch_add(1, Ordering::SeqCst);
    })
}

fn slow_consumer_holds_back_an_endless_source(stages: &[Settings], sink: (usize, usize)) {
    let bound = hold_bound(stages, sink);
    let stages = stages.to_vec();
    let (max_held, report) = within(60, move || {
        let read = Arc::new(AtomicU64::new(0));
        let mut builder = Pipeline::source(counted_source(&read))
            .default_capacity(sink.0)
            .default_batch(sink.1);
        for (i, &(workers, capacity, batch)) in stages.iter().enumerate() {
            builder = builder.stage(
                Stage::map(&format!("s{i}"), |x: u64| x)
                    .workers(workers)
                    .capacity(capacity)
                    .batch(batch),
            );
        }
        let mut outputs = builder.outputs().unwrap();
        let mut max_held = 0;
        for taken in 1..=400u64 {
            outputs.next().expect("an endless source never runs dry");
            std::thread::sleep(Duration::from_micros(200));
            max_held = max_held.max(read.load(Ordering::SeqCst) - taken);
        }
        (max_held, outputs.finish().unwrap())
    });
    assert!(
        max_held <= bound,
        "{max_held} items were read but not consumed; the capacities allow {bound}"
    );
    assert!(report.is_balanced(), "{report}");
    assert_eq!(report.delivered(), 400);
}

#[test]
fn slow_sink_with_tiny_capacities_bounds_items_read_ahead() {
    slow_consumer_holds_back_an_endless_source(&[(2, 1, 1), (2, 2, 1), (1, 1, 1)], (1, 1));
}

#[test]
fn slow_sink_with_batches_bounds_items_read_ahead() {
    slow_consumer_holds_back_an_endless_source(&[(3, 32, 8), (2, 16, 4)], (16, 4));
}

#[test]
fn snapshot_in_flight_stays_within_capacities_under_a_slow_sink() {
    let stages = [(2, 4, 2), (3, 6, 3)];
    let bound = hold_bound(&stages, (4, 2)) as i128;
    let (max_in_flight, report) = within(60, move || {
        let running = Pipeline::source(0u64..)
            .default_capacity(4)
            .default_batch(2)
            .stage(Stage::map("a", |x: u64| x).workers(2).capacity(4).batch(2))
            .stage(
                Stage::filter("b", |x: &u64| x % 5 != 0)
                    .workers(3)
                    .capacity(6)
                    .batch(3),
            )
            .for_each(|_| std::thread::sleep(Duration::from_micros(300)))
            .spawn()
            .unwrap();
        let handle = running.handle();
        let mut max_in_flight = 0i128;
        eventually(30, "300 deliveries", || {
            let r = handle.snapshot();
            let done = r.delivered() + r.filtered() + r.failed() + r.cancelled();
            max_in_flight = max_in_flight.max(i128::from(r.items_in()) - i128::from(done));
            r.delivered() >= 300
        });
        handle.stop();
        (max_in_flight, running.join().unwrap().report)
    });
    assert!(
        max_in_flight <= bound,
        "snapshot showed {max_in_flight} items in flight; the capacities allow {bound}"
    );
    assert!(report.is_balanced(), "{report}");
    assert_eq!(report.cancelled(), 0);
    assert!(report.delivered() >= 300);
}

#[test]
fn max_in_flight_bounds_items_awaiting_their_response() {
    const LIMIT: u64 = 16;
    const BATCH: usize = 4;
    let (max_ahead, answered) = within(60, || {
        let read = Arc::new(AtomicU64::new(0));
        let (running, responses) = Pipeline::source(counted_source(&read).take(600))
            .max_in_flight(LIMIT as usize)
            .default_batch(BATCH)
            .stage(Stage::map("a", |x: u64| x).workers(3).batch(BATCH))
            .stage(Stage::map("b", |x: u64| x).workers(2).batch(BATCH))
            .respond()
            .unwrap();
        let mut answered = 0u64;
        let mut max_ahead = 0;
        for (_id, outcome) in responses {
            assert!(outcome.output().is_some());
            answered += 1;
            std::thread::sleep(Duration::from_micros(100));
            max_ahead = max_ahead.max(read.load(Ordering::SeqCst) - answered);
        }
        running.join().unwrap();
        (max_ahead, answered)
    });
    assert_eq!(answered, 600);
    // Admitted but unanswered ≤ LIMIT; the source may hold one more batch waiting for
    // admission, and the consumer's current response batch is released but not yet taken.
    let bound = LIMIT + 2 * BATCH as u64;
    assert!(
        max_ahead <= bound,
        "{max_ahead} items were read ahead of their responses; max_in_flight allows {bound}"
    );
}

#[test]
fn max_in_flight_bounds_items_awaiting_a_response_hook() {
    const LIMIT: u64 = 8;
    let (max_ahead, report) = within(60, || {
        let entered = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(AtomicU64::new(0));
        let max_ahead = Arc::new(AtomicU64::new(0));
        let (e, a, m) = (
            Arc::clone(&entered),
            Arc::clone(&acked),
            Arc::clone(&max_ahead),
        );
        let finished = Pipeline::source(0..500u64)
            .max_in_flight(LIMIT as usize)
            .stage(
                Stage::map("count", move |x: u64| {
                    let ahead = e.fetch_add(1, Ordering::SeqCst) + 1 - a.load(Ordering::SeqCst);
                    m.fetch_max(ahead, Ordering::SeqCst);
                    x
                })
                .batch(2)
                .workers(2)
                .on_response(move |_, _| {
                    std::thread::sleep(Duration::from_micros(100));
                    acked.fetch_add(1, Ordering::SeqCst);
                }),
            )
            .stage(Stage::map("next", |x: u64| x).batch(2))
            .default_batch(2)
            .for_each(|_| {})
            .run()
            .unwrap();
        (max_ahead.load(Ordering::SeqCst), finished.report)
    });
    assert!(
        max_ahead <= LIMIT,
        "{max_ahead} items entered the hooked stage before their response; max_in_flight is {LIMIT}"
    );
    assert_eq!(report.delivered(), 500);
    assert!(report.is_balanced());
}

#[test]
fn try_submit_reports_a_full_input_and_hands_the_item_back() {
    within(30, || {
        let (gate_tx, gate_rx) = item_gate();
        let (submitter, builder) = Pipeline::submitter::<u64>(1);
        let running = builder
            .stage(
                Stage::map("blocked", move |x: u64| {
                    gate_rx.lock().unwrap().recv().unwrap();
                    x
                })
                .capacity(1)
                .batch(1),
            )
            .default_capacity(1)
            .default_batch(1)
            .collect()
            .spawn()
            .unwrap();
        // The stage holds one item, its queue one, the source one, the submit queue one:
        // sooner or later the input is full.
        let mut accepted = 0u64;
        let full = loop {
            match submitter.try_submit(accepted) {
                Ok(_) => accepted += 1,
                Err(TrySubmitError::Full(item)) => break item,
                Err(other) => panic!("unexpected {other:?}"),
            }
            assert!(accepted < 100, "the input never filled up");
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(full, accepted, "the refused item comes back");
        for _ in 0..accepted {
            gate_tx.send(()).unwrap();
        }
        drop(submitter);
        let mut out = running.join().unwrap().output;
        out.sort_unstable();
        assert_eq!(out, (0..accepted).collect::<Vec<_>>());
    });
}

/// A channel whose receiver several workers can share: each `send` lets one item through.
fn item_gate() -> (
    std::sync::mpsc::Sender<()>,
    Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    (tx, Arc::new(std::sync::Mutex::new(rx)))
}

#[test]
fn a_small_capacity_is_honoured_in_items_not_rounded_up_to_a_default_batch() {
    // `.capacity(8)` of large items must mean about 8 items in the queue, not one default
    // batch (issue 13): an adaptive batch size stays within a quarter of the capacity.
    let report = within(30, || {
        Pipeline::source((0..200u64).map(|x| vec![x as u8; 1 << 10]))
            .stage(Stage::map("big", |v: Vec<u8>| v.len()).capacity(8))
            .stage(Stage::map("pinned", |n: usize| n).capacity(8).batch(64))
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    let big = report.stage("big").unwrap();
    assert_eq!((big.batch_limit, big.queue_capacity), (2, 4));
    assert!(big.batch_adaptive && big.batch <= big.batch_limit);
    assert_eq!(big.queue_items(), Some(8));
    // An explicit batch still pins it: one batch of 64.
    let pinned = report.stage("pinned").unwrap();
    assert_eq!((pinned.batch, pinned.queue_capacity), (64, 1));
    assert!(!pinned.batch_adaptive);
    assert_eq!(report.delivered(), 200);
}
