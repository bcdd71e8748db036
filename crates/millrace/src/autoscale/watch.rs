//! The wedge watch: each tick the controller sums every part's progress; when nothing has
//! moved for the wedge timeout while items are in flight, it diagnoses what every worker is
//! doing ([`diagnose`], a [`Wedge`]) and, by policy, records it or fails the run.

use std::time::{Duration, Instant};

use crate::control::Control;
use crate::error::RunErrorKind;
use crate::metrics::Activity;
use crate::sync::lock;

use super::wedge::{RunningHook, Wedge, WedgedPart, WorkerActivity, WorkerState};
use super::{Controller, WedgePolicy};

impl Controller {
    pub(super) fn watch(&mut self, after: Duration, policy: WedgePolicy) {
        let c = &self.control;
        let relayed: u64 = lock(&c.ledger.relays)
            .iter()
            .map(|r| r.relayed.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        let progress = c.ledger.source.tally().items_out
            + c.ledger.sink.tally().items_in
            + c.ledger
                .stages
                .iter()
                .map(|m| m.tally().items_in)
                .sum::<u64>()
            + relayed;
        if progress != self.progress {
            self.progress = progress;
            self.last_progress = Instant::now();
            self.wedged = false;
            return;
        }
        let stalled = self.last_progress.elapsed();
        if self.wedged || stalled < after || !in_flight(c) {
            return;
        }
        self.wedged = true;
        let diagnosis = diagnose(c, stalled);
        crate::trace::wedge(&diagnosis);
        lock(&c.ledger.scaling)
            .wedges
            .push((c.signals.now(), diagnosis.clone()));
        if policy == WedgePolicy::Fail {
            c.fail_hard(RunErrorKind::Wedged(diagnosis));
            // `join` stops waiting for the sink: threads stuck for good are detached.
            c.signals.signal_end();
        }
    }
}

/// Whether items were admitted that have not yet ended somewhere, or a response hook is
/// still running on some.
fn in_flight(c: &Control) -> bool {
    lock(&c.ledger.relays).iter().any(|r| r.busy().is_some()) || c.items_in_flight()
}

/// What every worker is doing, and since when: the wedge diagnosis.
fn diagnose(c: &Control, stalled: Duration) -> Wedge {
    let now = c.signals.now();
    let mut wedge = Wedge {
        stalled,
        ..Wedge::default()
    };
    let parts = std::iter::once(&c.ledger.source)
        .chain(&c.ledger.stages)
        .chain(std::iter::once(&c.ledger.sink));
    for m in parts {
        let tally = m.tally();
        let mut workers = Vec::new();
        // Every slot: a live worker's may be any of them once workers retired and others
        // took their places; a retired worker's slot reads "between batches".
        for (worker, slot) in m.slots().enumerate() {
            let (activity, since) = slot.activity();
            let activity = match activity {
                Activity::Busy => WorkerActivity::InStageCode,
                Activity::Blocked => WorkerActivity::BlockedOnOutput,
                Activity::Idle => WorkerActivity::WaitingForInput,
                Activity::Between => continue,
            };
            workers.push(WorkerState {
                worker,
                activity,
                since: now.saturating_sub(since),
            });
        }
        if workers.is_empty() && tally.in_flight == 0 {
            continue;
        }
        wedge.parts.push(WedgedPart {
            name: m.name.to_string(),
            workers,
            in_flight: tally.in_flight,
            queue_fill: (m.queue_capacity > 0)
                .then(|| (tally.queue_mean / m.queue_capacity as f64).min(1.0)),
        });
    }
    for relay in lock(&c.ledger.relays).iter() {
        if let Some(since) = relay.busy() {
            wedge.hooks.push(RunningHook {
                stage: relay.stage.to_string(),
                running_for: now.saturating_sub(since),
            });
        }
    }
    wedge
}
