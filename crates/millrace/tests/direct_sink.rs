//! The fixed workers in front of the sink consume the sink's batches themselves while the
//! sink is cheap (`pipeline::sink::direct`): the sink's closure then runs on their threads,
//! never twice at once, each output exactly once; a costly sink gets its own thread back;
//! panics, cancels and the report hold either way.
//!
//! Whether a sink counts as cheap is measured (time per batch and per item), so a busy
//! machine or an unoptimised build may hand a cheap sink its thread back early: the tests
//! pin that the worker consumes the first batches, not that it consumes all of them.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{report_of, within, INJECTED};
use millrace::{Pipeline, PipelineBuilder, RunErrorKind, Stage};

/// The names of the threads the sink's closure ran on, and whether two calls overlapped.
#[derive(Clone, Default)]
struct SinkCalls {
    threads: Arc<Mutex<BTreeSet<String>>>,
    inside: Arc<AtomicUsize>,
    overlapped: Arc<AtomicUsize>,
}

impl SinkCalls {
    fn during<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.inside.fetch_add(1, Ordering::SeqCst) > 0 {
            self.overlapped.fetch_add(1, Ordering::SeqCst);
        }
        thread_local! {
            static RECORDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        if !RECORDED.with(|recorded| recorded.replace(true)) {
            let name = std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_owned();
            self.threads.lock().expect("no panic holds it").insert(name);
        }
        let out = f();
        self.inside.fetch_sub(1, Ordering::SeqCst);
        out
    }

    fn threads(&self) -> BTreeSet<String> {
        self.threads.lock().expect("no panic holds it").clone()
    }
}

/// `0..n` doubled by a stage `double` of `workers` workers: the shape most tests here close.
fn doubled(n: u64, workers: usize) -> PipelineBuilder<u64> {
    Pipeline::source(0..n).stage(Stage::map("double", |x: u64| x.wrapping_mul(2)).workers(workers))
}

#[test]
fn a_cheap_sink_behind_an_ordered_stage_runs_on_its_workers_and_sees_every_output_in_order() {
    // Three workers finish their batches out of order (uneven waits); the ordered stage
    // releases them in order, and its workers consume the sink themselves, one at a time.
    let calls = SinkCalls::default();
    let on = calls.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&seen);
    let finished = within(60, move || {
        Pipeline::source(0..3_000u64)
            .stage(
                Stage::map("shuffle", |x: u64| {
                    if x % 5 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    x * 3
                })
                .workers(3)
                .ordered(),
            )
            .for_each(move |x| on.during(|| into.lock().expect("no panic").push(x)))
            .run()
            .expect("the run completes")
    });
    let seen = seen.lock().expect("no panic").clone();
    assert_eq!(seen, (0..3_000).map(|x| x * 3).collect::<Vec<_>>());
    assert_eq!(
        calls.overlapped.load(Ordering::SeqCst),
        0,
        "one call at a time"
    );
    assert!(
        calls
            .threads()
            .iter()
            .any(|name| name.starts_with("millrace-shuffle-")),
        "consumed on the stage's workers: {:?}",
        calls.threads()
    );
    assert_eq!(finished.report.delivered(), 3_000);
}

#[test]
fn a_cheap_sink_runs_on_the_lone_worker_in_front_of_it_and_sees_every_output_in_order() {
    let calls = SinkCalls::default();
    let on = calls.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&seen);
    let finished = within(60, move || {
        doubled(50_000, 1)
            .for_each(move |x| on.during(|| into.lock().expect("no panic").push(x)))
            .run()
            .expect("the run completes")
    });
    let seen = seen.lock().expect("no panic").clone();
    assert_eq!(
        seen,
        (0..50_000).map(|x| x * 2).collect::<Vec<_>>(),
        "one worker keeps order"
    );
    assert!(
        calls.threads().contains("millrace-double-0"),
        "consumed on the stage's worker: {:?}",
        calls.threads()
    );
    assert_eq!(
        calls.overlapped.load(Ordering::SeqCst),
        0,
        "never two calls at once"
    );
    let report = finished.report;
    assert!(report.is_balanced(), "{report}");
    assert_eq!(report.sink().tally.items_in, 50_000, "{report}");
    if calls.threads().contains("millrace-sink") {
        assert!(!report.sink().fused, "it got its thread back: {report}");
    } else {
        assert!(
            report.sink().fused,
            "the report says where it ran: {report}"
        );
    }
    assert_eq!(report.delivered(), 50_000, "{report}");
}

#[test]
fn a_fold_behind_a_fused_run_with_one_worker_is_consumed_on_that_worker() {
    let calls = SinkCalls::default();
    let on = calls.clone();
    let finished = within(60, move || {
        Pipeline::source(0..100_000u64)
            .stage(Stage::map("a", |x: u64| x + 1).workers(1).capacity(1024))
            .stage(Stage::map("b", |x: u64| x * 3).workers(1).capacity(1024))
            .fold(0u64, move |sum, x| on.during(|| sum.wrapping_add(x)))
            .run()
            .expect("the run completes")
    });
    let want = (0..100_000u64).map(|x| (x + 1) * 3).sum::<u64>();
    assert_eq!(finished.output, want);
    assert!(
        calls.threads().contains("millrace-b-0"),
        "the fused run's worker (named after its last stage) consumed it: {:?}",
        calls.threads()
    );
    assert_eq!(
        calls.overlapped.load(Ordering::SeqCst),
        0,
        "never two calls at once"
    );
    assert!(finished.report.is_balanced(), "{}", finished.report);
}

#[test]
fn a_costly_sink_gets_its_own_thread_back_and_misses_nothing() {
    let calls = SinkCalls::default();
    let on = calls.clone();
    let finished = within(60, move || {
        doubled(200, 1)
            .fold(Vec::new(), move |mut seen, x| {
                on.during(|| {
                    // A millisecond an item: past the 50 ns an item and 5 µs a batch a
                    // thread of its own is worth, whatever the batch.
                    std::thread::sleep(Duration::from_millis(1));
                    seen.push(x);
                    seen
                })
            })
            .run()
            .expect("the run completes")
    });
    assert_eq!(finished.output, (0..200).map(|x| x * 2).collect::<Vec<_>>());
    assert!(
        calls.threads().contains("millrace-sink"),
        "the sink thread took over: {:?}",
        calls.threads()
    );
    assert_eq!(
        calls.overlapped.load(Ordering::SeqCst),
        0,
        "never two calls at once"
    );
    assert!(finished.report.is_balanced(), "{}", finished.report);
    assert!(!finished.report.sink().fused, "{}", finished.report);
}

#[test]
fn a_sink_behind_several_workers_runs_on_them_one_call_at_a_time() {
    let calls = SinkCalls::default();
    let on = calls.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&seen);
    let finished = within(60, move || {
        doubled(20_000, 2)
            .for_each(move |y| on.during(|| into.lock().expect("no panic holds it").push(y)))
            .run()
            .expect("the run completes")
    });
    let mut seen = seen.lock().expect("no panic holds it").clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..20_000).map(|x| x * 2).collect::<Vec<u64>>());
    assert_eq!(
        calls.overlapped.load(Ordering::SeqCst),
        0,
        "never two calls at once"
    );
    let threads = calls.threads();
    let allowed = ["millrace-double-0", "millrace-double-1", "millrace-sink"];
    assert!(
        threads.iter().all(|t| allowed.contains(&t.as_str())),
        "{threads:?}"
    );
    assert!(
        threads.iter().any(|t| t.starts_with("millrace-double-")),
        "a worker consumed the first batch: {threads:?}"
    );
    assert_eq!(finished.report.delivered(), 20_000);
    assert!(finished.report.is_balanced(), "{}", finished.report);
}

#[test]
fn a_sink_that_answers_upstream_keeps_its_own_thread() {
    let calls = SinkCalls::default();
    let on = calls.clone();
    let answered = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&answered);
    within(60, move || {
        Pipeline::source(0..5_000u64)
            .stage(
                Stage::map("double", |x: u64| x * 2)
                    .workers(1)
                    .on_response(move |_, _| {
                        count.fetch_add(1, Ordering::SeqCst);
                    }),
            )
            .for_each(move |_| on.during(|| ()))
            .run()
            .expect("the run completes")
    });
    assert_eq!(answered.load(Ordering::SeqCst), 5_000);
    assert_eq!(
        calls.threads(),
        BTreeSet::from(["millrace-sink".to_owned()])
    );
}

#[test]
fn a_fold_that_panics_on_the_worker_fails_the_run_and_accounts_for_every_item() {
    let ended = within(60, || {
        doubled(100_000, 1)
            .fold(0u64, |sum, x| {
                assert!(x != 20_000, "{INJECTED}: the fold breaks");
                sum + x
            })
            .run()
    });
    let error = ended
        .as_ref()
        .expect_err("a fold that panics fails the run");
    assert!(
        matches!(error.kind(), RunErrorKind::SinkPanicked(_)),
        "{error}"
    );
    let report = report_of(ended);
    assert!(report.is_balanced(), "{report}");
    // The item it panicked on failed; the ones folded before it were delivered.
    assert_eq!(report.failed(), 1, "{report}");
    assert_eq!(report.errors()[0].id().origin(), 10_000, "{report}");
    assert_eq!(
        report.delivered() + report.failed() + report.cancelled(),
        report.items_in(),
        "{report}"
    );
}

#[test]
fn a_for_each_that_panics_on_the_worker_fails_that_item_only() {
    let finished = within(60, || {
        doubled(10_000, 1)
            .for_each(|x| assert!(x % 2_000 != 2, "{INJECTED}: item {x}"))
            .run()
            .expect("the run completes")
    });
    let report = finished.report;
    assert_eq!(
        (report.delivered(), report.failed()),
        (9_990, 10),
        "{report}"
    );
    assert!(report.is_balanced(), "{report}");
}

#[test]
fn a_cancel_while_the_worker_consumes_accounts_for_every_item_admitted() {
    for cancel_after in [0, 5, 30] {
        let ended = within(60, move || {
            let running = doubled(u64::MAX, 1)
                .fold(0u64, u64::wrapping_add)
                .spawn()
                .expect("the pipeline starts");
            std::thread::sleep(Duration::from_millis(cancel_after));
            running.cancel();
            running.join()
        });
        let report = report_of(ended);
        assert!(report.is_balanced(), "{report}");
        assert_eq!(
            report.delivered() + report.cancelled(),
            report.items_in(),
            "{report}"
        );
    }
}

#[test]
fn a_stop_while_the_worker_consumes_delivers_everything_read() {
    let finished = within(60, || {
        let running = doubled(u64::MAX, 1)
            .fold(0u64, |n, _| n + 1)
            .spawn()
            .expect("the pipeline starts");
        std::thread::sleep(Duration::from_millis(20));
        running.stop();
        running.join().expect("a stopped run completes")
    });
    let report = finished.report;
    assert_eq!(finished.output, report.items_in(), "{report}");
    assert_eq!(report.delivered(), report.items_in(), "{report}");
}

#[test]
fn adaptive_fusion_off_keeps_the_sink_on_its_own_thread() {
    let calls = SinkCalls::default();
    let on = calls.clone();
    let finished = within(60, move || {
        doubled(20_000, 1)
            .adaptive_fusion(false)
            .for_each(move |_| on.during(|| ()))
            .run()
            .expect("the run completes")
    });
    assert_eq!(
        calls.threads(),
        BTreeSet::from(["millrace-sink".to_owned()])
    );
    assert!(!finished.report.sink().fused, "{}", finished.report);
}
