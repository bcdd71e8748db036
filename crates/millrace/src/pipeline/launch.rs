//! Launching a pipeline: from a checked plan to running threads.
//!
//! The builder records a plan (each stage's settings) and a chain of closures, one per
//! stage, that each launch their stage given the inlet of the stage before. [`Launch`]
//! resolves the plan first ([`super::plan`]: defaults, segments, autoscaled sizes), when
//! every stage is known, because a stage's behaviour depends on what comes after it:
//!
//! * **Emit mode.** A stage with an ordered stage somewhere after it keeps batches whole and
//!   numbered (see [`EmitMode`]); otherwise it re-batches freely.
//! * **Output batch size** is the next stage's batch size (the sink takes the default).
//! * **Windows.** Each ordered stage gets a reorder window; the producer that numbers its
//!   batches (the source, or the previous ordered stage) admits through it.
//! * **Response routes.** An item that ends in stage `k` is answered to the nearest stage
//!   before `k` with a hook, else to the origin. Each hooked stage gets a relay thread.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::unbounded;

use crate::autoscale::{spawn_controller, AutoStage, ControllerSettings};
use crate::connector::{connector, Inlet};
use crate::control::Control;
use crate::error::BuildError;
use crate::ledger::RelayWatch;
use crate::metrics::StageMetrics;
use crate::reorder::Reorder;
use crate::response::{
    relay, Hook, Listener, ResponseBatch, ResponseDrain, Responses, TakeReplies, Upstream,
};
use crate::stage::crew::Crew;
use crate::stage::dead_letter::DeadLetterFn;
use crate::stage::process::StageCtx;
use crate::stage::worker::{
    run_worker, EmitMode, Emitter, Growth, InletPull, MakePull, OrderedEmit, SegmentScaler, Then,
};
use crate::stage::Body;
use crate::sync::{lock, Mutex};
use crate::window::Window;

use super::plan::{batch_for, batches, resolve, Resolution, Resolved, Settings, StagePlan};
use super::sink::{SinkCtx, SINK};
use super::source::{run_source, Credits, Source, SourceCtx};

/// Default concurrency of async stages.
#[cfg(feature = "async")]
const DEFAULT_CONCURRENCY: usize = 64;

pub(crate) struct Launch {
    settings: Settings,
    resolved: Vec<Resolved>,
    #[cfg(feature = "async")]
    concurrency: Vec<usize>,
    #[cfg(feature = "async")]
    timeouts: Vec<Option<std::time::Duration>>,
    pub(crate) control: Arc<Control>,
    /// The reorder window of each ordered stage.
    windows: Vec<Option<Arc<Window>>>,
    /// The response inbox of each stage with a hook.
    relays: Vec<Option<crossbeam_channel::Sender<ResponseBatch>>>,
    origin: Option<Upstream>,
    credits: Option<Credits>,
    pub(crate) threads: Vec<JoinHandle<()>>,
    /// The first thread the OS refused to start, as the pipeline's build error.
    pub(crate) failed: Option<BuildError>,
    /// The stages the controller sizes, as their segments start.
    autos: Vec<AutoStage>,
    budget: usize,
    /// The stages of each segment (stages that share workers), in order.
    segments: Vec<Range<usize>>,
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
        let stages = plan
            .iter()
            .zip(&resolved)
            .map(|(p, r)| {
                let slots = r.auto.map_or(r.workers, |(_, max)| max);
                Arc::new(
                    StageMetrics::with_slots(Arc::clone(&p.name), r.workers, r.queue, slots)
                        .fused(r.fused)
                        .batch(r.batch),
                )
            })
            .collect();
        let sink_batch = batch_for(None, &settings, settings.capacity);
        let sink_queue = batches(settings.capacity, sink_batch);
        let sink = Arc::new(StageMetrics::new(Arc::from(SINK), 1, sink_queue).batch(sink_batch));
        let mut control = Control::new(source, stages, sink, !settings.show_caught_panics);
        // The plan's segments are what the bottleneck judges, as the autoscaler sizes them.
        control.ledger.segments = segments.clone();
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
                let (r, drain) = Responses::new(rx, Arc::clone(&window));
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
            control,
            windows,
            relays: Vec::new(),
            origin,
            credits,
            threads: Vec::new(),
            failed: None,
            autos: Vec::new(),
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
    fn route_before(&self, index: usize) -> Option<Upstream> {
        self.relays[..index.min(self.relays.len())]
            .iter()
            .rev()
            .find_map(|r| r.clone().map(Upstream::Relay))
            .or_else(|| self.origin.clone())
    }

    /// The reorder window of the first ordered stage after `index` (`None` = from the source).
    fn next_gate(&self, after: Option<usize>) -> Option<Arc<Window>> {
        let from = after.map_or(0, |i| i + 1);
        self.windows[from..].iter().flatten().next().cloned()
    }

    fn has_ordered_after(&self, index: usize) -> bool {
        self.resolved[index + 1..].iter().any(|r| r.ordered)
    }

    /// The batch size and queue capacity of the connector into stage `index` (or the sink).
    fn connector_into(&self, index: usize) -> (usize, usize) {
        match self.resolved.get(index) {
            Some(r) => (r.batch, r.queue),
            None => {
                let batch = batch_for(None, &self.settings, self.settings.capacity);
                (batch, batches(self.settings.capacity, batch))
            }
        }
    }

    pub(crate) fn start_source<S: Send + 'static>(&mut self, source: Source<S>) -> Open<S> {
        let (batch, queue) = self.connector_into(0);
        let (outlet, inlet) = connector(queue);
        let ctx = SourceCtx {
            control: Arc::clone(&self.control),
            metrics: Arc::clone(&self.control.ledger.source),
            batch,
            gate: self.next_gate(None),
            credits: self.credits.clone(),
            events: self.route_before(0),
        };
        self.spawn("millrace-source".into(), move || {
            run_source(source, ctx, outlet)
        });
        Open::Connected(inlet)
    }

    /// How the segment ending with stage `last` hands its output on.
    fn emit_mode<U>(&self, last: usize) -> EmitMode<U> {
        if self.resolved[last].ordered {
            EmitMode::Ordered(Box::new(OrderedEmit {
                reorder: Reorder::new(),
                region: self.windows[last]
                    .clone()
                    .expect("every ordered stage has a window"),
                next_gate: self.next_gate(Some(last)),
                next_seq: AtomicU64::new(0),
            }))
        } else if self.has_ordered_after(last) {
            EmitMode::Preserve
        } else {
            EmitMode::Free
        }
    }

    /// The output side of the segment ending with stage `last`, shared by its `workers`
    /// (sync or async: one construction for both); `growth` for an autoscaled segment.
    fn emitter<U: Send + 'static>(
        &self,
        last: usize,
        out_batch: usize,
        workers: usize,
        growth: Option<Growth<U>>,
    ) -> Arc<Emitter<U>> {
        Arc::new(Emitter {
            mode: self.emit_mode(last),
            out_batch,
            metrics: Arc::clone(&self.control.ledger.stages[last]),
            events: self.route_before(last),
            control: Arc::clone(&self.control),
            crew: Crew::new(workers, growth.is_some()),
            growth,
        })
    }

    /// Ends an open segment at the connector into stage `next` (or the sink): starts the
    /// segment's workers, each running its pull chain into a shared emitter.
    pub(crate) fn connect<T: Send + 'static>(&mut self, open: Open<T>, next: usize) -> Inlet<T> {
        let Open::Pending {
            make_pull,
            workers,
            last,
        } = open
        else {
            let Open::Connected(inlet) = open else {
                unreachable!()
            };
            return inlet;
        };
        let (out_batch, out_queue) = self.connector_into(next);
        let (outlet, inlet) = connector(out_queue);
        let metrics = Arc::clone(&self.control.ledger.stages[last]);
        let auto = self.resolved[last].auto;
        let growth = auto.map(|_| Growth {
            make_pull: Arc::clone(&make_pull),
            outlet: Mutex::new(Some(outlet.clone())),
            next_worker: AtomicUsize::new(workers),
            free_slots: Mutex::new(Vec::new()),
            control: Arc::clone(&self.control),
        });
        let emitter = self.emitter(last, out_batch, workers, growth);
        for worker in 0..workers {
            let (input, emitter, outlet) =
                (make_pull(worker), Arc::clone(&emitter), outlet.clone());
            self.spawn(format!("millrace-{}-{worker}", metrics.name), move || {
                run_worker(input, emitter, worker, outlet)
            });
        }
        if let Some((min, max)) = auto {
            let stages = self
                .segments
                .iter()
                .find(|segment| segment.contains(&last))
                .cloned()
                .unwrap_or(last..last + 1);
            self.autos.push(AutoStage {
                stages,
                min,
                max,
                scaler: Arc::new(SegmentScaler(Arc::downgrade(&emitter))),
            });
        }
        inlet
    }

    /// Adds stage `index` to the open end: onto the open segment if the stage is fused with
    /// the one before, else as a new segment reading from a connector.
    pub(crate) fn start_stage<T: Send + 'static, U: Send + 'static>(
        &mut self,
        index: usize,
        body: Body<T, U>,
        dead_letter: Option<DeadLetterFn<T>>,
        open: Open<T>,
    ) -> Open<U> {
        let r = &self.resolved[index];
        let (workers, policy, fused) = (r.workers, r.policy, r.fused);
        let metrics = Arc::clone(&self.control.ledger.stages[index]);
        let events = self.route_before(index);
        let ctx = Arc::new(StageCtx {
            name: Arc::clone(&metrics.name),
            metrics: Arc::clone(&metrics),
            policy,
            dead_letter,
            events: events.clone(),
            expanded: self.credits.as_ref().map(|c| Arc::clone(&c.expanded)),
            control: Arc::clone(&self.control),
        });
        // Without the `async` feature the match has one arm; it stays a match for the other.
        #[cfg_attr(not(feature = "async"), allow(clippy::infallible_destructuring_match))]
        let make_process = match body {
            Body::Sync(make_process) => make_process,
            #[cfg(feature = "async")]
            Body::Async(launch) => return self.start_async(index, launch, ctx, open),
        };
        let input: MakePull<T> = match open {
            Open::Pending { make_pull, .. } if fused => make_pull,
            open => {
                let inlet = self.connect(open, index);
                let control = Arc::clone(&self.control);
                Arc::new(move |worker| {
                    Box::new(InletPull {
                        inlet: inlet.clone(),
                        metrics: Arc::clone(&metrics),
                        worker,
                        events: events.clone(),
                        control: Arc::clone(&control),
                    })
                })
            }
        };
        let make_pull: MakePull<U> =
            Arc::new(move |worker| Box::new(Then::new(input(worker), make_process(&ctx, worker))));
        Open::Pending {
            make_pull,
            workers,
            last: index,
        }
    }

    /// Starts an async stage as a segment of its own (see `stage::asynchronous`).
    #[cfg(feature = "async")]
    fn start_async<T: Send + 'static, U: Send + 'static>(
        &mut self,
        index: usize,
        launch: crate::stage::asynchronous::AsyncLaunch<T, U>,
        ctx: Arc<StageCtx<T>>,
        open: Open<T>,
    ) -> Open<U> {
        let inlet = self.connect(open, index);
        let (out_batch, out_queue) = self.connector_into(index + 1);
        let (outlet, next_inlet) = connector(out_queue);
        let metrics = Arc::clone(&self.control.ledger.stages[index]);
        let emitter = self.emitter(index, out_batch, 1, None);
        let intake = InletPull {
            inlet,
            metrics,
            worker: 0,
            events: self.route_before(index),
            control: Arc::clone(&self.control),
        };
        let segment = crate::stage::asynchronous::AsyncSegment {
            ctx,
            concurrency: self.concurrency[index],
            timeout: self.timeouts[index],
            batch: self.resolved[index].batch,
            intake,
            emitter,
            outlet,
            runtime: self.settings.runtime.clone(),
        };
        match launch(segment) {
            Ok(threads) => {
                for (name, run) in threads {
                    self.spawn(name, run);
                }
            }
            Err(e) => self.refused(e),
        }
        Open::Connected(next_inlet)
    }

    /// Starts a thread of the run. If the OS refuses, the refusal becomes the pipeline's
    /// build error (the first one) and the run is cancelled, so that the threads already
    /// started wind down; [`Launch::check`] then ends the launch.
    pub(crate) fn spawn(&mut self, name: String, f: impl FnOnce() + Send + 'static) {
        if self.failed.is_some() {
            return;
        }
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

    /// Starts the controller if any stage is autoscaled or a wedge timeout is set. Returns
    /// its thread and the sender whose drop stops it.
    pub(crate) fn start_controller(&mut self) -> Option<Controller> {
        if self.autos.is_empty() && self.settings.wedge.is_none() || self.failed.is_some() {
            return None;
        }
        let (done_tx, done_rx) = crossbeam_channel::bounded(0);
        let settings = ControllerSettings {
            interval: self.settings.autoscale_interval,
            budget: self.budget,
            wedge: self.settings.wedge,
            segments: self.segments.clone(),
        };
        let autos = std::mem::take(&mut self.autos);
        match spawn_controller(Arc::clone(&self.control), autos, settings, done_rx) {
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

    pub(crate) fn sink_ctx(&self) -> SinkCtx {
        SinkCtx {
            control: Arc::clone(&self.control),
            metrics: Arc::clone(&self.control.ledger.sink),
            events: self.route_before(self.resolved.len()),
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
    },
}

/// A running controller: dropping `done` stops it.
pub(crate) struct Controller {
    pub(crate) done: crossbeam_channel::Sender<()>,
    pub(crate) thread: JoinHandle<()>,
}
