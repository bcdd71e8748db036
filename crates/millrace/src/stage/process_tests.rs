//! Tests of one batch's processing in one stage: maps onto partial batches and in place,
//! panics, states that cannot be rebuilt, filters.

use super::*;
use crate::stage::logic::{FilterLogic, MapLogic};

/// A stage `a` of a pipeline of one stage, skipping failed items.
pub(crate) fn ctx<T>() -> StageCtx<T> {
    let metrics = |name: &str| Arc::new(StageMetrics::new(Arc::from(name), 1, 1));
    let stage = metrics("a");
    StageCtx {
        name: Arc::clone(&stage.name),
        metrics: Arc::clone(&stage),
        policy: ErrorPolicy::Skip,
        dead_letter: None,
        events: None,
        expanded: None,
        control: Arc::new(Control::new(
            metrics("source"),
            vec![stage],
            metrics("sink"),
            true,
        )),
    }
}

/// Items `start..start + len` with their ids, born `born`.
fn batch(start: u64, len: usize, born: Instant) -> Batch<u64> {
    Batch {
        seq: start,
        born,
        ids: Ids::Range { start, len },
        items: (start..start + len as u64).collect(),
    }
}

fn ids(batch: &Batch<u64>) -> Vec<u64> {
    batch.ids.iter().map(|id| id.0).collect()
}

/// Runs a fresh stage `a` of logic `make` over `input`, onto `partial`: the output batch,
/// the input's emptied vector, and the stage's counters.
fn onto<L: Logic<u64, u64>>(
    make: impl Fn() -> L,
    partial: Batch<u64>,
    input: Batch<u64>,
) -> (Batch<u64>, Vec<u64>, StageCtx<u64>) {
    let ctx = ctx();
    let mut logic = Some(make());
    let (out, spent) = ctx.process(input, partial, &mut logic, &make, ctx.metrics.slot(0));
    (out, spent, ctx)
}

#[test]
fn a_map_onto_a_partial_batch_extends_its_items_and_ids_in_order() {
    let early = Instant::now();
    let tens = || MapLogic {
        f: Arc::new(|_: &mut (), x: u64| x * 10),
        state: (),
    };
    let (out, spent, ctx) = onto(tens, batch(0, 3, early), batch(3, 4, Instant::now()));
    let counters = ctx.metrics.slot(0);
    assert!(spent.is_empty());
    assert_eq!(
        out.items,
        [0, 1, 2, 30, 40, 50, 60],
        "the partial's items stay first"
    );
    assert_eq!(ids(&out), [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(out.ids, Ids::Range { start: 0, len: 7 }, "still a range");
    assert_eq!(
        (out.seq, out.born),
        (0, early),
        "the partial's number, the oldest birth"
    );
    assert_eq!(
        counters.items_out.load(Ordering::Relaxed),
        4,
        "only this batch's outputs count"
    );
}

#[test]
fn a_panic_onto_a_partial_batch_fails_that_item_and_keeps_the_partial() {
    let panics_at_4 = || MapLogic {
        f: Arc::new(|_: &mut (), x: u64| {
            assert!(x != 4, "item 4 panics");
            x + 100
        }),
        state: (),
    };
    let now = Instant::now();
    let (out, _, ctx) = onto(panics_at_4, batch(0, 2, now), batch(2, 5, now));
    let counters = ctx.metrics.slot(0);
    assert_eq!(out.items, [0, 1, 102, 103, 105, 106]);
    assert_eq!(ids(&out), [0, 1, 2, 3, 5, 6], "ids line up with the items");
    assert_eq!(counters.failed.load(Ordering::Relaxed), 1);
    assert_eq!(counters.items_out.load(Ordering::Relaxed), 4);
}

#[test]
fn a_filter_onto_a_partial_batch_keeps_the_ids_of_what_passed() {
    let even = || FilterLogic {
        f: Arc::new(|x: &u64| x % 2 == 0),
    };
    let now = Instant::now();
    let (out, _, ctx) = onto(even, batch(0, 2, now), batch(2, 5, now));
    let counters = ctx.metrics.slot(0);
    assert_eq!(out.items, [0, 1, 2, 4, 6]);
    assert_eq!(ids(&out), [0, 1, 2, 4, 6]);
    assert_eq!(counters.filtered.load(Ordering::Relaxed), 2, "3 and 5");
}

/// Pairs `(x, x)` for `x` in `0..len`: 16-byte items, which a map whose output has their
/// layout maps in place.
fn pairs(len: usize) -> Batch<(u64, u64)> {
    Batch {
        seq: 0,
        born: Instant::now(),
        ids: Ids::Range { start: 0, len },
        items: (0..len as u64).map(|x| (x, x)).collect(),
    }
}

fn empty_out<U>(spare: Vec<U>) -> Batch<U> {
    Batch {
        seq: 0,
        born: Instant::now(),
        ids: Ids::default(),
        items: spare,
    }
}

#[test]
fn a_map_of_sixteen_byte_items_writes_in_the_input_vector_and_hands_back_the_spare() {
    let ctx = ctx::<(u64, u64)>();
    let make = || MapLogic {
        f: Arc::new(|_: &mut (), (x, y): (u64, u64)| (x, 3 * y)),
        state: (),
    };
    let input = pairs(8);
    let at = input.items.as_ptr() as usize;
    let spare: Vec<(u64, u64)> = Vec::with_capacity(5);
    let spare_at = spare.as_ptr() as usize;
    let mut logic = Some(make());
    let (out, spent) = ctx.process(
        input,
        empty_out(spare),
        &mut logic,
        &make,
        ctx.metrics.slot(0),
    );
    assert_eq!(out.items, (0..8).map(|x| (x, 3 * x)).collect::<Vec<_>>());
    assert_eq!(
        out.items.as_ptr() as usize,
        at,
        "the outputs are in the input's vector"
    );
    assert_eq!(
        (spent.as_ptr() as usize, spent.capacity()),
        (spare_at, 5),
        "the unused output vector goes back for the stage before to refill"
    );
    assert_eq!(out.ids, Ids::Range { start: 0, len: 8 });
    assert_eq!(ctx.metrics.slot(0).items_out.load(Ordering::Relaxed), 8);
}

#[test]
fn a_panic_in_place_fails_that_item_and_the_rest_follow_in_order() {
    let ctx = ctx::<(u64, u64)>();
    let make = || MapLogic {
        f: Arc::new(|_: &mut (), (x, y): (u64, u64)| {
            assert!(x % 3 != 1, "items 1 and 4 panic");
            (y, x + 100)
        }),
        state: (),
    };
    let mut logic = Some(make());
    let (out, _) = ctx.process(
        pairs(6),
        empty_out(Vec::new()),
        &mut logic,
        &make,
        ctx.metrics.slot(0),
    );
    assert_eq!(out.items, [(0, 100), (2, 102), (3, 103), (5, 105)]);
    let ids: Vec<u64> = out.ids.iter().map(|id| id.0).collect();
    assert_eq!(ids, [0, 2, 3, 5], "ids line up with the items");
    let counters = ctx.metrics.slot(0);
    assert_eq!(counters.failed.load(Ordering::Relaxed), 2);
    assert_eq!(counters.items_out.load(Ordering::Relaxed), 4);
}

#[test]
fn a_state_that_cannot_be_rebuilt_in_place_leaves_the_rest_unfinished() {
    use std::sync::atomic::AtomicUsize;
    let ctx = ctx::<(u64, u64)>();
    let builds = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&builds);
    let make = move || {
        // The first state builds; rebuilding it after the panic panics.
        assert!(
            counted.fetch_add(1, Ordering::Relaxed) == 0,
            "no second state"
        );
        MapLogic {
            f: Arc::new(|_: &mut (), (x, y): (u64, u64)| {
                assert!(x != 2, "item 2 panics");
                (x, y + 1)
            }),
            state: (),
        }
    };
    let mut logic = ctx.build(&make);
    let (out, _) = ctx.process(
        pairs(5),
        empty_out(Vec::new()),
        &mut logic,
        &make,
        ctx.metrics.slot(0),
    );
    assert_eq!(out.items, [(0, 1), (1, 2)]);
    let ids: Vec<u64> = out.ids.iter().map(|id| id.0).collect();
    assert_eq!(ids, [0, 1]);
    let counters = ctx.metrics.slot(0);
    assert_eq!(counters.failed.load(Ordering::Relaxed), 1, "item 2");
    assert_eq!(
        counters.cancelled.load(Ordering::Relaxed),
        2,
        "items 3 and 4"
    );
    assert!(logic.is_none());
}
