//! Segments: a run of stages that share workers, from construction to run.
//!
//! A *segment* is one stage, or adjacent stages fused onto the same workers (fixed stages
//! with equal worker counts under `fuse()`, autoscaled ones with equal bounds by default).
//! The plan (`pipeline::plan`) decides the segments; this module builds each one and runs
//! it:
//!
//! * **Construction** (here): a stage joins the open segment or starts one on a new
//!   connector ([`Launch::start_stage`]); the segment is closed at the connector into the
//!   next stage or the sink ([`Launch::connect`]), where its [`Emitter`](worker::Emitter) is
//!   built and its workers are started, through the launch's one spawn path. An async
//!   stage is a segment of its own ([`asynchronous`]), built from the same emitter and
//!   started the same way.
//! * **Run**: each worker runs [`worker::run_worker`]; [`crew`] keeps the count of live
//!   workers (who may retire when the autoscaler shrinks the segment, who is last out).
//!
//! * **Runs fused at the start**: a run of equal fixed stages is built twice, as one fused
//!   segment and, without workers, as a segment per stage ([`standby`]); the fused
//!   segment's [`Handover`](handover::Handover) starts the latter when the controller splits
//!   the run.
//!
//! The autoscaler sizes segments through [`worker::SegmentScaler`], and the report's
//! bottleneck judges the segments as they ran at the end.

#[cfg(feature = "async")]
pub(crate) mod asynchronous;
pub(crate) mod crew;
pub(crate) mod handover;
pub(crate) mod pull;
pub(crate) mod pulled_source;
pub(crate) mod standby;
pub(crate) mod worker;

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use crate::autoscale::{AutoStage, LazyStage, Scalable, SplitStage};
use crate::connector::{Inlet, Outlet};
use crate::metrics::StageMetrics;
use crate::pipeline::launch::{Launch, Open};
use crate::pipeline::sink::direct::DirectSink;
use crate::reorder::Reorder;
use crate::stage::dead_letter::DeadLetterFn;
use crate::stage::process::StageCtx;
use crate::stage::Body;
use crate::sync::Mutex;

use crew::Crew;
use handover::Handover;
use pull::{InletPull, MakePull, Then};
use standby::Standby;
use worker::{run_worker, start_standby, EmitMode, Emitter, Growth, OrderedEmit, SegmentScaler};

impl Launch {
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
                carried: self.carried_sizes(last + 1),
            }))
        } else if self.has_ordered_after(last) {
            EmitMode::Preserve
        } else {
            EmitMode::Free
        }
    }

    /// The output side of the segment ending with stage `last`, shared by its `workers`
    /// (sync or async: one construction for both); `growth` for a segment that may start
    /// more workers while it runs, `shrinks` if it may also retire them (autoscaled).
    fn emitter<U: Send + 'static>(
        &self,
        last: usize,
        workers: usize,
        growth: Option<Growth<U>>,
        shrinks: bool,
        handover: Option<Handover>,
        direct: Option<Arc<dyn DirectSink<U>>>,
    ) -> Arc<Emitter<U>> {
        Arc::new(Emitter {
            mode: self.emit_mode(last),
            metrics: Arc::clone(&self.control.ledger.stages[last]),
            events: self.route_before(last),
            control: Arc::clone(&self.control),
            crew: Crew::new(workers, shrinks),
            growth,
            handover,
            direct,
        })
    }

    /// The means to start workers on segment `make_pull` (ending with stage `last`) while
    /// it runs, sending to `outlet`; `first` is the index of the first worker it starts in
    /// a slot of its choosing (a standby segment's workers take given slots below it).
    fn growth<U: Send + 'static>(
        &self,
        make_pull: &MakePull<U>,
        outlet: &Outlet<U>,
        first: usize,
    ) -> Growth<U> {
        Growth {
            make_pull: Arc::clone(make_pull),
            outlet: Mutex::new(Some(outlet.clone())),
            next_worker: AtomicUsize::new(first),
            free_slots: Mutex::new(Vec::new()),
            control: Arc::clone(&self.control),
        }
    }

    /// Builds the segment of stage `last` alone (see [`Standby`]) on `outlet`, without
    /// workers; returns what starts one of its workers in a given slot.
    fn standby_segment<U: Send + 'static>(
        &self,
        make_pull: MakePull<U>,
        last: usize,
        outlet: &Outlet<U>,
    ) -> Box<dyn FnMut(usize) + Send> {
        let count = self.resolved[last].workers;
        // (Its workers take the slots the fused workers leave, 0 to `count - 1`, by number;
        // `next_worker` past them only guards against a slot taken twice.)
        let growth = self.growth(&make_pull, outlet, count);
        let emitter = self.emitter(last, 0, Some(growth), false, None, None);
        let mut refused = 0;
        Box::new(move |slot| start_standby(&emitter, slot, count, &mut refused))
    }

    /// Ends an open segment at the connector into stage `next` (or the sink): starts the
    /// segment's workers, each running its pull chain into a shared emitter. An autoscaled
    /// segment, and a fixed one that starts fewer workers than its count (its resolved
    /// `start`), keep the means to start more and are handed to the controller.
    pub(crate) fn connect<T: Send + 'static>(
        &mut self,
        open: Open<T>,
        next: usize,
        direct: Option<Arc<dyn DirectSink<T>>>,
    ) -> Inlet<T> {
        let (make_pull, workers, last, standby) = match open {
            Open::Pending {
                make_pull,
                workers,
                last,
                standby,
            } => (make_pull, workers, last, standby),
            Open::Connected(inlet) => return inlet,
            // (The launch pulls the source only into a run fused at the start, whose first
            // stage takes it in `start_stage`; anything else gets the source's own thread.)
            Open::Pulled {
                split_off, inlet, ..
            } => {
                split_off();
                return inlet;
            }
        };
        let (outlet, inlet) = self.connector_into(next);
        let metrics = Arc::clone(&self.control.ledger.stages[last]);
        let auto = self.resolved[last].auto;
        let count = self.resolved[last].workers;
        let lazy = auto.is_none() && workers < count;
        let growth = (auto.is_some() || lazy).then(|| self.growth(&make_pull, &outlet, workers));
        let handover = standby.map(|standby| {
            let Standby {
                source,
                mut starts,
                make_pull,
                first,
            } = *standby;
            starts.push(self.standby_segment(make_pull, last, &outlet));
            // The stages after the first read connectors of their own once split.
            let split: Vec<Arc<StageMetrics>> = self.control.ledger.stages[first + 1..=last]
                .iter()
                .map(Arc::clone)
                .collect();
            Handover::new(
                count,
                Box::new(move || {
                    split.iter().for_each(|m| m.mark_split());
                    if let Some(source) = source {
                        source();
                    }
                }),
                Box::new(move |slot| starts.iter_mut().for_each(|start| start(slot))),
            )
        });
        let splits = handover.is_some();
        // Fixed workers of its own, re-batching freely or releasing in order, and nothing to
        // answer upstream: they may consume the sink's batches themselves (see
        // `pipeline::sink::direct`).
        let direct = direct.filter(|_| {
            self.settings.adaptive_fusion
                && auto.is_none()
                && next == self.resolved.len()
                && self.route_before(next).is_none()
                && !matches!(self.emit_mode::<T>(last), EmitMode::Preserve)
        });
        let emitter = self.emitter(last, workers, growth, auto.is_some(), handover, direct);
        for worker in 0..workers {
            let (input, emitter, outlet) =
                (make_pull(worker), Arc::clone(&emitter), outlet.clone());
            self.spawn(format!("millrace-{}-{worker}", metrics.name), move || {
                run_worker(input, emitter, worker, outlet)
            });
        }
        let stages = self
            .segments
            .iter()
            .find(|segment| segment.contains(&last))
            .cloned()
            .unwrap_or(last..last + 1);
        let scaler: Arc<dyn Scalable> = Arc::new(SegmentScaler(Arc::downgrade(&emitter)));
        if let Some((min, max)) = auto {
            self.autos.push(AutoStage {
                stages,
                min,
                max,
                scaler,
            });
            return inlet;
        }
        // A run fused at the start that started lazily grows to its count before it may
        // split (see `autoscale`): both.
        if lazy {
            self.lazies.push(LazyStage {
                stages: stages.clone(),
                count,
                scaler: Arc::clone(&scaler),
            });
        }
        if splits {
            // (`PulledSource::new` marks the source fused with the run it feeds.)
            let with_source = stages.start == 0 && self.control.ledger.source.is_fused();
            self.splits.push(SplitStage {
                stages,
                with_source,
                scaler,
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
        let (workers, policy, fused, splits) = (r.start, r.policy, r.fused, r.splits);
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
        let control = Arc::clone(&self.control);
        let pull_from = |inlet: Inlet<T>| -> MakePull<T> {
            let (metrics, events, control) =
                (Arc::clone(&metrics), events.clone(), Arc::clone(&control));
            Arc::new(move |worker| {
                Box::new(InletPull::new(
                    inlet.clone(),
                    Arc::clone(&metrics),
                    worker,
                    events.clone(),
                    Arc::clone(&control),
                ))
            })
        };
        let then = |input: MakePull<T>| -> MakePull<U> {
            let (ctx, make_process) = (Arc::clone(&ctx), Arc::clone(&make_process));
            Arc::new(move |worker| Box::new(Then::new(input(worker), make_process(&ctx, worker))))
        };
        // A stage of a run fused at the start is also built as a segment of its own, for
        // when the run splits (see `Standby`).
        let (input, standby) = match open {
            Open::Pending {
                make_pull,
                last,
                standby,
                ..
            } if fused => {
                // (Only a stage of a run fused at the start finds a standby form before it.)
                let standby = standby.map(|standby| {
                    let Standby {
                        source,
                        mut starts,
                        make_pull: before,
                        first,
                    } = *standby;
                    let (outlet, inlet) = self.standby_connector_into(index);
                    starts.push(self.standby_segment(before, last, &outlet));
                    Box::new(Standby {
                        source,
                        starts,
                        make_pull: then(pull_from(inlet)),
                        first,
                    })
                });
                (make_pull, standby)
            }
            // The source, fused with the run this stage starts; once the run splits, this
            // stage's own workers read from the connector the source then ships into.
            Open::Pulled {
                make_pull,
                split_off,
                inlet,
            } if splits => {
                let standby = Box::new(Standby {
                    source: Some(split_off),
                    starts: Vec::new(),
                    make_pull: then(pull_from(inlet)),
                    first: index,
                });
                (make_pull, Some(standby))
            }
            open => {
                let inlet = self.connect(open, index, None);
                let standby = splits.then(|| {
                    Box::new(Standby {
                        source: None,
                        starts: Vec::new(),
                        make_pull: then(pull_from(inlet.clone())),
                        first: index,
                    })
                });
                (pull_from(inlet), standby)
            }
        };
        Open::Pending {
            make_pull: then(input),
            workers,
            last: index,
            standby,
        }
    }

    /// Starts an async stage as a segment of its own (see [`asynchronous`]).
    #[cfg(feature = "async")]
    fn start_async<T: Send + 'static, U: Send + 'static>(
        &mut self,
        index: usize,
        launch: asynchronous::AsyncLaunch<T, U>,
        ctx: Arc<StageCtx<T>>,
        open: Open<T>,
    ) -> Open<U> {
        let inlet = self.connect(open, index, None);
        let (outlet, next_inlet) = self.connector_into(index + 1);
        let metrics = Arc::clone(&self.control.ledger.stages[index]);
        let emitter = self.emitter(index, 1, None, false, None, None);
        let intake = InletPull::new(
            inlet,
            metrics,
            0,
            self.route_before(index),
            Arc::clone(&self.control),
        );
        let segment = asynchronous::AsyncSegment {
            ctx,
            concurrency: self.concurrency[index],
            timeout: self.timeouts[index],
            // The fewest items a batch may hold, for the batches in flight to cover the
            // concurrency.
            batch: if self.resolved[index].adaptive {
                1
            } else {
                self.resolved[index].batch
            },
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
}
