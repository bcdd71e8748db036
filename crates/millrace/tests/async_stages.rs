//! Async stages: many waits in flight on few threads, with the same guarantees as sync
//! stages (order when asked, per-item errors, timeouts and panics, responses, shutdown).

#![cfg(feature = "async")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{within, INJECTED};
use millrace::{
    BottleneckKind, EndState, ErrorPolicy, ItemErrorKind, Outcome, Pipeline, Retry, RunErrorKind,
    Stage,
};
use proptest::prelude::*;

/// Threads of this process whose name starts with `prefix`, from /proc (Linux). Thread
/// names are cut to 15 bytes.
fn threads_named(prefix: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[test]
fn ten_thousand_waits_run_concurrently_on_a_few_threads() {
    within(60, || {
        let peak = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&peak);
        let finished = Pipeline::source(0..10_000u64)
            .stage(
                Stage::map_async("w10k", move |x: u64| {
                    let seen = Arc::clone(&seen);
                    async move {
                        // Counted before and after the wait: the intake thread ends once
                        // the input is read, so the stage's threads are never more than 3.
                        if x % 500 == 0 {
                            seen.fetch_max(threads_named("millrace-w10k"), Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if x % 500 == 0 {
                            seen.fetch_max(threads_named("millrace-w10k"), Ordering::Relaxed);
                        }
                        x
                    }
                })
                .concurrency(10_000),
            )
            .fold(0u64, |n, _| n + 1)
            .run()
            .unwrap();
        assert_eq!(finished.output, 10_000);
        // 10,000 waits of 200 ms one after another would take 2,000 s; all at once, well
        // under the test's timeout, on the stage's three threads (intake, driver, output).
        let peak = peak.load(Ordering::Relaxed);
        assert!(
            (2..=3).contains(&peak),
            "threads of the async stage: {peak}"
        );
        let stage = finished.report.stage("w10k").unwrap();
        assert_eq!(stage.tally.items_in, 10_000);
        assert_eq!(
            stage.tally.in_flight, 0,
            "nothing is in flight after the run"
        );
        assert!(
            stage.tally.waiting >= Duration::from_secs(1000),
            "each item waited 200 ms: {:?}",
            stage.tally.waiting
        );
    });
}

#[test]
fn ordered_async_stage_keeps_input_order_despite_random_delays() {
    within(60, || {
        let out = Pipeline::source(0..2_000u64)
            .default_batch(16)
            .stage(
                Stage::map_async("jitter", |x: u64| async move {
                    // Later items often finish first.
                    tokio::time::sleep(Duration::from_micros((x * 7919) % 3000)).await;
                    x
                })
                .concurrency(300)
                .ordered(),
            )
            .collect()
            .run()
            .unwrap()
            .output;
        assert_eq!(out, (0..2_000).collect::<Vec<_>>());
    });
}

#[test]
fn an_item_past_its_timeout_fails_and_its_future_is_dropped() {
    within(30, || {
        struct DropFlag(Arc<AtomicUsize>);
        impl Drop for DropFlag {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let flag = Arc::clone(&dropped);
        let finished = Pipeline::source(0..10u64)
            .stage(
                Stage::map_async("slow-on-3", move |x: u64| {
                    let guard = DropFlag(Arc::clone(&flag));
                    async move {
                        if x == 3 {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                        }
                        drop(guard);
                        x
                    }
                })
                .timeout(Duration::from_millis(50))
                .ordered(),
            )
            .collect()
            .run()
            .unwrap();
        assert_eq!(finished.output, vec![0, 1, 2, 4, 5, 6, 7, 8, 9]);
        let errors = finished.report.errors();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].id().0, 3);
        assert!(
            matches!(errors[0].kind(), ItemErrorKind::TimedOut(d) if *d == Duration::from_millis(50))
        );
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            10,
            "every future, the slow one too, was dropped"
        );
    });
}

#[test]
fn a_panic_inside_a_future_fails_that_item_only() {
    within(30, || {
        let finished = Pipeline::source(0..100u64)
            .stage(Stage::map_async("boom", |x: u64| async move {
                if x % 10 == 0 {
                    panic!("{INJECTED}: item {x}");
                }
                x
            }))
            .fold(0u64, |n, _| n + 1)
            .run()
            .unwrap();
        assert_eq!(finished.output, 90);
        assert_eq!(finished.report.failed(), 10);
        assert!(finished
            .report
            .errors()
            .iter()
            .all(|e| e.is_panic() && e.stage() == "boom"));
        assert!(finished.report.is_balanced());
    });
}

#[test]
fn try_map_async_retries_a_flaky_call_and_dead_letters_the_item_whole() {
    within(30, || {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let dead = Arc::new(std::sync::Mutex::new(Vec::new()));
        let letters = Arc::clone(&dead);
        let finished = Pipeline::source(0..20u64)
            .stage(
                Stage::try_map_async("flaky", move |x: &u64| {
                    let x = *x;
                    let n = counted.fetch_add(1, Ordering::Relaxed);
                    async move {
                        // Item 13 always fails; the others fail on every other call.
                        if x == 13 || n % 2 == 0 {
                            Err(format!("call {n} for item {x} failed"))
                        } else {
                            Ok(x)
                        }
                    }
                })
                .on_error(ErrorPolicy::Retry(
                    Retry::new(5).backoff(Duration::from_millis(1)),
                ))
                .dead_letter(move |letter| letters.lock().unwrap().push((letter.id.0, letter.item)))
                .concurrency(1)
                .ordered(),
            )
            .collect()
            .run()
            .unwrap();
        let expected: Vec<u64> = (0..20).filter(|&x| x != 13).collect();
        assert_eq!(finished.output, expected);
        assert_eq!(*dead.lock().unwrap(), vec![(13, Some(13))]);
        let stage = finished.report.stage("flaky").unwrap();
        assert_eq!(stage.tally.failed, 1);
        // Item 13 retried 4 times; most others once (calls alternate between failing and not).
        assert!(
            stage.tally.retries >= 4 + 15,
            "retries: {}",
            stage.tally.retries
        );
        assert_eq!(finished.report.errors()[0].attempts(), 5);
    });
}

#[test]
fn sync_and_async_stages_mix_and_responses_reach_the_submitter() {
    within(30, || {
        let (running, responses) = Pipeline::source(0..500u64)
            .stage(Stage::map("square", |x: u64| x * x).workers(2))
            .stage(
                Stage::map_async("lookup", |y: u64| async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    y + 1
                })
                .concurrency(100),
            )
            .filter("odd", |y| y % 2 == 1)
            .respond()
            .unwrap();
        let mut seen = vec![0u8; 500];
        for (id, outcome) in responses {
            seen[id.0 as usize] += 1;
            match outcome {
                Outcome::Output(y) => assert_eq!(y, id.0 * id.0 + 1),
                Outcome::Filtered { stage } => {
                    assert_eq!(&*stage, "odd");
                    assert_eq!((id.0 * id.0 + 1) % 2, 0);
                }
                other => panic!("unexpected outcome {other:?} for {id}"),
            }
        }
        assert!(
            seen.iter().all(|&n| n == 1),
            "every item answered exactly once"
        );
        assert_eq!(running.join().unwrap().report.end(), EndState::Completed);
    });
}

#[test]
fn graceful_stop_with_thousands_of_futures_in_flight_loses_nothing() {
    within(60, || {
        let running = Pipeline::source(0..1_000_000u64)
            .stage(
                Stage::map_async("wait", |x: u64| async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    x
                })
                .concurrency(5_000),
            )
            .fold(0u64, |n, _| n + 1)
            .spawn()
            .unwrap();
        let handle = running.handle();
        common::eventually(20, "thousands in flight", || {
            handle
                .snapshot()
                .stage("wait")
                .map_or(0, |s| s.tally.in_flight)
                >= 2_000
        });
        handle.stop();
        let finished = running.join().unwrap();
        let report = &finished.report;
        assert_eq!(report.end(), EndState::Stopped);
        assert!(report.items_in() < 1_000_000);
        assert_eq!(report.cancelled(), 0);
        assert_eq!(
            finished.output,
            report.items_in(),
            "every admitted item was delivered"
        );
        assert!(report.is_balanced());
    });
}

#[test]
fn cancel_drops_futures_in_flight_and_lists_their_items() {
    within(60, || {
        let running = Pipeline::source(0..1_000_000u64)
            .stage(
                Stage::map_async("forever", |x: u64| async move {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    x
                })
                .concurrency(1_000),
            )
            .for_each(|_| {})
            .spawn()
            .unwrap();
        let handle = running.handle();
        common::eventually(20, "items in flight", || {
            handle
                .snapshot()
                .stage("forever")
                .map_or(0, |s| s.tally.in_flight)
                >= 1_000
        });
        handle.cancel();
        let report = running.join().unwrap().report;
        assert_eq!(report.end(), EndState::Cancelled);
        assert_eq!(report.delivered(), 0);
        assert!(report.unfinished().len() as u64 >= 1_000);
        assert_eq!(report.unfinished().len() as u64, report.cancelled());
        assert!(report.is_balanced());
    });
}

#[test]
fn a_stuck_async_stage_takes_a_bounded_number_of_items_from_an_endless_source() {
    within(60, || {
        const CONCURRENCY: usize = 64;
        const CAPACITY: usize = 256;
        let pulled = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&pulled);
        let running = Pipeline::source((0u64..).inspect(move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        }))
        .stage(
            Stage::map_async("stuck", |x: u64| async move {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                x
            })
            .concurrency(CONCURRENCY)
            .capacity(CAPACITY),
        )
        .for_each(|_| {})
        .spawn()
        .unwrap();
        let handle = running.handle();
        common::eventually(20, "every place taken", || {
            handle
                .snapshot()
                .stage("stuck")
                .map_or(0, |s| s.tally.in_flight)
                >= CONCURRENCY as u64
        });
        // Whenever it is read, what the source gave up is held somewhere: its own batch, the
        // connector (its capacity), a batch in the intake's hands, the hand-off to the driver
        // (fewer than the concurrency, plus a batch) and the driver's admitted items (twice
        // the concurrency, plus one batch held back). Batches are at most a quarter
        // of the concurrency here. An unbounded hand-off would let the source run on.
        std::thread::sleep(Duration::from_millis(200));
        let batch = CONCURRENCY / 4;
        let bound = batch + CAPACITY + batch + (CONCURRENCY + batch) + (2 * CONCURRENCY + batch);
        let taken = pulled.load(Ordering::Relaxed);
        assert!(
            taken <= bound,
            "the source gave up {taken} items, more than the {bound} the stage can hold"
        );
        handle.cancel();
        let report = running.join().unwrap().report;
        assert_eq!(report.end(), EndState::Cancelled);
        assert!(report.is_balanced());
    });
}

#[test]
fn a_runtime_handed_in_runs_the_stage() {
    within(30, || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let out = Pipeline::source(0..100u64)
            .runtime(rt.handle().clone())
            .stage(
                Stage::map_async("on-theirs", |x: u64| async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    x + 1
                })
                .ordered(),
            )
            .collect()
            .run()
            .unwrap()
            .output;
        assert_eq!(out, (1..=100).collect::<Vec<_>>());
    });
}

#[test]
fn stop_policy_in_an_async_stage_ends_the_run_with_the_first_error() {
    within(30, || {
        let err = Pipeline::source(0..10_000u64)
            .stage(
                Stage::try_map_async("check", |x: &u64| {
                    let x = *x;
                    async move {
                        if x == 500 {
                            Err("bad item")
                        } else {
                            Ok(x)
                        }
                    }
                })
                .on_error(ErrorPolicy::Stop),
            )
            .for_each(|_| {})
            .run()
            .unwrap_err();
        match err.kind() {
            RunErrorKind::Item(e) => assert_eq!(e.id().0, 500),
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.report().unwrap().is_balanced());
    });
}

#[test]
fn concurrency_or_timeout_on_a_sync_stage_is_a_build_error() {
    let err = Pipeline::source(0..1u8)
        .stage(Stage::map("sync", |x: u8| x).concurrency(4))
        .collect()
        .run()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot build pipeline: stage `sync`: concurrency applies to async stages only (sync stages scale with workers)"
    );
    let err = Pipeline::source(0..1u8)
        .stage(Stage::map("sync", |x: u8| x).timeout(Duration::from_secs(1)))
        .collect()
        .run()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot build pipeline: stage `sync`: a timeout applies to async stages only (a sync stage's closure cannot be interrupted; an async stage's future can)"
    );
}

/// What the random async stage does with an item.
fn reference(x: u64, fail_mod: u64, panic_mod: u64) -> Option<u64> {
    if x % fail_mod == 1 || x % panic_mod == 2 {
        None
    } else {
        Some(x * 3)
    }
}

proptest! {
    #![proptest_config(common::hang_safe_config(24))]

    /// Random async stages (delays, errors, panics) between sync stages: nothing lost or
    /// duplicated, order kept when the last stage is ordered, the accounting balances.
    #[test]
    fn async_stages_keep_the_core_invariants(
        n in 0u64..400,
        concurrency in 1usize..64,
        batch in 1usize..32,
        workers in 1usize..4,
        fail_mod in 3u64..9,
        panic_mod in 3u64..9,
        ordered in any::<bool>(),
    ) {
        let out = within(60, move || {
            let stage = Stage::try_map_async("maybe", move |x: &u64| {
                let x = *x;
                async move {
                    tokio::time::sleep(Duration::from_micros((x * 31) % 500)).await;
                    if x % panic_mod == 2 {
                        panic!("{INJECTED}: {x}");
                    }
                    if x % fail_mod == 1 { Err("refused") } else { Ok(x) }
                }
            })
            .concurrency(concurrency);
            let last = Stage::map("triple", |x: u64| x * 3).workers(workers);
            let last = if ordered { last.ordered() } else { last };
            Pipeline::source(0..n)
                .default_batch(batch)
                .stage(Stage::map("id", |x: u64| x).workers(workers))
                .stage(stage)
                .stage(last)
                .collect()
                .run()
                .unwrap()
        });
        let mut expected: Vec<u64> = (0..n).filter_map(|x| reference(x, fail_mod, panic_mod)).collect();
        let mut got = out.output.clone();
        if !ordered {
            got.sort_unstable();
            expected.sort_unstable();
        }
        prop_assert_eq!(got, expected);
        prop_assert!(out.report.is_balanced());
        prop_assert_eq!(out.report.failed(), (0..n).filter(|&x| reference(x, fail_mod, panic_mod).is_none()).count() as u64);
    }
}

/// A try whose result is ready when the runtime comes to it passes, even if the runtime came
/// late because another item's future held its thread past the deadline (as
/// `tokio::time::timeout` has it); the future that held the thread fails, its own polls
/// having taken longer than the limit.
#[test]
fn a_try_that_ends_in_time_passes_though_another_item_held_the_runtime_past_its_deadline() {
    let report = within(30, || {
        Pipeline::source(0..2u64)
            .default_batch(2)
            .stage(
                Stage::map_async("held", |x: u64| async move {
                    if x == 0 {
                        // Both items start; then this one blocks the runtime's thread.
                        tokio::task::yield_now().await;
                        std::thread::sleep(Duration::from_millis(150));
                    } else {
                        // Its timer fires while the thread is blocked; it is ready once
                        // polled again, 150 ms after it started.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    x
                })
                .concurrency(2)
                .timeout(Duration::from_millis(50)),
            )
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    let failed: Vec<u64> = report.errors().iter().map(|e| e.id().0).collect();
    assert_eq!(
        failed,
        [0],
        "only the item that held the thread fails: {report}"
    );
    assert!(matches!(
        report.errors()[0].kind(),
        ItemErrorKind::TimedOut(_)
    ));
    assert_eq!(report.delivered(), 1);
}

#[test]
fn an_async_stage_held_back_by_its_concurrency_is_named_with_that_advice() {
    // One item in flight at a time, 2 ms each: its threads idle, its one slot is always
    // taken. The report used to call it oversubscription and advise fewer workers.
    let report = within(60, || {
        Pipeline::source(0..200u64)
            .stage(Stage::map("a", |x: u64| x + 1).workers(1))
            .stage(
                Stage::map_async("io", |x: u64| async move {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    x
                })
                .concurrency(1),
            )
            .fold(0u64, |s, x| s + x)
            .run()
            .unwrap()
            .report
    });
    let io = report.stage("io").expect("the io stage");
    assert_eq!(io.concurrency, 1);
    assert!(io.concurrency_used > 0.5, "{io:?}");
    assert_eq!(report.stage("a").expect("stage a").concurrency, 0);
    let b = report.bottleneck().expect("a bottleneck");
    assert_eq!(b.stage, "io", "{report}");
    assert_eq!(
        b.reason.kind,
        BottleneckKind::ConcurrencyBound { concurrency: 1 },
        "{report}"
    );
    assert!(
        b.reason
            .to_string()
            .ends_with("a higher concurrency may help"),
        "{}",
        b.reason
    );
}
