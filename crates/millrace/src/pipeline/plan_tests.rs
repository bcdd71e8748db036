//! Tests of the plan: which stages fuse, start lazily or autoscaled, and with what batch
//! sizes, capacities and worker counts, from the settings as given.

use super::*;

fn stage(workers: Option<usize>, auto: Option<(usize, usize)>) -> StagePlan {
    StagePlan {
        name: Arc::from("s"),
        workers,
        capacity: None,
        batch: None,
        ordered: false,
        policy: None,
        asynchronous: false,
        concurrency: None,
        timeout: None,
        auto,
        per_worker_state: false,
    }
}

fn settings(budget: usize) -> Settings {
    Settings {
        cpu_budget: Some(budget),
        ..Settings::default()
    }
}

fn layout(r: &Resolution) -> (Vec<Range<usize>>, Vec<usize>) {
    let workers = r.resolved.iter().map(|r| r.workers).collect();
    (r.segments.clone(), workers)
}

#[test]
fn fixed_stages_fuse_only_when_asked_and_only_with_equal_counts() {
    let plan = [
        stage(Some(2), None),
        stage(Some(2), None),
        stage(Some(3), None),
    ];
    let apart = resolve(
        &Settings {
            adaptive_fusion: false,
            ..settings(4)
        },
        &plan,
    );
    assert_eq!(layout(&apart).0, [0..1, 1..2, 2..3]);
    assert!(apart.resolved.iter().all(|r| r.auto.is_none()));
    let fused = resolve(
        &Settings {
            fuse: true,
            ..settings(4)
        },
        &plan,
    );
    assert_eq!(layout(&fused), (vec![0..2, 2..3], vec![2, 2, 3]));
    assert_eq!(fused.resolved[1].queue, 0, "a fused stage has no connector");
    assert!(
        fused.resolved.iter().all(|r| !r.splits),
        "fused for good under fuse()"
    );
}

#[test]
fn equal_fixed_stages_start_fused_and_may_split_unless_ordered_after() {
    let plan = [
        stage(Some(2), None),
        stage(Some(2), None),
        stage(Some(2), None),
        stage(Some(3), None),
        stage(None, None),
        stage(Some(1), None),
        stage(Some(1), None),
    ];
    let r = resolve(&settings(4), &plan);
    assert_eq!(
        layout(&r).0,
        [0..3, 3..4, 4..5, 5..7],
        "equal neighbours fuse; a lone count, an auto stage, stand alone"
    );
    let splits: Vec<bool> = r.resolved.iter().map(|r| r.splits).collect();
    assert_eq!(splits, [true, true, true, false, false, true, true]);
    // Once split, each stage after a run's first reads a queue of its own.
    assert_eq!(r.resolved[1].queue, 0);
    assert!(r.resolved[1].standby_queue > 0);
    assert_eq!(r.resolved[0].standby_queue, 0);

    // Before an ordered stage, batches stay whole: nothing there fuses at the start.
    let mut ordered = plan.clone();
    ordered[5].ordered = true;
    let r = resolve(&settings(4), &ordered);
    assert!(r.resolved.iter().all(|r| !r.splits));
    assert_eq!(r.segments.len(), 7);

    // A stage with per-worker state keeps its workers for the whole run: it stands alone.
    let mut stateful = plan.clone();
    stateful[1].per_worker_state = true;
    let r = resolve(&settings(4), &stateful);
    assert_eq!(layout(&r).0, [0..1, 1..2, 2..3, 3..4, 4..5, 5..7]);

    // Stages started lazily (more workers than the budget, one at first) fuse like any
    // others: the run starts on one worker.
    let r = resolve(&settings(1), &plan);
    assert_eq!(
        r.resolved.iter().map(|r| r.splits).collect::<Vec<_>>(),
        [true, true, true, false, false, true, true]
    );
    assert_eq!(layout(&r).0, [0..3, 3..4, 4..5, 5..7]);
    assert!(r.resolved[..3]
        .iter()
        .all(|r| (r.workers, r.start) == (2, 1)));
}

#[test]
fn the_default_budget_spares_a_core_only_on_machines_of_eight_or_more() {
    assert_eq!(
        [1, 2, 4, 7, 8, 16, 64].map(default_budget),
        [1, 2, 4, 7, 7, 15, 63]
    );
}

#[test]
fn fixed_stages_start_within_the_budget_unless_lazy_workers_are_off() {
    let mut waits = stage(Some(8), None);
    waits.asynchronous = true;
    let plan = [
        stage(Some(8), None),
        stage(Some(2), None),
        stage(None, Some((1, 16))),
        waits,
    ];
    let starts = |settings: &Settings| -> Vec<(usize, usize)> {
        let r = resolve(settings, &plan);
        r.resolved.iter().map(|r| (r.workers, r.start)).collect()
    };
    // 8 fixed workers on a budget of 3 start at 1; 2 start at once; the auto stage
    // starts at its share (clamped to its min of 1); the async stage runs on one driver.
    assert_eq!(starts(&settings(3)), [(8, 1), (2, 2), (1, 1), (1, 1)]);
    let eager = Settings {
        lazy_workers: false,
        ..settings(3)
    };
    assert_eq!(starts(&eager), [(8, 8), (2, 2), (1, 1), (1, 1)]);
    // At the budget, a stage starts all its workers at once.
    let r = resolve(&settings(4), &[stage(Some(4), None)]);
    assert_eq!((r.resolved[0].workers, r.resolved[0].start), (4, 4));
}

#[test]
fn stages_without_a_worker_count_are_autoscaled_fused_and_share_the_budget() {
    let auto = settings(6);
    let plan = [stage(None, None), stage(None, None), stage(None, None)];
    let fused = resolve(&auto, &plan);
    assert_eq!(fused.segments, [Range { start: 0, end: 3 }]);
    assert_eq!(layout(&fused).1, [6, 6, 6]);
    let apart = Settings {
        fuse_auto: false,
        ..auto.clone()
    };
    assert_eq!(
        layout(&resolve(&apart, &plan)),
        (vec![0..1, 1..2, 2..3], vec![2, 2, 2])
    );
}

#[test]
fn an_auto_stage_with_a_batch_or_capacity_of_its_own_keeps_its_connector() {
    let auto = settings(2);
    let mut batched = stage(None, None);
    batched.batch = Some(16);
    let mut buffered = stage(None, None);
    buffered.capacity = Some(64);
    let mut same = stage(None, None);
    same.capacity = Some(auto.capacity);
    let plan = [stage(None, None), same, buffered, batched];
    let r = resolve(&auto, &plan);
    // Setting the default explicitly changes nothing; a different one breaks the run.
    assert_eq!(r.segments, [0..2, 2..3, 3..4]);
    // 64 items with no batch size set: adaptive batches of at most 16, four of them.
    let buffered = &r.resolved[2];
    assert_eq!(
        (buffered.batch, buffered.adaptive, buffered.queue),
        (16, true, 4)
    );
    let batched = &r.resolved[3];
    assert!(!batched.adaptive, "a batch size set pins it");
}

#[test]
fn an_unset_batch_adapts_within_the_capacity_in_items_and_a_set_one_is_pinned() {
    let defaults = settings(2);
    assert_eq!(batch_for(None, &defaults, 16_384), (4096, true));
    assert_eq!(batch_for(None, &defaults, 1024), (256, true));
    assert_eq!(batch_for(None, &defaults, 2), (1, true));
    // Two slots of one item: the queue holds the 2 items asked for, not a batch more.
    assert_eq!(batches(2, batch_for(None, &defaults, 2).0, true), 2);
    // An adaptive size that does not divide the capacity: whole batches within it (3 × 300
    // of 1,000, not 4); a pinned one rounds up to whole batches, as documented; either is
    // one batch when it is larger than the capacity.
    assert_eq!(batches(1000, 300, true), 3);
    assert_eq!(batches(1000, 300, false), 4);
    assert_eq!(batches(8, 64, true), 1);
    assert_eq!(batches(8, 64, false), 1);
    assert_eq!(
        batch_for(Some(64), &defaults, 8),
        (64, false),
        "a stage's own batch pins it"
    );
    let set = Settings {
        batch: Some(256),
        ..defaults
    };
    assert_eq!(
        batch_for(None, &set, 8),
        (256, false),
        "so does the pipeline's, when set"
    );
}

#[test]
fn an_async_stage_takes_batches_of_at_most_a_quarter_of_its_concurrency() {
    let mut waits = stage(None, None);
    waits.asynchronous = true;
    waits.concurrency = Some(1000);
    let mut pinned = waits.clone();
    pinned.batch = Some(4096);
    let mut default = stage(None, None);
    default.asynchronous = true;
    let r = resolve(&settings(2), &[waits, pinned, default]);
    let sizes: Vec<_> = r.resolved.iter().map(|r| (r.batch, r.adaptive)).collect();
    assert_eq!(
        sizes,
        [(250, true), (4096, false), (DEFAULT_CONCURRENCY / 4, true)]
    );
    // The capacity still holds in items: more slots of smaller batches, never past it
    // (16,384 / 250: 65 slots, 16,250 items; it took 66, 16,500).
    assert_eq!(r.resolved[0].queue, 65);
    assert!(r.resolved[0].queue * 250 <= DEFAULT_CAPACITY);
}

#[test]
fn ordered_async_fixed_and_bounded_stages_break_an_auto_run() {
    let auto = settings(8);
    let mut ordered = stage(None, None);
    ordered.ordered = true;
    let mut asynchronous = stage(None, None);
    asynchronous.asynchronous = true;
    let plan = [
        stage(None, None),
        ordered,              // joins the first, ends the run
        stage(None, None),    // a new segment
        asynchronous,         // never fused, never autoscaled
        stage(None, None),    // a new segment
        stage(Some(2), None), // fixed: 2 of the budget
        stage(None, Some((1, 1))),
    ];
    let r = resolve(&auto, &plan);
    assert_eq!(r.segments, [0..2, 2..3, 3..4, 4..5, 5..6, 6..7]);
    // Budget 8 less the fixed stage's 2, over four auto segments: 1 each (6 / 4),
    // the last capped at its max of 1; the async stage runs on one driver.
    assert_eq!(layout(&r).1, [1, 1, 1, 1, 1, 2, 1]);
    let r = resolve(
        &Settings {
            cpu_budget: Some(18),
            ..auto
        },
        &plan,
    );
    assert_eq!(layout(&r).1, [4, 4, 4, 1, 4, 2, 1]);
}
