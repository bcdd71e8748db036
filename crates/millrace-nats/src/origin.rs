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
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use millrace::{ItemId, Outcome, PipelineBuilder, Report, Running};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::broker::{Broker, Job};
use crate::edge::{Edge, RawEdge, Wire};
use crate::error::NatsError;
use crate::lease::Lease;
use crate::publish::{part_header, publish_until_acked};
use crate::pull::Puller;
use crate::report::RemoteReport;
use crate::wire::{decode, encode, run_of, EndKind, EndedBatch, Envelope, EnvelopeRef};
use crate::wire_ids::{IdSet, Origins};

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
    job: String,
    /// The job's fingerprint, sent with every batch (see [`Job::fingerprint`]).
    fingerprint: Option<Arc<str>>,
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
            job: self.name.to_string(),
            fingerprint: self.fingerprint.clone(),
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
    /// [`NatsError::JobBusy`] if another origin has a run going on the job (two would take
    /// each other's results: see [`lease`](crate::lease)); [`NatsError::Pipeline`] if the
    /// front part cannot start.
    pub fn start(self, front: PipelineBuilder<In>) -> Result<(Remote<Out>, RemoteEnd), NatsError> {
        let run = new_run_id();
        let broker = self.to.raw.broker.clone();
        let lease = Lease::take(&broker, &self.job, run)?;
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
        let (give_up, given_up) = watch::channel(false);
        let origins = Origins::default();
        let sender = broker.spawn(send(
            Arc::clone(&self.to.raw),
            run,
            self.fingerprint.clone(),
            items_rx,
            total_tx,
            origins.clone(),
            given_up.clone(),
        ));
        // A few messages' worth of outcomes wait here at most.
        let (out_tx, out_rx) = mpsc::channel(4);
        let handed = Handed::default();
        let collector = broker.spawn(collect(
            Arc::clone(&self.from.raw),
            Arc::clone(&self.responses),
            run,
            total_rx,
            out_tx,
            origins,
            given_up,
        ));
        Ok((
            Remote {
                rx: out_rx,
                ready: Vec::new().into_iter(),
                handed: Arc::clone(&handed),
            },
            RemoteEnd {
                broker,
                front: running,
                feeder,
                sender,
                collector,
                give_up: RemoteStop(Arc::new(give_up)),
                lease,
                handed,
            },
        ))
    }
}

/// Waits until [`RemoteStop::give_up`] is called (never, once every handle is gone).
async fn given_up(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|given_up| *given_up).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Stops the publishes still waiting for their acks (`given_up`): their items stay out
/// of the remote report.
fn abandon(in_flight: VecDeque<JoinHandle<()>>) {
    in_flight.iter().for_each(JoinHandle::abort);
}

/// Publishes awaiting their acks at once, at most (per edge and origin).
const IN_FLIGHT: usize = 4;

/// Publishes the front part's outputs in batches; says how many when they end.
async fn send<In: Wire>(
    edge: Arc<RawEdge>,
    run: u64,
    fingerprint: Option<Arc<str>>,
    mut items: mpsc::Receiver<(ItemId, In)>,
    total: watch::Sender<Option<u64>>,
    origins: Origins,
    mut give_up: watch::Receiver<bool>,
) -> Result<(), NatsError> {
    let batch = edge.config.batch;
    let mut next_id = 0u64;
    let mut buf = Vec::with_capacity(batch);
    let mut ids = Vec::with_capacity(batch);
    let mut front_ids = Vec::with_capacity(batch);
    let mut in_flight = VecDeque::new();
    loop {
        let next = tokio::select! {
            biased;
            () = given_up(&mut give_up) => {
                abandon(in_flight);
                return Ok(());
            }
            next = items.recv() => next,
        };
        let Some((id, first)) = next else {
            break;
        };
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
        (origins.issued).store(next_id + buf.len() as u64, Ordering::Release);
        // Up to IN_FLIGHT publishes await their acks at once; each is retried until acked.
        if in_flight.len() >= IN_FLIGHT && !ack_oldest(&mut in_flight, &mut give_up).await {
            return Ok(());
        }
        let (edge, fingerprint) = (Arc::clone(&edge), fingerprint.clone());
        in_flight.push_back(tokio::spawn(async move {
            publish_until_acked(
                &edge.broker,
                &edge.names.subject,
                &msg_id,
                Bytes::from(payload),
                &part_header(fingerprint.as_deref()),
            )
            .await;
        }));
        next_id += buf.len() as u64;
        buf.clear();
    }
    while !in_flight.is_empty() {
        if !ack_oldest(&mut in_flight, &mut give_up).await {
            return Ok(());
        }
    }
    let _ = total.send(Some(next_id));
    Ok(())
}

/// Waits for the oldest publish in flight to be acked; `false` (every publish abandoned)
/// if the origin gave up first.
async fn ack_oldest(
    in_flight: &mut VecDeque<JoinHandle<()>>,
    give_up: &mut watch::Receiver<bool>,
) -> bool {
    let Some(oldest) = in_flight.front_mut() else {
        return true;
    };
    tokio::select! {
        biased;
        () = given_up(give_up) => {
            abandon(std::mem::take(in_flight));
            false
        }
        _ = oldest => {
            in_flight.pop_front();
            true
        }
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
    origins: Origins,
    mut give_up: watch::Receiver<bool>,
) -> Result<RemoteReport, NatsError> {
    // An id this run has not issued is not this run's (a message from elsewhere that
    // happens to carry its run id): dropped, never a huge set.
    let issued_so_far = Arc::clone(&origins.issued);
    let issued = |id: u64| id < issued_so_far.load(Ordering::Acquire);
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
            // What has come back so far is the report; the rest was published (or was
            // being published) and did not come back in time.
            () = given_up(&mut give_up) => {
                seen.report.published =
                    published.unwrap_or_else(|| issued_so_far.load(Ordering::Acquire));
                return Ok(seen.report);
            }
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
                Err(_) => {
                    // Nobody reads any more (the back part stopped): what is held, and
                    // what is still on its way, is not back.
                    seen.report.published =
                        published.unwrap_or_else(|| issued_so_far.load(Ordering::Acquire));
                    return Ok(seen.report);
                }
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
                        EndKind::Filtered => RemoteOutcome::Filtered { stage: e.stage },
                        EndKind::Failed(error) => RemoteOutcome::Failed { stage: e.stage, error },
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
    /// The outcomes it handed out, counted as it hands each: the remote report's delivered,
    /// filtered and failed (an outcome the collector sent that nobody took is not back).
    handed: Handed,
}

/// The outcomes a [`Remote`] handed out, for [`RemoteEnd::finish`].
type Handed = Arc<std::sync::Mutex<RemoteReport>>;

impl<Out> Iterator for Remote<Out> {
    type Item = (ItemId, RemoteOutcome<Out>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(next) = self.ready.next() {
                self.handed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .count(&next.0, &next.1);
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
    give_up: RemoteStop,
    /// The job's lease, held while the run goes (see [`crate::lease`]).
    lease: Lease,
    /// What the [`Remote`] handed out.
    handed: Handed,
}

/// Ends an origin's wait for its remote parts: see [`RemoteEnd::stopper`].
#[derive(Clone, Debug)]
pub struct RemoteStop(Arc<watch::Sender<bool>>);

impl RemoteStop {
    /// Stops waiting for the remote parts: the publisher drops the publishes not yet
    /// acked, and the collector ends with what has come back, so the [`Remote`] iterator
    /// ends at once. The [`RemoteReport`] then says what was published and what came
    /// back; the rest is left on the broker: once a later run of the job has started,
    /// workers drop it unprocessed ([`WorkerReport::stale`](crate::WorkerReport::stale)),
    /// and the origin drops any result of it that was already made.
    pub fn give_up(&self) {
        self.0.send_replace(true);
    }
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

    /// A handle that gives up waiting for the remote parts ([`RemoteStop::give_up`]): for
    /// an origin stopped early whose items may never come back (no worker takes them, or
    /// the edge is full), which would otherwise wait for them for ever.
    pub fn stopper(&self) -> RemoteStop {
        self.give_up.clone()
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
        let sent = joined(self.broker.block_on(self.sender));
        let remote = joined(self.broker.block_on(self.collector));
        // The run is over either way: the job takes another.
        self.lease.release();
        sent??;
        let mut remote = remote??;
        remote.handed(
            &self
                .handed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        Ok(RemoteFinished { front, remote })
    }
}
