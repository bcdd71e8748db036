//! The sink end of a config pipeline: a [`Sink`] under an error policy.
//!
//! The engine's sink is a fold; [`SinkRunner`] is its accumulator. It hands each output to
//! the sink and deals with what the sink refuses:
//!
//! * an item the sink cannot take ([`SinkFault::Item`]) is failed: recorded with its id
//!   (the engine counted it delivered; the CLI's report moves it to failed), written to the
//!   dead letters if there are any, and, under `on_error = "stop"`, the run is asked to stop;
//! * an output that cannot be written ([`SinkFault::Fatal`]) ends the run with an error;
//!   later items are failed with it;
//! * a closed stdout ([`SinkFault::Closed`]) ends the run quietly, cancelling what is in
//!   flight (nothing more can be written).
//!
//! A buffering sink ([`Sink::buffers`]) delivers items only when it flushes: the runner
//! holds the ids (and, for the dead letters, the values) of the items accepted and not yet
//! handed over ([`Sink::handed_over`]: a flush on this thread or the sink's timer covered
//! them), and when a flush fails it fails every one of them (a full disk), or, if
//! stdout was closed, counts them *unwritten* with the items that come after. The engine
//! counted all of them delivered; the CLI's report moves the failed ones to failed and the
//! unwritten ones to cancelled (see [`crate::summary`]).
//!
//! The sink thread cannot reach the run's handle, so it raises a [`StopRequest`] that the
//! supervisor ([`crate::supervise`]) forwards to `Handle::stop`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use millrace::ItemId;

use crate::config::Policy;
use crate::dead_letter::DeadLetterFile;
use crate::kinds::{Sink, SinkFault, SinkResult};
use crate::value::{Item, Value};

/// How many sink errors are kept in full.
const ERROR_SAMPLE: usize = 100;

/// Flags the sink raises to ask for the end of the run: a graceful stop, or a cancel.
#[derive(Debug, Default)]
pub struct StopRequest {
    stop: AtomicBool,
    cancel: AtomicBool,
}

impl StopRequest {
    /// Asks for a stop: what is in flight drains.
    pub fn raise(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Asks for a cancel: what is in flight is dropped, since nothing more can be written
    /// (stdout was closed).
    pub fn raise_cancel(&self) {
        self.cancel.store(true, Ordering::Release);
        self.raise();
    }

    /// Whether a stop (or a cancel) was asked for.
    pub fn is_raised(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Whether a cancel was asked for.
    pub fn cancel_raised(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }
}

/// One item the sink failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkError {
    /// The item's id.
    pub item: ItemId,
    /// The whole message, naming the sink and the item.
    pub message: String,
}

/// The sink with its policy: the fold's accumulator.
pub struct SinkRunner {
    sink: Box<dyn Sink>,
    name: String,
    policy: Policy,
    dead_letter: Option<Arc<DeadLetterFile>>,
    stop: Arc<StopRequest>,
    rejected: u64,
    errors: Vec<SinkError>,
    /// The first item failed under `stop`: the run stops, items in flight still drain.
    stopped_by: Option<String>,
    /// An output that could not be written: later items are failed too.
    fatal: Option<String>,
    closed: bool,
    /// Items accepted by a buffering sink and not yet handed over: delivered when a flush
    /// covers them (the sink's own, or its timer's).
    pending: VecDeque<(ItemId, Option<Value>)>,
    /// How many items the sink accepted before the first of `pending`.
    settled: u64,
    /// Items not written because stdout was closed.
    unwritten: u64,
}

/// What the sink end did, once the run is over.
#[derive(Debug)]
pub struct SinkOutcome {
    /// The sink's result, or why it could not finish.
    pub result: Result<SinkResult, String>,
    /// Items the engine delivered that the sink failed.
    pub rejected: u64,
    /// The first errors in full.
    pub errors: Vec<SinkError>,
    /// The error that ended the run, if the sink ended it.
    pub fatal: Option<String>,
    /// Whether stdout was closed under the sink.
    pub closed: bool,
    /// Items the engine delivered that were not written because stdout was closed.
    pub unwritten: u64,
}

impl SinkRunner {
    /// Wraps `sink` (reported as `name`) under `policy`.
    pub fn new(
        sink: Box<dyn Sink>,
        name: &str,
        policy: Policy,
        dead_letter: Option<Arc<DeadLetterFile>>,
        stop: Arc<StopRequest>,
    ) -> Self {
        SinkRunner {
            sink,
            name: name.to_owned(),
            policy,
            dead_letter,
            stop,
            rejected: 0,
            errors: Vec::new(),
            stopped_by: None,
            fatal: None,
            closed: false,
            pending: VecDeque::new(),
            settled: 0,
            unwritten: 0,
        }
    }

    fn reject(&mut self, id: ItemId, value: Option<&Value>, message: &str) {
        self.rejected += 1;
        let full = format!("sink `{}` failed on item {id}: {message}", self.name);
        if let Some(dl) = &self.dead_letter {
            dl.write(&format!("sink {}", self.name), id, &full, value);
        }
        if self.errors.len() < ERROR_SAMPLE {
            self.errors.push(SinkError {
                item: id,
                message: full,
            });
        }
    }

    /// Drops from `pending` the items a flush has handed over since (they are delivered).
    fn settle(&mut self) {
        let handed = self.sink.handed_over();
        while self.settled < handed && self.pending.pop_front().is_some() {
            self.settled += 1;
        }
    }

    /// The output failed with `e`: the items waiting for a flush fail with it, and so do
    /// all later ones; the run is asked to stop.
    fn output_failed(&mut self, e: &str) {
        self.settle();
        let message = format!("not written: {e}");
        for (id, value) in std::mem::take(&mut self.pending) {
            self.reject(id, value.as_ref(), &message);
        }
        self.fatal
            .get_or_insert_with(|| format!("sink `{}`: {e}", self.name));
        self.stop.raise();
    }

    /// Stdout was closed: the items waiting for a flush, and all later ones, are unwritten.
    fn output_closed(&mut self) {
        self.settle();
        self.unwritten += self.pending.len() as u64;
        self.pending.clear();
        self.closed = true;
        // Nothing more can be written: what is in flight is dropped, not worked through
        // (`| head` used to wait while every queued item went through a slow stage).
        self.stop.raise_cancel();
    }

    /// Flushes a buffering sink: the items it covers are delivered, failed or unwritten.
    fn flush(&mut self) {
        if self.fatal.is_some() || self.closed {
            return;
        }
        match self.sink.flush() {
            Ok(()) => self.settle(),
            Err(SinkFault::Closed) => self.output_closed(),
            Err(SinkFault::Fatal(e)) => self.output_failed(&e),
            Err(SinkFault::Item(f)) => self.output_failed(&f.to_string()),
        }
    }

    /// Takes one output.
    pub fn take(&mut self, item: Item) {
        if self.fatal.is_some() {
            self.reject(
                item.id,
                Some(&item.value),
                "not written: the output failed earlier",
            );
            return;
        }
        if self.closed {
            self.unwritten += 1;
            return;
        }
        match self.sink.accept(&item) {
            Ok(()) if self.sink.buffers() => {
                let value = self.dead_letter.is_some().then_some(item.value);
                self.pending.push_back((item.id, value));
                if self.sink.wants_flush() {
                    self.flush();
                } else {
                    self.settle();
                }
            }
            Ok(()) => {}
            Err(SinkFault::Item(fault)) => {
                self.reject(item.id, Some(&item.value), &fault.to_string());
                if self.policy.stops() && self.stopped_by.is_none() {
                    self.stopped_by = self.errors.last().map(|e| e.message.clone());
                    self.stop.raise();
                }
            }
            Err(SinkFault::Fatal(e)) => {
                self.settle();
                self.pending.push_back((item.id, Some(item.value)));
                self.output_failed(&e);
            }
            Err(SinkFault::Closed) => {
                self.output_closed();
                self.unwritten += 1;
            }
        }
    }

    /// Flushes the sink, finishes it and says what happened.
    pub fn finish(mut self) -> SinkOutcome {
        self.flush();
        let result = self.sink.finish();
        let fatal = match (self.fatal.or(self.stopped_by), &result) {
            (Some(f), _) => Some(f),
            (None, Err(e)) => Some(format!("sink `{}`: {e}", self.name)),
            (None, Ok(_)) => None,
        };
        SinkOutcome {
            result,
            rejected: self.rejected,
            errors: self.errors,
            fatal,
            closed: self.closed,
            unwritten: self.unwritten,
        }
    }
}
