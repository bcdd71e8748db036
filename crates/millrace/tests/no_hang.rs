//! Shapes of the public API that used to hang, let a panic escape, or report a false end
//! (issue 11). Each test is built from the probe's repro and runs under a timeout.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use millrace::{EndState, ItemErrorKind, Pipeline, RunErrorKind, Stage, TrySubmitError};

use common::{within, INJECTED};

#[test]
fn outputs_with_a_response_hook_and_a_window_below_the_batch_size_ends() {
    // Outputs::next used to wait for the next batch before answering the one the caller
    // had taken; those answers were the credits the source waited for.
    let count = within(60, || {
        let outputs = Pipeline::source(0..1000u64)
            .stage(Stage::map("h", |x: u64| x).on_response(|_, _| {}))
            .max_in_flight(100)
            .outputs()
            .unwrap();
        outputs.count()
    });
    assert_eq!(count, 1000);
}

#[test]
fn outputs_with_a_window_of_one_delivers_everything_in_order() {
    let got = within(60, || {
        Pipeline::source(0..500u64)
            .stage(
                Stage::map("h", |x: u64| x + 1)
                    .workers(2)
                    .ordered()
                    .on_response(|_, _| {}),
            )
            .max_in_flight(1)
            .default_batch(7)
            .outputs()
            .unwrap()
            .collect::<Vec<_>>()
    });
    assert_eq!(got, (1..=500).collect::<Vec<_>>());
}

#[test]
fn join_before_reading_the_responses_keeps_them_for_the_iterator() {
    // More items than the in-flight window: the source needs the credits of responses
    // nobody has read yet. `join` takes them and keeps them for the iterator.
    let (finished, got) = within(120, || {
        let (running, responses) = Pipeline::source(0..20_000u64)
            .map("square", |x| x * x)
            .max_in_flight(1000)
            .respond()
            .unwrap();
        let finished = running.join().unwrap();
        let got: Vec<(u64, u64)> = responses
            .map(|(id, outcome)| (id.0, outcome.output().expect("every item delivers")))
            .collect();
        (finished, got)
    });
    assert_eq!(finished.report.end(), EndState::Completed);
    assert_eq!(got.len(), 20_000);
    let mut ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20_000, "every id answered once");
    assert!(got.iter().all(|&(id, y)| y == id * id));
}

#[test]
fn responses_read_on_another_thread_while_joining_are_each_seen_once() {
    let seen = within(120, || {
        let (running, responses) = Pipeline::source(0..30_000u64)
            .map("inc", |x| x + 1)
            .max_in_flight(64)
            .respond()
            .unwrap();
        let reader = std::thread::spawn(move || responses.map(|(id, _)| id.0).collect::<Vec<_>>());
        running.join().unwrap();
        reader.join().unwrap()
    });
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!((seen.len(), sorted.len()), (30_000, 30_000));
}

#[test]
fn dropping_the_responses_mid_run_ends_the_run_as_stopped() {
    let report = within(60, || {
        let (running, mut responses) = Pipeline::source(0..200_000u64)
            .map("inc", |x| x + 1)
            .max_in_flight(256)
            .respond()
            .unwrap();
        for _ in 0..10 {
            responses.next().expect("a response");
        }
        drop(responses);
        running.join().unwrap().report
    });
    assert_eq!(report.end(), EndState::Stopped);
    assert!(report.delivered() < 200_000);
    assert!(report.is_balanced());
}

#[test]
fn dropping_the_responses_once_every_item_was_admitted_completes_the_run() {
    // Nothing is refused: the items already admitted finish, and they were all of them.
    let report = within(60, || {
        let (running, responses) = Pipeline::source(0..100u64)
            .map("inc", |x| x + 1)
            .max_in_flight(1000)
            .respond()
            .unwrap();
        let handle = running.handle();
        while handle.snapshot().source().tally.items_out < 100 {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(responses);
        running.join().unwrap().report
    });
    assert_eq!(report.end(), EndState::Completed);
    assert_eq!(report.delivered(), 100);
    assert!(report.is_balanced());
}

#[test]
fn dropping_the_responses_at_once_stops_the_input_even_while_join_takes_them() {
    // The drop used to only close the in-flight window, which an admitter reads only when
    // it must wait; `join` credits every response, so it never had to: all 1,000,000
    // items were admitted and the run completed.
    let report = within(120, || {
        let (running, responses) = Pipeline::source(0..1_000_000u64)
            .map("inc", |x| x + 1)
            .respond()
            .unwrap();
        drop(responses);
        running.join().unwrap().report
    });
    assert_eq!(report.end(), EndState::Stopped);
    // At most the in-flight window (65,536 by default) and a batch were admitted.
    assert!(report.items_in() < 200_000, "{report}");
    assert!(report.is_balanced(), "{report}");
}

#[test]
fn dropping_the_responses_of_a_submitter_pipeline_refuses_further_items() {
    let (report, accepted_after) = within(60, || {
        let (submitter, builder) = Pipeline::submitter::<u64>(16);
        let (running, responses) = builder.map("inc", |x| x + 1).respond().unwrap();
        for i in 0..10 {
            submitter.submit(i).unwrap();
        }
        drop(responses);
        assert!(running.handle().is_stopping(), "the drop stops the input");
        let accepted_after = (0..1000u64)
            .filter(|&i| submitter.try_submit(i).is_ok())
            .count();
        drop(submitter);
        (running.join().unwrap().report, accepted_after)
    });
    assert_eq!(accepted_after, 0);
    assert_eq!(report.end(), EndState::Stopped);
    assert!(report.items_in() <= 10, "{report}");
    assert!(report.is_balanced(), "{report}");
}

#[test]
fn a_stop_or_cancel_after_the_run_finished_leaves_it_completed() {
    // The end state was read from the flags at `join`: a watchdog's stop or cancel that
    // came just after the last item made a finished run `Stopped` or `Cancelled`.
    for how in ["stop", "cancel"] {
        let report = within(60, move || {
            let running = Pipeline::source(0..10u64)
                .map("inc", |x| x + 1)
                .fold(0u64, |n, _| n + 1)
                .spawn()
                .unwrap();
            while !running.is_finished() {
                std::thread::sleep(Duration::from_millis(1));
            }
            match how {
                "stop" => running.stop(),
                _ => running.cancel(),
            }
            let finished = running.join().unwrap();
            assert_eq!(finished.output, 10);
            finished.report
        });
        assert_eq!(report.end(), EndState::Completed, "{how}");
        assert_eq!((report.delivered(), report.cancelled()), (10, 0), "{how}");
    }
}

#[test]
fn a_stop_once_the_input_ran_out_by_itself_completes_the_run() {
    // Every item was admitted: the stop has nothing to stop, and everything finishes.
    let report = within(60, || {
        let gate = Arc::new(std::sync::Barrier::new(2));
        let held = Arc::clone(&gate);
        let running = Pipeline::source(0..100u64)
            .stage(Stage::map("hold", move |x: u64| {
                if x == 0 {
                    held.wait();
                }
                x
            }))
            .fold(0u64, |n, _| n + 1)
            .spawn()
            .unwrap();
        let handle = running.handle();
        while handle.snapshot().source().tally.items_out < 100 {
            std::thread::sleep(Duration::from_millis(1));
        }
        running.stop();
        gate.wait();
        running.join().unwrap()
    });
    assert_eq!(report.output, 100);
    assert_eq!(report.report.end(), EndState::Completed);
}

#[test]
fn a_cancel_ends_a_run_whose_source_iterator_waits_for_good() {
    // A channel's receiver as the source, its sender alive: the source thread waits in
    // `next`. A cancel used to wait for it too, for ever; now it lets the thread go.
    // Two shapes: one stage; and two equal stages fused at the start with a small
    // capacity, whose workers read a bounded iterator themselves (a receiver is not).
    for fused in [false, true] {
        a_cancel_ends_a_run_whose_source_waits(fused);
    }
}

fn a_cancel_ends_a_run_whose_source_waits(fused: bool) {
    let (tx, report) = within(60, move || {
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let builder = Pipeline::source(rx);
        let builder = if fused {
            builder
                .stage(Stage::map("a", |x: u64| x + 1).workers(2).capacity(64))
                .stage(Stage::map("b", |x: u64| x + 1).workers(2).capacity(64))
        } else {
            builder.map("inc", |x| x + 1)
        };
        let running = builder.fold(0u64, |n, _| n + 1).spawn().unwrap();
        for x in 0..100 {
            tx.send(x).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        running.cancel();
        let report = match running.join() {
            Ok(finished) => finished.report,
            Err(e) => e.report().expect("a report").clone(),
        };
        (tx, report)
    });
    assert_eq!(report.end(), EndState::Cancelled);
    assert!(report.is_balanced(), "{report}");
    // The thread left waiting reads on, and drops what it reads.
    for x in 0..10 {
        let _ = tx.send(x);
    }
}

#[test]
fn a_cancel_ends_outputs_whose_source_iterator_waits_for_good() {
    let taken = within(60, || {
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let mut outputs = Pipeline::source(rx)
            .map("inc", |x| x + 1)
            .default_batch(1)
            .outputs()
            .unwrap();
        tx.send(1).unwrap();
        let first = outputs.next();
        outputs.handle().cancel();
        let rest = outputs.by_ref().count();
        drop(tx);
        (first, rest)
    });
    assert_eq!(taken.0, Some(2));
    assert_eq!(taken.1, 0);
}

#[test]
fn finishing_outputs_right_after_taking_the_last_item_ends_completed() {
    // The run was still closing behind its last output when `finish` came; it used to
    // cancel and end `Cancelled` with nothing cancelled (most runs, without a pause).
    within(120, || {
        for n in [1u64, 2, 1000] {
            for round in 0..50 {
                let mut outputs = Pipeline::source(0..n)
                    .map("inc", |x| x + 1)
                    .outputs()
                    .unwrap();
                let taken = outputs.by_ref().take(n as usize).count();
                assert_eq!(taken as u64, n);
                let report = outputs.finish().unwrap();
                assert_eq!(
                    (report.end(), report.delivered(), report.cancelled()),
                    (EndState::Completed, n, 0),
                    "{n} items, round {round}"
                );
            }
        }
        // Flat-map children count: the last of them taken, nothing is left on the way.
        for round in 0..50 {
            let mut outputs = Pipeline::source(0..10u64)
                .flat_map("twice", |x| [x, x])
                .outputs()
                .unwrap();
            assert_eq!(outputs.by_ref().take(20).count(), 20);
            let report = outputs.finish().unwrap();
            assert_eq!(
                (report.end(), report.delivered()),
                (EndState::Completed, 20),
                "flat-map, round {round}"
            );
        }
        // Submitted items too: every submitter dropped is the end of the input (here
        // before the run starts, so the source sees it with the last item).
        let (submitter, pipeline) = Pipeline::submitter::<u64>(8);
        submitter.submit(1).unwrap();
        drop(submitter);
        let mut outputs = pipeline.map("inc", |x| x + 1).outputs().unwrap();
        assert_eq!(outputs.next(), Some(2));
        let report = outputs.finish().unwrap();
        assert_eq!((report.end(), report.delivered()), (EndState::Completed, 1));
    });
}

#[test]
fn finishing_outputs_with_items_still_to_come_cancels_them() {
    let report = within(60, || {
        let mut outputs = Pipeline::source(0..100_000u64)
            .map("inc", |x| x + 1)
            .outputs()
            .unwrap();
        // (Unordered: the first output is any item's.)
        assert!(outputs.next().is_some());
        outputs.finish().unwrap()
    });
    assert_eq!(report.end(), EndState::Cancelled);
    assert!(report.delivered() < 100_000);
    assert!(report.is_balanced());
}

#[test]
fn a_try_submit_refused_as_full_does_not_use_up_an_id() {
    let (submitter, pipeline) = Pipeline::submitter::<u64>(1);
    // Nothing runs yet, so the input queue of one fills at once.
    let first = submitter.try_submit(10).unwrap();
    let refused = submitter.try_submit(11);
    assert!(matches!(refused, Err(TrySubmitError::Full(11))));
    let running = pipeline.collect().spawn().unwrap();
    let second = within(30, {
        let submitter = submitter.clone();
        move || submitter.submit(12).unwrap()
    });
    assert_eq!((first.0, second.0), (0, 1), "ids count submissions");
    drop(submitter);
    let mut out = within(30, move || running.join().unwrap().output);
    out.sort_unstable();
    assert_eq!(out, vec![10, 12]);
}

#[test]
fn each_call_of_a_panicking_response_hook_is_isolated_and_counted() {
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    let report = within(60, move || {
        Pipeline::source(0..99u64)
            .stage(Stage::map("h", |x: u64| x).on_response(move |id, _| {
                c.fetch_add(1, Ordering::Relaxed);
                if id.0 % 25 == 0 {
                    panic!("{INJECTED}: hook on {id}");
                }
            }))
            .default_batch(99)
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    assert_eq!(
        calls.load(Ordering::Relaxed),
        99,
        "the hook ran for every id"
    );
    let panics = report.hook_panics();
    assert_eq!(panics.len(), 4, "one panic recorded per call: {panics:?}");
    for id in [0, 25, 50, 75] {
        assert!(
            panics.iter().any(|p| p.contains(&format!("item #{id}:"))),
            "{panics:?}"
        );
    }
}

#[test]
fn a_panicking_map_with_init_at_launch_fails_the_run_naming_the_stage() {
    let err = within(60, || {
        Pipeline::source(0..1000u64)
            .stage(
                Stage::map_with(
                    "stateful",
                    || -> u64 { panic!("{INJECTED}: no state") },
                    |s: &mut u64, x: u64| *s + x,
                )
                .workers(2),
            )
            .collect()
            .run()
            .unwrap_err()
    });
    assert!(
        matches!(err.kind(), RunErrorKind::InitPanicked { stage, .. } if stage == "stateful"),
        "{err}"
    );
    let report = err.report().expect("a report");
    assert!(report.is_balanced(), "{report}");
    assert_eq!(report.delivered(), 0);
}

#[test]
fn a_map_with_init_that_panics_when_rebuilt_fails_the_run_with_nothing_lost() {
    let inits = Arc::new(AtomicU64::new(0));
    let i = Arc::clone(&inits);
    let err = within(60, move || {
        Pipeline::source(0..1000u64)
            .stage(
                Stage::map_with(
                    "stateful",
                    move || {
                        if i.fetch_add(1, Ordering::Relaxed) > 0 {
                            panic!("{INJECTED}: cannot rebuild");
                        }
                        1u64
                    },
                    |s: &mut u64, x: u64| {
                        if x == 100 {
                            panic!("{INJECTED}: item");
                        }
                        *s + x
                    },
                )
                // One worker: its state is built once, and the rebuild after the panic fails.
                .workers(1),
            )
            .collect()
            .run()
            .unwrap_err()
    });
    assert!(
        matches!(err.kind(), RunErrorKind::InitPanicked { .. }),
        "{err}"
    );
    let report = err.report().expect("a report");
    assert!(report.is_balanced(), "{report}");
    assert_eq!(report.failed(), 1, "the item that panicked");
    // The run is cancelled: the rest of that batch, and what was in flight, is unfinished.
    assert!(!report.unfinished().is_empty());
    assert_eq!(report.unfinished().len() as u64, report.cancelled());
}

#[test]
fn a_map_async_closure_that_panics_before_its_future_fails_one_item() {
    let finished = within(60, || {
        Pipeline::source(0..1000u64)
            .stage(Stage::map_async("fetch", |x: u64| {
                let parsed: Option<u64> = (x % 10 != 3).then_some(x);
                let x = parsed.unwrap_or_else(|| panic!("{INJECTED}: before the future"));
                async move { x * 2 }
            }))
            .collect()
            .run()
            .unwrap()
    });
    let report = finished.report;
    assert_eq!((report.delivered(), report.failed()), (900, 100));
    assert!(report.errors().iter().all(|e| e.is_panic()));
    assert_eq!(finished.output.len(), 900);
}

#[test]
fn an_async_timeout_is_a_deadline_even_when_the_future_finishes_late() {
    // The future blocks its thread past the deadline, so the runtime's timer cannot fire
    // before the future is ready: the result came too late all the same.
    let report = within(60, || {
        Pipeline::source(0..5u64)
            .stage(
                Stage::map_async("late", |x: u64| async move {
                    std::thread::sleep(Duration::from_millis(60));
                    x
                })
                .timeout(Duration::from_millis(20)),
            )
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    assert_every_item_timed_out(&report, 5);
}

#[test]
fn a_current_thread_runtime_is_a_build_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = Pipeline::source(0..10u64)
        .stage(Stage::map_async("wait", |x: u64| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        }))
        .runtime(rt.handle().clone())
        .collect()
        .run()
        .unwrap_err();
    assert!(err.to_string().contains("current-thread runtime"), "{err}");
}

#[test]
fn a_multi_thread_runtime_runs_timers() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let out = within(60, move || {
        Pipeline::source(0..10u64)
            .stage(Stage::map_async("wait", |x: u64| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                x
            }))
            .runtime(handle)
            .collect()
            .run()
            .unwrap()
            .output
    });
    assert_eq!(out.len(), 10);
    drop(rt);
}

/// A gate a stuck closure waits on until the test lets it go (after the run has ended), so
/// the detached thread does end before the test binary does.
fn gate() -> (
    std::sync::mpsc::SyncSender<()>,
    Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
) {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    (tx, Arc::new(std::sync::Mutex::new(rx)))
}

#[test]
fn a_response_hook_stuck_for_good_is_named_and_the_failed_run_ends() {
    use millrace::WedgePolicy;
    let (release, held) = gate();
    let err = within(60, move || {
        Pipeline::source(0..100u64)
            .stage(Stage::map("hooked", |x: u64| x).on_response(move |id, _| {
                if id.0 == 10 {
                    let _ = held.lock().unwrap().recv();
                }
            }))
            .stage(Stage::map("after", |x: u64| x))
            .wedge_timeout(Duration::from_millis(200), WedgePolicy::Fail)
            .autoscale_interval(Duration::from_millis(20))
            .max_in_flight(8)
            .default_batch(1)
            .for_each(|_| {})
            .run()
            .unwrap_err()
    });
    let _ = release.send(());
    let RunErrorKind::Wedged(wedge) = err.kind() else {
        panic!("{err}");
    };
    let diagnosis = wedge.to_string();
    assert!(
        diagnosis.contains("`hooked`: its response hook has been running for"),
        "{diagnosis}"
    );
    assert!(
        diagnosis.contains("millrace-hooked-responses"),
        "{diagnosis}"
    );
}

#[test]
fn a_sync_stage_stuck_for_good_fails_the_run_and_is_detached() {
    use millrace::WedgePolicy;
    let (release, held) = gate();
    let err = within(60, move || {
        Pipeline::source(0..1_000u64)
            .stage(
                Stage::map("stuck", move |x: u64| {
                    if x == 3 {
                        let _ = held.lock().unwrap().recv();
                    }
                    x
                })
                .workers(1),
            )
            .wedge_timeout(Duration::from_millis(200), WedgePolicy::Fail)
            .autoscale_interval(Duration::from_millis(20))
            .default_batch(1)
            .fold(0u64, |n, _| n + 1)
            .run()
            .unwrap_err()
    });
    let _ = release.send(());
    let RunErrorKind::Wedged(wedge) = err.kind() else {
        panic!("{err}");
    };
    let diagnosis = wedge.to_string();
    assert!(
        diagnosis.contains("`stuck`: worker 0 stuck in the stage's code"),
        "{diagnosis}"
    );
    assert!(diagnosis.contains("were detached: "), "{diagnosis}");
    assert!(diagnosis.contains("millrace-stuck-0"), "{diagnosis}");
    assert!(
        wedge.detached.iter().any(|name| name == "millrace-stuck-0"),
        "{wedge:?}"
    );
    assert!(err.report().is_some());
}

/// The closure's call counts toward a try's time: code before the `async` block that holds
/// the runtime's thread past the deadline fails the try, as a blocking poll does.
#[test]
fn an_async_timeout_counts_the_closure_that_makes_the_future() {
    let report = within(60, || {
        Pipeline::source(0..3u64)
            .stage(
                Stage::map_async("slow-call", |x: u64| {
                    std::thread::sleep(Duration::from_millis(60));
                    async move { x }
                })
                .timeout(Duration::from_millis(20)),
            )
            .for_each(|_| {})
            .run()
            .unwrap()
            .report
    });
    assert_every_item_timed_out(&report, 3);
}

/// The run's `items` items all failed, each by its timeout.
fn assert_every_item_timed_out(report: &millrace::Report, items: u64) {
    assert_eq!(report.failed(), items, "{report}");
    assert!(report
        .errors()
        .iter()
        .all(|e| matches!(e.kind(), ItemErrorKind::TimedOut(_))));
}
