//! Flushing under light traffic: batches are cut to cut per-item cost, but a lone item is
//! never held back waiting for company. An item submitted on its own comes out of the
//! pipeline (or comes back as a response) without any more input, whatever the batch sizes.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use millrace::{Pipeline, Stage};

use common::within;

/// How long a lone item may take to come out before we call it held back.
const LONE_ITEM_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn a_lone_submitted_item_comes_out_of_the_outputs_without_more_input() {
    within(60, || {
        let (submitter, builder) = Pipeline::submitter::<u64>(16);
        let mut outputs = builder
            .stage(Stage::map("a", |x: u64| x + 1).workers(3).batch(256))
            .stage(Stage::filter("b", |_: &u64| true).workers(2).batch(256))
            .stage(Stage::map("c", |x: u64| x * 10).batch(100))
            .outputs()
            .unwrap();
        let (ack, acked) = mpsc::channel::<()>();
        let feeder = std::thread::spawn(move || {
            for x in 0..5u64 {
                submitter.submit(x).unwrap();
                // The next item goes in only once this one came out.
                if acked.recv_timeout(LONE_ITEM_TIMEOUT).is_err() {
                    return false;
                }
            }
            true
        });
        for x in 0..5u64 {
            assert_eq!(outputs.next(), Some((x + 1) * 10), "lone item {x}");
            ack.send(()).unwrap();
        }
        assert!(feeder.join().unwrap(), "every item came out on its own");
        assert_eq!(outputs.next(), None, "input ends with the submitter");
        assert_eq!(outputs.finish().unwrap().delivered(), 5);
    });
}

#[test]
fn a_lone_submitted_item_reaches_a_for_each_sink_without_more_input() {
    within(60, || {
        let (submitter, builder) = Pipeline::submitter::<u64>(4);
        let (tx, rx) = mpsc::channel();
        let running = builder
            .stage(
                Stage::map("a", |x: u64| x)
                    .workers(4)
                    .batch(64)
                    .capacity(256),
            )
            .stage(
                Stage::map("ordered", |x: u64| x)
                    .workers(2)
                    .batch(32)
                    .ordered(),
            )
            .default_batch(256)
            .for_each(move |x| tx.send(x).unwrap())
            .spawn()
            .unwrap();
        for x in [7u64, 8, 9] {
            submitter.submit(x).unwrap();
            assert_eq!(rx.recv_timeout(LONE_ITEM_TIMEOUT), Ok(x), "lone item {x}");
        }
        drop(submitter);
        assert_eq!(running.join().unwrap().report.delivered(), 3);
    });
}

#[test]
fn a_lone_submitted_item_is_answered_without_more_input() {
    within(60, || {
        let (submitter, builder) = Pipeline::submitter::<u64>(8);
        let (running, mut responses) = builder
            .stage(Stage::map("square", |x: u64| x * x).workers(2).batch(128))
            .stage(Stage::map("hooked", |x: u64| x).on_response(|_, _| {}))
            .respond()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for (id, outcome) in responses.by_ref() {
                tx.send((id.0, outcome.output())).unwrap();
            }
        });
        for x in 0..4u64 {
            let id = submitter.submit(x).unwrap();
            let got = rx.recv_timeout(LONE_ITEM_TIMEOUT);
            assert_eq!(got, Ok((id.0, Some(x * x))), "lone item {x}");
        }
        drop(submitter);
        reader.join().unwrap();
        running.join().unwrap();
    });
}
