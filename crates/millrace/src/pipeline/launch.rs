//! Launching a pipeline: from a checked plan to running threads.
//!
//! The builder records a plan (each stage's settings) and a chain of closures, one per
//! stage, that each launch their stage given the inlet of the stage before. [`Launch`]
//! resolves the plan first ([`super::plan`]: defaults, segments, autoscaled sizes), when
//! every stage is known, because a stage's behaviour depends on what comes after it:
//!
//! * **Emit mode.** A stage with an ordered stage somewhere after it keeps batches whole and
//!   numbered (see [`EmitMode`]); otherwise it re-batches freely.
//! * **Output batch size** is the next connector's [`BatchSize`](crate::batch_size::BatchSize):
//!   pinned, or adapting while the run goes (the sink's connector takes the defaults).
//! * **Windows.** Each ordered stage gets a reorder window; the producer that numbers its
//!   batches (the source, or the previous ordered stage) admits through it.
//! * **Response routes.** An item that ends in stage `k` is answered to the nearest stage
//!   before `k` with a hook, else to the origin. Each hooked stage gets a relay thread.

use std::ops::Range;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Receiver};

use crate::autoscale::{spawn_controller, AutoStage, ControllerSettings, LazyStage, SplitStage};
use crate::batch_size::BatchSize;
use crate::connector::{connector, Inlet, Outlet};
use crate::control::Control;
use crate::error::BuildError;
use crate::item::ItemId;
use crate::ledger::RelayWatch;
use crate::metrics::StageMetrics;
use crate::response::{
    relay, Hook, Listener, ResponseBatch, ResponseDrain, Responses, TakeReplies, Upstream,
};
use crate::segment::pull::MakePull;
use crate::segment::pulled_source::PulledSource;
use crate::sync::lock;
use crate::window::Window;

#[cfg(feature = "async")]
use super::plan::DEFAULT_CONCURRENCY;
use super::plan::{batch_for, batches, resolve, Resolution, Resolved, Settings, StagePlan};
use super::sink::{SinkCtx, SINK};
use super::source::{run_let_go, Credits, Cut, LetGo, SourceCtx, SOURCE_THREAD};
use super::submitter::{run_submitted, SubmitShared};

/// The batch limit of the connector into the first stage below which an iterator source is
/// read on the workers of a run fused at the start rather than on its own thread (see
/// `segment::pulled_source`). Small batches cost a hand-off every few hundred items, which
/// cheap stages cannot amortise; large ones cost little, and a source on its own thread runs
/// beside the run. W1 with one worker per stage, M items/s by `.capacity` (batch limit a
/// quarter of it), source read on the worker / on its own thread, two cores, three runs:
/// 1,024: 171–209 / 116–152; 2,048: 191–207 / 167–216; 4,096: 209–291 / 226–235; 8,192:
/// 214–233 / 268–295; 16,384 (the default): 214–220 / 295–300.
const PULL_BELOW: usize = 2048;

pub(crate) struct Launch {
    pub(crate) settings: Settings,
    pub(crate) resolved: Vec<Resolved>,
    /// The sink's queue, in batches.
    pub(crate) sink_queue: usize,
    /// The batch size of the connector into each stage, then of the one into the sink.
    pub(crate) batch_sizes: Vec<Arc<BatchSize>>,
    #[cfg(feature = "async")]
    pub(crate) concurrency: Vec<usize>,
    #[cfg(feature = "async")]
    pub(crate) timeouts: Vec<Option<std::time::Duration>>,
    pub(crate) control: Arc<Control>,
    /// The reorder window of each ordered stage.
    pub(crate) windows: Vec<Option<Arc<Window>>>,
    /// The response inbox of each stage with a hook.
    pub(crate) relays: Vec<Option<crossbeam_channel::Sender<ResponseBatch>>>,
    pub(crate) origin: Option<Upstream>,
    pub(crate) credits: Option<Credits>,
    pub(crate) threads: Vec<JoinHandle<()>>,
    /// The first thread the OS refused to start, as the pipeline's build error.
    pub(crate) failed: Option<BuildError>,
    /// The stages the controller sizes, as their segments start.
    pub(crate) autos: Vec<AutoStage>,
    /// The fixed stages that start fewer workers than their count, as their segments start.
    pub(crate) lazies: Vec<LazyStage>,
    /// The runs of stages fused at the start that may split, as their segments start.
    pub(crate) splits: Vec<SplitStage>,
    pub(crate) budget: usize,
    /// The stages of each segment (stages that share workers), in order.
    pub(crate) segments: Vec<Range<usize>>,
}

impl Launch {
    /// Resolves the plan and starts the response relays. `serve` makes the submitter the
    /// origin of responses; the returned [`Responses`] is theirs. `replies` names the stage
    /// that takes the outputs back as values, if one does.
    pub(crate) fn new<O: Send + 'static>(
        settings: Settings,
        plan: &[StagePlan],
        hooks: Vec<Option<Hook>>,
        serve: bool,
        replies: Option<(usize, Box<dyn TakeReplies>)>,
    ) -> (Self, Option<(Responses<O>, ResponseDrain)>) {
        let Resolution {
            resolved,
            segments,
            budget,
        } = resolve(&settings, plan);
        let source = Arc::new(StageMetrics::new(Arc::from("source"), 1, 0));
        // One batch size per connector: into each stage, then into the sink.
        let (sink_batch, sink_adaptive) = batch_for(None, &settings, settings.capacity);
        let sink_queue = batches(settings.capacity, sink_batch, sink_adaptive);
        let batch_sizes: Vec<Arc<BatchSize>> = resolved
            .iter()
            .zip(plan)
            .map(|(r, p)| (r.batch, r.adaptive, p.asynchronous))
            .chain([(sink_batch, sink_adaptive, false)])
            .map(|(batch, adaptive, asynchronous)| {
                Arc::new(match (adaptive, asynchronous) {
                    (true, true) => BatchSize::adaptive_in_stride(batch),
                    (true, false) => BatchSize::adaptive(batch),
                    (false, _) => BatchSize::pinned(batch),
                })
            })
            .collect();
        let stages = plan
            .iter()
            .zip(&resolved)
            .zip(&batch_sizes)
            .map(|((p, r), size)| {
                // An autoscaled stage never has more workers than the budget (or its `min`,
                // if that is more), whatever its `max`: `auto_workers(1, usize::MAX)` sized
                // its slots by `max`, and panicked.
                let slots = r
                    .auto
                    .map_or(r.workers, |(min, max)| max.min(budget.max(min)));
                #[cfg(feature = "async")]
                let concurrency = if p.asynchronous {
                    p.concurrency.unwrap_or(DEFAULT_CONCURRENCY)
                } else {
                    0
                };
                #[cfg(not(feature = "async"))]
                let concurrency = 0;
                Arc::new(
                    StageMetrics::with_slots(Arc::clone(&p.name), r.start, r.queue, slots)
                        .fused(r.fused, r.standby_queue)
                        .concurrency(concurrency)
                        .batch(Arc::clone(size)),
                )
            })
            .collect();
        let sink = Arc::new(
            StageMetrics::new(Arc::from(SINK), 1, sink_queue)
                .batch(Arc::clone(&batch_sizes[plan.len()])),
        );
        let control = Control::new(source, stages, sink, !settings.show_caught_panics);
        if let Some(every) = settings.timeline {
            lock(&control.ledger.timeline).set_interval(every);
        }
        let control = Arc::new(control);

        // Reorder windows: by default room for everything the region's connectors and
        // workers can hold, twice over, so the window only binds when one batch is slow.
        let mut windows = Vec::with_capacity(plan.len());
        let mut region_size = 0;
        for r in &resolved {
            region_size += r.queue + r.workers;
            if r.ordered {
                let limit = settings
                    .reorder_window
                    .unwrap_or_else(|| (2 * region_size).max(64));
                let window = Arc::new(Window::new(limit as u64));
                control.signals.register_window(Arc::clone(&window));
                windows.push(Some(window));
                region_size = 0;
            } else {
                windows.push(None);
            }
        }

        let path_on = serve || replies.is_some() || hooks.iter().any(Option::is_some);
        let mut responses = None;
        let (origin, credits) = if path_on {
            let window = Arc::new(Window::new(settings.max_in_flight as u64));
            control.signals.register_window(Arc::clone(&window));
            let origin = if serve {
                let (tx, rx) = unbounded();
                let (r, drain) = Responses::new(rx, Arc::clone(&window), Arc::clone(&control));
                responses = Some((r, drain));
                Upstream::Submitter(tx)
            } else {
                Upstream::Credits(Arc::clone(&window))
            };
            let credits = Credits {
                window,
                expanded: Arc::new(AtomicU64::new(0)),
            };
            (Some(origin), Some(credits))
        } else {
            (None, None)
        };

        let mut launch = Launch {
            #[cfg(feature = "async")]
            concurrency: plan
                .iter()
                .map(|p| p.concurrency.unwrap_or(DEFAULT_CONCURRENCY))
                .collect(),
            #[cfg(feature = "async")]
            timeouts: plan.iter().map(|p| p.timeout).collect(),
            settings,
            resolved,
            sink_queue,
            batch_sizes,
            control,
            windows,
            relays: Vec::new(),
            origin,
            credits,
            threads: Vec::new(),
            failed: None,
            autos: Vec::new(),
            lazies: Vec::new(),
            splits: Vec::new(),
            budget,
            segments,
        };
        // Relays, upstream first, so each can be handed the route above it.
        let mut replies = replies;
        for (index, hook) in hooks.into_iter().enumerate() {
            let listener = Listener {
                hook,
                replies: match replies.take() {
                    Some((at, r)) if at == index => Some(r),
                    other => {
                        replies = other;
                        None
                    }
                },
            };
            if listener.hook.is_none() && listener.replies.is_none() {
                launch.relays.push(None);
                continue;
            }
            let (tx, rx) = unbounded();
            let next = launch.route_before(index);
            let control = Arc::clone(&launch.control);
            let name = Arc::clone(&plan[index].name);
            let watch = Arc::new(RelayWatch::new(Arc::clone(&name)));
            lock(&control.ledger.relays).push(Arc::clone(&watch));
            launch.spawn(format!("millrace-{name}-responses"), move || {
                if let Some(next) = next {
                    relay(rx, listener, next, &control, &watch);
                }
            });
            launch.relays.push(Some(tx));
        }
        (launch, responses)
    }

    /// Where responses about items that end in stage `index` go: the nearest hooked stage
    /// before it, else the origin. `None` when the response path is off.
    pub(crate) fn route_before(&self, index: usize) -> Option<Upstream> {
        self.relays[..index.min(self.relays.len())]
            .iter()
            .rev()
            .find_map(|r| r.clone().map(Upstream::Relay))
            .or_else(|| self.origin.clone())
    }

    /// The reorder window of the first ordered stage after `index` (`None` = from the source).
    pub(crate) fn next_gate(&self, after: Option<usize>) -> Option<Arc<Window>> {
        let from = after.map_or(0, |i| i + 1);
        self.windows[from..].iter().flatten().next().cloned()
    }

    pub(crate) fn has_ordered_after(&self, index: usize) -> bool {
        self.resolved[index + 1..].iter().any(|r| r.ordered)
    }

    /// The batch sizes of the connectors after connector `from` (into stage `from`, or the
    /// sink's) that carry its batches whole: a segment that keeps its batches whole for an
    /// ordered stage downstream (`EmitMode::Preserve`) hands them on unchanged, so the
    /// producer of connector `from` (the source, or an ordered stage's emitter) sizes its
    /// batches for every one of those connectors too.
    pub(crate) fn carried_sizes(&self, from: usize) -> Vec<Arc<BatchSize>> {
        let mut sizes = Vec::new();
        let mut at = from;
        while let Some(segment) = self.segments.iter().find(|s| s.start == at) {
            let last = segment.end - 1;
            if self.resolved[last].ordered || !self.has_ordered_after(last) {
                break; // it re-batches (or, ordered, re-numbers and splits)
            }
            at = segment.end;
            sizes.push(Arc::clone(&self.batch_sizes[at]));
        }
        sizes
    }

    /// The connector into stage `index` (or, past the last stage, the sink).
    pub(crate) fn connector_into<T>(&self, index: usize) -> (Outlet<T>, Inlet<T>) {
        let queue = self
            .resolved
            .get(index)
            .map_or(self.sink_queue, |r| r.queue);
        let size = &self.batch_sizes[index.min(self.resolved.len())];
        connector(queue, Arc::clone(size))
    }

    /// The connector into stage `index` of a run fused at the start, for when it splits.
    pub(crate) fn standby_connector_into<T>(&self, index: usize) -> (Outlet<T>, Inlet<T>) {
        let queue = self.resolved[index].standby_queue;
        connector(queue, Arc::clone(&self.batch_sizes[index]))
    }

    /// Starts the source: on a thread of its own, or, for an iterator that bounds its size
    /// in front of a run fused at the start with nothing to admit its batches through, on
    /// that run's workers (see `segment::pulled_source`).
    pub(crate) fn start_source<S: Send + 'static>(&mut self, source: Source<S>) -> Open<S> {
        let (outlet, inlet) = self.connector_into(0);
        let ctx = SourceCtx {
            control: Arc::clone(&self.control),
            metrics: Arc::clone(&self.control.ledger.source),
            gate: self.next_gate(None),
            credits: self.credits.clone(),
            events: self.route_before(0),
            carried: self.carried_sizes(0),
        };
        let fuses = self.resolved.first().is_some_and(|r| r.splits)
            && self.batch_sizes[0].limit() < PULL_BELOW
            && ctx.gate.is_none()
            && ctx.credits.is_none();
        match source {
            Source::Iter(cutter) if fuses && cutter.bounded() => {
                let size = self.pulled_batch_size();
                let pulled = PulledSource::new(cutter, ctx, outlet.stock(size));
                Open::Pulled {
                    make_pull: pulled.make_pull(),
                    split_off: pulled.split_off(outlet),
                    inlet,
                }
            }
            source => {
                self.spawn(SOURCE_THREAD.into(), move || {
                    run_source(source, ctx, outlet)
                });
                Open::Connected(inlet)
            }
        }
    }

    /// The batch size of a source cut on the first stage's workers: no connector holds its
    /// batches, only the workers' hands, so an adaptive size may grow to the stage's whole
    /// capacity in items shared among its workers (rather than a quarter of it, one of the
    /// connector's [`SLOTS`](crate::batch_size::SLOTS)); a pinned one stays.
    fn pulled_batch_size(&self) -> Arc<BatchSize> {
        let first = &self.resolved[0];
        let connector = &self.batch_sizes[0];
        Arc::new(if connector.is_adaptive() {
            BatchSize::adaptive((first.capacity / first.workers.max(1)).max(1))
        } else {
            BatchSize::pinned(connector.limit())
        })
    }

    /// Starts a thread of the run. If the OS refuses, the refusal becomes the pipeline's
    /// build error (the first one) and the run is cancelled, so that the threads already
    /// started wind down; [`Launch::check`] then ends the launch.
    pub(crate) fn spawn(&mut self, name: String, f: impl FnOnce() + Send + 'static) {
        if self.failed.is_some() {
            return;
        }
        let f = self.control.trace.in_thread(&name, f);
        match std::thread::Builder::new().name(name.clone()).spawn(f) {
            Ok(handle) => self.threads.push(handle),
            Err(e) => self.refused(BuildError::thread(&name, &e)),
        }
    }

    /// Something the run needs could not be started: keep the first error, cancel the run.
    pub(crate) fn refused(&mut self, error: BuildError) {
        self.failed.get_or_insert(error);
        self.control.signals.cancel();
    }

    /// Ends a launch that failed (see [`Launch::spawn`]): with the run cancelled and the
    /// caller's ends of it (`dropping`: an inlet, a controller …) dropped, waits for every
    /// thread already started, and returns the error.
    pub(crate) fn abort(&mut self, dropping: impl Sized) -> BuildError {
        self.control.signals.cancel();
        drop(dropping);
        self.relays.clear();
        self.origin = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        let extra = std::mem::take(&mut *lock(&self.control.ledger.extra_threads));
        for thread in extra {
            let _ = thread.join();
        }
        self.failed.take().unwrap_or_else(|| {
            BuildError::thread("the pipeline", &std::io::ErrorKind::Other.into())
        })
    }

    /// Starts the controller if any stage is autoscaled or starts workers lazily, a wedge
    /// timeout is set or the timeline is sampled. Returns its thread and the sender whose
    /// drop stops it.
    pub(crate) fn start_controller(&mut self) -> Option<Controller> {
        let needed = !self.autos.is_empty()
            || !self.lazies.is_empty()
            || !self.splits.is_empty()
            || self.settings.wedge.is_some()
            || self.settings.timeline.is_some();
        if !needed || self.failed.is_some() {
            return None;
        }
        let (done_tx, done_rx) = crossbeam_channel::bounded(0);
        let settings = ControllerSettings {
            interval: self.settings.autoscale_interval,
            budget: self.budget,
            wedge: self.settings.wedge,
            timeline: self.settings.timeline,
            segments: self.segments.clone(),
        };
        let autos = std::mem::take(&mut self.autos);
        let lazies = std::mem::take(&mut self.lazies);
        let splits = std::mem::take(&mut self.splits);
        match spawn_controller(
            Arc::clone(&self.control),
            autos,
            lazies,
            splits,
            settings,
            done_rx,
        ) {
            Ok(thread) => Some(Controller {
                done: done_tx,
                thread,
            }),
            Err(e) => {
                self.refused(BuildError::thread("millrace-controller", &e));
                None
            }
        }
    }

    /// The index the sink's connector counts as (one past the last stage).
    pub(crate) fn sink_index(&self) -> usize {
        self.resolved.len()
    }

    /// The batch size of the connector into the sink.
    pub(crate) fn sink_batch_size(&self) -> Arc<BatchSize> {
        Arc::clone(&self.batch_sizes[self.resolved.len()])
    }

    pub(crate) fn sink_ctx(&self) -> SinkCtx {
        SinkCtx {
            control: Arc::clone(&self.control),
            metrics: Arc::clone(&self.control.ledger.sink),
            events: self.route_before(self.resolved.len()),
            taken: std::cell::Cell::new(None),
        }
    }
}

/// The open end of a pipeline being launched.
pub(crate) enum Open<T> {
    /// Items arrive on this connector.
    Connected(Inlet<T>),
    /// A segment of stages whose workers start once it is known where its output goes
    /// (and whether the next stage joins it).
    Pending {
        make_pull: MakePull<T>,
        workers: usize,
        /// The segment's last stage.
        last: usize,
        /// For a run of stages fused at the start, its unfused form so far.
        standby: Option<Box<crate::segment::standby::Standby<T>>>,
    },
    /// The source, cut on the workers of the run fused at the start that it feeds; once
    /// the run splits, `split_off` starts its own thread, shipping into `inlet`'s connector.
    Pulled {
        make_pull: MakePull<T>,
        split_off: Box<dyn FnOnce() + Send>,
        inlet: Inlet<T>,
    },
}

/// A running controller: dropping `done` stops it.
pub(crate) struct Controller {
    pub(crate) done: crossbeam_channel::Sender<()>,
    pub(crate) thread: JoinHandle<()>,
}

/// Where a pipeline's items come from: an iterator, cut into batches by a [`Cut`], or the
/// queue its [`Submitter`](crate::Submitter)s push to.
pub(crate) enum Source<S> {
    Iter(Box<dyn Cut<S>>),
    Submitted(Receiver<(ItemId, S)>, Weak<SubmitShared<S>>),
}

/// The source thread's body.
fn run_source<S: Send + 'static>(source: Source<S>, ctx: SourceCtx, outlet: Outlet<S>) {
    match source {
        Source::Iter(mut cutter) => {
            let let_go = LetGo::new(outlet, &ctx.control);
            run_let_go(&mut *cutter, &ctx, &let_go);
        }
        Source::Submitted(rx, shared) => run_submitted(rx, shared, &ctx, &outlet),
    }
}
