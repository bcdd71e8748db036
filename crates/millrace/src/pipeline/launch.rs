//! Launching a pipeline: from a checked plan to running threads.
//!
//! The builder records a plan (each stage's settings) and a chain of closures, one per
//! stage, that each launch their stage given the inlet of the stage before. [`Launch`]
//! resolves the plan first, when every stage is known, because a stage's behaviour depends
//! on what comes after it:
//!
//! * **Emit mode.** A stage with an ordered stage somewhere after it keeps batches whole and
//!   numbered (see [`EmitMode`]); otherwise it re-batches freely.
//! * **Output batch size** is the next stage's batch size (the sink takes the default).
//! * **Windows.** Each ordered stage gets a reorder window; the producer that numbers its
//!   batches (the source, or the previous ordered stage) admits through it.
//! * **Response routes.** An item that ends in stage `k` is answered to the nearest stage
//!   before `k` with a hook, else to the origin. Each hooked stage gets a relay thread.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::unbounded;

use crate::connector::{connector, Inlet};
use crate::control::Control;
use crate::metrics::StageMetrics;
use crate::policy::ErrorPolicy;
use crate::reorder::Reorder;
use crate::response::{relay, Hook, ResponseBatch, Responses, Upstream};
use crate::stage::worker::{DeadLetterFn, EmitMode, OrderedEmit, StageCtx};
use crate::stage::{Launcher, Stage};
use crate::window::Window;

use super::sink::{SinkCtx, SINK};
use super::source::{run_source, Credits, Source, SourceCtx};

/// Pipeline-wide defaults and limits.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) workers: usize,
    pub(crate) capacity: usize,
    pub(crate) batch: usize,
    pub(crate) policy: ErrorPolicy,
    pub(crate) reorder_window: Option<usize>,
    pub(crate) max_in_flight: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            workers: 1,
            capacity: 4096,
            batch: 256,
            policy: ErrorPolicy::Skip,
            reorder_window: None,
            max_in_flight: 1 << 16,
        }
    }
}

/// One stage's settings as the user gave them.
#[derive(Clone, Debug)]
pub(crate) struct StagePlan {
    pub(crate) name: Arc<str>,
    pub(crate) workers: Option<usize>,
    pub(crate) capacity: Option<usize>,
    pub(crate) batch: Option<usize>,
    pub(crate) ordered: bool,
    pub(crate) policy: Option<ErrorPolicy>,
}

/// One stage's settings, defaults applied.
struct Resolved {
    workers: usize,
    batch: usize,
    queue: usize,
    ordered: bool,
    policy: ErrorPolicy,
}

pub(crate) struct Launch {
    settings: Settings,
    resolved: Vec<Resolved>,
    pub(crate) control: Arc<Control>,
    /// The reorder window of each ordered stage.
    windows: Vec<Option<Arc<Window>>>,
    /// The response inbox of each stage with a hook.
    relays: Vec<Option<crossbeam_channel::Sender<ResponseBatch>>>,
    origin: Option<Upstream>,
    credits: Option<Credits>,
    pub(crate) threads: Vec<JoinHandle<()>>,
}

fn batches(items: usize, batch: usize) -> usize {
    items.div_ceil(batch).max(1)
}

impl Launch {
    /// Resolves the plan and starts the response relays. `serve` makes the submitter the
    /// origin of responses; the returned [`Responses`] is theirs.
    pub(crate) fn new<O: Send + 'static>(
        settings: Settings,
        plan: &[StagePlan],
        hooks: Vec<Option<Hook>>,
        serve: bool,
    ) -> (Self, Option<Responses<O>>) {
        let resolved: Vec<Resolved> = plan
            .iter()
            .map(|p| {
                let batch = p.batch.unwrap_or(settings.batch);
                Resolved {
                    workers: p.workers.unwrap_or(settings.workers),
                    batch,
                    queue: batches(p.capacity.unwrap_or(settings.capacity), batch),
                    ordered: p.ordered,
                    policy: p.policy.unwrap_or(settings.policy),
                }
            })
            .collect();
        let source = Arc::new(StageMetrics::new(Arc::from("source"), 1, 0));
        let stages = plan
            .iter()
            .zip(&resolved)
            .map(|(p, r)| Arc::new(StageMetrics::new(Arc::clone(&p.name), r.workers, r.queue)))
            .collect();
        let sink_queue = batches(settings.capacity, settings.batch);
        let sink = Arc::new(StageMetrics::new(Arc::from(SINK), 1, sink_queue));
        let control = Arc::new(Control::new(source, stages, sink));

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
                control.register_window(Arc::clone(&window));
                windows.push(Some(window));
                region_size = 0;
            } else {
                windows.push(None);
            }
        }

        let path_on = serve || hooks.iter().any(Option::is_some);
        let mut responses = None;
        let (origin, credits) = if path_on {
            let window = Arc::new(Window::new(settings.max_in_flight as u64));
            control.register_window(Arc::clone(&window));
            let origin = if serve {
                let (tx, rx) = unbounded();
                responses = Some(Responses::new(rx, Arc::clone(&window)));
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
            settings,
            resolved,
            control,
            windows,
            relays: Vec::new(),
            origin,
            credits,
            threads: Vec::new(),
        };
        // Relays, upstream first, so each can be handed the route above it.
        for (index, hook) in hooks.into_iter().enumerate() {
            let relay_tx = hook.map(|hook| {
                let (tx, rx) = unbounded();
                let next = launch.route_before(index);
                let control = Arc::clone(&launch.control);
                let name = Arc::clone(&plan[index].name);
                let handle = std::thread::Builder::new()
                    .name(format!("millrace-{name}-responses"))
                    .spawn(move || {
                        let on_panic = |msg: String| {
                            control.hook_panicked(format!(
                                "response hook of stage `{name}` panicked: {msg}"
                            ))
                        };
                        if let Some(next) = next {
                            relay(rx, hook, next, on_panic);
                        }
                    })
                    .expect("the OS refused to start a relay thread");
                launch.threads.push(handle);
                tx
            });
            launch.relays.push(relay_tx);
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
            None => (
                self.settings.batch,
                batches(self.settings.capacity, self.settings.batch),
            ),
        }
    }

    pub(crate) fn start_source<S: Send + 'static>(&mut self, source: Source<S>) -> Inlet<S> {
        let (batch, queue) = self.connector_into(0);
        let (outlet, inlet) = connector(queue);
        let ctx = SourceCtx {
            control: Arc::clone(&self.control),
            metrics: Arc::clone(&self.control.source),
            batch,
            gate: self.next_gate(None),
            credits: self.credits.clone(),
            events: self.route_before(0),
        };
        let handle = std::thread::Builder::new()
            .name("millrace-source".into())
            .spawn(move || run_source(source, ctx, outlet))
            .expect("the OS refused to start the source thread");
        self.threads.push(handle);
        inlet
    }

    pub(crate) fn start_stage<T: Send + 'static, U: Send + 'static>(
        &mut self,
        index: usize,
        launch: Launcher<T, U>,
        dead_letter: Option<DeadLetterFn<T>>,
        inlet: Inlet<T>,
    ) -> Inlet<U> {
        let (out_batch, out_queue) = self.connector_into(index + 1);
        let (outlet, next_inlet) = connector(out_queue);
        let r = &self.resolved[index];
        let emit = if r.ordered {
            EmitMode::Ordered(Box::new(OrderedEmit {
                reorder: Reorder::new(),
                region: self.windows[index]
                    .clone()
                    .expect("every ordered stage has a window"),
                next_gate: self.next_gate(Some(index)),
                next_seq: AtomicU64::new(0),
            }))
        } else if self.has_ordered_after(index) {
            EmitMode::Preserve
        } else {
            EmitMode::Free
        };
        let metrics = Arc::clone(&self.control.stages[index]);
        let ctx = Arc::new(StageCtx {
            name: Arc::clone(&metrics.name),
            metrics,
            policy: r.policy,
            dead_letter,
            out_batch,
            emit,
            events: self.route_before(index),
            expanded: self.credits.as_ref().map(|c| Arc::clone(&c.expanded)),
            control: Arc::clone(&self.control),
            alive: AtomicUsize::new(r.workers),
        });
        let handles = launch(ctx, r.workers, inlet, outlet);
        self.threads.extend(handles);
        next_inlet
    }

    pub(crate) fn sink_ctx(&self) -> SinkCtx {
        SinkCtx {
            control: Arc::clone(&self.control),
            metrics: Arc::clone(&self.control.sink),
            events: self.route_before(self.resolved.len()),
        }
    }
}

/// The pieces of a [`Stage`] the launch needs, apart from its settings and hook.
pub(crate) fn stage_parts<T, U>(
    stage: Stage<T, U>,
) -> (
    StagePlan,
    Option<Hook>,
    Option<DeadLetterFn<T>>,
    Launcher<T, U>,
) {
    let plan = StagePlan {
        name: stage.name,
        workers: stage.workers,
        capacity: stage.capacity,
        batch: stage.batch,
        ordered: stage.ordered,
        policy: stage.policy,
    };
    (plan, stage.hook, stage.dead_letter, stage.launch)
}
