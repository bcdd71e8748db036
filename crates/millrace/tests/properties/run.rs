//! Running a case: builds the real pipeline for a case, drives its source and sink, and
//! records what came out and what the hooks and dead-letter handlers saw.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use millrace::{Handle, ItemId, Outcome, Pipeline, PipelineBuilder, Report, RunErrorKind, Stage};

use crate::model::{build_sink, build_stage, name, Case, Item, Layout, SinkMode, SourceMode};
use crate::reference::Kind;

/// A status a hook saw: the hooked stage's index, the item id, what became of it.
pub(crate) type HookSeen = (usize, u64, Kind);
/// A dead letter: the item id, the stage, the key of the item if the letter had it.
pub(crate) type DeadSeen = (u64, String, Option<u64>);

/// What hooks and dead-letter handlers saw, filled from the pipeline's threads.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) hooks: Arc<Mutex<Vec<HookSeen>>>,
    pub(crate) dead: Arc<Mutex<Vec<DeadSeen>>>,
}

pub(crate) struct Observed {
    pub(crate) outputs: Vec<Item>,
    pub(crate) responses: Option<Vec<(u64, Kind, Option<Item>)>>,
    /// What the first stage received back (`reply_to`).
    pub(crate) replies: Option<Vec<(u64, Kind, Option<Item>)>>,
    /// The full id of every response or reply (children's ids name their position).
    pub(crate) answered: Vec<ItemId>,
    pub(crate) report: Report,
    /// The item error the run ended with, if it did.
    pub(crate) stopped_by: Option<(u64, String)>,
    pub(crate) other_error: Option<String>,
    pub(crate) stop_called: bool,
    pub(crate) submitted_ok: Option<u64>,
    pub(crate) hooks: Vec<HookSeen>,
    pub(crate) dead: Vec<DeadSeen>,
}

pub(crate) fn outcome_kind(outcome: Outcome<Item>) -> (Kind, Option<Item>) {
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

/// The case's input as items, each keyed by its position.
pub(crate) fn items(case: &Case) -> Vec<Item> {
    case.input
        .iter()
        .enumerate()
        .map(|(i, &value)| Item {
            origin: i as u64,
            key: i as u64,
            value,
        })
        .collect()
}

/// Applies the case's pipeline settings (error policy, windows, layout) and appends its
/// stages.
pub(crate) fn configure(
    mut builder: PipelineBuilder<Item>,
    case: &Case,
    obs: &Shared,
) -> PipelineBuilder<Item> {
    builder = builder.on_error(case.default_policy.to_policy());
    if let Some(w) = case.reorder_window {
        builder = builder.reorder_window(w);
    }
    if let Some(m) = case.max_in_flight {
        builder = builder.max_in_flight(m);
    }
    builder = apply_layout(builder, case.layout);
    for (i, spec) in case.stages.iter().enumerate() {
        builder = builder.stage(build_stage(i, spec, case, obs));
    }
    if case.paced() {
        let workers = case.stages.first().map_or(1, |s| s.workers);
        builder = builder.stage(
            Stage::map("pace", |it: Item| {
                std::thread::sleep(std::time::Duration::from_micros(20));
                it
            })
            .workers(workers),
        );
    }
    builder
}

/// Sets the pipeline-wide settings a layout needs (the stages' own are set by `build_stage`).
fn apply_layout(builder: PipelineBuilder<Item>, layout: Layout) -> PipelineBuilder<Item> {
    match layout {
        Layout::Separate => builder.adaptive_fusion(false),
        Layout::Fused => builder.fuse(),
        Layout::Adaptive => builder.autoscale_interval(std::time::Duration::from_millis(1)),
        Layout::Auto(budget) => builder
            .autoscale()
            .cpu_budget(budget)
            .autoscale_interval(std::time::Duration::from_millis(5)),
        Layout::Lazy => builder
            .cpu_budget(1)
            .autoscale_interval(std::time::Duration::from_millis(5)),
    }
}

pub(crate) fn run_case(case: &Case) -> Observed {
    let obs = Shared::default();
    let items = items(case);

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
                            assert_eq!(id, ItemId::new(ok), "submit ids count from 0");
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
    if let Some(c) = case.sink_capacity {
        builder = builder.default_capacity(c);
    }
    if let Some(b) = case.sink_batch {
        builder = builder.default_batch(b);
    }
    builder = configure(builder, case, &obs);

    let mut stop_called = false;
    let mut outputs = Vec::new();
    let mut responses = None;
    let mut replies = None;
    let mut answered = Vec::new();
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
        SinkMode::ForEach | SinkMode::TryForEach(_) => {
            let cell: Arc<OnceLock<Handle>> = Arc::default();
            let called = Arc::new(AtomicBool::new(false));
            let got: Arc<Mutex<Vec<Item>>> = Arc::default();
            let (c, g, k) = (Arc::clone(&called), Arc::clone(&got), case.stop_after);
            let h = Arc::clone(&cell);
            // Keeps an accepted item; stops the run once `stop_after` were accepted.
            let accept = move |item: Item| {
                let mut got = g.lock().unwrap();
                got.push(item);
                if k.is_some_and(|k| got.len() >= k) {
                    if let Some(handle) = h.get() {
                        handle.stop();
                        c.store(true, Ordering::SeqCst);
                    }
                }
            };
            let pipeline = match case.sink_fault() {
                Some(fault) => {
                    let mut judge = build_sink(fault);
                    builder.try_for_each(move |item: &Item| {
                        judge(item)?;
                        accept(item.clone());
                        Ok::<(), String>(())
                    })
                }
                None => builder.for_each(accept),
            };
            let running = pipeline.spawn().expect("a valid pipeline builds");
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
        SinkMode::ReplyTo => {
            let cell: Arc<OnceLock<Handle>> = Arc::default();
            let called = Arc::new(AtomicBool::new(false));
            let (c, h, k) = (Arc::clone(&called), Arc::clone(&cell), case.stop_after);
            type Got = Vec<(ItemId, Kind, Option<Item>)>;
            let running = builder
                .reply_to(&name(0), Got::new(), move |mut got: Got, id, outcome| {
                    let (kind, item) = outcome_kind(outcome);
                    got.push((id, kind, item));
                    if k.is_some_and(|k| got.len() >= k) {
                        if let Some(handle) = h.get() {
                            handle.stop();
                            c.store(true, Ordering::SeqCst);
                        }
                    }
                    got
                })
                .spawn()
                .expect("a valid pipeline builds");
            cell.set(running.handle()).unwrap();
            if case.stop_after == Some(0) {
                running.stop();
                called.store(true, Ordering::SeqCst);
            }
            let (result, got) = match running.join() {
                Ok(finished) => (Ok(finished.report), finished.output),
                Err(mut e) => {
                    let got = e.take_output::<Got>().unwrap_or_default();
                    (Err(e), got)
                }
            };
            stop_called = called.load(Ordering::SeqCst);
            outputs = got.iter().filter_map(|g| g.2.clone()).collect();
            answered = got.iter().map(|g| g.0).collect();
            replies = Some(got.into_iter().map(|(id, k, i)| (id.0, k, i)).collect());
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
                answered.push(id);
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
        replies,
        answered,
        report,
        stopped_by,
        other_error,
        stop_called,
        submitted_ok,
        hooks,
        dead,
    }
}
