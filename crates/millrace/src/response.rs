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
//! exactly one terminal event; a flat-map's children each have their own (with their parent's
//! id), and a flat-map that emits nothing filters its input. Responses are unordered.
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

use crate::error::ItemError;
use crate::item::{Ids, ItemId};
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
    /// Items that reached the sink; in a serving pipeline, with the outputs (a `Vec<O>`).
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

    fn run_hook(&self, hook: &mut Hook) {
        match self {
            ResponseBatch::Delivered { ids, .. } => {
                for id in ids.iter() {
                    hook(id, &Status::Delivered);
                }
            }
            ResponseBatch::Ended(events) => {
                for (id, status) in events {
                    hook(*id, status);
                }
            }
        }
    }
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

/// Runs a stage's hook on every response that comes back to it, then passes it on.
pub(crate) fn relay(
    inbox: Receiver<ResponseBatch>,
    mut hook: Hook,
    next: Upstream,
    on_panic: impl Fn(String),
) {
    for batch in inbox {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            batch.run_hook(&mut hook);
        }));
        if let Err(payload) = ran {
            on_panic(crate::error::panic_message(&*payload));
        }
        next.send(batch);
    }
}

/// The responses of a serving pipeline: every item's [`Outcome`], tagged with its id.
///
/// The iterator ends when the pipeline has finished and every response has been taken.
/// Taking responses is what lets the source admit more items (see
/// [`PipelineBuilder::max_in_flight`](crate::PipelineBuilder::max_in_flight)), so consume
/// them while the pipeline runs, not after joining it.
pub struct Responses<T> {
    inbox: Receiver<ResponseBatch>,
    credits: Arc<Window>,
    ready: VecDeque<(ItemId, Outcome<T>)>,
    _outputs: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> Responses<T> {
    pub(crate) fn new(inbox: Receiver<ResponseBatch>, credits: Arc<Window>) -> Self {
        Responses {
            inbox,
            credits,
            ready: VecDeque::new(),
            _outputs: PhantomData,
        }
    }

    fn unpack(&mut self, batch: ResponseBatch) {
        self.credits.advance(batch.len() as u64);
        match batch {
            ResponseBatch::Delivered { ids, outputs } => {
                let outputs = outputs
                    .and_then(|o| o.downcast::<Vec<T>>().ok())
                    .map(|o| *o)
                    .unwrap_or_default();
                debug_assert_eq!(outputs.len(), ids.len());
                self.ready.extend(
                    ids.iter()
                        .zip(outputs)
                        .map(|(id, o)| (id, Outcome::Output(o))),
                );
            }
            ResponseBatch::Ended(events) => {
                self.ready.extend(events.into_iter().map(|(id, status)| {
                    let outcome = match status {
                        Status::Delivered => unreachable!("deliveries travel as Delivered batches"),
                        Status::Filtered { stage } => Outcome::Filtered { stage },
                        Status::Failed(e) => Outcome::Failed(e),
                        Status::Cancelled => Outcome::Cancelled,
                    };
                    (id, outcome)
                }));
            }
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
            let batch = self.inbox.recv().ok()?;
            self.unpack(batch);
        }
    }
}

impl<T> Drop for Responses<T> {
    /// Nobody will take responses any more: the source must not wait for their credits.
    fn drop(&mut self) {
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
