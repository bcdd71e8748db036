//! Checking: compares an observed run with the sequential reference, and runs and checks
//! the cancel property (every admitted item accounted for once).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use millrace::{ItemId, Pipeline, PipelineBuilder, Running};

use crate::common::assert_every_stage_balances;
use crate::model::{build_sink, name, Case, Item, SinkFault, SinkMode};
use crate::reference::{reference, Counts, Kind};
use crate::run::{configure, items, outcome_kind, Observed, Shared};

/// The levels of flat-map children an item id names (see `ItemId`).
const ID_LEVELS: usize = 4;

/// How many flat-maps down from its input item `id` names.
fn levels(id: ItemId) -> usize {
    std::iter::successors(id.parent(), |p| p.parent()).count()
}

pub(crate) fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

pub(crate) fn check(case: &Case, o: &Observed) {
    let report = &o.report;
    assert_eq!(
        o.other_error, None,
        "the run failed unexpectedly:\n{report}"
    );
    let admitted = report.items_in() as usize;
    assert!(admitted <= case.input.len());
    if let Some(ok) = o.submitted_ok {
        assert_eq!(admitted as u64, ok, "every accepted submit is admitted");
    }
    if !o.stop_called && !case.any_stop_policy() {
        assert_eq!(admitted, case.input.len(), "an unstopped run admits all");
    }
    let r = reference(case, admitted);

    // Nothing lost, nothing cancelled.
    assert_eq!(report.cancelled(), 0, "nothing is cancelled:\n{report}");
    assert!(report.unfinished().is_empty());
    // Flat-map children count as items of their own (expanded), so every run balances.
    assert!(report.is_balanced(), "the report balances:\n{report}");
    // Ids name four levels of flat-map children; past them, children keep their parent's id
    // (`ItemId::child`), so only ids above that depth are unique in a deeper chain.
    let deep = case.stages.iter().filter(|s| s.op.expands()).count() > ID_LEVELS;
    let mut answered: Vec<ItemId> = (o.answered.iter().copied())
        .filter(|&id| !deep || levels(id) < ID_LEVELS)
        .collect();
    answered.sort();
    let before = answered.len();
    answered.dedup();
    assert_eq!(
        answered.len(),
        before,
        "each item id (children's too) answered once"
    );

    // Outputs (what the sink accepted: with a `try_for_each` sink, the last stage's outputs
    // less the items it failed): the same sequence when the last stage is ordered, else the
    // same multiset.
    if case.last_ordered() && !matches!(case.sink, SinkMode::Respond | SinkMode::ReplyTo) {
        assert_eq!(o.outputs, r.outputs, "ordered outputs follow input order");
    } else {
        assert_eq!(sorted(o.outputs.clone()), sorted(r.outputs.clone()));
    }

    // Per-stage accounting.
    assert_eq!(report.source().tally.items_out, admitted as u64);
    assert_eq!(
        report.stages().len(),
        case.stages.len() + usize::from(case.paced())
    );
    for (i, (s, want)) in report.stages().iter().zip(&r.stages).enumerate() {
        assert_eq!(s.name, name(i));
        let t = &s.tally;
        assert_eq!(&Counts::of(t), want, "stage {i} counts:\n{report}");
        assert_eq!(t.cancelled, 0);
        assert_eq!(
            t.items_in,
            s.passed() + t.filtered + t.failed + t.cancelled,
            "stage {i}: in = passed + filtered + failed + cancelled"
        );
        assert_eq!(
            t.items_in + t.expanded,
            t.items_out + t.filtered + t.failed + t.cancelled,
            "stage {i}: in + expanded = out + filtered + failed + cancelled"
        );
        if !case.stages[i].op.expands() {
            assert_eq!(
                s.passed(),
                t.items_out,
                "stage {i}: 1→1 forms pass what they emit"
            );
        }
    }
    // The sink: what reached it, what it accepted, failed and retried.
    let t = &report.sink().tally;
    assert_eq!(Counts::of(t), r.sink, "sink counts:\n{report}");
    assert_eq!(t.cancelled, 0);
    assert_eq!(report.delivered(), r.outputs.len() as u64);
    assert_eq!(
        report.filtered(),
        r.stages.iter().map(|c| c.filtered).sum::<u64>()
    );
    assert_eq!(report.failed(), r.failures.len() as u64);
    assert_eq!(report.errors_total(), r.failures.len() as u64);

    // Errors name the item and the stage.
    let want_errors = sorted(
        r.failures
            .iter()
            .map(|&(id, s, attempts, panicked, _)| (id, case.name_at(s), attempts, panicked))
            .collect(),
    );
    let got_errors = sorted(
        report
            .errors()
            .iter()
            .map(|e| (e.id().0, e.stage().to_owned(), e.attempts(), e.is_panic()))
            .collect::<Vec<_>>(),
    );
    if want_errors.len() <= 100 {
        assert_eq!(got_errors, want_errors, "item errors");
    } else {
        assert_eq!(
            got_errors.len(),
            100,
            "the report keeps the first 100 errors"
        );
    }

    // How the run ended: with a failure under a stopping policy (in a stage, or in the
    // sink under the default policy) if there was one.
    let stopping_failures: Vec<(u64, String)> = r
        .failures
        .iter()
        .filter(|f| case.policy_at(f.1).stops())
        .map(|f| (f.0, case.name_at(f.1)))
        .collect();
    match &o.stopped_by {
        Some(first) => assert!(
            stopping_failures.contains(first),
            "the run stopped on {first:?}, not a failure under a stopping policy"
        ),
        None => assert!(
            stopping_failures.is_empty(),
            "a failure under a stopping policy must end the run with it: {stopping_failures:?}"
        ),
    }
    let end = report.end();
    if o.stopped_by.is_some() {
        assert_eq!(end, millrace::EndState::Failed);
    } else if o.stop_called && admitted < case.input.len() {
        // The stop cut the input short.
        assert_eq!(end, millrace::EndState::Stopped);
    } else if o.stop_called {
        // Every item was admitted: a stop after the input ran out by itself stops nothing
        // (the run completes); one just before cut nothing but still says so.
        assert!(
            matches!(
                end,
                millrace::EndState::Stopped | millrace::EndState::Completed
            ),
            "{end:?}"
        );
    } else {
        assert_eq!(end, millrace::EndState::Completed);
    }

    // Dead letters: every failure of a stage with a handler, with the item where kept.
    for (i, spec) in case.stages.iter().enumerate() {
        if !spec.dead_letter {
            continue;
        }
        let want = sorted(
            r.failures
                .iter()
                .filter(|f| f.1 == i)
                .map(|f| (f.0, name(i), f.4))
                .collect(),
        );
        let got = sorted(
            o.dead
                .iter()
                .filter(|d| d.1 == name(i))
                .cloned()
                .collect::<Vec<_>>(),
        );
        assert_eq!(got, want, "dead letters of stage {i}");
    }
    assert!(report.hook_panics().is_empty());

    // Response hooks: a hooked stage sees every terminal event after it, exactly once.
    for (h, spec) in case.stages.iter().enumerate() {
        if !spec.hook {
            continue;
        }
        let want = sorted(
            r.ends
                .iter()
                .filter(|e| e.1 > h)
                .map(|e| (e.0, e.2.clone()))
                .collect(),
        );
        let got = sorted(
            o.hooks
                .iter()
                .filter(|x| x.0 == h)
                .map(|x| (x.1, x.2.clone()))
                .collect::<Vec<_>>(),
        );
        assert_eq!(got, want, "statuses seen by the hook of stage {h}");
    }

    // The origin of a serving pipeline gets every outcome, with the outputs, by id.
    if let Some(got) = &o.responses {
        let want = sorted(
            r.ends
                .iter()
                .map(|e| (e.0, e.2.clone(), e.3.clone()))
                .collect(),
        );
        assert_eq!(sorted(got.clone()), want, "outcomes at the origin");
        if !case.expands() {
            let mut per_id: BTreeMap<u64, usize> = BTreeMap::new();
            for (id, _, _) in got {
                *per_id.entry(*id).or_default() += 1;
            }
            assert_eq!(per_id.len(), admitted, "every admitted id is answered");
            assert!(per_id.values().all(|&n| n == 1), "each id exactly once");
        }
    }

    // The first stage of a replying pipeline gets every outcome of the items it sent on
    // (those that ended after it), with the values, by id: exactly once without flat-maps.
    if let Some(got) = &o.replies {
        let want = sorted(
            r.ends
                .iter()
                .filter(|e| e.1 > 0)
                .map(|e| (e.0, e.2.clone(), e.3.clone()))
                .collect(),
        );
        assert_eq!(sorted(got.clone()), want, "replies received by stage 0");
        if !case.expands() {
            let mut per_id: BTreeMap<u64, usize> = BTreeMap::new();
            for (id, _, _) in got {
                *per_id.entry(*id).or_default() += 1;
            }
            assert!(per_id.values().all(|&n| n == 1), "each id exactly once");
        }
    }
}

/// Starts `builder` with a `try_for_each` sink that fails items as `fault` says and keeps
/// the items it accepts, in the returned vector.
pub(crate) fn spawn_try_for_each(
    builder: PipelineBuilder<Item>,
    fault: SinkFault,
) -> (Running<()>, Arc<Mutex<Vec<Item>>>) {
    let accepted: Arc<Mutex<Vec<Item>>> = Arc::default();
    let kept = Arc::clone(&accepted);
    let mut judge = build_sink(fault);
    let running = builder
        .try_for_each(move |it: &Item| {
            judge(it)?;
            kept.lock().unwrap().push(it.clone());
            Ok::<(), String>(())
        })
        .spawn()
        .expect("a valid pipeline builds");
    (running, accepted)
}

/// Runs `case`, cancelling once `cancel_after` outputs or responses came out, and checks
/// that every admitted item is accounted for once: finished as the reference says, or
/// listed as unfinished.
pub(crate) fn run_and_check_cancel(case: &Case, cancel_after: usize) {
    let obs = Shared::default();
    let builder = configure(Pipeline::source(items(case)), case, &obs);
    let full = reference(case, case.input.len());
    match case.sink {
        SinkMode::TryForEach(fault) => {
            let (running, accepted) = spawn_try_for_each(builder, fault);
            // Cancel once `cancel_after` items were accepted (or the run ended first).
            while cancel_after > 0
                && !running.is_finished()
                && accepted.lock().unwrap().len() < cancel_after
            {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            running.cancel();
            let report = running
                .join()
                .expect("a cancelled run is not an error")
                .report;
            assert!(report.is_balanced(), "a cancelled run balances:\n{report}");
            assert_every_stage_balances(&report);
            assert_eq!(report.cancelled(), report.unfinished().len() as u64);
            let accepted = accepted.lock().unwrap().clone();
            assert_eq!(report.delivered(), accepted.len() as u64);
            let unfinished: BTreeSet<u64> = report.unfinished().iter().map(|id| id.0).collect();
            let fates: BTreeMap<u64, &Kind> = full.ends.iter().map(|e| (e.0, &e.2)).collect();
            // Each accepted item is its reference output, none is also unfinished ...
            for item in &accepted {
                let want = full.ends.iter().find(|e| e.0 == item.origin);
                assert_eq!(
                    want.map(|e| (&e.2, e.3.as_ref())),
                    Some((&Kind::Delivered, Some(item))),
                    "accepted item {}",
                    item.origin
                );
                assert!(!unfinished.contains(&item.origin), "{} twice", item.origin);
            }
            // ... and every other admitted item is unfinished or one the reference says
            // never reaches the sink's acceptance (filtered, or failed in a stage or there).
            let accepted_ids: BTreeSet<u64> = accepted.iter().map(|it| it.origin).collect();
            for id in 0..report.items_in() {
                if accepted_ids.contains(&id) || unfinished.contains(&id) {
                    continue;
                }
                let fate = fates.get(&id).expect("every id has one fate");
                assert_ne!(**fate, Kind::Delivered, "item {id} was lost");
            }
            if case.last_ordered() {
                assert_eq!(
                    accepted[..],
                    full.outputs[..accepted.len()],
                    "ordered outputs are a prefix"
                );
            }
        }
        SinkMode::Respond => {
            let (running, rx) = builder.respond().expect("a valid pipeline builds");
            if cancel_after == 0 {
                running.cancel();
            }
            let mut got = Vec::new();
            for (id, outcome) in rx {
                got.push((id.0, outcome_kind(outcome)));
                if got.len() == cancel_after {
                    running.cancel();
                }
            }
            let report = running
                .join()
                .expect("a cancelled run is not an error")
                .report;
            let admitted = report.items_in();
            assert!(report.is_balanced(), "a cancelled run balances:\n{report}");
            assert_every_stage_balances(&report);
            assert_eq!(report.cancelled(), report.unfinished().len() as u64);
            let mut ids: Vec<u64> = got.iter().map(|g| g.0).collect();
            ids.sort_unstable();
            assert_eq!(
                ids,
                (0..admitted).collect::<Vec<_>>(),
                "each admitted id once"
            );
            let mut cancelled: Vec<u64> = got
                .iter()
                .filter(|g| g.1 .0 == Kind::Cancelled)
                .map(|g| g.0)
                .collect();
            cancelled.sort_unstable();
            let unfinished: Vec<u64> = report.unfinished().iter().map(|id| id.0).collect();
            assert_eq!(
                cancelled, unfinished,
                "cancelled outcomes are the unfinished ids"
            );
            for (id, (kind, item)) in &got {
                if *kind == Kind::Cancelled {
                    continue;
                }
                let want = full
                    .ends
                    .iter()
                    .find(|e| e.0 == *id)
                    .expect("every id has one fate");
                if retries_cut_short(case, kind) {
                    // A cancel stops retries: the item fails on the try it was on.
                    continue;
                }
                assert_eq!((kind, item), (&want.2, &want.3), "outcome of item {id}");
            }
        }
        _ => {
            let mut out = builder.outputs().expect("a valid pipeline builds");
            let taken: Vec<Item> = out.by_ref().take(cancel_after).collect();
            let report = out.finish().expect("a cancelled run is not an error");
            assert!(report.is_balanced(), "a cancelled run balances:\n{report}");
            assert_every_stage_balances(&report);
            assert_eq!(report.cancelled(), report.unfinished().len() as u64);
            assert_eq!(report.delivered(), taken.len() as u64);
            let mut pool = sorted(full.outputs.clone());
            for item in &taken {
                let at = pool
                    .binary_search(item)
                    .expect("every output is a reference output");
                pool.remove(at);
            }
            if case.last_ordered() {
                assert_eq!(
                    taken[..],
                    full.outputs[..taken.len()],
                    "ordered outputs are a prefix"
                );
            }
        }
    }
}

/// Whether `kind` is a failure in a retrying stage with fewer tries than its policy
/// allows: what a cancel makes of an item that was between two tries.
pub(crate) fn retries_cut_short(case: &Case, kind: &Kind) -> bool {
    let Kind::Failed(stage, attempts, _) = kind else {
        return false;
    };
    let index = (0..case.stages.len())
        .find(|&i| name(i) == *stage)
        .expect("a failure names a stage of the pipeline");
    case.stages[index].op.fallible() && *attempts < case.policy(index).attempts()
}
