//! The sequential reference: the same stage functions applied in order, one item at a
//! time, predicting every output, per-stage count, failure and terminal event of a run.
//! A `try_for_each` sink is one more fallible position after the last stage: its tries are
//! judged by the same functions, under the case's default policy.

use crate::model::{step, Case, Item, Op, Step};

/// What became of one item (or flat-map child), as a hook or the origin would see it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Delivered,
    Filtered(String),
    /// Stage, attempts, panicked.
    Failed(String, u32, bool),
    Cancelled,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) items_in: u64,
    pub(crate) items_out: u64,
    pub(crate) filtered: u64,
    pub(crate) failed: u64,
    pub(crate) retries: u64,
}

impl Counts {
    /// The counts a run's report gives for one stage (or the sink).
    pub(crate) fn of(t: &millrace::Tally) -> Self {
        Counts {
            items_in: t.items_in,
            items_out: t.items_out,
            filtered: t.filtered,
            failed: t.failed,
            retries: t.retries,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Reference {
    /// What the sink accepted: every item that came out of the last stage, less those a
    /// `try_for_each` sink failed.
    pub(crate) outputs: Vec<Item>,
    pub(crate) stages: Vec<Counts>,
    /// The sink's counts: `items_in` what came out of the last stage, `items_out` what it
    /// accepted (delivered).
    pub(crate) sink: Counts,
    /// Terminal events: origin, position (stage index; the sink is `stages.len()`), what,
    /// and the output for deliveries.
    pub(crate) ends: Vec<(u64, usize, Kind, Option<Item>)>,
    /// Failures: origin, position (as in `ends`), attempts, panicked, the key of the item
    /// if kept.
    pub(crate) failures: Vec<(u64, usize, u32, bool, Option<u64>)>,
}

pub(crate) fn reference(case: &Case, admitted: usize) -> Reference {
    let mut r = Reference {
        stages: vec![Counts::default(); case.stages.len()],
        ..Reference::default()
    };
    for (i, &value) in case.input.iter().take(admitted).enumerate() {
        let i = i as u64;
        walk(
            case,
            0,
            Item {
                origin: i,
                key: i,
                value,
            },
            &mut r,
        );
    }
    r
}

/// Tries `op` on `item` as a policy allowing `allowed` tries would: returns the first try
/// that did not fail, or the last failure, with its try number; counts the retries.
fn tries(op: &Op, item: &Item, allowed: u32, counts: &mut Counts) -> (Step, u32) {
    let mut attempt = 1;
    loop {
        match step(op, item, attempt) {
            Step::Error | Step::Panic if attempt < allowed => {
                attempt += 1;
                counts.retries += 1;
            }
            other => return (other, attempt),
        }
    }
}

/// Records the failure of `item` at `position` for good, after `attempts` tries; `kept`:
/// whether the position borrowed the item (so a dead letter has it).
fn fail(
    case: &Case,
    r: &mut Reference,
    item: &Item,
    position: usize,
    attempts: u32,
    panicked: bool,
    kept: bool,
) {
    let kind = Kind::Failed(case.name_at(position), attempts, panicked);
    r.ends.push((item.origin, position, kind, None));
    let kept = kept.then_some(item.key);
    r.failures
        .push((item.origin, position, attempts, panicked, kept));
}

pub(crate) fn walk(case: &Case, s: usize, item: Item, r: &mut Reference) {
    let n = case.stages.len();
    if s == n {
        r.sink.items_in += 1;
        if let Some(fault) = case.sink_fault() {
            // `try_for_each` borrows the item: every failure may be retried.
            let allowed = case.default_policy.attempts();
            let (last, attempt) = tries(&fault.op(), &item, allowed, &mut r.sink);
            if let failure @ (Step::Error | Step::Panic) = last {
                r.sink.failed += 1;
                let panicked = matches!(failure, Step::Panic);
                fail(case, r, &item, n, attempt, panicked, true);
                return;
            }
        }
        r.sink.items_out += 1;
        r.ends
            .push((item.origin, n, Kind::Delivered, Some(item.clone())));
        r.outputs.push(item);
        return;
    }
    let op = &case.stages[s].op;
    let allowed = if op.fallible() {
        case.policy(s).attempts()
    } else {
        1
    };
    r.stages[s].items_in += 1;
    match tries(op, &item, allowed, &mut r.stages[s]) {
        (Step::Out(kids), _) if !kids.is_empty() => {
            r.stages[s].items_out += kids.len() as u64;
            for kid in kids {
                walk(case, s + 1, kid, r);
            }
        }
        (Step::Out(_) | Step::Filtered, _) => {
            r.stages[s].filtered += 1;
            let kind = Kind::Filtered(case.name_at(s));
            r.ends.push((item.origin, s, kind, None));
        }
        (failure @ (Step::Error | Step::Panic), attempt) => {
            r.stages[s].failed += 1;
            let panicked = matches!(failure, Step::Panic);
            fail(case, r, &item, s, attempt, panicked, op.fallible());
        }
    }
}
