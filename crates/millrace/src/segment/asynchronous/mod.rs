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
//! At most `concurrency` items are in flight; the others of the batches admitted wait in
//! input order (see [`driver`]). An item that exceeds the
//! stage's [`timeout`](crate::Stage::timeout) fails with
//! [`ItemErrorKind::TimedOut`](crate::ItemErrorKind::TimedOut) and its future is dropped;
//! a panic inside a future fails that item. `try_map_async` borrows the item to start each
//! try, so it can retry and dead-letter it whole. A cancel drops every future in flight and
//! reports its item unfinished.
//!
//! # Accounting
//!
//! Busy time is the time the driver spends polling (the stage's futures and its own
//! bookkeeping); *waiting* is each item's life in the stage; `in_flight` counts items whose
//! future is alive. The driver reads the clock twice a poll, not per item.

mod driver;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll as TaskPoll};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::connector::{Outlet, Poll};
use crate::error::{BoxError, BuildError};
use crate::item::Batch;
use crate::window::Window;

use super::pull::{InletPull, Pull};
use super::worker::{run_worker, Emitter};
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
    // Twice the batches needed to hold `concurrency` items: the driver's concurrency is the
    // limit, and items of the next batches wait for a place, so the places never sit idle
    // while a batch waits for its slowest item.
    let batches_in_flight = 2 * concurrency.div_ceil(batch.max(1)) + 1;
    // The intake runs ahead of the driver by fewer than `concurrency` items and a batch, in
    // as many batches as they come: a channel of one batch made every hand-off wait for the
    // driver's thread, and at the start of a run, when batches are small, a thousand items
    // took several milliseconds to reach their places on a busy machine.
    let (to_driver, from_intake) = mpsc::unbounded_channel::<Batch<T>>();
    let in_transit = Arc::new(Window::new(concurrency as u64));
    let from_intake = FromIntake {
        batches: from_intake,
        in_transit: Arc::clone(&in_transit),
    };
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
            // Items sent to the driver so far: the position of the next batch's first.
            let mut sent = 0u64;
            // Room first, then a batch: a batch that waits for room waits in the connector,
            // where the stage's capacity counts it. (The window closes once the driver is
            // gone. The connector's batch size needs no word from here: the driver takes
            // any batch in stride, see `BatchSize::adaptive_in_stride`.)
            while in_transit.admit(sent) {
                let Some(batch) = intake.recv() else {
                    break;
                };
                sent += batch.len() as u64;
                if to_driver.send(batch).is_err() {
                    break;
                }
            }
        }),
    );

    let driver_ctx = Arc::clone(&ctx);
    let driver_thread: Thread = (
        format!("millrace-{name}-driver"),
        Box::new(move || {
            let driver = driver::drive(
                driver_ctx,
                call,
                concurrency,
                timeout,
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

/// The driver's end of the hand-off from the intake thread: batches in an unbounded
/// channel, counted through a [`Window`] whose positions are items. The intake takes the
/// next batch off the connector only once the window is open at the position of its first
/// item (fewer than `concurrency` items on their way), so at most `concurrency - 1` items
/// and one batch are on their way at once; the driver moves the front on as it receives
/// them, and closes the window when it is dropped, so an intake waiting for room never
/// outlives the driver. (The window is not closed by a cancel: the driver drops what
/// arrives after one, reported unfinished, and the intake's batch must reach it.)
pub(super) struct FromIntake<T> {
    batches: mpsc::UnboundedReceiver<Batch<T>>,
    in_transit: Arc<Window>,
}

impl<T> FromIntake<T> {
    /// The next batch from the intake; `None` once it has ended.
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> TaskPoll<Option<Batch<T>>> {
        let polled = self.batches.poll_recv(cx);
        if let TaskPoll::Ready(Some(batch)) = &polled {
            self.in_transit.advance(batch.len() as u64);
        }
        polled
    }
}

impl<T> Drop for FromIntake<T> {
    fn drop(&mut self) {
        self.in_transit.close();
    }
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

#[cfg(all(test, not(loom)))]
mod tests {
    use std::task::Waker;
    use std::time::Instant;

    use super::*;
    use crate::item::Ids;

    fn batch(len: usize) -> Batch<u64> {
        Batch {
            seq: 0,
            born: Instant::now(),
            ids: Ids::Range { start: 0, len },
            items: vec![0; len],
        }
    }

    #[test]
    fn receiving_a_batch_makes_room_for_as_many_items_in_transit() {
        let (tx, rx) = mpsc::unbounded_channel();
        let in_transit = Arc::new(Window::new(4));
        let mut from_intake = FromIntake {
            batches: rx,
            in_transit: Arc::clone(&in_transit),
        };
        // Two batches of three: the second starts at position 3, inside a window of 4.
        assert!(in_transit.admit(0));
        tx.send(batch(3)).unwrap();
        assert!(in_transit.admit(3));
        tx.send(batch(3)).unwrap();
        assert_eq!(in_transit.front(), 0);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(from_intake.poll_recv(&mut cx), TaskPoll::Ready(Some(b)) if b.len() == 3));
        assert_eq!(in_transit.front(), 3, "the driver took three items");
        assert!(matches!(
            from_intake.poll_recv(&mut cx),
            TaskPoll::Ready(Some(_))
        ));
        assert_eq!(in_transit.front(), 6);
        assert!(matches!(from_intake.poll_recv(&mut cx), TaskPoll::Pending));
    }

    #[test]
    fn an_intake_waiting_for_room_is_let_go_when_the_driver_is_gone() {
        let (_tx, rx) = mpsc::unbounded_channel::<Batch<u64>>();
        let in_transit = Arc::new(Window::new(2));
        let from_intake = FromIntake {
            batches: rx,
            in_transit: Arc::clone(&in_transit),
        };
        let (answer, admitted) = std::sync::mpsc::channel();
        {
            let in_transit = Arc::clone(&in_transit);
            // Position 2 is past a window of 2 that nothing has moved on: it waits.
            std::thread::spawn(move || answer.send(in_transit.admit(2)));
        }
        drop(from_intake);
        let admitted = admitted
            .recv_timeout(Duration::from_secs(60))
            .expect("the waiting intake was let go");
        assert!(!admitted, "the intake learns the driver is gone");
    }
}
