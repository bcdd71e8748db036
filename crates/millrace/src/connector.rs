//! Connectors: the bounded, batched links between stages.
//!
//! A connector is a bounded multi-producer, multi-consumer queue of [`Batch`]es: every worker
//! of the upstream stage holds an [`Outlet`], every worker of the downstream stage an
//! [`Inlet`]. Workers of a stage share one inlet, so whichever worker is free takes the next
//! batch: that is what keeps a stage's workers equally busy.
//!
//! # Semantics
//!
//! * **Bounded.** A connector holds at most its capacity in batches; a sender waits only when
//!   it is full. Producers fill batches to the connector's [`BatchSize`], pinned by the user
//!   or adapted while the pipeline runs (see [`crate::batch_size`]). Memory is bounded by capacities, not by input length.
//! * **Disconnection.** When every outlet is dropped, inlets drain what is queued and then
//!   report the end; this is how "no more input" travels down a pipeline. When every inlet is
//!   dropped, sends fail and hand the batch back.
//! * **Accounting.** Sends and receives that would wait report how long they waited, so each
//!   worker's time splits into busy, idle (waiting for input) and blocked (waiting for room).
//!
//! The queue itself is [`crossbeam_channel`]'s bounded array flavour. It is behind this
//! module so that other transports (a message broker across machines) can stand in its place.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};

use crate::batch_size::BatchSize;
use crate::item::Batch;
use crate::pool::Pool;

/// The sending end of a connector.
pub(crate) struct Outlet<T> {
    tx: Sender<Batch<T>>,
    pool: Arc<Pool<T>>,
    size: Arc<BatchSize>,
}

// Derived Clone would require T: Clone; only the handle is cloned.
impl<T> Clone for Outlet<T> {
    fn clone(&self) -> Self {
        Outlet {
            tx: self.tx.clone(),
            pool: Arc::clone(&self.pool),
            size: Arc::clone(&self.size),
        }
    }
}

/// A connector's pool and batch size without its sender: for a producer that fills batches
/// of the connector's size but hands them on otherwise (a source fused with the stages after
/// it, see `segment::pulled_source`). Holding it keeps no connector open.
pub(crate) struct Stock<T> {
    pool: Arc<Pool<T>>,
    size: Arc<BatchSize>,
}

impl<T> Stock<T> {
    /// An empty vector for `capacity` items, recycled if the pool has one.
    pub(crate) fn fresh(&self, capacity: usize) -> Vec<T> {
        self.pool.take(capacity)
    }

    /// Gives back an emptied vector.
    pub(crate) fn recycle(&self, spent: Vec<T>) {
        self.pool.give(spent);
    }

    /// The batch size of the batches it makes.
    pub(crate) fn batch_size(&self) -> &Arc<BatchSize> {
        &self.size
    }
}

/// The receiving end of a connector.
pub(crate) struct Inlet<T> {
    rx: Receiver<Batch<T>>,
    pool: Arc<Pool<T>>,
    size: Arc<BatchSize>,
}

impl<T> Clone for Inlet<T> {
    fn clone(&self) -> Self {
        Inlet {
            rx: self.rx.clone(),
            pool: Arc::clone(&self.pool),
            size: Arc::clone(&self.size),
        }
    }
}

/// A connector holding at most `capacity` batches of `size` items. Its two ends share a
/// [`Pool`] (the consumer gives back the vectors it emptied, the producer fills them again)
/// and the [`BatchSize`] (producers fill batches to it; both ends measure for it).
pub(crate) fn connector<T>(capacity: usize, size: Arc<BatchSize>) -> (Outlet<T>, Inlet<T>) {
    let (tx, rx) = bounded(capacity.max(1));
    let pool = Arc::new(Pool::new());
    (
        Outlet {
            tx,
            pool: Arc::clone(&pool),
            size: Arc::clone(&size),
        },
        Inlet { rx, pool, size },
    )
}

/// What a receive that must not wait found.
pub(crate) enum Poll<T> {
    Ready(Batch<T>),
    Empty,
    Closed,
}

impl<T> Outlet<T> {
    /// The connector's batch size: fill batches to [`get`](BatchSize::get), and report
    /// how long filling took ([`filled`](BatchSize::filled)).
    pub(crate) fn batch_size(&self) -> &BatchSize {
        &self.size
    }

    /// An empty vector for the next batch, with room for `capacity` items (recycled if the
    /// consumer gave one back).
    pub(crate) fn fresh(&self, capacity: usize) -> Vec<T> {
        self.pool.take(capacity)
    }

    /// The connector's pool and batch size, without the sender.
    pub(crate) fn own_stock(&self) -> Stock<T> {
        self.stock(Arc::clone(&self.size))
    }

    /// The connector's pool, without the sender, for batches of `size`.
    pub(crate) fn stock(&self, size: Arc<BatchSize>) -> Stock<T> {
        Stock {
            pool: Arc::clone(&self.pool),
            size,
        }
    }

    /// A vector the consumer gave back, if there is one.
    pub(crate) fn recycled(&self) -> Option<Vec<T>> {
        self.pool.take_recycled()
    }

    /// Gives back a vector this side emptied (e.g. by merging batches).
    pub(crate) fn recycle(&self, spent: Vec<T>) {
        self.pool.give(spent);
    }

    /// Sends `batch`, waiting while the connector is full (calling `waiting` first if it
    /// must). Returns how long it waited, or the batch if every inlet is gone.
    pub(crate) fn send_or_wait(
        &self,
        batch: Batch<T>,
        waiting: impl FnOnce(),
    ) -> Result<Duration, Batch<T>> {
        match self.tx.try_send(batch) {
            Ok(()) => Ok(Duration::ZERO),
            Err(TrySendError::Disconnected(batch)) => Err(batch),
            Err(TrySendError::Full(batch)) => {
                waiting();
                let start = Instant::now();
                match self.tx.send(batch) {
                    Ok(()) => Ok(start.elapsed()),
                    Err(e) => Err(e.into_inner()),
                }
            }
        }
    }
}

impl<T> Inlet<T> {
    /// The connector's batch size: report how long a batch took to process
    /// ([`used`](BatchSize::used)).
    pub(crate) fn batch_size(&self) -> &BatchSize {
        &self.size
    }

    /// The connector's pool, for a consumer on another thread to give emptied vectors
    /// back to (see `response::Carried`).
    pub(crate) fn stock(&self) -> Stock<T> {
        Stock {
            pool: Arc::clone(&self.pool),
            size: Arc::clone(&self.size),
        }
    }

    /// Gives back the vector of a batch this side emptied, for the producer to fill again.
    pub(crate) fn recycle(&self, spent: Vec<T>) {
        self.pool.give(spent);
    }

    /// Takes the next batch if one is queued.
    pub(crate) fn poll(&self) -> Poll<T> {
        match self.rx.try_recv() {
            Ok(batch) => Poll::Ready(batch),
            Err(TryRecvError::Empty) => Poll::Empty,
            Err(TryRecvError::Disconnected) => Poll::Closed,
        }
    }

    /// Waits for the next batch; `None` once every outlet is gone and the queue is empty.
    /// Returns how long it waited with the batch.
    pub(crate) fn recv(&self) -> Option<(Batch<T>, Duration)> {
        let start = Instant::now();
        self.rx.recv().ok().map(|b| (b, start.elapsed()))
    }

    /// Batches queued now.
    pub(crate) fn len(&self) -> usize {
        self.rx.len()
    }

    /// Takes the next batch: one waiting in the queue, or, if none is, the next to come,
    /// calling `waiting` before it waits. Returns it with the queue as it was found, in
    /// batches ([`found`](Inlet::found), or 0 when it had to wait: a consumer that keeps up
    /// reads an empty queue), and how long it waited; `None` at the end of input.
    pub(crate) fn take(&self, waiting: impl FnOnce()) -> Option<(Batch<T>, u64, Duration)> {
        match self.poll() {
            Poll::Ready(batch) => Some((batch, self.found(), Duration::ZERO)),
            Poll::Closed => None,
            Poll::Empty => {
                waiting();
                let (batch, waited) = self.recv()?;
                Some((batch, 0, waited))
            }
        }
    }

    /// The queue's length, for its mean fill, as seen by a consumer that just took a batch
    /// it found waiting: that batch and those left behind. (Counting a batch it had to wait
    /// for, a queue that never held more than the one item waited for read 25% full.)
    pub(crate) fn found(&self) -> u64 {
        self.len() as u64 + 1
    }
}
