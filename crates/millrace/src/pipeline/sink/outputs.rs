//! [`Outputs`]: the sink as an iterator on the calling thread. Each batch taken is
//! answered (settled) before the next is waited for: those answers may be the in-flight
//! credits the source needs (model-checked in `loom_outputs.rs`).

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::connector::{Inlet, Poll};
use crate::control::Control;
use crate::item::{Batch, Ids};
use crate::report::Report;
use crate::response::drop_unfinished;
use crate::run_error::RunError;

use super::super::launch::Controller;
use super::super::running::{finish, Handle};
use super::SinkCtx;

/// The outputs of a pipeline, consumed on the calling thread: an iterator that is also the
/// run's handle.
///
/// Dropping it before the end cancels the rest of the run; [`finish`](Outputs::finish) does
/// the same and returns the report.
pub struct Outputs<T> {
    handle: Handle,
    threads: Vec<JoinHandle<()>>,
    controller: Option<Controller>,
    inlet: Option<Inlet<T>>,
    ctx: SinkCtx,
    current: std::vec::IntoIter<T>,
    /// Ids of the current batch, and how many of its items the caller has taken.
    current_ids: Ids,
    taken: usize,
}

impl<T> fmt::Debug for Outputs<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outputs").finish_non_exhaustive()
    }
}

impl<T> Outputs<T> {
    pub(crate) fn new(
        control: Arc<Control>,
        threads: Vec<JoinHandle<()>>,
        inlet: Inlet<T>,
        ctx: SinkCtx,
        controller: Option<Controller>,
    ) -> Self {
        Outputs {
            handle: Handle::new(control),
            threads,
            controller,
            inlet: Some(inlet),
            ctx,
            current: Vec::new().into_iter(),
            current_ids: Ids::default(),
            taken: 0,
        }
    }

    /// A cloneable handle to stop, cancel or look at the run.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Ends the run and returns its report. Outputs not yet taken are cancelled (listed
    /// as unfinished), and the run ends [`Cancelled`](crate::EndState::Cancelled); it ends
    /// [`Completed`](crate::EndState::Completed) if the iterator was already exhausted, or
    /// if every output was taken and the source's input has ended (the last item taken,
    /// the run still closing behind it).
    ///
    /// # Errors
    ///
    /// A [`RunError`] if an item failed under the stop policy or the source panicked.
    pub fn finish(mut self) -> Result<Report, RunError> {
        self.close();
        let threads = std::mem::take(&mut self.threads);
        let controller = self.controller.take();
        finish(self.handle.control(), threads, controller, Some(())).map(|f| f.report)
    }

    /// Settles the current batch: what the caller took was delivered, the rest is not.
    fn settle(&mut self) {
        let mut ids = std::mem::take(&mut self.current_ids);
        let rest = ids.split_off(self.taken.min(ids.len()));
        self.taken = 0;
        self.current = Vec::new().into_iter();
        self.ctx.delivered(ids, None);
        if rest.len() > 0 {
            let counters = self.ctx.metrics.slot(0);
            drop_unfinished(
                self.handle.control(),
                self.ctx.events.as_ref(),
                rest,
                counters,
            );
        }
    }

    /// Ends the caller's part: the rest of the outputs is dropped as unfinished (after a
    /// cancel, unless the outputs were exhausted), and the sink's end of the response path
    /// closes so that relays can finish.
    fn close(&mut self) {
        self.drain_rest();
        self.ctx.events = None;
        // The sink's part is over, as a sink thread's is when it returns: a snapshot now
        // says how the run ended (it said `Running` for good).
        self.handle.control().signals.signal_end();
    }

    fn drain_rest(&mut self) {
        let Some(inlet) = self.inlet.take() else {
            return;
        };
        let untaken = self.current.len() > 0;
        self.settle();
        let counters = self.ctx.metrics.slot(0);
        let control = self.handle.control();
        match inlet.poll() {
            Poll::Closed if !untaken => return,
            // Every output was taken, the input has ended and nothing is left on the way:
            // the run is only closing behind the last output, and ends completed (a
            // cancel here made a run whose last item was just taken end cancelled, with
            // nothing cancelled). An output that still arrives cancels it below.
            Poll::Empty
                if !untaken && control.signals.input_ended() && !control.items_in_flight() => {}
            Poll::Closed | Poll::Empty => control.signals.cancel(),
            Poll::Ready(batch) => {
                control.signals.cancel();
                counters.add(&counters.items_in, batch.len() as u64);
                drop_unfinished(control, self.ctx.events.as_ref(), batch.ids, counters);
            }
        }
        while let Some(batch) = self.ctx.next_batch(&inlet) {
            control.signals.cancel();
            drop_unfinished(control, self.ctx.events.as_ref(), batch.ids, counters);
        }
    }
}

impl<T> Iterator for Outputs<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        loop {
            if let Some(item) = self.current.next() {
                self.taken += 1;
                return Some(item);
            }
            self.inlet.as_ref()?;
            // Answer what the caller took before waiting for more: those responses may be
            // the very credits the source needs to send the next batch.
            self.settle();
            let inlet = self.inlet.as_ref()?;
            let batch = self.ctx.next_batch(inlet);
            match batch {
                Some(Batch { ids, items, .. }) => {
                    self.current_ids = ids;
                    self.current = items.into_iter();
                }
                None => {
                    self.inlet = None;
                    self.handle.control().signals.signal_end();
                    return None;
                }
            }
        }
    }
}

impl<T> Drop for Outputs<T> {
    fn drop(&mut self) {
        self.close();
    }
}
