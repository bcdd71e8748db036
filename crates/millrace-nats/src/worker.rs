//! A worker: runs one part of a pipeline (one stage, or a run of stages) on items taken off
//! a broker edge, and publishes its outputs to the next edge. Start as many as needed, in
//! as many processes and machines: they share the edge's durable consumer, so each message
//! goes to one of them (scaling out is starting another worker).
//!
//! Inside, the part is an ordinary millrace pipeline fed by a
//! [`Submitter`](millrace::Submitter) and closed with
//! [`respond`](millrace::PipelineBuilder::respond), so each item's outcome comes back with
//! its local id:
//!
//! 1. a **puller** task takes messages off the inward edge (a message on its last allowed
//!    delivery, or one that cannot be decoded, goes to the dead letters with its error,
//!    and its items are answered as failed), registers each as *pending* and hands its
//!    items to the feeder thread, which submits them;
//! 2. the **responder** thread files each outcome under its message (an output with the
//!    item's wire id; a filtered or failed item as ended); when a message has every
//!    outcome it is complete;
//! 3. the **finisher** task publishes a complete message's outputs to the outward edge and
//!    its ended items to the job's response stream, awaits both acks, and only then acks
//!    the inward message (double ack: the server confirms it);
//! 4. a **keeper** task tells the server, every third of `ack_wait`, that pending messages
//!    are still being worked on, so only a worker that died (or lost the server for longer
//!    than `ack_wait`) has its messages given to another.
//!
//! A worker that dies after publishing but before acking has its message redelivered; the
//! outputs published again carry the same message id (the server's duplicate window drops
//! them) and the origin drops any copy that still gets through by wire id.
//!
//! A flat-map inside a remote part is not supported yet (its children would need wire ids
//! of their own): its item is answered as failed, saying so. Put flat-maps in the origin.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;
use millrace::{ItemErrorKind, Outcome, Pipeline, PipelineBuilder, Report, Responses};
use tokio::sync::{mpsc, watch};

use crate::broker::Job;
use crate::edge::{Edge, RawEdge, Wire};
use crate::error::NatsError;
use crate::lease::holder_run;
use crate::publish::{part_header, publish_until_acked, ERROR_HEADER, PART_HEADER};
use crate::pull::Puller;
use crate::wire::{decode, encode, EndKind, Ended, EndedBatch, Envelope, EnvelopeRef};

/// A part to run on items of `In` from one edge, sending `Out` to the next.
pub struct WorkerPart<In, Out> {
    job: Arc<str>,
    /// The job's fingerprint, checked on every message taken and sent with every batch
    /// published (see [`Job::fingerprint`]).
    fingerprint: Option<Arc<str>>,
    from: Edge<In>,
    to: Edge<Out>,
    responses: Arc<RawEdge>,
    part: Box<dyn FnOnce(PipelineBuilder<In>) -> PipelineBuilder<Out> + Send>,
}

impl<In, Out> std::fmt::Debug for WorkerPart<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPart")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// A worker that takes items of `In` off `from`, runs them through the stages `part`
    /// adds to the builder it is given, and publishes the outputs to `to`.
    ///
    /// # Errors
    ///
    /// As [`Job::edge`], for the job's response stream.
    pub fn worker<In: Wire, Out: Wire>(
        &self,
        from: &Edge<In>,
        to: &Edge<Out>,
        part: impl FnOnce(PipelineBuilder<In>) -> PipelineBuilder<Out> + Send + 'static,
    ) -> Result<WorkerPart<In, Out>, NatsError> {
        Ok(WorkerPart {
            job: Arc::clone(&self.name),
            fingerprint: self.fingerprint.clone(),
            from: from.clone(),
            to: to.clone(),
            responses: self.response_edge()?,
            part: Box::new(part),
        })
    }
}

/// One message whose items are in the part.
struct Pending<Out> {
    message: Message,
    run: u64,
    /// The wire ids of its items, in order.
    ids: Vec<u64>,
    /// Which items have had their outcome (a flat-map's further children are dropped).
    answered: Vec<bool>,
    remaining: usize,
    out_ids: Vec<u64>,
    out_items: Vec<Out>,
    ended: Vec<Ended>,
}

/// What the puller, feeder and responder share.
struct Book<Out> {
    /// The first local item id of each pending message → its key. A message's items get
    /// consecutive local ids (one thread submits them), so a range lookup finds it.
    slots: BTreeMap<u64, u64>,
    /// Message key (its stream sequence) → the message.
    pending: HashMap<u64, Pending<Out>>,
}

type Shared<Out> = Arc<Mutex<Book<Out>>>;

fn lock<Out>(book: &Shared<Out>) -> std::sync::MutexGuard<'_, Book<Out>> {
    book.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A message's items, from the puller to the feeder.
struct Arrival<In> {
    key: u64,
    items: Vec<In>,
}

/// What a worker did, when it stops.
#[derive(Debug)]
#[non_exhaustive]
pub struct WorkerReport {
    /// The part's own pipeline report (per stage: items, busy / idle / blocked).
    pub pipeline: Report,
    /// Messages taken and finished.
    pub messages: u64,
    /// Messages sent to the dead letters.
    pub dead_lettered: u64,
    /// Messages of an earlier run dropped unprocessed: the job's lease named another run,
    /// so their origin was gone (an interrupted run leaves its published items on the edge).
    pub stale: u64,
}

/// A running worker: [`stop`](WorkerHandle::stop) it, then [`join`](WorkerHandle::join).
#[derive(Debug)]
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    running: millrace::Running<()>,
    feeder: std::thread::JoinHandle<()>,
    responder: std::thread::JoinHandle<()>,
    puller: tokio::task::JoinHandle<()>,
    finisher: tokio::task::JoinHandle<()>,
    keeper: tokio::task::JoinHandle<()>,
    counts: Arc<Counts>,
    /// Why the worker stopped by itself, if it did (a message from an origin whose remote
    /// part differs: see [`Job::fingerprint`]).
    refused: Arc<OnceLock<NatsError>>,
    broker: crate::Broker,
}

#[derive(Debug, Default)]
struct Counts {
    messages: AtomicU64,
    dead_lettered: AtomicU64,
    stale: AtomicU64,
}

impl<In: Wire, Out: Wire> WorkerPart<In, Out> {
    /// Starts the worker: it takes messages until [stopped](WorkerHandle::stop).
    ///
    /// # Errors
    ///
    /// [`NatsError::Pipeline`] if the part's pipeline cannot start.
    pub fn spawn(self) -> Result<WorkerHandle, NatsError> {
        let from = Arc::clone(&self.from.raw);
        let broker = from.broker.clone();
        let capacity = from.config.batch.saturating_mul(2);
        let (submitter, builder) = Pipeline::submitter::<In>(capacity);
        let (running, responses) = (self.part)(builder)
            .respond()
            .map_err(|e| NatsError::Pipeline(e.to_string()))?;
        let book: Shared<Out> = Arc::new(Mutex::new(Book {
            slots: BTreeMap::new(),
            pending: HashMap::new(),
        }));
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = watch::channel(false);
        let (arrivals_tx, mut arrivals_rx) = mpsc::channel::<Arrival<In>>(2);
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Pending<Out>>();
        let refused = Arc::new(OnceLock::new());

        let feeder_book = Arc::clone(&book);
        let feeder = thread("millrace-nats-feed", move || {
            let mut next_local = 0u64;
            while let Some(arrival) = arrivals_rx.blocking_recv() {
                lock(&feeder_book).slots.insert(next_local, arrival.key);
                for item in arrival.items {
                    // One thread submits, so the ids count submissions.
                    match submitter.submit(item) {
                        Ok(id) => debug_assert_eq!(id.origin(), next_local),
                        Err(_) => return,
                    }
                    next_local += 1;
                }
            }
        })?;
        let responder_book = Arc::clone(&book);
        let responder = thread("millrace-nats-answer", move || {
            answer(responses, &responder_book, &done_tx);
        })?;
        let puller = broker.spawn(pull(
            from.clone(),
            Arc::clone(&self.responses),
            Arc::clone(&book),
            arrivals_tx,
            stopped,
            Arc::clone(&counts),
            Check {
                job: Arc::clone(&self.job),
                fingerprint: self.fingerprint.clone(),
                refused: Arc::clone(&refused),
            },
        ));
        let finisher = broker.spawn(finish(
            self.fingerprint.clone(),
            Arc::clone(&self.to.raw),
            from.clone(),
            Arc::clone(&self.responses),
            done_rx,
            Arc::clone(&counts),
        ));
        let keeper = broker.spawn(keep_alive(Arc::clone(&book), from.config.ack_wait / 3));
        Ok(WorkerHandle {
            stop,
            running,
            feeder,
            responder,
            puller,
            finisher,
            keeper,
            counts,
            refused,
            broker,
        })
    }
}

fn thread(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, NatsError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| NatsError::request(format!("starting thread `{name}`"), e))
}

/// An item error as text, without the worker's local item id.
fn describe(e: &millrace::ItemError) -> String {
    match e.kind() {
        ItemErrorKind::Failed(err) => err.to_string(),
        ItemErrorKind::Panicked(msg) => format!("panicked: {msg}"),
        ItemErrorKind::TimedOut(limit) => format!("timed out after {limit:?}"),
        _ => e.to_string(),
    }
}

/// The responder: files each outcome under its message; hands complete messages on.
fn answer<Out: Wire>(
    responses: Responses<Out>,
    book: &Shared<Out>,
    done: &mpsc::UnboundedSender<Pending<Out>>,
) {
    for (id, outcome) in responses {
        let mut book = lock(book);
        let local = id.origin();
        let Some((&base, &key)) = book.slots.range(..=local).next_back() else {
            continue;
        };
        let Some(pending) = book.pending.get_mut(&key) else {
            continue;
        };
        let index = (local - base) as usize;
        if pending.answered.get(index).copied() != Some(false) {
            continue; // a further child of a flat-map, already answered
        }
        pending.answered[index] = true;
        let wire_id = pending.ids[index];
        let ended = |stage: &str, kind| Ended {
            id: wire_id,
            stage: stage.to_owned(),
            kind,
        };
        if id.is_child() {
            pending.ended.push(ended(
                "flat_map",
                EndKind::Failed(
                    "a flat-map inside a remote part is not supported yet: put it in the \
                     origin's part"
                        .into(),
                ),
            ));
        } else {
            match outcome {
                Outcome::Output(item) => {
                    pending.out_ids.push(wire_id);
                    pending.out_items.push(item);
                }
                Outcome::Filtered { stage } => pending.ended.push(ended(&stage, EndKind::Filtered)),
                Outcome::Failed(e) => {
                    pending
                        .ended
                        .push(ended(e.stage(), EndKind::Failed(describe(&e))));
                }
                // The part is only ever stopped, never cancelled: nothing to answer.
                _ => {}
            }
        }
        pending.remaining -= 1;
        if pending.remaining == 0 {
            book.slots.remove(&base);
            if let Some(complete) = book.pending.remove(&key) {
                let _ = done.send(complete);
            }
        }
    }
}

/// What the puller checks each message's fingerprint against, and where it says why it
/// stopped if one differs.
struct Check {
    job: Arc<str>,
    fingerprint: Option<Arc<str>>,
    refused: Arc<OnceLock<NatsError>>,
}

impl Check {
    /// Whether `message` may be taken: its fingerprint, if it has one, is this worker's (if
    /// it has one). If not, says why in `refused`.
    fn passes(&self, from: &RawEdge, message: &Message) -> bool {
        let theirs = message
            .headers
            .as_ref()
            .and_then(|h| h.get(PART_HEADER))
            .map(|v| v.as_str());
        match (theirs, self.fingerprint.as_deref()) {
            (Some(theirs), Some(ours)) if theirs != ours => {
                let _ = self.refused.set(NatsError::PartMismatch {
                    job: self.job.to_string(),
                    edge: from.edge.to_string(),
                    ours: ours.to_owned(),
                    theirs: theirs.to_owned(),
                });
                false
            }
            _ => true,
        }
    }
}

/// The puller: takes messages until stopped, or until a message's fingerprint differs from
/// the worker's (it is given back, for a worker that agrees with its origin).
#[allow(clippy::too_many_arguments)]
async fn pull<In: Wire, Out: Wire>(
    from: Arc<RawEdge>,
    responses: Arc<RawEdge>,
    book: Shared<Out>,
    arrivals: mpsc::Sender<Arrival<In>>,
    mut stopped: watch::Receiver<bool>,
    counts: Arc<Counts>,
    check: Check,
) {
    let mut puller = Puller::new(from.consumer.clone(), format!("edge `{}`", from.edge));
    // The run whose messages were last found current (the job's lease named it).
    let mut current = None;
    loop {
        // A message is asked for only once the feeder has room for it: every message this
        // worker was given is pending (kept alive) from the moment it arrives.
        let room = tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            room = arrivals.reserve() => match room {
                Ok(room) => room,
                Err(_) => return,
            },
        };
        let message = tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            message = puller.next(true) => message,
        };
        let (key, delivered) = match message.info() {
            Ok(info) => (info.stream_sequence, info.delivered),
            Err(_) => continue,
        };
        if !check.passes(&from, &message) {
            let _ = message.ack_with(AckKind::Nak(None)).await;
            return;
        }
        let envelope = decode::<Envelope<In>>(&message.payload).and_then(|e| {
            if e.ids.len() == e.items.len() {
                Ok(e)
            } else {
                Err(format!("{} ids for {} items", e.ids.len(), e.items.len()))
            }
        });
        // An earlier run's leftover is dropped unprocessed: where the job's lease names
        // another run, the message's origin is gone and nothing will take its results. (No
        // lease: processed, as an origin that lost its lease to a server outage may still
        // be waiting for them.)
        if let Some(run) = envelope.as_ref().ok().map(|e| e.run) {
            if current != Some(run) {
                let holder = holder_run(&from.broker, &check.job).await;
                if holder.is_some_and(|holder| holder != run) {
                    let _ = message.double_ack().await;
                    counts.stale.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                current = holder;
            }
        }
        let envelope = match envelope {
            Ok(e) if delivered < from.config.max_deliver || from.config.max_deliver <= 0 => e,
            Ok(_) => {
                let why = format!(
                    "delivered {delivered} times without being finished (the workers that took \
                     it died, or lost the server for longer than ack_wait)"
                );
                dead_letter(&from, &responses, &message, &why).await;
                counts.dead_lettered.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(why) => {
                dead_letter(&from, &responses, &message, &why).await;
                counts.dead_lettered.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        if envelope.ids.is_empty() {
            let _ = message.ack().await;
            continue;
        }
        lock(&book).pending.insert(
            key,
            Pending {
                message,
                run: envelope.run,
                answered: vec![false; envelope.ids.len()],
                remaining: envelope.ids.len(),
                out_ids: Vec::with_capacity(envelope.ids.len()),
                out_items: Vec::with_capacity(envelope.ids.len()),
                ended: Vec::new(),
                ids: envelope.ids,
            },
        );
        room.send(Arrival {
            key,
            items: envelope.items,
        });
    }
}

/// The head of an envelope: its run and ids, readable whatever the item type.
#[derive(serde::Deserialize)]
struct Head {
    run: u64,
    ids: Vec<u64>,
}

/// Sends `message` to the edge's dead letters with `why`, answers its items (if their ids
/// can be read) as failed, and terminates it.
async fn dead_letter(from: &RawEdge, responses: &RawEdge, message: &Message, why: &str) {
    let header = why.replace(['\r', '\n'], " ");
    let key = message.info().map_or(0, |i| i.stream_sequence);
    let msg_id = format!("dead-{key}");
    publish_until_acked(
        &from.broker,
        &from.names.dead_subject,
        &msg_id,
        message.payload.clone(),
        &[(ERROR_HEADER, &header)],
    )
    .await;
    eprintln!(
        "millrace-nats: a message of edge `{}` went to the dead letters (`{}`): {why}",
        from.edge, from.names.dead_stream
    );
    if let Ok((head, _)) = postcard::take_from_bytes::<Head>(&message.payload) {
        let stage = format!("broker edge {}", from.edge);
        let batch = EndedBatch {
            run: head.run,
            ended: head
                .ids
                .iter()
                .map(|&id| Ended {
                    id,
                    stage: stage.clone(),
                    kind: EndKind::Failed(why.to_owned()),
                })
                .collect(),
        };
        if let Ok(payload) = encode(&batch) {
            publish_until_acked(
                &responses.broker,
                &responses.names.subject,
                &format!("{}-dead-{key}", from.edge),
                Bytes::from(payload),
                &[],
            )
            .await;
        }
    }
    let _ = message.ack_with(AckKind::Term).await;
}

/// The finisher: publishes each complete message's results, then acks it.
async fn finish<Out: Wire>(
    fingerprint: Option<Arc<str>>,
    to: Arc<RawEdge>,
    from: Arc<RawEdge>,
    responses: Arc<RawEdge>,
    mut done: mpsc::UnboundedReceiver<Pending<Out>>,
    counts: Arc<Counts>,
) {
    // Up to IN_FLIGHT messages are being published and acked at once.
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(p) = done.recv().await {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let (fingerprint, to, from, responses, counts) = (
            fingerprint.clone(),
            Arc::clone(&to),
            Arc::clone(&from),
            Arc::clone(&responses),
            Arc::clone(&counts),
        );
        tasks.spawn(async move {
            publish_and_ack(p, fingerprint.as_deref(), &to, &from, &responses).await;
            counts.messages.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Messages a worker publishes and acks at once, at most.
const IN_FLIGHT: usize = 8;

/// Publishes one complete message's outputs and ended items, then acks it.
async fn publish_and_ack<Out: Wire>(
    p: Pending<Out>,
    fingerprint: Option<&str>,
    to: &RawEdge,
    from: &RawEdge,
    responses: &RawEdge,
) {
    // The same inward message always gives the same message ids: a redelivered one's
    // results, published again, fall in the server's duplicate window.
    let msg_id = format!("{:x}-{}-{}", p.run, from.edge, p.ids[0]);
    if !p.out_items.is_empty() {
        let encoded = encode(&EnvelopeRef {
            run: p.run,
            ids: &p.out_ids,
            items: &p.out_items,
        });
        match encoded {
            Ok(payload) => {
                publish_until_acked(
                    &to.broker,
                    &to.names.subject,
                    &msg_id,
                    payload.into(),
                    &part_header(fingerprint),
                )
                .await;
            }
            Err(e) => eprintln!("millrace-nats: {e}"),
        }
    }
    if !p.ended.is_empty() {
        let batch = EndedBatch {
            run: p.run,
            ended: p.ended,
        };
        if let Ok(payload) = encode(&batch) {
            publish_until_acked(
                &responses.broker,
                &responses.names.subject,
                &msg_id,
                payload.into(),
                &[],
            )
            .await;
        }
    }
    for _ in 0..3 {
        if p.message.double_ack().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The keeper: tells the server pending messages are still being worked on.
async fn keep_alive<Out>(book: Shared<Out>, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    tick.tick().await;
    loop {
        tick.tick().await;
        let messages: Vec<Message> = lock(&book)
            .pending
            .values()
            .map(|p| p.message.clone())
            .collect();
        for m in messages {
            let _ = m.ack_with(AckKind::Progress).await;
        }
    }
}

impl WorkerHandle {
    /// Stops taking messages; what was taken is finished (acked) before
    /// [`join`](WorkerHandle::join) returns.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Whether the worker stopped by itself: it took a message whose fingerprint differs
    /// from its own (see [`Job::fingerprint`]) and gave it back. [`join`](WorkerHandle::join)
    /// then says so.
    pub fn stopped_itself(&self) -> bool {
        self.refused.get().is_some()
    }

    /// Waits for the worker to stop (after [`stop`](WorkerHandle::stop), or by itself).
    /// The messages it took are finished and acked first.
    ///
    /// # Errors
    ///
    /// [`NatsError::Pipeline`] if the part's pipeline failed; [`NatsError::PartMismatch`]
    /// if it stopped by itself, at a message from an origin whose remote part differs.
    pub fn join(self) -> Result<WorkerReport, NatsError> {
        let _ = self.broker.block_on(self.puller);
        let _ = self.feeder.join();
        let report = self
            .running
            .join()
            .map_err(|e| NatsError::Pipeline(e.to_string()))?
            .report;
        let _ = self.responder.join();
        let _ = self.broker.block_on(self.finisher);
        self.keeper.abort();
        if let Some(refused) = self.refused.get() {
            return Err(refused.clone());
        }
        Ok(WorkerReport {
            pipeline: report,
            messages: self.counts.messages.load(Ordering::Relaxed),
            dead_lettered: self.counts.dead_lettered.load(Ordering::Relaxed),
            stale: self.counts.stale.load(Ordering::Relaxed),
        })
    }
}
