//! Build errors: a pipeline that cannot run (zero workers, capacity or batch, an empty or a
//! repeated stage name, a zero reorder window or in-flight limit) is a clear error from
//! `run`, `spawn`, `outputs` or `respond`, before any thread starts: never a hang or a panic.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use millrace::{BuildError, Pipeline, PipelineBuilder, RunErrorKind, Stage};

use common::within;

/// Runs a pipeline of `build(source)` to the end and returns its build error; checks that
/// the source was never read.
fn build_error(build: fn(PipelineBuilder<u64>) -> PipelineBuilder<u64>) -> BuildError {
    within(10, move || {
        let read = Arc::new(AtomicU64::new(0));
        let r = Arc::clone(&read);
        let source = (0..100u64).inspect(move |_| {
            r.fetch_add(1, Ordering::SeqCst);
        });
        let err = build(Pipeline::source(source)).collect().run().unwrap_err();
        assert!(err.report().is_none(), "nothing ran, so there is no report");
        assert_eq!(read.load(Ordering::SeqCst), 0, "no thread read the source");
        match err.kind() {
            RunErrorKind::Build(e) => {
                assert_eq!(err.to_string(), format!("cannot build pipeline: {e}"));
                e.clone()
            }
            other => panic!("expected a build error, got {other:?}"),
        }
    })
}

#[test]
fn zero_workers_is_a_build_error_naming_the_stage() {
    let e = build_error(|p| p.stage(Stage::map("double", |x: u64| x * 2).workers(0)));
    assert_eq!(e.stage(), Some("double"));
    assert_eq!(e.to_string(), "stage `double`: workers must be at least 1");
}

#[test]
fn zero_capacity_is_a_build_error_naming_the_stage() {
    let e = build_error(|p| {
        p.map("ok", |x| x)
            .stage(Stage::map("tight", |x: u64| x).capacity(0))
    });
    assert_eq!(e.stage(), Some("tight"));
    assert_eq!(e.to_string(), "stage `tight`: capacity must be at least 1");
}

#[test]
fn zero_batch_is_a_build_error_naming_the_stage() {
    let e = build_error(|p| p.stage(Stage::filter("f", |_: &u64| true).batch(0)));
    assert_eq!(e.to_string(), "stage `f`: batch must be at least 1");
}

#[test]
fn zero_pipeline_defaults_are_build_errors() {
    let e = build_error(|p| p.default_workers(0).map("a", |x| x));
    assert_eq!(e.stage(), None, "no stage is at fault");
    assert_eq!(
        e.to_string(),
        "the pipeline's default workers must be at least 1"
    );
    let e = build_error(|p| p.default_capacity(0).map("a", |x| x));
    assert!(e.to_string().contains("capacity must be at least 1"), "{e}");
    let e = build_error(|p| p.default_batch(0).map("a", |x| x));
    assert!(e.to_string().contains("batch must be at least 1"), "{e}");
    let e = build_error(|p| p.reorder_window(0).map("a", |x| x));
    assert!(
        e.to_string().contains("reorder window must be at least 1"),
        "{e}"
    );
    let e = build_error(|p| p.max_in_flight(0).map("a", |x| x));
    assert!(
        e.to_string().contains("max in flight must be at least 1"),
        "{e}"
    );
}

#[test]
fn auto_workers_with_a_min_above_its_max_is_a_build_error() {
    let e = build_error(|p| p.stage(Stage::map("a", |x: u64| x).auto_workers(5, 2)));
    assert_eq!(e.stage(), Some("a"));
    assert_eq!(
        e.to_string(),
        "stage `a`: auto_workers(5, 2) asks for at least 5 workers and at most 2"
    );
    // A max of 0 is the CPU budget, whatever the min.
    let finished = within(30, || {
        Pipeline::source(0..100u64)
            .stage(Stage::map("a", |x: u64| x).auto_workers(5, 0))
            .fold(0u64, |n, _| n + 1)
            .run()
            .unwrap()
    });
    assert_eq!(finished.output, 100);
}

#[test]
fn a_stage_named_like_an_end_of_the_pipeline_is_a_build_error() {
    for name in ["source", "sink"] {
        let e = within(10, move || {
            Pipeline::source(0..10u64)
                .map(name, |x| x)
                .collect()
                .run()
                .unwrap_err()
        });
        assert_eq!(
            e.to_string(),
            format!(
                "cannot build pipeline: a stage cannot be named `{name}`: reports and errors \
                 call the pipeline's {name} so"
            )
        );
    }
}

#[cfg(feature = "async")]
#[test]
fn workers_on_an_async_stage_is_a_build_error() {
    let e =
        build_error(|p| p.stage(Stage::map_async("fetch", |x: u64| async move { x }).workers(3)));
    assert_eq!(e.stage(), Some("fetch"));
    assert!(
        e.to_string()
            .starts_with("stage `fetch`: workers applies to sync stages only"),
        "{e}"
    );
    let e = build_error(|p| {
        p.stage(Stage::map_async("fetch", |x: u64| async move { x }).auto_workers(1, 4))
    });
    assert!(
        e.to_string()
            .starts_with("stage `fetch`: auto_workers applies to sync stages only"),
        "{e}"
    );
}

#[test]
fn counts_past_what_millrace_takes_are_build_errors_not_panics() {
    // `workers(usize::MAX)` panicked with "capacity overflow", and `cpu_budget(100_000)`
    // started an autoscaled stage at 100,000 threads and aborted the process (a new user's
    // trial).
    let e = build_error(|p| p.stage(Stage::map("wide", |x: u64| x).workers(usize::MAX)));
    assert_eq!(e.stage(), Some("wide"));
    assert_eq!(
        e.to_string(),
        format!(
            "stage `wide`: workers of {} is more than millrace takes (at most 4,096)",
            usize::MAX
        )
    );
    let e = build_error(|p| p.stage(Stage::map("wide", |x: u64| x).auto_workers(5_000, 0)));
    assert!(
        e.to_string()
            .starts_with("stage `wide`: auto_workers' min of 5000"),
        "{e}"
    );
    let e = build_error(|p| p.cpu_budget(100_000).map("a", |x| x));
    assert_eq!(e.stage(), None, "no stage is at fault");
    assert_eq!(
        e.to_string(),
        "the pipeline's cpu budget of 100000 is more than millrace takes (at most 4,096)"
    );
    let e = build_error(|p| p.default_workers(usize::MAX).map("a", |x| x));
    assert!(
        e.to_string()
            .starts_with("the pipeline's default workers of"),
        "{e}"
    );
}

#[test]
fn an_autoscaled_stage_may_ask_for_any_max_the_budget_caps_it() {
    // `auto_workers(1, usize::MAX)` sized the stage's metrics by its `max` and panicked.
    within(30, || {
        let finished = Pipeline::source(0..1_000u64)
            .stage(Stage::map("a", |x: u64| x + 1).auto_workers(1, usize::MAX))
            .stage(Stage::map("b", |x: u64| x * 2).auto_workers(2, 1 << 40))
            .fold(0u64, |sum, x| sum + x)
            .run()
            .expect("the budget bounds the stages");
        assert_eq!(
            finished.output,
            (0..1_000u64).map(|x| (x + 1) * 2).sum::<u64>()
        );
    });
}

#[cfg(feature = "async")]
#[test]
fn an_async_stage_past_the_largest_concurrency_or_with_a_zero_timeout_is_a_build_error() {
    let e = build_error(|p| {
        p.stage(Stage::map_async("fetch", |x: u64| async move { x }).concurrency(usize::MAX))
    });
    assert!(
        e.to_string().starts_with("stage `fetch`: concurrency of"),
        "{e}"
    );
    assert!(e.to_string().ends_with("(at most 1,048,576)"), "{e}");
    // A zero timeout failed every item, even one whose future was ready at once.
    let e = build_error(|p| {
        p.stage(
            Stage::map_async("fetch", |x: u64| async move { x }).timeout(std::time::Duration::ZERO),
        )
    });
    assert_eq!(e.stage(), Some("fetch"));
    assert_eq!(
        e.to_string(),
        "stage `fetch`: the timeout must be longer than 0"
    );
}

#[test]
fn an_empty_stage_name_is_a_build_error_giving_its_position() {
    let e = build_error(|p| p.map("first", |x| x).map("", |x| x));
    assert_eq!(e.stage(), None);
    assert_eq!(e.to_string(), "stage 2 (counting from 1) has an empty name");
}

#[test]
fn duplicate_stage_names_are_a_build_error() {
    let e = build_error(|p| p.map("twin", |x| x).map("other", |x| x).map("twin", |x| x));
    assert_eq!(e.stage(), Some("twin"));
    assert!(e.to_string().contains("two stages are named `twin`"), "{e}");
}

#[test]
fn the_first_problem_is_the_one_reported() {
    let e = build_error(|p| {
        p.stage(Stage::map("a", |x: u64| x).workers(0))
            .map("", |x| x)
            .map("a", |x| x)
    });
    assert_eq!(e.stage(), Some("a"));
    assert!(e.to_string().contains("workers"), "{e}");
}

#[test]
fn spawn_outputs_and_respond_return_the_build_error_too() {
    within(10, || {
        let bad = || Pipeline::source(0..10u64).stage(Stage::map("w", |x: u64| x).workers(0));
        let spawned = bad().for_each(|_| {}).spawn().unwrap_err();
        assert_eq!(spawned.stage(), Some("w"));
        let outputs = bad().outputs().unwrap_err();
        assert_eq!(outputs, spawned);
        let responded = bad().respond().unwrap_err();
        assert_eq!(responded, spawned);
    });
}

#[test]
fn a_submitter_whose_pipeline_failed_to_build_refuses_items() {
    within(10, || {
        let (submitter, builder) = Pipeline::submitter::<u64>(1);
        let err = builder
            .stage(Stage::map("w", |x: u64| x).batch(0))
            .collect()
            .run()
            .unwrap_err();
        assert!(matches!(err.kind(), RunErrorKind::Build(_)));
        // Neither blocks: there is no pipeline to take the item.
        assert_eq!(submitter.submit(1).unwrap_err().into_inner(), 1);
        assert_eq!(submitter.submit(2).unwrap_err().into_inner(), 2);
    });
}
