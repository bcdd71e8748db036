//! The sequential reference: the same stage functions applied in order, one item at a
//! time, predicting every output, per-stage count, failure and terminal event of a run.

use crate::model::{name, step, Case, Item, Step};

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

#[derive(Debug, Default)]
pub(crate) struct Reference {
    pub(crate) outputs: Vec<Item>,
    pub(crate) stages: Vec<Counts>,
    /// Terminal events: origin, position (stage index; the sink is `stages.len()`), what,
    /// and the output for deliveries.
    pub(crate) ends: Vec<(u64, usize, Kind, Option<Item>)>,
    /// Failures: origin, stage index, attempts, panicked, the key of the item if kept.
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

pub(crate) fn walk(case: &Case, s: usize, item: Item, r: &mut Reference) {
    let n = case.stages.len();
    if s == n {
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
    let mut attempt = 1;
    loop {
        match step(op, &item, attempt) {
            Step::Out(kids) if kids.is_empty() => {
                r.stages[s].filtered += 1;
                r.ends.push((item.origin, s, Kind::Filtered(name(s)), None));
            }
            Step::Out(kids) => {
                r.stages[s].items_out += kids.len() as u64;
                for kid in kids {
                    walk(case, s + 1, kid, r);
                }
            }
            Step::Filtered => {
                r.stages[s].filtered += 1;
                r.ends.push((item.origin, s, Kind::Filtered(name(s)), None));
            }
            failure @ (Step::Error | Step::Panic) => {
                if attempt < allowed {
                    attempt += 1;
                    r.stages[s].retries += 1;
                    continue;
                }
                let panicked = matches!(failure, Step::Panic);
                r.stages[s].failed += 1;
                let kind = Kind::Failed(name(s), attempt, panicked);
                r.ends.push((item.origin, s, kind, None));
                let kept = op.fallible().then_some(item.key);
                r.failures.push((item.origin, s, attempt, panicked, kept));
            }
        }
        return;
    }
}
