//! Every implementation computes the workload the document defines: at a tiny N each one's
//! checksum equals the sequential loop's, and the sequential loops reproduce the reference
//! checksums of `shared/bench-workloads.md` at the full N where that is cheap.
//!
//! No test here asserts anything about time. Each run sits behind a timeout guard, so a
//! pipeline that hangs fails its test instead of stalling the suite.

mod common;

use common::guarded;
use millrace_bench::workloads::w4_ordered;
use millrace_bench::{Error, Implementation, Workload};

fn run(workload: Workload, implementation: Implementation, n: u64) -> u64 {
    let what = format!("{workload} {implementation:?} at n = {n}");
    let result = guarded(&what, move || workload.run(&implementation, n));
    result.unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

/// Every implementation (every millrace configuration of the sweep included) against the
/// sequential loop at `n` items.
fn all_agree(workload: Workload, n: u64) {
    let expected = run(workload, Implementation::Sequential, n);
    let implementations = workload.implementations();
    assert!(
        implementations.len() >= 4,
        "{workload} lacks implementations"
    );
    for implementation in implementations {
        let label = format!("{implementation:?}");
        assert_eq!(
            run(workload, implementation, n),
            expected,
            "{workload}: {label} disagrees with the sequential loop at n = {n}"
        );
    }
}

#[test]
fn w1_seed_every_implementation_matches_the_sequential_loop() {
    all_agree(Workload::W1Seed, 10_007);
}

#[test]
fn w2_imbalanced_every_implementation_matches_the_sequential_loop() {
    all_agree(Workload::W2Imbalanced, 1_001);
}

#[test]
fn w4_ordered_every_implementation_matches_the_sequential_loop() {
    all_agree(Workload::W4Ordered, 1_001);
}

#[test]
fn w5_large_every_implementation_matches_the_sequential_loop() {
    all_agree(Workload::W5Large, 7);
}

#[test]
fn w6_hops_every_implementation_matches_the_sequential_loop() {
    all_agree(Workload::W6Hops, 10_007);
}

#[test]
fn w3_io_is_reported_pending_instead_of_run() {
    assert!(Workload::W3Io.implementations().is_empty());
    match Workload::W3Io.run(&Implementation::Sequential, 10) {
        Err(Error::Pending { workload: "W3", .. }) => {}
        other => panic!("expected W3 to be pending, got {other:?}"),
    }
}

fn reproduces_reference(workload: Workload, n: u64) {
    let reference = workload
        .reference_checksum(n)
        .unwrap_or_else(|| panic!("no reference checksum for {workload} at {n}"));
    assert_eq!(run(workload, Implementation::Sequential, n), reference);
}

#[test]
fn w1_sequential_reproduces_the_reference_checksums_at_10m_and_20m() {
    reproduces_reference(Workload::W1Seed, 10_000_000);
    reproduces_reference(Workload::W1Seed, 20_000_000);
}

#[test]
fn w2_sequential_reproduces_the_reference_checksum_at_1m() {
    reproduces_reference(Workload::W2Imbalanced, 1_000_000);
}

#[test]
fn w4_sequential_reproduces_the_reference_checksum_at_1m() {
    reproduces_reference(Workload::W4Ordered, 1_000_000);
}

#[test]
fn w6_sequential_reproduces_the_reference_checksum_at_5m() {
    reproduces_reference(Workload::W6Hops, 5_000_000);
}

#[test]
fn the_ordered_checksum_changes_when_two_items_swap() {
    let in_order = [1u64, 2, 3].into_iter().fold(0, w4_ordered::hash);
    let swapped = [2u64, 1, 3].into_iter().fold(0, w4_ordered::hash);
    assert_ne!(in_order, swapped);
}
