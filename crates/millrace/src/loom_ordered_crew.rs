//! Model checks (loom) of an autoscaled ordered stage: workers added while others retire,
//! next to the reorder buffer (protocols.md sections 2 and 5).
//!
//! What runs for real: the segment's [`Crew`] (`segment/crew.rs`), its [`Reorder`] buffer and
//! the region's [`Window`] it releases. What is mirrored: the worker loop
//! (`segment/worker.rs`: `run_worker` with `Emitter::emit` in `EmitMode::Ordered`) and the
//! autoscaler's resize (`SegmentScaler::resize` and `grow`), because the real ones send
//! into crossbeam connectors and start OS threads. The mirrors keep the real steps in
//! order; the segment's inlet is a queue already filled and closed (the source has sent
//! everything), the outlet a list of what was sent, and the spare outlet kept for new
//! workers a `Mutex<Option<()>>`, as in `loom_crew.rs`. The next region's gate window is left
//! out (its admit, under the reorder lock, never waits here).
//!
//! * `loom_ordered_crew_resizing_keeps_every_batch_once_in_order`: two workers, the target
//!   dropping to one and rising back to two (so one may retire while a new one joins).
//!   Every batch leaves exactly once, in sequence order, renumbered without a gap; the
//!   region's window is released for each; the last worker out finds the buffer empty and
//!   drops the spare outlet; a worker added after that never starts.
//! * `loom_ordered_crew_last_out_drains_behind_a_gap`: after a cancel upstream dropped
//!   batch 0, batches 1 and 2 wait behind the gap for ever; whoever is last out (an original
//!   worker or one that joined late) drains them, each once, as unfinished.
//!
//! # Found by these models
//!
//! "The last worker out" is not always one worker: `grow` may add a worker after the last
//! one's `leave` brought `alive` to 0 but before it took the spare outlet (both happen
//! under different guards). The late worker sees the input closed at once and is last out
//! a second time. Both clean-ups are idempotent, so nothing is lost or drained twice;
//! the models allow for it and check that.
//!
//! `retire_one` reads the target before `alive`, so a worker that read the old, lower
//! target can retire after a worker joined for the new, higher one: the segment then runs
//! below its target until the next resize. It never loses its last worker (retiring needs
//! `alive > target >= 1`).

use std::collections::VecDeque;

use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::reorder::Reorder;
use crate::segment::crew::Crew;
use crate::window::Window;

/// What the workers of one segment share (`Emitter`, `OrderedEmit` and `Growth`).
struct Segment {
    /// The segment's inlet: filled and closed, so `None` is the end of input.
    inlet: Mutex<VecDeque<u64>>,
    crew: Crew,
    reorder: Reorder<u64>,
    region: Window,
    /// What went downstream: (the batch's new number, the batch).
    sent: Mutex<Vec<(u64, u64)>>,
    /// `Growth::outlet`: cloned for new workers, dropped by the last worker out.
    outlet: Mutex<Option<()>>,
    /// What the last worker out drained from the reorder buffer (dropped as unfinished).
    drained: Mutex<Vec<u64>>,
    /// How workers ended: retired, or left (and whether last).
    retired: Mutex<usize>,
    last: Mutex<usize>,
}

impl Segment {
    fn new(batches: &[u64], workers: usize) -> Arc<Self> {
        Arc::new(Segment {
            inlet: Mutex::new(batches.iter().copied().collect()),
            crew: Crew::new(workers, true),
            reorder: Reorder::new(),
            region: Window::new(4),
            sent: Mutex::new(Vec::new()),
            outlet: Mutex::new(Some(())),
            drained: Mutex::new(Vec::new()),
            retired: Mutex::new(0),
            last: Mutex::new(0),
        })
    }
}

/// `run_worker` for a segment whose last stage is ordered (processing is the identity).
fn run_worker(seg: &Segment) {
    let retired = loop {
        // Between batches: one too many? (The segment is autoscaled: `growth` is set.)
        if seg.crew.retire_one() {
            break true;
        }
        let Some(seq) = seg.inlet.lock().unwrap().pop_front() else {
            break false;
        };
        // `Emitter::emit`, `EmitMode::Ordered`: insert; whoever inserts the batch that is
        // due sends it and its waiting successors, renumbered, under the buffer's lock;
        // then the region's window is released by as many.
        let released = seg.reorder.insert(seq, seq, |batch| {
            let mut sent = seg.sent.lock().unwrap();
            let renumbered = sent.len() as u64; // `next_seq.fetch_add(1)` under the lock
            sent.push((renumbered, batch));
        });
        seg.region.advance(released);
    };
    // An ordered emitter holds no partial batch: nothing to flush here.
    if retired {
        *seg.retired.lock().unwrap() += 1;
        return;
    }
    if seg.crew.leave() {
        *seg.last.lock().unwrap() += 1;
        seg.drained.lock().unwrap().extend(seg.reorder.drain());
        seg.outlet.lock().unwrap().take();
    }
}

/// `grow`: starts a worker only while the spare outlet is there.
fn grow(seg: &Arc<Segment>) -> Option<thread::JoinHandle<()>> {
    let outlet = seg.outlet.lock().unwrap();
    outlet.as_ref()?;
    seg.crew.join();
    let seg2 = Arc::clone(seg);
    let worker = thread::spawn(move || run_worker(&seg2));
    drop(outlet);
    Some(worker)
}

/// `SegmentScaler::resize`: set the target, then grow up to it while the segment runs.
fn resize(seg: &Arc<Segment>, workers: usize, started: &mut Vec<thread::JoinHandle<()>>) {
    seg.crew.set_target(workers);
    while seg.crew.alive() < workers {
        let before = seg.crew.alive();
        if let Some(worker) = grow(seg) {
            started.push(worker);
        }
        if seg.crew.alive() == before {
            return; // the segment has ended
        }
    }
}

/// Two workers run `batches` while the autoscaler drops the target to one and raises it
/// back to two; returns the segment once every worker has ended.
fn run_resized(batches: &[u64]) -> Arc<Segment> {
    let seg = Segment::new(batches, 2);
    for p in batches {
        assert!(seg.region.admit(*p), "the source admitted every batch");
    }
    let mut workers: Vec<_> = (0..2)
        .map(|_| {
            let seg = Arc::clone(&seg);
            thread::spawn(move || run_worker(&seg))
        })
        .collect();
    resize(&seg, 1, &mut workers);
    resize(&seg, 2, &mut workers);
    let workers_started = workers.len();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(seg.crew.alive(), 0);
    // Usually one worker is last out. But `grow` may add a worker between the last
    // worker's `leave` (alive reaching 0) and its taking the spare outlet: the new worker
    // finds the input closed and is last out again. That second clean-up is harmless (the
    // buffer drains under its lock, so each batch is drained once; taking the outlet twice
    // takes it once), and the tests below check exactly that.
    let last = *seg.last.lock().unwrap();
    assert!(
        (1..=2).contains(&last),
        "{last} workers were last out (at most one late joiner)"
    );
    // A worker that read the old target (1) may still retire after the new worker joined,
    // so the segment may end up below the new target (until the autoscaler's next resize),
    // but never without a worker: every worker started ended, and not all by retiring.
    let started = workers_started;
    let retired = *seg.retired.lock().unwrap();
    assert!(retired < started, "{retired} of {started} workers retired");
    assert!(
        seg.outlet.lock().unwrap().is_none(),
        "the last worker out dropped the spare outlet: the end of input goes downstream"
    );
    seg
}

#[test]
fn loom_ordered_crew_resizing_keeps_every_batch_once_in_order() {
    loom::model(|| {
        let seg = run_resized(&[0, 1, 2]);
        assert_eq!(
            *seg.sent.lock().unwrap(),
            vec![(0, 0), (1, 1), (2, 2)],
            "each batch leaves once, in order, renumbered without a gap"
        );
        assert_eq!(seg.region.front(), 3, "the window released every batch");
        assert!(seg.drained.lock().unwrap().is_empty());
        assert!(seg.reorder.drain().is_empty(), "nothing left in the buffer");
    });
}

#[test]
fn loom_ordered_crew_last_out_drains_behind_a_gap() {
    loom::model(|| {
        // Batch 0 was dropped upstream by a cancel: 1 and 2 can never be emitted.
        let seg = run_resized(&[1, 2]);
        assert!(seg.sent.lock().unwrap().is_empty());
        let mut drained = seg.drained.lock().unwrap().clone();
        drained.sort_unstable();
        assert_eq!(
            drained,
            vec![1, 2],
            "the last worker out drained the buffer"
        );
        assert_eq!(seg.region.front(), 0);
    });
}
