//! Stress: many seeded random pipelines, each under a watchdog, checked against the
//! sequential reference of the property tests (`properties/`), including stops and cancels
//! from a thread of their own while items flow.
//!
//! Each seed picks, with a small xorshift generator (so a seed names one pipeline on every
//! machine): 3–6 stages (maps, filters, flat-maps, `try_map`s and `try_flat_map`s that
//! return errors, maps and flat-maps that panic, flaky `try_map`s), each with 1–8 workers,
//! capacity 1–64, batch 1–256, ordered or not, an error policy, a response hook
//! ([`Stage::on_response`](millrace::Stage::on_response)) and a dead-letter handler or not;
//! the layout (each stage on its own workers, `fuse()`, or `autoscale()`); the source (an
//! iterator or a submitter thread); the sink (`outputs()`, `for_each` or `collect()`,
//! `respond()`, a failing `try_for_each`); the in-flight and reorder windows; and what
//! happens to the run:
//!
//! * it runs to its end (or is stopped by the consumer after some outputs) and is checked
//!   like `random_pipelines_match_the_sequential_reference`: outputs, counts, errors,
//!   dead letters, hook statuses and outcomes as the reference says;
//! * it is cancelled by the consumer after some outputs, and checked like
//!   `cancel_at_any_point_accounts_for_every_admitted_item`;
//! * another thread stops it once some items were finished: checked like a full run over
//!   the admitted prefix;
//! * another thread cancels it once some items were finished: the report balances (without
//!   flat-maps), the cancelled count is the unfinished list, no output comes twice and every
//!   one is a reference output (a prefix of them when the last stage is ordered), every
//!   admitted id is answered (exactly once without flat-maps), and hooks see every
//!   delivered item delivered and nothing twice.
//!
//! `MILLRACE_STRESS_RUNS` sets how many seeds run (default 40, so the normal suite stays
//! quick; CI runs a few hundred), `MILLRACE_STRESS_SEED` the first one (default 0): to
//! replay a failing seed, `MILLRACE_STRESS_SEED=<seed> MILLRACE_STRESS_RUNS=1`. Every seed
//! runs, and the test fails at the end listing each failing seed with its shape.
//!
//! No shape is left out: `outputs()` with a response hook and any `max_in_flight` (which
//! used to hang, issue 11) is generated like every other.

mod common;

#[allow(dead_code)]
#[path = "properties/check.rs"]
mod check;
#[allow(dead_code)]
#[path = "properties/model.rs"]
mod model;
#[allow(dead_code)]
#[path = "properties/reference.rs"]
mod reference;
#[allow(dead_code)]
#[path = "properties/run.rs"]
mod run;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use millrace::{Handle, Pipeline, RunErrorKind};

use check::{check, retries_cut_short, run_and_check_cancel, sorted, spawn_try_for_each};
use model::SINK;
use model::{Case, Item, Layout, Op, Policy, SinkFault, SinkMode, SourceMode, StageSpec};
use reference::{reference, Kind};
use run::{configure, items, outcome_kind, run_case, Observed, Shared};

/// How long one random pipeline may take before the watchdog calls it a hang.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Seeds run by default.
const DEFAULT_RUNS: u64 = 40;

/// xorshift64*, seeded through splitmix64 so that nearby seeds give unrelated streams.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn usize(&mut self, lo: usize, hi: usize) -> usize {
        self.range(lo as u64, hi as u64) as usize
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// An index into `weights`, picked in proportion to them.
    fn pick(&mut self, weights: &[u64]) -> usize {
        let mut r = self.next() % weights.iter().sum::<u64>();
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        unreachable!("r is below the sum of the weights")
    }

    /// A modulus in `lo..hi` and a residue below it: items go bad when `value % m == r`.
    fn mr(&mut self, lo: u64, hi: u64) -> (u64, u64) {
        let m = self.range(lo, hi - 1);
        (m, self.range(0, m - 1))
    }
}

fn op(rng: &mut Rng) -> Op {
    match rng.pick(&[3, 2, 2, 2, 1, 2, 1, 1, 1]) {
        0 => Op::Map {
            mul: rng.range(1, 3),
            add: rng.range(0, 8),
        },
        1 => {
            let (m, r) = rng.mr(2, 7);
            Op::Filter { m, r }
        }
        2 => Op::FlatMap {
            fan: rng.range(0, 3),
        },
        3 => {
            let (m, r) = rng.mr(3, 12);
            Op::TryMap { m, r }
        }
        4 => {
            let (m, r) = rng.mr(3, 12);
            Op::TryFlat {
                m,
                r,
                fan: rng.range(0, 3),
            }
        }
        5 => {
            let (m, r) = rng.mr(3, 12);
            Op::PanicMap { m, r }
        }
        6 => {
            let (m, r) = rng.mr(3, 12);
            Op::PanicFlat {
                m,
                r,
                fan: rng.range(1, 3),
            }
        }
        7 => {
            let (m, r) = rng.mr(3, 12);
            Op::TryPanic { m, r }
        }
        _ => Op::Flaky {
            k: rng.range(0, 3) as u32,
        },
    }
}

fn policy(rng: &mut Rng) -> Policy {
    match rng.pick(&[5, 3, 1, 1]) {
        0 => Policy::Skip,
        1 => Policy::Retry(rng.range(1, 4) as u32),
        2 => Policy::Stop,
        _ => Policy::RetryThenStop(rng.range(1, 3) as u32),
    }
}

fn stage_spec(rng: &mut Rng) -> StageSpec {
    let op = op(rng);
    // A quarter of the ops that have an async form run as async stages.
    let asynchronous = (op.has_async_form() && rng.chance(25)).then(|| rng.usize(1, 64));
    StageSpec {
        op,
        workers: rng.usize(1, 8),
        // Unset (the defaults: 16,384 items, an adaptive batch size) or set, small or large.
        capacity: (!rng.chance(20)).then(|| rng.usize(1, 64)),
        batch: match rng.pick(&[2, 2, 3]) {
            0 => Some(rng.usize(1, 8)),
            1 => Some(rng.usize(1, 256)),
            _ => None,
        },
        ordered: rng.chance(40),
        policy: rng.chance(50).then(|| policy(rng)),
        hook: rng.chance(30),
        dead_letter: rng.chance(30),
        asynchronous,
    }
}

/// What happens to a run besides its input.
#[derive(Clone, Copy, Debug)]
enum Action {
    /// Runs to its end, or is stopped by its consumer after `stop_after` outputs
    /// (the case's own `stop_after`).
    Full,
    /// Cancelled by its consumer after this many outputs or responses.
    ConsumerCancel(usize),
    /// Stopped by another thread once this many items were finished (any fate).
    RemoteStop(usize),
    /// Cancelled by another thread once this many items were finished.
    RemoteCancel(usize),
}

fn generate(seed: u64) -> (Case, Action) {
    let mut rng = Rng::new(seed);
    let sink = match rng.pick(&[2, 2, 2, 3, 2]) {
        0 => SinkMode::Outputs,
        1 => SinkMode::ForEach,
        2 => SinkMode::Respond,
        4 => SinkMode::ReplyTo,
        _ => SinkMode::TryForEach(match rng.pick(&[2, 1, 1]) {
            0 => {
                let (m, r) = rng.mr(3, 12);
                SinkFault::Error { m, r }
            }
            1 => {
                let (m, r) = rng.mr(3, 12);
                SinkFault::Panic { m, r }
            }
            _ => SinkFault::Flaky {
                k: rng.range(0, 3) as u32,
            },
        }),
    };
    let len = if rng.chance(10) {
        rng.usize(0, 3_000)
    } else {
        rng.usize(0, 300)
    };
    let input: Vec<u64> = (0..len).map(|_| rng.range(0, 999)).collect();
    let stage_count = rng.usize(3, 6);
    let mut stages: Vec<StageSpec> = (0..stage_count).map(|_| stage_spec(&mut rng)).collect();
    let default_policy = if matches!(sink, SinkMode::TryForEach(_)) {
        match rng.pick(&[1, 2, 1, 1]) {
            0 => Policy::Skip,
            1 => Policy::Retry(rng.range(1, 4) as u32),
            2 => Policy::Stop,
            _ => Policy::RetryThenStop(rng.range(1, 3) as u32),
        }
    } else if rng.chance(80) {
        Policy::Skip
    } else {
        policy(&mut rng)
    };
    let source = if rng.chance(30) {
        SourceMode::Submitter(rng.usize(1, 31))
    } else {
        SourceMode::Iter
    };
    let layout = match rng.pick(&[3, 1, 1, 1, 1]) {
        0 => Layout::Separate,
        1 => Layout::Fused,
        2 => Layout::Auto(rng.usize(1, 4)),
        3 => Layout::Lazy,
        _ => Layout::Adaptive,
    };
    if layout.equal_workers() {
        let workers = stages[0].workers;
        for spec in &mut stages {
            spec.workers = workers;
        }
    }
    let reorder_window = rng.chance(30).then(|| rng.usize(1, 64));
    let max_in_flight = rng.chance(30).then(|| rng.usize(1, 300));
    let sink_capacity = rng.chance(30).then(|| rng.usize(1, 64));
    let sink_batch = rng.chance(30).then(|| rng.usize(1, 256));
    let mut case = Case {
        input,
        stages,
        default_policy,
        source,
        sink,
        stop_after: None,
        reorder_window,
        max_in_flight,
        sink_capacity,
        sink_batch,
        layout,
    };
    let action = match rng.pick(&[4, 2, 2, 3]) {
        0 => {
            case.stop_after = rng.chance(30).then(|| rng.usize(0, 60));
            Action::Full
        }
        1 => {
            case.restrict_for_cancel();
            Action::ConsumerCancel(rng.usize(0, 60))
        }
        2 => {
            prepare_remote(&mut case, &mut rng);
            Action::RemoteStop(rng.usize(0, 50))
        }
        _ => {
            prepare_remote(&mut case, &mut rng);
            Action::RemoteCancel(rng.usize(0, 50))
        }
    };
    if case.sink == SinkMode::ReplyTo && !matches!(action, Action::Full) {
        // Replies are checked in whole runs; stops and cancels from elsewhere check the
        // serving form of the same response path.
        case.sink = SinkMode::Respond;
    }
    (case, action)
}

/// Makes a case for a stop or cancel from another thread: an iterator source (a
/// submitter's accepted count is what `run_case` checks the admitted count against), a
/// longer input, so that the stop or cancel lands while items flow, and mostly no stopping
/// policy, so that the run does not end on a failure first.
fn prepare_remote(case: &mut Case, rng: &mut Rng) {
    case.source = SourceMode::Iter;
    let len = rng.usize(500, 4_000);
    case.input = (0..len).map(|_| rng.range(0, 999)).collect();
    if rng.chance(75) {
        for spec in &mut case.stages {
            if spec.policy.is_some_and(Policy::stops) {
                spec.policy = Some(Policy::Skip);
            }
        }
        if case.default_policy.stops() {
            case.default_policy = Policy::Skip;
        }
    }
}

/// The case in a line: everything but the input values.
fn shape(case: &Case, action: Action) -> String {
    let stages: Vec<String> = case
        .stages
        .iter()
        .map(|s| {
            format!(
                "{:?} w{} c{:?} b{:?}{}{}{}{}",
                s.op,
                s.workers,
                s.capacity,
                s.batch,
                if s.ordered { " ordered" } else { "" },
                s.policy.map(|p| format!(" {p:?}")).unwrap_or_default(),
                if s.hook { " hook" } else { "" },
                if s.dead_letter { " dead-letter" } else { "" },
            )
        })
        .collect();
    format!(
        "{action:?}; {} items; source {:?}; stages [{}]; sink {:?} (capacity {:?}, batch {:?}); \
         default policy {:?}; layout {:?}; max_in_flight {:?}; reorder_window {:?}; \
         stop_after {:?}",
        case.input.len(),
        case.source,
        stages.join("; "),
        case.sink,
        case.sink_capacity,
        case.sink_batch,
        case.default_policy,
        case.layout,
        case.max_in_flight,
        case.reorder_window,
        case.stop_after,
    )
}

/// A thread that stops or cancels the run once `after` items were finished (delivered,
/// filtered or failed), unless the run ended first.
struct Remote {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Remote {
    fn start(handle: Handle, after: usize, cancel: bool) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let ended = Arc::clone(&done);
        let thread = std::thread::spawn(move || {
            while !ended.load(Ordering::Acquire) {
                let now = handle.snapshot();
                if now.delivered() + now.filtered() + now.failed() >= after as u64 {
                    if cancel {
                        handle.cancel();
                    } else {
                        handle.stop();
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Remote { done, thread }
    }

    /// Tells the thread the run has ended and waits for it.
    fn finish(self) {
        self.done.store(true, Ordering::Release);
        self.thread.join().expect("the stopping thread");
    }
}

/// Runs `case` with a stop or cancel from another thread once `after` items were
/// finished. The source is the case's iterator (a submitter source counts its own
/// accepted items: see `run_case`).
fn run_remote(case: &Case, after: usize, cancel: bool) -> Observed {
    let obs = Shared::default();
    let mut builder = Pipeline::source(items(case));
    if let Some(c) = case.sink_capacity {
        builder = builder.default_capacity(c);
    }
    if let Some(b) = case.sink_batch {
        builder = builder.default_batch(b);
    }
    let builder = configure(builder, case, &obs);
    let mut outputs = Vec::new();
    let mut responses = None;
    let result = match case.sink {
        SinkMode::Outputs => {
            let mut out = builder.outputs().expect("a valid pipeline builds");
            let remote = Remote::start(out.handle(), after, cancel);
            outputs.extend(out.by_ref());
            let result = out.finish();
            remote.finish();
            result
        }
        SinkMode::ForEach => {
            // `collect()`: the outputs come back with the run, or with its error.
            let running = builder.collect().spawn().expect("a valid pipeline builds");
            let remote = Remote::start(running.handle(), after, cancel);
            let result = running.join();
            remote.finish();
            match result {
                Ok(finished) => {
                    outputs = finished.output;
                    Ok(finished.report)
                }
                Err(mut e) => {
                    if let Some(got) = e.take_output() {
                        outputs = got;
                    }
                    Err(e)
                }
            }
        }
        SinkMode::TryForEach(fault) => {
            let (running, got) = spawn_try_for_each(builder, fault);
            let remote = Remote::start(running.handle(), after, cancel);
            let result = running.join().map(|f| f.report);
            remote.finish();
            outputs = std::mem::take(&mut *got.lock().unwrap());
            result
        }
        // `generate` gives remote stops and cancels a serving sink instead of replies.
        SinkMode::Respond | SinkMode::ReplyTo => {
            let (running, rx) = builder.respond().expect("a valid pipeline builds");
            let remote = Remote::start(running.handle(), after, cancel);
            let mut got = Vec::new();
            for (id, outcome) in rx {
                let (kind, item) = outcome_kind(outcome);
                if let Some(item) = &item {
                    outputs.push(item.clone());
                }
                got.push((id.0, kind, item));
            }
            responses = Some(got);
            let result = running.join().map(|f| f.report);
            remote.finish();
            result
        }
    };
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
    // Whether the stop landed before the run ended on its own is a race; the check then
    // holds the run to the end state it reports (and to admitting everything if it
    // completed).
    let stop_called = report.end() == millrace::EndState::Stopped;
    let hooks = std::mem::take(&mut *obs.hooks.lock().unwrap());
    let dead = std::mem::take(&mut *obs.dead.lock().unwrap());
    Observed {
        outputs,
        responses,
        replies: None,
        answered: Vec::new(),
        report,
        stopped_by,
        other_error,
        stop_called,
        submitted_ok: None,
        hooks,
        dead,
    }
}

/// Whether `kind` is a failure cut short by the cancel: fewer tries than the policy of
/// its stage (or of a `try_for_each` sink) allows.
fn cut_short(case: &Case, kind: &Kind) -> bool {
    match kind {
        Kind::Failed(stage, attempts, _) if stage == SINK => {
            *attempts < case.default_policy.attempts()
        }
        _ => retries_cut_short(case, kind),
    }
}

/// Checks a run cancelled from another thread: every admitted item accounted for, nothing
/// twice, everything that came out as the reference says.
fn check_remote_cancel(case: &Case, o: &Observed) {
    let report = &o.report;
    assert_eq!(
        o.other_error, None,
        "the run failed unexpectedly:\n{report}"
    );
    let admitted = report.items_in();
    assert!(admitted <= case.input.len() as u64);
    let full = reference(case, admitted as usize);
    assert!(report.is_balanced(), "a cancelled run balances:\n{report}");
    assert_eq!(report.cancelled(), report.unfinished().len() as u64);
    let unfinished: Vec<u64> = report.unfinished().iter().map(|id| id.0).collect();
    let unfinished_set: BTreeSet<u64> = unfinished.iter().copied().collect();
    if !case.expands() {
        assert_eq!(
            unfinished_set.len(),
            unfinished.len(),
            "each unfinished id once"
        );
    }
    assert!(unfinished.iter().all(|&id| id < admitted), "{unfinished:?}");

    // Outputs: nothing twice, each a reference output; a prefix of them when ordered.
    assert_eq!(
        report.delivered(),
        o.outputs.len() as u64,
        "delivered count"
    );
    let distinct: BTreeSet<&Item> = o.outputs.iter().collect();
    assert_eq!(distinct.len(), o.outputs.len(), "an output came twice");
    let possible: BTreeSet<&Item> = full.outputs.iter().collect();
    for item in &o.outputs {
        assert!(possible.contains(item), "not a reference output: {item:?}");
    }
    if case.last_ordered() && case.sink != SinkMode::Respond {
        assert_eq!(
            o.outputs[..],
            full.outputs[..o.outputs.len()],
            "ordered outputs are a prefix"
        );
    }

    // How many terminal events the reference has per id, after each position.
    let ends_after = |position: Option<usize>| {
        let mut per_id: BTreeMap<u64, usize> = BTreeMap::new();
        for e in &full.ends {
            if position.map_or(true, |h| e.1 > h) {
                *per_id.entry(e.0).or_default() += 1;
            }
        }
        per_id
    };

    // The origin of a serving pipeline: every admitted id answered, once without
    // flat-maps (a cancel can only replace a subtree of events with one); outcomes other
    // than cancelled are the reference's.
    if let Some(got) = &o.responses {
        let mut per_id: BTreeMap<u64, usize> = BTreeMap::new();
        for (id, _, _) in got {
            *per_id.entry(*id).or_default() += 1;
        }
        assert_eq!(
            per_id.keys().copied().collect::<Vec<_>>(),
            (0..admitted).collect::<Vec<_>>(),
            "every admitted id is answered"
        );
        let most = ends_after(None);
        for (id, n) in &per_id {
            let limit = if case.expands() {
                most.get(id).copied().unwrap_or(1).max(1)
            } else {
                1
            };
            assert!(*n <= limit, "id {id} answered {n} times, at most {limit}");
        }
        for (id, kind, item) in got {
            if *kind == Kind::Cancelled || cut_short(case, kind) {
                continue;
            }
            let fits = full
                .ends
                .iter()
                .any(|e| e.0 == *id && e.2 == *kind && e.3 == *item);
            assert!(fits, "outcome of item {id}: {kind:?} {item:?}");
        }
        if !case.expands() {
            let cancelled: Vec<u64> = sorted(
                got.iter()
                    .filter(|g| g.1 == Kind::Cancelled)
                    .map(|g| g.0)
                    .collect(),
            );
            assert_eq!(
                cancelled, unfinished,
                "cancelled outcomes are the unfinished ids"
            );
        }
    }

    // Hooks: a hooked stage sees every delivered item delivered, and no id more often
    // than the reference has terminal events for it after that stage.
    for (h, spec) in case.stages.iter().enumerate() {
        if !spec.hook {
            continue;
        }
        let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
        let mut delivered: BTreeMap<u64, usize> = BTreeMap::new();
        for (stage, id, kind) in &o.hooks {
            if *stage != h {
                continue;
            }
            *seen.entry(*id).or_default() += 1;
            if *kind == Kind::Delivered {
                *delivered.entry(*id).or_default() += 1;
            }
            if *kind != Kind::Cancelled && !cut_short(case, kind) {
                let fits = full
                    .ends
                    .iter()
                    .any(|e| e.0 == *id && e.1 > h && e.2 == *kind);
                assert!(fits, "hook of stage {h} saw {kind:?} for item {id}");
            }
        }
        let limit = ends_after(Some(h));
        for (id, n) in &seen {
            let most = limit.get(id).copied().unwrap_or(0);
            assert!(
                *n <= most,
                "hook of stage {h} saw item {id} {n} times, at most {most}"
            );
        }
        let mut want: BTreeMap<u64, usize> = BTreeMap::new();
        for item in &o.outputs {
            *want.entry(item.origin).or_default() += 1;
        }
        assert_eq!(delivered, want, "hook of stage {h}: deliveries");
    }
}

/// Runs one seed's case as its action says and checks it.
fn run_seed(case: &Case, action: Action) {
    match action {
        Action::Full => check(case, &run_case(case)),
        Action::ConsumerCancel(after) => run_and_check_cancel(case, after),
        Action::RemoteStop(after) => check(case, &run_remote(case, after, false)),
        Action::RemoteCancel(after) => check_remote_cancel(case, &run_remote(case, after, true)),
    }
}

/// Runs seed `seed` under the watchdog; the failure, if any.
fn try_seed(seed: u64) -> Result<(), String> {
    let (case, action) = generate(seed);
    let shape = shape(&case, action);
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("stress-{seed}"))
        .spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(|| run_seed(&case, action)));
            let _ = tx.send(outcome.map_err(|payload| {
                payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned())
            }));
        })
        .expect("spawn a stress run");
    match rx.recv_timeout(CASE_TIMEOUT) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(format!("seed {seed}: {message}\n  shape: {shape}")),
        Err(_) => Err(format!(
            "seed {seed}: hung (no end within {CASE_TIMEOUT:?})\n  shape: {shape}"
        )),
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a count: {e}")),
        Err(_) => default,
    }
}

#[test]
fn random_pipelines_hold_their_invariants_under_stops_and_cancels() {
    common::quiet_injected_panics();
    let first = env_u64("MILLRACE_STRESS_SEED", 0);
    let runs = env_u64("MILLRACE_STRESS_RUNS", DEFAULT_RUNS);
    let failures: Vec<String> = (first..first.saturating_add(runs))
        .filter_map(|seed| try_seed(seed).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {runs} stress runs failed (replay one with MILLRACE_STRESS_SEED=<seed> \
         MILLRACE_STRESS_RUNS=1):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
