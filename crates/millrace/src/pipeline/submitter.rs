//! Items pushed into a running pipeline from any thread: the [`Submitter`] handle, and the
//! source thread's loop that admits what submitters queue ([`run_submitted`]). A partial
//! batch ships as soon as the queue runs dry; on a stop, submitting fails from then on and
//! everything already accepted is admitted (see `pipeline::source` for the source as a whole).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};

use crate::connector::Outlet;
use crate::error::{SubmitError, TrySubmitError};
use crate::item::{Batch, Ids, ItemId};
use crate::response::drop_unfinished;
use crate::sync::{lock, Mutex};

use super::source::SourceCtx;

pub(super) fn run_submitted<S>(
    rx: Receiver<(ItemId, S)>,
    shared: Weak<SubmitShared<S>>,
    ctx: &SourceCtx,
    outlet: &Outlet<S>,
) {
    let counters = ctx.counters();
    let mut closed = false;
    let mut admitted = 0u64;
    let mut seq = 0u64;
    let mut open = true;
    loop {
        if !closed && ctx.control.signals.stopping() {
            // Stop accepting; what is queued, or being sent right now, still drains below.
            if let Some(shared) = shared.upgrade() {
                lock(&shared.sender).take();
            }
            closed = true;
        }
        let first = match rx.try_recv() {
            Ok(item) => item,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                // Wait for an item, or (until input is closed) for a stop: a wake-up, so a
                // stop takes effect at once and an idle pipeline uses no CPU.
                let waiting = Instant::now();
                let got = if closed {
                    rx.recv().ok()
                } else {
                    crossbeam_channel::select! {
                        recv(rx) -> item => item.ok(),
                        recv(ctx.control.signals.stop_signal()) -> _ => {
                            counters.add_time(&counters.idle_ns, waiting.elapsed());
                            continue;
                        }
                    }
                };
                counters.add_time(&counters.idle_ns, waiting.elapsed());
                match got {
                    Some(item) => item,
                    None => break,
                }
            }
        };
        let start = Instant::now();
        let want = outlet.batch_size().fill_size(&ctx.carried);
        let mut batch = Batch {
            seq,
            born: start,
            ids: Ids::default(),
            items: outlet.fresh(want),
        };
        batch.push(first.0, first.1);
        while batch.len() < want {
            match rx.try_recv() {
                Ok((id, item)) => batch.push(id, item),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    // Every submitter is gone and this batch holds the last items: the
                    // input has ended before it ships (see `Signals::input_ended`).
                    if !closed {
                        ctx.control.signals.end_input();
                    }
                    break;
                }
            }
        }
        let took = start.elapsed();
        outlet
            .batch_size()
            .filled(batch.len(), took, Duration::ZERO);
        counters.add_time(&counters.busy_ns, took);
        let first = admitted;
        admitted += batch.len() as u64;
        seq += 1;
        if !open {
            counters.add(&counters.items_in, batch.len() as u64);
            drop_unfinished(&ctx.control, ctx.events.as_ref(), batch.ids, counters);
        } else if !ctx.ship(outlet, batch, first) {
            open = false;
        }
        if !open && !closed {
            ctx.control.signals.stop();
        }
    }
    if !closed {
        // Every submitter was dropped before any stop.
        ctx.control.signals.end_input();
    }
}

/// What the submitters of one pipeline share.
pub(crate) struct SubmitShared<T> {
    sender: Mutex<Option<Sender<(ItemId, T)>>>,
    next_id: AtomicU64,
    /// Held while an id is taken and its item queued, so the queue holds items in the order
    /// of their ids, whichever threads submit them: an ordered stage keeps that order. (Taken
    /// apart, two threads could queue in the reverse order of their ids.)
    queueing: Mutex<()>,
    /// The run's stop signal (a channel that disconnects on a stop), once the pipeline
    /// runs: a submit after a stop is refused at once, not only once the source thread has
    /// closed the queue.
    stop: OnceLock<Receiver<()>>,
}

impl<T> SubmitShared<T> {
    /// Refuses submits from the moment the run's stop is asked for (`stop`: its signal).
    pub(crate) fn watch_stop(&self, stop: Receiver<()>) {
        let _ = self.stop.set(stop);
    }

    fn stopped(&self) -> bool {
        self.stop
            .get()
            .is_some_and(|stop| matches!(stop.try_recv(), Err(TryRecvError::Disconnected)))
    }
}

/// A handle that submits items to a running pipeline, from any thread.
///
/// Cloning makes another handle to the same pipeline. The pipeline's input ends when every
/// submitter has been dropped (or when the pipeline is stopped).
///
/// # Examples
///
/// ```
/// use millrace::Pipeline;
///
/// let (submitter, pipeline) = Pipeline::submitter::<u64>(64);
/// let running = pipeline.map("triple", |x| 3 * x).collect().spawn()?;
/// for x in 0..10 {
///     submitter.submit(x).unwrap();
/// }
/// drop(submitter); // no more input
/// let mut out = running.join()?.output;
/// out.sort();
/// assert_eq!(out, (0..10).map(|x| 3 * x).collect::<Vec<_>>());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Submitter<T> {
    shared: Arc<SubmitShared<T>>,
}

impl<T> Clone for Submitter<T> {
    fn clone(&self) -> Self {
        Submitter {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> std::fmt::Debug for Submitter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitter")
            .field("submitted", &self.shared.next_id.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<T> Submitter<T> {
    pub(crate) fn new(capacity: usize) -> (Self, Receiver<(ItemId, T)>) {
        let (tx, rx) = bounded(capacity.max(1));
        let shared = Arc::new(SubmitShared {
            sender: Mutex::new(Some(tx)),
            next_id: AtomicU64::new(0),
            queueing: Mutex::new(()),
            stop: OnceLock::new(),
        });
        (Submitter { shared }, rx)
    }

    pub(crate) fn downgrade(&self) -> Weak<SubmitShared<T>> {
        Arc::downgrade(&self.shared)
    }

    fn sender(&self) -> Option<Sender<(ItemId, T)>> {
        lock(&self.shared.sender).clone()
    }

    /// Submits `item`, waiting while the pipeline's input is full. Returns the item's id.
    ///
    /// Ids count the items in the order they enter the pipeline's input, whichever threads
    /// submit them, and that is the input order [`ordered`](crate::Stage::ordered) stages
    /// keep. (Submits from several threads take turns for it: one waiting for room holds
    /// the others back.)
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the item, if the pipeline was stopped or has ended.
    pub fn submit(&self, item: T) -> Result<ItemId, SubmitError<T>> {
        let Some(tx) = self.sender().filter(|_| !self.shared.stopped()) else {
            return Err(SubmitError(item));
        };
        let _queueing = lock(&self.shared.queueing);
        let id = ItemId::new(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        tx.send((id, item))
            .map(|()| id)
            .map_err(|e| SubmitError(e.into_inner().1))
    }

    /// Submits `item` only if the pipeline's input has room now. An item refused does not
    /// use up an id, so ids count the items submitted, in the order they entered (as for
    /// [`submit`](Submitter::submit)).
    ///
    /// # Errors
    ///
    /// [`TrySubmitError::Full`] if the input is full, [`TrySubmitError::Stopped`] if the
    /// pipeline was stopped or has ended; either hands the item back.
    pub fn try_submit(&self, item: T) -> Result<ItemId, TrySubmitError<T>> {
        let Some(tx) = self.sender().filter(|_| !self.shared.stopped()) else {
            return Err(TrySubmitError::Stopped(item));
        };
        let _queueing = lock(&self.shared.queueing);
        let next = &self.shared.next_id;
        let id = next.load(Ordering::Relaxed);
        match tx.try_send((ItemId::new(id), item)) {
            Ok(()) => {
                next.store(id + 1, Ordering::Relaxed);
                Ok(ItemId::new(id))
            }
            Err(TrySendError::Full((_, item))) => Err(TrySubmitError::Full(item)),
            Err(TrySendError::Disconnected((_, item))) => Err(TrySubmitError::Stopped(item)),
        }
    }
}
