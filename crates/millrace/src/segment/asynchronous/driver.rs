//! An async stage's driver: the future its driver thread runs, which admits the intake's
//! batches, runs their items at most `concurrency` at once, and sends each batch on once its
//! last item has ended.
//!
//! Every item's future lives in one `FuturesUnordered`; items wait for a place in it in a
//! queue, in input order, and each batch keeps its items' ends in place until the last one
//! arrives, so the batch leaves whole, with its sequence number, in input order. (It used to
//! run a `join_all` per batch with a semaphore permit per item: a second level of futures
//! and of wake-ups, and a permit to take and give back for every item; W3 gained a tenth
//! without them, see `BENCHMARKS.md`.)

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll as TaskPoll};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tokio::sync::mpsc;

use crate::error::{panic_message, ItemErrorKind};
use crate::item::{Batch, Ids};
use crate::metrics::Counters;
use crate::policy::ErrorPolicy;
use crate::response::{drop_processed, drop_unfinished, ResponseBatch};
use crate::stage::process::StageCtx;

use super::{AsyncCall, FromIntake};

/// Runs the driver until the intake ends and every batch admitted has been sent on, or
/// until a cancel, after which what is admitted is reported unfinished.
pub(super) async fn drive<T, U, C>(
    ctx: Arc<StageCtx<T>>,
    call: Arc<C>,
    concurrency: usize,
    timeout: Option<Duration>,
    from_intake: FromIntake<T>,
    to_output: mpsc::Sender<Batch<U>>,
) where
    T: Send + 'static,
    U: Send + 'static,
    C: AsyncCall<T, U>,
{
    let clock = DriverClock::new();
    let counters = ctx.metrics.slot(0);
    let driver = Driver {
        ctx: &ctx,
        call: &*call,
        timeout,
        clock: &clock,
        counters,
        to_output,
        open: Vec::new(),
        free: Vec::new(),
        queued: VecDeque::new(),
        admitted: 0,
    };
    Polled {
        inner: pin!(driver.run(concurrency, from_intake)),
        clock: &clock,
        counters,
    }
    .await;
}

/// Whether a batch of `len` items may join the `admitted` ones: within `admission`, or
/// alone.
fn fits(admitted: usize, len: usize, admission: usize) -> bool {
    admitted == 0 || admitted + len <= admission
}

/// A batch admitted into the driver whose items have not all ended.
struct OpenBatch<T, U> {
    seq: u64,
    born: Instant,
    ids: Ids,
    /// Each item's end, in input order, as it arrives.
    ends: Vec<Option<ItemEnd<T, U>>>,
    /// Items not ended yet.
    pending: usize,
}

/// What the driver waits for.
enum Event<T, U> {
    /// A batch from the intake.
    Batch(Batch<T>),
    /// The intake ended.
    Closed,
    /// The item at `index` of the open batch in `slot` ended.
    Ended {
        slot: usize,
        index: usize,
        end: ItemEnd<T, U>,
    },
    /// The run was cancelled.
    Cancelled,
}

struct Driver<'a, T, U, C> {
    ctx: &'a StageCtx<T>,
    call: &'a C,
    timeout: Option<Duration>,
    clock: &'a DriverClock,
    counters: &'a Counters,
    to_output: mpsc::Sender<Batch<U>>,
    /// Open batches by slot; a slot is reused once its batch has left (`free`).
    open: Vec<Option<OpenBatch<T, U>>>,
    free: Vec<usize>,
    /// Items of open batches not started yet, in input order: (slot, index, item).
    queued: VecDeque<(usize, usize, T)>,
    /// Items of open batches: at most twice the concurrency (a larger batch is admitted
    /// alone), so memory stays bounded in items whatever the batch size, and the next
    /// batch's items are ready to start while a batch waits for its slowest item.
    admitted: usize,
}

impl<'a, T, U, C> Driver<'a, T, U, C>
where
    T: Send + 'static,
    U: Send + 'static,
    C: AsyncCall<T, U>,
{
    async fn run(mut self, concurrency: usize, mut from_intake: FromIntake<T>) {
        let concurrency = concurrency.max(1);
        let admission = concurrency.saturating_mul(2);
        // A wake-up on cancel, not a poll: an idle async stage uses no CPU.
        let mut cancel = self.ctx.control.signals.cancel_watch.subscribe();
        let mut cancel = pin!(async move {
            let _ = cancel.wait_for(|c| *c).await;
        });
        let mut cancelled = false;
        let mut intake_open = true;
        // A batch received while the admitted items left no room for it.
        let mut held: Option<Batch<T>> = None;
        let mut running = FuturesUnordered::new();
        loop {
            if let Some(batch) = held.take_if(|b| fits(self.admitted, b.len(), admission)) {
                self.admit(batch).await;
            }
            while running.len() < concurrency {
                let Some((slot, index, item)) = self.queued.pop_front() else {
                    break;
                };
                let (ctx, call, timeout, counters, clock) =
                    (self.ctx, self.call, self.timeout, self.counters, self.clock);
                running.push(async move {
                    let end = run_item(ctx, call, timeout, item, counters, clock).await;
                    (slot, index, end)
                });
            }
            if !intake_open && held.is_none() && self.admitted == 0 && running.is_empty() {
                break;
            }
            let room = held.is_none() && self.admitted < admission;
            let event = poll_fn(|cx| {
                if !cancelled && cancel.as_mut().poll(cx).is_ready() {
                    return TaskPoll::Ready(Event::Cancelled);
                }
                if intake_open && room {
                    match from_intake.poll_recv(cx) {
                        TaskPoll::Ready(Some(batch)) => {
                            return TaskPoll::Ready(Event::Batch(batch))
                        }
                        TaskPoll::Ready(None) => return TaskPoll::Ready(Event::Closed),
                        TaskPoll::Pending => {}
                    }
                }
                match running.poll_next_unpin(cx) {
                    TaskPoll::Ready(Some((slot, index, end))) => {
                        TaskPoll::Ready(Event::Ended { slot, index, end })
                    }
                    _ => TaskPoll::Pending,
                }
            })
            .await;
            match event {
                Event::Batch(batch) if cancelled => self.drop_batch(batch).await,
                Event::Batch(batch) if !fits(self.admitted, batch.len(), admission) => {
                    held = Some(batch);
                }
                Event::Batch(batch) => self.admit(batch).await,
                Event::Closed => intake_open = false,
                Event::Ended { slot, index, end } => self.ended(slot, index, end).await,
                Event::Cancelled => {
                    // Every item in flight is dropped, and every batch admitted (or held)
                    // is reported unfinished and sent on empty.
                    cancelled = true;
                    running = FuturesUnordered::new();
                    self.queued.clear();
                    for open in std::mem::take(&mut self.open).into_iter().flatten() {
                        self.send_unfinished(open.seq, open.born, open.ids).await;
                    }
                    self.free.clear();
                    self.admitted = 0;
                    if let Some(batch) = held.take() {
                        self.drop_batch(batch).await;
                    }
                }
            }
        }
    }

    /// Counts a batch in.
    fn count_in(&self, batch: &Batch<T>) {
        let c = self.counters;
        c.add(&c.batches, 1);
        c.add(&c.items_in, batch.len() as u64);
    }

    /// Counts a batch in and queues its items.
    async fn admit(&mut self, batch: Batch<T>) {
        self.count_in(&batch);
        let Batch {
            seq,
            born,
            ids,
            items,
        } = batch;
        let len = items.len();
        if len == 0 {
            self.send(Batch::new(seq, born, 0)).await;
            return;
        }
        let slot = self.free.pop().unwrap_or(self.open.len());
        if slot == self.open.len() {
            self.open.push(None);
        }
        self.queued.extend(
            items
                .into_iter()
                .enumerate()
                .map(|(index, item)| (slot, index, item)),
        );
        self.open[slot] = Some(OpenBatch {
            seq,
            born,
            ids,
            ends: std::iter::repeat_with(|| None).take(len).collect(),
            pending: len,
        });
        self.admitted += len;
    }

    /// A batch that arrived after a cancel: counted in, reported unfinished, sent on empty.
    async fn drop_batch(&mut self, batch: Batch<T>) {
        self.count_in(&batch);
        self.send_unfinished(batch.seq, batch.born, batch.ids).await;
    }

    /// Reports a batch's items unfinished (a cancel dropped them) and sends it on empty, so
    /// that its sequence number still reaches the output.
    async fn send_unfinished(&self, seq: u64, born: Instant, ids: Ids) {
        drop_unfinished(
            &self.ctx.control,
            self.ctx.events.as_ref(),
            ids,
            self.counters,
        );
        self.send(Batch::new(seq, born, 0)).await;
    }

    /// Records an item's end; the batch's last one sends the batch on.
    async fn ended(&mut self, slot: usize, index: usize, end: ItemEnd<T, U>) {
        let Some(open) = self.open.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        open.ends[index] = Some(end);
        open.pending -= 1;
        if open.pending > 0 {
            return;
        }
        let Some(open) = self.open[slot].take() else {
            return;
        };
        self.free.push(slot);
        self.admitted -= open.ends.len();
        let out = self.finish(open);
        self.send(out).await;
    }

    /// A batch whose items have all ended: its outputs in input order, its failures
    /// reported, its events sent upstream.
    fn finish(&self, open: OpenBatch<T, U>) -> Batch<U> {
        let (ctx, counters) = (self.ctx, self.counters);
        let mut out = Batch::new(open.seq, open.born, open.ends.len());
        let mut events = Vec::new();
        let mut cancelled = Ids::default();
        let mut failed = 0u64;
        for (id, end) in open.ids.iter().zip(open.ends) {
            match end {
                Some(ItemEnd::Done(u)) => out.push(id, u),
                Some(ItemEnd::Failed(item, attempts, kind)) => {
                    failed += 1;
                    ctx.fail(id, item, attempts, kind, &mut events);
                }
                Some(ItemEnd::Cancelled) | None => cancelled.push(id),
            }
        }
        counters.add(&counters.items_out, out.len() as u64);
        counters.add(&counters.failed, failed);
        if cancelled.len() > 0 {
            drop_unfinished(&ctx.control, ctx.events.as_ref(), cancelled, counters);
        }
        if let Some(to) = &ctx.events {
            to.send(ResponseBatch::Ended(events));
        }
        out
    }

    async fn send(&self, batch: Batch<U>) {
        // The output thread is gone only if it panicked; the batch's items, counted out,
        // are then unfinished.
        if let Err(refused) = self.to_output.send(batch).await {
            let events = self.ctx.events.as_ref();
            drop_processed(&self.ctx.control, events, refused.0, self.counters);
        }
    }
}

/// How one item ended in the stage.
enum ItemEnd<T, U> {
    Done(U),
    Failed(Option<T>, u32, ItemErrorKind),
    Cancelled,
}

async fn run_item<T, U, C>(
    ctx: &StageCtx<T>,
    call: &C,
    timeout: Option<Duration>,
    item: T,
    counters: &Counters,
    clock: &DriverClock,
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
    let life = InFlight::new(counters, clock);
    let end = loop {
        // The closure runs here, before its future exists: a panic in it (an `unwrap()`
        // before `async move`) fails this item, like a panic inside the future.
        // With a timeout, the try's own time on the runtime's thread is counted: the
        // closure's, then its future's polls. A try that holds the thread past its deadline
        // fails however it ends.
        let called_at = timeout.map(|_| Instant::now());
        let started = ctx.control.catch(|| call.start(&mut slot));
        let mut own = called_at.map_or(Duration::ZERO, |at| at.elapsed());
        let kind = match started {
            Err(panic) => ItemErrorKind::Panicked(panic_message(&*panic)),
            Ok(fut) => {
                let started = pin!(AssertUnwindSafe(fut).catch_unwind());
                let attempt_fut = Quietly {
                    inner: started,
                    quiet: ctx.control.quiet_panics,
                    own: timeout.map(|_| &mut own),
                };
                match timeout {
                    Some(limit) => match tokio::time::timeout(limit, attempt_fut).await {
                        // `timeout` polls the future before its timer: a try whose
                        // result is ready when polled passes, even if the runtime came to
                        // it late (other futures held the thread, or the OS did), unless
                        // its own time (its closure's call and its polls) passed the limit.
                        Ok(_) if own > limit => ItemErrorKind::TimedOut(limit),
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

/// An item alive in an async stage: counted in flight, and its life added to the stage's
/// waiting time when it ends, however it ends (on the driver's clock).
struct InFlight<'a> {
    counters: &'a Counters,
    clock: &'a DriverClock,
    started: Instant,
}

impl<'a> InFlight<'a> {
    fn new(counters: &'a Counters, clock: &'a DriverClock) -> Self {
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            counters,
            clock,
            started: clock.now(),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let c = self.counters;
        c.in_flight.fetch_sub(1, Ordering::Relaxed);
        let life = self.clock.now().saturating_duration_since(self.started);
        c.add_time(&c.waiting_ns, life);
    }
}

/// The time as of the driver's current poll: read when a poll starts, so that the items
/// started and ended in it take their times from it rather than each reading the clock.
/// W3 (1,000 timer waits in flight): clock reads were a tenth of the driver thread's
/// samples at seven an item (two a poll of each item for its busy time, its start, its end,
/// its try); now two a poll of the driver, which runs many items each.
struct DriverClock(Cell<Instant>);

impl DriverClock {
    fn new() -> Self {
        DriverClock(Cell::new(Instant::now()))
    }

    fn now(&self) -> Instant {
        self.0.get()
    }
}

/// The driver's future, timed: each poll sets the [`DriverClock`] and adds its duration to
/// the stage's busy time.
struct Polled<'a, F> {
    inner: F,
    clock: &'a DriverClock,
    counters: &'a Counters,
}

impl<F: Future> Future for Polled<'_, std::pin::Pin<&mut F>> {
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> TaskPoll<F::Output> {
        let start = Instant::now();
        self.clock.0.set(start);
        let polled = self.inner.as_mut().poll(cx);
        let c = self.counters;
        c.add_time(&c.busy_ns, start.elapsed());
        polled
    }
}

/// A user's future polled quietly (with `quiet`, a panic in a poll does not go through the
/// panic hook: the enclosing `catch_unwind` fails the item), and with `own`, its polls timed
/// (only under a timeout: two clock reads a poll).
struct Quietly<'a, F> {
    inner: F,
    quiet: bool,
    own: Option<&'a mut Duration>,
}

impl<F: Future> Future for Quietly<'_, std::pin::Pin<&mut F>> {
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> TaskPoll<F::Output> {
        let quiet = self.quiet;
        let start = self.own.is_some().then(Instant::now);
        let polled = crate::panics::quietly(quiet, || self.inner.as_mut().poll(cx));
        if let (Some(start), Some(own)) = (start, self.own.as_deref_mut()) {
            *own += start.elapsed();
        }
        polled
    }
}
