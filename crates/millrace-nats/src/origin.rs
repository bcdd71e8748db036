//! The origin: the process that runs a pipeline's source side and takes its results back.
//!
//! [`Origin::start`] runs the front part (an ordinary millrace pipeline ending at the
//! first broker edge) with [`respond`](millrace::PipelineBuilder::respond): each output
//! that comes back up its response path gets the next **wire id** and is published, in
//! batches of up to the edge's `batch` items per message, each publish awaited until the
//! server has it. Meanwhile a collector pulls the last edge (the remote parts' outputs)
//! and the job's response stream (items that ended remotely), drops what it has already
//! seen by wire id, acks, and hands each item's [`RemoteOutcome`] to the [`Remote`]
//! iterator. When the front part has ended and every published id has its outcome, the
//! iterator ends; [`RemoteEnd::finish`] returns the front part's [`Report`] and the
//! [`RemoteReport`] of the rest.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use millrace::{ItemId, Outcome, PipelineBuilder, Report, Running};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::broker::{Broker, Job};
use crate::edge::{Edge, RawEdge, Wire};
use crate::error::NatsError;
use crate::publish::publish_until_acked;
use crate::pull::Puller;
use crate::report::RemoteReport;
use crate::wire::{decode, encode, run_of, EndKind, EndedBatch, Envelope, EnvelopeRef};

/// What became of one item the origin sent across the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteOutcome<T> {
    /// Its output, back from the last edge.
    Output(T),
    /// A remote stage filtered it out.
    Filtered {
        /// That stage.
        stage: String,
    },
    /// A remote stage failed on it (or its message was dead-lettered).
    Failed {
        /// That stage (`broker edge <name>` for a dead letter).
        stage: String,
        /// The error.
        error: String,
    },
}

impl<T> RemoteOutcome<T> {
    /// The output, if the item produced one.
    pub fn output(self) -> Option<T> {
        match self {
            RemoteOutcome::Output(t) => Some(t),
            _ => None,
        }
    }
}

/// The source side of a pipeline split over a broker: see the module docs.
#[derive(Debug)]
pub struct Origin<In, Out> {
    to: Edge<In>,
    from: Edge<Out>,
    responses: Arc<RawEdge>,
}

impl Job {
    /// The origin of a pipeline that sends items of type `In` on `to` and takes items of
    /// type `Out` back from `from`; the parts in between run as [workers](Job::worker).
    ///
    /// # Errors
    ///
    /// As [`Job::edge`], for the job's response stream.
    pub fn origin<In: Wire, Out: Wire>(
        &self,
        to: &Edge<In>,
        from: &Edge<Out>,
    ) -> Result<Origin<In, Out>, NatsError> {
        Ok(Origin {
            to: to.clone(),
            from: from.clone(),
            responses: self.response_edge()?,
        })
    }
}

/// A run id: different for every origin run (time and process id).
fn new_run_id() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 40)
}

impl<In: Wire, Out: Wire> Origin<In, Out> {
    /// Starts the front part `front` (its outputs cross onto the broker) and the collector
    /// of what comes back.
    ///
    /// Read the [`Remote`] iterator from a plain thread (not inside an async runtime),
    /// then call [`RemoteEnd::finish`].
    ///
    /// # Errors
    ///
    /// [`NatsError::Pipeline`] if the front part cannot start.
    pub fn start(self, front: PipelineBuilder<In>) -> Result<(Remote<Out>, RemoteEnd), NatsError> {
        let run = new_run_id();
        let broker = self.to.raw.broker.clone();
        let (running, responses) = front
            .respond()
            .map_err(|e| NatsError::Pipeline(e.to_string()))?;
        let batch = self.to.raw.config.batch;
        let (items_tx, items_rx) = mpsc::channel::<(ItemId, In)>(batch.saturating_mul(4).max(64));
        let feeder = std::thread::Builder::new()
            .name("millrace-nats-origin".into())
            .spawn(move || {
                for (id, outcome) in responses {
                    // The front part's own filtered and failed items are in its report.
                    if let Outcome::Output(item) = outcome {
                        if items_tx.blocking_send((id, item)).is_err() {
                            break;
                        }
                    }
                }
            })
            .map_err(|e| NatsError::request("starting the origin's feeder thread", e))?;
        let (total_tx, total_rx) = watch::channel(None);
        let issued = Arc::new(AtomicU64::new(0));
        let origins = Origins::default();
        let sender = broker.spawn(send(
            Arc::clone(&self.to.raw),
            run,
            items_rx,
            total_tx,
            Arc::clone(&issued),
            origins.clone(),
        ));
        // A few messages' worth of outcomes wait here at most.
        let (out_tx, out_rx) = mpsc::channel(4);
        let collector = broker.spawn(collect(
            Arc::clone(&self.from.raw),
            Arc::clone(&self.responses),
            run,
            total_rx,
            out_tx,
            issued,
            origins,
        ));
        Ok((
            Remote {
                rx: out_rx,
                ready: Vec::new().into_iter(),
            },
            RemoteEnd {
                broker,
                front: running,
                feeder,
                sender,
                collector,
            },
        ))
    }
}

/// Publishes awaiting their acks at once, at most (per edge and origin).
const IN_FLIGHT: usize = 4;

/// Publishes the front part's outputs in batches; says how many when they end.
async fn send<In: Wire>(
    edge: Arc<RawEdge>,
    run: u64,
    mut items: mpsc::Receiver<(ItemId, In)>,
    total: watch::Sender<Option<u64>>,
    issued: Arc<AtomicU64>,
    origins: Origins,
) -> Result<(), NatsError> {
    let batch = edge.config.batch;
    let mut next_id = 0u64;
    let mut buf = Vec::with_capacity(batch);
    let mut ids = Vec::with_capacity(batch);
    let mut front_ids = Vec::with_capacity(batch);
    let mut in_flight = std::collections::VecDeque::new();
    while let Some((id, first)) = items.recv().await {
        front_ids.push(id);
        buf.push(first);
        // Everything ready now goes in this message, up to a batch (flush before wait).
        while buf.len() < batch {
            match items.try_recv() {
                Ok((id, item)) => {
                    front_ids.push(id);
                    buf.push(item);
                }
                Err(_) => break,
            }
        }
        origins.issue(&mut front_ids);
        ids.clear();
        ids.extend(next_id..next_id + buf.len() as u64);
        let payload = encode(&EnvelopeRef {
            run,
            ids: &ids,
            items: &buf,
        })?;
        let msg_id = format!("{run:x}-{next_id}");
        issued.store(next_id + buf.len() as u64, Ordering::Release);
        // Up to IN_FLIGHT publishes await their acks at once; each is retried until acked.
        if in_flight.len() >= IN_FLIGHT {
            if let Some(oldest) = in_flight.pop_front() {
                let _ = oldest.await;
            }
        }
        let edge = Arc::clone(&edge);
        in_flight.push_back(tokio::spawn(async move {
            publish_until_acked(
                &edge.broker,
                &edge.names.subject,
                &msg_id,
                Bytes::from(payload),
                None,
            )
            .await;
        }));
        next_id += buf.len() as u64;
        buf.clear();
    }
    for publish in in_flight {
        let _ = publish.await;
    }
    let _ = total.send(Some(next_id));
    Ok(())
}

/// The wire ids seen so far: one bit per id (the origin numbers them densely from 0), so
/// de-duplicating a run of N items costs N / 8 bytes.
#[derive(Default)]
struct IdSet {
    words: Vec<u64>,
    len: u64,
}

impl IdSet {
    /// Adds `id`; false if it was there.
    fn insert(&mut self, id: u64) -> bool {
        let word = (id / 64) as usize;
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let bit = 1u64 << (id % 64);
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        self.len += u64::from(fresh);
        fresh
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// The origin's own id of each wire id not yet answered: wire ids are issued in order, so
/// a queue from the oldest unanswered one holds them, and memory follows the items in
/// flight, not the run.
#[derive(Clone, Default)]
struct Origins(Arc<std::sync::Mutex<OriginsInner>>);

#[derive(Default)]
struct OriginsInner {
    /// The wire id of `slots[0]`.
    base: u64,
    slots: std::collections::VecDeque<Option<ItemId>>,
}

impl Origins {
    fn lock(&self) -> std::sync::MutexGuard<'_, OriginsInner> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Issues the next wire ids to `ids`, in order (and empties it).
    fn issue(&self, ids: &mut Vec<ItemId>) {
        self.lock().slots.extend(ids.drain(..).map(Some));
    }

    /// The origin's id of `wire`, answered now (the caller de-duplicates first).
    fn take(&self, wire: u64) -> ItemId {
        let mut o = self.lock();
        let front = wire
            .checked_sub(o.base)
            .and_then(|i| o.slots.get_mut(i as usize))
            .and_then(Option::take);
        while o.slots.front().is_some_and(Option::is_none) {
            o.slots.pop_front();
            o.base += 1;
        }
        // Issued ids are in the queue until taken once, which de-duplication ensures.
        front.unwrap_or(ItemId::new(wire))
    }
}

/// The collector's state: what has been seen, and the report so far.
struct Seen {
    ids: IdSet,
    report: RemoteReport,
}

/// Takes the remote parts' outputs and ended items, once each, until every published id is
/// accounted for.
async fn collect<Out: Wire>(
    from: Arc<RawEdge>,
    responses: Arc<RawEdge>,
    run: u64,
    mut total: watch::Receiver<Option<u64>>,
    out: mpsc::Sender<Vec<(ItemId, RemoteOutcome<Out>)>>,
    issued: Arc<AtomicU64>,
    origins: Origins,
) -> Result<RemoteReport, NatsError> {
    // An id this run has not issued is not this run's (a message from elsewhere that
    // happens to carry its run id): dropped, never a huge set.
    let issued = |id: u64| id < issued.load(Ordering::Acquire);
    let mut outputs = Puller::new(from.consumer.clone(), format!("edge `{}`", from.edge));
    let mut ended = Puller::new(responses.consumer.clone(), "the response stream".into());
    let mut seen = Seen {
        ids: IdSet::default(),
        report: RemoteReport::default(),
    };
    // Outcomes taken in, not yet handed to the `Remote` iterator. While it holds HOLD
    // messages' worth, no more are asked for (backpressure: they wait on the server).
    let mut held: VecDeque<Vec<(ItemId, RemoteOutcome<Out>)>> = VecDeque::new();
    let mut published: Option<u64> = None;
    let mut total_open = true;
    loop {
        let all_in = match published {
            Some(n) => seen.ids.len() >= n,
            // The front part's sender failed: nothing more will be published.
            None => !total_open,
        };
        if all_in && held.is_empty() {
            seen.report.published = published.unwrap_or(seen.ids.len());
            return Ok(seen.report);
        }
        let ask = held.len() < HOLD && !all_in;
        tokio::select! {
            changed = total.changed(), if total_open => match changed {
                Ok(()) => published = *total.borrow_and_update(),
                // The sender task ended without a total: it failed; its error is joined.
                Err(_) => total_open = false,
            },
            room = out.reserve(), if !held.is_empty() => match room {
                Ok(room) => {
                    if let Some(outcomes) = held.pop_front() {
                        room.send(outcomes);
                    }
                }
                Err(_) => return Ok(seen.report), // nobody reads any more
            },
            message = outputs.next(ask) => {
                // Taken in: from here the run's state holds it (an origin that dies ends
                // its run), so it is acked at once and never waits for its ack_wait.
                let _ = message.ack().await;
                let payload = &message.payload;
                if run_of(payload) != Some(run) {
                    seen.report.stale_dropped += 1;
                    continue;
                }
                let envelope: Envelope<Out> = decode(payload).map_err(|e| {
                    NatsError::request(
                        format!("reading edge `{}`", from.edge),
                        format!("{e}: do the parts agree on the item type?"),
                    )
                })?;
                let mut fresh = Vec::with_capacity(envelope.ids.len());
                for (id, item) in envelope.ids.into_iter().zip(envelope.items) {
                    if !issued(id) {
                        seen.report.stale_dropped += 1;
                    } else if seen.ids.insert(id) {
                        fresh.push((origins.take(id), RemoteOutcome::Output(item)));
                    } else {
                        seen.report.duplicates_dropped += 1;
                    }
                }
                seen.report.delivered += fresh.len() as u64;
                if !fresh.is_empty() {
                    held.push_back(fresh);
                }
            },
            message = ended.next(ask) => {
                let _ = message.ack().await;
                let Some(batch) = decode::<EndedBatch>(&message.payload)
                    .ok()
                    .filter(|b| b.run == run)
                else {
                    seen.report.stale_dropped += 1;
                    continue;
                };
                let mut fresh = Vec::with_capacity(batch.ended.len());
                for e in batch.ended {
                    if !issued(e.id) {
                        seen.report.stale_dropped += 1;
                        continue;
                    }
                    if !seen.ids.insert(e.id) {
                        seen.report.duplicates_dropped += 1;
                        continue;
                    }
                    let front_id = origins.take(e.id);
                    let outcome = match e.kind {
                        EndKind::Filtered => {
                            *seen.report.filtered.entry(e.stage.clone()).or_default() += 1;
                            RemoteOutcome::Filtered { stage: e.stage }
                        }
                        EndKind::Failed(error) => {
                            *seen.report.failed.entry(e.stage.clone()).or_default() += 1;
                            seen.report.error(front_id, format!("stage `{}`: {error}", e.stage));
                            RemoteOutcome::Failed { stage: e.stage, error }
                        }
                    };
                    fresh.push((front_id, outcome));
                }
                if !fresh.is_empty() {
                    held.push_back(fresh);
                }
            },
        }
    }
}

/// Messages' worth of outcomes the collector holds for the `Remote` iterator, at most
/// (beyond it, no more are asked for).
const HOLD: usize = 8;

/// What comes back from the remote parts: each item the origin published, once, with its
/// id in the origin (as its source numbered it, or its flat-map child's) and its
/// [`RemoteOutcome`], so a source can acknowledge its own upstream. Ends when every item is
/// accounted for. Blocking: read it from a plain thread (it can be a millrace pipeline's
/// source).
#[derive(Debug)]
pub struct Remote<Out> {
    rx: mpsc::Receiver<Vec<(ItemId, RemoteOutcome<Out>)>>,
    ready: std::vec::IntoIter<(ItemId, RemoteOutcome<Out>)>,
}

impl<Out> Iterator for Remote<Out> {
    type Item = (ItemId, RemoteOutcome<Out>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(next) = self.ready.next() {
                return Some(next);
            }
            self.ready = self.rx.blocking_recv()?.into_iter();
        }
    }
}

impl<Out: Send + 'static> Remote<Out> {
    /// Only the outputs (filtered and failed items are in the [`RemoteReport`]).
    pub fn outputs(self) -> impl Iterator<Item = Out> + Send + 'static {
        self.filter_map(|(_, outcome)| outcome.output())
    }
}

/// The origin's parts to wait for once its [`Remote`] is read.
#[derive(Debug)]
pub struct RemoteEnd {
    broker: Broker,
    front: Running<()>,
    feeder: std::thread::JoinHandle<()>,
    sender: JoinHandle<Result<(), NatsError>>,
    collector: JoinHandle<Result<RemoteReport, NatsError>>,
}

/// A network task's result, or why it did not finish.
fn joined<T>(r: Result<T, tokio::task::JoinError>) -> Result<T, NatsError> {
    r.map_err(|e| NatsError::request("the origin's network task", e))
}

/// The reports of a run split over a broker.
#[derive(Debug)]
#[non_exhaustive]
pub struct RemoteFinished {
    /// The origin's front part (before the first broker edge).
    pub front: Report,
    /// The remote parts, as their outcomes came back.
    pub remote: RemoteReport,
}

impl RemoteEnd {
    /// A handle on the front part (to stop or cancel it).
    pub fn front(&self) -> millrace::Handle {
        self.front.handle()
    }

    /// Waits for the front part, the publisher and the collector, and returns their
    /// reports. Call it once the [`Remote`] iterator has ended (or was dropped).
    ///
    /// # Errors
    ///
    /// [`NatsError::Pipeline`] if the front part failed, or the publisher's or collector's
    /// error.
    pub fn finish(self) -> Result<RemoteFinished, NatsError> {
        let front = self
            .front
            .join()
            .map_err(|e| NatsError::Pipeline(e.to_string()))?
            .report;
        let _ = self.feeder.join();
        joined(self.broker.block_on(self.sender))??;
        let remote = joined(self.broker.block_on(self.collector))??;
        Ok(RemoteFinished { front, remote })
    }
}

#[cfg(test)]
mod tests {
    use super::IdSet;

    #[test]
    fn an_id_is_new_once() {
        let mut ids = IdSet::default();
        assert!(ids.insert(0) && ids.insert(130) && ids.insert(63));
        assert!(!ids.insert(130) && !ids.insert(0));
        assert_eq!(ids.len(), 3);
    }
}
