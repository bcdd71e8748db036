//! Property tests: random pipelines against a sequential reference.
//!
//! A random pipeline has 1–6 stages of 1–8 workers each, input capacity 1–64, batch 1–256,
//! ordered or not, and each stage one of: a map, a filter, a flat-map, a `try_map` or
//! `try_flat_map` that returns errors, a map or flat-map that panics, a `try_map` that panics,
//! or a flaky `try_map` that fails the first k tries of each item; its error policy skips,
//! retries, or stops. Whether an item fails is a function of its value (and, for the flaky
//! stage, of its try), so a sequential reference that applies the same stage functions in
//! order predicts every output, every failure and every count.
//!
//! Each run is checked against the reference applied to the items the run admitted (all of
//! them, unless the run was stopped by the test or by a stopping error policy, which admits
//! a prefix): the same multiset of outputs (the same sequence when the last stage is
//! ordered), the same per-stage counts, the same errors, dead letters and response-hook
//! statuses, nothing cancelled, and — for serving pipelines — every item's outcomes back at
//! the origin exactly as the reference says (exactly one per id without flat-maps). Every run
//! has a timeout, so a hang fails the test.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use millrace::{
    ErrorPolicy, Handle, ItemId, Outcome, Pipeline, PipelineBuilder, Report, Retry, RunErrorKind,
    Stage, Status,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use common::{within, INJECTED};

/// How long one random pipeline may take before the test calls it a hang.
const CASE_TIMEOUT_S: u64 = 60;

/// The item type every random stage maps to itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Item {
    /// The id of the input item it came from.
    origin: u64,
    /// Unique among the items entering any one stage (flat-map children get `key·4 + j`).
    key: u64,
    value: u64,
}

#[derive(Clone, Debug)]
enum Op {
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
    fn fallible(&self) -> bool {
        matches!(
            self,
            Op::TryMap { .. } | Op::TryFlat { .. } | Op::TryPanic { .. } | Op::Flaky { .. }
        )
    }

    fn expands(&self) -> bool {
        matches!(
            self,
            Op::FlatMap { .. } | Op::TryFlat { .. } | Op::PanicFlat { .. }
        )
    }
}

#[derive(Clone, Copy, Debug)]
enum Policy {
    Skip,
    Retry(u32),
    Stop,
    RetryThenStop(u32),
}

impl Policy {
    fn to_policy(self) -> ErrorPolicy {
        let retry = |n| Retry::new(n).backoff(std::time::Duration::ZERO);
        match self {
            Policy::Skip => ErrorPolicy::Skip,
            Policy::Retry(n) => ErrorPolicy::Retry(retry(n)),
            Policy::Stop => ErrorPolicy::Stop,
            Policy::RetryThenStop(n) => ErrorPolicy::Retry(retry(n).then_stop()),
        }
    }

    fn attempts(self) -> u32 {
        match self {
            Policy::Retry(n) | Policy::RetryThenStop(n) => n.max(1),
            Policy::Skip | Policy::Stop => 1,
        }
    }

    fn stops(self) -> bool {
        matches!(self, Policy::Stop | Policy::RetryThenStop(_))
    }
}

#[derive(Clone, Debug)]
struct StageSpec {
    op: Op,
    workers: usize,
    capacity: usize,
    batch: usize,
    ordered: bool,
    policy: Option<Policy>,
    hook: bool,
    dead_letter: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SourceMode {
    Iter,
    /// Items pushed by a thread through a `Submitter` of this capacity.
    Submitter(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SinkMode {
    /// `outputs()`, consumed on the test thread.
    Outputs,
    /// `for_each` pushing into a vector.
    ForEach,
    /// `respond()`: outcomes back to the test thread.
    Respond,
}

#[derive(Clone, Debug)]
struct Case {
    input: Vec<u64>,
    stages: Vec<StageSpec>,
    default_policy: Policy,
    source: SourceMode,
    sink: SinkMode,
    /// Ask for a graceful stop once this many outputs (or responses) came out.
    stop_after: Option<usize>,
    reorder_window: Option<usize>,
    max_in_flight: Option<usize>,
    sink_capacity: Option<usize>,
    sink_batch: Option<usize>,
}

impl Case {
    fn policy(&self, stage: usize) -> Policy {
        self.stages[stage].policy.unwrap_or(self.default_policy)
    }

    fn any_stop_policy(&self) -> bool {
        (0..self.stages.len()).any(|i| self.policy(i).stops())
    }

    fn expands(&self) -> bool {
        self.stages.iter().any(|s| s.op.expands())
    }

    fn last_ordered(&self) -> bool {
        self.stages.last().is_some_and(|s| s.ordered)
    }
}

fn name(stage: usize) -> String {
    format!("s{stage}")
}

// ---------------------------------------------------------------------------------------
// The stage functions, shared by the pipeline and the reference.

/// What one try of one stage does with one item.
enum Step {
    Out(Vec<Item>),
    Filtered,
    Error,
    Panic,
}

fn child(item: &Item, j: u64) -> Item {
    Item {
        origin: item.origin,
        key: item.key * 4 + j,
        value: item.value.wrapping_add(7 * j + 1),
    }
}

fn children(item: &Item, fan: u64) -> Vec<Item> {
    (0..item.value % (fan + 1))
        .map(|j| child(item, j))
        .collect()
}

fn mapped(item: &Item, mul: u64, add: u64) -> Item {
    Item {
        value: item.value.wrapping_mul(mul).wrapping_add(add),
        ..item.clone()
    }
}

fn bumped(item: &Item) -> Item {
    Item {
        value: item.value + 1,
        ..item.clone()
    }
}

/// The reference's view of try number `attempt` of `op` on `item`.
fn step(op: &Op, item: &Item, attempt: u32) -> Step {
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

fn injected_panic(stage: &str, item: &Item) -> ! {
    panic!("{INJECTED} panic in {stage} on value {}", item.value)
}

/// The real stage for a spec.
fn build_stage(index: usize, spec: &StageSpec, case: &Case, obs: &Shared) -> Stage<Item, Item> {
    let stage_name = name(index);
    let n = stage_name.clone();
    let mut stage = match spec.op.clone() {
        Op::Map { mul, add } => Stage::map(&stage_name, move |it: Item| mapped(&it, mul, add)),
        Op::Filter { m, r } => Stage::filter(&stage_name, move |it: &Item| it.value % m != r),
        Op::FlatMap { fan } => Stage::flat_map(&stage_name, move |it: Item| children(&it, fan)),
        Op::TryMap { m, r } => Stage::try_map(&stage_name, move |it: &Item| {
            if it.value % m == r {
                Err(format!("{INJECTED} error on value {}", it.value))
            } else {
                Ok(bumped(it))
            }
        }),
        Op::TryFlat { m, r, fan } => Stage::try_flat_map(&stage_name, move |it: &Item| {
            if it.value % m == r {
                Err(format!("{INJECTED} error on value {}", it.value))
            } else {
                Ok(children(it, fan))
            }
        }),
        Op::PanicMap { m, r } => Stage::map(&stage_name, move |it: Item| {
            if it.value % m == r {
                injected_panic(&n, &it)
            }
            bumped(&it)
        }),
        Op::PanicFlat { m, r, fan } => Stage::flat_map(&stage_name, move |it: Item| {
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
        Op::TryPanic { m, r } => Stage::try_map(&stage_name, move |it: &Item| {
            if it.value % m == r {
                injected_panic(&n, it)
            }
            Ok::<_, String>(bumped(it))
        }),
        Op::Flaky { k } => {
            let tries: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
            let op = Op::Flaky { k };
            Stage::try_map(&stage_name, move |it: &Item| {
                let attempt = {
                    let mut tries = tries.lock().unwrap();
                    let t = tries.entry(it.key).or_insert(0);
                    *t += 1;
                    *t
                };
                match step(&op, it, attempt) {
                    Step::Out(mut v) => Ok(v.remove(0)),
                    _ => Err(format!("{INJECTED} flaky failure, try {attempt}")),
                }
            })
        }
    };
    stage = stage
        .workers(spec.workers)
        .capacity(spec.capacity)
        .batch(spec.batch);
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

// ---------------------------------------------------------------------------------------
// The sequential reference.

/// What became of one item (or flat-map child), as a hook or the origin would see it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Delivered,
    Filtered(String),
    /// Stage, attempts, panicked.
    Failed(String, u32, bool),
    Cancelled,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Counts {
    items_in: u64,
    items_out: u64,
    filtered: u64,
    failed: u64,
    retries: u64,
}

#[derive(Debug, Default)]
struct Reference {
    outputs: Vec<Item>,
    stages: Vec<Counts>,
    /// Terminal events: origin, position (stage index; the sink is `stages.len()`), what,
    /// and the output for deliveries.
    ends: Vec<(u64, usize, Kind, Option<Item>)>,
    /// Failures: origin, stage index, attempts, panicked, the key of the item if kept.
    failures: Vec<(u64, usize, u32, bool, Option<u64>)>,
}

fn reference(case: &Case, admitted: usize) -> Reference {
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

fn walk(case: &Case, s: usize, item: Item, r: &mut Reference) {
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

// ---------------------------------------------------------------------------------------
// Running a case.

/// A status a hook saw: the hooked stage's index, the item id, what became of it.
type HookSeen = (usize, u64, Kind);
/// A dead letter: the item id, the stage, the key of the item if the letter had it.
type DeadSeen = (u64, String, Option<u64>);

/// What hooks and dead-letter handlers saw, filled from the pipeline's threads.
#[derive(Default)]
struct Shared {
    hooks: Arc<Mutex<Vec<HookSeen>>>,
    dead: Arc<Mutex<Vec<DeadSeen>>>,
}

struct Observed {
    outputs: Vec<Item>,
    responses: Option<Vec<(u64, Kind, Option<Item>)>>,
    report: Report,
    /// The item error the run ended with, if it did.
    stopped_by: Option<(u64, String)>,
    other_error: Option<String>,
    stop_called: bool,
    submitted_ok: Option<u64>,
    hooks: Vec<HookSeen>,
    dead: Vec<DeadSeen>,
}

fn outcome_kind(outcome: Outcome<Item>) -> (Kind, Option<Item>) {
    match outcome {
        Outcome::Output(item) => (Kind::Delivered, Some(item)),
        Outcome::Filtered { stage } => (Kind::Filtered(stage.to_string()), None),
        Outcome::Failed(e) => (
            Kind::Failed(e.stage().to_owned(), e.attempts(), e.is_panic()),
            None,
        ),
        Outcome::Cancelled => (Kind::Cancelled, None),
        other => panic!("unknown outcome {other:?}"),
    }
}

fn run_case(case: &Case) -> Observed {
    let obs = Shared::default();
    let items: Vec<Item> = case
        .input
        .iter()
        .enumerate()
        .map(|(i, &value)| Item {
            origin: i as u64,
            key: i as u64,
            value,
        })
        .collect();

    let mut submit_thread = None;
    let mut builder: PipelineBuilder<Item> = match case.source {
        SourceMode::Iter => Pipeline::source(items),
        SourceMode::Submitter(cap) => {
            let (submitter, builder) = Pipeline::submitter::<Item>(cap);
            submit_thread = Some(std::thread::spawn(move || {
                let mut ok = 0u64;
                for item in items {
                    let expected = item.clone();
                    match submitter.submit(item) {
                        Ok(id) => {
                            assert_eq!(id, ItemId(ok), "submit ids count from 0");
                            ok += 1;
                        }
                        Err(e) => {
                            assert_eq!(e.into_inner(), expected, "a refused item comes back");
                            break;
                        }
                    }
                }
                ok
            }));
            builder
        }
    };
    builder = builder.on_error(case.default_policy.to_policy());
    if let Some(w) = case.reorder_window {
        builder = builder.reorder_window(w);
    }
    if let Some(m) = case.max_in_flight {
        builder = builder.max_in_flight(m);
    }
    if let Some(c) = case.sink_capacity {
        builder = builder.default_capacity(c);
    }
    if let Some(b) = case.sink_batch {
        builder = builder.default_batch(b);
    }
    for (i, spec) in case.stages.iter().enumerate() {
        builder = builder.stage(build_stage(i, spec, case, &obs));
    }

    let mut stop_called = false;
    let mut outputs = Vec::new();
    let mut responses = None;
    let result = match case.sink {
        SinkMode::Outputs => {
            let mut out = builder.outputs().expect("a valid pipeline builds");
            let handle = out.handle();
            if case.stop_after == Some(0) {
                handle.stop();
                stop_called = true;
            }
            for item in out.by_ref() {
                outputs.push(item);
                if case.stop_after == Some(outputs.len()) {
                    handle.stop();
                    stop_called = true;
                }
            }
            out.finish()
        }
        SinkMode::ForEach => {
            let cell: Arc<OnceLock<Handle>> = Arc::default();
            let called = Arc::new(AtomicBool::new(false));
            let got: Arc<Mutex<Vec<Item>>> = Arc::default();
            let (c, g, k) = (Arc::clone(&called), Arc::clone(&got), case.stop_after);
            let h = Arc::clone(&cell);
            let running = builder
                .for_each(move |item| {
                    let mut got = g.lock().unwrap();
                    got.push(item);
                    if k.is_some_and(|k| got.len() >= k) {
                        if let Some(handle) = h.get() {
                            handle.stop();
                            c.store(true, Ordering::SeqCst);
                        }
                    }
                })
                .spawn()
                .expect("a valid pipeline builds");
            cell.set(running.handle()).unwrap();
            if case.stop_after == Some(0) {
                running.stop();
                called.store(true, Ordering::SeqCst);
            }
            let result = running.join().map(|f| f.report);
            stop_called = called.load(Ordering::SeqCst);
            outputs = std::mem::take(&mut *got.lock().unwrap());
            result
        }
        SinkMode::Respond => {
            let (running, rx) = builder.respond().expect("a valid pipeline builds");
            if case.stop_after == Some(0) {
                running.stop();
                stop_called = true;
            }
            let mut got = Vec::new();
            for (id, outcome) in rx {
                let (kind, item) = outcome_kind(outcome);
                if let Some(item) = &item {
                    outputs.push(item.clone());
                }
                got.push((id.0, kind, item));
                if case.stop_after == Some(got.len()) {
                    running.stop();
                    stop_called = true;
                }
            }
            responses = Some(got);
            running.join().map(|f| f.report)
        }
    };
    let submitted_ok = submit_thread.map(|t| t.join().expect("the submitting thread"));
    let (report, stopped_by, other_error) = match result {
        Ok(report) => (report, None, None),
        Err(e) => {
            let report = e.report().expect("a run error carries its report").clone();
            match e.kind() {
                RunErrorKind::Item(item) => {
                    (report, Some((item.id().0, item.stage().to_owned())), None)
                }
                other => (report, None, Some(format!("{other:?}"))),
            }
        }
    };
    let hooks = std::mem::take(&mut *obs.hooks.lock().unwrap());
    let dead = std::mem::take(&mut *obs.dead.lock().unwrap());
    Observed {
        outputs,
        responses,
        report,
        stopped_by,
        other_error,
        stop_called,
        submitted_ok,
        hooks,
        dead,
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn check(case: &Case, o: &Observed) {
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
    if !case.expands() {
        assert!(report.is_balanced(), "the report balances:\n{report}");
    }

    // Outputs: the same sequence when the last stage is ordered, else the same multiset.
    if case.last_ordered() && case.sink != SinkMode::Respond {
        assert_eq!(o.outputs, r.outputs, "ordered outputs follow input order");
    } else {
        assert_eq!(sorted(o.outputs.clone()), sorted(r.outputs.clone()));
    }

    // Per-stage accounting.
    assert_eq!(report.source().tally.items_out, admitted as u64);
    assert_eq!(report.stages().len(), case.stages.len());
    for (i, (s, want)) in report.stages().iter().zip(&r.stages).enumerate() {
        assert_eq!(s.name, name(i));
        let t = &s.tally;
        let got = Counts {
            items_in: t.items_in,
            items_out: t.items_out,
            filtered: t.filtered,
            failed: t.failed,
            retries: t.retries,
        };
        assert_eq!(&got, want, "stage {i} counts:\n{report}");
        assert_eq!(t.cancelled, 0);
        assert_eq!(
            t.items_in,
            s.passed() + t.filtered + t.failed + t.cancelled,
            "stage {i}: in = passed + filtered + failed + cancelled"
        );
        if !case.stages[i].op.expands() {
            assert_eq!(
                s.passed(),
                t.items_out,
                "stage {i}: 1→1 forms pass what they emit"
            );
        }
    }
    assert_eq!(report.delivered(), r.outputs.len() as u64);
    assert_eq!(report.sink().tally.items_in, r.outputs.len() as u64);
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
            .map(|&(id, s, attempts, panicked, _)| (id, name(s), attempts, panicked))
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

    // How the run ended.
    let stopping_failures: Vec<(u64, String)> = r
        .failures
        .iter()
        .filter(|f| case.policy(f.1).stops())
        .map(|f| (f.0, name(f.1)))
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
    } else if o.stop_called {
        assert_eq!(end, millrace::EndState::Stopped);
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
}

// ---------------------------------------------------------------------------------------
// Strategies.

fn op() -> impl Strategy<Value = Op> {
    // Items go bad (filtered, failed) when `value % m == r`: filters drop 1 in 2–6,
    // failures hit 1 in 3–11, so several stages in a row still leave outputs.
    let mr = |lo: u64, hi: u64| (lo..hi).prop_flat_map(|m| (Just(m), 0..m));
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

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        5 => Just(Policy::Skip),
        3 => (1..5u32).prop_map(Policy::Retry),
        1 => Just(Policy::Stop),
        1 => (1..4u32).prop_map(Policy::RetryThenStop),
    ]
}

fn stage_spec(hooks: bool) -> impl Strategy<Value = StageSpec> {
    (
        op(),
        1..=8usize,
        1..=64usize,
        prop_oneof![1..=8usize, 1..=256usize],
        prop::bool::weighted(0.4),
        prop::option::weighted(0.5, policy()),
        prop::bool::weighted(if hooks { 0.3 } else { 0.0 }),
        prop::bool::weighted(0.3),
    )
        .prop_map(
            |(op, workers, capacity, batch, ordered, policy, hook, dead_letter)| StageSpec {
                op,
                workers,
                capacity,
                batch,
                ordered,
                policy,
                hook,
                dead_letter,
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    let sink = prop_oneof![
        Just(SinkMode::Outputs),
        Just(SinkMode::ForEach),
        Just(SinkMode::Respond)
    ];
    (sink, prop::bool::weighted(0.3)).prop_flat_map(|(sink, submitted)| {
        // Hooks are left out of `outputs()` runs: see the ignored test
        // `outputs_finish_returns_with_a_response_hook` in response_path.rs.
        let hooks = sink != SinkMode::Outputs;
        (
            prop::collection::vec(0..1000u64, 0..200),
            prop::collection::vec(stage_spec(hooks), 1..=6),
            prop_oneof![4 => Just(Policy::Skip), 1 => policy()],
            if submitted {
                (1..32usize).prop_map(SourceMode::Submitter).boxed()
            } else {
                Just(SourceMode::Iter).boxed()
            },
            prop::option::weighted(0.3, 0..60usize),
            prop::option::weighted(0.3, 1..=8usize),
            prop::option::weighted(0.3, 0..64usize),
            prop::option::weighted(0.3, 1..=64usize),
            prop::option::weighted(0.3, 1..=256usize),
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
                )| {
                    // The in-flight limit is kept at least the first stage's batch: a smaller
                    // one hangs (see `max_in_flight_below_the_batch_size_completes`).
                    let max_in_flight = extra.map(|e| stages[0].batch + e);
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
                    }
                },
            )
    })
}

/// A case for the cancel property: no flat-maps (so every id has one fate), no stopping
/// policies, a serving or an `outputs()` sink, and a cancel after `cancel_after` results.
fn cancel_case() -> impl Strategy<Value = (Case, usize)> {
    (case(), 0..40usize).prop_map(|(mut case, cancel_after)| {
        for spec in &mut case.stages {
            if spec.op.expands() {
                spec.op = Op::Map { mul: 1, add: 1 };
            }
            if spec.policy.is_some_and(Policy::stops) {
                spec.policy = Some(Policy::Skip);
            }
            spec.hook = false;
        }
        case.default_policy = Policy::Skip;
        case.stop_after = None;
        if case.sink == SinkMode::ForEach {
            case.sink = SinkMode::Respond;
        }
        (case, cancel_after)
    })
}

/// Runs `case`, cancelling once `cancel_after` outputs or responses came out, and checks
/// that every admitted item is accounted for once: finished as the reference says, or
/// listed as unfinished.
fn run_and_check_cancel(case: &Case, cancel_after: usize) {
    let items: Vec<Item> = case
        .input
        .iter()
        .enumerate()
        .map(|(i, &value)| Item {
            origin: i as u64,
            key: i as u64,
            value,
        })
        .collect();
    let obs = Shared::default();
    let mut builder = Pipeline::source(items);
    if let Some(w) = case.reorder_window {
        builder = builder.reorder_window(w);
    }
    if let Some(m) = case.max_in_flight {
        builder = builder.max_in_flight(m);
    }
    for (i, spec) in case.stages.iter().enumerate() {
        builder = builder.stage(build_stage(i, spec, case, &obs));
    }
    let full = reference(case, case.input.len());
    match case.sink {
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
fn retries_cut_short(case: &Case, kind: &Kind) -> bool {
    let Kind::Failed(stage, attempts, _) = kind else {
        return false;
    };
    let index = (0..case.stages.len())
        .find(|&i| name(i) == *stage)
        .expect("a failure names a stage of the pipeline");
    case.stages[index].op.fallible() && *attempts < case.policy(index).attempts()
}

/// Failing cases are saved beside the crate's sources, in `proptest-regressions/`.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/properties.txt",
        ))),
        ..ProptestConfig::with_cases(cases)
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
    /// outcome, or as cancelled and listed as unfinished; the report still balances.
    #[test]
    fn cancel_at_any_point_accounts_for_every_admitted_item((case, cancel_after) in cancel_case()) {
        let c = case.clone();
        within(CASE_TIMEOUT_S, move || run_and_check_cancel(&c, cancel_after));
    }
}
