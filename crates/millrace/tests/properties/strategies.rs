//! Strategies: proptest generators for random stage ops, error policies, stage specs and
//! whole cases, plus the restricted cases of the cancel property.

use proptest::prelude::*;

use crate::model::{Case, Layout, Op, Policy, SinkFault, SinkMode, SourceMode, StageSpec};

/// A modulus in `lo..hi` and a residue below it: items go bad when `value % m == r`.
fn mr(lo: u64, hi: u64) -> impl Strategy<Value = (u64, u64)> {
    (lo..hi).prop_flat_map(|m| (Just(m), 0..m))
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    // Items go bad (filtered, failed) when `value % m == r`: filters drop 1 in 2–6,
    // failures hit 1 in 3–11, so several stages in a row still leave outputs.
    prop_oneof![
        3 => (1..4u64, 0..9u64).prop_map(|(mul, add)| Op::Map { mul, add }),
        2 => mr(2, 7).prop_map(|(m, r)| Op::Filter { m, r }),
        2 => (0..4u64).prop_map(|fan| Op::FlatMap { fan }),
        2 => mr(3, 12).prop_map(|(m, r)| Op::TryMap { m, r }),
        1 => (mr(3, 12), 0..4u64).prop_map(|((m, r), fan)| Op::TryFlat { m, r, fan }),
        2 => mr(3, 12).prop_map(|(m, r)| Op::PanicMap { m, r }),
        1 => (mr(3, 12), 1..4u64).prop_map(|((m, r), fan)| Op::PanicFlat { m, r, fan }),
        1 => mr(3, 12).prop_map(|(m, r)| Op::TryPanic { m, r }),
        1 => (0..4u32).prop_map(|k| Op::Flaky { k }),
    ]
}

/// How a `try_for_each` sink fails items: errors or panics on 1 in 3–11, or fails the first
/// 0–3 tries of every item.
pub(crate) fn sink_fault() -> impl Strategy<Value = SinkFault> {
    prop_oneof![
        2 => mr(3, 12).prop_map(|(m, r)| SinkFault::Error { m, r }),
        1 => mr(3, 12).prop_map(|(m, r)| SinkFault::Panic { m, r }),
        1 => (0..4u32).prop_map(|k| SinkFault::Flaky { k }),
    ]
}

pub(crate) fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        5 => Just(Policy::Skip),
        3 => (1..5u32).prop_map(Policy::Retry),
        1 => Just(Policy::Stop),
        1 => (1..4u32).prop_map(Policy::RetryThenStop),
    ]
}

pub(crate) fn stage_spec(hooks: bool) -> impl Strategy<Value = StageSpec> {
    (
        op(),
        1..=8usize,
        prop::option::weighted(0.8, 1..=64usize),
        // Unset (adaptive) as often as small or large.
        prop_oneof![
            Just(None),
            (1..=8usize).prop_map(Some),
            (1..=256usize).prop_map(Some)
        ],
        prop::bool::weighted(0.4),
        prop::option::weighted(0.5, policy()),
        prop::bool::weighted(if hooks { 0.3 } else { 0.0 }),
        prop::bool::weighted(0.3),
        // An async stage for a quarter of the ops that have an async form: concurrency
        // from 1 (below any batch: batches wait for room) to 64.
        prop::option::weighted(0.25, 1..=64usize),
    )
        .prop_map(
            |(op, workers, capacity, batch, ordered, policy, hook, dead_letter, asynchronous)| {
                let asynchronous = asynchronous.filter(|_| op.has_async_form());
                StageSpec {
                    op,
                    workers,
                    capacity,
                    batch,
                    ordered,
                    policy,
                    hook,
                    dead_letter,
                    asynchronous,
                }
            },
        )
}

pub(crate) fn case() -> impl Strategy<Value = Case> {
    let sink = prop_oneof![
        2 => Just(SinkMode::Outputs),
        2 => Just(SinkMode::ForEach),
        2 => Just(SinkMode::Respond),
        2 => Just(SinkMode::ReplyTo),
        3 => sink_fault().prop_map(SinkMode::TryForEach),
    ];
    (sink, prop::bool::weighted(0.3)).prop_flat_map(|(sink, submitted)| {
        // Every sink runs with hooks, `outputs()` included (issue 11: it used to hang).
        let hooks = true;
        (
            prop::collection::vec(0..1000u64, 0..200),
            prop::collection::vec(stage_spec(hooks), 1..=6),
            // The default policy is also a `try_for_each` sink's: more often not Skip there.
            if matches!(sink, SinkMode::TryForEach(_)) {
                prop_oneof![
                    1 => Just(Policy::Skip),
                    2 => (1..5u32).prop_map(Policy::Retry),
                    1 => Just(Policy::Stop),
                    1 => (1..4u32).prop_map(Policy::RetryThenStop),
                ]
                .boxed()
            } else {
                prop_oneof![4 => Just(Policy::Skip), 1 => policy()].boxed()
            },
            if submitted {
                (1..32usize).prop_map(SourceMode::Submitter).boxed()
            } else {
                Just(SourceMode::Iter).boxed()
            },
            prop::option::weighted(0.3, 0..60usize),
            prop::option::weighted(0.3, 1..=8usize),
            // Any in-flight limit from 1 on, below the batch size too (issue 11).
            prop::option::weighted(0.3, 1..=300usize),
            prop::option::weighted(0.3, 1..=64usize),
            prop::option::weighted(0.3, 1..=256usize),
            prop_oneof![
                3 => Just(Layout::Separate),
                1 => Just(Layout::Fused),
                1 => (1..=4usize).prop_map(Layout::Auto),
                1 => Just(Layout::Lazy),
                1 => Just(Layout::Adaptive),
            ],
        )
            .prop_map(
                move |(
                    input,
                    stages,
                    default_policy,
                    source,
                    stop_after,
                    window,
                    extra,
                    cap,
                    batch,
                    layout,
                )| {
                    let mut stages = stages;
                    if layout.equal_workers() {
                        let workers = stages[0].workers;
                        for spec in &mut stages {
                            spec.workers = workers;
                        }
                    }
                    let max_in_flight = extra;
                    Case {
                        input,
                        stages,
                        default_policy,
                        source,
                        sink,
                        stop_after,
                        reorder_window: window,
                        max_in_flight,
                        sink_capacity: cap,
                        sink_batch: batch,
                        layout,
                    }
                },
            )
    })
}

/// A case for the cancel property ([`Case::restrict_for_cancel`]) and a cancel after
/// `cancel_after` results.
pub(crate) fn cancel_case() -> impl Strategy<Value = (Case, usize)> {
    (case(), 0..40usize).prop_map(|(mut case, cancel_after)| {
        case.restrict_for_cancel();
        (case, cancel_after)
    })
}
