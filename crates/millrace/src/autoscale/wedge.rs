//! [`Wedge`]: the wedge detector's diagnosis as data a program can read — how long nothing
//! moved, what each part's workers were doing and since when, the response hooks still
//! running, and the threads detached after the cancel — with a `Display` for people.

use std::fmt;
use std::time::Duration;

/// A wedge the detector found: nothing moved for a while although items were in flight.
///
/// Held by [`RunErrorKind::Wedged`](crate::RunErrorKind::Wedged) and
/// [`Report::wedges`](crate::Report::wedges). `Display` gives the diagnosis as one line,
/// e.g. ``no item has moved for 2.00 s while items are in flight; `stuck`: worker 0 stuck in
/// the stage's code for 2.0 s (input queue 100% full)``.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Wedge {
    /// How long no item had moved when the diagnosis was made.
    pub stalled: Duration,
    /// Every part (source, stages, sink) that had a worker doing something or items in
    /// flight, in pipeline order.
    pub parts: Vec<WedgedPart>,
    /// Response hooks that were still running.
    pub hooks: Vec<RunningHook>,
    /// Threads that did not return after the run was cancelled and were detached (only in
    /// the error of a run the wedge failed; empty in the report's list).
    pub detached: Vec<String>,
}

/// One part of a wedged pipeline: what its workers were doing.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WedgedPart {
    /// The stage's name (`source` and `sink` for the ends).
    pub name: String,
    /// Its workers that were waiting, working or blocked (a worker between batches is left
    /// out).
    pub workers: Vec<WorkerState>,
    /// Async stages: items in flight in its futures.
    pub in_flight: u64,
    /// Mean fill of its input queue (0 to 1); `None` where it has none.
    pub queue_fill: Option<f64>,
}

/// What one worker was doing, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerState {
    /// The worker's index within its stage.
    pub worker: usize,
    /// What it was doing.
    pub activity: WorkerActivity,
    /// For how long it had been doing it.
    pub since: Duration,
}

/// What a worker of a wedged pipeline was doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerActivity {
    /// Running the stage's code.
    InStageCode,
    /// Waiting for room in its full output queue.
    BlockedOnOutput,
    /// Waiting for input.
    WaitingForInput,
}

/// A response hook that was still running.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunningHook {
    /// The stage whose response hook it is.
    pub stage: String,
    /// For how long it had been running.
    pub running_for: Duration,
}

impl fmt::Display for Wedge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no item has moved for {} while items are in flight",
            crate::fmt::duration(self.stalled)
        )?;
        for part in &self.parts {
            write!(f, "; {part}")?;
        }
        for hook in &self.hooks {
            write!(
                f,
                "; `{}`: its response hook has been running for {}",
                hook.stage,
                crate::fmt::duration(hook.running_for)
            )?;
        }
        if !self.detached.is_empty() {
            write!(
                f,
                "; {} thread(s) did not return after the cancel and were detached: {}",
                self.detached.len(),
                self.detached.join(", ")
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for WedgedPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: ", self.name)?;
        let mut first = true;
        for w in &self.workers {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{w}")?;
        }
        if self.in_flight > 0 {
            if !first {
                f.write_str(", ")?;
            }
            write!(f, "{} items in flight in its futures", self.in_flight)?;
        }
        if let Some(fill) = self.queue_fill {
            write!(f, " (input queue {:.0}% full)", (fill * 100.0).min(100.0))?;
        }
        Ok(())
    }
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.activity {
            WorkerActivity::InStageCode => "stuck in the stage's code",
            WorkerActivity::BlockedOnOutput => "blocked on a full output queue",
            WorkerActivity::WaitingForInput => "waiting for input",
        };
        write!(
            f,
            "worker {} {what} for {:.1} s",
            self.worker,
            self.since.as_secs_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wedge_reads_as_the_one_line_diagnosis() {
        let wedge = Wedge {
            stalled: Duration::from_millis(2000),
            parts: vec![
                WedgedPart {
                    name: "stuck".into(),
                    workers: vec![WorkerState {
                        worker: 0,
                        activity: WorkerActivity::InStageCode,
                        since: Duration::from_millis(2100),
                    }],
                    in_flight: 0,
                    queue_fill: Some(1.0),
                },
                WedgedPart {
                    name: "fetch".into(),
                    workers: vec![WorkerState {
                        worker: 0,
                        activity: WorkerActivity::WaitingForInput,
                        since: Duration::from_millis(500),
                    }],
                    in_flight: 3,
                    queue_fill: None,
                },
            ],
            hooks: vec![RunningHook {
                stage: "reply".into(),
                running_for: Duration::from_secs(3),
            }],
            detached: vec!["millrace-stuck-0".into()],
        };
        assert_eq!(
            wedge.to_string(),
            "no item has moved for 2.00 s while items are in flight; `stuck`: worker 0 stuck in \
             the stage's code for 2.1 s (input queue 100% full); `fetch`: worker 0 waiting for \
             input for 0.5 s, 3 items in flight in its futures; `reply`: its response hook has \
             been running for 3.00 s; 1 thread(s) did not return after the cancel and were \
             detached: millrace-stuck-0"
        );
    }
}
