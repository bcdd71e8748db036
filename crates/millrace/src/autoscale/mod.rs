//! Autoscaling and the wedge detector: a controller thread that watches a running pipeline.
//!
//! # Autoscaling
//!
//! Stages marked [`auto_workers`](crate::Stage::auto_workers) (or every stage, with
//! [`PipelineBuilder::autoscale`](crate::PipelineBuilder::autoscale)) have their worker
//! counts set while the pipeline runs. The unit it sizes is the *segment*: adjacent auto
//! stages with equal bounds share workers unless
//! [`fuse_auto(false)`](crate::PipelineBuilder::fuse_auto), and each auto segment starts at
//! an even share of the CPU budget that fixed stages leave. Every tick (100 ms by default)
//! the controller samples each stage's counters, sums them per segment (items in at its
//! first stage, busy time of all its stages), feeds the [`policy`] (each segment's share of
//! the workers follows its share of the CPU cost per item, within the CPU budget, with
//! hysteresis), and applies its decisions:
//!
//! * **Adding** a worker starts a thread on the stage's shared inlet: no pause.
//! * **Removing** one lowers the stage's target; the first worker to finish its current
//!   batch above the target flushes its output and exits. No item is lost or duplicated,
//!   and ordering is unaffected (order is restored by sequence number, not by worker).
//!
//! Every decision and the worker counts over time go into the report.
//!
//! # Fixed stages with more workers than cores
//!
//! A fixed stage (`.workers(n)`) with more workers than the CPU budget starts at one worker
//! (see [`PipelineBuilder::lazy_workers`](crate::PipelineBuilder::lazy_workers)). Each
//! tick, if its workers were at least 90% busy over the tick, less the time they waited
//! for a core ([`crate::runqueue`]), and none of them waits at that moment (for input or
//! for room), the controller doubles its workers, up to `n`. A stage whose workers block in
//! its code (a synchronous wait) reaches its count within a few ticks; the extra workers
//! of a cheap stage, which would mostly wait for input or for a core and cost wake-ups,
//! are never started. Workers once started stay. A run of such stages fused at the start
//! grows the same way, and is judged for a split only once it has its count (the split
//! is looked at before growth in each tick, so at the soonest a tick after that). A worker
//! consuming the sink's batches itself (see `pipeline::sink::direct`) counts as waiting for
//! room meanwhile, as it would sending them: a tick that finds one there does not grow.
//!
//! # Wedge detection
//!
//! With [`PipelineBuilder::wedge_timeout`](crate::PipelineBuilder::wedge_timeout), the
//! controller also notices when nothing has moved for that long while items are in flight,
//! and writes a diagnosis: for each stage, what each worker is doing and since when (stuck
//! in user code, waiting for input on an empty queue, blocked on a full one). By policy it
//! keeps waiting or fails the run with that diagnosis.
//!
//! # The timeline
//!
//! The same thread samples every part's counters into the run's
//! [timeline](crate::timeline) each time a sample is due (every 100 ms by default). When
//! it only samples (no autoscaled stage, no lazily started stage below its count, no wedge
//! watch) and nothing moved since the last
//! sample, it waits twice as long before the next look, up to 1.6 s, and is back at the
//! interval as soon as something moves: an idle pipeline costs about one wake-up a second.

pub(crate) mod policy;
pub(crate) mod wedge;

use std::ops::Range;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::control::Control;
use crate::error::RunErrorKind;
use crate::metrics::{Activity, StageMetrics, Tally};
use crate::sync::lock;
pub use policy::{Decision, DecisionReason};
use policy::{Policy, StageSample};
pub use wedge::{RunningHook, Wedge, WedgedPart, WorkerActivity, WorkerState};

/// The longest the controller waits between two looks at an idle run when it only samples
/// the timeline (its wait doubles from the interval while nothing moves).
const IDLE_WAIT: Duration = Duration::from_millis(1600);

/// What to do when the pipeline is wedged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WedgePolicy {
    /// Record the diagnosis in the report and keep waiting.
    Report,
    /// Fail the run with the diagnosis ([`RunErrorKind::Wedged`]) and cancel it.
    Fail,
}

/// A stage whose worker count the controller can change.
pub(crate) trait Scalable: Send + Sync {
    /// Sets the stage's target worker count (starting workers at once, retiring lazily).
    /// Returns `false` if the stage has ended, so nothing changed.
    fn resize(&self, workers: usize) -> bool;
    /// Starts workers until the stage has `workers`, leaving its target as it is.
    /// Returns `false` if the stage has ended.
    fn grow_to(&self, workers: usize) -> bool;
    /// Hands a segment of stages fused at the start over to a segment each. Returns
    /// `false` if the segment has ended, cannot split, or was asked already.
    fn split(&self) -> bool {
        false
    }
}

/// One autoscaled segment as the controller sees it.
pub(crate) struct AutoStage {
    /// The stages of its segment: several when fused, sharing its workers.
    pub(crate) stages: Range<usize>,
    pub(crate) min: usize,
    pub(crate) max: usize,
    pub(crate) scaler: Arc<dyn Scalable>,
}

/// A fixed segment that started fewer workers than its count; the controller starts the
/// rest while all of them are busy.
pub(crate) struct LazyStage {
    /// The stages of its segment.
    pub(crate) stages: Range<usize>,
    /// The worker count the user set.
    pub(crate) count: usize,
    pub(crate) scaler: Arc<dyn Scalable>,
}

/// A run of fixed stages fused at the start (see `plan::fuse_at_the_start`); the controller
/// splits it into a segment per stage once its workers are all busy.
pub(crate) struct SplitStage {
    /// The stages of the fused segment.
    pub(crate) stages: Range<usize>,
    /// Whether the source is cut on the run's workers (see `segment::pulled_source`): its
    /// time is then the run's too, and it splits off with the stages.
    pub(crate) with_source: bool,
    pub(crate) scaler: Arc<dyn Scalable>,
}

/// The least time the parts of a fused run (each stage, and the source fused with it) must
/// spend on a batch, on average, for the run to split: split, every batch crosses a connector between
/// parts, and a hand-off where one side waits (a wake-up) costs 1–5 µs on the VMs we
/// measure on. W1 written with `.capacity(1024)` and one worker per stage (256-item batches,
/// well under a microsecond per stage) split on 16 cores and ran at 92 M items/s, against
/// 108 M unfused and more fused (`BENCHMARKS.md`).
const SPLIT_WORTH: Duration = Duration::from_micros(5);

/// The least time the parts of a fused run must spend on an item, on average, for the run
/// to split, so
/// that large batches of cheap items stay fused too: split, every item also moves between
/// cores once per part, and a nanosecond stage gains nothing from a core of its own. Ten
/// W6-shaped hops (under a nanosecond each) ran at 1.5 G hops/s per core fused on one
/// thread, 0.3–0.9 G split (the scale sweep in `BENCHMARKS.md`); W2's 1 µs stages still
/// split.
const SPLIT_WORTH_PER_ITEM: Duration = Duration::from_nanos(50);

/// Whether `busy` time over `batches` and `items` is, on average, at least [`SPLIT_WORTH`] a
/// batch and [`SPLIT_WORTH_PER_ITEM`] an item: work that gains from a thread of its own
/// rather than costing about as much to hand over. Decides a fused run's split and when a
/// sink consumed on the worker in front of it gets its thread back.
pub(crate) fn worth_a_thread(busy: Duration, batches: u64, items: u64) -> bool {
    let worth = |count: u64, least: Duration| {
        count > 0 && busy.as_nanos() / u128::from(count) >= least.as_nanos()
    };
    worth(batches, SPLIT_WORTH) && worth(items, SPLIT_WORTH_PER_ITEM)
}

/// The least share of a lazily started segment's worker time spent busy over a tick for
/// it to grow (and of a fused run's, for it to split).
const SATURATED: f64 = 0.9;

pub(crate) struct ControllerSettings {
    pub(crate) interval: Duration,
    pub(crate) budget: usize,
    pub(crate) wedge: Option<(Duration, WedgePolicy)>,
    /// How often the timeline samples (`None`: not at all).
    pub(crate) timeline: Option<Duration>,
    /// Every segment's stages, in order: the units the policy sizes.
    pub(crate) segments: Vec<Range<usize>>,
}

/// Starts the controller thread; it ends when `done` disconnects.
pub(crate) fn spawn_controller(
    control: Arc<Control>,
    autos: Vec<AutoStage>,
    lazies: Vec<LazyStage>,
    splits: Vec<SplitStage>,
    settings: ControllerSettings,
    done: Receiver<()>,
) -> std::io::Result<JoinHandle<()>> {
    let body = control.trace.in_thread("millrace-controller", {
        let control = Arc::clone(&control);
        move || Controller::new(control, autos, lazies, splits, settings).run(&done)
    });
    std::thread::Builder::new()
        .name("millrace-controller".into())
        .spawn(body)
}

struct Controller {
    control: Arc<Control>,
    autos: Vec<AutoStage>,
    lazies: Vec<LazyStage>,
    /// The fused runs not split yet.
    splits: Vec<SplitStage>,
    settings: ControllerSettings,
    policy: Policy,
    last: Vec<Tally>,
    /// Every stage's counters at the last look at the lazy segments and the fused runs,
    /// batches in progress counted as busy.
    busy_last: Vec<Tally>,
    /// The source's counters at that look (a source fused with a run is part of its work).
    source_last: Tally,
    /// The fused runs' workers' waits for a core at that look.
    waits: crate::runqueue::Waits,
    /// The lazily started segments' workers' waits for a core at that look.
    growth_waits: crate::runqueue::Waits,
    progress: u64,
    last_progress: Instant,
    wedged: bool,
}

impl Controller {
    fn new(
        control: Arc<Control>,
        autos: Vec<AutoStage>,
        lazies: Vec<LazyStage>,
        splits: Vec<SplitStage>,
        settings: ControllerSettings,
    ) -> Self {
        let policy = Policy::new(settings.segments.len(), settings.budget);
        let last: Vec<Tally> = control.ledger.stages.iter().map(|m| m.tally()).collect();
        let source_last = control.ledger.source.tally();
        Controller {
            control,
            autos,
            lazies,
            splits,
            settings,
            policy,
            busy_last: last.clone(),
            source_last,
            waits: crate::runqueue::Waits::default(),
            growth_waits: crate::runqueue::Waits::default(),
            last,
            progress: 0,
            last_progress: Instant::now(),
            wedged: false,
        }
    }

    fn run(mut self, done: &Receiver<()>) {
        // The worker counts over time start when the autoscaler or the wedge watch does
        // (the timeline alone has its own counts).
        if self.sizes() || self.settings.wedge.is_some() {
            let workers = self.workers();
            lock(&self.control.ledger.scaling)
                .history
                .push((self.control.signals.now(), workers));
        }
        let tick = self.tick();
        // The controller wakes at the finer of the autoscale and timeline intervals; it sizes
        // and splits segments only every autoscale interval (so that a longer one holds).
        let decide_every = (self.settings.interval.as_nanos() / tick.as_nanos().max(1)).max(1);
        let mut ticks: u128 = 0;
        let mut wait = tick;
        let mut start = Instant::now();
        loop {
            // Sampling alone backs off while nothing moves, up to IDLE_WAIT; so does a
            // controller whose lazily started segments have all reached their counts.
            let sampling_only = self.autos.is_empty()
                && !self.lazy_below_count()
                && self.splits.is_empty()
                && self.settings.wedge.is_none();
            if self.settings.timeline.is_some() {
                let idle = self.control.ledger.sample(self.control.signals.now());
                wait = if idle && sampling_only {
                    (wait * 2).min(IDLE_WAIT.max(tick))
                } else {
                    tick
                };
            }
            lock(&self.control.ledger.scaling).controller_busy += start.elapsed();
            match done.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            start = Instant::now();
            if let Some((after, policy)) = self.settings.wedge {
                self.watch(after, policy);
            }
            ticks += 1;
            if ticks % decide_every != 0 {
                continue;
            }
            if !self.autos.is_empty() {
                self.scale();
            }
            // Workers only grow (once every lazy segment has its count, nothing is left), and
            // a fused run splits once: both look at how busy a segment was since the last
            // look, which both keep on every tick until they are done.
            let lazy = self.lazy_below_count();
            if lazy || !self.splits.is_empty() {
                let at = self.control.signals.now();
                let now: Vec<Tally> = (self.control.ledger.stages.iter())
                    .map(|m| m.tally_at(Some(at)))
                    .collect();
                let source = self.control.ledger.source.tally_at(Some(at));
                // A fused run that started lazily grows to its count before it may split,
                // and splits a tick after it got there at the soonest.
                self.split_busy(&now, &source);
                if lazy {
                    self.grow_lazy(&now);
                }
                self.busy_last = now;
                self.source_last = source;
            }
        }
    }

    /// Whether it sizes any segment (autoscaled, or started lazily).
    fn sizes(&self) -> bool {
        !self.autos.is_empty() || !self.lazies.is_empty() || !self.splits.is_empty()
    }

    /// Whether a lazily started segment has fewer workers than its count.
    fn lazy_below_count(&self) -> bool {
        self.lazies
            .iter()
            .any(|lazy| self.control.ledger.stages[lazy.stages.start].workers() < lazy.count)
    }

    /// How often the thread wakes: the autoscaling interval if it sizes segments or
    /// watches for wedges, the timeline's if it samples, the shorter if both.
    fn tick(&self) -> Duration {
        let controls = self.sizes() || self.settings.wedge.is_some();
        match (
            controls.then_some(self.settings.interval),
            self.settings.timeline,
        ) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(self.settings.interval),
        }
    }

    fn workers(&self) -> Vec<usize> {
        self.control
            .ledger
            .stages
            .iter()
            .map(|m| m.workers())
            .collect()
    }

    fn scale(&mut self) {
        let now: Vec<Tally> = self
            .control
            .ledger
            .stages
            .iter()
            .map(|m| m.tally())
            .collect();
        let samples: Vec<StageSample> = self
            .settings
            .segments
            .iter()
            .map(|segment| {
                let auto = self.autos.iter().find(|a| a.stages == *segment);
                segment_sample(
                    &self.control.ledger.stages[segment.clone()],
                    &now[segment.clone()],
                    &self.last[segment.clone()],
                    auto,
                )
            })
            .collect();
        self.last = now;
        let mut decisions = self.policy.tick(&samples);
        // Apply each; a segment that has ended keeps the count it ended with.
        decisions.retain_mut(|d| {
            // The policy counts segments; the report names the segment's first stage.
            let segment = self.settings.segments[d.stage].clone();
            d.stage = segment.start;
            let Some(auto) = self.autos.iter().find(|a| a.stages == segment) else {
                return false;
            };
            let metrics = &self.control.ledger.stages[segment];
            recorded_then(metrics, d.to, || auto.scaler.resize(d.to))
        });
        self.record(decisions);
    }

    /// Doubles the workers of each lazily started segment whose workers were busy through
    /// the last tick and none of which waits now (for input or for room), up to its count.
    /// Busy means running (or blocked) in the stages' code: the time the workers waited for
    /// a core is taken off (see [`crate::runqueue`]), so a cheap stage whose workers already
    /// take every core it can get does not start more that would only wait for one.
    fn grow_lazy(&mut self, now: &[Tally]) {
        let stages = &self.control.ledger.stages;
        let mut decisions = Vec::new();
        for lazy in &self.lazies {
            let segment = lazy.stages.clone();
            let metrics = &stages[segment.clone()];
            let workers = metrics[0].workers();
            if workers >= lazy.count {
                continue; // (it never grows again: its waits need no more reads)
            }
            let preempted = waited_for_a_core(&mut self.growth_waits, metrics);
            let busy_share = busy_share(
                &now[segment.clone()],
                &self.busy_last[segment.clone()],
                preempted,
            );
            if busy_share < SATURATED || waiting(metrics) > 0 {
                continue;
            }
            let to = (workers * 2).min(lazy.count);
            if !recorded_then(metrics, to, || lazy.scaler.grow_to(to)) {
                continue;
            }
            decisions.push(Decision {
                stage: segment.start,
                name: segment_name(metrics),
                from: workers,
                to,
                reason: DecisionReason::AllBusy {
                    stage: segment_name(metrics),
                    count: lazy.count,
                    busy_share,
                },
            });
        }
        self.record(decisions);
    }

    /// Splits each run of stages fused at the start whose workers were busy through the last
    /// tick, none of which waits now (for input or for room), and whose parts spent on
    /// average at least [`SPLIT_WORTH`] on a batch and [`SPLIT_WORTH_PER_ITEM`] on an item
    /// (less the time the run's workers waited for a core, see [`crate::runqueue`]):
    /// its stages then run at once, on workers of their own, rather than in turn on the same
    /// ones. (`source`: the source's counters now.)
    fn split_busy(&mut self, now: &[Tally], source: &Tally) {
        let stages = &self.control.ledger.stages;
        let (busy_last, source_last) = (&self.busy_last, &self.source_last);
        let waits = &mut self.waits;
        let lazies = &self.lazies;
        let mut decisions = Vec::new();
        self.splits.retain(|run| {
            let segment = run.stages.clone();
            let metrics = &stages[segment.clone()];
            // The run's parts: its stages, and the source if it is cut on the run's workers.
            let mut parts_now = now[segment.clone()].to_vec();
            let mut parts_before = busy_last[segment.clone()].to_vec();
            if run.with_source {
                parts_now.push(source.clone());
                parts_before.push(source_last.clone());
            }
            // Time the run's workers spent waiting for a core is not the parts' work: on a
            // machine whose cores are all taken, a preempted batch is timed long. (Read at
            // every look, so that each wait counts against the tick it fell in.)
            let preempted = waited_for_a_core(waits, metrics);
            let busy_share = busy_share(&parts_now, &parts_before, Duration::ZERO);
            if busy_share < SATURATED || waiting(metrics) > 0 {
                return true;
            }
            // A run that started lazily below its count grows first: a stage whose calls
            // wait for one another gets them all at once, and a worker blocked in a stage
            // would never hand over. (At its count, a worker that leaves at the split hands
            // its slot to the stages' own workers, who meet the calls still waiting.)
            if lazies
                .iter()
                .any(|lazy| lazy.stages == segment && metrics[0].workers() < lazy.count)
            {
                return true;
            }
            let (first_now, first_before) = (&now[segment.start], &busy_last[segment.start]);
            let batches = first_now.batches.saturating_sub(first_before.batches);
            let items = first_now.items_in.saturating_sub(first_before.items_in);
            let busy: Duration = (parts_now.iter().zip(&parts_before))
                .map(|(now, before)| now.busy.saturating_sub(before.busy))
                .sum::<Duration>()
                .saturating_sub(preempted);
            let per_part = busy / u32::try_from(parts_now.len()).unwrap_or(u32::MAX);
            if !worth_a_thread(per_part, batches, items) {
                return true;
            }
            if run.scaler.split() {
                let workers = metrics[0].workers();
                decisions.push(Decision {
                    stage: segment.start,
                    name: segment_name(metrics),
                    from: workers,
                    to: workers,
                    reason: DecisionReason::Split {
                        stages: segment_name(metrics),
                        busy_share,
                    },
                });
            }
            false
        });
        self.record(decisions);
    }

    /// Logs applied decisions with the worker counts after them.
    fn record(&self, decisions: Vec<Decision>) {
        if decisions.is_empty() {
            return;
        }
        let at = self.control.signals.now();
        let workers = self.workers();
        decisions.iter().for_each(crate::trace::decision);
        let mut log = lock(&self.control.ledger.scaling);
        log.decisions.extend(decisions.into_iter().map(|d| (at, d)));
        log.history.push((at, workers));
    }

    fn watch(&mut self, after: Duration, policy: WedgePolicy) {
        let c = &self.control;
        let relayed: u64 = lock(&c.ledger.relays)
            .iter()
            .map(|r| r.relayed.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        let progress = c.ledger.source.tally().items_out
            + c.ledger.sink.tally().items_in
            + c.ledger
                .stages
                .iter()
                .map(|m| m.tally().items_in)
                .sum::<u64>()
            + relayed;
        if progress != self.progress {
            self.progress = progress;
            self.last_progress = Instant::now();
            self.wedged = false;
            return;
        }
        let stalled = self.last_progress.elapsed();
        if self.wedged || stalled < after || !in_flight(c) {
            return;
        }
        self.wedged = true;
        let diagnosis = diagnose(c, stalled);
        crate::trace::wedge(&diagnosis);
        lock(&c.ledger.scaling)
            .wedges
            .push((c.signals.now(), diagnosis.clone()));
        if policy == WedgePolicy::Fail {
            c.fail_hard(RunErrorKind::Wedged(diagnosis));
            // `join` stops waiting for the sink: threads stuck for good are detached.
            c.signals.signal_end();
        }
    }
}

/// What one segment did over the last tick, from its stages' counters now and before: its
/// items are what its first stage took in, its busy time is all its stages' together.
fn segment_sample(
    metrics: &[Arc<StageMetrics>],
    now: &[Tally],
    before: &[Tally],
    auto: Option<&AutoStage>,
) -> StageSample {
    let delta = |time: fn(&Tally) -> Duration| -> Duration {
        now.iter()
            .zip(before)
            .map(|(now, before)| time(now).saturating_sub(time(before)))
            .sum()
    };
    let busy = delta(|t| t.busy);
    let total = (busy + delta(|t| t.idle) + delta(|t| t.blocked)).as_secs_f64();
    let first = &metrics[0];
    let queue_fill = if first.queue_capacity > 0 {
        now[0].queue_mean / first.queue_capacity as f64
    } else {
        0.0
    };
    StageSample {
        name: segment_name(metrics),
        auto: auto.is_some(),
        workers: first.workers(),
        min: auto.map_or(1, |a| a.min),
        max: auto.map_or(usize::MAX, |a| a.max),
        items: now[0].items_in - before[0].items_in,
        busy_ns: busy.as_nanos() as u64,
        busy_share: if total > 0.0 {
            busy.as_secs_f64() / total
        } else {
            0.0
        },
        queue_fill: queue_fill.min(1.0),
    }
}

/// A segment's name: its stages' names joined by `+` (`a+b+c`).
/// Records `to` as the workers of a segment's stages, then changes them with `change`
/// (whether it did); the count before comes back if it did not. Recorded first: the new
/// workers may finish the run at once, and its report must not show the old count (the
/// `lazy_workers` doc example reported 8 of its 16 workers once under CI load).
fn recorded_then(metrics: &[Arc<StageMetrics>], to: usize, change: impl FnOnce() -> bool) -> bool {
    let from = metrics[0].workers();
    metrics.iter().for_each(|m| m.set_workers(to));
    let changed = change();
    if !changed {
        metrics.iter().for_each(|m| m.set_workers(from));
    }
    changed
}

fn segment_name(metrics: &[Arc<StageMetrics>]) -> String {
    let names: Vec<&str> = metrics.iter().map(|m| &*m.name).collect();
    names.join("+")
}

/// How long the workers of the segment whose stages are `metrics` waited for a core since
/// `waits` last looked at them (their thread ids are kept in the last stage's slots, see
/// `segment::worker::run_worker`).
fn waited_for_a_core(
    waits: &mut crate::runqueue::Waits,
    metrics: &[Arc<StageMetrics>],
) -> Duration {
    let tids = metrics[metrics.len() - 1]
        .slots()
        .map(|slot| slot.thread_id.load(std::sync::atomic::Ordering::Relaxed))
        .filter(|&tid| tid != 0);
    waits.since_last(tids)
}

/// The share of a segment's worker time spent busy between two tallies (0 when nothing
/// was measured).
fn busy_share(now: &[Tally], before: &[Tally], less: Duration) -> f64 {
    let delta = |time: fn(&Tally) -> Duration| -> f64 {
        now.iter()
            .zip(before)
            .map(|(now, before)| time(now).saturating_sub(time(before)))
            .sum::<Duration>()
            .as_secs_f64()
    };
    let busy = delta(|t| t.busy);
    let total = busy + delta(|t| t.idle) + delta(|t| t.blocked);
    let busy = (busy - less.as_secs_f64()).max(0.0);
    if total > 0.0 {
        busy / total
    } else {
        0.0
    }
}

/// How many of a segment's workers wait now, for input or for room downstream. (One that is
/// between two batches, or ready to run but without a core, does not count: on a busy
/// machine the workers of a stage that blocks in its code are often there.)
fn waiting(metrics: &[Arc<StageMetrics>]) -> usize {
    metrics
        .iter()
        .map(|m| {
            m.slots()
                .filter(|slot| matches!(slot.activity().0, Activity::Idle | Activity::Blocked))
                .count()
        })
        .sum()
}

/// Whether items were admitted that have not yet ended somewhere, or a response hook is
/// still running on some.
fn in_flight(c: &Control) -> bool {
    if lock(&c.ledger.relays).iter().any(|r| r.busy().is_some()) {
        return true;
    }
    let ended: u64 = c
        .ledger
        .stages
        .iter()
        .map(|m| {
            let t = m.tally();
            t.filtered + t.failed + t.cancelled
        })
        .sum::<u64>()
        + c.ledger.sink.tally().items_in;
    c.ledger.source.tally().items_out > ended
}

/// What every worker is doing, and since when: the wedge diagnosis.
pub(crate) fn diagnose(c: &Control, stalled: Duration) -> Wedge {
    let now = c.signals.now();
    let mut wedge = Wedge {
        stalled,
        ..Wedge::default()
    };
    let parts = std::iter::once(&c.ledger.source)
        .chain(&c.ledger.stages)
        .chain(std::iter::once(&c.ledger.sink));
    for m in parts {
        let tally = m.tally();
        let mut workers = Vec::new();
        // Every slot: a live worker's may be any of them once workers retired and others
        // took their places; a retired worker's slot reads "between batches".
        for (worker, slot) in m.slots().enumerate() {
            let (activity, since) = slot.activity();
            let activity = match activity {
                Activity::Busy => WorkerActivity::InStageCode,
                Activity::Blocked => WorkerActivity::BlockedOnOutput,
                Activity::Idle => WorkerActivity::WaitingForInput,
                Activity::Between => continue,
            };
            workers.push(WorkerState {
                worker,
                activity,
                since: now.saturating_sub(since),
            });
        }
        if workers.is_empty() && tally.in_flight == 0 {
            continue;
        }
        wedge.parts.push(WedgedPart {
            name: m.name.to_string(),
            workers,
            in_flight: tally.in_flight,
            queue_fill: (m.queue_capacity > 0)
                .then(|| (tally.queue_mean / m.queue_capacity as f64).min(1.0)),
        });
    }
    for relay in lock(&c.ledger.relays).iter() {
        if let Some(since) = relay.busy() {
            wedge.hooks.push(RunningHook {
                stage: relay.stage.to_string(),
                running_for: now.saturating_sub(since),
            });
        }
    }
    wedge
}
