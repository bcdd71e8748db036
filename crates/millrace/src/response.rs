//! The response path: what happened to each item, carried back upstream.
//!
//! The blog's pipelines pair every forward channel with a second one-way channel back, so a
//! later stage can tell the stage that sent an item what became of it. millrace makes that a
//! first-class, opt-in feature:
//!
//! * A stage with a hook ([`Stage::on_response`](crate::Stage::on_response)) sees a
//!   [`Status`] for every item it sent on, once that item's fate is known: delivered to the
//!   sink, filtered out by a later stage, failed, or cancelled.
//! * The submitter of a serving pipeline
//!   ([`PipelineBuilder::respond`](crate::PipelineBuilder::respond)) gets every item back as
//!   an [`Outcome`] tagged with its [`ItemId`]: the pipeline's output for it, or why there is
//!   none.
//!
//! # Semantics
//!
//! Every *terminal event* produces exactly one response: an item reaching the sink, being
//! filtered, failing, or being dropped by a cancel. An item that no flat-map expands has
//! exactly one terminal event. A flat-map that turns an item into two or more children
//! hands the item's fate on to them: each child is an item of its own, with an id that
//! names its parent and position ([`ItemId`]: `#25.3`), and has its own response; so a
//! stage upstream hears one response per child, and an item is done when every child is
//! (`id.parent()` groups them). A flat-map that emits nothing filters its input; one that
//! emits one output keeps the id. Responses are unordered.
//!
//! Choosing one response per child (rather than one per parent once all its children are
//! done) keeps the response path free of per-parent state, and lets a stage upstream see
//! each child's value and error, the line of a file that failed, say.
//!
//! # How responses travel, and why it cannot deadlock
//!
//! An event at stage `k` is sent to the nearest stage upstream of `k` that has a hook; that
//! stage's relay thread runs the hook and forwards the response to the next hooked stage
//! upstream, and the last one to the origin. Stages without hooks cost nothing. Response
//! channels are unbounded, so **sending a response never waits**, and no forward send ever
//! waits on a response: the two directions cannot wait on each other. Memory stays bounded
//! because the source admits items through an in-flight [`Window`](crate::window::Window)
//! that only the origin advances: at most `max_in_flight` responses exist at any time.
//! See `src/protocols.md` for the full argument.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::connector::Stock;
use crate::control::Control;
use crate::error::{panic_message, ItemError, RunErrorKind};
use crate::item::{Batch, Ids, ItemId};
use crate::ledger::RelayWatch;
use crate::metrics::Counters;
use crate::window::Window;

/// What became of an item, as seen by a stage upstream of where it ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Status {
    /// The item (or one of its flat-map children) reached the sink.
    Delivered,
    /// The named stage filtered the item out.
    Filtered {
        /// The stage that filtered it.
        stage: Arc<str>,
    },
    /// The item failed.
    Failed(ItemError),
    /// The pipeline was cancelled before the item finished.
    Cancelled,
}

/// What the submitter of a serving pipeline learns about one item.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outcome<T> {
    /// The pipeline's output for the item.
    Output(T),
    /// The named stage filtered the item out.
    Filtered {
        /// The stage that filtered it.
        stage: Arc<str>,
    },
    /// The item failed.
    Failed(ItemError),
    /// The pipeline was cancelled before the item finished.
    Cancelled,
}

impl<T> Outcome<T> {
    /// The output, if the item produced one.
    pub fn output(self) -> Option<T> {
        match self {
            Outcome::Output(t) => Some(t),
            _ => None,
        }
    }
}

/// A stage's response hook: called once per response, on the stage's relay thread.
pub(crate) type Hook = Box<dyn FnMut(ItemId, &Status) + Send>;

/// Responses on their way upstream, one message per batch.
pub(crate) enum ResponseBatch {
    /// Items that reached the sink; when their values travel back (a serving pipeline, or
    /// [`reply_to`](crate::PipelineBuilder::reply_to)), with the outputs (a [`Carried`]) until
    /// the stage that takes them.
    Delivered {
        ids: Ids,
        outputs: Option<Box<dyn Any + Send>>,
    },
    /// Items that ended before the sink.
    Ended(Vec<(ItemId, Status)>),
}

impl ResponseBatch {
    pub(crate) fn len(&self) -> usize {
        match self {
            ResponseBatch::Delivered { ids, .. } => ids.len(),
            ResponseBatch::Ended(events) => events.len(),
        }
    }

    /// Runs `hook` on every response of the batch, each call on its own: a panic skips
    /// nothing else and is reported once per call.
    fn run_hook(&self, hook: &mut Hook, control: &Control, stage: &str) {
        let mut call = |id: ItemId, status: &Status| {
            if let Err(payload) = control.catch(|| hook(id, status)) {
                control.ledger.hook_panicked(format!(
                    "response hook of stage `{stage}` panicked on item {id}: {}",
                    panic_message(&*payload)
                ));
            }
        };
        match self {
            ResponseBatch::Delivered { ids, .. } => {
                for id in ids.iter() {
                    call(id, &Status::Delivered);
                }
            }
            ResponseBatch::Ended(events) => {
                for (id, status) in events {
                    call(*id, status);
                }
            }
        }
    }
}

/// The outcome an ended item's status stands for (`None` for a delivery, whose outcome is
/// its value).
fn ended_outcome<T>(status: Status) -> Option<Outcome<T>> {
    match status {
        Status::Delivered => None,
        Status::Filtered { stage } => Some(Outcome::Filtered { stage }),
        Status::Failed(e) => Some(Outcome::Failed(e)),
        Status::Cancelled => Some(Outcome::Cancelled),
    }
}

/// The outputs a `Delivered` batch carries back, one per id, and the pool of the connector
/// into the sink that their vector came off: whoever takes the values (the submitter's
/// [`Responses`], or the replying stage's relay) gives the emptied vector back there, so the
/// last stage refills it rather than allocating a vector a batch. (The seed pipeline with
/// its replies, `cargo run --release`, spent a third of its CPU time in the kernel zeroing
/// fresh pages for those vectors: 0.26 s of system time against 0.60 s of user time.)
pub(crate) struct Carried<T> {
    pub(crate) values: Vec<T>,
    pub(crate) stock: Stock<T>,
}

impl<T> Carried<T> {
    /// Hands the emptied vector back to its pool.
    fn recycle(self) {
        let Carried { mut values, stock } = self;
        values.clear();
        stock.recycle(values);
    }
}

/// The outputs a `Delivered` batch carries back, for the submitter or the replying stage,
/// which alone know `T`.
fn delivered_values<T: 'static>(
    outputs: Option<Box<dyn Any + Send>>,
    ids: &Ids,
) -> Option<Carried<T>> {
    let carried = outputs.and_then(|o| o.downcast::<Carried<T>>().ok())?;
    debug_assert_eq!(carried.values.len(), ids.len());
    Some(*carried)
}

pub(crate) type ResponseSender = Sender<ResponseBatch>;

/// Where a relay (or the sink) hands responses next.
#[derive(Clone)]
pub(crate) enum Upstream {
    /// The relay of the nearest hooked stage upstream.
    Relay(ResponseSender),
    /// The submitter of a serving pipeline, through its [`Responses`].
    Submitter(ResponseSender),
    /// Nobody wants the responses beyond the hooks: release their credits here.
    Credits(Arc<Window>),
}

impl Upstream {
    pub(crate) fn send(&self, batch: ResponseBatch) {
        if batch.len() == 0 {
            return;
        }
        match self {
            // An unbounded send fails only when the receiver is gone, i.e. the consumer
            // stopped listening; its credits no longer matter then.
            Upstream::Relay(tx) | Upstream::Submitter(tx) => {
                let _ = tx.send(batch);
            }
            Upstream::Credits(window) => window.advance(batch.len() as u64),
        }
    }
}

/// A stage that takes the pipeline's outputs back as values
/// ([`reply_to`](crate::PipelineBuilder::reply_to)): it folds every response into an
/// accumulator on its relay thread, and hands the accumulator over when responses end.
pub(crate) trait TakeReplies: Send {
    /// Takes the outputs out of `batch` and folds each of its responses in.
    fn take(&mut self, batch: &mut ResponseBatch, control: &Control, stage: &str);
    /// No more responses will come.
    fn finish(self: Box<Self>);
}

/// [`TakeReplies`] for outputs of type `T` folded by `F` into an `A`, sent on `done`.
pub(crate) struct ReplyFold<T, A, F> {
    acc: Option<A>,
    fold: F,
    done: Sender<A>,
    _outputs: PhantomData<fn(T)>,
}

impl<T, A, F> ReplyFold<T, A, F> {
    pub(crate) fn new(init: A, fold: F, done: Sender<A>) -> Self {
        ReplyFold {
            acc: Some(init),
            fold,
            done,
            _outputs: PhantomData,
        }
    }
}

impl<T, A, F> TakeReplies for ReplyFold<T, A, F>
where
    T: Send + 'static,
    A: Send,
    F: FnMut(A, ItemId, Outcome<T>) -> A + Send,
{
    fn take(&mut self, batch: &mut ResponseBatch, control: &Control, stage: &str) {
        let fold = &mut self.fold;
        // The values stop here either way: nothing upstream wants them.
        let folded = match (self.acc.take(), batch) {
            (None, ResponseBatch::Delivered { outputs, .. }) => {
                outputs.take();
                return;
            }
            (None, ResponseBatch::Ended(_)) => return,
            (Some(acc), ResponseBatch::Delivered { ids, outputs }) => {
                let Some(mut carried) = delivered_values::<T>(outputs.take(), ids) else {
                    self.acc = Some(acc);
                    return;
                };
                let folded = control.catch(|| {
                    ids.iter()
                        .zip(carried.values.drain(..))
                        .fold(acc, |acc, (id, v)| fold(acc, id, Outcome::Output(v)))
                });
                carried.recycle();
                folded
            }
            (Some(acc), ResponseBatch::Ended(events)) => control.catch(|| {
                events
                    .iter()
                    .filter_map(|(id, status)| Some((*id, ended_outcome(status.clone())?)))
                    .fold(acc, |acc, (id, outcome)| fold(acc, id, outcome))
            }),
        };
        match folded {
            Ok(acc) => self.acc = Some(acc),
            Err(payload) => control.fail_hard(RunErrorKind::SinkPanicked(format!(
                "the replies to stage `{stage}` panicked: {}",
                panic_message(&*payload)
            ))),
        }
    }

    fn finish(self: Box<Self>) {
        if let Some(acc) = self.acc {
            // The receiver waits on the sink thread until the run ends.
            let _ = self.done.send(acc);
        }
    }
}

/// What a stage's relay thread does with the responses that come back to it.
pub(crate) struct Listener {
    /// The stage's status hook ([`Stage::on_response`](crate::Stage::on_response)).
    pub(crate) hook: Option<Hook>,
    /// The stage takes the outputs back as values.
    pub(crate) replies: Option<Box<dyn TakeReplies>>,
}

/// Runs a stage's listener on every response that comes back to it, then passes it on.
pub(crate) fn relay(
    inbox: Receiver<ResponseBatch>,
    listener: Listener,
    next: Upstream,
    control: &Control,
    watch: &RelayWatch,
) {
    let Listener {
        mut hook,
        mut replies,
    } = listener;
    let stage = &*watch.stage;
    for mut batch in inbox {
        let n = batch.len() as u64;
        watch.enter(control.signals.now());
        if let Some(hook) = hook.as_mut() {
            batch.run_hook(hook, control, stage);
        }
        if let Some(replies) = replies.as_mut() {
            replies.take(&mut batch, control, stage);
        }
        watch.leave(n, control.signals.now());
        next.send(batch);
    }
    if let Some(replies) = replies {
        replies.finish();
    }
}

/// Records the ids of items a cancel dropped, wherever they were: counted in `counters`,
/// listed as unfinished in the ledger, and answered [`Status::Cancelled`] upstream.
pub(crate) fn drop_unfinished(
    control: &Control,
    events: Option<&Upstream>,
    ids: Ids,
    counters: &Counters,
) {
    counters.add(&counters.cancelled, ids.len() as u64);
    control.ledger.record_unfinished(ids.iter());
    if let Some(events) = events {
        events.send(ResponseBatch::Ended(
            ids.iter().map(|id| (id, Status::Cancelled)).collect(),
        ));
    }
}

/// Records a batch a stage processed (its items counted out of the stage) that a cancel
/// then dropped before it left: like [`drop_unfinished`], and the items are withdrawn from
/// the stage's outputs, so they count cancelled rather than out as well.
pub(crate) fn drop_processed<U>(
    control: &Control,
    events: Option<&Upstream>,
    batch: Batch<U>,
    counters: &Counters,
) {
    counters.add(&counters.withdrawn, batch.len() as u64);
    drop_unfinished(control, events, batch.ids, counters);
}

/// The responses of a serving pipeline: every item's [`Outcome`], tagged with its id.
///
/// The iterator ends when the pipeline has finished and every response has been taken.
/// Taking responses is what lets the source admit more items (see
/// [`PipelineBuilder::max_in_flight`](crate::PipelineBuilder::max_in_flight)), so consume
/// them while the pipeline runs. [`Running::join`](crate::Running::join) before reading them
/// does not hang: it keeps every response for this iterator to hand out afterwards (memory
/// then grows with the responses not yet read).
///
/// Dropping it before the end stops the run's input at once (as
/// [`Handle::stop`](crate::Handle::stop) does): nobody will take the responses, so the
/// source admits no more items, and the items already admitted finish. If the source had
/// more, the report's end state is [`Stopped`](crate::EndState::Stopped), and the items it
/// had taken from its input but could no longer admit (at most a batch, or what a
/// [`Submitter`](crate::Submitter)'s queue held) count as cancelled; a run whose every item
/// was admitted before the drop completes as usual.
pub struct Responses<T> {
    inbox: Receiver<ResponseBatch>,
    credits: Arc<Window>,
    /// The run's, to stop its input when dropped.
    control: Arc<Control>,
    parked: Parked,
    ready: VecDeque<(ItemId, Outcome<T>)>,
    _outputs: PhantomData<fn() -> T>,
}

/// Responses that [`Running::join`](crate::Running::join) took off the path (and credited)
/// while nobody read them, kept for [`Responses`].
pub(crate) type Parked = Arc<crate::sync::Mutex<VecDeque<ResponseBatch>>>;

/// What `join` needs to keep a serving pipeline's responses moving while nobody reads them.
pub(crate) struct ResponseDrain {
    inbox: Receiver<ResponseBatch>,
    credits: Arc<Window>,
    parked: Parked,
}

impl ResponseDrain {
    /// Takes every response until the path closes (every thread that answers has ended),
    /// crediting each so the source can go on, and parks it for [`Responses`]. Gives up
    /// when the run fails on a wedge: a thread stuck for good may never close the path.
    pub(crate) fn drain(self, control: &Control) {
        let mut ended = Some(&control.signals.end_rx);
        loop {
            let batch = match ended {
                Some(end) => crossbeam_channel::select! {
                    recv(self.inbox) -> batch => batch,
                    recv(end) -> _ => {
                        if control.ledger.wedge_failed() {
                            return;
                        }
                        ended = None;
                        continue;
                    }
                },
                None => self.inbox.recv(),
            };
            let Ok(batch) = batch else {
                return;
            };
            self.credits.advance(batch.len() as u64);
            crate::sync::lock(&self.parked).push_back(batch);
        }
    }
}

impl<T: Send + 'static> Responses<T> {
    pub(crate) fn new(
        inbox: Receiver<ResponseBatch>,
        credits: Arc<Window>,
        control: Arc<Control>,
    ) -> (Self, ResponseDrain) {
        let parked = Parked::default();
        let drain = ResponseDrain {
            inbox: inbox.clone(),
            credits: Arc::clone(&credits),
            parked: Arc::clone(&parked),
        };
        let responses = Responses {
            inbox,
            credits,
            control,
            parked,
            ready: VecDeque::new(),
            _outputs: PhantomData,
        };
        (responses, drain)
    }

    /// Unpacks a batch into ready outcomes; `credit` releases its in-flight credits (a
    /// parked batch was credited when parked).
    fn unpack(&mut self, batch: ResponseBatch, credit: bool) {
        if credit {
            self.credits.advance(batch.len() as u64);
        }
        match batch {
            ResponseBatch::Delivered { ids, outputs } => {
                if let Some(mut carried) = delivered_values::<T>(outputs, &ids) {
                    self.ready.extend(
                        ids.iter()
                            .zip(carried.values.drain(..))
                            .map(|(id, o)| (id, Outcome::Output(o))),
                    );
                    carried.recycle();
                }
            }
            ResponseBatch::Ended(events) => {
                self.ready.extend(
                    events
                        .into_iter()
                        .filter_map(|(id, status)| Some((id, ended_outcome(status)?))),
                );
            }
        }
    }

    fn take_parked(&mut self) -> bool {
        let parked = crate::sync::lock(&self.parked).pop_front();
        match parked {
            Some(batch) => {
                self.unpack(batch, false);
                true
            }
            None => false,
        }
    }
}

impl<T: Send + 'static> Iterator for Responses<T> {
    type Item = (ItemId, Outcome<T>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            if self.take_parked() {
                continue;
            }
            match self.inbox.recv() {
                Ok(batch) => self.unpack(batch, true),
                // The path closed; `join` may have parked the last responses meanwhile.
                Err(_) => {
                    if !self.take_parked() {
                        return None;
                    }
                }
            }
        }
    }
}

impl<T> Drop for Responses<T> {
    /// Nobody will take responses any more: the input stops (a stop after the input ran
    /// out by itself stops nothing), and the source must not wait for credits: the closed
    /// window refuses the batch it holds, if any.
    fn drop(&mut self) {
        self.control.signals.stop();
        self.credits.close();
    }
}

impl<T> fmt::Debug for Responses<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responses")
            .field("ready", &self.ready.len())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::batch_size::BatchSize;
    use crate::connector::connector;
    use crate::metrics::StageMetrics;

    fn control() -> Control {
        let metrics = |name: &str| Arc::new(StageMetrics::new(Arc::from(name), 1, 1));
        Control::new(metrics("source"), vec![metrics("a")], metrics("sink"), true)
    }

    /// A delivered batch of `values`, carried back as the sink sends it, from the connector
    /// whose outlet is returned.
    fn delivered(values: Vec<u64>) -> (ResponseBatch, crate::connector::Outlet<u64>) {
        let (outlet, inlet) = connector::<u64>(4, Arc::new(BatchSize::pinned(16)));
        let ids = Ids::Range {
            start: 0,
            len: values.len(),
        };
        let carried = Carried {
            values,
            stock: inlet.stock(),
        };
        let outputs: Option<Box<dyn Any + Send>> = Some(Box::new(carried));
        (ResponseBatch::Delivered { ids, outputs }, outlet)
    }

    #[test]
    fn a_reply_fold_gives_the_values_vector_back_to_the_connector_it_came_off() {
        let control = control();
        let (done, value) = crossbeam_channel::bounded(1);
        let mut fold = ReplyFold::new(
            0u64,
            |sum: u64, _id, reply: Outcome<u64>| match reply {
                Outcome::Output(v) => sum + v,
                _ => sum,
            },
            done,
        );
        let (mut batch, outlet) = delivered({
            let mut v = Vec::with_capacity(16);
            v.extend([1, 2, 3]);
            v
        });
        fold.take(&mut batch, &control, "a");
        let recycled = outlet
            .recycled()
            .expect("the emptied vector went back to the pool");
        assert!(recycled.is_empty());
        assert_eq!(recycled.capacity(), 16);
        Box::new(fold).finish();
        assert_eq!(value.recv().ok(), Some(6));
    }

    #[test]
    fn the_responses_give_the_values_vector_back_to_the_connector_it_came_off() {
        let control = Arc::new(control());
        let (tx, rx) = crossbeam_channel::unbounded();
        let credits = Arc::new(Window::new(16));
        let (mut responses, _drain) = Responses::<u64>::new(rx, credits, control);
        let (batch, outlet) = delivered({
            let mut v = Vec::with_capacity(16);
            v.extend([4, 5]);
            v
        });
        tx.send(batch).expect("the responses listen");
        drop(tx);
        let got: Vec<(u64, u64)> = responses
            .by_ref()
            .map(|(id, outcome)| (id.0, outcome.output().expect("an output")))
            .collect();
        assert_eq!(got, vec![(0, 4), (1, 5)]);
        let recycled = outlet
            .recycled()
            .expect("the emptied vector went back to the pool");
        assert_eq!(recycled.capacity(), 16);
    }
}
