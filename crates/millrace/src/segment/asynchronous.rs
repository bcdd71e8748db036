//! Async stages: I/O-bound work with thousands of items in flight on a handful of threads.
//!
//! A stage written as an async function ([`Stage::map_async`](crate::Stage::map_async),
//! [`Stage::try_map_async`](crate::Stage::try_map_async)) runs up to `concurrency` items at
//! once on a tokio runtime, so a stage that waits on the network needs no thread per wait.
//!
//! Users see this module only through the public docs of
//! [`Stage::map_async`](crate::Stage::map_async) (threads, batches and order, the runtime and
//! the tokio features it needs); keep the two in step.
//!
//! # Threads
//!
//! An async stage uses three OS threads whatever its concurrency:
//!
//! 1. an **intake** thread takes batches off the stage's connector (accounting idle time
//!    and dropping batches after a cancel, like any worker) and hands them to the runtime;
//! 2. the **driver** thread runs the stage's future with `block_on`: on a current-thread
//!    runtime the pipeline owns (timers and network I/O enabled), or on a runtime handle
//!    the user passed
//!    ([`PipelineBuilder::runtime`](crate::PipelineBuilder::runtime));
//! 3. an **output** thread runs the ordinary [emitter](super::worker) loop, so batching,
//!    flushing, ordering and backpressure downstream work exactly as for sync stages.
//!
//! CPU stages keep their own threads: a heavy CPU stage cannot starve the runtime, and an
//! async stage cannot block a CPU worker.
//!
//! # Semantics
//!
//! Each input batch becomes one output batch with the same sequence number, items in input
//! order, so [`ordered`](crate::Stage::ordered) async stages keep input order (Akka's
//! `mapAsync`); unordered ones let later batches overtake slow ones (`mapAsyncUnordered`).
//! A semaphore of `concurrency` permits bounds the items in flight. An item that exceeds the
//! stage's [`timeout`](crate::Stage::timeout) fails with
//! [`ItemErrorKind::TimedOut`](crate::ItemErrorKind::TimedOut) and its future is dropped;
//! a panic inside a future fails that item. `try_map_async` borrows the item to start each
//! try, so it can retry and dead-letter it whole. A cancel drops every future in flight and
//! reports its item unfinished.
//!
//! # Accounting
//!
//! Busy time is the time spent polling the stage's futures; *waiting* is the rest of each
//! item's life in the stage; `in_flight` counts items whose future is alive.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll as TaskPoll};
use std::time::{Duration, Instant};

use futures_util::future::{join_all, select, Either};
use futures_util::stream::{self, StreamExt};
use futures_util::FutureExt;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::connector::{Outlet, Poll};
use crate::error::{panic_message, BoxError, BuildError, ItemErrorKind};
use crate::item::Batch;
use crate::item::Ids;
use crate::metrics::Counters;
use crate::policy::ErrorPolicy;
use crate::response::ResponseBatch;

use super::pull::{InletPull, Pull};
use super::worker::{run_worker, Emitter};
use crate::response::drop_unfinished;
use crate::stage::process::StageCtx;

/// What an async stage calls for each try of an item.
pub(crate) trait AsyncCall<T, U>: Send + Sync + 'static {
    /// Whether a try consumes the item (no retry, no dead letter with the item).
    const CONSUMES: bool;
    /// Starts a try. `item` is taken when [`CONSUMES`](AsyncCall::CONSUMES), else borrowed.
    fn start(
        &self,
        item: &mut Option<T>,
    ) -> impl Future<Output = Result<U, BoxError>> + Send + 'static;
}

/// `map_async`: `Fn(T) -> impl Future<Output = U>`.
pub(crate) struct ByValue<F>(pub(crate) F);

impl<T, U, F, Fut> AsyncCall<T, U> for ByValue<F>
where
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = U> + Send + 'static,
    T: Send + 'static,
    U: Send + 'static,
{
    const CONSUMES: bool = true;

    fn start(
        &self,
        item: &mut Option<T>,
    ) -> impl Future<Output = Result<U, BoxError>> + Send + 'static {
        let fut = item.take().map(&self.0);
        async move {
            match fut {
                Some(fut) => Ok(fut.await),
                None => Err("the item was already consumed by an earlier try".into()),
            }
        }
    }
}

/// `try_map_async`: `Fn(&T) -> impl Future<Output = Result<U, E>>`.
pub(crate) struct ByRef<F>(pub(crate) F);

impl<T, U, E, F, Fut> AsyncCall<T, U> for ByRef<F>
where
    F: Fn(&T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
    T: Send + 'static,
    U: Send + 'static,
{
    const CONSUMES: bool = false;

    fn start(
        &self,
        item: &mut Option<T>,
    ) -> impl Future<Output = Result<U, BoxError>> + Send + 'static {
        let fut = item.as_ref().map(&self.0);
        async move {
            match fut {
                Some(fut) => fut.await.map_err(Into::into),
                None => Err("the item is gone".into()),
            }
        }
    }
}

/// Everything an async stage's threads need.
pub(crate) struct AsyncSegment<T, U> {
    pub(crate) ctx: Arc<StageCtx<T>>,
    pub(crate) concurrency: usize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) batch: usize,
    pub(crate) intake: InletPull<T>,
    pub(crate) emitter: Arc<Emitter<U>>,
    pub(crate) outlet: Outlet<U>,
    pub(crate) runtime: Option<tokio::runtime::Handle>,
}

/// Starts an async stage's threads (and its runtime, unless one was handed in).
pub(crate) type AsyncLaunch<T, U> =
    Box<dyn FnOnce(AsyncSegment<T, U>) -> Result<Vec<Thread>, BuildError> + Send>;

/// Makes the launcher of an async stage calling `call`.
pub(crate) fn launcher<T, U, C>(call: C) -> AsyncLaunch<T, U>
where
    T: Send + 'static,
    U: Send + 'static,
    C: AsyncCall<T, U>,
{
    Box::new(move |segment| start(segment, Arc::new(call)))
}

/// A thread an async stage needs: its name and what it runs. The launch starts it, through
/// the same path as every other thread of the run.
pub(crate) type Thread = (String, Box<dyn FnOnce() + Send>);

fn start<T, U, C>(segment: AsyncSegment<T, U>, call: Arc<C>) -> Result<Vec<Thread>, BuildError>
where
    T: Send + 'static,
    U: Send + 'static,
    C: AsyncCall<T, U>,
{
    let AsyncSegment {
        ctx,
        concurrency,
        timeout,
        batch,
        mut intake,
        emitter,
        outlet,
        runtime,
    } = segment;
    let name = Arc::clone(&ctx.name);
    // Twice the batches needed to hold `concurrency` items: the semaphore is the limit, and
    // items of the next batches wait for permits, so the permits never sit idle while a
    // batch waits for its slowest item.
    let batches_in_flight = 2 * concurrency.div_ceil(batch.max(1)) + 1;
    let (to_driver, from_intake) = mpsc::channel::<Batch<T>>(1);
    let (to_output, from_driver) = mpsc::channel::<Batch<U>>(batches_in_flight);

    // The pipeline's own runtime is built here, so that a failure is a build error.
    let runtime = match runtime {
        Some(handle) => Driven::By(handle),
        None => Driven::Own(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| BuildError::thread(&format!("the runtime of `{name}`"), &e))?,
        ),
    };
    let intake_thread: Thread = (
        format!("millrace-{name}-intake"),
        Box::new(move || {
            while let Some(batch) = intake.recv() {
                // The driver takes any batch in stride (its items wait for permits, not
                // for this thread): the batch size may grow, within the stage's limit.
                if let Some(taken) = intake.intake() {
                    taken.size.used(taken.items, Duration::ZERO);
                }
                if to_driver.blocking_send(batch).is_err() {
                    break;
                }
            }
        }),
    );

    let driver_ctx = Arc::clone(&ctx);
    let driver_thread: Thread = (
        format!("millrace-{name}-driver"),
        Box::new(move || {
            let driver = drive(
                driver_ctx,
                call,
                concurrency,
                timeout,
                batches_in_flight,
                from_intake,
                to_output,
            );
            match runtime {
                Driven::By(handle) => handle.block_on(driver),
                Driven::Own(rt) => rt.block_on(driver),
            }
        }),
    );

    let output_thread: Thread = (
        format!("millrace-{name}-output"),
        Box::new(move || {
            run_worker(Box::new(FromDriver(from_driver)), emitter, 0, outlet);
        }),
    );
    Ok(vec![intake_thread, driver_thread, output_thread])
}

/// The runtime an async stage's driver runs on.
enum Driven {
    /// A runtime handed in ([`PipelineBuilder::runtime`](crate::PipelineBuilder::runtime)).
    By(tokio::runtime::Handle),
    /// The stage's own current-thread runtime.
    Own(tokio::runtime::Runtime),
}

/// The output thread's input: batches the driver finished.
struct FromDriver<U>(mpsc::Receiver<Batch<U>>);

impl<U: Send> Pull<U> for FromDriver<U> {
    fn poll(&mut self) -> Poll<U> {
        match self.0.try_recv() {
            Ok(batch) => Poll::Ready(batch),
            Err(mpsc::error::TryRecvError::Empty) => Poll::Empty,
            Err(mpsc::error::TryRecvError::Disconnected) => Poll::Closed,
        }
    }

    fn recv(&mut self) -> Option<Batch<U>> {
        self.0.blocking_recv()
    }

    /// The driver makes its own output vectors; spent ones are freed.
    fn recycle(&mut self, _spent: Vec<U>) {}
}

async fn drive<T, U, C>(
    ctx: Arc<StageCtx<T>>,
    call: Arc<C>,
    concurrency: usize,
    timeout: Option<Duration>,
    batches_in_flight: usize,
    from_intake: mpsc::Receiver<Batch<T>>,
    to_output: mpsc::Sender<Batch<U>>,
) where
    T: Send + 'static,
    U: Send + 'static,
    C: AsyncCall<T, U>,
{
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let watcher = {
        // A wake-up on cancel, not a poll: an idle async stage uses no CPU.
        let mut cancelled = ctx.control.signals.cancel_watch.subscribe();
        async move {
            let _ = cancelled.wait_for(|c| *c).await;
            let _ = cancel_tx.send(true);
        }
    };
    // Items admitted into the driver, running or waiting for a permit: at most twice the
    // concurrency (a batch larger than that is admitted alone), so memory stays bounded in
    // items whatever the batch size, and the permits never sit idle while a batch waits for
    // its slowest item.
    let admission = (2 * concurrency.max(1)).min(Semaphore::MAX_PERMITS);
    let admitted = Arc::new(Semaphore::new(admission));
    let batches = stream::unfold(from_intake, move |mut rx| {
        let admitted = Arc::clone(&admitted);
        async move {
            let batch = rx.recv().await?;
            let items = u32::try_from(batch.len().clamp(1, admission)).unwrap_or(u32::MAX);
            // The semaphore is never closed, so admission fails only if it is gone.
            let admit = admitted.acquire_many_owned(items).await.ok()?;
            Some(((batch, admit), rx))
        }
    });
    let work = batches
        .map(|(batch, admit)| {
            let run = run_batch(&ctx, &call, &permits, timeout, cancel_rx.clone(), batch);
            async move {
                let out = run.await;
                drop(admit);
                out
            }
        })
        .buffer_unordered(batches_in_flight)
        .for_each(|out| {
            let to_output = to_output.clone();
            async move {
                // The output thread is gone only after a cancel; the batch is dropped then.
                let _ = to_output.send(out).await;
            }
        });
    let work = pin!(work);
    let watcher = pin!(watcher);
    // After a cancel, the work goes on until every item in flight has seen it and been
    // reported unfinished; the watcher never ends otherwise.
    if let Either::Right(((), work)) = select(work, watcher).await {
        work.await;
    }
}

/// How one item ended in the stage.
enum ItemEnd<T, U> {
    Done(U),
    Failed(Option<T>, u32, ItemErrorKind),
    Cancelled,
}

async fn run_batch<T, U, C>(
    ctx: &Arc<StageCtx<T>>,
    call: &Arc<C>,
    permits: &Arc<Semaphore>,
    timeout: Option<Duration>,
    cancel: watch::Receiver<bool>,
    batch: Batch<T>,
) -> Batch<U>
where
    T: Send + 'static,
    U: Send + 'static,
    C: AsyncCall<T, U>,
{
    let counters = ctx.metrics.slot(0);
    counters.add(&counters.batches, 1);
    counters.add(&counters.items_in, batch.len() as u64);
    let Batch {
        seq,
        born,
        ids,
        items,
    } = batch;
    let all_ids = ids.clone();
    let tries = items
        .into_iter()
        .zip(ids.iter())
        .map(|(item, id)| async move {
            // Permits are never closed, so acquiring fails only if the semaphore is gone.
            let Ok(_permit) = permits.acquire().await else {
                return (id, ItemEnd::Cancelled);
            };
            (id, run_item(ctx, &**call, timeout, item, counters).await)
        });
    // One watch on the cancel signal per batch, not per item: a cancel drops the batch's
    // futures together, and every item of it is unfinished.
    let mut cancel = cancel;
    let cancelled = cancel.wait_for(|c| *c);
    let ends = match select(pin!(join_all(tries)), pin!(cancelled)).await {
        Either::Left((ends, _)) => ends,
        Either::Right(_) => {
            drop_unfinished(&ctx.control, ctx.events.as_ref(), all_ids, counters);
            return Batch::new(seq, born, 0);
        }
    };
    let mut out = Batch::new(seq, born, ends.len());
    let mut events = Vec::new();
    let mut cancelled = Vec::new();
    let mut failed = 0u64;
    for (id, end) in ends {
        match end {
            ItemEnd::Done(u) => out.push(id, u),
            ItemEnd::Failed(item, attempts, kind) => {
                failed += 1;
                ctx.fail(id, item, attempts, kind, &mut events);
            }
            ItemEnd::Cancelled => cancelled.push(id),
        }
    }
    counters.add(&counters.items_out, out.len() as u64);
    counters.add(&counters.failed, failed);
    if !cancelled.is_empty() {
        let mut ids = Ids::default();
        cancelled.into_iter().for_each(|id| ids.push(id));
        drop_unfinished(&ctx.control, ctx.events.as_ref(), ids, counters);
    }
    if let Some(to) = &ctx.events {
        to.send(ResponseBatch::Ended(events));
    }
    out
}

async fn run_item<T, U, C>(
    ctx: &StageCtx<T>,
    call: &C,
    timeout: Option<Duration>,
    item: T,
    counters: &Counters,
) -> ItemEnd<T, U>
where
    T: Send + 'static,
    U: Send + 'static,
    C: AsyncCall<T, U>,
{
    let attempts = if C::CONSUMES {
        1
    } else {
        ctx.policy.attempts()
    };
    let mut slot = Some(item);
    let mut attempt = 1;
    // Counts the item in flight until this future ends or is dropped (by a cancel).
    let mut life = InFlight::new(counters);
    let end = loop {
        let tried_at = Instant::now();
        // The closure runs here, before its future exists: a panic in it (an `unwrap()`
        // before `async move`) fails this item, like a panic inside the future.
        let kind = match ctx.control.catch(|| call.start(&mut slot)) {
            Err(panic) => ItemErrorKind::Panicked(panic_message(&*panic)),
            Ok(fut) => {
                let started = pin!(AssertUnwindSafe(fut).catch_unwind());
                let attempt_fut = Timed {
                    inner: started,
                    busy: &mut life.busy,
                    quiet: ctx.control.quiet_panics,
                };
                match timeout {
                    Some(limit) => match tokio::time::timeout(limit, attempt_fut).await {
                        // `timeout` polls the future before its timer, so a try that ended
                        // while the runtime was late would pass: the deadline is checked
                        // on the clock, too.
                        Ok(_) if tried_at.elapsed() > limit => ItemErrorKind::TimedOut(limit),
                        Ok(Ok(Ok(u))) => break ItemEnd::Done(u),
                        Ok(Ok(Err(e))) => ItemErrorKind::Failed(Arc::from(e)),
                        Ok(Err(panic)) => ItemErrorKind::Panicked(panic_message(&*panic)),
                        Err(_) => ItemErrorKind::TimedOut(limit),
                    },
                    None => match attempt_fut.await {
                        Ok(Ok(u)) => break ItemEnd::Done(u),
                        Ok(Err(e)) => ItemErrorKind::Failed(Arc::from(e)),
                        Err(panic) => ItemErrorKind::Panicked(panic_message(&*panic)),
                    },
                }
            }
        };
        if slot.is_some() && attempt < attempts && ctx.control.signals.cancelled() {
            // A cancel between two tries: the item is unfinished, not failed.
            break ItemEnd::Cancelled;
        }
        if slot.is_some() && attempt < attempts {
            attempt += 1;
            counters.add(&counters.retries, 1);
            if let ErrorPolicy::Retry(retry) = &ctx.policy {
                tokio::time::sleep(retry.delay_before(attempt)).await;
            }
            continue;
        }
        break ItemEnd::Failed(slot.take(), attempt, kind);
    };
    drop(life);
    end
}

/// An item alive in an async stage: counted in flight, and its busy and waiting time added
/// to the stage's counters when it ends, however it ends.
struct InFlight<'a> {
    counters: &'a Counters,
    started: Instant,
    busy: Duration,
}

impl<'a> InFlight<'a> {
    fn new(counters: &'a Counters) -> Self {
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            counters,
            started: Instant::now(),
            busy: Duration::ZERO,
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let c = self.counters;
        c.in_flight.fetch_sub(1, Ordering::Relaxed);
        c.add_time(&c.busy_ns, self.busy);
        c.add_time(
            &c.waiting_ns,
            self.started.elapsed().saturating_sub(self.busy),
        );
    }
}

/// A future that adds the time spent polling it to `busy`; with `quiet`, a panic in a poll
/// does not go through the panic hook (the enclosing `catch_unwind` fails the item).
struct Timed<'a, F> {
    inner: F,
    busy: &'a mut Duration,
    quiet: bool,
}

impl<F: Future> Future for Timed<'_, std::pin::Pin<&mut F>> {
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> TaskPoll<F::Output> {
        let start = Instant::now();
        let quiet = self.quiet;
        let polled = crate::panics::quietly(quiet, || self.inner.as_mut().poll(cx));
        *self.busy += start.elapsed();
        polled
    }
}
