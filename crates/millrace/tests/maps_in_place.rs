//! Maps whose output type has their input's layout run in place (each output written over
//! its input, in the batch's vector): every item still comes out once, in order where
//! promised, a panic fails only its item, and every value a stage takes in is dropped
//! exactly once, whether it became an output, panicked, or was left unfinished.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use millrace::{Pipeline, Stage};

use common::within;

/// A 16-byte item that counts the live ones: made, it adds one; dropped, it takes one away.
struct Counted {
    value: u64,
    live: Arc<AtomicI64>,
}

impl Counted {
    fn new(value: u64, live: &Arc<AtomicI64>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Counted {
            value,
            live: Arc::clone(live),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A 16-byte output of the same layout, owning a heap value (a `String` would be 24).
struct Labelled {
    label: Box<str>,
}

#[test]
fn fused_maps_in_place_with_panics_drop_every_item_once_and_keep_order() {
    for (workers, batch) in [(1, None), (2, None), (3, Some(7)), (1, Some(1))] {
        let live = Arc::new(AtomicI64::new(0));
        let made = Arc::clone(&live);
        let finished = within(60, move || {
            let mut bump = Stage::map("bump", |c: Counted| {
                assert!(c.value % 97 != 13, "injected: bump refuses {}", c.value);
                Counted::new(c.value + 1, &c.live)
            })
            .workers(workers)
            .ordered();
            let mut label = Stage::map("label", |c: Counted| {
                assert!(c.value % 89 != 5, "injected: label refuses {}", c.value);
                Labelled {
                    label: c.value.to_string().into_boxed_str(),
                }
            })
            .workers(workers)
            .ordered();
            if let Some(b) = batch {
                bump = bump.batch(b);
                label = label.batch(b);
            }
            Pipeline::source((0..5_000u64).map(move |x| Counted::new(x, &made)))
                .fuse()
                .stage(bump)
                .stage(label)
                .collect()
                .run()
                .expect("the run completes")
        });
        let want: Vec<String> = (0..5_000u64)
            .filter(|x| x % 97 != 13)
            .map(|x| x + 1)
            .filter(|x| x % 89 != 5)
            .map(|x| x.to_string())
            .collect();
        let got: Vec<String> = finished
            .output
            .iter()
            .map(|l| l.label.to_string())
            .collect();
        assert_eq!(
            got, want,
            "workers {workers}, batch {batch:?}: in input order"
        );
        let report = &finished.report;
        assert_eq!(
            report.failed() as usize,
            5_000 - want.len(),
            "one failure per panic"
        );
        assert!(report.is_balanced());
        assert_eq!(
            live.load(Ordering::SeqCst),
            0,
            "workers {workers}, batch {batch:?}: every item dropped exactly once"
        );
    }
}

#[test]
fn a_state_that_cannot_be_rebuilt_leaves_the_rest_of_its_batch_unfinished_and_dropped() {
    use std::sync::atomic::AtomicUsize;
    let live = Arc::new(AtomicI64::new(0));
    let made = Arc::clone(&live);
    let builds = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&builds);
    let finished = within(60, move || {
        Pipeline::source((0..1_000u64).map(move |x| Counted::new(x, &made)))
            .stage(
                Stage::map_with(
                    "once",
                    move || {
                        // The first state builds; no later one does.
                        assert!(
                            counted.fetch_add(1, Ordering::SeqCst) == 0,
                            "no second state"
                        );
                    },
                    |_: &mut (), c: Counted| {
                        assert!(c.value != 500, "injected: 500");
                        Counted::new(c.value * 2, &c.live)
                    },
                )
                .workers(1)
                .batch(64),
            )
            .collect()
            .run()
    });
    // The run fails (a state that cannot be built), and nothing is leaked or dropped twice.
    let report = match &finished {
        Ok(f) => f.report.clone(),
        Err(e) => e.report().expect("a run error carries the report").clone(),
    };
    drop(finished);
    assert!(report.failed() >= 1);
    assert!(report.is_balanced());
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "every item dropped exactly once"
    );
}
