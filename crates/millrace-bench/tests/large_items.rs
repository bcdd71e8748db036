//! W5's claims, checked without timing or the allocator in the way: a 1 MiB buffer reaches
//! the last stage at the address where the first stage built it (moved, never copied), and
//! the buffers alive at once never exceed the in-flight bound the settings imply.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::guarded;
use millrace::{Pipeline, Stage};
use millrace_bench::workloads::w5_large;
use millrace_bench::Workload;

#[test]
fn large_buffers_are_moved_through_millrace_not_copied() {
    // Each buffer carries the address of its heap block from the stage that built it; the
    // last stage finds the same block, so no stage copied it.
    let moved = guarded("the W5 address check", || {
        Pipeline::source(0..16u64)
            .stage(
                Stage::map("build", |x| {
                    let buffer = w5_large::build(x);
                    let address = buffer.as_ptr() as usize;
                    (buffer, address)
                })
                .batch(1)
                .capacity(2),
            )
            .stage(
                Stage::map("hash", |(buffer, address): (Vec<u8>, usize)| {
                    let (buffer, h) = w5_large::hash(buffer);
                    (buffer, h, address)
                })
                .workers(2)
                .batch(1)
                .capacity(2),
            )
            .stage(
                Stage::map("check", |(buffer, _h, address): (Vec<u8>, u64, usize)| {
                    buffer.as_ptr() as usize == address && buffer.len() == w5_large::ITEM_BYTES
                })
                .batch(1)
                .capacity(2),
            )
            .fold(0usize, |moved, same| moved + usize::from(same))
            .run()
            .map(|finished| finished.output)
    });
    assert_eq!(
        moved.ok(),
        Some(16),
        "every buffer must reach the end in place"
    );
}

/// A W5 buffer that counts how many of its kind are alive, and the most ever alive.
struct Counted {
    buffer: Vec<u8>,
    live: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Counted {
    fn new(buffer: Vec<u8>, live: &Arc<(AtomicUsize, AtomicUsize)>) -> Self {
        let now = live.0.fetch_add(1, Ordering::SeqCst) + 1;
        live.1.fetch_max(now, Ordering::SeqCst);
        Counted {
            buffer,
            live: Arc::clone(live),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn live_buffers_never_exceed_the_w5_in_flight_bound() {
    // W5's primary configuration, with the stage bodies wrapped to count live buffers; the
    // last stage is slowed so that every connector runs full.
    let config = Workload::W5Large.millrace_configs()[0].clone();
    let bound = w5_large::millrace_in_flight(&config);
    let live = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let counter = Arc::clone(&live);
    let most = guarded("the W5 live-buffer count", move || {
        let built = Arc::clone(&counter);
        config
            .pipeline(Pipeline::source(0..64u64))
            .stage(config.stage(
                0,
                Stage::map("build", move |x| Counted::new(w5_large::build(x), &built)),
            ))
            .stage(config.stage(
                1,
                Stage::map("hash", |c: Counted| {
                    let h = millrace_bench::work::fnv1a(&c.buffer);
                    (c, h)
                }),
            ))
            .stage(config.stage(
                2,
                Stage::map("release", |(c, h): (Counted, u64)| {
                    thread::sleep(Duration::from_millis(2));
                    drop(c);
                    h
                }),
            ))
            .fold(0u64, u64::wrapping_add)
            .run()
            .map(|_| counter.1.load(Ordering::SeqCst))
    });
    let most = most.unwrap_or_else(|e| panic!("the run failed: {e}"));
    eprintln!("at most {most} buffers alive at once; the settings bound them to {bound}");
    assert!(
        most >= 2,
        "the pipeline never had two buffers in flight: {most}"
    );
    assert!(
        most <= bound,
        "{most} buffers were alive at once; the settings bound them to {bound}"
    );
    assert_eq!(live.0.load(Ordering::SeqCst), 0, "every buffer was dropped");
}

#[test]
fn the_w5_in_flight_bound_counts_every_worker_and_both_buffer_connectors() {
    let config = &Workload::W5Large.millrace_configs()[0];
    let workers: usize = config.workers.iter().flatten().sum();
    let capacity = config.capacity.unwrap_or(16_384);
    assert_eq!(config.batch, Some(1));
    assert_eq!(w5_large::millrace_in_flight(config), workers + 2 * capacity);
}
