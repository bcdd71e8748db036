//! Property tests: random pipelines against a sequential reference.
//!
//! A random pipeline has 1–6 stages of 1–8 workers each, input capacity 1–64 or the default,
//! batch 1–256 or adaptive (unset),
//! ordered or not, and each stage one of: a map, a filter, a flat-map, a `try_map` or
//! `try_flat_map` that returns errors, a map or flat-map that panics, a `try_map` that panics,
//! or a flaky `try_map` that fails the first k tries of each item (the maps and fallible maps
//! also as async stages, `map_async` / `try_map_async` of concurrency 1–64, whose futures
//! yield a few times so that later items end first); its error policy skips,
//! retries, or stops. The stages run on their own workers, fused (`fuse()` with equal worker
//! counts), on their own workers started lazily (a CPU budget of 1: one worker first, more
//! while they are all busy), or autoscaled (fused by default, resized while items flow). The sink is
//! `outputs()` read on the test thread, a `for_each`, `respond()` (outcomes back to the
//! origin), `reply_to` the first stage (outcomes, with the values, folded by that stage), or a
//! `try_for_each` that fails items — returns an error or panics on bad values,
//! or fails the first k tries of each item — under the pipeline's default error policy
//! (skipped, retried on the borrowed item, or stopping the run). Whether an item fails is a
//! function of its value (and, for the flaky stage or sink, of its try), so a sequential
//! reference that applies the same stage and sink functions in order predicts every output,
//! every failure and every count; a `try_for_each` sink is one more fallible position after
//! the last stage, its failures reported as stage `sink`.
//!
//! Each run is checked against the reference applied to the items the run admitted (all of
//! them, unless the run was stopped by the test or by a stopping error policy — a stage's, or
//! the default one of a `try_for_each` sink — which admits a prefix): the same multiset of
//! outputs the sink accepted (the same sequence when the last stage is ordered), the same
//! per-stage and sink counts (retries included), the same errors, dead letters and
//! response-hook statuses (a sink failure is answered upstream as failed in `sink`), the run
//! ending on a failure under a stopping policy if there was one, nothing cancelled, and — for
//! serving pipelines — every item's outcomes back at the origin exactly as the reference says
//! (exactly one per id without flat-maps), and for replying ones every outcome of the items
//! the first stage sent on, with the value the sink would have seen. Response hooks go with
//! every sink, `outputs()` included, and the in-flight limit ranges from 1, below the batch
//! size too: no combination is left out because it once hung. Every run has a timeout, so a
//! hang fails the test.

mod common;

#[path = "properties/check.rs"]
mod check;
#[path = "properties/model.rs"]
mod model;
#[path = "properties/reference.rs"]
mod reference;
#[path = "properties/run.rs"]
mod run;
#[path = "properties/strategies.rs"]
mod strategies;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use check::{check, run_and_check_cancel};
use common::within;
use run::run_case;
use strategies::{cancel_case, case};

/// How long one random pipeline may take before the test calls it a hang.
const CASE_TIMEOUT_S: u64 = 60;

/// Failing cases are saved beside the crate's sources, in `proptest-regressions/`;
/// shrinking is bounded in time (see [`common::hang_safe_config`]).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/properties.txt",
        ))),
        ..common::hang_safe_config(cases)
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Random pipelines agree with the sequential reference in outputs, counts, errors,
    /// dead letters, hook statuses and outcomes, and never hang.
    #[test]
    fn random_pipelines_match_the_sequential_reference(case in case()) {
        let c = case.clone();
        let observed = within(CASE_TIMEOUT_S, move || run_case(&c));
        check(&case, &observed);
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// A cancel at any point answers every admitted item exactly once: with its reference
    /// outcome, or as cancelled and listed as unfinished; the report still balances. With a
    /// `try_for_each` sink (which may be retrying when the cancel lands), every accepted item
    /// is its reference output and every other admitted one is unfinished or never meant to
    /// be accepted. Fused and autoscaled layouts too.
    #[test]
    fn cancel_at_any_point_accounts_for_every_admitted_item((case, cancel_after) in cancel_case()) {
        let c = case.clone();
        within(CASE_TIMEOUT_S, move || run_and_check_cancel(&c, cancel_after));
    }
}
