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

pub(crate) mod fixed;
pub(crate) mod policy;
mod watch;
pub(crate) mod wedge;

use std::ops::Range;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::control::Control;
use crate::metrics::{StageMetrics, Tally};
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
    /// Fail the run with the diagnosis ([`RunErrorKind::Wedged`](crate::RunErrorKind::Wedged)) and cancel it.
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

/// A segment's name: its stages' names joined by `+` (`a+b+c`).
fn segment_name(metrics: &[Arc<StageMetrics>]) -> String {
    let names: Vec<&str> = metrics.iter().map(|m| &*m.name).collect();
    names.join("+")
}
