//! Model checks (loom) of a connector's adaptive batch size: producers and a consumer update
//! it at once with relaxed atomics, and whatever the interleaving a producer always reads a
//! size between 1 and the limit, and a consumer's cap holds once the updates are done.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p millrace --lib loom_ --release`.

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;

use crate::batch_size::BatchSize;

const LIMIT: usize = 64;

#[test]
fn loom_batch_size_stays_within_its_bounds_under_racing_updates() {
    loom::model(|| {
        let size = Arc::new(BatchSize::adaptive(LIMIT));
        // Two producers: one fast (grows the size), one that finds its items sparse.
        let fast = {
            let size = Arc::clone(&size);
            thread::spawn(move || {
                for _ in 0..2 {
                    let n = size.get();
                    assert!((1..=LIMIT).contains(&n), "read {n}");
                    size.produced(n, Duration::from_nanos(n as u64));
                }
            })
        };
        let sparse = {
            let size = Arc::clone(&size);
            thread::spawn(move || {
                let n = size.get();
                assert!((1..=LIMIT).contains(&n), "read {n}");
                size.filled(n, Duration::from_millis(1), Duration::from_millis(1));
            })
        };
        // The consumer: 100 µs per item, so 10 items make its 1 ms.
        size.used(4, Duration::from_micros(400));
        fast.join().unwrap();
        sparse.join().unwrap();
        let n = size.get();
        assert!((1..=LIMIT).contains(&n), "ended at {n}");
        // Once every update is in, the next consumer measurement caps the size.
        size.used(4, Duration::from_micros(400));
        assert!(
            size.get() <= 32,
            "the cap comes down by at most a half per measurement"
        );
    });
}
