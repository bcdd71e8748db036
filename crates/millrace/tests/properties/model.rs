//! The case model: what a random pipeline is (items, stage ops, error policies, stage
//! specs, source and sink modes, the whole case), and the stage and sink functions shared by
//! the real pipeline (`build_stage`, `build_sink`) and the sequential reference (`step`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use millrace::{ErrorPolicy, Retry, Stage, Status};

use crate::common::INJECTED;
use crate::reference::Kind;
use crate::run::Shared;

/// The item type every random stage maps to itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Item {
    /// The id of the input item it came from.
    pub(crate) origin: u64,
    /// Unique among the items entering any one stage (flat-map children get `key·4 + j`).
    pub(crate) key: u64,
    pub(crate) value: u64,
}

#[derive(Clone, Debug)]
pub(crate) enum Op {
    Map {
        mul: u64,
        add: u64,
    },
    Filter {
        m: u64,
        r: u64,
    },
    FlatMap {
        fan: u64,
    },
    TryMap {
        m: u64,
        r: u64,
    },
    TryFlat {
        m: u64,
        r: u64,
        fan: u64,
    },
    PanicMap {
        m: u64,
        r: u64,
    },
    /// A flat-map whose iterator panics after yielding its children, for bad items.
    PanicFlat {
        m: u64,
        r: u64,
        fan: u64,
    },
    TryPanic {
        m: u64,
        r: u64,
    },
    /// A `try_map` that fails the first `k` tries of every item.
    Flaky {
        k: u32,
    },
}

impl Op {
    /// Whether the stage borrows its items (so it can retry and dead letters get the item).
    pub(crate) fn fallible(&self) -> bool {
        matches!(
            self,
            Op::TryMap { .. } | Op::TryFlat { .. } | Op::TryPanic { .. } | Op::Flaky { .. }
        )
    }

    pub(crate) fn expands(&self) -> bool {
        matches!(
            self,
            Op::FlatMap { .. } | Op::TryFlat { .. } | Op::PanicFlat { .. }
        )
    }

    /// Whether the op can run as an async stage: maps (`map_async`) and fallible maps
    /// (`try_map_async`).
    pub(crate) fn has_async_form(&self) -> bool {
        matches!(
            self,
            Op::Map { .. }
                | Op::PanicMap { .. }
                | Op::TryMap { .. }
                | Op::TryPanic { .. }
                | Op::Flaky { .. }
        )
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Policy {
    Skip,
    Retry(u32),
    Stop,
    RetryThenStop(u32),
}

impl Policy {
    pub(crate) fn to_policy(self) -> ErrorPolicy {
        let retry = |n| Retry::new(n).backoff(std::time::Duration::ZERO);
        match self {
            Policy::Skip => ErrorPolicy::Skip,
            Policy::Retry(n) => ErrorPolicy::Retry(retry(n)),
            Policy::Stop => ErrorPolicy::Stop,
            Policy::RetryThenStop(n) => ErrorPolicy::Retry(retry(n).then_stop()),
        }
    }

    pub(crate) fn attempts(self) -> u32 {
        match self {
            Policy::Retry(n) | Policy::RetryThenStop(n) => n.max(1),
            Policy::Skip | Policy::Stop => 1,
        }
    }

    pub(crate) fn stops(self) -> bool {
        matches!(self, Policy::Stop | Policy::RetryThenStop(_))
    }
}

#[derive(Clone, Debug)]
pub(crate) struct StageSpec {
    pub(crate) op: Op,
    pub(crate) workers: usize,
    /// `None`: the default capacity.
    pub(crate) capacity: Option<usize>,
    /// `None`: the batch size adapts.
    pub(crate) batch: Option<usize>,
    pub(crate) ordered: bool,
    pub(crate) policy: Option<Policy>,
    pub(crate) hook: bool,
    pub(crate) dead_letter: bool,
    /// `Some(concurrency)`: the op as an async stage (`map_async` or `try_map_async`),
    /// for the ops that have an async form ([`Op::has_async_form`]).
    pub(crate) asynchronous: Option<usize>,
}

/// How the stages get their workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Each stage on its own workers (`adaptive_fusion(false)`).
    Separate,
    /// `fuse()`, every stage with the first one's worker count: stages share workers, runs
    /// broken only after ordered stages.
    Fused,
    /// `autoscale()` within this CPU budget: adjacent stages fused (the default), resized
    /// while items flow.
    Auto(usize),
    /// Each stage on its own fixed workers within a CPU budget of 1: a stage of more than
    /// one worker starts one and is grown (every 5 ms) while its workers are all busy.
    Lazy,
    /// The defaults, every stage with the first one's worker count: runs of stages after
    /// the last ordered one start fused. Without ordered stages (it would take back the order
    /// they promise), a last stage that passes items on after 20 µs
    /// keeps the fused workers busy, so the controller (every millisecond) splits them in
    /// the middle of most runs.
    Adaptive,
}

impl Layout {
    /// Whether every stage has the first one's worker count.
    pub(crate) fn equal_workers(self) -> bool {
        matches!(self, Layout::Fused | Layout::Adaptive)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceMode {
    Iter,
    /// Items pushed by a thread through a `Submitter` of this capacity.
    Submitter(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SinkMode {
    /// `outputs()`, consumed on the test thread.
    Outputs,
    /// `for_each` pushing into a vector.
    ForEach,
    /// `respond()`: outcomes back to the test thread.
    Respond,
    /// `reply_to` the first stage: its outcomes, as values, folded on its relay thread.
    ReplyTo,
    /// `try_for_each` pushing into a vector the items it does not fail, under the case's
    /// default error policy.
    TryForEach(SinkFault),
}

/// How a `try_for_each` sink fails items: like the fallible stage ops, as a function of the
/// item's value (or, for the flaky sink, of the try).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SinkFault {
    /// Returns an error when `value % m == r`.
    Error { m: u64, r: u64 },
    /// Panics when `value % m == r`.
    Panic { m: u64, r: u64 },
    /// Fails the first `k` tries of every item.
    Flaky { k: u32 },
}

impl SinkFault {
    /// The stage op that fails the same items on the same tries: what `step` judges the
    /// sink's tries by (an `Out` is an accepted item).
    pub(crate) fn op(self) -> Op {
        match self {
            SinkFault::Error { m, r } => Op::TryMap { m, r },
            SinkFault::Panic { m, r } => Op::TryPanic { m, r },
            SinkFault::Flaky { k } => Op::Flaky { k },
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Case {
    pub(crate) input: Vec<u64>,
    pub(crate) stages: Vec<StageSpec>,
    pub(crate) default_policy: Policy,
    pub(crate) source: SourceMode,
    pub(crate) sink: SinkMode,
    /// Ask for a graceful stop once this many outputs (or responses) came out.
    pub(crate) stop_after: Option<usize>,
    pub(crate) reorder_window: Option<usize>,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) sink_capacity: Option<usize>,
    pub(crate) sink_batch: Option<usize>,
    pub(crate) layout: Layout,
}

impl Case {
    /// What the cancel checks need: no flat-maps (so every id has one fate), no stopping
    /// policies, no hooks, an iterator source, no stop of its own, and a serving,
    /// `outputs()` or `try_for_each` sink (a `for_each` becomes a serving one). A
    /// `try_for_each` sink keeps a retrying default policy (its retries are where a cancel
    /// can land between two tries); other defaults give way to skipping.
    pub(crate) fn restrict_for_cancel(&mut self) {
        for spec in &mut self.stages {
            if spec.op.expands() {
                spec.op = Op::Map { mul: 1, add: 1 };
            }
            if spec.policy.is_some_and(Policy::stops) {
                spec.policy = Some(Policy::Skip);
            }
            spec.hook = false;
        }
        let retries = matches!(self.sink, SinkMode::TryForEach(_))
            && matches!(self.default_policy, Policy::Retry(_));
        if !retries {
            self.default_policy = Policy::Skip;
        }
        self.source = SourceMode::Iter;
        self.stop_after = None;
        if self.sink == SinkMode::ForEach {
            self.sink = SinkMode::Respond;
        }
    }

    pub(crate) fn policy(&self, stage: usize) -> Policy {
        self.stages[stage].policy.unwrap_or(self.default_policy)
    }

    /// How the sink may fail items, for a `try_for_each` sink.
    pub(crate) fn sink_fault(&self) -> Option<SinkFault> {
        match self.sink {
            SinkMode::TryForEach(fault) => Some(fault),
            _ => None,
        }
    }

    /// The policy at a position: a stage's, or at `stages.len()` the sink's (the default).
    pub(crate) fn policy_at(&self, position: usize) -> Policy {
        if position == self.stages.len() {
            self.default_policy
        } else {
            self.policy(position)
        }
    }

    /// The name errors give a position: a stage's, or at `stages.len()` `"sink"`.
    pub(crate) fn name_at(&self, position: usize) -> String {
        if position == self.stages.len() {
            SINK.to_owned()
        } else {
            name(position)
        }
    }

    /// Whether a failure may stop the run: in a stage under a stopping policy, or in a
    /// `try_for_each` sink under a stopping default policy.
    pub(crate) fn any_stop_policy(&self) -> bool {
        (0..self.stages.len()).any(|i| self.policy(i).stops())
            || (self.sink_fault().is_some() && self.default_policy.stops())
    }

    pub(crate) fn expands(&self) -> bool {
        self.stages.iter().any(|s| s.op.expands())
    }

    pub(crate) fn last_ordered(&self) -> bool {
        self.stages.last().is_some_and(|s| s.ordered)
    }

    /// Whether the pipeline ends with the `Adaptive` layout's pace stage (after the case's
    /// own stages; see [`Layout::Adaptive`]).
    pub(crate) fn paced(&self) -> bool {
        self.layout == Layout::Adaptive && !self.stages.iter().any(|s| s.ordered)
    }
}

/// The stage name the library gives failures in the sink.
pub(crate) const SINK: &str = "sink";

pub(crate) fn name(stage: usize) -> String {
    format!("s{stage}")
}

// ---------------------------------------------------------------------------------------
// The stage functions, shared by the pipeline and the reference.

/// What one try of one stage does with one item.
pub(crate) enum Step {
    Out(Vec<Item>),
    Filtered,
    Error,
    Panic,
}

pub(crate) fn child(item: &Item, j: u64) -> Item {
    Item {
        origin: item.origin,
        key: item.key * 4 + j,
        value: item.value.wrapping_add(7 * j + 1),
    }
}

pub(crate) fn children(item: &Item, fan: u64) -> Vec<Item> {
    (0..item.value % (fan + 1))
        .map(|j| child(item, j))
        .collect()
}

pub(crate) fn mapped(item: &Item, mul: u64, add: u64) -> Item {
    Item {
        value: item.value.wrapping_mul(mul).wrapping_add(add),
        ..item.clone()
    }
}

pub(crate) fn bumped(item: &Item) -> Item {
    Item {
        value: item.value + 1,
        ..item.clone()
    }
}

/// The reference's view of try number `attempt` of `op` on `item`.
pub(crate) fn step(op: &Op, item: &Item, attempt: u32) -> Step {
    let bad = |m: u64, r: u64| item.value % m == r;
    match *op {
        Op::Map { mul, add } => Step::Out(vec![mapped(item, mul, add)]),
        Op::Filter { m, r } => {
            if bad(m, r) {
                Step::Filtered
            } else {
                Step::Out(vec![item.clone()])
            }
        }
        Op::FlatMap { fan } => Step::Out(children(item, fan)),
        Op::TryMap { m, r } => {
            if bad(m, r) {
                Step::Error
            } else {
                Step::Out(vec![bumped(item)])
            }
        }
        Op::TryFlat { m, r, fan } => {
            if bad(m, r) {
                Step::Error
            } else {
                Step::Out(children(item, fan))
            }
        }
        Op::PanicMap { m, r } | Op::TryPanic { m, r } => {
            if bad(m, r) {
                Step::Panic
            } else {
                Step::Out(vec![bumped(item)])
            }
        }
        Op::PanicFlat { m, r, fan } => {
            if bad(m, r) {
                Step::Panic
            } else {
                Step::Out(children(item, fan))
            }
        }
        Op::Flaky { k } => {
            if attempt <= k {
                Step::Error
            } else {
                Step::Out(vec![bumped(item)])
            }
        }
    }
}

/// Counts one more try of the item with `key` (unique among the items reaching a stage or
/// the sink); returns its number, from 1.
fn next_try(tries: &mut HashMap<u64, u32>, key: u64) -> u32 {
    let t = tries.entry(key).or_insert(0);
    *t += 1;
    *t
}

pub(crate) fn injected_panic(stage: &str, item: &Item) -> ! {
    panic!("{INJECTED} panic in {stage} on value {}", item.value)
}

/// The real `try_for_each` closure for a fault: fails (errs or panics) the items, on the
/// tries, that `step` says `fault.op()` fails; tries are counted per item key (unique among
/// the items reaching the sink).
pub(crate) fn build_sink(
    fault: SinkFault,
) -> impl FnMut(&Item) -> Result<(), String> + Send + 'static {
    let op = fault.op();
    let mut tries: HashMap<u64, u32> = HashMap::new();
    move |it: &Item| {
        let attempt = next_try(&mut tries, it.key);
        match step(&op, it, attempt) {
            Step::Out(_) => Ok(()),
            Step::Panic => injected_panic(SINK, it),
            Step::Error => Err(format!(
                "{INJECTED} sink failure on value {}, try {attempt}",
                it.value
            )),
            Step::Filtered => unreachable!("a sink fault never filters"),
        }
    }
}

/// The real stage for a spec.
pub(crate) fn build_stage(
    index: usize,
    spec: &StageSpec,
    case: &Case,
    obs: &Shared,
) -> Stage<Item, Item> {
    let stage_name = name(index);
    let mut stage = match spec.asynchronous {
        Some(concurrency) => build_async_stage(&stage_name, &spec.op).concurrency(concurrency),
        None => build_sync_stage(&stage_name, &spec.op),
    };
    // An async stage runs on threads of its own (a worker count for it is a build error):
    // its concurrency is what it scales by.
    if spec.asynchronous.is_none() && !matches!(case.layout, Layout::Auto(_)) {
        stage = stage.workers(spec.workers);
    }
    if let Some(items) = spec.capacity {
        stage = stage.capacity(items);
    }
    if let Some(items) = spec.batch {
        stage = stage.batch(items);
    }
    if spec.ordered {
        stage = stage.ordered();
    }
    if let Some(p) = spec.policy {
        stage = stage.on_error(p.to_policy());
    }
    if spec.hook {
        let seen = Arc::clone(&obs.hooks);
        stage = stage.on_response(move |id, status| {
            let kind = match status {
                Status::Delivered => Kind::Delivered,
                Status::Filtered { stage } => Kind::Filtered(stage.to_string()),
                Status::Failed(e) => Kind::Failed(e.stage().to_owned(), e.attempts(), e.is_panic()),
                Status::Cancelled => Kind::Cancelled,
                other => panic!("unknown status {other:?}"),
            };
            seen.lock().unwrap().push((index, id.0, kind));
        });
    }
    if spec.dead_letter {
        let dead = Arc::clone(&obs.dead);
        stage = stage.dead_letter(move |letter| {
            dead.lock().unwrap().push((
                letter.id.0,
                letter.error.stage().to_owned(),
                letter.item.map(|it| it.key),
            ));
        });
    }
    let _ = case;
    stage
}

/// Yields to the runtime a few times, by value: later items often end first.
async fn jitter(item: &Item) {
    for _ in 0..item.value % 3 {
        tokio::task::yield_now().await;
    }
}

/// The op as an async stage: the same function of each item and try as its sync form, its
/// futures ending out of order. `PanicMap` panics inside the future, `TryPanic` in the
/// closure before it.
fn build_async_stage(stage_name: &str, op: &Op) -> Stage<Item, Item> {
    let n = stage_name.to_owned();
    match op.clone() {
        Op::Map { mul, add } => Stage::map_async(stage_name, move |it: Item| async move {
            jitter(&it).await;
            mapped(&it, mul, add)
        }),
        Op::PanicMap { m, r } => Stage::map_async(stage_name, move |it: Item| {
            let n = n.clone();
            async move {
                jitter(&it).await;
                if it.value % m == r {
                    injected_panic(&n, &it)
                }
                bumped(&it)
            }
        }),
        Op::TryPanic { m, r } => Stage::try_map_async(stage_name, move |it: &Item| {
            if it.value % m == r {
                injected_panic(&n, it)
            }
            let it = it.clone();
            async move {
                jitter(&it).await;
                Ok::<_, String>(bumped(&it))
            }
        }),
        op => {
            let tries: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
            Stage::try_map_async(stage_name, move |it: &Item| {
                let attempt = next_try(&mut tries.lock().unwrap(), it.key);
                let (it, op) = (it.clone(), op.clone());
                async move {
                    jitter(&it).await;
                    match step(&op, &it, attempt) {
                        Step::Out(mut v) => Ok(v.remove(0)),
                        _ => Err(format!(
                            "{INJECTED} failure on value {}, try {attempt}",
                            it.value
                        )),
                    }
                }
            })
        }
    }
}

/// The op as a sync stage.
fn build_sync_stage(stage_name: &str, op: &Op) -> Stage<Item, Item> {
    let n = stage_name.to_owned();
    match op.clone() {
        Op::Map { mul, add } => Stage::map(stage_name, move |it: Item| mapped(&it, mul, add)),
        Op::Filter { m, r } => Stage::filter(stage_name, move |it: &Item| it.value % m != r),
        Op::FlatMap { fan } => Stage::flat_map(stage_name, move |it: Item| children(&it, fan)),
        Op::TryMap { m, r } => Stage::try_map(stage_name, move |it: &Item| {
            if it.value % m == r {
                Err(format!("{INJECTED} error on value {}", it.value))
            } else {
                Ok(bumped(it))
            }
        }),
        Op::TryFlat { m, r, fan } => Stage::try_flat_map(stage_name, move |it: &Item| {
            if it.value % m == r {
                Err(format!("{INJECTED} error on value {}", it.value))
            } else {
                Ok(children(it, fan))
            }
        }),
        Op::PanicMap { m, r } => Stage::map(stage_name, move |it: Item| {
            if it.value % m == r {
                injected_panic(&n, &it)
            }
            bumped(&it)
        }),
        Op::PanicFlat { m, r, fan } => Stage::flat_map(stage_name, move |it: Item| {
            let kids = children(&it, fan);
            let count = kids.len();
            let bad = it.value % m == r;
            let n = n.clone();
            // Lazy: the panic comes after the children were yielded.
            kids.into_iter()
                .map(Some)
                .chain(std::iter::once(None))
                .enumerate()
                .filter_map(move |(j, kid)| {
                    if j == count && bad {
                        injected_panic(&n, &it)
                    }
                    kid
                })
        }),
        Op::TryPanic { m, r } => Stage::try_map(stage_name, move |it: &Item| {
            if it.value % m == r {
                injected_panic(&n, it)
            }
            Ok::<_, String>(bumped(it))
        }),
        Op::Flaky { k } => {
            let tries: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
            let op = Op::Flaky { k };
            Stage::try_map(stage_name, move |it: &Item| {
                let attempt = next_try(&mut tries.lock().unwrap(), it.key);
                match step(&op, it, attempt) {
                    Step::Out(mut v) => Ok(v.remove(0)),
                    _ => Err(format!("{INJECTED} flaky failure, try {attempt}")),
                }
            })
        }
    }
}
